// One actor: recent activity, sign-ins with places, alerts about them.
import * as api from './api.js';
import {badge, h, replace, timeCell} from './dom.js';
import {entityCell} from './events.js';
import {alertItem} from './alerts.js';

export async function renderActor(main, ctx, id) {
  replace(main, h('p', {class: 'muted'}, 'Loading…'));
  const [recent, signIns, alerts] = await Promise.all([
    api.events({actor_id: id, limit: 20}),
    api.events({actor_id: id, action: 'session', limit: 10}).catch(() => ({rows: []})),
    api.get(api.PATHS.alerts, {actor_id: id, limit: 20}).catch(() => ({data: []})),
  ]);
  // the list has no places: each sign-in's details do (a few requests, in parallel)
  await Promise.all(signIns.rows.slice(0, 10).map(async (e) => {
    try {
      const loc = (await api.eventDetail(e.id)).actor?.location || {};
      e.place = [loc.city, loc.region, loc.country].filter(Boolean).join(', ');
    } catch {
      e.place = '';
    }
  }));
  const first = recent.rows[0];
  const name = first?.actor.name || id;
  const rowsOf = (rows, cols) => rows.length
    ? h('div', {class: 'table-wrap'}, h('table', {}, h('thead', {}, h('tr', {}, cols.map(([t]) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, rows.map((e) => h('tr', {}, cols.map(([, f]) => h('td', {}, f(e))))))))
    : h('p', {class: 'muted'}, 'Nothing in the last days.');
  replace(main,
    h('p', {}, h('a', {href: '#/events'}, '← Audit log')),
    h('h1', {}, name, ' ', first ? badge(first.actor.type, first.actor.type) : null),
    h('p', {class: 'mono muted'}, id),
    h('p', {}, h('a', {href: `#/events?actor_id=${encodeURIComponent(id)}`}, 'All of this actor’s events in the audit log →')),
    h('section', {class: 'card'}, h('h2', {}, 'Recent activity'),
      rowsOf(recent.rows, [['Date', (e) => timeCell(e.occurredAt)],
        ['Action', (e) => h('a', {class: 'action', href: `#/events/${encodeURIComponent(e.id)}`}, e.action)],
        ['Entity', (e) => entityCell(e.entity)]])),
    h('section', {class: 'card'}, h('h2', {}, 'Sign-ins'),
      rowsOf(signIns.rows, [['Date', (e) => timeCell(e.occurredAt)],
        ['Result', (e) => h('a', {class: 'action', href: `#/events/${encodeURIComponent(e.id)}`}, e.action)],
        ['IP', (e) => e.ip], ['Place', (e) => e.place || '']])),
    h('section', {class: 'card'}, h('h2', {}, 'Alerts about this actor'),
      (alerts.data || []).length ? h('ul', {class: 'alerts-list'}, alerts.data.map((a) => alertItem(a)))
        : h('p', {class: 'muted'}, 'No alerts.')));
}

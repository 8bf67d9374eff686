// One event: the four cards (action, actor, entity, details with old -> new), its cascade.
import * as api from './api.js';
import {badge, h, replace, timeCell, valueText} from './dom.js';
import {actorCell, entityCell} from './events.js';

function dl(pairs) {
  return h('dl', {}, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** Field-by-field before -> after, the old value marked "−" in red, the new one "+" in green. */
export function changesTable(changes) {
  if (!changes || !changes.length) return h('p', {class: 'muted'}, 'No field changes recorded.');
  return h('table', {class: 'diff'},
    h('caption', {class: 'visually-hidden'}, 'Changed fields, old and new values'),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Field'), h('th', {scope: 'col'}, 'Old value'),
      h('th', {scope: 'col'}, h('span', {class: 'visually-hidden'}, 'becomes')), h('th', {scope: 'col'}, 'New value'))),
    h('tbody', {}, changes.map((c) => h('tr', {},
      h('th', {scope: 'row', class: 'mono'}, c.field),
      h('td', {class: 'old', 'aria-label': `old value: ${valueText(c.old)}`}, valueText(c.old)),
      h('td', {class: 'arrow', 'aria-hidden': 'true'}, '→'),
      h('td', {class: 'new', 'aria-label': `new value: ${valueText(c.new)}`}, valueText(c.new))))));
}

function eventLine(e) {
  return h('li', {}, timeCell(e.occurredAt), ' · ', actorCell(e.actor), ' ',
    h('a', {class: 'action', href: `#/events/${encodeURIComponent(e.id)}`}, e.action), ' ', entityCell(e.entity));
}

export async function renderDetail(main, ctx, id) {
  replace(main, h('p', {class: 'muted'}, 'Loading…'));
  const d = await api.eventDetail(id);
  const a = d.actor || {};
  const loc = a.location || {};
  const place = [loc.city, loc.region, loc.country].filter(Boolean).join(', ');
  const entity = d.entity || {};
  const timelineHref = `#/entities/${encodeURIComponent(entity.type)}/${encodeURIComponent(entity.id)}`;
  const metadata = d.details?.metadata || {};
  const parent = d.parent ? api.event(d.parent) : null;
  const children = (d.children || []).map(api.event);
  const related = (d.related || []).map(api.event);

  replace(main,
    h('p', {}, h('a', {href: '#/events', onclick: (ev) => { if (history.length > 1) { ev.preventDefault(); history.back(); } }}, '← Audit log')),
    h('h1', {}, `${d.action.action} · ${entity.name || entity.id}`),
    h('div', {class: 'cards'},
      h('section', {class: 'card', 'aria-labelledby': 'card-action'}, h('h2', {id: 'card-action'}, 'Action'),
        dl([['Action', h('span', {class: 'action'}, d.action.action)], ['Outcome', d.action.outcome],
          ['Occurred', timeCell(d.action.occurred_at, true)],
          ['Occurred (UTC)', h('span', {class: 'mono', id: 'occurred-utc'}, new Date(d.action.occurred_at).toISOString())],
          ['Received', timeCell(d.action.received_at, true)], ['Channel', d.action.channel],
          ['Event id', h('span', {class: 'mono'}, d.event_id)]])),
      h('section', {class: 'card', 'aria-labelledby': 'card-actor'}, h('h2', {id: 'card-actor'}, 'Actor'),
        dl([['Name', h('a', {href: `#/actors/${encodeURIComponent(a.id)}`}, a.display_name || a.id)],
          ['Type', badge(a.type, a.type)], ['Id', h('span', {class: 'mono'}, a.id)], ['Email', a.email],
          ['IP', a.ip], ['Place', place], ['Session', a.session_id], ['User agent', a.user_agent]])),
      h('section', {class: 'card', 'aria-labelledby': 'card-entity'}, h('h2', {id: 'card-entity'}, 'Entity'),
        dl([['Type', entity.type], ['Name', entity.name], ['Id', h('span', {class: 'mono'}, entity.id)]]),
        h('p', {}, h('a', {href: timelineHref, id: 'timeline-link'}, 'Timeline of this entity →'))),
      h('section', {class: 'card card-details', 'aria-labelledby': 'card-details'}, h('h2', {id: 'card-details'}, 'Details'),
        changesTable(d.details?.changes),
        Object.keys(metadata).length ? [h('h2', {}, 'Metadata'),
          dl(Object.entries(metadata).map(([k, v]) => [k, valueText(v)]))] : null)),
    parent || children.length || related.length ? h('section', {class: 'card', 'aria-labelledby': 'cascade'},
      h('h2', {id: 'cascade'}, 'Cascade'),
      parent ? [h('h3', {}, 'Caused by'), h('ul', {id: 'cascade-parent'}, eventLine(parent))] : null,
      children.length ? [h('h3', {}, `Caused ${children.length} event${children.length > 1 ? 's' : ''}`),
        h('ul', {id: 'cascade-children'}, children.map(eventLine))] : null,
      related.length ? [h('h3', {}, 'Same request'), h('ul', {}, related.map(eventLine))] : null) : null);
  main.focus();
}

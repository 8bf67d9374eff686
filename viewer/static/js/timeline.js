// Every change to one entity, oldest first, with before -> after values and cascades.
import * as api from './api.js';
import {h, replace, timeCell} from './dom.js';
import {actorCell} from './events.js';
import {changesTable} from './detail.js';

export async function renderTimeline(main, ctx, type, id) {
  replace(main, h('p', {class: 'muted'}, 'Loading…'));
  const list = h('ol', {class: 'timeline', id: 'timeline'});
  const more = h('button', {class: 'btn btn-quiet', type: 'button', hidden: true}, 'Older changes…');
  let cursor = null;
  const heading = h('h1', {}, `Timeline · ${type} ${id}`);

  async function load() {
    const page = await api.timeline(type, id, cursor);
    if (page.entity?.name) heading.textContent = `Timeline · ${page.entity.type} “${page.entity.name}”`;
    for (const e of page.rows) {
      list.append(h('li', {class: e.cascade ? 'cascade' : ''},
        h('div', {}, timeCell(e.occurredAt), ' · ', actorCell(e.actor), ' · ',
          h('a', {class: 'action', href: `#/events/${encodeURIComponent(e.id)}`}, e.action),
          e.cascade ? [' ', h('span', {class: 'badge badge-plain'}, 'cascade')] : null),
        e.changes.length ? changesTable(e.changes) : null));
    }
    if (!list.children.length) list.append(h('li', {class: 'muted'}, 'No changes recorded for this entity.'));
    cursor = page.next;
    more.hidden = !cursor;
  }
  more.addEventListener('click', () => load().catch((err) => ctx.handleError(err, main)));
  replace(main,
    h('p', {}, h('a', {href: '#/events'}, '← Audit log')),
    heading,
    h('p', {class: 'muted'}, 'Every change to this entity, oldest first.'),
    list, more);
  await load();
}

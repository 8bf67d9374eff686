// The audit log: filters, the table, cursor pages, selection and export.
import * as api from './api.js';
import {badge, debounce, h, replace, timeCell} from './dom.js';
import {actionSelect, actorTypeSelect, apiParams, range, readFilters, writeUrl} from './filters.js';
import {FORMATS, exportMatching, exportSelected} from './exports.js';

const PAGE_SIZES = [20, 50, 100];

export function actorCell(actor) {
  return h('span', {class: 'actor-cell'},
    h('a', {href: `#/actors/${encodeURIComponent(actor.id)}`, title: actor.id}, actor.name || actor.id),
    badge(actor.type, actor.type));
}

export function entityCell(entity) {
  return h('span', {},
    h('a', {class: 'entity-name', href: `#/entities/${encodeURIComponent(entity.type)}/${encodeURIComponent(entity.id)}`,
      title: 'Timeline of this entity'}, entity.name || entity.id),
    entity.name ? [h('br'), h('span', {class: 'mono muted'}, entity.id)] : null);
}

export function renderEvents(main, ctx, params) {
  const config = ctx.config;
  const state = readFilters(params);
  state.limit = String(Math.min(Number(state.limit) || config.page_size, config.max_page_size));
  state.sort = state.sort === 'oldest' ? 'oldest' : 'newest';
  let cursors = [null]; // cursors[i] reads page i; "back" needs no API support
  let pageIndex = 0;
  let rows = [];
  let seq = 0;
  const selected = new Map();

  const tbody = h('tbody', {});
  const pageLabel = h('span', {class: 'muted', id: 'page-label'});
  const prev = h('button', {class: 'btn btn-quiet', type: 'button', id: 'prev', 'aria-label': 'Previous page'}, '← Previous');
  const next = h('button', {class: 'btn btn-quiet', type: 'button', id: 'next', 'aria-label': 'Next page'}, 'Next →');
  const notice = h('div', {id: 'table-notice'});
  const exportStatus = h('div', {id: 'export-status', 'aria-live': 'polite'});
  const rangeHint = h('p', {class: 'hint', id: 'range-hint'});
  const selCount = h('span', {class: 'muted', id: 'selected-count'}, 'None selected');
  const selectAll = h('input', {type: 'checkbox', id: 'select-page', 'aria-label': 'Select every row on this page'});

  // -- the controls -------------------------------------------------------------------------
  const action = actionSelect(config, state.action);
  const actorType = actorTypeSelect(config, state.actor_type);
  const entityList = h('datalist', {id: 'entity-types'});
  const entityType = h('input', {id: 'f-entity-type', name: 'entity_type', list: 'entity-types', value: state.entity_type || '', placeholder: 'any', autocomplete: 'off'});
  const actorId = h('input', {id: 'f-actor', name: 'actor_id', value: state.actor_id || '', placeholder: 'actor id, e.g. usr_42', autocomplete: 'off'});
  const from = h('input', {id: 'f-from', name: 'from', type: 'date', value: state.from || '', 'aria-describedby': 'range-hint'});
  const to = h('input', {id: 'f-to', name: 'to', type: 'date', value: state.to || '', 'aria-describedby': 'range-hint'});
  const search = h('input', {id: 'f-search', name: 'q', type: 'search', value: state.q || '', placeholder: 'entity name or id, actor name', autocomplete: 'off'});
  const sort = h('button', {class: 'btn btn-quiet', type: 'button', id: 'sort', 'aria-pressed': String(state.sort === 'oldest')});
  const size = h('select', {id: 'page-size', 'aria-label': 'Events per page'}, PAGE_SIZES.map((n) => h('option', {value: String(n)}, `${n} per page`)));
  size.value = state.limit;
  const format = h('select', {id: 'export-format', 'aria-label': 'Export format'},
    Object.entries(FORMATS).map(([key, f]) => h('option', {value: key}, f.label)));
  const exportSel = h('button', {class: 'btn btn-quiet', type: 'button', id: 'export-selected', disabled: true}, 'Export selected');
  const exportAll = h('button', {class: 'btn', type: 'button', id: 'export-all'}, 'Export all matching');

  const canExport = !ctx.me || (ctx.me.scopes || []).includes('audit_log:export');
  const exportHint = h('p', {class: 'hint', id: 'export-hint', hidden: canExport},
    'Exports need the audit_log:export permission: ask your admin for it.');
  if (!canExport) {
    for (const button of [exportSel, exportAll, format]) button.setAttribute('aria-describedby', 'export-hint');
  }

  const field = (label, input, extra, cls) => h('div', {class: `field ${cls || ''}`}, h('label', {for: input.id}, label), input, extra);
  const form = h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter the audit log', onsubmit: (ev) => ev.preventDefault()},
    field('Action', action),
    field('Actor type', actorType),
    field('Entity type', entityType, entityList),
    field('Actor', actorId),
    field('From', from),
    field('To', to),
    field('Search', search, null, 'wide'),
    h('div', {class: 'wide'}, rangeHint));

  const table = h('table', {class: 'events', 'aria-describedby': 'page-label'},
    h('caption', {class: 'visually-hidden'}, 'Audit log events'),
    h('thead', {}, h('tr', {},
      h('th', {class: 'sel', scope: 'col'}, selectAll),
      h('th', {scope: 'col'}, 'Date'), h('th', {scope: 'col'}, 'Actor'), h('th', {scope: 'col'}, 'Action'),
      h('th', {scope: 'col', class: 'col-entity-type'}, 'Entity type'), h('th', {scope: 'col'}, 'Entity'))),
    tbody);

  replace(main,
    h('h1', {}, 'Audit log'),
    form,
    h('div', {class: 'toolbar'}, sort, size, h('span', {class: 'spacer'}), selCount, format, exportSel, exportAll),
    exportHint,
    exportStatus,
    notice,
    h('div', {class: 'table-wrap'}, table),
    h('div', {class: 'toolbar'}, prev, pageLabel, next));

  // -- behaviour ------------------------------------------------------------------------------
  function sortLabel() {
    sort.textContent = state.sort === 'newest' ? 'Newest first ↓' : 'Oldest first ↑';
    sort.setAttribute('aria-pressed', String(state.sort === 'oldest'));
    sort.setAttribute('aria-label', `Sort: ${state.sort} first. Activate to change.`);
  }

  function updateSelection() {
    selCount.textContent = selected.size ? `${selected.size} selected` : 'None selected';
    exportSel.disabled = !canExport || selected.size === 0;
    selectAll.checked = rows.length > 0 && rows.every((r) => selected.has(r.id));
  }

  function row(e) {
    const box = h('input', {type: 'checkbox', checked: selected.has(e.id), 'aria-label': `Select ${e.action} of ${e.entity.name || e.entity.id}`,
      onchange: () => {
        if (box.checked) selected.set(e.id, e); else selected.delete(e.id);
        tr.classList.toggle('selected', box.checked);
        updateSelection();
      }});
    const tr = h('tr', {class: selected.has(e.id) ? 'selected' : '', dataset: {eventId: e.id}},
      h('td', {class: 'sel'}, box),
      h('td', {}, timeCell(e.occurredAt)),
      h('td', {}, actorCell(e.actor)),
      h('td', {}, h('a', {class: 'action', href: `#/events/${encodeURIComponent(e.id)}`, title: 'Open the details'}, e.action),
        e.outcome && e.outcome !== 'success' ? [' ', badge(e.outcome, 'plain')] : null),
      h('td', {class: 'col-entity-type'}, e.entity.type),
      h('td', {}, entityCell(e.entity)));
    return tr;
  }

  async function load() {
    const mine = ++seq;
    const r = range(state, config);
    rangeHint.className = r.error ? 'hint hint-error' : 'hint';
    rangeHint.setAttribute('role', r.error ? 'alert' : 'note');
    if (r.error) {
      rangeHint.textContent = r.error;
      replace(tbody);
      pageLabel.textContent = '';
      prev.disabled = next.disabled = exportAll.disabled = true;
      return;
    }
    exportAll.disabled = !canExport;
    rangeHint.textContent = state.from || state.to
      ? `At most ${config.max_range_days} days at a time.`
      : `Showing the last ${config.default_range_days} days; pick dates for another range (at most ${config.max_range_days} days).`;
    main.setAttribute('aria-busy', 'true');
    try {
      const page = await api.events({...apiParams(state, config), limit: state.limit}, cursors[pageIndex]);
      if (mine !== seq) return; // a newer request is on its way
      rows = page.rows;
      replace(notice);
      replace(tbody, rows.length ? rows.map(row)
        : h('tr', {}, h('td', {colspan: '6', class: 'empty'}, 'No events match these filters.')));
      cursors = cursors.slice(0, pageIndex + 1);
      if (page.next) cursors.push(page.next);
      prev.disabled = pageIndex === 0;
      next.disabled = !page.next;
      pageLabel.textContent = `Page ${pageIndex + 1} · ${rows.length} events`;
      updateSelection();
    } catch (err) {
      if (mine === seq) ctx.handleError(err, notice);
    } finally {
      if (mine === seq) main.removeAttribute('aria-busy');
    }
  }

  function changed() {
    state.action = action.value;
    state.actor_type = actorType.value;
    state.entity_type = entityType.value.trim();
    state.actor_id = actorId.value.trim();
    state.from = from.value;
    state.to = to.value;
    state.q = search.value.trim();
    cursors = [null];
    pageIndex = 0;
    writeUrl('/events', state);
    load();
  }

  for (const control of [action, actorType, from, to]) control.addEventListener('change', changed);
  entityType.addEventListener('change', changed);
  actorId.addEventListener('change', changed);
  search.addEventListener('input', debounce(changed, 300));
  sort.addEventListener('click', () => {
    state.sort = state.sort === 'newest' ? 'oldest' : 'newest';
    sortLabel();
    changed();
  });
  size.addEventListener('change', () => {
    state.limit = size.value;
    changed();
  });
  prev.addEventListener('click', () => {
    if (pageIndex > 0) { pageIndex -= 1; load(); }
  });
  next.addEventListener('click', () => {
    if (cursors[pageIndex + 1]) { pageIndex += 1; load(); }
  });
  selectAll.addEventListener('change', () => {
    for (const e of rows) {
      if (selectAll.checked) selected.set(e.id, e); else selected.delete(e.id);
    }
    for (const tr of tbody.querySelectorAll('tr[data-event-id]')) {
      const on = selected.has(tr.dataset.eventId);
      tr.classList.toggle('selected', on);
      tr.querySelector('input[type=checkbox]').checked = on;
    }
    updateSelection();
  });
  exportSel.addEventListener('click', () => exportSelected([...selected.values()], format.value, exportStatus));
  exportAll.addEventListener('click', async () => {
    exportAll.disabled = true;
    try {
      await exportMatching(apiParams(state, config), format.value, exportStatus);
    } catch (err) {
      ctx.handleError(err, exportStatus);
    } finally {
      exportAll.disabled = !canExport;
    }
  });

  // entity types the tenant has, for the input's suggestions (best effort)
  api.get(api.PATHS.counts, {dimension: 'entity_type', limit: 100}).then((counts) => {
    replace(entityList, (counts.data || []).map((c) => h('option', {value: c.key})));
  }).catch(() => {});

  sortLabel();
  writeUrl('/events', state);
  return load();
}

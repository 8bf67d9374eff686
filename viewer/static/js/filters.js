// The audit log's filters: read from and written to the URL, turned into API parameters.
import {h} from './dom.js';

export const FILTER_KEYS = ['action', 'actor_type', 'entity_type', 'actor_id', 'from', 'to', 'q', 'sort', 'limit'];
const DAY_MS = 86_400_000;

export function readFilters(params) {
  const out = {};
  for (const key of FILTER_KEYS) {
    const value = params.get(key);
    if (value) out[key] = value;
  }
  return out;
}

export function writeUrl(path, state) {
  const qs = new URLSearchParams();
  for (const key of FILTER_KEYS) if (state[key]) qs.set(key, state[key]);
  const text = qs.toString();
  history.replaceState(null, '', `#${path}${text ? `?${text}` : ''}`);
}

/** A local calendar date (yyyy-mm-dd) as the instant its day starts, in the viewer's zone. */
function localDayStart(text) {
  const [y, m, d] = text.split('-').map(Number);
  return new Date(y, m - 1, d);
}

/** The range the inputs describe: {from, to} as ISO instants (to exclusive), or an error. */
export function range(state, config) {
  const out = {};
  if (state.from) out.from = localDayStart(state.from);
  if (state.to) out.to = new Date(localDayStart(state.to).getTime() + DAY_MS);
  const max = config.max_range_days;
  const start = out.from || new Date((out.to || new Date()).getTime() - config.default_range_days * DAY_MS);
  const end = out.to || new Date();
  if (out.from && out.to && start >= end) return {error: 'The start date is after the end date.'};
  const days = Math.ceil((end - start) / DAY_MS);
  if (days > max) {
    return {error: `That range covers ${days} days; the audit log shows at most ${max} days at a time, ` +
      'so that every page stays fast. Narrow the range, or export it in parts.'};
  }
  return {from: out.from?.toISOString(), to: out.to?.toISOString()};
}

/** API parameters for the current state (without cursor and page size). */
export function apiParams(state, config) {
  const r = range(state, config);
  const params = {from: r.from, to: r.to, actor_type: state.actor_type, entity_type: state.entity_type,
    actor_id: state.actor_id, q: state.q, sort: state.sort || 'newest'};
  if (state.action?.startsWith('verb:')) {
    params.action = state.action.slice(5);
    params.exact_action = 'true';
  } else if (state.action) {
    params.action = state.action;
  }
  return params;
}

export function actionSelect(config, value) {
  const groups = config.action_groups || {};
  const updateMembers = (groups.update || []).filter((a) => a !== 'update').map((a) => a.replace(/_/g, ' '));
  const sel = h('select', {id: 'f-action', name: 'action'},
    h('optgroup', {label: 'Action type'},
      h('option', {value: ''}, 'All actions'),
      h('option', {value: 'create'}, 'Create'),
      h('option', {value: 'update'}, `Update (incl. ${updateMembers.join(', ')})`),
      h('option', {value: 'delete'}, 'Delete')),
    h('optgroup', {label: 'Exact action'},
      (config.actions || []).map((a) => h('option', {value: `verb:${a}`}, a.replace(/_/g, ' ')))));
  sel.value = value || '';
  return sel;
}

export function actorTypeSelect(config, value) {
  const sel = h('select', {id: 'f-actor-type', name: 'actor_type'},
    h('option', {value: ''}, 'All actor types'),
    (config.actor_types || []).map((t) => h('option', {value: t}, t)));
  sel.value = value || '';
  return sel;
}

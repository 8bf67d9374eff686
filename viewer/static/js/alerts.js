// Security alerts, live: the list polls the API and new alerts appear at the top.
import * as api from './api.js';
import {badge, h, replace, timeCell} from './dom.js';

const POLL_MS = 3000;
const SEVERITIES = ['low', 'medium', 'high', 'critical'];

function number(v) {
  if (v === null || v === undefined) return '—';
  return Number.isInteger(v) ? v.toLocaleString() : Number(v).toLocaleString(undefined, {maximumFractionDigits: 2});
}

export function alertItem(a, fresh = false) {
  const obs = a.observations || [];
  const evidence = a.evidence_event_ids || [];
  return h('li', {class: `alert-item sev-${a.severity}${fresh ? ' fresh' : ''}`, dataset: {alertId: a.alert_id, rule: a.rule}},
    h('div', {class: 'alert-head'},
      badge(a.severity, a.severity),
      h('strong', {}, a.title),
      h('span', {class: 'mono muted'}, a.rule),
      h('span', {class: 'muted'}, 'MITRE ', h('abbr', {title: a.mitre_name || a.mitre_technique}, a.mitre_technique),
        a.mitre_name ? ` ${a.mitre_name}` : ''),
      h('span', {class: 'spacer'}),
      timeCell(a.detected_at)),
    h('p', {}, a.explanation),
    obs.length ? h('table', {class: 'observations'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Measure'), h('th', {scope: 'col'}, 'Observed'), h('th', {scope: 'col'}, 'Baseline'))),
      h('tbody', {}, obs.map((o) => h('tr', {}, h('td', {}, o.metric),
        h('td', {}, `${number(o.observed)} ${o.unit || ''}`.trim()),
        h('td', {}, o.baseline === null || o.baseline === undefined ? 'none yet' : `${number(o.baseline)} ${o.unit || ''}`.trim()))))) : null,
    h('p', {class: 'muted'}, 'About ',
      a.actor_id ? h('a', {href: `#/actors/${encodeURIComponent(a.actor_id)}`}, a.subject) : h('span', {class: 'mono'}, a.subject),
      ' · window ', timeCell(a.window_start), ' – ', timeCell(a.window_end)),
    evidence.length ? h('details', {},
      h('summary', {}, `Evidence: ${evidence.length} event${evidence.length > 1 ? 's' : ''}`),
      h('ul', {}, evidence.map((id) => h('li', {}, h('a', {class: 'mono', href: `#/events/${encodeURIComponent(id)}`}, id))))) : null);
}

export async function renderAlerts(main, ctx, params) {
  const severity = h('select', {id: 'a-severity'}, h('option', {value: ''}, 'Any severity'),
    SEVERITIES.map((s) => h('option', {value: s}, `${s} and above`)));
  severity.value = params.get('min_severity') || '';
  const rule = h('input', {id: 'a-rule', placeholder: 'any rule', value: params.get('rule') || ''});
  const list = h('ul', {class: 'alerts-list', id: 'alerts', 'aria-live': 'polite', 'aria-relevant': 'additions'});
  const info = h('p', {class: 'muted', id: 'alerts-status'});
  const seen = new Set();
  let timer = null;
  let first = true;
  let stopped = false;
  let generation = 0; // a poll for filters since changed is dropped

  async function poll() {
    if (stopped) return;
    const mine = generation;
    try {
      const page = await api.get(api.PATHS.alerts, {min_severity: severity.value, rule: rule.value.trim(), limit: 50});
      if (mine !== generation) return;
      const fresh = (page.data || []).filter((a) => !seen.has(a.alert_id));
      // newest first: insert the oldest of the new ones first, each at the top
      for (const a of fresh.slice().reverse()) {
        seen.add(a.alert_id);
        list.prepend(alertItem(a, !first));
      }
      if (!list.children.length) replace(info, 'No alerts for these filters. New ones appear here as they are detected.');
      else info.textContent = `${list.children.length} alert${list.children.length === 1 ? '' : 's'} · live, checked every ${POLL_MS / 1000} s · last check ${new Date().toLocaleTimeString()}`;
      first = false;
    } catch (err) {
      if (mine !== generation || ctx.handleError(err, info)) return;
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  function restart() {
    generation += 1;
    clearTimeout(timer);
    seen.clear();
    replace(list);
    first = true;
    const qs = new URLSearchParams();
    if (severity.value) qs.set('min_severity', severity.value);
    if (rule.value.trim()) qs.set('rule', rule.value.trim());
    history.replaceState(null, '', `#/alerts${qs.toString() ? `?${qs}` : ''}`);
    poll();
  }
  severity.addEventListener('change', restart);
  rule.addEventListener('change', restart);
  ctx.cleanup = () => {
    stopped = true;
    clearTimeout(timer);
  };

  replace(main,
    h('h1', {}, 'Security alerts'),
    h('form', {class: 'filters', onsubmit: (ev) => ev.preventDefault(), 'aria-label': 'Filter alerts'},
      h('div', {class: 'field'}, h('label', {for: 'a-severity'}, 'Severity'), severity),
      h('div', {class: 'field'}, h('label', {for: 'a-rule'}, 'Rule'), rule)),
    info, list);
  await poll();
}

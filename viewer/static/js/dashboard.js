// Dashboard: activity trend, most active users, most modified entity types, action
// distribution, alerts by rule and severity, all for the chosen range (Chart.js, vendored).
import * as api from './api.js';
import {h, replace} from './dom.js';
import {range as rangeOf} from './filters.js';

const DAY_MS = 86_400_000;
const PALETTE = ['#0b57d0', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0e7490', '#a16207', '#4338ca', '#be185d', '#3f6212'];
const SEVERITY_COLOURS = {low: '#3b5b7a', medium: '#b58900', high: '#d9480f', critical: '#a3122b'};
const charts = [];

function box(title, id, canvas, extra) {
  return h('section', {class: 'card', 'aria-labelledby': `${id}-title`},
    h('h2', {id: `${id}-title`}, title), h('div', {class: 'chart-box'}, canvas), extra);
}

function canvasFor(id) {
  return h('canvas', {id, role: 'img', 'aria-label': 'loading'});
}

function describe(canvas, title, labels, values) {
  const parts = labels.slice(0, 10).map((l, i) => `${l}: ${values[i]}`);
  canvas.setAttribute('aria-label', `${title}. ${parts.length ? parts.join('; ') : 'no data'}`);
}

function draw(canvas, config) {
  if (typeof window.Chart !== 'function') return; // library missing: the aria text still says it
  charts.push(new window.Chart(canvas, {...config, options: {responsive: true, maintainAspectRatio: false,
    animation: false, ...config.options}}));
}

export async function renderDashboard(main, ctx, params) {
  while (charts.length) charts.pop().destroy();
  ctx.cleanup = () => { while (charts.length) charts.pop().destroy(); };
  // a preset (?days=N) or dates (?from=yyyy-mm-dd&to=yyyy-mm-dd, local days, both included)
  const dates = {from: params.get('from') || '', to: params.get('to') || ''};
  const days = Math.min(Number(params.get('days')) || 30, ctx.config.max_range_days);
  let range;
  let spanDays = days;
  const picked = dates.from || dates.to ? rangeOf(dates, ctx.config) : null;
  if (picked && !picked.error) {
    const to = picked.to ? new Date(picked.to) : new Date();
    const from = picked.from ? new Date(picked.from) : new Date(to.getTime() - ctx.config.default_range_days * DAY_MS);
    range = {from: from.toISOString(), to: to.toISOString()};
    spanDays = (to - from) / DAY_MS;
  } else {
    const to = new Date();
    range = {from: new Date(to.getTime() - days * DAY_MS).toISOString(), to: to.toISOString()};
  }
  const interval = spanDays <= 2 ? 'hour' : spanDays <= 60 ? 'day' : 'week';

  const picker = h('select', {id: 'd-range'}, h('option', {value: ''}, 'Dates below'),
    [1, 7, 30, 90, 365].filter((d) => d <= ctx.config.max_range_days)
      .map((d) => h('option', {value: String(d)}, d === 1 ? 'Last 24 hours' : `Last ${d} days`)));
  picker.value = picked ? '' : String(days);
  picker.addEventListener('change', () => {
    if (picker.value) location.hash = `#/dashboard?days=${picker.value}`;
  });
  const fromInput = h('input', {type: 'date', id: 'd-from', value: dates.from, 'aria-describedby': 'd-hint'});
  const toInput = h('input', {type: 'date', id: 'd-to', value: dates.to, 'aria-describedby': 'd-hint'});
  const onDates = () => {
    const qs = new URLSearchParams();
    if (fromInput.value) qs.set('from', fromInput.value);
    if (toInput.value) qs.set('to', toInput.value);
    location.hash = `#/dashboard?${qs}`;
  };
  fromInput.addEventListener('change', onDates);
  toInput.addEventListener('change', onDates);
  const hint = h('p', {id: 'd-hint', class: picked?.error ? 'hint hint-error' : 'hint', role: picked?.error ? 'alert' : null},
    picked?.error || `At most ${ctx.config.max_range_days} days.`);
  const stats = h('div', {class: 'stats', id: 'stats'});
  const c = {trend: canvasFor('c-trend'), actors: canvasFor('c-actors'), entities: canvasFor('c-entities'),
    actions: canvasFor('c-actions'), alerts: canvasFor('c-alerts')};
  const notice = h('div', {});
  replace(main,
    h('h1', {}, 'Dashboard'),
    h('div', {class: 'toolbar'}, h('label', {for: 'd-range'}, 'Range'), picker,
      h('label', {for: 'd-from'}, 'From'), fromInput, h('label', {for: 'd-to'}, 'To'), toInput),
    hint,
    notice, stats,
    h('div', {class: 'charts'},
      box('Activity over time', 'trend', c.trend),
      box('Most active users', 'actors', c.actors),
      box('Most modified entity types', 'entities', c.entities),
      box('Action distribution', 'actions', c.actions),
      box('Alerts by rule and severity', 'alerts', c.alerts)));

  if (picked?.error) return; // said in the hint; nothing to chart
  const soft = (p) => p.catch((err) => { ctx.handleError(err, notice); return null; });
  const [summary, trend, actors, entities, actions, alerts] = await Promise.all([
    soft(api.get(api.PATHS.summary, range)),
    soft(api.get(api.PATHS.trend, {...range, interval})),
    soft(api.get(api.PATHS.topActors, {...range, limit: 10})),
    soft(api.get(api.PATHS.topEntityTypes, {...range, limit: 10})),
    soft(api.get(api.PATHS.counts, {...range, dimension: 'action', limit: 20})),
    soft(api.get(api.PATHS.alertSummary, range)),
  ]);

  if (summary) {
    replace(stats, [['Events', summary.events], ['Unique entities', summary.unique_entities], ['Active actors', summary.unique_actors]]
      .map(([label, n]) => h('div', {class: 'stat'}, h('strong', {}, Number(n).toLocaleString()), label)));
  }
  if (trend) {
    const labels = trend.data.map((p) => new Date(p.start).toLocaleString(undefined,
      interval === 'hour' ? {hour: '2-digit', minute: '2-digit', day: 'numeric', month: 'short'} : {day: 'numeric', month: 'short'}));
    const values = trend.data.map((p) => p.count);
    describe(c.trend, 'Events per ' + interval, labels, values);
    draw(c.trend, {type: 'line', data: {labels, datasets: [{label: `Events per ${interval}`, data: values,
      borderColor: PALETTE[0], backgroundColor: '#0b57d033', fill: true, tension: 0.2}]},
      options: {scales: {y: {beginAtZero: true}}}});
  }
  const bars = (canvas, counts, title, labelOf) => {
    if (!counts) return;
    const labels = counts.data.map(labelOf);
    const values = counts.data.map((d) => d.count);
    describe(canvas, title, labels, values);
    draw(canvas, {type: 'bar', data: {labels, datasets: [{label: title, data: values, backgroundColor: PALETTE[0]}]},
      options: {indexAxis: 'y', plugins: {legend: {display: false}}, scales: {x: {beginAtZero: true}}}});
  };
  bars(c.actors, actors, 'Events by actor', (d) => d.label || d.key);
  bars(c.entities, entities, 'Changes by entity type', (d) => d.key);
  if (actions) {
    const labels = actions.data.map((d) => d.key);
    const values = actions.data.map((d) => d.count);
    describe(c.actions, 'Events by action', labels, values);
    draw(c.actions, {type: 'doughnut', data: {labels, datasets: [{data: values, backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length])}]},
      options: {plugins: {legend: {position: 'right'}}}});
  }
  if (alerts) {
    const rules = [...new Set(alerts.data.map((d) => d.rule))];
    const severities = Object.keys(SEVERITY_COLOURS).filter((s) => alerts.data.some((d) => d.severity === s));
    const datasets = severities.map((s) => ({label: s, backgroundColor: SEVERITY_COLOURS[s],
      data: rules.map((r) => alerts.data.find((d) => d.rule === r && d.severity === s)?.count || 0)}));
    describe(c.alerts, 'Alerts by rule', rules, rules.map((r) => alerts.data.filter((d) => d.rule === r).reduce((n, d) => n + d.count, 0)));
    draw(c.alerts, {type: 'bar', data: {labels: rules, datasets},
      options: {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}}}});
  }
}

// Audit reviews: the tenant's schedule, the latest period's report and its sign-off.
import * as api from './api.js';
import {badge, h, replace, status, timeCell} from './dom.js';

function facts(pairs) {
  return h('dl', {class: 'facts'}, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function findingItem(f) {
  return h('li', {class: 'finding', dataset: {section: f.section}},
    timeCell(f.occurred_at), ' ',
    f.actor_id ? h('a', {href: `#/actors/${encodeURIComponent(f.actor_id)}`}, f.actor_id) : null, ' ',
    h('span', {class: 'mono'}, f.action), ' ', f.resource, ' · ', h('span', {class: 'finding-detail'}, f.detail), ' ',
    eventLinks(f.event_ids || []));
}

const LINKS = 5; // events linked per finding; the rest counted

function eventLinks(ids) {
  const links = ids.slice(0, LINKS).map((id, i) =>
    [' ', h('a', {class: 'mono', href: `#/events/${encodeURIComponent(id)}`, title: id}, ids.length > 1 ? `event ${i + 1}` : 'event')]);
  return [links, ids.length > LINKS ? h('span', {class: 'muted'}, ` and ${ids.length - LINKS} more`) : null];
}

function reportView(r) {
  const c = r.completeness;
  return h('section', {class: 'card', id: 'review-report', 'aria-labelledby': 'report-title'},
    h('h2', {id: 'report-title'}, 'Latest report'),
    facts([
      ['Period', [timeCell(r.period_from), ' – ', timeCell(r.period_to)]],
      ['Events', `${r.total} (previous period ${r.previous_total})`],
      ['Verification', badge(c.verification, c.verification === 'OK' ? 'ok' : 'critical')],
      ['Reconciliation', badge(c.reconciliation, c.reconciliation === 'OK' ? 'ok' : 'critical')],
      ['Key fingerprint', h('span', {class: 'mono'}, r.key_fingerprint || 'none')],
    ]),
    r.sections.map((s) => h('details', {class: 'review-section', dataset: {key: s.key}, open: s.findings.length > 0},
      h('summary', {}, `${s.title}: `, h('strong', {class: 'count'}, String(s.findings.length + (s.more || 0)))),
      s.findings.length ? h('ul', {}, s.findings.map(findingItem)) : h('p', {class: 'muted'}, 'No findings.'))));
}

export async function renderReviews(main, ctx, params) {
  const info = h('div', {id: 'reviews-status'});
  const body = h('div', {});
  replace(main, h('section', {'data-page': 'reviews', 'aria-labelledby': 'reviews-title'},
    h('h1', {id: 'reviews-title'}, 'Audit reviews'), info, body));
  const data = await api.get(api.PATHS.reviews);
  const s = data.schedule;
  if (!s) {
    replace(body, h('p', {class: 'muted', id: 'no-schedule'},
      'No review schedule yet: `auditstream reviews schedule --tenant T --every week --owner ACTOR`.'));
    return;
  }
  // the period reviewed: the last complete one, or the one in the URL (#/reviews?from=&to=)
  const period = {from: params.get('from') || data.due_from, to: params.get('to') || data.due_to};
  const signoffs = h('ul', {id: 'signoffs'}, data.signoffs.map((x) =>
    h('li', {}, h('strong', {}, x.by), ' · ', timeCell(x.at), ' · ', x.period_from.slice(0, 10), ' – ',
      x.period_to.slice(0, 10), ': ', x.note)));
  const schedule = h('section', {class: 'card', id: 'review-schedule', 'aria-labelledby': 'schedule-title'},
    h('h2', {id: 'schedule-title'}, 'Schedule'),
    facts([
      ['Every', s.every],
      ['Owner', h('span', {id: 'review-owner'}, s.owner)],
      ['Own checks', s.checks.length ? s.checks.join('; ') : 'none'],
      ['Last period', [timeCell(data.due_from), ' – ', timeCell(data.due_to), ' ',
        data.overdue ? badge('overdue', 'high') : null]],
    ]),
    h('h3', {}, 'Sign-offs'), data.signoffs.length ? signoffs : h('p', {class: 'muted'}, 'None yet.'));
  const by = h('input', {id: 'signoff-by', value: s.owner, required: true});
  const note = h('textarea', {id: 'signoff-note', rows: 3, required: true});
  const done = h('div', {id: 'signoff-status'});
  const form = h('form', {class: 'card', id: 'signoff-form', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const out = await api.post(api.PATHS.reviewSignOff, null,
        {by: by.value.trim(), note: note.value, from: period.from, to: period.to});
      status(done, `Signed off: recorded as audit event ${out.event_id}.`, 'info');
    } catch (err) {
      if (!ctx.handleError(err, null)) status(done, err.message || String(err), 'error');
    }
  }},
  h('h2', {}, 'Sign off this period'),
  h('p', {class: 'muted'}, timeCell(period.from), ' – ', timeCell(period.to)),
  h('div', {class: 'field'}, h('label', {for: 'signoff-by'}, 'Owner'), by),
  h('div', {class: 'field'}, h('label', {for: 'signoff-note'}, 'Note'), note),
  h('button', {class: 'btn', type: 'submit', id: 'signoff-button'}, 'Sign off'), done);
  replace(body, schedule, h('p', {class: 'muted', id: 'report-loading'}, 'Computing the report…'), form);
  try {
    const report = await api.get(api.PATHS.reviewReport, period);
    body.replaceChild(reportView(report), document.getElementById('report-loading'));
  } catch (err) {
    if (!ctx.handleError(err, info)) status(info, err.message || String(err), 'error');
  }
}

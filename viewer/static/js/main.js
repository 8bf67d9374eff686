// The viewer's shell: sign-in, the router (hash routes, so a URL can be shared), navigation.
import {ApiError, PATHS, auth, get} from './api.js';
import {h, replace} from './dom.js';
import {renderEvents} from './events.js';
import {renderDetail} from './detail.js';
import {renderTimeline} from './timeline.js';
import {renderActor} from './actor.js';
import {renderDashboard} from './dashboard.js';
import {renderAlerts} from './alerts.js';
import {renderReviews} from './reviews.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
const who = document.getElementById('who');
const ctx = {config: null, me: null, cleanup: null};

const ROUTES = [
  [/^\/events\/([^/]+)$/, (m) => renderDetail(main, ctx, decodeURIComponent(m[1]))],
  [/^\/events$/, (m, params) => renderEvents(main, ctx, params)],
  [/^\/entities\/([^/]+)\/([^/]+)$/, (m) => renderTimeline(main, ctx, decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^\/actors\/([^/]+)$/, (m) => renderActor(main, ctx, decodeURIComponent(m[1]))],
  [/^\/dashboard$/, (m, params) => renderDashboard(main, ctx, params)],
  [/^\/alerts$/, (m, params) => renderAlerts(main, ctx, params)],
  [/^\/reviews$/, (m, params) => renderReviews(main, ctx, params)],
];

function parseHash() {
  const text = location.hash.replace(/^#/, '') || '/events';
  const [path, qs] = text.split('?');
  return {path, params: new URLSearchParams(qs || '')};
}

function signIn(message) {
  top.hidden = true;
  const input = h('input', {id: 'token', name: 'token', type: 'password', autocomplete: 'off',
    required: true, spellcheck: 'false', 'aria-describedby': 'token-hint'});
  const error = h('div', {id: 'signin-error'});
  if (message) error.append(h('p', {class: 'notice notice-error', role: 'alert'}, message));
  const form = h('form', {onsubmit: async (ev) => {
    ev.preventDefault();
    auth.set(input.value);
    await start();
  }},
  h('div', {class: 'field'}, h('label', {for: 'token'}, 'API token'), input,
    h('p', {class: 'hint', id: 'token-hint'},
      'A token from `auditstream tokens create`, or a viewer token from your product. ' +
      'It is kept in this browser tab only and forgotten when the tab closes.')),
  error,
  h('button', {class: 'btn', type: 'submit'}, 'Sign in'));
  replace(main, h('section', {class: 'signin', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title'}, 'Sign in to the audit log'), form));
  input.focus();
}

export function noAccess(permission) {
  top.hidden = false;
  const needed = permission || 'audit_log:read';
  replace(main, h('section', {class: 'no-access', 'aria-labelledby': 'no-access-title', 'data-page': 'no-access'},
    h('h1', {id: 'no-access-title'}, 'You do not have access to the audit log'),
    h('p', {}, 'Your sign-in works, but it does not include the ', h('code', {}, needed),
      ' permission that this page needs.'),
    h('p', {}, 'Ask your admin for access: they can give you a token with ', h('code', {}, needed),
      ' (auditstream tokens create --scope ', needed, ').'),
    h('p', {}, h('button', {class: 'btn btn-quiet', type: 'button', onclick: () => { auth.clear(); signIn(); }},
      'Sign in with another token'))));
  main.focus();
}

/** What every view does with an API failure: sign-in again, the no-access page, or a notice. */
export function handleError(err, where) {
  if (err instanceof ApiError && err.status === 401) {
    auth.clear();
    signIn('That token was not accepted (unknown, expired or revoked). Sign in again.');
    return true;
  }
  if (err instanceof ApiError && err.status === 403 && (!err.missingPermission || err.missingPermission === 'audit_log:read')) {
    noAccess(err.missingPermission);
    return true;
  }
  if (where) replace(where, h('p', {class: 'notice notice-error', role: 'alert'}, err.message || String(err)));
  return false;
}
ctx.handleError = handleError;

function markNav(path) {
  for (const link of document.querySelectorAll('[data-nav]')) {
    const on = path.startsWith(`/${link.dataset.nav}`) || (link.dataset.nav === 'events' && /^\/(entities|actors)/.test(path));
    if (on) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function route() {
  if (!auth.get()) return signIn();
  if (ctx.cleanup) {
    ctx.cleanup();
    ctx.cleanup = null;
  }
  const {path, params} = parseHash();
  top.hidden = false;
  markNav(path);
  for (const [pattern, render] of ROUTES) {
    const m = path.match(pattern);
    if (m) {
      try {
        await render(m, params);
      } catch (err) {
        handleError(err, main);
      }
      return;
    }
  }
  replace(main, h('h1', {}, 'Not found'), h('p', {}, h('a', {href: '#/events'}, 'Back to the audit log')));
}

async function start() {
  if (!ctx.config) {
    ctx.config = await (await fetch(PATHS.config)).json();
  }
  if (!auth.get()) return signIn();
  try {
    ctx.me = await get(PATHS.me);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) ctx.me = null; // an API without /v1/me
    else if (handleError(err, main)) return;
  }
  if (ctx.me) {
    const scopes = ctx.me.scopes || [];
    replace(who, `${ctx.me.tenant} · ${ctx.me.role || ''}`.replace(/ · $/, ''));
    if (!scopes.includes('audit_log:read')) return noAccess('audit_log:read');
  }
  await route();
}

document.getElementById('signout').addEventListener('click', () => {
  auth.clear();
  ctx.me = null;
  replace(who);
  location.hash = '';
  signIn();
});
window.addEventListener('hashchange', () => { route(); });
auth.adoptFromFragment();
start();

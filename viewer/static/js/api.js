// The viewer's only contact with the API: JSON over HTTP. Paths and response shapes live
// here, so a change in the API is a change in this file.

const TOKEN_KEY = 'auditstream.viewer.token';

export const PATHS = {
  config: 'config.json', // relative to /ui/: the viewer's settings, from the server
  me: '/v1/me',
  events: '/v1/events',
  event: (id) => `/v1/events/${encodeURIComponent(id)}`,
  timeline: (type, id) => `/v1/entities/${encodeURIComponent(type)}/${encodeURIComponent(id)}/timeline`,
  counts: '/v1/analytics/counts',
  topActors: '/v1/analytics/top-actors',
  topEntityTypes: '/v1/analytics/top-entity-types',
  trend: '/v1/analytics/trend',
  summary: '/v1/analytics/summary',
  exportStream: '/v1/exports/stream', // small exports, streamed
  exportJobs: '/v1/exports', // POST: a background job
  exportJob: (id) => `/v1/exports/${encodeURIComponent(id)}`,
  alerts: '/v1/alerts',
  alertSummary: '/v1/alerts/summary',
  reviews: '/v1/reviews',
  reviewReport: '/v1/reviews/report',
  reviewSignOff: '/v1/reviews/sign-off', // POST
};

export class ApiError extends Error {
  constructor(status, message, code, missingPermission) {
    super(message);
    this.status = status;
    this.code = code;
    this.missingPermission = missingPermission;
  }
}

export const auth = {
  get() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
  /** A viewer token handed over in the URL fragment (#token=...) by an embedding page:
   * kept for this tab only and removed from the address bar at once. */
  adoptFromFragment() {
    const match = location.hash.match(/(?:^#|[&?])token=([^&]+)/);
    if (!match) return false;
    this.set(decodeURIComponent(match[1]));
    const rest = location.hash.replace(/([&?])token=[^&]+&?/, '$1').replace(/^#token=[^&]+&?/, '#');
    history.replaceState(null, '', location.pathname + location.search + (rest === '#' ? '' : rest));
    return true;
  },
};

/** URLSearchParams from an object: arrays repeat the key, empty values are left out. */
export function query(params) {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== null && item !== undefined && item !== '') out.append(key, String(item));
    }
  }
  return out;
}

function url(path, params) {
  const target = new URL(path, path.startsWith('/') ? location.origin : location.href);
  const qs = query(params);
  if ([...qs].length) target.search = qs.toString();
  return target;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = null;
  let missing = null;
  try {
    const body = await response.json();
    const err = body.error || body;
    if (typeof err.message === 'string') message = err.message;
    else if (typeof body.detail === 'string') message = body.detail;
    code = err.code || null;
    missing = err.missing_permission || null;
  } catch {
    /* not JSON: the status line says it */
  }
  return new ApiError(response.status, message, code, missing);
}

export async function raw(path, params, init = {}) {
  const headers = new Headers(init.headers || {});
  const token = auth.get();
  if (token) headers.set('Authorization', `Bearer ${token}`);
  let response;
  try {
    response = await fetch(url(path, params), {...init, headers});
  } catch (exc) {
    throw new ApiError(0, `The audit-log API cannot be reached (${exc.message}).`, 'unavailable');
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export async function get(path, params) {
  const response = await raw(path, params, {headers: {Accept: 'application/json'}});
  return response.json();
}

export async function post(path, params, body) {
  const response = await raw(path, params, {
    method: 'POST',
    headers: {Accept: 'application/json', 'Content-Type': 'application/json'},
    body: JSON.stringify(body || {}),
  });
  return response.json();
}

// -- shapes ---------------------------------------------------------------------------------
/** One event as the table and timeline use it, from an API EventSummary. */
export function event(e) {
  return {
    id: e.event_id,
    occurredAt: e.occurred_at,
    receivedAt: e.received_at,
    action: e.action,
    outcome: e.outcome,
    actor: {
      id: e.actor?.id ?? '',
      type: e.actor?.type ?? '',
      name: e.actor?.display_name || '',
      email: e.actor?.email || '',
    },
    entity: {type: e.entity?.type ?? '', id: e.entity?.id ?? '', name: e.entity?.name || ''},
    ip: e.ip || '',
    changes: e.changes || [],
    parentId: e.parent_event_id || null,
    correlationId: e.correlation_id || '',
    place: [e.location?.city, e.location?.country].filter(Boolean).join(', '),
  };
}

export async function events(filters, cursor) {
  const page = await get(PATHS.events, {...filters, cursor});
  return {rows: (page.data || []).map(event), next: page.next_cursor || null,
    from: page.range_from, to: page.range_to};
}

export async function eventDetail(id) {
  return get(PATHS.event(id));
}

export async function timeline(type, id, cursor) {
  const page = await get(PATHS.timeline(type, id), {cursor});
  return {
    entity: page.entity,
    rows: (page.data || []).map((entry) => ({...event(entry.event || entry), cascade: !!entry.cascade})),
    next: page.next_cursor || null,
  };
}

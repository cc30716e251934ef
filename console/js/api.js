// The fetch wrapper every page uses: the token from sessionStorage as the bearer, JSON in
// and out, errors as ApiError {status, code, message, field, body}, and any 401 ends the
// session (the tab goes back to sign-in).

const KEY = 'pbx-portal.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  set: (token) => sessionStorage.setItem(KEY, token),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message, field, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.body = body;
  }
}

let onUnauthorized = () => {};

/** Called once by the router: what a 401 does. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * api('/users?limit=50', {method, body, headers, signal, raw, token})
 * body: an object is sent as JSON; a string or Blob as it is (set Content-Type yourself).
 * raw: the Response itself (streams, downloads). token: use this token instead of the
 * session's, and let a 401 through as an error (sign-in checks a token this way).
 */
export async function api(path, options = {}) {
  const { method = 'GET', body, signal, raw = false, token } = options;
  const headers = { Accept: 'application/json', ...(options.headers || {}) };
  const bearer = token ?? session.token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload = body;
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Blob)) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  if (resp.status === 401 && token === undefined) {
    onUnauthorized();
    throw new ApiError(401, 'unauthorized', 'You were signed out.');
  }
  if (!resp.ok) {
    let parsed = null;
    try {
      parsed = await resp.json();
    } catch {
      parsed = null;
    }
    const err = (parsed && parsed.error) || {};
    const message =
      (typeof err.message === 'string' && err.message) ||
      `The server answered ${resp.status} ${resp.statusText}.`;
    throw new ApiError(resp.status, err.code || `http_${resp.status}`, message, err.field, parsed);
  }
  if (raw) return resp;
  if (resp.status === 204) return null;
  const type = resp.headers.get('Content-Type') || '';
  return type.includes('json') ? resp.json() : resp.text();
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The message of an error for an alert: the API's message, with its field. */
export function describe(e) {
  if (e instanceof ApiError) {
    return e.field && !e.message.includes(e.field) ? `${e.field}: ${e.message}` : e.message;
  }
  return e && e.message ? e.message : String(e);
}

let documentPromise = null;
/** The served OpenAPI document (public): this instance's transports and extension range. */
export function rules() {
  if (!documentPromise) {
    documentPromise = fetch('/openapi.json', { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : null))
      .then((doc) => {
        const t = doc?.components?.schemas?.NewUser?.properties || {};
        return {
          transports: Array.isArray(t.transport?.enum) ? t.transport.enum : [],
          min: t.extension?.minimum,
          max: t.extension?.maximum,
        };
      })
      .catch(() => ({ transports: [], min: undefined, max: undefined }));
  }
  return documentPromise;
}

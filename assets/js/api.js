// The admin API client. The session cookie travels by itself (HttpOnly, SameSite=Strict);
// the CSRF token that pairs with it is kept in memory and sent as X-CSRF-Token on every call.

let csrf = null;
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || 'http_error';
    this.requestId = body?.request_id;
  }
}

export function whenSignedOut(callback) {
  onSignedOut = callback;
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (csrf) headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const error = new ApiError(res.status, data);
    if (res.status === 401 && csrf) {
      csrf = null;
      onSignedOut(error);
    }
    throw error;
  }
  return data;
}

/** Picks up the session of a reloaded page; false when there is none. */
export async function resume() {
  try {
    const session = await api('GET', '/v1/admin/session');
    csrf = session.csrf_token;
    return true;
  } catch (e) {
    if (e.status === 401) return false;
    throw e;
  }
}

export async function signIn(token) {
  const session = await api('POST', '/v1/admin/session', { token });
  csrf = session.csrf_token;
}

export async function signOut() {
  try {
    await api('DELETE', '/v1/admin/session');
  } finally {
    csrf = null;
  }
}

/** Path segment, escaped. */
export const seg = (s) => encodeURIComponent(s);

// fetch wrapper: bearer token, 401 ends the session, {"error"} becomes the message.
// The token lives in sessionStorage (this tab only), or in localStorage when "Keep me signed in on
// this device" was chosen at login (a wall display; shared by the tabs of this browser). Never in a URL.
import { t } from './i18n.js';

const KEY = 'rzmon.token';
const ROLE = 'rzmon.role';
let unauthorized = () => {};
let forbidden = () => {};
let settingsOnce = null;

const kept = () => localStorage.getItem(KEY) !== null;
const where = () => (kept() ? localStorage : sessionStorage);
export const getToken = () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
/** `remember` picks the storage (at login); without it the token stays where the session is. */
export function setToken(tok, { remember } = {}) {
  if (remember !== undefined) {
    for (const s of [localStorage, sessionStorage]) { s.removeItem(KEY); s.removeItem(ROLE); }
  }
  const s = remember === undefined ? where() : (remember ? localStorage : sessionStorage);
  s.setItem(KEY, tok);
}
export const clearToken = () => {
  for (const s of [localStorage, sessionStorage]) { s.removeItem(KEY); s.removeItem(ROLE); }
  settingsOnce = null;
};
/** The signed-in user's role as the server said at login or in /user/profile ('admin' | 'viewer'). */
export const getRole = () => where().getItem(ROLE) || 'viewer';
export const setRole = (role) => where().setItem(ROLE, role);
export const isAdmin = () => getRole() === 'admin';
export function onUnauthorized(fn) { unauthorized = fn; }
/** `fn` runs on every 403: the role may have changed meanwhile (another admin demoted us). */
export function onForbidden(fn) { forbidden = fn; }

export class ApiError extends Error {
  constructor(message, status, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** api('/data', {query: {device}}) or api('/setConfig', {method: 'POST', query, body}). */
let renewing = 0;

/**
 * Runs `f`, a request whose answer carries this session's next token (a password change ends
 * every session and answers with a new one). Meanwhile a 401 for the old token (the live
 * socket closed 1008 and re-checked it) must not sign this tab out.
 */
export async function renewingToken(f) {
  renewing += 1;
  try { return await f(); } finally { renewing -= 1; }
}

/** A 401 for `token` ends the session, unless the token was renewed meanwhile or is being renewed. */
function sessionRefused(token) {
  if (renewing > 0 || getToken() !== token) return;
  clearToken();
  unauthorized(t('err.session'));
}

export async function api(path, { method = 'GET', query, body, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token && path !== '/login') headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(t('err.network'), 0);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const msg = (data && typeof data.error === 'string' && data.error) || t('err.status', { status: res.status });
    if (res.status === 401 && path !== '/login') sessionRefused(token);
    if (res.status === 403) forbidden();
    throw new ApiError(msg, res.status, res.headers.get('Retry-After'));
  }
  return data;
}

/**
 * Downloads a file answer (CSV, backup) with the Bearer token in the header — never in the URL:
 * fetch + blob + a temporary object URL. Errors are thrown like api()'s.
 */
export async function download(path, { query, filename } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = {};
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(url, { headers, cache: 'no-store' });
  } catch {
    throw new ApiError(t('err.network'), 0);
  }
  if (!res.ok) {
    let msg = t('err.status', { status: res.status });
    try { const d = await res.json(); if (typeof d.error === 'string') msg = d.error; } catch { /* not JSON */ }
    if (res.status === 401) sessionRefused(token);
    if (res.status === 403) forbidden();
    throw new ApiError(msg, res.status);
  }
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = filename || path.split('/').pop();
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60000);
  return blob.size;
}

/** The server's settings and rules (GET /settings), fetched once per session: the dashboard
 * hard-codes none of them (MQTT port and prefix, enrolment time, password minimum, id rules). */
export function settings() {
  settingsOnce ||= api('/settings').catch((e) => { settingsOnce = null; throw e; });
  return settingsOnce;
}

/**
 * The dashboard's one stale-answer guard. A view keeps one `latest()` per thing it shows;
 * `slot.run((signal) => api(path, { signal }))` starts a round and aborts the previous round's
 * reads. The round's result arrives only while it is the newest: an older round rejects with an
 * AbortError (`isStale(e)`), which the view ignores. `slot.cancel()` drops the pending round, e.g.
 * when the user picks another device. Writes (POST) leave out `signal` so they are never
 * cancelled half-way on the server; their stale answer is still dropped.
 */
export function latest() {
  let ctrl = null;
  return {
    async run(load) {
      if (ctrl) ctrl.abort();
      const mine = new AbortController();
      ctrl = mine;
      const result = await load(mine.signal);
      if (mine.signal.aborted) throw new DOMException('a newer request replaced this one', 'AbortError');
      return result;
    },
    cancel() { if (ctrl) ctrl.abort(); ctrl = null; },
  };
}

/** Whether `e` is the rejection of a replaced (stale) round. */
export const isStale = (e) => Boolean(e) && e.name === 'AbortError';

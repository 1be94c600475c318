// Entry: login, hash router, connection state, language switch.
import { api, getToken, setToken, clearToken, onUnauthorized, onForbidden, ApiError, getRole, setRole, isAdmin } from './js/api.js';
import { t, translateDom, setLang, getLang, onLangChange, fmtDuration } from './js/i18n.js';
import { live } from './js/ws.js';
import { clear, setMsg, h } from './js/dom.js';
import overview from './js/overview.js';
import history from './js/history.js';
import incidents from './js/incidents.js';
import alerts, { startBadge } from './js/alerts.js';
import access from './js/access.js';
import timeline from './js/timeline.js';
import devices from './js/devices.js';
import account from './js/account.js';
import users from './js/users.js';

const routes = { overview, history, alerts, incidents, access, timeline, devices, users, account };
/** Pages only admins see (viewers are sent to the overview). */
const ADMIN_ONLY = new Set(['users']);
const $ = (id) => document.getElementById(id);
let cleanup = null;
let currentRoute = null;
let currentHash = null;
let stopBadge = null;

function showLogin(message = '') {
  live.stop();
  if (stopBadge) { stopBadge(); stopBadge = null; }
  if (cleanup) { cleanup(); cleanup = null; }
  currentRoute = null;
  $('topbar').hidden = true;
  $('main').hidden = true;
  clear($('main'));
  $('login-view').hidden = false;
  setMsg($('login-error'), message, 'error');
  $('login-password').value = '';
  $('login-user').focus();
}

// Ends the token on the server (POST /logout, or /logout/all for "sign out everywhere"), then
// locally; the local sign-out does not wait for the answer.
export function logout({ everywhere = false } = {}) {
  if (getToken()) api(everywhere ? '/logout/all' : '/logout', { method: 'POST' }).catch(() => {});
  clearToken();
  if (location.hash !== '#/login') history_replace('#/login');
  showLogin();
}

function history_replace(hash) { window.history.replaceState(null, '', hash); }

// A viewer sees no control that changes something: everything marked data-admin is hidden by
// the `viewer` class (css). The role comes from the login answer and is re-read from
// /user/profile whenever the app starts and after every 403 (another admin demoted this user:
// the admin controls go at once, without a reload; the page is drawn again for the new role).
function applyRole(role) {
  document.body.classList.toggle('viewer', role !== 'admin');
}

function refreshRole() {
  api('/user/profile').then((p) => {
    if (!p || p.role === getRole()) return;
    const demoted = p.role !== 'admin';
    setRole(p.role);
    applyRole(p.role);
    rerender();
    // Drawn again without the controls: say why they went.
    if (demoted) $('main').prepend(h('p', { class: 'msg error', id: 'role-changed', role: 'alert' }, t('err.demoted')));
  }).catch(() => {});
}

function showApp() {
  applyRole(getRole());
  $('login-view').hidden = true;
  $('topbar').hidden = false;
  $('main').hidden = false;
  if (live.stopped) live.start();
  if (!stopBadge) stopBadge = startBadge(live, $('alert-badge'));
  route();
}

function route() {
  if (!getToken()) { showLogin(); return; }
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  const r = routes[name] && (isAdmin() || !ADMIN_ONLY.has(name)) ? name : 'overview';
  if (r !== name) history_replace('#/overview');
  if (r === currentRoute && location.hash === currentHash) return;
  currentHash = location.hash;
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  currentRoute = r;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.id === `nav-${r}`) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  closeMenu();
  const main = clear($('main'));
  main.dataset.view = r;
  cleanup = routes[r](main, { live, logout }) || null;
  document.title = `${t(`nav.${r}`)} · rzmon`;
}

function rerender() {
  const r = currentRoute;
  currentRoute = null;
  if (r && getToken()) route();
}

function closeMenu() {
  $('nav').classList.remove('open');
  $('menu-toggle').setAttribute('aria-expanded', 'false');
}

let lockTimer = null;
function lockoutCountdown(until) {
  clearInterval(lockTimer);
  const tick = () => {
    const left = (until - Date.now()) / 1000;
    if (left <= 0) { clearInterval(lockTimer); setMsg($('login-error'), ''); return; }
    setMsg($('login-error'), t('login.locked', { time: fmtDuration(left) }), 'error');
  };
  tick();
  lockTimer = setInterval(tick, 1000);
}

async function doLogin(ev) {
  clearInterval(lockTimer);
  ev.preventDefault();
  const err = $('login-error');
  const username = $('login-user').value.trim();
  const password = $('login-password').value;
  if (!username || !password) { setMsg(err, `${t('login.user')} / ${t('login.password')}?`, 'error'); return; }
  $('login-submit').disabled = true;
  setMsg(err, t('login.busy'), 'info');
  try {
    const remember = $('login-remember').checked;
    const res = await api('/login', { method: 'POST', body: { username, password, remember } });
    setToken(res.access_token, { remember });
    setRole(res.role);
    setMsg(err, '');
    $('login-password').value = '';
    if (!routes[(location.hash.match(/^#\/(\w+)/) || [])[1]]) history_replace('#/overview');
    showApp();
  } catch (e) {
    let msg = e.message;
    if (e instanceof ApiError && e.status === 401) msg = t('login.wrong');
    else if (e instanceof ApiError && e.status === 429) {
      const secs = parseInt(e.retryAfter, 10);
      lockoutCountdown(Date.now() + (Number.isFinite(secs) ? secs : 300) * 1000);
      return;
    }
    setMsg(err, msg, 'error');
    $('login-password').focus();
  } finally {
    $('login-submit').disabled = false;
  }
}

function connState(state, sock) {
  const el = $('conn-state');
  el.dataset.state = state;
  clearInterval(connState.timer);
  if (state === 'retrying') {
    // The seconds tick visibly but are hidden from screen readers, so the status is announced once.
    const secs = document.createElement('span');
    secs.setAttribute('aria-hidden', 'true');
    el.textContent = `${t('conn.offline')} `;
    el.append(secs);
    const tick = () => { secs.textContent = t('conn.in', { s: Math.max(0, Math.ceil((sock.retryAt - Date.now()) / 1000)) }); };
    tick();
    connState.timer = setInterval(tick, 1000);
  } else {
    el.textContent = t({ live: 'conn.live', connecting: 'conn.connecting', off: 'conn.off' }[state] || 'conn.off');
  }
}

function init() {
  translateDom();
  for (const id of ['lang-select', 'login-lang']) {
    const sel = $(id);
    sel.value = getLang();
    sel.addEventListener('change', () => setLang(sel.value));
  }
  onLangChange((l) => {
    $('lang-select').value = l;
    $('login-lang').value = l;
    connState(live.state, live);
    rerender();
  });
  onUnauthorized((msg) => showLogin(msg));
  onForbidden(refreshRole);
  live.onState(connState);
  live.on('closed', (ev) => {
    // 1008 after auth means the token expired or was refused: check it once (a 401 logs out).
    if (ev.code === 1008 && getToken()) api('/user/profile').catch(() => {});
  });
  $('login-form').addEventListener('submit', doLogin);
  $('menu-toggle').addEventListener('click', () => {
    const open = $('nav').classList.toggle('open');
    $('menu-toggle').setAttribute('aria-expanded', String(open));
  });
  window.addEventListener('hashchange', () => {
    if (location.hash === '#/login' && getToken()) { logout(); return; }
    if (getToken()) { route(); $('main').focus({ preventScroll: true }); } else showLogin();
  });
  if (getToken()) { showApp(); refreshRole(); } else showLogin();
}

init();

// Overview: one tile per device, updated live from the WebSocket, and a panel of active alerts
// and recent incidents. A tile is "live" (online, colours from its limits), "stale" (offline:
// its last values greyed with "last seen"), "never" (never connected) or "lost" (our own
// WebSocket is down, so nothing shown is current).
import { api, latest, isStale } from './api.js';
import { t, fmtNumber, fmtRelative, fmtDate } from './i18n.js';
import { h, clear, setMsg } from './dom.js';
import { loadLevels, levelsFor, tmpLevel, lfLevel } from './levels.js';
import { incidentLabel } from './incidents.js';

const PANEL_INCIDENTS = 8;
const PANEL_DAYS = 7;

export default function overview(main, { live }) {
  const status = h('p', { class: 'msg', role: 'status' }, t('loading'));
  const lostNote = h('p', { class: 'msg warn', id: 'ov-lost', role: 'status', hidden: true }, t('ov.lostnote'));
  const grid = h('div', { class: 'tiles', id: 'tiles' });
  const alertList = h('ul', { class: 'panel-list', id: 'ov-alerts' });
  const incList = h('ul', { class: 'panel-list', id: 'ov-incidents' });
  const panel = h('section', { class: 'card', id: 'ov-panel', 'aria-label': t('ov.panel') },
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, t('ov.activeal')), alertList),
      h('div', {}, h('h2', {}, t('ov.recent')), incList)));
  main.append(h('h1', {}, t('ov.title')), status, lostNote, grid, h('h2', { class: 'sr-only' }, t('ov.panel')), panel);
  const tiles = new Map();
  const info = new Map(); // device → {online, limits, everSeen}
  let names = new Map(); // access id → person
  let refreshing = null;

  function field(tile, name) { return tile.querySelector(`[data-field="${name}"]`); }
  const lv = (tile) => levelsFor(tile.dataset.device, (info.get(tile.dataset.device) || {}).limits);

  /** Live colours only while the device is live and our connection is up. */
  function paint(tile) {
    const d = info.get(tile.dataset.device) || {};
    const state = live.state === 'retrying' ? 'lost' : !d.everSeen ? 'never' : d.online ? 'live' : 'stale';
    tile.dataset.state = state;
    const levels = lv(tile);
    for (const [name, level] of [['tmp', (v) => tmpLevel(v, levels)], ['lf', (v) => lfLevel(v, levels)], ['locked', (v) => (v === 'true' ? 'ok' : 'warn')]]) {
      const el = field(tile, name);
      if (el.dataset.value === undefined) continue;
      el.dataset.level = state === 'live' ? level(name === 'locked' ? el.dataset.value : Number(el.dataset.value)) : 'stale';
    }
    const badge = field(tile, 'online');
    badge.textContent = { live: t('ov.online'), stale: t('ov.stale'), never: t('ov.never'), lost: t('ov.lost') }[state];
    badge.dataset.value = String(state === 'live');
    badge.dataset.level = state === 'live' ? 'ok' : 'stale';
    tile.classList.toggle('offline', state !== 'live');
    setSeen(tile);
  }

  function setValue(tile, name, v, text) {
    if (v === undefined || v === null) return;
    const el = field(tile, name);
    el.textContent = text;
    el.dataset.value = String(v);
  }
  function setValues(tile, data) {
    if (typeof data.tmp === 'number') setValue(tile, 'tmp', data.tmp, `${fmtNumber(data.tmp)} °C`);
    if (typeof data.lf === 'number') setValue(tile, 'lf', data.lf, `${fmtNumber(data.lf)} %`);
    if (typeof data.locked === 'boolean') setValue(tile, 'locked', data.locked, data.locked ? t('ov.locked') : t('ov.unlocked'));
  }
  function setSeen(tile, iso) {
    if (iso && (!tile.dataset.lastSeen || iso > tile.dataset.lastSeen)) tile.dataset.lastSeen = iso;
    const el = field(tile, 'last_seen');
    const seen = tile.dataset.lastSeen;
    el.textContent = seen ? t('ov.lastseen', { when: fmtRelative(seen) }) : t('ov.never');
    el.title = seen ? fmtDate(seen) : '';
  }
  function setSync(tile, inSync) {
    const el = field(tile, 'sync');
    el.textContent = inSync ? t('ov.sync') : t('ov.nosync');
    el.dataset.value = String(inSync);
    el.dataset.level = inSync ? 'ok' : 'warn';
  }
  function note(tile, text, level) {
    const el = field(tile, 'event');
    el.textContent = text;
    el.dataset.level = level;
  }

  function makeTile(d) {
    return h('article', { class: 'tile card', dataset: { device: d.id }, 'aria-label': d.id },
      h('header', {}, h('h2', {}, d.id), h('span', { class: 'badge', dataset: { field: 'online' } })),
      h('dl', {},
        h('div', {}, h('dt', {}, t('ov.tmp')), h('dd', { class: 'big', dataset: { field: 'tmp' } }, '–')),
        h('div', {}, h('dt', {}, t('ov.lf')), h('dd', { class: 'big', dataset: { field: 'lf' } }, '–')),
        h('div', {}, h('dt', {}, t('ov.door')), h('dd', { dataset: { field: 'locked' } }, '–'))),
      h('p', { class: 'meta' }, h('span', { dataset: { field: 'last_seen' } })),
      h('p', { class: 'meta' }, h('span', { class: 'pill', dataset: { field: 'sync' } })),
      h('p', { class: 'meta' }, h('a', { href: `#/history?device=${encodeURIComponent(d.id)}`, dataset: { link: 'history' } }, t('ov.history'))),
      h('p', { class: 'event', dataset: { field: 'event' }, 'aria-live': 'polite' }));
  }

  const slot = latest(); // live events, the poll and "ready" all reload: the newest answer wins
  async function load() {
    try {
      const [res, ids] = await slot.run((signal) => Promise.all([
        api('/devices', { signal }),
        api('/accessIDs', { signal }).catch((e) => { if (isStale(e)) throw e; return null; }),
        loadLevels()]));
      if (ids) names = new Map(ids.access_ids.filter((r) => r.name).map((r) => [r.access_id, r.name]));
      setMsg(status, res.devices.length ? '' : t('ov.empty'));
      for (const d of res.devices) {
        let tile = tiles.get(d.id);
        if (!tile) {
          tile = makeTile(d);
          tiles.set(d.id, tile);
          grid.append(tile);
        }
        const tel = d.last_telemetry || {};
        if (!tile.dataset.live) setValues(tile, tel);
        const seen = [d.last_seen, tel.timestamp].filter(Boolean).sort().pop();
        info.set(d.id, { online: d.online, limits: d.limits || {}, everSeen: Boolean(seen) });
        setSeen(tile, seen);
        setSync(tile, d.access_in_sync);
        paint(tile);
      }
    } catch (e) {
      if (!isStale(e)) setMsg(status, e.message, 'error');
    }
  }

  // --- the panel: active alerts and recent incidents, from the API, then live
  const alerts = new Map(); // id → alert
  function alertItem(a) {
    return h('li', { dataset: { alert: a.id, severity: a.severity, state: a.state } },
      h('span', { class: 'badge', dataset: { level: a.severity === 'critical' ? 'alarm' : 'warn' } }, t(`al.sev.${a.severity}`)),
      h('span', {}, a.summary), h('time', { datetime: a.started }, fmtDate(a.started)));
  }
  function renderAlerts() {
    clear(alertList);
    const list = [...alerts.values()].sort((a, b) => (b.started > a.started ? 1 : -1));
    list.forEach((a) => alertList.append(alertItem(a)));
    if (!list.length) alertList.append(h('li', { class: 'meta' }, t('ov.noalerts')));
  }
  function incidentItem(r) {
    return h('li', { dataset: { device: r.device, type: r.type } },
      h('time', { datetime: r.timestamp }, fmtDate(r.timestamp)), h('strong', {}, r.device), h('span', {}, incidentLabel(r.type)));
  }
  function addIncident(r) {
    const empty = incList.querySelector('li.meta');
    if (empty) empty.remove();
    incList.prepend(incidentItem(r));
    while (incList.children.length > PANEL_INCIDENTS) incList.lastChild.remove();
  }
  const panelSlot = latest();
  async function loadPanel() {
    try {
      const since = Math.floor(Date.now() / 1000) - PANEL_DAYS * 86400;
      const [al, inc] = await panelSlot.run((signal) => Promise.all([
        api('/alerts', { query: { state: 'active', limit: 50 }, signal }),
        api('/incidents', { query: { start_date: since, limit: PANEL_INCIDENTS }, signal })]));
      alerts.clear();
      al.alerts.forEach((a) => alerts.set(a.id, a));
      renderAlerts();
      clear(incList);
      inc.incidents.slice().reverse().forEach(addIncident);
      if (!inc.incidents.length) incList.append(h('li', { class: 'meta' }, t('ov.noinc')));
    } catch (e) {
      if (!isStale(e)) { clear(incList); incList.append(h('li', { class: 'msg error' }, e.message)); }
    }
  }

  function refreshSoon() {
    if (refreshing) return;
    refreshing = setTimeout(() => { refreshing = null; load(); }, 500);
  }

  function tileFor(msg) {
    const tile = tiles.get(msg.device);
    if (!tile) refreshSoon();
    return tile;
  }

  const offs = [
    live.on('telemetry', (m) => {
      const tile = tileFor(m); if (!tile) return;
      tile.dataset.live = '1';
      setValues(tile, m.data);
      setSeen(tile, m.timestamp);
      const d = info.get(m.device);
      if (d) { d.everSeen = true; d.online = true; }
      paint(tile);
    }),
    live.on('device', (m) => {
      const tile = tileFor(m); if (!tile) return;
      const d = info.get(m.device);
      if (d) { d.online = m.data.status === 'online'; d.everSeen = true; }
      setSeen(tile, m.timestamp);
      paint(tile);
      refreshSoon(); // sync state may change when a device comes back
    }),
    live.on('incident', (m) => {
      addIncident({ timestamp: m.timestamp, device: m.device, type: m.data.type });
      const tile = tileFor(m); if (!tile) return;
      note(tile, `${incidentLabel(m.data.type)} · ${fmtDate(m.timestamp)}`, 'alarm');
      setSeen(tile, m.timestamp);
    }),
    live.on('access', (m) => {
      const tile = tileFor(m); if (!tile) return;
      const who = names.get(m.data.access_id) || m.data.access_id;
      note(tile, `${t('ov.accessev', { who, result: m.data.granted ? t('ov.granted') : t('ov.denied') })} · ${fmtDate(m.timestamp)}`,
        m.data.granted ? 'ok' : 'warn');
      setSeen(tile, m.timestamp);
    }),
    live.on('alert', (m) => {
      const a = m.data;
      if (!a || a.id === undefined) return;
      if (a.state === 'resolved') alerts.delete(a.id); else alerts.set(a.id, a);
      renderAlerts();
    }),
    live.on('ready', () => { load(); loadPanel(); }),
    live.on('rules', () => load()),
    live.onState(() => {
      lostNote.hidden = live.state !== 'retrying';
      tiles.forEach(paint);
    }),
  ];
  const clock = setInterval(() => tiles.forEach((tile) => setSeen(tile)), 10000);
  const poll = setInterval(load, 60000);
  load();
  loadPanel();
  return () => { offs.forEach((f) => f()); clearInterval(clock); clearInterval(poll); clearTimeout(refreshing); slot.cancel(); panelSlot.cancel(); };
}

// Overview: one tile per device, updated live from the WebSocket.
import { api, latest, isStale } from './api.js';
import { t, fmtNumber, fmtRelative, fmtDate } from './i18n.js';
import { h, setMsg } from './dom.js';
import { loadLevels, tmpLevel, lfLevel } from './levels.js';

export default function overview(main, { live }) {
  const status = h('p', { class: 'msg', role: 'status' }, t('loading'));
  const grid = h('div', { class: 'tiles', id: 'tiles' });
  main.append(h('h1', {}, t('ov.title')), status, grid);
  const tiles = new Map();
  let refreshing = null;

  function field(tile, name) { return tile.querySelector(`[data-field="${name}"]`); }

  function setTmp(tile, v) {
    const el = field(tile, 'tmp');
    if (typeof v !== 'number') return;
    el.textContent = `${fmtNumber(v)} °C`;
    el.dataset.value = v;
    el.dataset.level = tmpLevel(v);
  }
  function setLf(tile, v) {
    const el = field(tile, 'lf');
    if (typeof v !== 'number') return;
    el.textContent = `${fmtNumber(v)} %`;
    el.dataset.value = v;
    el.dataset.level = lfLevel(v);
  }
  function setLocked(tile, v) {
    const el = field(tile, 'locked');
    if (typeof v !== 'boolean') return;
    el.textContent = v ? t('ov.locked') : t('ov.unlocked');
    el.dataset.value = String(v);
    el.dataset.level = v ? 'ok' : 'warn';
  }
  function setOnline(tile, online) {
    const el = field(tile, 'online');
    el.textContent = online ? t('ov.online') : t('ov.offline');
    el.dataset.value = String(online);
    el.dataset.level = online ? 'ok' : 'alarm';
    tile.classList.toggle('offline', !online);
  }
  function setSeen(tile, iso) {
    if (iso) tile.dataset.lastSeen = iso;
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
    const tile = h('article', { class: 'tile card', dataset: { device: d.id }, 'aria-label': d.id },
      h('header', {}, h('h2', {}, d.id), h('span', { class: 'badge', dataset: { field: 'online' } })),
      h('dl', {},
        h('div', {}, h('dt', {}, t('ov.tmp')), h('dd', { class: 'big', dataset: { field: 'tmp' } }, '–')),
        h('div', {}, h('dt', {}, t('ov.lf')), h('dd', { class: 'big', dataset: { field: 'lf' } }, '–')),
        h('div', {}, h('dt', {}, t('ov.door')), h('dd', { dataset: { field: 'locked' } }, '–'))),
      h('p', { class: 'meta' }, h('span', { dataset: { field: 'last_seen' } })),
      h('p', { class: 'meta' }, h('span', { class: 'pill', dataset: { field: 'sync' } })),
      h('p', { class: 'meta' }, h('a', { href: `#/history?device=${encodeURIComponent(d.id)}`, dataset: { link: 'history' } }, t('ov.history'))),
      h('p', { class: 'event', dataset: { field: 'event' }, 'aria-live': 'polite' }));
    return tile;
  }

  const slot = latest(); // live events, the poll and "ready" all reload: the newest answer wins
  async function load() {
    try {
      const [res] = await slot.run((signal) => Promise.all([api('/devices', { signal }), loadLevels()]));
      setMsg(status, res.devices.length ? '' : t('ov.empty'));
      for (const d of res.devices) {
        let tile = tiles.get(d.id);
        if (!tile) {
          tile = makeTile(d);
          tiles.set(d.id, tile);
          grid.append(tile);
        }
        const tel = d.last_telemetry || {};
        if (!tile.dataset.live) {
          setTmp(tile, tel.tmp); setLf(tile, tel.lf); setLocked(tile, tel.locked);
        }
        setOnline(tile, d.online);
        const seen = [d.last_seen, tel.timestamp].filter(Boolean).sort().pop();
        setSeen(tile, seen);
        setSync(tile, d.access_in_sync);
      }
    } catch (e) {
      if (!isStale(e)) setMsg(status, e.message, 'error');
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
      setTmp(tile, m.data.tmp); setLf(tile, m.data.lf); setLocked(tile, m.data.locked);
      setSeen(tile, m.timestamp);
      if (tile.classList.contains('offline')) setOnline(tile, true);
    }),
    live.on('device', (m) => {
      const tile = tileFor(m); if (!tile) return;
      setOnline(tile, m.data.status === 'online');
      setSeen(tile, m.timestamp);
      refreshSoon(); // sync state may change when a device comes back
    }),
    live.on('incident', (m) => {
      const tile = tileFor(m); if (!tile) return;
      note(tile, `${t('ov.incident', { type: m.data.type })} · ${fmtDate(m.timestamp)}`, 'alarm');
      setSeen(tile, m.timestamp);
    }),
    live.on('access', (m) => {
      const tile = tileFor(m); if (!tile) return;
      note(tile, `${t('ov.accessev', { who: m.data.access_id, result: m.data.granted ? t('ov.granted') : t('ov.denied') })} · ${fmtDate(m.timestamp)}`,
        m.data.granted ? 'ok' : 'warn');
      setSeen(tile, m.timestamp);
    }),
    live.on('ready', () => load()),
    live.on('rules', () => load()),
  ];
  const clock = setInterval(() => tiles.forEach((tile) => setSeen(tile)), 10000);
  const poll = setInterval(load, 60000);
  load();
  return () => { offs.forEach((f) => f()); clearInterval(clock); clearInterval(poll); clearTimeout(refreshing); slot.cancel(); };
}

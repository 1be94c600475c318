// Incidents: filterable table, newest first, paged by time cursor; live incidents prepended.
import { api, download, latest, isStale } from './api.js';
import { t, fmtDate } from './i18n.js';
import { h, clear, setMsg, responsiveTable, deviceOptions, recentLive } from './dom.js';
import { dateInput, timelineHref } from './dates.js';

const KNOWN = ['unauthorized_access', 'door_forced', 'forced_entry', 'tamper', 'intrusion', 'door_open_too_long', 'temperature_high'];

/** A human, translated name for an incident type; unknown types stay as they are. */
export function incidentLabel(type) {
  if (KNOWN.includes(type)) return t(`inc.t.${type}`);
  if (typeof type === 'string' && type.startsWith('alert:')) return t('inc.t.alert', { name: type.slice(6).replace(/[-_]/g, ' ') });
  return type;
}

/** The label with the raw type under it (as detail) when they differ. */
function typeCell(type) {
  const label = incidentLabel(type);
  return h('td', {}, label, label !== type ? h('div', { class: 'raw' }, `${t('inc.raw')}: `, h('code', {}, type)) : null);
}

function details(data) {
  const rest = { ...data };
  delete rest.type; delete rest.seq;
  if (typeof rest.message === 'string' && Object.keys(rest).length === 1) return rest.message;
  return Object.keys(rest).length ? JSON.stringify(rest) : '';
}

export function incidentRow(r, isNew = false) {
  return h('tr', { class: isNew ? 'new' : '', dataset: { device: r.device, type: r.type, timestamp: r.timestamp } },
    h('td', { class: 'num' }, h('time', { datetime: r.timestamp }, fmtDate(r.timestamp))),
    typeCell(r.type), h('td', {}, h('a', { href: `#/history?device=${encodeURIComponent(r.device)}` }, r.device)),
    h('td', {}, details(r.data || {}), ' ', h('a', { href: timelineHref(r.timestamp, r.device), class: 'meta' }, t('acc.timeline'))));
}

export default function incidentsView(main, { live }) {
  const type = h('input', { id: 'inc-type', list: 'inc-types', autocomplete: 'off' });
  const types = h('datalist', { id: 'inc-types' });
  const device = h('select', { id: 'inc-device' });
  const from = dateInput('inc-from', t('inc.from'));
  const to = dateInput('inc-to', t('inc.to'));
  const limit = h('select', { id: 'inc-limit' }, ...[25, 50, 100, 500].map((n) => h('option', { value: n, selected: n === 50 }, n)));
  const form = h('form', { class: 'toolbar', id: 'inc-filters' },
    h('div', {}, h('label', { for: 'inc-type' }, t('inc.type')), type, types),
    h('div', {}, h('label', { for: 'inc-device' }, t('inc.device')), device),
    h('div', {}, h('label', { for: 'inc-from' }, t('inc.from')), from),
    h('div', {}, h('label', { for: 'inc-to' }, t('inc.to')), to),
    h('div', {}, h('label', { for: 'inc-limit' }, t('inc.limit')), limit),
    h('button', { type: 'submit', class: 'primary', id: 'inc-apply' }, t('inc.apply')),
    h('button', { type: 'button', id: 'inc-csv', onclick: () => csv() }, t('csv.download')));
  const status = h('p', { class: 'msg', role: 'status', id: 'inc-status' });
  const tbody = h('tbody');
  const table = h('table', { id: 'incidents-table' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('inc.time')), h('th', { scope: 'col' }, t('inc.type')),
      h('th', { scope: 'col' }, t('inc.device')), h('th', { scope: 'col' }, t('inc.details')))), tbody);
  const newer = h('button', { type: 'button', id: 'inc-newer', disabled: true }, t('inc.newer'));
  const older = h('button', { type: 'button', id: 'inc-older', disabled: true }, t('inc.older'));
  responsiveTable(table);
  main.append(h('h1', {}, t('inc.title')), form, status, h('div', { class: 'table-wrap card' }, table), h('div', { class: 'pager' }, newer, older));

  const cursors = []; // end_date of each page before the current one
  let cursor = undefined; // end_date of the current page (undefined = now)
  let oldest = null;
  let applied = null; // the filters (JSON) the table shows
  const seenTypes = new Set();

  function addTypes(list) {
    for (const r of list) if (!seenTypes.has(r.type)) { seenTypes.add(r.type); types.append(h('option', { value: r.type, label: incidentLabel(r.type) })); }
  }

  function filters() {
    return { type: type.value.trim(), device: device.value, start_date: from.epoch(), end_date: to.epoch() };
  }

  /** The whole filtered list as CSV (all pages). Filters changed but not yet applied are
   * applied first, so the file holds what the table shows. */
  async function csv() {
    let f;
    try { f = filters(); } catch (e) { setMsg(status, e.message, 'error'); return; }
    if (JSON.stringify(f) !== applied) { cursors.length = 0; cursor = undefined; await load(); }
    try {
      await download('/incidents.csv', { query: f, filename: 'incidents.csv' });
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  const slot = latest(); // a slower, older answer must not overwrite a newer one
  async function load() {
    let f;
    try { f = filters(); } catch (e) { setMsg(status, e.message, 'error'); return; }
    const q = { ...f, limit: limit.value };
    if (cursor) q.end_date = cursor;
    setMsg(status, t('loading'));
    try {
      const res = await slot.run((signal) => api('/incidents', { query: q, signal }));
      clear(tbody);
      applied = JSON.stringify(f);
      res.incidents.forEach((r) => tbody.append(incidentRow(r)));
      for (const r of recent.missing(res.incidents)) if (shows(r)) tbody.prepend(incidentRow(r, true));
      addTypes(res.incidents);
      setMsg(status, res.incidents.length ? '' : t('inc.none'));
      oldest = res.incidents.length ? res.incidents[res.incidents.length - 1].timestamp : null;
      older.disabled = res.incidents.length < Number(limit.value);
      newer.disabled = cursors.length === 0;
    } catch (e) { if (!isStale(e)) setMsg(status, e.message, 'error'); }
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); cursors.length = 0; cursor = undefined; load(); });
  older.addEventListener('click', () => {
    if (!oldest) return;
    cursors.push(cursor);
    cursor = new Date(Date.parse(oldest) - 1).toISOString();
    load().then(() => table.scrollIntoView({ block: 'nearest' }));
  });
  newer.addEventListener('click', () => { cursor = cursors.pop(); load().then(() => table.scrollIntoView({ block: 'nearest' })); });

  /** Whether the current page (the first, with its filters) shows the live row `r`. */
  function shows(r) {
    let f;
    try { f = filters(); } catch { return false; }
    return !(cursor || (f.type && f.type !== r.type) || (f.device && f.device !== r.device) || (f.end_date && Date.parse(r.timestamp) / 1000 > f.end_date));
  }
  const recent = recentLive((r) => `${r.timestamp}|${r.device}|${r.type}`);
  const offLive = live.on('incident', (m) => {
    const r = { timestamp: m.timestamp, device: m.device, type: m.data.type, data: m.data };
    addTypes([r]);
    recent.add(r);
    if (!shows(r)) return;
    tbody.prepend(incidentRow(r, true));
    while (tbody.children.length > Number(limit.value)) { tbody.lastChild.remove(); older.disabled = false; }
    setMsg(status, '');
  });

  api('/devices').then((res) => { deviceOptions(device, res.devices, { all: t('inc.all') }); }).catch(() => {});
  deviceOptions(device, [], { all: t('inc.all') });
  // Back after a lost connection: what happened meanwhile came as no live event.
  const offReady = live.on('ready', () => { if (!cursor) load(); });
  load();
  return () => { offLive(); offReady(); };
}

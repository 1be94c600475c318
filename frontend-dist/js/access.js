// Access: access ids (add by id, enrol by swipe with countdown, revoke) and the access log
// (filters, paging, "allow this card", a link to the timeline of each swipe).
import { api, latest, isStale, settings } from './api.js';
import { t, fmtDate, fmtNumber } from './i18n.js';
import { h, clear, setMsg, responsiveTable, deviceOptions, recentLive } from './dom.js';
import { dateInput, timelineHref } from './dates.js';

const PAGE = 25;

export default function accessView(main, { live }) {
  // --- list
  const listStatus = h('p', { class: 'msg', role: 'status', id: 'access-status' });
  const listBody = h('tbody');
  const list = h('table', { id: 'access-list' },
    h('thead', {}, h('tr', {}, ...['acc.id', 'acc.name', 'acc.addedby', 'acc.when', ''].map((k) => h('th', { scope: 'col' }, k ? t(k) : '')))),
    listBody);

  // --- add by id
  const addId = h('input', { id: 'access-add-id', required: true, autocomplete: 'off', spellcheck: 'false' });
  const addName = h('input', { id: 'access-add-name', maxlength: 100, autocomplete: 'off' });
  const addMsg = h('p', { class: 'msg', role: 'status', id: 'access-add-status' });
  const addForm = h('form', { class: 'stack card', id: 'access-add-form', 'data-admin': true },
    h('h2', {}, t('acc.add')),
    h('label', { for: 'access-add-id' }, t('acc.id')), addId,
    h('label', { for: 'access-add-name' }, t('acc.name')), addName,
    h('button', { type: 'submit', class: 'primary', id: 'access-add-submit' }, t('acc.addbtn')), addMsg);

  // --- enrol
  const enrolName = h('input', { id: 'enrol-name', maxlength: 100, autocomplete: 'off' });
  const enrolDev = h('select', { id: 'enrol-device', required: true });
  const enrolMsg = h('p', { class: 'msg', role: 'status', id: 'enrol-status', 'aria-live': 'polite' });
  const countdown = h('p', { class: 'countdown', id: 'enrol-countdown', 'aria-live': 'off' });
  const enrolBtn = h('button', { type: 'submit', class: 'primary', id: 'enrol-submit' }, t('acc.enrolbtn'));
  const enrolForm = h('form', { class: 'stack card', id: 'enrol-form', 'data-admin': true },
    h('h2', {}, t('acc.enrol')),
    h('label', { for: 'enrol-name' }, t('acc.name')), enrolName,
    h('label', { for: 'enrol-device' }, t('acc.device')), enrolDev,
    enrolBtn, countdown, enrolMsg);

  // --- log
  const logStatus = h('p', { class: 'msg', role: 'status', id: 'acclog-status' });
  const logBody = h('tbody');
  const log = h('table', { id: 'access-log' },
    h('thead', {}, h('tr', {}, ...['inc.time', 'acc.who', 'acc.result', 'acc.door', ''].map((k) => h('th', { scope: 'col' }, k ? t(k) : '')))),
    logBody);
  const fDevice = h('select', { id: 'acclog-device' });
  const fCard = h('input', { id: 'acclog-card', autocomplete: 'off', spellcheck: 'false', size: 12 });
  const fResult = h('select', { id: 'acclog-result' },
    h('option', { value: '' }, t('acc.any')), h('option', { value: 'true' }, t('acc.onlygranted')), h('option', { value: 'false' }, t('acc.onlydenied')));
  const fFrom = dateInput('acclog-from', t('inc.from'));
  const fTo = dateInput('acclog-to', t('inc.to'));
  const field = (id, label, el) => h('div', {}, h('label', { for: id }, label), el);
  const filterForm = h('form', { class: 'filters', id: 'acclog-filters' },
    field('acclog-device', t('acc.door'), fDevice), field('acclog-card', t('acc.card'), fCard),
    field('acclog-result', t('acc.result'), fResult), field('acclog-from', t('inc.from'), fFrom),
    field('acclog-to', t('inc.to'), fTo), h('button', { type: 'submit', class: 'primary', id: 'acclog-apply' }, t('acc.filters')));
  const pageInfo = h('span', { class: 'meta', id: 'acclog-page', role: 'status' });
  const newer = h('button', { type: 'button', id: 'acclog-newer', disabled: true }, t('inc.newer'));
  const older = h('button', { type: 'button', id: 'acclog-older', disabled: true }, t('inc.older'));

  responsiveTable(list);
  responsiveTable(log);
  main.append(h('h1', {}, t('acc.title')),
    h('section', {}, h('h2', {}, t('acc.ids')), listStatus, h('div', { class: 'table-wrap card' }, list)),
    h('section', { class: 'grid2' }, addForm, enrolForm),
    h('section', {}, h('h2', {}, t('acc.log')), filterForm, logStatus, h('div', { class: 'table-wrap card' }, log),
      h('div', { class: 'pager' }, newer, older, pageInfo)));

  let names = new Map();
  const listSlot = latest();
  const logSlot = latest();

  async function loadList(keep = false) {
    try {
      const res = await listSlot.run((signal) => api('/accessIDs', { signal }));
      clear(listBody);
      names = new Map(res.access_ids.map((r) => [r.access_id, r.name]));
      for (const r of res.access_ids) {
        const revoke = h('button', { type: 'button', class: 'danger', 'data-admin': true, dataset: { revoke: r.access_id }, 'aria-label': `${t('acc.revoke')} ${r.access_id}` }, t('acc.revoke'));
        revoke.addEventListener('click', () => doRevoke(r));
        listBody.append(h('tr', { dataset: { accessId: r.access_id } },
          h('td', {}, h('code', {}, r.access_id)), h('td', {}, r.name || '–'), h('td', {}, r.added_by),
          h('td', { class: 'num' }, fmtDate(r.added)), h('td', {}, revoke)));
      }
      if (!keep || !res.access_ids.length) setMsg(listStatus, res.access_ids.length ? '' : t('acc.none'));
    } catch (e) { if (!isStale(e)) setMsg(listStatus, e.message, 'error'); }
  }

  function logRow(r, isNew) {
    const name = r.name || names.get(r.access_id);
    const known = r.known || names.has(r.access_id);
    const who = name ? `${name} (${r.access_id})` : (known ? r.access_id : `${r.access_id} (${t('acc.unknown')})`);
    const actions = h('div', { class: 'device-actions' },
      h('a', { href: timelineHref(r.timestamp, r.device), dataset: { timeline: r.timestamp } }, t('acc.timeline')));
    if (!known) {
      const allow = h('button', { type: 'button', 'data-admin': true, dataset: { allow: r.access_id } }, t('acc.allow'));
      allow.addEventListener('click', () => doAllow(r.access_id, allow));
      actions.prepend(allow);
    }
    return h('tr', { class: isNew ? 'new' : '', dataset: { granted: String(r.granted), accessId: r.access_id } },
      h('td', { class: 'num' }, fmtDate(r.timestamp)), h('td', {}, who),
      h('td', { dataset: { level: r.granted ? 'ok' : 'alarm' } }, r.granted ? t('ov.granted') : t('ov.denied')),
      h('td', {}, r.device), h('td', {}, actions));
  }

  // Paging: `cursors` holds the `before` of each earlier page; `cursor` the current one.
  const cursors = [];
  let cursor;
  let next = null;
  let filters = {};

  function readFilters() {
    return { device: fDevice.value, access_id: fCard.value.trim(), granted: fResult.value, start_date: fFrom.epoch(), end_date: fTo.epoch() };
  }

  async function loadLog() {
    try {
      const res = await logSlot.run((signal) => api('/access', { query: { ...filters, limit: PAGE, before: cursor }, signal }));
      clear(logBody);
      res.access.forEach((r) => logBody.append(logRow(r)));
      const back = recent.missing(res.access).filter(shows);
      for (const r of back) logBody.prepend(logRow(r, true));
      setMsg(logStatus, res.access.length || back.length ? '' : t('acc.nolog'));
      next = res.next_before;
      older.disabled = !next;
      newer.disabled = cursors.length === 0;
      const first = cursors.length * PAGE + 1;
      pageInfo.textContent = res.access.length
        ? t('acc.page', { from: fmtNumber(first, 0), to: fmtNumber(first + res.access.length - 1, 0), total: fmtNumber(res.total, 0) }) : '';
    } catch (e) { if (!isStale(e)) setMsg(logStatus, e.message, 'error'); }
  }

  filterForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    try { filters = readFilters(); } catch (e) { setMsg(logStatus, e.message, 'error'); return; }
    cursors.length = 0; cursor = undefined;
    loadLog();
  });
  older.addEventListener('click', () => { if (!next) return; cursors.push(cursor); cursor = next; loadLog(); });
  newer.addEventListener('click', () => { cursor = cursors.pop(); loadLog(); });

  /** Adds an unknown card from the log with a name (POST /addAccessID with its id). */
  async function doAllow(id, btn) {
    const name = window.prompt(t('acc.allowname', { id }), '');
    if (name === null) return;
    btn.disabled = true;
    try {
      const res = await api('/addAccessID', { method: 'POST', body: { access_id: id, name: name.trim() } });
      setMsg(logStatus, t('acc.added', { id: res.access_id }) + outcome(res), 'ok');
      await loadList(true);
      loadLog();
    } catch (e) { setMsg(logStatus, e.message, 'error'); btn.disabled = false; }
  }

  function outcome(res) {
    const bad = Object.entries(res.devices || {}).filter(([, v]) => v !== 'ok');
    return bad.length ? ` (${bad.map(([d, v]) => `${d}: ${v}`).join('; ')})` : '';
  }

  async function doRevoke(r) {
    if (!window.confirm(t('acc.confirm', { id: r.access_id, name: r.name || '–' }))) return;
    try {
      const res = await api(`/accessIDs/${encodeURIComponent(r.access_id)}`, { method: 'DELETE' });
      setMsg(listStatus, t('acc.revoked', { id: r.access_id }) + outcome(res), 'ok');
      loadList(true);
    } catch (e) { setMsg(listStatus, e.message, 'error'); }
  }

  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = addId.value.trim();
    if (!id) {
      const rule = await settings().then((s) => s.access_id_rule, () => '');
      setMsg(addMsg, `${t('acc.id')}: ${rule}`, 'error'); addId.focus(); return;
    }
    const btn = addForm.querySelector('button');
    btn.disabled = true;
    try {
      const res = await api('/addAccessID', { method: 'POST', body: { access_id: id, name: addName.value.trim() } });
      setMsg(addMsg, t('acc.added', { id: res.access_id }) + outcome(res), 'ok');
      addId.value = ''; addName.value = '';
      loadList();
    } catch (e) { setMsg(addMsg, e.message, 'error'); } finally { btn.disabled = false; }
  });

  let timer = null;
  enrolForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const dev = enrolDev.value;
    if (!dev) return;
    enrolBtn.disabled = true;
    // The server's enrolment time; without it the countdown is left out, not guessed.
    const secs = await settings().then((s) => s.enrol_timeout_s, () => null);
    const end = Date.now() + (secs || 0) * 1000;
    const tick = () => {
      const s = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      countdown.textContent = secs ? `${s} s` : '';
      setMsg(enrolMsg, t('acc.present', { device: dev, s: secs ?? '…' }));
    };
    tick();
    timer = setInterval(tick, 250);
    try {
      const res = await api('/addAccessID', { method: 'POST', body: { name: enrolName.value.trim(), device: dev } });
      setMsg(enrolMsg, t('acc.added', { id: res.access_id }) + outcome(res), 'ok');
      enrolName.value = '';
      loadList();
    } catch (e) { setMsg(enrolMsg, e.message, 'error'); } finally {
      clearInterval(timer); countdown.textContent = ''; enrolBtn.disabled = false;
    }
  });

  /** Only the first page shows new swipes, and only those its filters let through. */
  function shows(r) {
    const f = filters;
    return !(cursor || (f.device && f.device !== r.device) || (f.access_id && f.access_id !== r.access_id)
      || (f.granted && f.granted !== String(r.granted)) || (f.end_date && Date.parse(r.timestamp) / 1000 > f.end_date));
  }
  const recent = recentLive((r) => `${r.timestamp}|${r.device}|${r.access_id}`);
  const off = live.on('access', (m) => {
    const r = { timestamp: m.timestamp, device: m.device, access_id: m.data.access_id, granted: m.data.granted,
      known: names.has(m.data.access_id), name: names.get(m.data.access_id) };
    recent.add(r);
    if (!shows(r)) return;
    // Rows are not trimmed (the Older cursor names the last row shown); a long-open page reloads.
    logBody.prepend(logRow(r, true));
    if (logBody.children.length > 4 * PAGE) loadLog();
    setMsg(logStatus, '');
  });

  api('/devices').then((res) => {
    deviceOptions(enrolDev, res.devices.filter((d) => d.online).concat(res.devices.filter((d) => !d.online)));
    deviceOptions(fDevice, res.devices, { all: t('acc.alldevices') });
  }).catch(() => {});
  deviceOptions(fDevice, [], { all: t('acc.alldevices') });
  // Back after a lost connection: what happened meanwhile came as no live event.
  const offReady = live.on('ready', () => { if (!cursor) loadLog(); });
  loadList().then(loadLog);
  return () => { off(); offReady(); clearInterval(timer); };
}

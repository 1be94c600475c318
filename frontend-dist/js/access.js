// Access: access ids (add by id, enrol by swipe with countdown, revoke) and the access log.
import { api, latest, isStale, settings } from './api.js';
import { t, fmtDate } from './i18n.js';
import { h, clear, setMsg, responsiveTable, deviceOptions } from './dom.js';

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
  const addForm = h('form', { class: 'stack card', id: 'access-add-form' },
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
  const enrolForm = h('form', { class: 'stack card', id: 'enrol-form' },
    h('h2', {}, t('acc.enrol')),
    h('label', { for: 'enrol-name' }, t('acc.name')), enrolName,
    h('label', { for: 'enrol-device' }, t('acc.device')), enrolDev,
    enrolBtn, countdown, enrolMsg);

  // --- log
  const logStatus = h('p', { class: 'msg', role: 'status' });
  const logBody = h('tbody');
  const log = h('table', { id: 'access-log' },
    h('thead', {}, h('tr', {}, ...['inc.time', 'acc.who', 'acc.result', 'acc.door'].map((k) => h('th', { scope: 'col' }, t(k))))),
    logBody);

  responsiveTable(list);
  responsiveTable(log);
  main.append(h('h1', {}, t('acc.title')),
    h('section', {}, h('h2', {}, t('acc.ids')), listStatus, h('div', { class: 'table-wrap card' }, list)),
    h('section', { class: 'grid2' }, addForm, enrolForm),
    h('section', {}, h('h2', {}, t('acc.log')), logStatus, h('div', { class: 'table-wrap card' }, log)));

  let names = new Map();
  const listSlot = latest();
  const logSlot = latest();

  async function loadList(keep = false) {
    try {
      const res = await listSlot.run((signal) => api('/accessIDs', { signal }));
      clear(listBody);
      names = new Map(res.access_ids.map((r) => [r.access_id, r.name]));
      for (const r of res.access_ids) {
        const revoke = h('button', { type: 'button', class: 'danger', dataset: { revoke: r.access_id }, 'aria-label': `${t('acc.revoke')} ${r.access_id}` }, t('acc.revoke'));
        revoke.addEventListener('click', () => doRevoke(r));
        listBody.append(h('tr', { dataset: { accessId: r.access_id } },
          h('td', {}, h('code', {}, r.access_id)), h('td', {}, r.name || '–'), h('td', {}, r.added_by),
          h('td', { class: 'num' }, fmtDate(r.added)), h('td', {}, revoke)));
      }
      if (!keep || !res.access_ids.length) setMsg(listStatus, res.access_ids.length ? '' : t('acc.none'));
    } catch (e) { if (!isStale(e)) setMsg(listStatus, e.message, 'error'); }
  }

  function logRow(r, isNew) {
    const who = r.name || (r.known ? r.access_id : `${r.access_id} (${t('acc.unknown')})`);
    return h('tr', { class: isNew ? 'new' : '', dataset: { granted: String(r.granted) } },
      h('td', { class: 'num' }, fmtDate(r.timestamp)), h('td', {}, who),
      h('td', { dataset: { level: r.granted ? 'ok' : 'alarm' } }, r.granted ? t('ov.granted') : t('ov.denied')),
      h('td', {}, r.device));
  }

  async function loadLog() {
    try {
      const res = await logSlot.run((signal) => api('/access', { query: { limit: 100 }, signal }));
      clear(logBody);
      res.access.forEach((r) => logBody.append(logRow(r)));
      setMsg(logStatus, res.access.length ? '' : t('acc.nolog'));
    } catch (e) { if (!isStale(e)) setMsg(logStatus, e.message, 'error'); }
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

  const off = live.on('access', (m) => {
    const r = { timestamp: m.timestamp, device: m.device, access_id: m.data.access_id, granted: m.data.granted,
      known: names.has(m.data.access_id), name: names.get(m.data.access_id) };
    logBody.prepend(logRow(r, true));
    while (logBody.children.length > 100) logBody.lastChild.remove();
    setMsg(logStatus, '');
  });

  api('/devices').then((res) => deviceOptions(enrolDev, res.devices.filter((d) => d.online).concat(res.devices.filter((d) => !d.online)))).catch(() => {});
  loadList().then(loadLog);
  return () => { off(); clearInterval(timer); };
}

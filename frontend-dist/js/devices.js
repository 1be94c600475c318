// Devices: list (remove, new password), how to add one (CLI + the ESP32 settings of the chosen
// device from GET /settings), config view/edit via getConfig/setConfig, history.
import { api, ApiError, latest, isStale, settings } from './api.js';
import { t, fmtDate, fmtRelative } from './i18n.js';
import { h, clear, setMsg, responsiveTable } from './dom.js';
import { deviceAddForm } from './forms.js';
import { backupsSection } from './backups.js';

async function copy(text, btn) {
  try {
    if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
    else {
      const ta = h('textarea', { readonly: true });
      ta.value = text;
      document.body.append(ta); ta.select(); document.execCommand('copy'); ta.remove();
    }
    const old = btn.textContent; btn.textContent = t('dev.copied');
    setTimeout(() => { btn.textContent = old; }, 1500);
  } catch { /* copying is a convenience */ }
}

export function copyLine(text, id) {
  const btn = h('button', { type: 'button', class: 'copy', 'aria-label': `${t('dev.copy')}: ${text}` }, t('dev.copy'));
  btn.addEventListener('click', () => copy(text, btn));
  return h('div', { class: 'copyline' }, h('code', { id }, text), btn);
}

function errorSentence(e, device) {
  if (!(e instanceof ApiError)) return String(e.message || e);
  if (e.status === 503) return t('err.offline', { device });
  if (e.status === 504) return t('err.timeout', { device });
  return e.message; // 422: the device's own refusal; 400: what was wrong with the input
}

function diffText(oldC, newC) {
  const o = oldC && typeof oldC === 'object' ? oldC : {};
  const n = newC && typeof newC === 'object' ? newC : {};
  const parts = [];
  for (const k of Object.keys(n)) {
    if (JSON.stringify(o[k]) !== JSON.stringify(n[k])) parts.push(`${k}: ${o[k] === undefined ? '–' : JSON.stringify(o[k])} → ${JSON.stringify(n[k])}`);
  }
  return parts.join(', ') || '–';
}

export default function devicesView(main, { live }) {
  const status = h('p', { class: 'msg', role: 'status' });
  const tbody = h('tbody');
  const table = h('table', { id: 'device-list' },
    h('thead', {}, h('tr', {}, ...['dev.id', 'dev.status', 'dev.created', 'dev.sync', ''].map((k) => h('th', { scope: 'col', class: k === 'dev.created' ? 'opt' : '' }, k ? t(k) : '')))),
    tbody);

  const espSettings = h('dl', { class: 'kv', id: 'esp-settings' });
  const espDevice = h('select', { id: 'esp-device' });
  const cliLine = h('div', { id: 'device-add-cli' });
  const addBox = h('section', { class: 'card', id: 'device-add' },
    h('h2', { 'data-admin': true }, t('dev.add')),
    h('div', { 'data-admin': true }, h('p', {}, t('dev.addtext')),
      deviceAddForm(copyLine, (c) => { loadDevices().then(() => { espDevice.value = c.device; showSettings(); }); }),
      cliLine),
    h('h3', {}, t('dev.esp')),
    h('div', { class: 'toolbar' }, h('div', {}, h('label', { for: 'esp-device' }, t('dev.instr')), espDevice)),
    espSettings);
  let serverSettings = null;
  // Port, prefix and TLS as the server is configured (GET /settings), never assumed; the
  // client id and topics of the device chosen above.
  function showSettings() {
    clear(espSettings);
    const s = serverSettings;
    if (!s) return;
    const id = espDevice.value || 'esp32-1';
    const p = s.topic_prefix;
    clear(cliLine).append(copyLine(`rzmon device add ${espDevice.value ? 'NEW-ID' : id}`, 'device-add-cmd'));
    espSettings.append(
      h('dt', {}, t('dev.host')), h('dd', {}, copyLine(s.mqtt_host || location.hostname, 'esp-host')),
      // Plain MQTT is off (null) with RZMON_PLAIN=off.
      ...(s.mqtt_port != null ? [h('dt', {}, t('dev.port')), h('dd', {}, copyLine(String(s.mqtt_port), 'esp-port'))] : []));
    if (s.mqtts_port != null) espSettings.append(h('dt', {}, t('dev.tlsport')), h('dd', {}, copyLine(String(s.mqtts_port), 'esp-mqtts-port')));
    if (s.ca_url != null) espSettings.append(h('dt', {}, t('dev.ca')), h('dd', {}, h('a', { href: s.ca_url, id: 'esp-ca', download: 'rzmon-ca.pem' }, s.ca_url)));
    if (s.external_broker) espSettings.append(h('dt', {}, t('dev.extbroker')), h('dd', { id: 'esp-external' }, t('dev.extnote', { device: id })));
    if (s.https_port != null) espSettings.append(h('dt', {}, t('dev.httpsport')), h('dd', {}, copyLine(`https://${location.hostname}:${s.https_port}/`, 'esp-https')));
    espSettings.append(
      h('dt', {}, t('dev.prefix')), h('dd', {}, h('code', { id: 'esp-prefix' }, p)),
      h('dt', {}, t('dev.clientid')), h('dd', {}, h('code', { id: 'esp-clientid' }, id), ' (MQTT 3.1.1, keepalive 30–60 s)'),
      h('dt', {}, t('dev.lwt')), h('dd', {}, h('code', {}, `${p}/${id}/status`), ' = offline'),
      h('dt', {}, t('dev.pub')), h('dd', {}, h('code', { id: 'esp-pub' }, `${p}/${id}/{telemetry,incident,access,reply,status}`)),
      h('dt', {}, t('dev.sub')), h('dd', {}, h('code', { id: 'esp-sub' }, `${p}/${id}/command`)));
  }
  espDevice.addEventListener('change', showSettings);
  settings().then((s) => { serverSettings = s; showSettings(); }, (e) => espSettings.append(h('dd', { class: 'msg error' }, e.message)));

  // remove / new password, each after a confirmation; a new password is shown once
  const keyResult = h('div', { id: 'device-rekey-result', class: 'card', hidden: true });
  async function remove(id) {
    if (!window.confirm(t('dev.confirmremove', { device: id }))) return;
    try {
      await api(`/devices/${encodeURIComponent(id)}`, { method: 'DELETE' });
      setMsg(status, t('dev.removed', { device: id }), 'ok');
      loadDevices();
    } catch (e) { setMsg(status, e.message, 'error'); }
  }
  async function rekey(id) {
    if (!window.confirm(t('dev.confirmrekey', { device: id }))) return;
    try {
      const c = await api(`/devices/${encodeURIComponent(id)}/password`, { method: 'POST' });
      keyResult.replaceChildren(h('p', { class: 'msg ok' }, t('dev.rekeyed', { device: c.device })),
        h('dl', { class: 'kv' },
          h('dt', {}, t('dev.clientid')), h('dd', {}, copyLine(c.username, 'device-rekey-username')),
          h('dt', {}, t('dev.password')), h('dd', {}, copyLine(c.password, 'device-rekey-password'))),
        h('p', { class: 'meta' }, t('dev.once')));
      keyResult.hidden = false;
      keyResult.scrollIntoView({ block: 'nearest' });
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  // config
  const cfgDev = h('select', { id: 'config-device' });
  const loadBtn = h('button', { type: 'button', id: 'config-load' }, t('dev.load'));
  const fields = h('div', { class: 'stack', id: 'config-fields' });
  const saveBtn = h('button', { type: 'submit', class: 'primary', id: 'config-save', disabled: true, 'data-admin': true }, t('dev.save'));
  const cfgStatus = h('p', { class: 'msg', id: 'config-status', role: 'status', 'aria-live': 'polite' });
  const cfgForm = h('form', { id: 'config-form', class: 'stack', novalidate: true, hidden: true }, fields, saveBtn);
  const histBody = h('tbody');
  const histTable = h('table', { id: 'config-history' },
    h('thead', {}, h('tr', {}, ...['inc.time', 'dev.user', 'dev.change', 'dev.outcome'].map((k) => h('th', { scope: 'col' }, t(k))))),
    histBody);
  const histStatus = h('p', { class: 'msg', role: 'status' });
  const cfgBox = h('section', { class: 'card', id: 'device-config' },
    h('h2', {}, t('dev.config')),
    h('div', { class: 'toolbar' }, h('div', {}, h('label', { for: 'config-device' }, t('dev.id')), cfgDev), loadBtn),
    cfgStatus, cfgForm,
    h('h3', {}, t('dev.history')), histStatus, h('div', { class: 'table-wrap' }, histTable));

  responsiveTable(table);
  responsiveTable(histTable);
  main.append(h('h1', {}, t('dev.title')), status, h('section', {}, h('div', { class: 'table-wrap card' }, table), keyResult), cfgBox, addBox, backupsSection());

  let current = null; // { device, config }: what the form shows and Save posts to
  const listSlot = latest();
  const configSlot = latest(); // getConfig and setConfig answers: only the selected device's count
  const historySlot = latest();

  async function loadDevices() {
    try {
      const res = await listSlot.run((signal) => api('/devices', { signal }));
      clear(tbody);
      const keep = cfgDev.value;
      clear(cfgDev);
      const keepEsp = espDevice.value;
      clear(espDevice);
      for (const d of res.devices) {
        const cfgLink = h('button', { type: 'button', dataset: { configure: d.id } }, t('dev.config'));
        cfgLink.addEventListener('click', () => { cfgDev.value = d.id; loadConfig(); cfgBox.scrollIntoView({ behavior: 'smooth' }); });
        const rekeyBtn = h('button', { type: 'button', 'data-admin': true, dataset: { rekey: d.id } }, t('dev.rekey'));
        rekeyBtn.addEventListener('click', () => rekey(d.id));
        const removeBtn = h('button', { type: 'button', class: 'danger', 'data-admin': true, dataset: { remove: d.id } }, t('dev.remove'));
        removeBtn.addEventListener('click', () => remove(d.id));
        // One child per cell, so a phone's stacked row keeps "last seen" in the value column.
        const seen = d.last_seen ? t('ov.lastseen', { when: fmtRelative(d.last_seen) }) : t('dev.never');
        tbody.append(h('tr', { dataset: { device: d.id } },
          h('td', {}, h('strong', {}, d.id)),
          h('td', { dataset: { level: d.online ? 'ok' : 'stale' } },
            h('div', {}, d.online ? t('ov.online') : t('ov.offline'), h('div', { class: 'meta', dataset: { field: 'last_seen' } }, seen))),
          h('td', { class: 'num opt' }, fmtDate(d.created)),
          h('td', { dataset: { level: d.access_in_sync ? 'ok' : 'warn' } }, d.access_in_sync ? t('ov.sync') : t('ov.nosync')),
          h('td', {}, h('div', { class: 'device-actions' }, cfgLink, rekeyBtn, removeBtn))));
        cfgDev.append(h('option', { value: d.id }, d.id));
        espDevice.append(h('option', { value: d.id }, d.id));
      }
      if (keep) cfgDev.value = keep;
      if (keepEsp && res.devices.some((d) => d.id === keepEsp)) espDevice.value = keepEsp;
      showSettings();
      setMsg(status, res.devices.length ? '' : t('dev.none'));
    } catch (e) { if (!isStale(e)) setMsg(status, e.message, 'error'); }
  }

  function inputFor(key, value) {
    const id = `cfg-${key.replace(/[^\w-]/g, '_')}`;
    let input;
    if (typeof value === 'boolean') {
      input = h('input', { type: 'checkbox', id, checked: value });
    } else if (typeof value === 'number') {
      input = h('input', { type: 'number', id, step: 'any', inputmode: 'decimal', value: String(value) });
    } else if (typeof value === 'string') {
      input = h('input', { type: 'text', id, value });
    } else {
      input = h('textarea', { id, rows: 2 });
      input.value = JSON.stringify(value);
    }
    input.dataset.key = key;
    input.dataset.kind = typeof value === 'object' ? 'json' : typeof value;
    const row = h('div', { class: 'cfg-row', dataset: { key } }, h('label', { for: id }, key), input);
    input.addEventListener('input', () => { row.classList.toggle('changed', changes().has(key)); saveBtn.disabled = changes().size === 0; });
    input.addEventListener('change', () => { row.classList.toggle('changed', changes().has(key)); saveBtn.disabled = changes().size === 0; });
    return row;
  }

  function readInput(input) {
    const kind = input.dataset.kind;
    if (kind === 'boolean') return { value: input.checked };
    if (kind === 'number') {
      const v = input.value.trim();
      const n = Number(v);
      if (v === '' || !Number.isFinite(n)) return { error: t('dev.badnum', { key: input.dataset.key }) };
      return { value: n };
    }
    if (kind === 'json') {
      try { return { value: JSON.parse(input.value) }; } catch { return { error: t('dev.badjson', { key: input.dataset.key }) }; }
    }
    return { value: input.value };
  }

  function changes() {
    const out = new Map();
    if (!current) return out;
    for (const input of fields.querySelectorAll('[data-key]:is(input,textarea)')) {
      const r = readInput(input);
      const key = input.dataset.key;
      if (r.error || JSON.stringify(r.value) !== JSON.stringify(current.config[key])) out.set(key, r);
    }
    return out;
  }

  function renderConfig(device, config) {
    current = { device, config };
    clear(fields);
    for (const [k, v] of Object.entries(config)) fields.append(inputFor(k, v));
    saveBtn.disabled = true;
    cfgForm.dataset.device = device;
    cfgForm.hidden = false;
  }

  /** Forgets the shown config; a pending getConfig or setConfig answer is dropped. */
  function forgetConfig() {
    configSlot.cancel();
    current = null; clear(fields); cfgForm.hidden = true; saveBtn.disabled = true;
    setMsg(cfgStatus, '');
  }

  async function loadConfig() {
    const device = cfgDev.value;
    if (!device) return;
    forgetConfig();
    setMsg(cfgStatus, t('dev.loading', { device }));
    loadHistory(device);
    try {
      const res = await configSlot.run((signal) => api('/getConfig', { query: { device }, signal }));
      renderConfig(device, res.config);
      setMsg(cfgStatus, '');
    } catch (e) {
      if (!isStale(e)) setMsg(cfgStatus, errorSentence(e, device), 'error');
    }
  }

  async function loadHistory(device) {
    try {
      const res = await historySlot.run((signal) => api('/configHistory', { query: { device, limit: 20 }, signal }));
      clear(histBody);
      for (const r of res.history) {
        histBody.append(h('tr', {},
          h('td', { class: 'num' }, fmtDate(r.timestamp)), h('td', {}, r.user),
          h('td', {}, h('code', {}, diffText(r.old, r.new))),
          h('td', { dataset: { level: r.confirmed ? 'ok' : 'alarm' } }, r.outcome)));
      }
      setMsg(histStatus, res.history.length ? '' : t('dev.nohist'));
    } catch (e) { if (!isStale(e)) setMsg(histStatus, e.message, 'error'); }
  }

  cfgForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!current) return;
    const ch = changes();
    const bad = [...ch.values()].find((r) => r.error);
    if (bad) { setMsg(cfgStatus, bad.error, 'error'); return; }
    if (!ch.size) { setMsg(cfgStatus, t('dev.nochange')); return; }
    const body = Object.fromEntries([...ch].map(([k, r]) => [k, r.value]));
    const { device } = current;
    saveBtn.disabled = true;
    setMsg(cfgStatus, t('dev.saving', { device }));
    try {
      // No signal: a write is never cancelled half-way; its answer is dropped if stale.
      const res = await configSlot.run(() => api('/setConfig', { method: 'POST', query: { device }, body }));
      renderConfig(device, res.config);
      setMsg(cfgStatus, t('dev.confirmed', { device }), 'ok');
    } catch (e) {
      if (isStale(e)) return;
      setMsg(cfgStatus, errorSentence(e, device), 'error');
      saveBtn.disabled = false;
    }
    loadHistory(device);
  });

  loadBtn.addEventListener('click', loadConfig);
  cfgDev.addEventListener('change', () => { forgetConfig(); loadHistory(cfgDev.value); });

  const liveOff = live.on('device', () => loadDevices());
  const off = () => { liveOff(); listSlot.cancel(); configSlot.cancel(); historySlot.cancel(); };
  loadDevices().then(() => {
    const wanted = (location.hash.match(/device=([\w-]+)/) || [])[1];
    if (wanted) cfgDev.value = wanted;
    if (cfgDev.value) loadHistory(cfgDev.value);
  });
  return off;
}

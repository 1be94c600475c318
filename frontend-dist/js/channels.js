// Notification channels (inside the Alerts page): list with last delivery, Send test, mute,
// delete, and an editor with typed inputs per kind. Secrets are write-only: the server shows
// "***", an empty secret input keeps the stored value.
import { api } from './api.js';
import { t, fmtDate } from './i18n.js';
import { h, clear, setMsg, responsiveTable } from './dom.js';

const MASK = '***';
// Settings per kind: key, input type, required, secret.
const KINDS = {
  ntfy: [['server', 'url', true], ['topic', 'text', true], ['token', 'password', false, true],
    ['username', 'text'], ['password', 'password', false, true], ['tags', 'list'], ['click', 'url']],
  gotify: [['server', 'url', true], ['token', 'password', true, true]],
  webhook: [['url', 'url', true], ['hmac_key', 'password', false, true], ['headers', 'headers', false, true]],
  email: [['host', 'text', true], ['port', 'number'], ['security', 'security'], ['username', 'text'],
    ['password', 'password', false, true], ['from', 'email', true], ['to', 'list', true], ['ca', 'pem']],
  telegram: [['token', 'password', true, true], ['chat_id', 'text', true], ['api_url', 'url']],
  discord: [['url', 'password', true, true]],
  slack: [['url', 'password', true, true]],
};
const PLACEHOLDER = { server: 'https://ntfy.sh', topic: 'rz-alerts', url: 'https://', host: 'smtp.example.com',
  from: 'rzmon@example.com', to: 'ops@example.com, me@example.com', tags: 'rz, server', chat_id: '-1001234567890',
  api_url: 'https://api.telegram.org', headers: 'Authorization: Bearer …', ca: '-----BEGIN CERTIFICATE-----' };

export function mountChannels(el) {
  const status = h('p', { class: 'msg', role: 'status', id: 'channels-status' });
  const testMsg = h('p', { class: 'msg', role: 'status', id: 'channel-test-result', 'aria-live': 'polite' });
  const body = h('tbody', { id: 'channels-list' });
  const table = responsiveTable(h('table', {},
    h('thead', {}, h('tr', {}, ...['ch.name', 'ch.kind', 'ch.status', 'ch.last', ''].map((k) => h('th', { scope: 'col' }, k ? t(k) : '')))),
    body));
  const editorBox = h('div', { id: 'channel-editor-box' });
  const addBtn = h('button', { type: 'button', class: 'primary', id: 'channel-add', 'data-admin': true }, t('ch.add'));
  addBtn.addEventListener('click', () => openEditor(null));
  clear(el).append(h('h2', {}, t('ch.title')), h('p', { class: 'meta' }, t('ch.intro')), status,
    h('div', { class: 'table-wrap card' }, table), testMsg, addBtn, editorBox);

  async function load() {
    try {
      const res = await api('/channels');
      clear(body);
      for (const c of res.channels) body.append(row(c));
      setMsg(status, res.channels.length ? '' : t('ch.none'));
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  function row(c) {
    const muted = c.muted_until && new Date(c.muted_until) > new Date();
    const state = [c.enabled ? t('ch.on') : t('ch.off'), muted ? t('ch.muteduntil', { when: fmtDate(c.muted_until) }) : null,
      c.quiet_hours ? t('ch.quietshort', { start: c.quiet_hours.start, end: c.quiet_hours.end }) : null,
      c.read_only ? t('ch.readonly') : null].filter(Boolean).join(' · ');
    const last = c.last_delivery
      ? h('span', { dataset: { level: c.last_delivery.state === 'sent' ? 'ok' : 'alarm' } },
        `${t(`ch.st.${c.last_delivery.state}`)} ${fmtDate(c.last_delivery.at)}${c.last_delivery.detail ? ` – ${c.last_delivery.detail}` : ''}`)
      : '–';
    const btn = (label, id, fn, cls = '') => {
      const b = h('button', { type: 'button', class: cls, dataset: { action: id, channel: c.id }, 'data-admin': true }, label);
      b.addEventListener('click', fn);
      return b;
    };
    const actions = h('td', { class: 'actions' },
      btn(t('ch.test'), 'test', () => sendTest(c)),
      muted ? btn(t('ch.unmute'), 'unmute', () => mute(c, null)) : btn(t('ch.mute1h'), 'mute', () => mute(c, 60)),
      c.read_only ? null : btn(t('ch.edit'), 'edit', () => openEditor(c)),
      c.read_only ? null : btn(t('ch.delete'), 'delete', () => remove(c), 'danger'));
    return h('tr', { dataset: { channelId: c.id } }, h('td', {}, c.name), h('td', {}, c.kind), h('td', {}, state),
      h('td', { class: 'last' }, last), actions);
  }

  async function sendTest(c) {
    setMsg(testMsg, t('ch.testing', { name: c.name }));
    try {
      const res = await api(`/channels/${c.id}/test`, { method: 'POST' });
      setMsg(testMsg, `${c.name}: ${res.result}`, 'ok');
    } catch (e) { setMsg(testMsg, `${c.name}: ${e.message}`, 'error'); }
    load();
  }

  async function mute(c, minutes) {
    try {
      if (minutes) await api(`/channels/${c.id}/mute`, { method: 'POST', body: { minutes } });
      else await api(`/channels/${c.id}/unmute`, { method: 'POST' });
      load();
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  async function remove(c) {
    if (!window.confirm(t('ch.confirm', { name: c.name }))) return;
    try { await api(`/channels/${c.id}`, { method: 'DELETE' }); load(); } catch (e) { setMsg(status, e.message, 'error'); }
  }

  function openEditor(c) {
    clear(editorBox).append(editor(c, () => { clear(editorBox); load(); }));
    editorBox.querySelector('input, select')?.focus();
  }

  load();
  return { reload: load };
}

function input(id, type, value, attrs = {}) {
  if (type === 'security') {
    return h('select', { id }, ...['starttls', 'tls', 'none'].map((v) => h('option', { value: v, selected: v === (value || 'starttls') }, t(`ch.sec.${v}`))));
  }
  if (type === 'headers') return h('textarea', { id, rows: 2, ...attrs }, '');
  if (type === 'pem') return h('textarea', { id, rows: 3, spellcheck: 'false', ...attrs }, value ?? '');
  const html = { list: 'text', password: 'password', number: 'number', url: 'url', email: 'text' }[type] || 'text';
  return h('input', { id, type: html, value: value ?? '', autocomplete: html === 'password' ? 'new-password' : 'off', spellcheck: 'false', ...attrs });
}

function editor(c, done) {
  const editing = Boolean(c);
  const kind = h('select', { id: 'channel-kind', disabled: editing },
    ...Object.keys(KINDS).map((k) => h('option', { value: k, selected: c ? c.kind === k : k === 'ntfy' }, t(`ch.k.${k}`))));
  const name = input('channel-name', 'text', c?.name, { required: true, maxlength: 64 });
  const fields = h('div', { class: 'stack', id: 'channel-settings' });
  const p = c || { min_severity: 'warning', group_wait_s: 10, storm_cap: 20, quiet_hours: null, enabled: true };
  const minSev = h('select', { id: 'channel-min-severity' },
    ...['warning', 'critical'].map((s) => h('option', { value: s, selected: p.min_severity === s }, t(`ch.sev.${s}`))));
  const groupWait = input('channel-group-wait', 'number', p.group_wait_s, { min: 0, max: 600 });
  const stormCap = input('channel-storm-cap', 'number', p.storm_cap, { min: 1, max: 10000 });
  const quietOn = h('input', { id: 'channel-quiet', type: 'checkbox', checked: Boolean(p.quiet_hours) });
  const quietStart = h('input', { id: 'channel-quiet-start', type: 'time', value: p.quiet_hours?.start || '23:00' });
  const quietEnd = h('input', { id: 'channel-quiet-end', type: 'time', value: p.quiet_hours?.end || '07:00' });
  const holdCrit = h('input', { id: 'channel-quiet-critical', type: 'checkbox', checked: Boolean(p.quiet_hours?.hold_critical) });
  const enabled = h('input', { id: 'channel-enabled', type: 'checkbox', checked: p.enabled !== false });
  const msg = h('p', { class: 'msg', role: 'status', id: 'channel-editor-status' });
  const field = (id, label, el, hint) => h('p', {}, h('label', { for: id }, label), el, hint ? h('small', { class: 'meta' }, hint) : null);
  const check = (id, label, el) => h('p', {}, h('label', { for: id }, el, ' ', label));

  function renderFields() {
    clear(fields);
    for (const [key, type, required, secret] of KINDS[kind.value]) {
      const id = `channel-s-${key}`;
      let value = c?.kind === kind.value ? c.settings[key] : undefined;
      if (Array.isArray(value)) value = value.join(', ');
      const attrs = { dataset: { key, type } };
      if (secret) {
        value = '';
        attrs.placeholder = editing && c.settings[key] ? t('ch.keep') : '';
        if (required && !(editing && c.settings[key])) attrs.required = true;
      } else {
        if (required) attrs.required = true;
        if (PLACEHOLDER[key]) attrs.placeholder = PLACEHOLDER[key];
      }
      fields.append(field(id, t(`ch.f.${key}`) + (required ? ' *' : ''), input(id, type, value, attrs)));
    }
  }
  kind.addEventListener('change', renderFields);
  renderFields();

  function settings() {
    const out = {};
    for (const el of fields.querySelectorAll('[data-key]')) {
      const { key, type } = el.dataset;
      const v = el.value.trim();
      const secret = KINDS[kind.value].find((f) => f[0] === key)?.[3];
      if (secret && !v) { if (editing) out[key] = MASK; continue; }
      if (!v) { if (editing) out[key] = null; continue; }
      if (type === 'list') out[key] = v.split(',').map((s) => s.trim()).filter(Boolean);
      else if (type === 'number') out[key] = Number(v);
      else if (type === 'headers') {
        out[key] = Object.fromEntries(v.split('\n').map((l) => l.split(/:(.*)/s).map((s) => s.trim())).filter(([k]) => k));
      } else out[key] = v;
    }
    return out;
  }

  const form = h('form', { class: 'stack card', id: 'channel-editor' },
    h('h3', {}, editing ? t('ch.editing', { name: c.name }) : t('ch.new')),
    field('channel-kind', t('ch.kind'), kind), field('channel-name', t('ch.name'), name), fields,
    field('channel-min-severity', t('ch.minsev'), minSev),
    field('channel-group-wait', t('ch.groupwait'), groupWait, t('ch.groupwait.hint')),
    field('channel-storm-cap', t('ch.stormcap'), stormCap, t('ch.stormcap.hint')),
    check('channel-quiet', t('ch.quiet'), quietOn),
    h('div', { class: 'toolbar' }, field('channel-quiet-start', t('ch.quietfrom'), quietStart), field('channel-quiet-end', t('ch.quietto'), quietEnd)),
    check('channel-quiet-critical', t('ch.holdcrit'), holdCrit),
    check('channel-enabled', t('ch.enabled'), enabled),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary', id: 'channel-save' }, t('ch.save')),
      h('button', { type: 'button', id: 'channel-cancel', onclick: done }, t('ch.cancel'))),
    msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const bodyJson = {
      name: name.value.trim(), settings: settings(), enabled: enabled.checked, min_severity: minSev.value,
      group_wait_s: Number(groupWait.value), storm_cap: Number(stormCap.value),
      quiet_hours: quietOn.checked ? { start: quietStart.value, end: quietEnd.value, hold_critical: holdCrit.checked } : null,
    };
    if (!editing) bodyJson.kind = kind.value;
    setMsg(msg, t('loading'));
    try {
      await api(editing ? `/channels/${c.id}` : '/channels', { method: editing ? 'PUT' : 'POST', body: bodyJson });
      done();
    } catch (e) { setMsg(msg, e.message, 'error'); }
  });
  return form;
}

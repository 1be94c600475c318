// Two small forms: change the own password (POST /user/password) and register a device
// (POST /devices, whose answer carries the MQTT password exactly once).
import { api, renewingToken, setToken, settings } from './api.js';
import { t } from './i18n.js';
import { h, setMsg } from './dom.js';

function field(id, label, attrs) {
  return h('p', {}, h('label', { for: id }, label), h('input', { id, ...attrs }));
}

export function passwordForm() {
  const status = h('p', { class: 'msg', role: 'status', id: 'passwd-status' });
  const form = h('form', { id: 'passwd-form', class: 'stack' },
    h('h2', {}, t('pw.title')),
    field('passwd-current', t('pw.current'), { type: 'password', autocomplete: 'current-password', required: true }),
    field('passwd-new', t('pw.new'), { type: 'password', autocomplete: 'new-password', required: true }),
    field('passwd-repeat', t('pw.repeat'), { type: 'password', autocomplete: 'new-password', required: true }),
    h('button', { type: 'submit', id: 'passwd-submit' }, t('pw.submit')),
    status);
  settings().then((s) => { form.querySelector('#passwd-new').minLength = s.password_min_length; }, () => {});
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const [cur, next, again] = ['passwd-current', 'passwd-new', 'passwd-repeat'].map((id) => form.querySelector(`#${id}`));
    const min = await settings().then((s) => s.password_min_length, () => 0);
    if ([...next.value].length < min) return setMsg(status, t('pw.short', { n: min }), 'error');
    if (next.value !== again.value) return setMsg(status, t('pw.mismatch'), 'error');
    setMsg(status, t('loading'));
    try {
      // The change ends every session; the answer carries a new token for this one.
      const res = await renewingToken(() => api('/user/password', { method: 'POST', body: { current_password: cur.value, new_password: next.value } }));
      if (res && res.access_token) setToken(res.access_token);
      form.reset();
      setMsg(status, t('pw.done'), 'ok');
    } catch (e) {
      setMsg(status, e.message, 'error');
    }
  });
  return h('section', { class: 'card' }, form);
}

/** `copyLine(text, id)` renders a value with a copy button; `onAdded` refreshes the list. */
export function deviceAddForm(copyLine, onAdded) {
  const status = h('p', { class: 'msg', role: 'status', id: 'device-add-status' });
  const result = h('div', { id: 'device-add-result' });
  const input = h('input', { id: 'device-add-id', required: true, pattern: '[A-Za-z0-9_\\-]{1,64}', placeholder: 'esp32-1', autocomplete: 'off' });
  const form = h('form', { id: 'device-add-form', class: 'toolbar' },
    h('div', {}, h('label', { for: 'device-add-id' }, t('dev.newid')), input),
    h('button', { type: 'submit', id: 'device-add-submit' }, t('dev.addbtn')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    result.replaceChildren();
    setMsg(status, t('loading'));
    try {
      const c = await api('/devices', { method: 'POST', body: { id: input.value.trim() } });
      setMsg(status, t('dev.added', { device: c.device }), 'ok');
      result.append(h('dl', { class: 'kv' },
        h('dt', {}, t('dev.clientid')), h('dd', {}, copyLine(c.username, 'device-add-username')),
        h('dt', {}, t('dev.password')), h('dd', {}, copyLine(c.password, 'device-add-password'))),
      h('p', { class: 'meta' }, t('dev.once')));
      form.reset();
      onAdded(c);
    } catch (e) {
      setMsg(status, e.message, 'error');
    }
  });
  return h('div', {}, form, status, result);
}

// Users (admins only): the list with role, reset password and remove (confirmed), and a form to
// add one; a generated password is shown once. `tokensSection()` (own API tokens: create, shown
// once, revoke) is mounted on the Account page, for viewers too.
import { api } from './api.js';
import { t, fmtDate } from './i18n.js';
import { h, clear, setMsg, responsiveTable } from './dom.js';
import { copyLine } from './devices.js';

const roleLabel = (r) => t(r === 'admin' ? 'usr.admin' : 'usr.viewer');

function roleSelect(id, value) {
  return h('select', { id },
    ...['admin', 'viewer'].map((r) => h('option', { value: r, selected: r === value }, roleLabel(r))));
}

function secretBox(target, label, value, id, note) {
  target.replaceChildren(h('dl', { class: 'kv' }, h('dt', {}, label), h('dd', {}, copyLine(value, id))),
    h('p', { class: 'meta' }, note));
}

export default function usersView(main) {
  const status = h('p', { class: 'msg', role: 'status', id: 'users-status' });
  const secret = h('div', { id: 'users-secret', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const table = responsiveTable(h('table', { id: 'user-list' },
    h('thead', {}, h('tr', {}, ...['usr.name', 'usr.role', 'usr.created', 'usr.actions'].map((k) => h('th', { scope: 'col', class: k === 'usr.created' ? 'opt' : '' }, t(k))))),
    tbody));
  let me = null;

  async function load() {
    try {
      const [{ users }, profile] = await Promise.all([api('/users'), me ? Promise.resolve(me) : api('/user/profile')]);
      me = profile;
      clear(tbody);
      if (!users.length) tbody.append(h('tr', {}, h('td', { colspan: 4 }, t('usr.none'))));
      for (const u of users) tbody.append(row(u));
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  function row(u) {
    const sel = roleSelect(`user-role-${u.username}`, u.role);
    sel.setAttribute('aria-label', `${t('usr.role')}: ${u.username}`);
    sel.addEventListener('change', async () => {
      try {
        const r = await api(`/users/${encodeURIComponent(u.username)}/role`, { method: 'PUT', body: { role: sel.value } });
        setMsg(status, t('usr.roleSet', { name: r.username, role: roleLabel(r.role) }), 'ok');
        // Demoting oneself: start again as a viewer (the role is read when the app starts).
        if (me && r.username === me.username && r.role !== 'admin') { location.reload(); return; }
      } catch (e) { sel.value = u.role; setMsg(status, e.message, 'error'); }
      load();
    });
    const reset = h('button', { type: 'button', dataset: { reset: u.username } }, t('usr.reset'));
    reset.addEventListener('click', async () => {
      if (!window.confirm(t('usr.confirmReset', { name: u.username }))) return;
      try {
        const r = await api(`/users/${encodeURIComponent(u.username)}/password`, { method: 'POST', body: {} });
        secretBox(secret, t('usr.newpw', { name: u.username }), r.password, 'users-new-password', t('usr.once'));
        setMsg(status, '');
      } catch (e) { setMsg(status, e.message, 'error'); }
    });
    const remove = h('button', { type: 'button', class: 'danger', dataset: { remove: u.username } }, t('usr.remove'));
    remove.addEventListener('click', async () => {
      if (!window.confirm(t('usr.confirmRemove', { name: u.username }))) return;
      try {
        await api(`/users/${encodeURIComponent(u.username)}`, { method: 'DELETE' });
        setMsg(status, t('usr.removed', { name: u.username }), 'ok');
        secret.replaceChildren();
      } catch (e) { setMsg(status, e.message, 'error'); }
      load();
    });
    const name = me && me.username === u.username ? `${u.username} ${t('usr.you')}` : u.username;
    return h('tr', { dataset: { user: u.username } }, h('td', {}, name), h('td', {}, sel),
      h('td', { class: 'opt' }, fmtDate(u.created)), h('td', {}, h('div', { class: 'toolbar' }, reset, remove)));
  }

  const nameIn = h('input', { id: 'user-add-name', required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', maxlength: 64 });
  const pwIn = h('input', { id: 'user-add-password', type: 'password', autocomplete: 'new-password' });
  const roleIn = roleSelect('user-add-role', 'viewer');
  const form = h('form', { id: 'user-add-form', class: 'toolbar' },
    h('div', {}, h('label', { for: 'user-add-name' }, t('usr.name')), nameIn),
    h('div', {}, h('label', { for: 'user-add-role' }, t('usr.role')), roleIn),
    h('div', {}, h('label', { for: 'user-add-password' }, t('usr.password')), pwIn),
    h('button', { type: 'submit', class: 'primary', id: 'user-add-submit' }, t('usr.addbtn')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { username: nameIn.value.trim(), role: roleIn.value };
    if (pwIn.value) body.password = pwIn.value;
    try {
      const r = await api('/users', { method: 'POST', body });
      setMsg(status, t('usr.added', { name: r.username }), 'ok');
      if (r.password) secretBox(secret, t('usr.newpw', { name: r.username }), r.password, 'users-new-password', t('usr.once'));
      else secret.replaceChildren();
      form.reset();
      roleIn.value = 'viewer';
      load();
    } catch (e) { setMsg(status, e.message, 'error'); }
  });

  main.append(h('h1', {}, t('usr.title')),
    h('p', { class: 'meta' }, t('usr.roles')),
    h('section', { class: 'card' }, h('h2', {}, t('usr.add')), form, status, secret),
    h('div', { class: 'table-wrap card' }, table));
  load();
}

/** The caller's own API tokens. */
export function tokensSection() {
  const status = h('p', { class: 'msg', role: 'status', id: 'tokens-status' });
  const secret = h('div', { id: 'tokens-secret', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const table = responsiveTable(h('table', { id: 'token-list' },
    h('thead', {}, h('tr', {}, ...['tok.name', 'tok.role', 'tok.created', 'tok.used', ''].map((k) => h('th', { scope: 'col' }, k ? t(k) : '')))),
    tbody));

  async function load() {
    try {
      const { tokens } = await api('/tokens');
      clear(tbody);
      if (!tokens.length) tbody.append(h('tr', {}, h('td', { colspan: 5 }, t('tok.none'))));
      for (const k of tokens) {
        const revoke = h('button', { type: 'button', class: 'danger', dataset: { revoke: k.id }, 'aria-label': `${t('tok.revoke')}: ${k.name}` }, t('tok.revoke'));
        revoke.addEventListener('click', async () => {
          if (!window.confirm(t('tok.confirmRevoke', { name: k.name }))) return;
          try {
            await api(`/tokens/${k.id}`, { method: 'DELETE' });
            setMsg(status, t('tok.revoked', { name: k.name }), 'ok');
          } catch (e) { setMsg(status, e.message, 'error'); }
          load();
        });
        tbody.append(h('tr', { dataset: { token: k.id } }, h('td', {}, k.name), h('td', {}, roleLabel(k.role)),
          h('td', {}, fmtDate(k.created)), h('td', {}, k.last_used ? fmtDate(k.last_used) : t('tok.never')), h('td', {}, revoke)));
      }
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  const nameIn = h('input', { id: 'token-add-name', required: true, maxlength: 64, placeholder: 'grafana', autocomplete: 'off' });
  const form = h('form', { id: 'token-add-form', class: 'toolbar' },
    h('div', {}, h('label', { for: 'token-add-name' }, t('tok.name')), nameIn),
    h('button', { type: 'submit', class: 'primary', id: 'token-add-submit' }, t('tok.add')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await api('/tokens', { method: 'POST', body: { name: nameIn.value.trim() } });
      secretBox(secret, r.name, r.token, 'token-new', t('tok.made', { name: r.name }));
      setMsg(status, '');
      form.reset();
      load();
    } catch (e) { setMsg(status, e.message, 'error'); }
  });
  load();
  return h('section', { class: 'card', id: 'tokens' }, h('h2', {}, t('tok.title')), h('p', { class: 'meta' }, t('tok.text')),
    form, status, secret, h('div', { class: 'table-wrap' }, table));
}

// Account: who is signed in, language, sign out (this session or everywhere).
import { api } from './api.js';
import { t, fmtDate, getLang, setLang } from './i18n.js';
import { h, setMsg } from './dom.js';
import { passwordForm } from './forms.js';
import { tokensSection } from './users.js';

export default function accountView(main, { logout }) {
  const status = h('p', { class: 'msg', role: 'status' }, t('loading'));
  const user = h('dd', { id: 'profile-username' }, '–');
  const created = h('dd', { id: 'profile-created' }, '–');
  const lang = h('select', { id: 'account-lang' },
    h('option', { value: 'de', selected: getLang() === 'de' }, 'Deutsch'),
    h('option', { value: 'en', selected: getLang() === 'en' }, 'English'));
  lang.addEventListener('change', () => setLang(lang.value));
  const out = h('button', { type: 'button', id: 'logout', class: 'primary' }, t('acct.logout'));
  out.addEventListener('click', () => logout());
  const all = h('button', { type: 'button', id: 'logout-all' }, t('acct.logoutAll'));
  all.addEventListener('click', () => logout({ everywhere: true }));
  main.append(h('h1', {}, t('acct.title')),
    h('section', { class: 'card' }, status,
      h('dl', { class: 'kv' }, h('dt', {}, t('acct.user')), user, h('dt', {}, t('acct.created')), created),
      h('p', {}, h('label', { for: 'account-lang' }, t('acct.lang')), lang),
      h('p', { class: 'toolbar' }, out, all)),
    passwordForm(),
    tokensSection());
  api('/user/profile').then((p) => {
    user.textContent = p.username; created.textContent = fmtDate(p.created); setMsg(status, '');
  }).catch((e) => setMsg(status, e.message, 'error'));
}

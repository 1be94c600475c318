// Backups section (on the Devices page): the list from GET /backups, "Back up now", downloads
// through fetch + blob (the token stays in the header, never in a URL). Making and downloading a
// backup is for admins (a backup is the whole database): a viewer sees the list only.
import { api, download } from './api.js';
import { t, fmtDate } from './i18n.js';
import { h, clear, setMsg, responsiveTable } from './dom.js';

function size(n) {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${Math.max(1, Math.round(n / 1024))} KiB`;
}

export function backupsSection() {
  const status = h('p', { class: 'msg', id: 'backups-status', role: 'status', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const table = h('table', { id: 'backups-table' },
    h('thead', {}, h('tr', {}, ...['bk.time', 'bk.size', 'bk.verified'].map((k) => h('th', { scope: 'col' }, t(k))),
      h('th', { scope: 'col', 'data-admin': true }))),
    tbody);
  responsiveTable(table);
  const now = h('button', { type: 'button', class: 'primary', id: 'backup-now', 'data-admin': true }, t('bk.now'));

  async function load() {
    try {
      const res = await api('/backups');
      clear(tbody);
      for (const b of res.backups) {
        const get = h('button', { type: 'button', dataset: { backup: b.name } }, t('bk.download'));
        get.addEventListener('click', async () => {
          // The browser saves the file only once it is all here: say so meanwhile (a big one takes a while).
          get.disabled = true;
          setMsg(status, t('bk.fetching', { name: b.name }));
          try {
            await download(`/backups/${encodeURIComponent(b.name)}`, { filename: b.name });
            setMsg(status, '');
          } catch (e) { setMsg(status, e.message, 'error'); }
          get.disabled = false;
        });
        tbody.append(h('tr', { dataset: { name: b.name } },
          h('td', { class: 'num' }, b.time ? h('time', { datetime: b.time }, fmtDate(b.time)) : b.name),
          h('td', { class: 'num' }, size(b.size)),
          h('td', {}, b.verified ? t('bk.ok') : `${t('bk.failed')}${b.error ? `: ${b.error}` : ''}`),
          h('td', { 'data-admin': true }, get)));
      }
      // Only "No backups yet" goes away with the list: "Backup … written and verified" stays.
      if (!res.backups.length) setMsg(status, t('bk.none'));
      else if (status.textContent === t('bk.none')) setMsg(status, '');
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  now.addEventListener('click', async () => {
    now.disabled = true;
    setMsg(status, t('bk.running'));
    try {
      const res = await api('/backups', { method: 'POST', body: {} });
      setMsg(status, t('bk.done', { name: res.backup.name }), 'info');
    } catch (e) { setMsg(status, e.message, 'error'); }
    now.disabled = false;
    load();
  });

  load();
  return h('section', { class: 'card', id: 'backups' },
    h('h2', {}, t('bk.title')), h('p', {}, t('bk.text'), ' ', h('code', {}, t('bk.cmd'))),
    h('div', { class: 'toolbar', 'data-admin': true }, now), status, h('div', { class: 'table-wrap' }, table));
}

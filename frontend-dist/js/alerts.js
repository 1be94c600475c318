// Alerts: active alerts first (Acknowledge), history with filters, the rule list and editor
// (enable/disable, snooze, edit), and the container the channel UI mounts into. Live via
// {"type":"alert"} events; `startBadge` keeps the top-bar count of active alerts current.
import { api } from './api.js';
import { t, fmtDate, fmtNumber } from './i18n.js';
import { h, clear, setMsg, responsiveTable, deviceOptions } from './dom.js';
import { dateInput } from './dates.js';
import { ruleEditor, describeRule } from './alert-rules.js';
import { mountChannels } from './channels.js';

const level = (sev) => (sev === 'critical' ? 'alarm' : 'warn');

function stateText(a) {
  if (a.state === 'acknowledged') return t('al.acked', { who: a.acknowledged.by, when: fmtDate(a.acknowledged.at) });
  return t(`al.state.${a.state}`);
}

function noticesText(a) {
  if (!a.notices || !a.notices.length) return t('al.nonotice');
  return a.notices.map((n) => `${t(`al.notice.${n.kind}`)} ${fmtDate(n.at)}`).join(' · ');
}

const DELIVERY_LEVEL = { sent: 'ok', failed: 'alarm', pending: 'warn', held: 'warn', suppressed: 'warn' };

/** What happened to one delivery: sent, failed with the reason, retrying, held by quiet hours... */
function deliveryText(d) {
  const when = fmtDate(d.updated);
  const reason = (d.detail || '').replace(/^retrying: /, '');
  switch (d.state) {
    case 'sent': return t('al.dst.sent', { when });
    case 'failed': return t('al.dst.failed', { reason, when });
    case 'pending': return d.attempts > 0 ? t('al.dst.retrying', { reason, n: d.attempts }) : t('al.dst.queued');
    case 'held': return t('al.dst.held', { until: d.next ? fmtDate(d.next) : '–' });
    case 'suppressed': return t('al.dst.suppressed');
    case 'muted': return t('al.dst.muted');
    case 'skipped': return t('al.dst.skipped', { reason });
    default: return `${d.state}${d.detail ? `: ${d.detail}` : ''}`;
  }
}

/** The per-channel delivery record of an alert (null without one). */
function deliveryList(a) {
  if (!a.deliveries || !a.deliveries.length) return null;
  return h('ul', { class: 'deliveries', dataset: { alertDeliveries: a.id } }, ...a.deliveries.map((d) =>
    h('li', { dataset: { channel: d.channel_id, notice: d.notice, state: d.state } },
      h('strong', {}, d.channel), ` · ${t(`al.dn.${d.notice}`)}: `,
      h('span', { dataset: { level: DELIVERY_LEVEL[d.state] || '' } }, deliveryText(d)))));
}

/** True while some delivery of `alerts` is still on its way (the page asks again soon). */
const inFlight = (alerts) => alerts.some((a) => (a.deliveries || []).some((d) => d.state === 'pending'));

/** One active alert as a card with its Acknowledge button. */
function activeCard(a, onAck) {
  const msg = h('p', { class: 'msg', role: 'status' });
  const ack = a.state === 'firing'
    ? h('button', { type: 'button', class: 'primary', id: `alert-ack-${a.id}`, dataset: { ack: a.id }, 'data-admin': true,
      onclick: async (ev) => {
        ev.target.disabled = true;
        try { await api(`/alerts/${a.id}/ack`, { method: 'POST', body: {} }); onAck(); } catch (e) { setMsg(msg, e.message, 'error'); ev.target.disabled = false; }
      } }, t('al.ack'))
    : null;
  return h('article', { class: 'card alert', dataset: { alert: a.id, state: a.state, severity: a.severity } },
    h('header', {}, h('span', { class: 'pill', dataset: { level: level(a.severity) } }, t(`al.sev.${a.severity}`)),
      h('strong', {}, a.rule), a.device ? h('a', { href: `#/history?device=${encodeURIComponent(a.device)}` }, a.device) : h('span', {}, t('al.system'))),
    h('p', { class: 'summary' }, a.summary),
    h('p', { class: 'meta' }, `${t('al.since')} ${fmtDate(a.started)} · `, h('span', { dataset: { field: 'state' } }, stateText(a))),
    deliveryList(a) || h('p', { class: 'meta' }, noticesText(a)),
    ack, msg);
}

/** State for the history: who acknowledged it when, and when it resolved. */
function historyState(a) {
  const parts = [];
  if (a.acknowledged) parts.push(t('al.acked', { who: a.acknowledged.by, when: fmtDate(a.acknowledged.at) }));
  if (a.resolved) parts.push(t('al.resolvedat', { when: fmtDate(a.resolved) }));
  return parts.length ? parts.join(' · ') : stateText(a);
}

function historyRow(a) {
  return h('tr', { dataset: { alert: a.id, state: a.state } },
    h('td', { class: 'num' }, h('time', { datetime: a.started }, fmtDate(a.started))),
    // One child per cell: a stacked (phone) row lays the cell out as a grid.
    h('td', {}, h('span', {}, h('span', { class: 'pill', dataset: { level: level(a.severity) } }, t(`al.sev.${a.severity}`)), ' ', a.rule)),
    h('td', {}, a.device || t('al.system')),
    h('td', {}, a.summary),
    h('td', {}, historyState(a)),
    h('td', { class: 'notices' }, deliveryList(a) || noticesText(a)));
}

export default function alertsView(main, { live }) {
  const activeStatus = h('p', { class: 'msg', role: 'status', id: 'alerts-active-status' });
  const activeList = h('div', { class: 'alert-list', id: 'alerts-active' });
  const device = h('select', { id: 'alerts-device' });
  const rule = h('select', { id: 'alerts-rule' }, h('option', { value: '' }, t('al.allrules')));
  const state = h('select', { id: 'alerts-state' }, ...['', 'active', 'firing', 'acknowledged', 'resolved']
    .map((s) => h('option', { value: s }, s ? t(`al.state.${s}`) : t('al.allstates'))));
  const from = dateInput('alerts-from', t('inc.from'));
  const to = dateInput('alerts-to', t('inc.to'));
  const limit = h('select', { id: 'alerts-limit' }, ...[25, 50, 100, 500].map((n) => h('option', { value: n, selected: n === 50 }, n)));
  const field = (id, label, el) => h('div', {}, h('label', { for: id }, label), el);
  const filters = h('form', { class: 'toolbar', id: 'alerts-filters' },
    field('alerts-device', t('inc.device'), device), field('alerts-rule', t('al.rule'), rule),
    field('alerts-state', t('al.state'), state), field('alerts-from', t('inc.from'), from),
    field('alerts-to', t('inc.to'), to), field('alerts-limit', t('inc.limit'), limit),
    h('button', { type: 'submit', class: 'primary' }, t('inc.apply')));
  const histStatus = h('p', { class: 'msg', role: 'status' });
  const tbody = h('tbody', { id: 'alerts-history' });
  const table = responsiveTable(h('table', {},
    h('thead', {}, h('tr', {}, ...['inc.time', 'al.rule', 'inc.device', 'al.summary', 'al.state'].map((k) => h('th', {}, t(k))),
      h('th', {}, t('al.notices')))), tbody));
  const rulesBox = h('div', { id: 'alert-rules' });
  main.append(h('h1', {}, t('al.title')),
    h('section', {}, h('h2', {}, t('al.active')), activeStatus, activeList),
    h('section', {}, h('h2', {}, t('al.history')), filters, histStatus, h('div', { class: 'table-wrap card' }, table)),
    h('section', {}, h('h2', {}, t('al.rules')), rulesBox),
    h('section', { id: 'alert-channels' }));
  mountChannels(main.querySelector('#alert-channels'));

  // Deliveries change without an alert event (sent after the group wait, retried, failed): while
  // one shown is still pending, both lists are asked again every few seconds.
  const busy = { active: false, history: false };
  let followTimer = null;
  function follow(which, alerts) {
    busy[which] = inFlight(alerts);
    clearTimeout(followTimer);
    if (busy.active || busy.history) followTimer = setTimeout(refresh, 3000);
  }

  let gen = 0;
  async function loadActive() {
    const mine = ++gen;
    try {
      const res = await api('/alerts', { query: { state: 'active', limit: 500 } });
      if (mine !== gen) return;
      clear(activeList);
      setMsg(activeStatus, res.alerts.length ? '' : t('al.none'), res.alerts.length ? 'info' : 'ok');
      const order = (a) => (a.state === 'firing' ? 0 : 1) * 10 + (a.severity === 'critical' ? 0 : 1);
      res.alerts.sort((a, b) => order(a) - order(b) || b.started.localeCompare(a.started));
      for (const a of res.alerts) activeList.append(activeCard(a, refresh));
      follow('active', res.alerts);
    } catch (e) { setMsg(activeStatus, e.message, 'error'); }
  }

  let histGen = 0;
  async function loadHistory() {
    const mine = ++histGen;
    try {
      const query = { device: device.value, rule: rule.value, state: state.value, start_date: from.epoch(), end_date: to.epoch(), limit: limit.value };
      const res = await api('/alerts', { query });
      if (mine !== histGen) return;
      clear(tbody);
      for (const a of res.alerts) tbody.append(historyRow(a));
      follow('history', res.alerts);
      setMsg(histStatus, res.alerts.length ? '' : t('al.nohistory'));
    } catch (e) { setMsg(histStatus, e.message, 'error'); }
  }

  async function loadRules() {
    try {
      const res = await api('/alert-rules');
      const sel = rule.value;
      clear(rule).append(h('option', { value: '' }, t('al.allrules')), ...res.rules.map((r) => h('option', { value: r.id, selected: String(r.id) === sel }, r.name)));
      clear(rulesBox).append(rulesTable(res.rules));
    } catch (e) { clear(rulesBox).append(h('p', { class: 'msg error' }, e.message)); }
  }

  function rulesTable(rules) {
    const editorBox = h('div', { id: 'alert-rule-editor' });
    const edit = (r) => { clear(editorBox).append(ruleEditor(r, devices, () => { clear(editorBox); rulesChanged(); })); editorBox.scrollIntoView({ block: 'nearest' }); };
    const body = h('tbody', {}, ...rules.map((r) => ruleRow(r, edit)));
    return h('div', {},
      h('div', { class: 'table-wrap card' }, responsiveTable(h('table', { id: 'alert-rules-table' },
        h('thead', {}, h('tr', {}, ...['al.rname', 'al.rwhat', 'al.severity', 'al.enabled', 'al.snooze', ''].map((k) => h('th', {}, k ? t(k) : '')))), body))),
      h('p', { 'data-admin': true }, h('button', { type: 'button', id: 'alert-rule-new', onclick: () => edit(null) }, t('al.newrule'))),
      editorBox);
  }

  function ruleRow(r, edit) {
    const msg = h('span', { class: 'msg' });
    const put = async (body) => {
      try { await api(`/alert-rules/${r.id}`, { method: 'PUT', body }); rulesChanged(); } catch (e) { setMsg(msg, e.message, 'error'); }
    };
    const snooze = async (secs) => {
      try { await api(`/alert-rules/${r.id}/snooze`, { method: 'POST', body: { for_secs: secs } }); rulesChanged(); } catch (e) { setMsg(msg, e.message, 'error'); }
    };
    const enabled = h('input', { type: 'checkbox', checked: r.enabled, 'aria-label': t('al.enabled'), dataset: { ruleEnabled: r.id }, 'data-admin-lock': true, onchange: (ev) => put({ enabled: ev.target.checked }) });
    const snoozeSel = h('select', { 'aria-label': t('al.snooze'), dataset: { ruleSnooze: r.id }, 'data-admin-lock': true, onchange: (ev) => { if (ev.target.value !== '') snooze(Number(ev.target.value)); } },
      h('option', { value: '' }, r.snoozed_until ? t('al.snoozed', { until: fmtDate(r.snoozed_until) }) : t('al.notsnoozed')),
      ...[[3600, '1h'], [8 * 3600, '8h'], [86400, '24h']].map(([s, k]) => h('option', { value: s }, t(`al.snooze.${k}`))),
      r.snoozed_until ? h('option', { value: 0 }, t('al.unsnooze')) : null);
    return h('tr', { dataset: { rule: r.id } },
      h('td', {}, r.name), h('td', {}, describeRule(r)),
      h('td', {}, h('span', { class: 'pill', dataset: { level: level(r.severity) } }, t(`al.sev.${r.severity}`))),
      h('td', {}, enabled), h('td', {}, snoozeSel),
      h('td', {}, h('button', { type: 'button', dataset: { ruleEdit: r.id }, 'data-admin': true, onclick: () => edit(r) }, t('al.edit')), msg));
  }

  let devices = [];
  function rulesChanged() { loadRules(); live.emit('rules', {}); }
  function refresh() { loadActive(); loadHistory(); }

  filters.addEventListener('submit', (ev) => { ev.preventDefault(); loadHistory(); });
  let pending = null;
  const offs = [
    live.on('alert', () => { clearTimeout(pending); pending = setTimeout(refresh, 200); }),
    live.on('ready', refresh),
  ];
  deviceOptions(device, [], { all: t('inc.all') });
  api('/devices').then((res) => { devices = res.devices.map((d) => d.id); deviceOptions(device, res.devices, { all: t('inc.all') }); }).catch(() => {});
  loadRules();
  refresh();
  return () => { offs.forEach((f) => f()); clearTimeout(pending); clearTimeout(followTimer); };
}

/** Keeps the top-bar badge at the number of active alerts (the critical ones colour it). */
export function startBadge(live, badge) {
  let timer = null;
  async function update() {
    try {
      const res = await api('/alerts', { query: { state: 'active', limit: 1000 } });
      const n = res.alerts.length;
      badge.textContent = String(n);
      badge.hidden = n === 0;
      badge.dataset.level = res.alerts.some((a) => a.severity === 'critical' && a.state === 'firing') ? 'alarm' : 'warn';
      badge.title = t('al.badge', { n: fmtNumber(n, 0) });
    } catch { /* a 401 logs out; other errors leave the last count */ }
  }
  const soon = () => { clearTimeout(timer); timer = setTimeout(update, 150); };
  const offs = [live.on('alert', soon), live.on('ready', soon)];
  update();
  return () => { offs.forEach((f) => f()); clearTimeout(timer); };
}

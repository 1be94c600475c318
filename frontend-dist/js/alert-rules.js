// The alert-rule editor (typed inputs per rule kind; POST for a new rule, PUT for a change) and
// the one-line explanation of a rule shown in the rule list.
import { api } from './api.js';
import { t, fmtNumber } from './i18n.js';
import { h, setMsg } from './dom.js';

const KINDS = ['threshold', 'door_open_for', 'silence', 'incident', 'access_denied', 'health'];
/** Fields each kind uses besides name, kind, severity, enabled, devices and reminders. */
const KIND_FIELDS = {
  threshold: ['metric', 'op', 'value', 'hysteresis', 'for_secs', 'keep_firing_for_secs'],
  door_open_for: ['for_secs'],
  silence: ['after_secs'],
  incident: ['types', 'resolve_after_secs'],
  access_denied: ['count', 'window_secs', 'resolve_after_secs'],
  health: [],
};
const NUMBER_FIELDS = ['value', 'hysteresis', 'for_secs', 'keep_firing_for_secs', 'after_secs', 'count', 'window_secs',
  'resolve_after_secs', 'reminder_first_secs', 'reminder_every_secs'];

export function fmtSecs(s) {
  if (s < 120) return t('al.secs', { n: s });
  if (s < 7200) return t('al.mins', { n: fmtNumber(s / 60, s % 60 ? 1 : 0) });
  return t('al.hours', { n: fmtNumber(s / 3600, s % 3600 ? 1 : 0) });
}

const metricName = (m) => ({ tmp: t('ov.tmp'), lf: t('ov.lf') }[m] || m);
const unit = (m) => ({ tmp: ' °C', lf: ' %' }[m] || '');

/** One sentence saying when the rule fires (and how it recovers). */
export function describeRule(r) {
  const scope = r.devices ? ` (${r.devices.join(', ')})` : '';
  const lasting = r.for_secs ? t('al.d.for', { d: fmtSecs(r.for_secs) }) : t('al.d.atonce');
  switch (r.kind) {
    case 'threshold': {
      const back = r.op === 'above' ? r.value - r.hysteresis : r.value + r.hysteresis;
      return t('al.d.threshold', { metric: metricName(r.metric), op: r.op === 'above' ? '≥' : '≤', value: `${r.value}${unit(r.metric)}`,
        lasting, back: `${fmtNumber(back)}${unit(r.metric)}` }) + scope;
    }
    case 'door_open_for': return t('al.d.door', { d: fmtSecs(r.for_secs) }) + scope;
    case 'silence': return t('al.d.silence', { d: fmtSecs(r.after_secs) }) + scope;
    case 'incident': return t('al.d.incident', { types: r.types.join(', '), d: fmtSecs(r.resolve_after_secs) }) + scope;
    case 'access_denied': return t('al.d.denied', { n: r.count, d: fmtSecs(r.window_secs), r: fmtSecs(r.resolve_after_secs) }) + scope;
    case 'health': return t('al.d.health');
    default: return r.kind;
  }
}

/** The editor for `rule` (null: a new rule). `onDone` after a successful save or cancel. */
export function ruleEditor(rule, devices, onDone) {
  const r = rule || { kind: 'threshold', severity: 'warning', enabled: true, metric: 'tmp', op: 'above', value: 30, hysteresis: 1,
    for_secs: 120, keep_firing_for_secs: 0, resolve_after_secs: 900, reminder_first_secs: 1800, reminder_every_secs: 7200,
    after_secs: 180, count: 5, window_secs: 120, types: ['unauthorized_access'], devices: null };
  const inputs = {};
  const row = (name, el, hint) => {
    inputs[name] = el;
    el.id = `rule-${name}`;
    return h('p', { class: 'cfg-row', dataset: { field: name } }, h('label', { for: el.id }, t(`al.f.${name}`)), el, hint ? h('span', { class: 'meta' }, hint) : null);
  };
  const num = (name, attrs = {}) => h('input', { type: 'number', step: 'any', value: r[name] ?? '', ...attrs });
  const select = (name, options) => h('select', {}, ...options.map(([v, label]) => h('option', { value: v, selected: r[name] === v }, label)));
  const kind = select('kind', KINDS.map((k) => [k, t(`al.k.${k}`)]));
  const devSel = h('select', { multiple: true, size: Math.min(5, Math.max(2, devices.length)) },
    ...devices.map((d) => h('option', { value: d, selected: (r.devices || []).includes(d) }, d)));
  const metrics = h('datalist', { id: 'rule-metrics' }, h('option', { value: 'tmp' }), h('option', { value: 'lf' }));
  const rows = [
    row('name', h('input', { value: r.name || '', required: true, maxlength: '100' })),
    row('kind', kind),
    row('severity', select('severity', [['warning', t('al.sev.warning')], ['critical', t('al.sev.critical')]])),
    row('enabled', h('input', { type: 'checkbox', checked: r.enabled })),
    row('devices', devSel, t('al.f.devices.hint')),
    row('metric', h('input', { value: r.metric || '', list: 'rule-metrics', autocomplete: 'off' })),
    row('op', select('op', [['above', t('al.op.above')], ['below', t('al.op.below')]])),
    row('value', num('value')),
    row('hysteresis', num('hysteresis', { min: '0' })),
    row('for_secs', num('for_secs', { min: '0', step: '1' }), t('al.f.secs')),
    row('keep_firing_for_secs', num('keep_firing_for_secs', { min: '0', step: '1' }), t('al.f.secs')),
    row('after_secs', num('after_secs', { min: '1', step: '1' }), t('al.f.secs')),
    row('types', h('input', { value: (r.types || []).join(', ') }), t('al.f.types.hint')),
    row('count', num('count', { min: '1', step: '1' })),
    row('window_secs', num('window_secs', { min: '1', step: '1' }), t('al.f.secs')),
    row('resolve_after_secs', num('resolve_after_secs', { min: '1', step: '1' }), t('al.f.secs')),
    row('reminder_first_secs', num('reminder_first_secs', { min: '0', step: '1' }), t('al.f.remind.hint')),
    row('reminder_every_secs', num('reminder_every_secs', { min: '0', step: '1' }), t('al.f.secs')),
  ];
  const showFields = () => {
    const used = KIND_FIELDS[kind.value];
    for (const p of rows) {
      const f = p.dataset.field;
      const specific = Object.values(KIND_FIELDS).some((list) => list.includes(f));
      p.hidden = (specific && !used.includes(f)) || (f === 'devices' && kind.value === 'health');
    }
  };
  kind.addEventListener('change', showFields);
  showFields();
  const status = h('p', { class: 'msg', role: 'status', id: 'rule-status' });
  const form = h('form', { class: 'card stack', id: 'rule-form', novalidate: true },
    h('h3', {}, rule ? t('al.editrule', { name: rule.name }) : t('al.newrule')), metrics, ...rows,
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary', id: 'rule-save' }, t('al.save')),
      h('button', { type: 'button', onclick: () => onDone() }, t('al.cancel')),
      rule ? h('button', { type: 'button', class: 'danger', id: 'rule-delete', onclick: remove }, t('al.delete')) : null),
    status);

  function body() {
    const used = new Set(['name', 'kind', 'severity', 'enabled', 'devices', 'reminder_first_secs', 'reminder_every_secs', ...KIND_FIELDS[kind.value]]);
    const out = {};
    for (const f of used) {
      const el = inputs[f];
      if (f === 'enabled') out.enabled = el.checked;
      else if (f === 'devices') { const sel = [...el.selectedOptions].map((o) => o.value); out.devices = sel.length && kind.value !== 'health' ? sel : null; }
      else if (f === 'types') out.types = el.value.split(',').map((s) => s.trim()).filter(Boolean);
      else if (NUMBER_FIELDS.includes(f)) { if (el.value !== '') out[f] = Number(el.value); }
      else out[f] = el.value.trim();
    }
    return out;
  }

  async function remove() {
    if (!window.confirm(t('al.confirmdelete', { name: rule.name }))) return;
    try { await api(`/alert-rules/${rule.id}`, { method: 'DELETE' }); onDone(); } catch (e) { setMsg(status, e.message, 'error'); }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setMsg(status, t('loading'));
    try {
      if (rule) await api(`/alert-rules/${rule.id}`, { method: 'PUT', body: body() });
      else await api('/alert-rules', { method: 'POST', body: body() });
      onDone();
    } catch (e) { setMsg(status, e.message, 'error'); }
  });
  return form;
}

// Warn/critical limits per device for tiles and charts, taken from the enabled threshold rules
// that cover the device (GET /alert-rules), so the colours agree with what alerts, plus the
// device's own config (tmp_max, lf_max from GET /devices "limits"): always drawn as a labelled
// line, and it colours the tile whenever it is lower than the rules' limits.
import { api } from './api.js';
import { t } from './i18n.js';

let rules = [];
let loading = null;

/** Re-reads the rules (at most one request at a time). */
export function loadLevels() {
  if (!loading) {
    loading = api('/alert-rules')
      .then((res) => { rules = (res.rules || []).filter((r) => r.enabled && r.kind === 'threshold'); })
      .catch(() => {})
      .finally(() => { loading = null; });
  }
  return loading;
}

const covers = (r, device) => !r.devices || !r.devices.length || !device || r.devices.includes(device);

/**
 * The limits of `device` (an id; `limits` its {tmp_max, lf_max} or undefined):
 * {tmp: [{value, level, label}], lf: [...]} sorted by value, plus the folded
 * tmpWarn/tmpAlarm/lfLow/lfHigh the tiles use.
 */
export function levelsFor(device, limits = {}) {
  const lines = (metric) => rules.filter((r) => r.metric === metric && covers(r, device)).map((r) => ({
    value: r.value, op: r.op, level: r.severity === 'critical' ? 'alarm' : 'warn', label: r.name,
  }));
  const tmp = lines('tmp');
  const lf = lines('lf');
  const own = (list, key, metric) => {
    const v = limits && limits[key];
    if (typeof v === 'number') {
      list.push({ value: v, op: 'above', level: 'alarm', label: t('hist.limitdev', { device, key }), metric });
    }
  };
  own(tmp, 'tmp_max', 'tmp');
  own(lf, 'lf_max', 'lf');
  const fold = (list, op, level, f) => {
    const vals = list.filter((l) => l.op === op && (!level || l.level === level)).map((l) => l.value);
    return vals.length ? f(...vals) : undefined;
  };
  const tmpAlarm = fold(tmp, 'above', 'alarm', Math.min) ?? Infinity;
  return {
    tmp: tmp.sort((a, b) => a.value - b.value),
    lf: lf.sort((a, b) => a.value - b.value),
    tmpWarn: fold(tmp, 'above', 'warn', Math.min) ?? tmpAlarm,
    tmpAlarm,
    lfLow: fold(lf, 'below', null, Math.max) ?? -Infinity,
    lfHigh: fold(lf, 'above', null, Math.min) ?? Infinity,
  };
}

export function tmpLevel(v, lv) { return v >= lv.tmpAlarm ? 'alarm' : v >= lv.tmpWarn ? 'warn' : 'ok'; }
export function lfLevel(v, lv) { return v <= lv.lfLow || v >= lv.lfHigh ? 'warn' : 'ok'; }

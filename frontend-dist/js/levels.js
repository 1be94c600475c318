// Warn/critical limits for tiles and charts, taken from the enabled alert rules (GET /alert-rules)
// so the colours agree with what alerts. The defaults match the default rules until rules load.
import { api } from './api.js';

const DEFAULTS = { tmpWarn: 30, tmpAlarm: 35, lfLow: 20, lfHigh: 80 };
let current = { ...DEFAULTS };
let loading = null;

/** The limits from `rules`: lowest `above` per severity, highest `below`, per metric. */
export function levelsFromRules(rules) {
  const pick = (metric, op, severity, fold) => {
    const vals = rules.filter((r) => r.enabled && r.kind === 'threshold' && r.metric === metric && r.op === op
      && (!severity || r.severity === severity)).map((r) => r.value);
    return vals.length ? fold(...vals) : undefined;
  };
  const tmpWarn = pick('tmp', 'above', 'warning', Math.min);
  const tmpAlarm = pick('tmp', 'above', 'critical', Math.min);
  return {
    tmpWarn: tmpWarn ?? tmpAlarm ?? Infinity,
    tmpAlarm: tmpAlarm ?? Infinity,
    lfLow: pick('lf', 'below', null, Math.max) ?? -Infinity,
    lfHigh: pick('lf', 'above', null, Math.min) ?? Infinity,
  };
}

/** Re-reads the rules (at most one request at a time); resolves to the limits. */
export function loadLevels() {
  if (!loading) {
    loading = api('/alert-rules')
      .then((res) => { current = levelsFromRules(res.rules || []); return current; })
      .catch(() => current)
      .finally(() => { loading = null; });
  }
  return loading;
}

export const levels = () => current;
export function tmpLevel(v) { return v >= current.tmpAlarm ? 'alarm' : v >= current.tmpWarn ? 'warn' : 'ok'; }
export function lfLevel(v) { return v <= current.lfLow || v >= current.lfHigh ? 'warn' : 'ok'; }

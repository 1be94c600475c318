// Dates in the chosen language: one text format for filter inputs and table rows (German
// 1.12.2026 21:20, English 01/12/2026 21:20, always 24 h), parsing it back, and chart axis labels.
import { t, getLang, locale, fmtDate } from './i18n.js';
import { h } from './dom.js';

const pad = (n) => String(n).padStart(2, '0');

/** The input text for a Date: the language's numeric date and hh:mm (with :ss when not 0). */
export function dateText(d) {
  const date = new Intl.DateTimeFormat(locale(), { day: 'numeric', month: 'numeric', year: 'numeric' }).format(d);
  const secs = d.getSeconds() ? `:${pad(d.getSeconds())}` : '';
  return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}${secs}`;
}

/** Parses what dateText writes (also with seconds, a comma, or ISO yyyy-mm-dd[Thh:mm]); local time.
 * Returns a Date, null for an empty text, or undefined when it cannot be read. */
export function parseDateText(text) {
  const s = String(text || '').trim();
  if (!s) return null;
  let m = s.match(/^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ,]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$/);
  let y, mo, d;
  if (m) { [, y, mo, d] = m; } else {
    m = s.match(/^(\d{1,2})[./](\d{1,2})[./](\d{4})(?:[ ,]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$/);
    if (!m) return undefined;
    [, d, mo, y] = m;
  }
  const [hh, mm, ss] = [m[4] || 0, m[5] || 0, m[6] || 0].map(Number);
  const out = new Date(Number(y), Number(mo) - 1, Number(d), hh, mm, ss);
  if (out.getMonth() !== Number(mo) - 1 || out.getDate() !== Number(d) || hh > 23 || mm > 59 || ss > 59) return undefined;
  return out;
}

/** A text input for a moment in the language's format; `.epoch()` gives epoch seconds,
 * null when empty, or throws a sentence naming `label` when it cannot be read. */
export function dateInput(id, label) {
  const input = h('input', { id, type: 'text', inputmode: 'numeric', autocomplete: 'off', placeholder: t('date.hint'), class: 'date', 'aria-label': label });
  input.epoch = () => {
    const d = parseDateText(input.value);
    if (d === undefined) {
      input.setAttribute('aria-invalid', 'true');
      throw new Error(t('date.bad', { field: label, hint: t('date.hint') }));
    }
    input.removeAttribute('aria-invalid');
    return d === null ? undefined : Math.floor(d.getTime() / 1000);
  };
  input.setDate = (d) => { input.value = d ? dateText(d) : ''; };
  return input;
}

/** uPlot x-axis labels: hh:mm (24 h) with the date under the first tick of each day for short
 * spans, the date alone (1.12.) for ticks a day or more apart. */
export function timeTicks(splits, incr) {
  const de = getLang() === 'de';
  const day = (d) => (de ? `${d.getDate()}.${d.getMonth() + 1}.` : `${pad(d.getDate())}/${pad(d.getMonth() + 1)}`);
  const full = (d) => new Intl.DateTimeFormat(locale(), { day: 'numeric', month: 'numeric', year: 'numeric' }).format(d);
  let lastDay = null;
  return splits.map((v, i) => {
    const d = new Date(v * 1000);
    const key = d.toDateString();
    const first = key !== lastDay;
    lastDay = key;
    if (incr >= 86400) return i === 0 ? full(d) : day(d);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return first ? `${time}\n${full(d)}` : time;
  });
}

/** The timeline around an event: the moment is the event's second rounded up, so the event
 * (stored with milliseconds) lies at or before it. */
export function timelineHref(iso, device) {
  const at = new Date(Math.ceil(Date.parse(iso) / 1000) * 1000).toISOString();
  return `#/timeline?at=${encodeURIComponent(at)}&device=${encodeURIComponent(device)}`;
}

export { fmtDate };

// Timeline: what happened around one moment (GET /timeline) — who swiped which card, when the
// door unlocked and locked, incidents, and what the room was like (readings at the moment and
// the temperature/humidity course around it).
import uPlot from '../vendor/uplot/uPlot.esm.js';
import { api, latest, isStale } from './api.js';
import { t, fmtDate, fmtNumber } from './i18n.js';
import { h, clear, setMsg, deviceOptions } from './dom.js';
import { dateInput, timeTicks } from './dates.js';
import { incidentLabel } from './incidents.js';

const WINDOWS = [300, 900, 3600, 10800];

/** Device colours (the first device's temperature in the alarm colour, as before). */
const COLORS = ['--alarm', '--accent', '#15803d', '#9333ea', '#be185d', '#0e7490'];

function css(name) {
  if (!name.startsWith('--')) return name;
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

function windowText(s) { return s < 3600 ? t('tl.mins', { n: s / 60 }) : t('tl.hours', { n: s / 3600 }); }

/** One event as words. */
function what(e) {
  if (e.kind === 'access') {
    const who = e.name ? `${e.name} (${e.access_id})` : `${e.access_id} (${t('acc.unknown')})`;
    return t('tl.card', { who, result: e.granted ? t('ov.granted') : t('ov.denied') });
  }
  if (e.kind === 'door') {
    if (!e.changed) return e.locked ? t('tl.door.state.locked') : t('tl.door.state.open');
    return e.locked ? t('tl.door.locked') : t('tl.door.open');
  }
  return incidentLabel(e.type);
}

export default function timelineView(main) {
  const params = new URLSearchParams((location.hash.split('?')[1]) || '');
  const at = dateInput('tl-at', t('tl.at'));
  const win = h('select', { id: 'tl-window' }, ...WINDOWS.map((s) => h('option', { value: s, selected: s === 900 }, windowText(s))));
  const device = h('select', { id: 'tl-device' });
  const form = h('form', { class: 'filters', id: 'tl-form' },
    h('div', {}, h('label', { for: 'tl-at' }, t('tl.at')), at),
    h('div', {}, h('label', { for: 'tl-window' }, t('tl.window')), win),
    h('div', {}, h('label', { for: 'tl-device' }, t('tl.device')), device),
    h('button', { type: 'submit', class: 'primary', id: 'tl-show' }, t('tl.show')));
  const status = h('p', { class: 'msg', role: 'status', id: 'tl-status' });
  const moment = h('div', { class: 'tiles', id: 'tl-moment' });
  const chart = h('div', { class: 'chart card', id: 'tl-chart' });
  const list = h('ol', { class: 'panel-list timeline card', id: 'tl-events' });
  main.append(h('h1', {}, t('tl.title')), form, status,
    h('h2', {}, t('tl.atmoment')), moment, chart, h('h2', {}, t('tl.what')), list);

  const given = params.get('at');
  at.setDate(given && !Number.isNaN(Date.parse(given)) ? new Date(given) : new Date());
  let plot = null;
  const slot = latest();

  function drawCourse(res, atSec) {
    if (plot) { plot.destroy(); plot = null; }
    // One temperature and one humidity line per device (all devices, or the one chosen).
    const ids = Object.keys(res.course).filter((d) => (res.course[d] || []).length && (!device.value || d === device.value)).sort();
    chart.hidden = !ids.length;
    chart.dataset.devices = ids.join(',');
    if (!ids.length) return;
    const half = res.bucket_ms / 2000;
    const endSec = Math.min(Date.parse(res.end) / 1000, Date.now() / 1000);
    const tables = ids.map((d) => {
      const buckets = res.course[d];
      return [buckets.map((b) => Date.parse(b.timestamp) / 1000 + half),
        buckets.map((b) => (b.tmp ? b.tmp.avg : null)), buckets.map((b) => (b.lf ? b.lf.avg : null))];
    });
    const [x, ...cols] = uPlot.join(tables);
    // Door-open spans of the devices shown; an open door at the end of what is known runs to the
    // device's last reading (never past it, nor past now).
    const doorOpen = [];
    ids.forEach((d, i) => {
      const xs = tables[i][0];
      const last = Math.min(endSec, xs.length ? xs[xs.length - 1] + half : endSec);
      let since = null;
      for (const e of res.events) {
        if (e.kind !== 'door' || e.device !== d) continue;
        const ts = Date.parse(e.timestamp) / 1000;
        if (!e.locked && since === null) since = ts;
        if (e.locked && since !== null) { doorOpen.push([since, ts]); since = null; }
      }
      if (since !== null && last > since) doorOpen.push([since, last]);
    });
    chart.dataset.doorSpans = doorOpen.map(([a, b]) => `${Math.round(a)}-${Math.round(b)}`).join(',');
    const width = Math.max(280, chart.clientWidth - 32);
    const num = (u, v) => (v == null ? '–' : fmtNumber(v));
    plot = new uPlot({
      width, height: 200,
      // The y axes fit the readings with a margin (one reading must not get a 0–60 axis).
      scales: {
        x: { time: true, range: () => [Date.parse(res.start) / 1000, Date.parse(res.end) / 1000] },
        y: { range: (u, lo, hi) => (lo == null ? [0, 1] : [Math.floor(lo - 1), Math.ceil(hi + 1)]) },
        '%': { range: (u, lo, hi) => (lo == null ? [0, 100] : [Math.max(0, Math.floor(lo - 2)), Math.min(100, Math.ceil(hi + 2))]) },
      },
      axes: [
        { stroke: css('--muted'), grid: { stroke: css('--border') }, size: 52, values: (u, s, a, sp, incr) => timeTicks(s, incr) },
        { stroke: css('--muted'), grid: { stroke: css('--border') }, values: (u, s, a, sp, incr) => s.map((v) => fmtNumber(v, incr < 1 ? 1 : 0)) },
        { side: 1, scale: '%', stroke: css('--muted'), grid: { show: false }, values: (u, s, a, sp, incr) => s.map((v) => fmtNumber(v, incr < 1 ? 1 : 0)) },
      ],
      series: [{ label: t('hist.time'), value: (u, v) => (v == null ? '–' : fmtDate(new Date(v * 1000))) },
        // Temperature solid, humidity dashed, one colour per device.
        ...ids.flatMap((d, i) => {
          const color = css(COLORS[i % COLORS.length]);
          return [{ label: `${d} °C`, stroke: color, width: 2, spanGaps: false, value: num },
            { label: `${d} %`, scale: '%', stroke: color, width: 1.5, dash: [6, 4], spanGaps: false, value: num }];
        })],
      hooks: { draw: [(u) => {
        const { ctx, bbox } = u;
        ctx.save();
        ctx.fillStyle = css('--door-span');
        for (const [a, b] of doorOpen) {
          const x0 = Math.max(bbox.left, u.valToPos(a, 'x', true)), x1 = Math.min(bbox.left + bbox.width, u.valToPos(b, 'x', true));
          if (x1 > x0) ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
        }
        const px = u.valToPos(atSec, 'x', true);
        ctx.strokeStyle = css('--fg'); ctx.lineWidth = 2 * devicePixelRatio; ctx.setLineDash([4, 4]);
        ctx.beginPath(); ctx.moveTo(px, bbox.top); ctx.lineTo(px, bbox.top + bbox.height); ctx.stroke();
        ctx.restore();
      }] },
    }, [x, ...cols], chart);
  }

  async function load() {
    let atSec;
    try { atSec = at.epoch(); } catch (e) { setMsg(status, e.message, 'error'); return; }
    if (atSec === undefined) { at.setDate(new Date()); atSec = at.epoch(); }
    setMsg(status, t('loading'));
    try {
      const res = await slot.run((signal) => api('/timeline', { query: { at: atSec, window: win.value, device: device.value }, signal }));
      clear(moment);
      for (const r of res.readings_at) {
        const door = r.locked === null ? '–' : r.locked ? t('ov.locked') : t('ov.unlocked');
        moment.append(h('article', { class: 'tile card', dataset: { device: r.device } },
          h('header', {}, h('h2', {}, r.device)),
          h('dl', {},
            h('div', {}, h('dt', {}, t('ov.tmp')), h('dd', { class: 'big', dataset: { field: 'tmp' } }, r.tmp === null ? '–' : `${fmtNumber(r.tmp)} °C`)),
            h('div', {}, h('dt', {}, t('ov.lf')), h('dd', { class: 'big', dataset: { field: 'lf' } }, r.lf === null ? '–' : `${fmtNumber(r.lf)} %`)),
            h('div', {}, h('dt', {}, t('ov.door')), h('dd', { dataset: { field: 'locked' } }, door))),
          h('p', { class: 'meta' }, fmtDate(r.timestamp))));
      }
      if (!res.readings_at.length) moment.append(h('p', { class: 'meta' }, t('tl.noreading')));
      clear(list);
      let marked = false;
      const mark = () => list.append(h('li', { class: 'at', id: 'tl-at-mark' }, h('time', {}, fmtDate(new Date(atSec * 1000))), t('tl.at')));
      for (const e of res.events) {
        const ts = Date.parse(e.timestamp) / 1000;
        if (!marked && ts > atSec) { mark(); marked = true; }
        list.append(h('li', { dataset: { kind: e.kind, device: e.device, granted: e.kind === 'access' ? String(e.granted) : undefined } },
          h('time', { datetime: e.timestamp }, fmtDate(e.timestamp)), h('strong', {}, e.device),
          h('span', { class: 'badge', dataset: { level: e.kind === 'incident' ? 'alarm' : 'stale' } }, t(`tl.kind.${e.kind}`)),
          h('span', { class: 'what' }, what(e))));
      }
      if (!marked) mark();
      setMsg(status, res.events.length ? (res.truncated ? t('tl.truncated') : '') : t('tl.none'), res.truncated ? 'warn' : 'info');
      drawCourse(res, atSec);
    } catch (e) { if (!isStale(e)) setMsg(status, e.message, 'error'); }
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  api('/devices').then((res) => {
    deviceOptions(device, res.devices, { all: t('acc.alldevices'), selected: params.get('device') || '' });
    load();
  }).catch((e) => setMsg(status, e.message, 'error'));
  return () => { slot.cancel(); if (plot) plot.destroy(); };
}

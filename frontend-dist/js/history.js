// History: temperature and humidity charts (uPlot) for one or several devices, with a min–max
// band for summarised ranges, labelled alert limits, incident lines and door-open spans.
import uPlot from '../vendor/uplot/uPlot.esm.js';
import { api, download, latest, isStale } from './api.js';
import { t, fmtDate, fmtNumber } from './i18n.js';
import { h, clear, setMsg } from './dom.js';
import { dateInput, timeTicks } from './dates.js';
import { levelsFor, loadLevels } from './levels.js';

const RANGES = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 };
const LIMIT = 10000;
// Ranges longer than this are drawn from GET /data/summary (min/avg/max per bucket, computed by
// the server) so a 30-day chart never downloads raw rows.
const RAW_MAX_SECONDS = 3 * 3600;
const BUCKETS = 400;
const COLORS = ['--accent', '#c2410c', '#15803d', '#9333ea', '#be185d', '#0e7490'];
let lastDevices = null;
let lastRange = '1h';

function css(name) {
  if (!name.startsWith('--')) return name;
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

/** `color` (#rrggbb) with alpha `a`, for band fills. */
function alpha(color, a) {
  const m = color.match(/^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i);
  return m ? `rgba(${parseInt(m[1], 16)},${parseInt(m[2], 16)},${parseInt(m[3], 16)},${a})` : color;
}

/** Inserts a null point where readings stop for a while, so the line breaks instead of bridging the gap. */
function breakGaps(table) {
  const x = table[0];
  if (x.length < 3) return;
  const d = [];
  for (let i = 1; i < x.length; i++) d.push(x[i] - x[i - 1]);
  const median = d.slice().sort((a, b) => a - b)[Math.floor(d.length / 2)];
  const limit = Math.max(5 * median, 60);
  for (let i = x.length - 1; i > 0; i--) {
    if (x[i] - x[i - 1] > limit) table.forEach((col, c) => col.splice(i, 0, c === 0 ? x[i - 1] + median : null));
  }
}

/** The y range that fits `values` with a margin (at least `minPad` either side). */
function fitRange(values, minPad, [floor, ceil]) {
  const v = values.filter((n) => typeof n === 'number' && Number.isFinite(n));
  if (!v.length) return [floor ?? 0, ceil ?? 1];
  let lo = Math.min(...v), hi = Math.max(...v);
  const pad = Math.max((hi - lo) * 0.15, minPad);
  lo = Math.floor(lo - pad); hi = Math.ceil(hi + pad);
  if (floor !== undefined) lo = Math.max(lo, floor);
  if (ceil !== undefined) hi = Math.min(hi, ceil);
  return [lo, hi];
}

/** Bucket width as words: "3.6 min", "2 h". */
function widthText(secs) {
  if (secs < 90) return `${fmtNumber(secs, 0)} s`;
  if (secs < 5400) return `${fmtNumber(secs / 60, secs % 60 ? 1 : 0)} min`;
  return `${fmtNumber(secs / 3600, secs % 3600 ? 1 : 0)} h`;
}

/** uPlot plugin: door-open spans, incident lines and the labelled limit lines. */
function marksPlugin(get, unit) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx, bbox } = u;
        const { incidents, unlocked, limits } = get();
        const dpr = devicePixelRatio;
        ctx.save();
        ctx.fillStyle = css('--door-span');
        const strip = css('--door-strip');
        for (const [a, b] of unlocked) {
          const x0 = Math.max(bbox.left, u.valToPos(a, 'x', true));
          const x1 = Math.min(bbox.left + bbox.width, u.valToPos(b, 'x', true));
          if (x1 <= x0) continue;
          ctx.fillRect(x0, bbox.top, Math.max(x1 - x0, dpr), bbox.height);
          ctx.save(); ctx.fillStyle = strip; ctx.fillRect(x0, bbox.top, Math.max(x1 - x0, dpr), 4 * dpr); ctx.restore();
        }
        ctx.strokeStyle = css('--alarm');
        ctx.lineWidth = 2 * dpr;
        for (const x of incidents) {
          const px = u.valToPos(x, 'x', true);
          if (px < bbox.left || px > bbox.left + bbox.width) continue;
          ctx.beginPath(); ctx.moveTo(px, bbox.top); ctx.lineTo(px, bbox.top + bbox.height); ctx.stroke();
        }
        const [ylo, yhi] = [u.scales.y.min, u.scales.y.max];
        ctx.font = `${12 * dpr}px system-ui, sans-serif`;
        ctx.textAlign = 'right';
        const edge = { above: 0, below: 0 }; // labels stacked at the top and bottom edges
        for (const l of limits) {
          const col = css(l.level === 'alarm' ? '--alarm' : '--warn');
          const text = `${l.label} · ${fmtNumber(l.value)} ${unit}`;
          ctx.fillStyle = col;
          if (l.value > yhi || l.value < ylo) {
            // Outside the fitted axis: named at the edge it lies beyond.
            const above = l.value > yhi;
            const k = edge[above ? 'above' : 'below']++;
            ctx.textBaseline = above ? 'top' : 'bottom';
            const y = above ? bbox.top + (6 + 15 * k) * dpr : bbox.top + bbox.height - (4 + 15 * k) * dpr;
            ctx.fillText(`${above ? '▲' : '▼'} ${text}`, bbox.left + bbox.width - 4 * dpr, y);
            continue;
          }
          const y = u.valToPos(l.value, 'y', true);
          ctx.save(); ctx.setLineDash([6 * dpr, 6 * dpr]); ctx.lineWidth = 1.5 * dpr; ctx.strokeStyle = col;
          ctx.beginPath(); ctx.moveTo(bbox.left, y); ctx.lineTo(bbox.left + bbox.width, y); ctx.stroke(); ctx.restore();
          ctx.textBaseline = 'bottom';
          ctx.fillText(text, bbox.left + bbox.width - 4 * dpr, y - 2 * dpr);
        }
        ctx.restore();
      }],
    },
  };
}

export default function historyView(main, { live }) {
  const devBox = h('fieldset', { class: 'devpick', id: 'history-devices' }, h('legend', {}, t('hist.devices')));
  const from = dateInput('history-from', t('hist.from'));
  const to = dateInput('history-to', t('hist.to'));
  const customBox = h('div', { class: 'toolbar', id: 'history-custom', hidden: true },
    h('div', {}, h('label', { for: 'history-from' }, t('hist.from')), from),
    h('div', {}, h('label', { for: 'history-to' }, t('hist.to')), to),
    h('button', { type: 'button', class: 'primary', id: 'history-apply', onclick: () => load() }, t('hist.show')));
  const buttons = {};
  const seg = h('div', { class: 'seg', role: 'group', 'aria-label': t('hist.range') },
    ...['1h', '24h', '7d', '30d', 'custom'].map((r) => {
      buttons[r] = h('button', { type: 'button', id: `range-${r}`, dataset: { range: r }, 'aria-pressed': String(r === lastRange), onclick: () => pick(r) }, t(`hist.${r}`));
      return buttons[r];
    }));
  const status = h('p', { class: 'msg', id: 'history-status', role: 'status' });
  const chartTmp = h('div', { id: 'chart-tmp', class: 'chart card', 'aria-label': t('hist.tmp') });
  const chartLf = h('div', { id: 'chart-lf', class: 'chart card', 'aria-label': t('hist.lf') });
  const bandNote = h('p', { class: 'meta', id: 'history-band-note', hidden: true }, t('hist.band'));
  main.append(h('h1', {}, t('hist.title')),
    h('div', { class: 'toolbar' }, devBox, h('div', {}, h('span', { class: 'sr-only' }, t('hist.range')), seg),
      h('button', { type: 'button', id: 'history-csv', onclick: () => csv() }, t('csv.download'))),
    customBox, status,
    h('div', { class: 'charts' }, h('h2', {}, t('hist.tmp')), chartTmp, h('h2', {}, t('hist.lf')), chartLf),
    bandNote, h('p', { class: 'meta' }, t('hist.markers')));

  let plots = [];
  let view = null; // what is drawn: {devices, summary, tables: Map(device → columns), xRange}
  let marks = { incidents: [], unlocked: [] };
  let limitsByDevice = new Map();
  let drawn = null; // wanted(...) of what the chart shows
  const slot = latest();

  const selected = () => [...devBox.querySelectorAll('input:checked')].map((i) => i.value);

  function pick(r) {
    lastRange = r;
    for (const [k, b] of Object.entries(buttons)) b.setAttribute('aria-pressed', String(k === r));
    customBox.hidden = r !== 'custom';
    if (r === 'custom') {
      if (!from.value) from.setDate(new Date(Date.now() - 86400000));
      if (!to.value) to.setDate(new Date());
      from.focus();
      return;
    }
    load();
  }

  function destroy() { plots.forEach((p) => p.destroy()); plots = []; }

  /** The limit lines of the shown devices for `metric`, each named once. */
  function limitLines(metric) {
    const seen = new Map();
    for (const d of view.devices) {
      for (const l of levelsFor(d, limitsByDevice.get(d))[metric]) seen.set(`${l.label}|${l.value}`, l);
    }
    return [...seen.values()];
  }

  /** The aligned data and series of one chart (metric 'tmp' or 'lf'). */
  function chartData(metric) {
    const tables = [];
    const series = [{ label: t('hist.time'), value: (u, v) => (v == null ? '–' : fmtDate(new Date(v * 1000))) }];
    const bands = [];
    const num = (u, v) => (v == null ? '–' : fmtNumber(v));
    view.devices.forEach((d, i) => {
      const cols = view.tables.get(d);
      if (!cols) return;
      const color = css(COLORS[i % COLORS.length]);
      const name = view.devices.length > 1 ? d : (metric === 'tmp' ? t('hist.tmp') : t('hist.lf'));
      const base = series.length;
      if (view.summary) {
        tables.push([cols.x, cols[metric].avg, cols[metric].min, cols[metric].max]);
        // A device with few buckets (it joined late) gets dots, or a lone bucket would not show.
        series.push({ label: `${name} ${t('hist.avg')}`, stroke: color, width: 2, spanGaps: false, points: { show: cols.x.length < 60, size: 7 }, value: num },
          { label: t('hist.min'), stroke: alpha(color, 0.5), width: 1, spanGaps: false, points: { show: false }, value: num },
          { label: t('hist.max'), stroke: alpha(color, 0.5), width: 1, spanGaps: false, points: { show: false }, value: num });
        bands.push({ series: [base + 2, base + 1], fill: alpha(color, 0.22) });
      } else {
        tables.push([cols.x, cols[metric]]);
        series.push({ label: name, stroke: color, width: 2, spanGaps: false, points: { show: cols.x.length < 200 }, value: num });
      }
    });
    const data = tables.length ? uPlot.join(tables) : [[]];
    return { data, series, bands };
  }

  function draw() {
    destroy();
    const width = Math.max(280, chartTmp.clientWidth - 32);
    const height = width < 500 ? 200 : 260;
    const axisColor = css('--muted'), grid = css('--border');
    const sync = uPlot.sync('rzmon-history');
    const mk = (el, metric, unit, minPad, bounds) => {
      const { data, series, bands } = chartData(metric);
      const limits = limitLines(metric);
      const yVals = data.slice(1).flat();
      const yRange = fitRange(yVals, minPad, bounds);
      el.dataset.thresholds = JSON.stringify(limits.map((l) => ({ label: l.label, value: l.value })));
      el.dataset.band = String(bands.length > 0);
      el.dataset.points = String(data[0].length);
      el.dataset.yRange = yRange.join(',');
      return new uPlot({
        width, height, plugins: [marksPlugin(() => ({ ...marks, limits }), unit)],
        cursor: { sync: { key: sync.key } },
        // The requested range, not the data's: one reading must not stretch the axis over years.
        scales: { x: { time: true, range: () => view.xRange }, y: { range: () => yRange } },
        axes: [
          { stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 52,
            values: (u, splits, ax, space, incr) => { const v = timeTicks(splits, incr); el.dataset.xTicks = v.join('|'); return v; } },
          { stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 56,
            values: (u, splits, ax, space, incr) => {
              const digits = Number.isInteger(incr) ? 0 : Number.isInteger(Math.round(incr * 1e6) / 1e5) ? 1 : 2;
              const v = splits.map((s) => fmtNumber(s, digits));
              el.dataset.yTicks = v.join('|');
              return v;
            } },
        ],
        series, bands,
      }, data, el);
    };
    plots.push(mk(chartTmp, 'tmp', '°C', 1, [undefined, undefined]));
    plots.push(mk(chartLf, 'lf', '%', 2, [0, 100]));
    bandNote.hidden = !view.summary;
  }

  function range() {
    if (lastRange === 'custom') return [from.epoch(), to.epoch()];
    const now = Math.floor(Date.now() / 1000);
    return [now - RANGES[lastRange], now];
  }

  /** What the chart is asked to show: devices and range (a fixed range by its name). */
  const wanted = (devices, start, end) => JSON.stringify([devices, lastRange === 'custom' ? [start, end] : lastRange]);

  /** One CSV file per selected device, of the shown range (the token stays in the header). A
   * custom range typed but not yet shown is drawn first, so the files hold what the page shows. */
  async function csv() {
    const devices = selected();
    if (!devices.length) { setMsg(status, t('hist.pickone'), 'warn'); return; }
    let start, end;
    try { [start, end] = range(); } catch (e) { setMsg(status, e.message, 'error'); return; }
    if (wanted(devices, start, end) !== drawn) await load();
    try {
      for (const device of devices) {
        await download('/data.csv', { query: { device, start_date: start, end_date: end }, filename: `${device}.csv` });
      }
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  /** Columns {x, tmp, lf} (raw) or {x, tmp:{avg,min,max}, lf:{...}} (summary), and door spans. */
  function columns(data, summary, unlocked) {
    if (summary) {
      const width = data.bucket_ms / 1000;
      const c = { x: [], tmp: { avg: [], min: [], max: [] }, lf: { avg: [], min: [], max: [] }, count: 0 };
      for (const b of data.buckets) {
        const ts = Date.parse(b.timestamp) / 1000;
        c.x.push(ts + width / 2);
        c.count += b.count;
        for (const m of ['tmp', 'lf']) for (const k of ['avg', 'min', 'max']) c[m][k].push(b[m] ? b[m][k] : null);
        if (typeof b.locked === 'number' && b.locked < 1) unlocked.push([ts, ts + width]);
      }
      c.buckets = data.buckets.length;
      c.width = width;
      const tbl = [c.x, c.tmp.avg, c.tmp.min, c.tmp.max, c.lf.avg, c.lf.min, c.lf.max];
      breakGaps(tbl);
      return c;
    }
    const c = { x: [], tmp: [], lf: [], count: data.data.length };
    let openSince = null;
    for (const r of data.data.slice().reverse()) {
      const ts = Date.parse(r.timestamp) / 1000;
      c.x.push(ts);
      c.tmp.push(typeof r.data.tmp === 'number' ? r.data.tmp : null);
      c.lf.push(typeof r.data.lf === 'number' ? r.data.lf : null);
      if (r.data.locked === false && openSince === null) openSince = ts;
      if (r.data.locked === true && openSince !== null) { unlocked.push([openSince, ts]); openSince = null; }
    }
    if (openSince !== null) unlocked.push([openSince, c.x[c.x.length - 1]]);
    breakGaps([c.x, c.tmp, c.lf]);
    return c;
  }

  async function load() {
    const devices = selected();
    if (!devices.length) { setMsg(status, t('hist.pickone'), 'warn'); return; }
    lastDevices = devices;
    let start, end;
    try { [start, end] = range(); } catch (e) { setMsg(status, e.message, 'error'); return; }
    setMsg(status, t('loading'));
    try {
      await loadLevels();
      const q = { start_date: start, end_date: end };
      const summary = (end ?? Date.now() / 1000) - (start ?? 0) > RAW_MAX_SECONDS;
      const [datas, inc] = await slot.run((signal) => Promise.all([
        Promise.all(devices.map((device) => (summary
          ? api('/data/summary', { query: { ...q, device, buckets: BUCKETS }, signal })
          : api('/data', { query: { ...q, device, limit: LIMIT }, signal })))),
        api('/incidents', { query: { ...q, limit: 1000 }, signal }).catch((e) => {
          if (isStale(e)) throw e;
          return { incidents: [] };
        }),
      ]));
      const unlocked = [];
      const tables = new Map();
      let n = 0, buckets = 0, width = 0, truncated = false;
      devices.forEach((d, i) => {
        const c = columns(datas[i], summary, unlocked);
        tables.set(d, c);
        n += c.count;
        buckets += c.buckets || 0;
        width = c.width || width;
        if (!summary && c.count >= LIMIT) truncated = true;
      });
      marks = { incidents: inc.incidents.filter((i) => devices.includes(i.device)).map((i) => Date.parse(i.timestamp) / 1000), unlocked };
      const xs = [...tables.values()].flatMap((c) => [c.x[0], c.x[c.x.length - 1]]).filter((v) => v !== undefined);
      view = { devices, summary, tables, xRange: [start ?? Math.min(...xs, 0), end ?? Math.max(...xs, 1)] };
      draw();
      let msg = !n ? t('hist.nodata') : summary ? t('hist.buckets', { n: fmtNumber(n, 0), m: fmtNumber(buckets, 0), w: widthText(width) }) : t('hist.points', { n: fmtNumber(n, 0) });
      if (truncated) msg += ` ${t('hist.truncated', { n: LIMIT })}`;
      setMsg(status, msg, n ? 'info' : 'warn');
      chartTmp.dataset.readings = String(n);
      chartTmp.dataset.buckets = String(buckets);
      drawn = wanted(devices, start, end);
    } catch (e) {
      if (!isStale(e)) setMsg(status, e.message, 'error');
    }
  }

  // Fixed raw ranges follow the live telemetry: append new points and slide the window.
  let redraw = null;
  const offLive = live.on('telemetry', (m) => {
    if (!view || view.summary || lastRange === 'custom' || plots.length !== 2) return;
    const c = view.tables.get(m.device);
    if (!c) return;
    const ts = Date.parse(m.timestamp) / 1000;
    if (c.x.length && ts <= c.x[c.x.length - 1]) return;
    c.x.push(ts);
    c.tmp.push(typeof m.data.tmp === 'number' ? m.data.tmp : null);
    c.lf.push(typeof m.data.lf === 'number' ? m.data.lf : null);
    const cutoff = ts - RANGES[lastRange];
    while (c.x.length && c.x[0] < cutoff) { c.x.shift(); c.tmp.shift(); c.lf.shift(); }
    view.xRange = [cutoff, ts];
    if (!redraw) redraw = setTimeout(() => { redraw = null; if (view) draw(); }, 1000);
  });
  let resizeTimer = null;
  const onResize = () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => {
    const width = Math.max(280, chartTmp.clientWidth - 32);
    plots.forEach((p) => p.setSize({ width, height: width < 500 ? 200 : 260 }));
  }, 150); };
  window.addEventListener('resize', onResize);

  (async () => {
    try {
      const res = await api('/devices');
      const devs = res.devices;
      limitsByDevice = new Map(devs.map((d) => [d.id, d.limits || {}]));
      const wanted = (location.hash.match(/device=([\w,-]+)/) || [])[1];
      const chosen = new Set(wanted ? wanted.split(',') : (lastDevices || (devs[0] ? [devs[0].id] : [])));
      clear(devBox).append(h('legend', {}, t('hist.devices')));
      for (const d of devs) {
        const box = h('input', { type: 'checkbox', value: d.id, checked: chosen.has(d.id), id: `history-dev-${d.id}` });
        box.addEventListener('change', load);
        devBox.append(h('label', { class: 'check', for: `history-dev-${d.id}` }, box, ` ${d.id}`));
      }
      if (!devs.length) { setMsg(status, t('ov.empty'), 'warn'); return; }
      if (!selected().length) devBox.querySelector('input').checked = true;
      customBox.hidden = lastRange !== 'custom';
      load();
    } catch (e) { setMsg(status, e.message, 'error'); }
  })();

  return () => { offLive(); clearTimeout(redraw); destroy(); slot.cancel(); window.removeEventListener('resize', onResize); };
}

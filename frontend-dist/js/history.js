// History: temperature and humidity charts (uPlot) per device, with incident and door markers.
import uPlot from '../vendor/uplot/uPlot.esm.js';
import { api, download, latest, isStale } from './api.js';
import { t, fmtDate } from './i18n.js';
import { h, setMsg, deviceOptions, inputToEpoch, toLocalInput } from './dom.js';
import { levels, loadLevels } from './levels.js';

const RANGES = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 };
const LIMIT = 10000;
// Ranges longer than this are drawn from GET /data/summary (min/avg/max per bucket, computed by
// the server) so a 30-day chart never downloads raw rows.
const RAW_MAX_SECONDS = 3 * 3600;
const BUCKETS = 400;
let lastDevice = null;
let lastRange = '1h';

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888'; }

/** uPlot plugin: vertical lines at incident times and shaded spans while the door was open. */
function markersPlugin(getMarks) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx, bbox } = u;
        const { incidents, unlocked } = getMarks();
        ctx.save();
        ctx.fillStyle = 'rgba(240,160,0,0.12)';
        for (const [a, b] of unlocked) {
          const x0 = Math.max(bbox.left, u.valToPos(a, 'x', true));
          const x1 = Math.min(bbox.left + bbox.width, u.valToPos(b, 'x', true));
          if (x1 > x0) ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
        }
        ctx.strokeStyle = css('--alarm');
        ctx.lineWidth = 2 * devicePixelRatio;
        for (const x of incidents) {
          const px = u.valToPos(x, 'x', true);
          if (px < bbox.left || px > bbox.left + bbox.width) continue;
          ctx.beginPath(); ctx.moveTo(px, bbox.top); ctx.lineTo(px, bbox.top + bbox.height); ctx.stroke();
        }
        ctx.restore();
      }],
    },
  };
}

/** Inserts a null point where readings stop for a while, so the line breaks instead of bridging the gap. */
function breakGaps(x, ...ys) {
  if (x.length < 3) return;
  const d = [];
  for (let i = 1; i < x.length; i++) d.push(x[i] - x[i - 1]);
  const median = d.slice().sort((a, b) => a - b)[Math.floor(d.length / 2)];
  const limit = Math.max(5 * median, 60);
  for (let i = x.length - 1; i > 0; i--) {
    if (x[i] - x[i - 1] > limit) {
      x.splice(i, 0, x[i - 1] + median);
      ys.forEach((y) => y.splice(i, 0, null));
    }
  }
}

export default function historyView(main, { live }) {
  const devSel = h('select', { id: 'history-device' });
  const from = h('input', { id: 'history-from', type: 'datetime-local' });
  const to = h('input', { id: 'history-to', type: 'datetime-local' });
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
  main.append(h('h1', {}, t('hist.title')),
    h('div', { class: 'toolbar' },
      h('div', {}, h('label', { for: 'history-device' }, t('hist.device')), devSel),
      h('div', {}, h('span', { class: 'sr-only' }, t('hist.range')), seg),
      h('button', { type: 'button', id: 'history-csv', onclick: () => csv() }, t('csv.download'))),
    customBox, status,
    h('div', { class: 'charts' }, h('h2', {}, t('hist.tmp')), chartTmp, h('h2', {}, t('hist.lf')), chartLf),
    h('p', { class: 'meta' }, t('hist.markers')));

  let plots = [];
  let series = null; // [x, tmp, lf] as drawn, ascending
  let xRange = [0, 1]; // the shown time window (epoch s), also when it holds a single reading
  let marks = { incidents: [], unlocked: [] };
  const slot = latest();

  function pick(r) {
    lastRange = r;
    for (const [k, b] of Object.entries(buttons)) b.setAttribute('aria-pressed', String(k === r));
    customBox.hidden = r !== 'custom';
    if (r === 'custom') {
      if (!from.value) from.value = toLocalInput(new Date(Date.now() - 86400000));
      if (!to.value) to.value = toLocalInput(new Date());
      from.focus();
      return;
    }
    load();
  }

  function destroy() { plots.forEach((p) => p.destroy()); plots = []; }

  function draw(x, tmp, lf) {
    destroy();
    const width = Math.max(280, chartTmp.clientWidth - 32);
    const height = width < 500 ? 200 : 260;
    const axisColor = css('--muted'), grid = css('--border');
    const axes = [
      { stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
      { stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 50 },
    ];
    const sync = uPlot.sync('rzmon-history');
    const mk = (el, label, data, color, bands) => new uPlot({
      width, height, plugins: [markersPlugin(() => marks)],
      cursor: { sync: { key: sync.key } },
      // The requested range, not the data's: one reading must not stretch the axis over years.
      scales: { x: { time: true, range: () => xRange } },
      axes,
      series: [{ value: (u, v) => (v == null ? '–' : fmtDate(new Date(v * 1000))) },
        { label, stroke: color, width: 2, spanGaps: false, points: { show: x.length < 200 }, value: (u, v) => (v == null ? '–' : v.toFixed(1)) }],
      hooks: { drawAxes: [(u) => {
        const { ctx, bbox } = u;
        ctx.save(); ctx.setLineDash([6, 6]); ctx.lineWidth = 1;
        for (const [val, col] of bands) {
          const y = u.valToPos(val, 'y', true);
          if (y < bbox.top || y > bbox.top + bbox.height) continue;
          ctx.strokeStyle = col; ctx.beginPath(); ctx.moveTo(bbox.left, y); ctx.lineTo(bbox.left + bbox.width, y); ctx.stroke();
        }
        ctx.restore();
      }] },
    }, [x, data], el);
    const lv = levels();
    plots.push(mk(chartTmp, t('hist.tmp'), tmp, css('--alarm'), [[lv.tmpWarn, css('--warn')], [lv.tmpAlarm, css('--alarm')]]));
    plots.push(mk(chartLf, t('hist.lf'), lf, css('--accent'), [[lv.lfLow, css('--warn')], [lv.lfHigh, css('--warn')]]));
    chartTmp.dataset.points = String(x.length);
    chartLf.dataset.points = String(x.length);
  }

  function range() {
    if (lastRange === 'custom') return [inputToEpoch(from.value), inputToEpoch(to.value)];
    const now = Math.floor(Date.now() / 1000);
    return [now - RANGES[lastRange], now];
  }

  async function csv() {
    const device = devSel.value;
    if (!device) return;
    const [start, end] = range();
    try {
      await download('/data.csv', { query: { device, start_date: start, end_date: end }, filename: `${device}.csv` });
    } catch (e) { setMsg(status, e.message, 'error'); }
  }

  async function load() {
    const device = devSel.value;
    if (!device) return;
    lastDevice = device;
    const [start, end] = range();
    setMsg(status, t('loading'));
    try {
      await loadLevels();
      const q = { device, start_date: start, end_date: end };
      const summary = end - start > RAW_MAX_SECONDS;
      const [data, inc] = await slot.run((signal) => Promise.all([
        summary
          ? api('/data/summary', { query: { ...q, buckets: BUCKETS }, signal })
          : api('/data', { query: { ...q, limit: LIMIT }, signal }),
        api('/incidents', { query: { ...q, limit: 1000 }, signal }).catch((e) => {
          if (isStale(e)) throw e;
          return { incidents: [] };
        }),
      ]));
      const x = [], tmp = [], lf = [];
      const unlocked = [];
      let rows = [];
      if (summary) {
        const width = data.bucket_ms / 1000;
        rows = data.buckets;
        for (const b of rows) {
          const ts = Date.parse(b.timestamp) / 1000;
          x.push(ts);
          tmp.push(b.tmp ? b.tmp.avg : null);
          lf.push(b.lf ? b.lf.avg : null);
          if (typeof b.locked === 'number' && b.locked < 1) unlocked.push([ts, ts + width]);
        }
      } else {
        rows = data.data.slice().reverse();
        let openSince = null;
        for (const r of rows) {
          const ts = Date.parse(r.timestamp) / 1000;
          x.push(ts);
          tmp.push(typeof r.data.tmp === 'number' ? r.data.tmp : null);
          lf.push(typeof r.data.lf === 'number' ? r.data.lf : null);
          if (r.data.locked === false && openSince === null) openSince = ts;
          if (r.data.locked === true && openSince !== null) { unlocked.push([openSince, ts]); openSince = null; }
        }
        if (openSince !== null) unlocked.push([openSince, x[x.length - 1]]);
      }
      breakGaps(x, tmp, lf);
      marks = { incidents: inc.incidents.map((i) => Date.parse(i.timestamp) / 1000), unlocked };
      series = [x, tmp, lf];
      xRange = [start ?? x[0] ?? 0, end ?? x[x.length - 1] ?? 1];
      draw(x, tmp, lf);
      let msg = rows.length ? t('hist.points', { n: rows.length }) : t('hist.nodata');
      if (!summary && rows.length >= LIMIT) msg += ` ${t('hist.truncated', { n: LIMIT })}`;
      setMsg(status, msg, rows.length ? 'info' : 'warn');
    } catch (e) {
      if (!isStale(e)) setMsg(status, e.message, 'error');
    }
  }

  devSel.addEventListener('change', load);
  // Fixed ranges follow the live telemetry: append new points and slide the window.
  const offLive = live.on('telemetry', (m) => {
    if (!series || lastRange === 'custom' || m.device !== devSel.value || plots.length !== 2) return;
    const ts = Date.parse(m.timestamp) / 1000;
    const [x, tmp, lf] = series;
    if (x.length && ts <= x[x.length - 1]) return;
    x.push(ts);
    tmp.push(typeof m.data.tmp === 'number' ? m.data.tmp : null);
    lf.push(typeof m.data.lf === 'number' ? m.data.lf : null);
    const cutoff = ts - RANGES[lastRange];
    while (x.length && x[0] < cutoff) { x.shift(); tmp.shift(); lf.shift(); }
    xRange = [cutoff, ts];
    plots[0].setData([x, tmp]);
    plots[1].setData([x, lf]);
    chartTmp.dataset.points = String(x.length);
    chartLf.dataset.points = String(x.length);
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
      const wanted = (location.hash.match(/device=([\w-]+)/) || [])[1];
      deviceOptions(devSel, devs, { selected: wanted || lastDevice || (devs[0] && devs[0].id) });
      if (!devs.length) { setMsg(status, t('ov.empty'), 'warn'); return; }
      customBox.hidden = lastRange !== 'custom';
      load();
    } catch (e) { setMsg(status, e.message, 'error'); }
  })();

  return () => { offLive(); destroy(); slot.cancel(); window.removeEventListener('resize', onResize); };
}

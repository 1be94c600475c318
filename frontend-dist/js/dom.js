// Tiny DOM helpers: h('div', {class: 'x', dataset: {a: 1}, onclick}, ...children).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

export function setMsg(el, text, kind = 'info') {
  el.textContent = text || '';
  el.className = `msg ${text ? kind : ''}`.trim();
}

/** Epoch seconds from a datetime-local / date input value ('' → undefined). */
export function inputToEpoch(v) {
  if (!v) return undefined;
  const ms = new Date(v).getTime();
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

/** A value for <input type="datetime-local"> in local time. */
export function toLocalInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function deviceOptions(select, devices, { all = null, selected } = {}) {
  clear(select);
  if (all) select.append(h('option', { value: '' }, all));
  for (const d of devices) select.append(h('option', { value: d.id, selected: d.id === selected }, d.id));
}

/** Gives each body cell a data-label from its column header, so narrow screens can stack rows. */
export function responsiveTable(table) {
  table.classList.add('stack');
  const labelRow = (tr) => {
    const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
    [...tr.children].forEach((td, i) => { if (heads[i]) td.dataset.label = heads[i]; });
  };
  const body = table.tBodies[0];
  [...body.rows].forEach(labelRow);
  new MutationObserver((muts) => muts.forEach((m) => m.addedNodes.forEach((n) => { if (n.tagName === 'TR') labelRow(n); })))
    .observe(body, { childList: true });
  return table;
}

/**
 * The newest live rows a list page received (at most 50, from the last 30 s). A list answer can
 * predate them — asked before they arrived, or before they were committed (the live event comes
 * first) — so after an answer replaced the rows, `missing(answer)` gives back the ones it lacks,
 * oldest first, for the page to put on top again. `key(row)` identifies a row in both.
 */
export function recentLive(key, { max = 50, ageMs = 30000 } = {}) {
  const rows = [];
  return {
    add(r) { rows.push({ r, at: Date.now() }); if (rows.length > max) rows.shift(); },
    missing(list) {
      const have = new Set(list.map(key));
      const now = Date.now();
      return rows.filter((x) => now - x.at < ageMs && !have.has(key(x.r))).map((x) => x.r);
    },
  };
}

// bcml compatibility widgets: one hand-written ES module (no imports, no build step).
// Runs under anywidget (export default {render}), in the static HTML report (createStaticModel)
// and under node --test (the pure helpers). Importing it touches no document/window.

export const PALETTE = Object.freeze({
  training: "#0072B2", testing: "#E69F00", progress: "#009E73", common: "#F0E442",
  regress: "#D55E00", h1: "#56B4E9", h2: "#0072B2", incompatible: "#CC79A7", h1line: "#000000",
});
export const REGIONS = Object.freeze(["progress", "common", "regress"]);
const REGION_LABEL = { progress: "Progress", common: "Common", regress: "Regress" };
const REGION_DESC = { progress: "only h1 wrong", common: "both wrong", regress: "only h2 wrong" };
const BAR_LABEL = { h1: "h1 errors", h2: "h2 errors", incompatible: "incompatible" };
export const EMPTY_SELECTION = Object.freeze({ point: null, region: null, class: null, bar: null });
export const CSV_HEADER = "instance_id,h1_prediction,h2_prediction,ground_truth";

// ---------------------------------------------------------------- pure helpers

const clean = (v) => (+v.toPrecision(12)) || 0; // also turns -0 into 0

/** ~n round ("1, 2, 5 x 10^k") tick values covering [lo, hi]; [lo] when lo == hi. */
export function niceTicks(lo, hi, n = 5) {
  lo = +lo; hi = +hi;
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === hi) return [clean(lo)];
  const step = niceStep((hi - lo) / Math.max(1, n));
  const a = Math.ceil(lo / step - 1e-9), b = Math.floor(hi / step + 1e-9);
  const out = [];
  for (let k = a; k <= b; k++) out.push(clean(k * step));
  return out;
}

/** The round step (1, 2 or 5 times a power of ten) nearest to raw. */
export function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return clean((f >= 7.0710678 ? 10 : f >= 3.1622777 ? 5 : f >= 1.4142136 ? 2 : 1) * p);
}

/** Decimals needed to tell ticks apart. */
export function tickDecimals(ticks) {
  if (ticks.length < 2) return 3;
  const step = Math.abs(ticks[1] - ticks[0]);
  return Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}

/** [lo, hi] padded by frac of the span (or around a single value). */
export function padDomain(lo, hi, frac = 0.05) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo > hi) [lo, hi] = [hi, lo];
  const span = hi - lo;
  const pad = span > 0 ? span * frac : Math.max(Math.abs(lo) * frac, 0.01);
  return [lo - pad, hi + pad];
}

/** Area of the intersection of two circles of radii r1, r2 whose centres are d apart. */
export function lensArea(r1, r2, d) {
  r1 = Math.abs(r1); r2 = Math.abs(r2); d = Math.abs(d);
  if (r1 === 0 || r2 === 0 || d >= r1 + r2) return 0;
  if (d <= Math.abs(r1 - r2)) { const r = Math.min(r1, r2); return Math.PI * r * r; }
  const c1 = Math.min(1, Math.max(-1, (d * d + r1 * r1 - r2 * r2) / (2 * d * r1)));
  const c2 = Math.min(1, Math.max(-1, (d * d + r2 * r2 - r1 * r1) / (2 * d * r2)));
  const k = (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2);
  return r1 * r1 * Math.acos(c1) + r2 * r2 * Math.acos(c2) - 0.5 * Math.sqrt(Math.max(0, k));
}

/** Venn layout for |A| = a, |B| = b, |A and B| = ab: the larger set's radius is R, areas are
 * proportional to the counts, and the centre distance d makes the lens area proportional to ab
 * (bisection). Nested (d = |r1 - r2|) when one set holds the other, disjoint with a gap when
 * ab = 0; null when both sets are empty. */
export function vennLayout(a, b, ab, R = 60, gap = 10) {
  a = Math.max(0, +a || 0); b = Math.max(0, +b || 0); ab = Math.max(0, Math.min(+ab || 0, a, b));
  if (a === 0 && b === 0) return null;
  const big = Math.max(a, b);
  const r1 = R * Math.sqrt(a / big), r2 = R * Math.sqrt(b / big);
  if (ab === 0) return { r1, r2, d: r1 + r2 + gap, kind: "disjoint" };
  if (ab >= Math.min(a, b)) return { r1, r2, d: Math.abs(r1 - r2), kind: "nested" };
  const target = Math.PI * R * R * ab / big;
  let lo = Math.abs(r1 - r2), hi = r1 + r2; // lensArea decreases from pi*min(r)^2 to 0 on [lo, hi]
  for (let i = 0; i < 200 && hi - lo > 1e-13 * R; i++) {
    const mid = (lo + hi) / 2;
    if (lensArea(r1, r2, mid) > target) lo = mid; else hi = mid;
  }
  return { r1, r2, d: (lo + hi) / 2, kind: "overlap" };
}

/** Number of pages (at least 1) for total items, size per page. */
export function pageCount(total, size) {
  size = Math.max(1, Math.floor(+size) || 1);
  return Math.max(1, Math.ceil(Math.max(0, +total || 0) / size));
}

/** page clamped to [0, pages - 1]. */
export function clampPage(page, pages) {
  page = Math.floor(+page) || 0;
  return Math.min(Math.max(0, page), Math.max(1, pages) - 1);
}

/** {total, page, pages, items}: page (0-based, clamped) of items, size per page. */
export function pageSlice(items, page, size) {
  size = Math.max(1, Math.floor(+size) || 1);
  const pages = pageCount(items.length, size);
  const p = clampPage(page, pages);
  return { total: items.length, page: p, pages, items: items.slice(p * size, p * size + size) };
}

/** The sweep's lambda grid: the sorted distinct values of lambdas, or of the points' lambda_c. */
export function lambdaGrid(lambdas, points) {
  let vals = (lambdas && lambdas.length ? lambdas : (points || []).map((p) => p.lambda_c))
    .filter((v) => typeof v === "number" && Number.isFinite(v));
  vals = [...new Set(vals)].sort((x, y) => x - y);
  return vals;
}

/** Smallest gap between consecutive grid values ("any" for fewer than two). */
export function gridStep(grid) {
  let step = Infinity;
  for (let i = 1; i < grid.length; i++) step = Math.min(step, grid[i] - grid[i - 1]);
  return Number.isFinite(step) && step > 0 ? clean(step) : "any";
}

/** Filters showing everything on the grid. */
export function defaultFilters(grid) {
  return { training: true, testing: true, new_error: true, strict_imitation: true,
    lambda_min: grid && grid.length ? grid[0] : 0, lambda_max: grid && grid.length ? grid[grid.length - 1] : 1 };
}

/** Whether a sweep point passes the filters (missing filter keys show everything). */
export function pointVisible(p, f) {
  f = f || {};
  const on = (k) => f[k] !== false;
  const split = (p.training && on("training")) || (p.testing && on("testing"));
  const loss = (p["new-error"] && on("new_error")) || (p["strict-imitation"] && on("strict_imitation"));
  const lo = f.lambda_min == null ? -Infinity : f.lambda_min - 1e-9;
  const hi = f.lambda_max == null ? Infinity : f.lambda_max + 1e-9;
  return !!(split && loss && p.lambda_c >= lo && p.lambda_c <= hi);
}

/** The points passing the filters, in order. */
export function visiblePoints(points, filters) {
  return (points || []).filter((p) => pointVisible(p, filters));
}

const num = (v) => typeof v === "number" && Number.isFinite(v);
/** A point has the three values a plot needs. */
export const plottable = (p) => num(p.performance) && num(p.btc) && num(p.bec);

/** The selection after a filters change: cleared when the selected point is hidden. */
export function selectionAfterFilters(selection, points, filters) {
  const sel = selection || EMPTY_SELECTION;
  if (sel.point == null) return sel;
  const p = (points || []).find((q) => q.datapoint_index === sel.point);
  return p && pointVisible(p, filters) ? sel : { ...EMPTY_SELECTION };
}

/** The instance-table filter a selection stands for: {}, {region} or {class, bar}. */
export function selectionFilter(sel) {
  if (!sel) return {};
  if (sel.region) return { region: sel.region };
  if (sel.class != null && sel.bar) return { class: sel.class, bar: sel.bar };
  return {};
}

const sameClass = (x, y) => x === y || String(x) === String(y);

/** The instance ids a filter selects from an evaluation, in their list's order; null for {}
 * (every error instance). progress = h1 ids not in both, regress = h2 ids not in both, common =
 * both; bar h1/h2: the class's error_instance_ids; incompatible: its incompatibleInstanceIds. */
export function filterIds(ev, filter) {
  if (!filter || (filter.region == null && filter.class == null)) return null;
  if (filter.region != null) {
    const [h1 = [], h2 = [], both = []] = ev.models_error_overlap || [];
    const inBoth = new Set(both);
    if (filter.region === "common") return both.slice();
    if (filter.region === "progress") return h1.filter((id) => !inBoth.has(id));
    if (filter.region === "regress") return h2.filter((id) => !inBoth.has(id));
    throw new Error(`unknown region ${JSON.stringify(filter.region)}`);
  }
  const bar = filter.bar;
  if (bar === "h1" || bar === "h2") {
    const e = (ev[`${bar}_accuracy_by_class`] || []).find((x) => sameClass(x.class, filter.class));
    return e ? (e.error_instance_ids || []).slice() : [];
  }
  if (bar === "incompatible") {
    const e = (ev.h2_incompatible_instance_ids_by_class || []).find((x) => sameClass(x.class, filter.class));
    return e ? (e.incompatibleInstanceIds || []).slice() : [];
  }
  throw new Error(`unknown bar ${JSON.stringify(bar)}`);
}

/** Positions in instanceIds (error_instances order) of the ids selected (all for null). */
export function selectRows(instanceIds, ids) {
  if (ids == null) return instanceIds.map((_, i) => i);
  const want = new Set(ids);
  const out = [];
  instanceIds.forEach((id, i) => { if (want.has(id)) out.push(i); });
  return out;
}

/** Region counts {progress, common, regress} of models_error_overlap. */
export function regionCounts(overlap) {
  const [h1 = [], h2 = [], both = []] = overlap || [];
  return { progress: h1.length - both.length, common: both.length, regress: h2.length - both.length };
}

const csvField = (v) => {
  const s = v == null ? "" : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};
/** CSV text (header + one line per row, "\n" line ends, trailing newline). */
export function csvText(rows) {
  const lines = [CSV_HEADER];
  for (const r of rows) lines.push([r.instance_id, r.h1_prediction, r.h2_prediction, r.ground_truth].map(csvField).join(","));
  return lines.join("\n") + "\n";
}

/** The download's file name (same rule as the Python side). */
export function csvFilename(index, filter, classNames) {
  let name = "errors";
  if (filter && filter.region != null) name = filter.region;
  else if (filter && filter.class != null) name = `${filter.bar}-class-${className(filter.class, classNames)}`;
  return `bcml-${index}-${name}.csv`;
}

/** Display name of a class value. */
export function className(v, names) {
  if (v == null) return "";
  const n = names && names[String(v)];
  return n != null ? String(n) : String(v);
}

/** (h2 - h1) / h1 * 100, or null when undefined. */
export function relativeChange(h1, h2) {
  if (!num(h1) || !num(h2) || h1 === 0) return null;
  return (h2 - h1) / h1 * 100;
}

/** v with d decimals, "n/a" for null/NaN. */
export function fmt(v, d = 3) { return num(v) ? v.toFixed(d) : "n/a"; }

/** Signed percentage with 3 decimals ("+1.234 %"), "n/a" for null. */
export function fmtChange(v) { return num(v) ? `${v > 0 ? "+" : ""}${v.toFixed(3)} %` : "n/a"; }

export const lossName = (p) => (p["new-error"] ? "new error" : p["strict-imitation"] ? "strict imitation" : "unknown loss");
export const splitName = (p) => (p.training ? "training" : p.testing ? "test" : "unknown split");

/** The accessible description of a point. */
export function pointLabel(p, metric) {
  return `lambda_c ${fmt(p.lambda_c, 2)}, ${lossName(p)}, ${splitName(p)}: ${metric || "performance"} ` +
    `${fmt(p.performance)}, BTC ${fmt(p.btc)}, BEC ${fmt(p.bec)}`;
}

// ---------------------------------------------------------------- the static model (HTML report)

function b64bytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const STATE_DEFAULTS = {
  kind: "analysis", title: "Backward compatibility analysis", status: "done", progress: 1,
  can_start: false, static: true, points: [], lambdas: [], h1_performance: null,
  performance_metric: "performance", filters: null, selection: { ...EMPTY_SELECTION }, error: "",
  page_size: 5, columns: [], class_names: {},
};

/** A stand-in for anywidget's model over a report's embedded data: {state, evaluations, rows, images}.
 * set() fires "change:NAME" like Backbone (when the value changes); save_changes() is a no-op.
 * A filters change that hides the selected point also clears selection. send() answers
 * bcml:request messages asynchronously through the "msg:custom" listeners. */
export function createStaticModel(data) {
  data = data || {};
  const state = { ...STATE_DEFAULTS, ...(data.state || {}), static: true, can_start: false };
  const evaluations = data.evaluations || {};
  const extras = data.rows || {};
  const images = data.images || {};
  const listeners = new Map();
  const emit = (name, ...args) => { for (const cb of [...(listeners.get(name) || [])]) cb(...args); };
  const ev = (index) => {
    const e = evaluations[String(index)];
    if (!e) throw new Error(`no evaluation data for datapoint ${index} in this report`);
    return e;
  };
  const matching = (index, filter) => {
    const e = ev(index);
    const cols = e.error_instances || {};
    const ids = cols.instance_id || [];
    const pos = selectRows(ids, filterIds(e, filter || {}));
    const at = (k, i) => (cols[k] ? cols[k][i] : null);
    return pos.map((i) => ({ instance_id: ids[i], metadata: at("metadata", i), h1_prediction: at("h1_prediction", i),
      h2_prediction: at("h2_prediction", i), ground_truth: at("ground_truth", i) }));
  };
  const methods = {
    evaluation({ index }) {
      const e = ev(index);
      const out = { ...e };
      delete out.error_instances;
      out.error_count = ((e.error_instances || {}).instance_id || []).length;
      return [out, []];
    },
    page({ index, filter, page = 0, page_size = 5 }) {
      const sl = pageSlice(matching(index, filter), page, page_size);
      const buffers = [];
      const rows = sl.items.map((r) => {
        const x = extras[String(r.instance_id)] || {};
        const img = images[String(r.instance_id)];
        let image = null;
        if (img) { const b = b64bytes(img); image = buffers.length; buffers.push(new DataView(b.buffer)); }
        return { ...r, data: x.data == null ? null : x.data, label: x.label == null ? null : x.label, image };
      });
      return [{ total: sl.total, page: sl.page, pages: sl.pages, rows }, buffers];
    },
    csv({ index, filter }) {
      return [{ filename: csvFilename(index, filter, state.class_names), text: csvText(matching(index, filter)) }, []];
    },
    start() { throw new Error("static report: no kernel"); },
    cancel() { throw new Error("static report: no kernel"); },
  };
  const model = {
    get: (name) => state[name],
    set(name, value) {
      const old = state[name];
      state[name] = value;
      if (JSON.stringify(old) === JSON.stringify(value)) return;
      emit(`change:${name}`);
      if (name === "filters") {
        const sel = selectionAfterFilters(state.selection, state.points, value);
        if (sel !== state.selection) model.set("selection", sel);
      }
    },
    save_changes() {},
    on(name, cb) {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(cb);
    },
    off(name, cb) {
      if (name == null) listeners.clear();
      else if (cb == null) listeners.delete(name);
      else if (listeners.has(name)) listeners.get(name).delete(cb);
    },
    send(msg) {
      if (!msg || msg.type !== "bcml:request") return;
      setTimeout(() => {
        let resp, buffers = [];
        try {
          const fn = methods[msg.method];
          if (!fn) throw new Error(`unknown request method ${JSON.stringify(msg.method)}`);
          const [result, bufs] = fn(msg.args || {});
          resp = { type: "bcml:response", id: msg.id, ok: true, result };
          buffers = bufs;
        } catch (e) {
          resp = { type: "bcml:response", id: msg.id, ok: false, error: e && e.message ? e.message : String(e) };
        }
        emit("msg:custom", resp, buffers);
      }, 0);
    },
  };
  return model;
}

// ---------------------------------------------------------------- the view

const SVGNS = "http://www.w3.org/2000/svg";
let viewCounter = 0;

function render({ model, el }) {
  const doc = el.ownerDocument;
  const win = doc.defaultView;
  const idPrefix = `bcml${Math.random().toString(36).slice(2, 9)}${++viewCounter}-`;
  let reqCounter = 0;
  const pending = new Map(); // id -> {resolve, reject, timer}
  const blobUrls = new Set();
  const offs = [];
  const timers = new Set();

  // -------- DOM helpers
  const setAttrs = (n, attrs) => {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "text") n.textContent = v;
      else if (k === "class") n.setAttribute("class", v);
      else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? "" : String(v));
    }
    return n;
  };
  const h = (tag, attrs, ...kids) => {
    const n = setAttrs(doc.createElement(tag), attrs);
    for (const k of kids.flat()) if (k != null) n.append(k);
    return n;
  };
  const s = (tag, attrs, ...kids) => {
    const n = setAttrs(doc.createElementNS(SVGNS, tag), attrs);
    for (const k of kids.flat()) if (k != null) n.append(k);
    return n;
  };
  const later = (fn, ms) => { const t = setTimeout(() => { timers.delete(t); fn(); }, ms); timers.add(t); return t; };
  const listen = (name, cb) => { model.on(name, cb); offs.push(() => model.off(name, cb)); };

  // -------- model access
  const get = (name, dflt) => { const v = model.get(name); return v == null ? dflt : v; };
  const kind = () => get("kind", "analysis");
  const metric = () => get("performance_metric", "performance");
  const classNames = () => get("class_names", {});
  const grid = () => lambdaGrid(get("lambdas", []), get("points", []));
  const filters = () => { // null/missing keys fall back to "show all" on the grid
    const f = { ...defaultFilters(grid()) };
    for (const [k, v] of Object.entries(get("filters", {}))) if (v != null) f[k] = v;
    return f;
  };
  const selection = () => ({ ...EMPTY_SELECTION, ...get("selection", {}) });
  const evalIndexFor = (sel) => (kind() === "comparison" ? 0 : sel.point);
  const setTrait = (name, value) => { model.set(name, value); model.save_changes(); };
  const select = (patch) => setTrait("selection", { ...selection(), ...patch });

  // -------- requests
  const waitBox = h("div", { class: "bcml-wait", role: "status", "aria-live": "polite" });
  const updateWait = () => {
    const late = [...pending.values()].some((p) => p.late);
    waitBox.textContent = late ? "waiting for the kernel..." : "";
  };
  function request(method, args) {
    const id = `${idPrefix}${++reqCounter}`;
    for (const [old, e] of pending) { // a newer request of the same method supersedes an unanswered one
      if (e.method === method) { clearTimeout(e.timer); timers.delete(e.timer); pending.delete(old); }
    }
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, late: false, method };
      entry.timer = later(() => { entry.late = true; updateWait(); }, 1000);
      pending.set(id, entry);
      model.send({ type: "bcml:request", id, method, args });
    });
  }
  listen("msg:custom", (msg, buffers) => {
    if (!msg || msg.type !== "bcml:response" || !pending.has(msg.id)) return;
    const entry = pending.get(msg.id);
    pending.delete(msg.id);
    clearTimeout(entry.timer); timers.delete(entry.timer);
    updateWait();
    if (msg.ok) entry.resolve({ result: msg.result, buffers: buffers || [] });
    else entry.reject(new Error(msg.error || "request failed"));
  });

  // -------- local view state
  const st = {
    evalIndex: undefined, evaluation: null, evalSeq: 0, evalMsg: "",
    filterKey: "{}", page: 0, pageSeq: 0, pageResult: null, pageMsg: "", pageUrls: [],
    classView: "accuracy", classPage: 0, base: null,
  };

  // -------- layout
  const root = h("div", { class: "bcml-root", "data-kind": kind() });
  const titleEl = h("h2", { class: "bcml-title" });
  root.append(titleEl, waitBox);

  // 1. sweep controls
  const startBtn = h("button", { type: "button", class: "bcml-start" });
  const cancelBtn = h("button", { type: "button", class: "bcml-cancel", text: "Cancel" });
  const staticNote = h("span", { class: "bcml-static-note", text: "Static report: no kernel" });
  const progFill = h("div", { class: "bcml-progress-fill" });
  const progText = h("span", { class: "bcml-progress-text" });
  const progress = h("div", { class: "bcml-progress", role: "progressbar", "aria-label": "Sweep progress",
    "aria-valuemin": 0, "aria-valuemax": 100 }, progFill, progText);
  const statusEl = h("span", { class: "bcml-status", role: "status" });
  const errorBox = h("div", { class: "bcml-error", role: "alert" });
  const msgEl = h("span", { class: "bcml-message", "aria-live": "polite" });
  const sweep = h("div", { class: "bcml-sweep" },
    h("div", { class: "bcml-row" }, startBtn, cancelBtn, staticNote, statusEl, msgEl), progress, errorBox);
  startBtn.addEventListener("click", () => {
    msgEl.textContent = "";
    request("start", {}).catch((e) => { msgEl.textContent = e.message; });
  });
  cancelBtn.addEventListener("click", () => {
    request("cancel", {}).catch((e) => { msgEl.textContent = e.message; });
  });

  // 2. filters
  const check = (key, label, glyph) => {
    const box = h("input", { type: "checkbox", class: "bcml-filter", "data-filter": key });
    box.addEventListener("change", () => setTrait("filters", { ...filters(), [key]: box.checked }));
    return h("label", { class: "bcml-check" }, box, glyph, label);
  };
  const swatch = (colour) => s("svg", { width: 14, height: 14, "aria-hidden": "true", class: "bcml-glyph" },
    s("rect", { x: 1, y: 1, width: 12, height: 12, fill: colour, stroke: "#000" }));
  const glyph = (tri) => s("svg", { width: 14, height: 14, "aria-hidden": "true", class: "bcml-glyph" },
    tri ? s("path", { d: "M7 1.5 L12.8 12 L1.2 12 Z", fill: "#808080", stroke: "#000" })
      : s("circle", { cx: 7, cy: 7, r: 5.5, fill: "#808080", stroke: "#000" }));
  const lamMin = h("input", { type: "number", class: "bcml-lambda-min", "aria-label": "lambda_c minimum" });
  const lamMax = h("input", { type: "number", class: "bcml-lambda-max", "aria-label": "lambda_c maximum" });
  const onLambda = () => {
    const f = filters();
    let lo = parseFloat(lamMin.value), hi = parseFloat(lamMax.value);
    if (!Number.isFinite(lo)) lo = f.lambda_min;
    if (!Number.isFinite(hi)) hi = f.lambda_max;
    if (lo > hi) { if (doc.activeElement === lamMax) lo = hi; else hi = lo; }
    setTrait("filters", { ...f, lambda_min: lo, lambda_max: hi });
  };
  lamMin.addEventListener("change", onLambda);
  lamMax.addEventListener("change", onLambda);
  const filtersEl = h("fieldset", { class: "bcml-filters" }, h("legend", { text: "Show points" }),
    h("div", { class: "bcml-row" },
      h("span", { class: "bcml-group-label", text: "Split:" }),
      check("training", "Training (solid)", swatch(PALETTE.training)),
      check("testing", "Testing (dot in centre)", swatch(PALETTE.testing)),
      h("span", { class: "bcml-group-label", text: "Loss:" }),
      check("new_error", "New error (circle)", glyph(false)),
      check("strict_imitation", "Strict imitation (triangle)", glyph(true))),
    h("div", { class: "bcml-row" },
      h("span", { class: "bcml-group-label", text: "lambda_c from" }), lamMin,
      h("span", { class: "bcml-group-label", text: "to" }), lamMax));

  // 3. charts
  const W = 420, H = 300, M = { t: 14, r: 16, b: 46, l: 64 };
  const PW = W - M.l - M.r, PH = H - M.t - M.b;
  const chartsEl = h("div", { class: "bcml-charts" });
  const chartTable = h("table", { class: "bcml-sr bcml-points-table" });
  const hint = h("p", { class: "bcml-hint", text: "Click a point (or focus it and press Enter) to see its error analysis." });
  const charts = ["btc", "bec"].map((key) => makeChart(key));
  chartsEl.append(...charts.map((c) => c.wrap));

  // 4-7. analysis
  const analysis = h("div", { class: "bcml-analysis" });
  const detailsEl = h("div", { class: "bcml-details" });
  const vennEl = h("div", { class: "bcml-venn" });
  const classesEl = h("div", { class: "bcml-classes" });
  const instEl = h("div", { class: "bcml-instances" });
  const analysisMsg = h("p", { class: "bcml-analysis-msg", "aria-live": "polite" });
  analysis.append(analysisMsg, detailsEl, vennEl, classesEl, instEl);

  if (kind() === "comparison") root.append(analysis);
  else root.append(sweep, filtersEl, chartsEl, chartTable, hint, analysis);
  el.append(root);

  // ---------------------------------------------------------------- 1. sweep
  function updateSweep() {
    titleEl.textContent = get("title", "Backward compatibility analysis");
    const status = get("status", "idle");
    const running = status === "running" || status === "cancelling";
    startBtn.textContent = status === "cancelled" ? "Resume sweep" : "Start sweep";
    startBtn.disabled = !get("can_start", false) || running;
    cancelBtn.disabled = status !== "running";
    staticNote.hidden = !get("static", false);
    const pct = Math.max(0, Math.min(100, Math.floor((+get("progress", 0) || 0) * 100 + 1e-9)));
    progress.setAttribute("aria-valuenow", pct);
    progFill.style.width = `${pct}%`;
    progText.textContent = `${pct} % complete`;
    statusEl.textContent = { idle: "Idle", running: "Sweep in progress", cancelling: "Cancelling...",
      cancelled: "Cancelled (resume to continue)", done: "Done", error: "Error" }[status] || status;
    const err = get("error", "");
    errorBox.textContent = err;
    errorBox.hidden = !err;
  }

  // ---------------------------------------------------------------- 2. filters
  function updateFilters() {
    const f = filters();
    for (const box of filtersEl.querySelectorAll(".bcml-filter")) box.checked = f[box.dataset.filter] !== false;
    const g = grid();
    const step = gridStep(g);
    for (const inp of [lamMin, lamMax]) {
      if (g.length) { inp.min = g[0]; inp.max = g[g.length - 1]; }
      inp.step = step;
    }
    lamMin.value = f.lambda_min;
    lamMax.value = f.lambda_max;
  }

  // ---------------------------------------------------------------- 3. charts
  function makeChart(key) {
    const label = key.toUpperCase();
    const c = { key, label, view: null, suppress: false };
    c.svg = s("svg", { class: "bcml-chart-svg", viewBox: `0 0 ${W} ${H}`, role: "group", "data-chart": key,
      "aria-label": `Scatter plot of ${label} (x) against performance (y), one point per lambda_c, loss and split` });
    c.tip = h("div", { class: "bcml-tooltip", role: "tooltip", hidden: true });
    const zb = (cls, text, fn) => h("button", { type: "button", class: cls, text, "aria-label": `${text} (${label} plot)`, onclick: fn });
    c.wrap = h("figure", { class: "bcml-chart", "data-chart": key },
      h("figcaption", { class: "bcml-chart-title" }),
      h("div", { class: "bcml-zoom" },
        zb("bcml-zoom-in", "Zoom in", () => zoomAt(c, 2, M.l + PW / 2, M.t + PH / 2)),
        zb("bcml-zoom-out", "Zoom out", () => zoomAt(c, 0.5, M.l + PW / 2, M.t + PH / 2)),
        zb("bcml-zoom-reset", "Reset", () => { c.view = null; drawChart(c); })),
      h("div", { class: "bcml-plot" }, c.svg, c.tip));
    c.svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const [x, y] = toSvg(c, e);
      zoomAt(c, Math.exp(-e.deltaY * 0.002), x, y);
    }, { passive: false });
    c.svg.addEventListener("pointerdown", (e) => startPan(c, e));
    return c;
  }
  const toSvg = (c, e) => {
    const r = c.svg.getBoundingClientRect();
    return [(e.clientX - r.left) * W / (r.width || W), (e.clientY - r.top) * H / (r.height || H)];
  };
  const domOf = (c) => c.view || st.base;
  function zoomAt(c, k, px, py) {
    const base = st.base, dom = domOf(c);
    if (!base) return;
    const vx = dom.x[0] + (px - M.l) / PW * (dom.x[1] - dom.x[0]);
    const vy = dom.y[1] - (py - M.t) / PH * (dom.y[1] - dom.y[0]);
    const span = (dom.x[1] - dom.x[0]) / k, bspan = base.x[1] - base.x[0];
    if (span >= bspan * 0.999) { c.view = null; drawChart(c); return; }
    if (span < bspan / 100) k = (dom.x[1] - dom.x[0]) / (bspan / 100);
    c.view = { x: [vx - (vx - dom.x[0]) / k, vx + (dom.x[1] - vx) / k], y: [vy - (vy - dom.y[0]) / k, vy + (dom.y[1] - vy) / k] };
    drawChart(c);
  }
  function startPan(c, e) {
    if (e.button !== 0 || !st.base) return;
    const x0 = e.clientX, y0 = e.clientY, d0 = domOf(c);
    const r = c.svg.getBoundingClientRect();
    let moved = false;
    const move = (ev) => {
      const dx = (ev.clientX - x0) * W / (r.width || W), dy = (ev.clientY - y0) * H / (r.height || H);
      if (!moved && Math.hypot(dx, dy) < 4) return;
      moved = true;
      const fx = dx / PW * (d0.x[1] - d0.x[0]), fy = dy / PH * (d0.y[1] - d0.y[0]);
      c.view = { x: [d0.x[0] - fx, d0.x[1] - fx], y: [d0.y[0] + fy, d0.y[1] + fy] };
      drawChart(c);
    };
    const up = () => {
      win.removeEventListener("pointermove", move);
      win.removeEventListener("pointerup", up);
      panStop = null;
      if (moved) { c.suppress = true; later(() => { c.suppress = false; }, 0); }
    };
    if (panStop) panStop();
    panStop = up;
    win.addEventListener("pointermove", move);
    win.addEventListener("pointerup", up);
  }
  let panStop = null;

  function updateCharts() {
    const pts = get("points", []);
    const vis = visiblePoints(pts, filters());
    const plot = vis.filter(plottable);
    const xs = plot.flatMap((p) => [p.btc, p.bec]);
    const h1 = model.get("h1_performance");
    const ys = plot.map((p) => p.performance).concat(num(h1) ? [h1] : []);
    const x = xs.length ? padDomain(Math.min(...xs), Math.max(...xs)) : [0, 1];
    const y = ys.length ? padDomain(Math.min(...ys), Math.max(...ys)) : [0, 1];
    st.base = { x, y };
    st.plot = plot;
    for (const c of charts) drawChart(c);
    // text alternative: every visible point, n/a for missing values
    const m = metric();
    chartTable.replaceChildren(h("caption", { text: `Sweep points shown in the plots (${vis.length})` }),
      h("thead", {}, h("tr", {}, ["lambda_c", "loss", "split", m, "BTC", "BEC"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, vis.map((p) => h("tr", {}, [fmt(p.lambda_c, 2), lossName(p), splitName(p), fmt(p.performance), fmt(p.btc), fmt(p.bec)]
        .map((t) => h("td", { text: t }))))));
    hint.hidden = selection().point != null;
  }

  function drawChart(c) {
    const dom = domOf(c);
    const sel = selection();
    const m = metric();
    const focused = doc.activeElement && c.svg.contains(doc.activeElement) ? doc.activeElement.getAttribute("data-index") : null;
    const sx = (v) => M.l + (v - dom.x[0]) / (dom.x[1] - dom.x[0]) * PW;
    const sy = (v) => M.t + (dom.y[1] - v) / (dom.y[1] - dom.y[0]) * PH;
    c.wrap.querySelector(".bcml-chart-title").textContent = `${m} vs ${c.label}`;
    const kids = [s("title", { text: `${m} against ${c.label} for each lambda_c, loss and split` })];
    const xt = niceTicks(dom.x[0], dom.x[1], 5), yt = niceTicks(dom.y[0], dom.y[1], 5);
    const xd = tickDecimals(xt), yd = tickDecimals(yt);
    const axes = s("g", { class: "bcml-axes", "aria-hidden": "true" });
    axes.append(s("rect", { x: M.l, y: M.t, width: PW, height: PH, fill: "#ffffff", stroke: "#9e9e9e" }));
    for (const t of xt) {
      const X = sx(t);
      if (X < M.l - 0.5 || X > M.l + PW + 0.5) continue;
      axes.append(s("line", { x1: X, x2: X, y1: M.t, y2: M.t + PH, stroke: "#e3e3e3" }),
        s("text", { x: X, y: M.t + PH + 16, "text-anchor": "middle", class: "bcml-tick", text: t.toFixed(xd) }));
    }
    for (const t of yt) {
      const Y = sy(t);
      if (Y < M.t - 0.5 || Y > M.t + PH + 0.5) continue;
      axes.append(s("line", { x1: M.l, x2: M.l + PW, y1: Y, y2: Y, stroke: "#e3e3e3" }),
        s("text", { x: M.l - 6, y: Y + 4, "text-anchor": "end", class: "bcml-tick", text: t.toFixed(yd) }));
    }
    axes.append(s("text", { x: M.l + PW / 2, y: H - 8, "text-anchor": "middle", class: "bcml-axis-label", text: c.label }),
      s("text", { x: 14, y: M.t + PH / 2, "text-anchor": "middle", class: "bcml-axis-label",
        transform: `rotate(-90 14 ${M.t + PH / 2})`, text: m }));
    kids.push(axes);
    // the plot area clips its content (a nested <svg> needs no id)
    const area = s("svg", { x: M.l, y: M.t, width: PW, height: PH, viewBox: `${M.l} ${M.t} ${PW} ${PH}`, class: "bcml-plot-area", overflow: "hidden" });
    const h1 = model.get("h1_performance");
    if (num(h1)) {
      const Y = sy(h1);
      area.append(s("line", { class: "bcml-h1-line", x1: M.l, x2: M.l + PW, y1: Y, y2: Y, stroke: PALETTE.h1line,
        "stroke-width": 1.5, "stroke-dasharray": "6 4" }),
      s("text", { x: M.l + 4, y: Y - 4, class: "bcml-h1-label", text: `h1 ${fmt(h1)}` }));
    }
    if (!st.plot.length) area.append(s("text", { x: M.l + PW / 2, y: M.t + PH / 2, "text-anchor": "middle", text: "No points to show" }));
    // triangles (larger) below circles, the selected point on top
    const rank = (p) => (p.datapoint_index === sel.point ? 2 : p["new-error"] ? 1 : 0);
    const order = [...st.plot].sort((a, b) => rank(a) - rank(b));
    for (const p of order) {
      const X = sx(p[c.key]), Y = sy(p.performance);
      const on = p.datapoint_index === sel.point;
      const colour = p.training ? PALETTE.training : PALETTE.testing;
      const common = { class: `bcml-point${on ? " bcml-selected" : ""}`, "data-index": p.datapoint_index,
        "data-split": p.training ? "training" : "testing", "data-loss": p["new-error"] ? "new-error" : "strict-imitation",
        tabindex: 0, role: "button", "aria-pressed": on ? "true" : "false", "aria-label": pointLabel(p, m),
        fill: colour, stroke: "#000000", "stroke-width": on ? 3 : 1 };
      let shape;
      if (p["new-error"]) shape = s("circle", { ...common, cx: X, cy: Y, r: on ? 9 : 6 });
      else {
        const R = on ? 12 : 8;
        shape = s("path", { ...common, d: `M${X} ${Y - R}L${X + R * 0.866} ${Y + R / 2}L${X - R * 0.866} ${Y + R / 2}Z` });
      }
      const pick = () => { if (!c.suppress) select({ point: p.datapoint_index, region: null, class: null, bar: null }); };
      shape.addEventListener("click", pick);
      shape.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); }
      });
      const show = (e) => showTip(c, p, e, shape);
      shape.addEventListener("mouseenter", show);
      shape.addEventListener("mousemove", show);
      shape.addEventListener("focus", show);
      shape.addEventListener("mouseleave", () => { c.tip.hidden = true; });
      shape.addEventListener("blur", () => { c.tip.hidden = true; });
      area.append(shape);
      if (p.testing) area.append(s("circle", { cx: X, cy: Y + (p["new-error"] ? 0 : 1.5), r: on ? 2.6 : 1.8, fill: "#ffffff", "pointer-events": "none", "aria-hidden": "true" }));
    }
    kids.push(area);
    c.tip.hidden = true; // its point is gone (no mouseleave comes); a re-focused point shows it again
    c.svg.replaceChildren(...kids);
    if (focused != null) {
      const again = c.svg.querySelector(`.bcml-point[data-index="${win.CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function showTip(c, p, e, shape) {
    const tip = c.tip, m = metric();
    tip.replaceChildren(...[`lambda_c ${fmt(p.lambda_c, 2)}`, `${lossName(p)}, ${splitName(p)}`,
      `${m} ${fmt(p.performance)}`, `BTC ${fmt(p.btc)}`, `BEC ${fmt(p.bec)}`].map((t) => h("div", { text: t })));
    tip.hidden = false;
    const box = c.svg.parentNode.getBoundingClientRect();
    const r = shape.getBoundingClientRect();
    const x = (e && e.clientX != null ? e.clientX : r.left + r.width / 2) - box.left;
    const y = (e && e.clientY != null ? e.clientY : r.top) - box.top;
    tip.style.left = `${Math.min(Math.max(0, x + 12), Math.max(0, box.width - 170))}px`;
    tip.style.top = `${Math.max(0, y - 70)}px`;
  }

  // ---------------------------------------------------------------- 4-7. analysis
  function loadEvaluation() {
    const idx = st.evalIndex;
    const seq = ++st.evalSeq;
    st.evaluation = null;
    st.pageResult = null;
    revokePage();
    renderAnalysis();
    if (idx == null) return;
    analysisMsg.textContent = "Loading the evaluation...";
    request("evaluation", { index: idx }).then(({ result }) => {
      if (seq !== st.evalSeq) return; // a newer selection superseded this answer
      st.evaluation = result;
      analysisMsg.textContent = "";
      st.classPage = 0;
      renderAnalysis();
      loadPage();
    }, (err) => {
      if (seq !== st.evalSeq) return;
      analysisMsg.textContent = `Could not load evaluation ${idx}: ${err.message}`;
    });
  }

  function renderAnalysis() {
    const has = !!st.evaluation;
    analysis.hidden = st.evalIndex == null;
    for (const n of [detailsEl, vennEl, classesEl, instEl]) { n.hidden = !has; if (!has) n.replaceChildren(); }
    if (!has) { if (st.evalIndex == null) analysisMsg.textContent = ""; return; }
    renderDetails();
    renderVenn();
    renderClasses();
    renderInstances();
  }

  // 4. details
  function renderDetails() {
    if (kind() === "comparison") { detailsEl.hidden = true; return; }
    const ev = st.evaluation, m = metric();
    const h1 = model.get("h1_performance");
    const p = get("points", []).find((q) => q.datapoint_index === st.evalIndex) || ev;
    const rows = [["BTC", fmt(ev.btc)], ["BEC", fmt(ev.bec)], [`h1 ${m}`, fmt(h1)], [`h2 ${m}`, fmt(ev.h2_performance)],
      [`relative change of ${m}`, fmtChange(relativeChange(h1, ev.h2_performance))],
      ["lambda_c", fmt(ev.lambda_c != null ? ev.lambda_c : p.lambda_c, 2)], ["loss", lossName(p)], ["split", splitName(p)]];
    detailsEl.replaceChildren(h("h3", { text: "Selected model" }),
      h("table", { class: "bcml-details-table" }, h("caption", { class: "bcml-sr", text: `Details of datapoint ${st.evalIndex}` }),
        h("tbody", {}, rows.map(([k, v]) => h("tr", { "data-key": k }, h("th", { scope: "row", text: k }), h("td", { text: v }))))));
  }

  // 5. Venn diagram
  function renderVenn() {
    const ev = st.evaluation, sel = selection();
    const [h1ids = [], h2ids = []] = ev.models_error_overlap || [];
    const counts = regionCounts(ev.models_error_overlap);
    const n = ev.dataset_size;
    const pct = (k) => (num(n) && n > 0 ? `${(counts[k] / n * 100).toFixed(3)} %` : "n/a");
    const desc = (k) => `${REGION_LABEL[k]} (${REGION_DESC[k]}): ${counts[k]} instances, ${pct(k)} of ${n}`;
    const toggle = (k) => select({ region: sel.region === k ? null : k, class: null, bar: null });
    const VW = 460, VH = 196, cy = 96;
    const lay = vennLayout(h1ids.length, h2ids.length, counts.common, 60);
    const svg = s("svg", { class: "bcml-venn-svg", viewBox: `0 0 ${VW} ${VH}`, role: "group",
      "aria-label": `Venn diagram of the errors of h1 (left) and h2 (right). ${REGIONS.map(desc).join(". ")}.` },
    s("title", { text: "Intersection between the errors of h1 and h2" }),
    s("rect", { x: 0, y: 0, width: VW, height: VH, fill: "#ffffff" }));
    if (lay) {
      const { r1, r2, d } = lay;
      const x1 = (VW - (r1 + d + r2)) / 2 + r1, x2 = x1 + d;
      const circle = (x, r) => (r > 0 ? `M${x - r} ${cy}a${r} ${r} 0 1 0 ${2 * r} 0a${r} ${r} 0 1 0 ${-2 * r} 0Z` : "");
      let paths, labelAt;
      if (lay.kind === "overlap") {
        const xi = x1 + (d * d + r1 * r1 - r2 * r2) / (2 * d);
        const hh = Math.sqrt(Math.max(0, r1 * r1 - (xi - x1) ** 2));
        const T = `${xi} ${cy - hh}`, B = `${xi} ${cy + hh}`;
        const L1 = x1 < xi ? 1 : 0, L2 = x2 < xi ? 1 : 0; // large-arc flags for the arcs left of the chord
        paths = {
          progress: `M${T}A${r1} ${r1} 0 ${L1} 0 ${B}A${r2} ${r2} 0 ${L2} 1 ${T}Z`,
          common: `M${T}A${r2} ${r2} 0 ${L2} 0 ${B}A${r1} ${r1} 0 ${1 - L1} 0 ${T}Z`,
          regress: `M${T}A${r2} ${r2} 0 ${1 - L2} 1 ${B}A${r1} ${r1} 0 ${1 - L1} 0 ${T}Z`,
        };
        const innerL = x2 - r2, innerR = x1 + r1;
        // a crescent too thin for its label gets it outside, next to the circle
        labelAt = { progress: innerL - (x1 - r1) >= 44 ? [(x1 - r1 + innerL) / 2, cy] : [x1 - r1 - 6, cy, "end"],
          common: [(innerL + innerR) / 2, cy],
          regress: x2 + r2 - innerR >= 44 ? [(innerR + x2 + r2) / 2, cy] : [x2 + r2 + 6, cy, "start"] };
      } else if (lay.kind === "disjoint") {
        paths = { progress: circle(x1, r1), common: "", regress: circle(x2, r2) };
        labelAt = { progress: [x1, cy], common: [0, 0], regress: [x2, cy] };
      } else { // nested: the smaller circle lies inside the larger one
        const inner = r1 <= r2 ? circle(x1, r1) : circle(x2, r2);
        const ring = r1 <= r2 ? circle(x2, r2) + inner : circle(x1, r1) + inner;
        const ir = Math.min(r1, r2), ix = r1 <= r2 ? x1 : x2;
        paths = { progress: r1 > r2 ? ring : "", common: inner, regress: r2 > r1 ? ring : "" };
        const ringX = r1 > r2 ? (x1 - r1 + ix - ir) / 2 : (ix + ir + x2 + r2) / 2;
        labelAt = { progress: [ringX, cy], common: [ix, cy], regress: [ringX, cy] };
      }
      for (const k of REGIONS) {
        const on = sel.region === k;
        const path = s("path", { class: `bcml-region${on ? " bcml-selected" : ""}`, "data-region": k, d: paths[k] || "M0 0",
          fill: PALETTE[k], "fill-rule": "evenodd", stroke: "#000000", "stroke-width": on ? 3 : 1,
          "fill-opacity": sel.region && !on ? 0.55 : 1, tabindex: paths[k] ? 0 : -1, role: "button",
          "aria-pressed": on ? "true" : "false", "aria-label": desc(k) });
        if (!paths[k]) path.setAttribute("visibility", "hidden");
        path.addEventListener("click", () => toggle(k));
        path.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(k); } });
        path.append(s("title", { text: desc(k) }));
        svg.append(path);
      }
      for (const k of REGIONS) {
        if (!paths[k]) continue; // an empty region (count 0): the legend still says so
        const [lx, ly, anchor = "middle"] = labelAt[k];
        svg.append(s("text", { x: lx, y: ly - 2, "text-anchor": anchor, class: "bcml-venn-count", "pointer-events": "none", text: String(counts[k]) }),
          s("text", { x: lx, y: ly + 12, "text-anchor": anchor, class: "bcml-venn-pct", "pointer-events": "none", text: pct(k) }));
      }
      // h1's name above its circle, h2's below (they never collide)
      svg.append(s("text", { x: x1, y: cy - Math.max(r1, r2) - 10, "text-anchor": "middle", class: "bcml-venn-set", text: `h1 errors (${h1ids.length})` }),
        s("text", { x: x2, y: cy + Math.max(r1, r2) + 22, "text-anchor": "middle", class: "bcml-venn-set", text: `h2 errors (${h2ids.length})` }));
    } else {
      svg.append(s("text", { x: VW / 2, y: VH / 2, "text-anchor": "middle", text: "Neither model makes an error" }));
    }
    const legend = h("div", { class: "bcml-legend", role: "group", "aria-label": "Venn regions" }, REGIONS.map((k) =>
      h("button", { type: "button", class: "bcml-legend-btn", "data-region": k, "aria-pressed": sel.region === k ? "true" : "false",
        onclick: () => toggle(k) },
      swatch(PALETTE[k]), `${REGION_LABEL[k]} (${REGION_DESC[k]}): ${counts[k]}, ${pct(k)}`)));
    const f = vennEl.contains(doc.activeElement) ? doc.activeElement : null;
    const again = f && f.dataset.region ? `${f.tagName.toLowerCase() === "button" ? ".bcml-legend-btn" : ".bcml-region"}[data-region="${f.dataset.region}"]` : null;
    vennEl.replaceChildren(h("h3", { text: "Intersection between model errors" }), svg, legend,
      h("p", { class: "bcml-sr", text: `Error counts: ${REGIONS.map(desc).join("; ")}.` }));
    if (again) { const n2 = vennEl.querySelector(again); if (n2) n2.focus(); }
  }

  // 6. per-class bars
  function renderClasses() {
    const ev = st.evaluation, sel = selection(), names = classNames();
    let classes = ev.sorted_classes && ev.sorted_classes.length ? ev.sorted_classes
      : [...new Set((ev.h1_accuracy_by_class || []).map((x) => x.class))];
    const find = (list, c) => (list || []).find((x) => sameClass(x.class, c));
    const n = ev.dataset_size;
    const acc = (b, c) => { const e = find(ev[`${b}_accuracy_by_class`], c); return e && num(e.accuracy) ? e.accuracy * 100 : null; };
    const inc = (c) => { const e = find(ev.h2_incompatible_instance_ids_by_class, c);
      return num(n) && n > 0 ? ((e && e.incompatibleInstanceIds) || []).length / n * 100 : null; };
    const accView = st.classView === "accuracy";
    const bars = accView ? ["h1", "h2"] : ["incompatible"];
    const value = (b, c) => (b === "incompatible" ? inc(c) : acc(b, c));
    const PER = 5, pages = pageCount(classes.length, PER);
    st.classPage = clampPage(st.classPage, pages);
    const shown = classes.slice(st.classPage * PER, st.classPage * PER + PER);
    const CW = 460, CH = 240, m = { t: 16, r: 10, b: 40, l: 54 };
    const pw = CW - m.l - m.r, ph = CH - m.t - m.b;
    let top = 100;
    if (!accView) { // the incompatible shares are small: scale to a round value above the largest
      const mx = Math.max(0, ...classes.map(inc).filter(num));
      const step = mx > 0 ? niceStep(mx / 5) : 0.2;
      top = clean(Math.max(1, Math.ceil(mx / step - 1e-9)) * step);
    }
    const ticks = niceTicks(0, top, 5), td = tickDecimals(ticks);
    const sy = (v) => m.t + ph - v / top * ph;
    const yLabel = accView ? "accuracy (%)" : "incompatible (% of all instances)";
    const svg = s("svg", { class: "bcml-classes-svg", viewBox: `0 0 ${CW} ${CH}`, role: "group",
      "aria-label": accView ? "Bar chart: accuracy of h1 and h2 by class" : "Bar chart: incompatible points by class, as a percentage of all instances" },
    s("title", { text: accView ? "Accuracy by class" : "Incompatible points by class" }),
    s("rect", { x: 0, y: 0, width: CW, height: CH, fill: "#ffffff" }));
    for (const t of ticks) {
      svg.append(s("line", { x1: m.l, x2: m.l + pw, y1: sy(t), y2: sy(t), stroke: "#e3e3e3", "aria-hidden": "true" }),
        s("text", { x: m.l - 6, y: sy(t) + 4, "text-anchor": "end", class: "bcml-tick", "aria-hidden": "true", text: t.toFixed(td) }));
    }
    svg.append(s("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, stroke: "#000" }),
      s("text", { x: 14, y: m.t + ph / 2, "text-anchor": "middle", class: "bcml-axis-label", transform: `rotate(-90 14 ${m.t + ph / 2})`, text: yLabel }));
    const slot = pw / PER, bw = Math.min(30, (slot - 14) / bars.length);
    shown.forEach((c, i) => {
      const cx = m.l + slot * (i + 0.5);
      svg.append(s("text", { x: cx, y: CH - 8, "text-anchor": "middle", class: "bcml-class-label", text: className(c, names) }));
      bars.forEach((b, j) => {
        const v = value(b, c);
        const x = cx - bars.length * bw / 2 + j * bw;
        const on = sel.class != null && sameClass(sel.class, c) && sel.bar === b;
        const label = `class ${className(c, names)}, ${b === "incompatible" ? "incompatible points" : `${b} accuracy`}: ` +
          `${v == null ? "n/a" : `${v.toFixed(2)} %`}; ${on ? "selected, press to clear" : `press to list the ${BAR_LABEL[b]}`}`;
        const toggle = () => select(on ? { class: null, bar: null, region: null } : { class: c, bar: b, region: null });
        const hgt = v == null ? 0 : Math.max(v / top * ph, v > 0 ? 1 : 0);
        const rect = s("rect", { class: `bcml-bar${on ? " bcml-selected" : ""}`, "data-class": c, "data-bar": b,
          x: x + 1, y: m.t + ph - Math.max(hgt, 2), width: bw - 2, height: Math.max(hgt, 2),
          fill: v == null ? "#ffffff" : PALETTE[b], stroke: "#000000", "stroke-width": on ? 3 : 0.5,
          tabindex: 0, role: "button", "aria-pressed": on ? "true" : "false", "aria-label": label });
        rect.append(s("title", { text: label }));
        rect.addEventListener("click", toggle);
        rect.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); } });
        svg.append(rect, s("text", { x: x + bw / 2, y: m.t + ph - Math.max(hgt, 2) - 4, "text-anchor": "middle", class: "bcml-bar-value",
          "pointer-events": "none", text: v == null ? "n/a" : accView ? v.toFixed(0) : v.toFixed(2) }));
        if (accView) svg.append(s("text", { x: x + bw / 2, y: m.t + ph + 12, "text-anchor": "middle", class: "bcml-bar-key", "pointer-events": "none", text: b }));
      });
    });
    const viewBtn = (v, text) => h("button", { type: "button", class: `bcml-class-view`, "data-view": v, "aria-pressed": st.classView === v ? "true" : "false",
      text, onclick: () => { st.classView = v; renderClasses(); } });
    const pager = pages > 1 ? h("div", { class: "bcml-class-pager bcml-row" },
      h("button", { type: "button", class: "bcml-class-prev", "aria-label": "previous classes", text: "<", disabled: st.classPage === 0,
        onclick: () => { st.classPage--; renderClasses(); } }),
      h("span", { class: "bcml-class-page", "aria-label": "class page number", text: `${st.classPage + 1} of ${pages}` }),
      h("button", { type: "button", class: "bcml-class-next", "aria-label": "next classes", text: ">", disabled: st.classPage >= pages - 1,
        onclick: () => { st.classPage++; renderClasses(); } })) : null;
    const legend = accView ? h("div", { class: "bcml-row bcml-bar-legend" }, swatch(PALETTE.h1), "h1 (left bar)", swatch(PALETTE.h2), "h2 (right bar)")
      : h("div", { class: "bcml-row bcml-bar-legend" }, swatch(PALETTE.incompatible), "new errors of h2 in the class, % of all instances");
    const alt = h("table", { class: "bcml-sr" }, h("caption", { text: accView ? "Accuracy by class (%)" : "Incompatible points by class (% of all instances)" }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "class" }), bars.map((b) => h("th", { scope: "col", text: b })))),
      h("tbody", {}, classes.map((c) => h("tr", {}, h("th", { scope: "row", text: className(c, names) }),
        bars.map((b) => { const v = value(b, c); return h("td", { text: v == null ? "n/a" : v.toFixed(2) }); })))));
    const hadFocus = classesEl.contains(doc.activeElement) ? doc.activeElement : null;
    const focusKey = hadFocus && (hadFocus.getAttribute("class") || "").split(" ")[0];
    const focusSel = hadFocus && hadFocus.dataset && hadFocus.dataset.bar != null
      ? `.bcml-bar[data-class="${win.CSS.escape(hadFocus.dataset.class)}"][data-bar="${hadFocus.dataset.bar}"]`
      : hadFocus && hadFocus.dataset && hadFocus.dataset.view ? `.bcml-class-view[data-view="${hadFocus.dataset.view}"]` : focusKey ? `.${focusKey}` : null;
    classesEl.replaceChildren(h("h3", { text: "Classes" }),
      h("div", { class: "bcml-row", role: "group", "aria-label": "Class chart" }, viewBtn("accuracy", "Accuracy by class"), viewBtn("incompatible", "Incompatible points by class")),
      ...[svg, legend, pager, alt].filter(Boolean));
    if (focusSel) { const n2 = classesEl.querySelector(focusSel); if (n2 && !n2.disabled) n2.focus(); }
  }

  // 7. instance table
  function revokePage() {
    for (const u of st.pageUrls) { URL.revokeObjectURL(u); blobUrls.delete(u); }
    st.pageUrls = [];
  }
  function loadPage() {
    if (st.evalIndex == null || !st.evaluation) return;
    const seq = ++st.pageSeq;
    const filter = selectionFilter(selection());
    st.pageMsg = "Loading...";
    renderInstances();
    request("page", { index: st.evalIndex, filter, page: st.page, page_size: get("page_size", 5) }).then(({ result, buffers }) => {
      if (seq !== st.pageSeq) return;
      revokePage();
      st.pageResult = { ...result, filter, buffers };
      st.page = result.page;
      st.pageMsg = "";
      renderInstances();
    }, (err) => {
      if (seq !== st.pageSeq) return;
      st.pageMsg = `Could not load the instances: ${err.message}`;
      renderInstances();
    });
  }
  function filterText(filter) {
    if (filter.region) return `${REGION_LABEL[filter.region]} (${REGION_DESC[filter.region]})`;
    if (filter.class != null) {
      const c = className(filter.class, classNames());
      return filter.bar === "incompatible" ? `Class ${c}, incompatible points` : `Class ${c}, ${filter.bar} errors`;
    }
    return "All error instances";
  }
  function renderInstances() {
    const r = st.pageResult, names = classNames();
    const cols = get("columns", []);
    const filter = r ? r.filter : selectionFilter(selection());
    const caption = h("caption", { class: "bcml-caption", text: r ? `${filterText(filter)}: ${r.total} instance${r.total === 1 ? "" : "s"}` : filterText(filter) });
    const head = [];
    if (cols.includes("image")) head.push(h("th", { scope: "col" }, h("span", { class: "bcml-sr", text: "Image" })));
    head.push(h("th", { scope: "col", text: "Instance" }));
    if (cols.includes("data")) head.push(h("th", { scope: "col", text: "Data" }));
    if (cols.includes("label")) head.push(h("th", { scope: "col", text: "Label" }));
    head.push(...["h1 prediction", "h2 prediction", "Ground truth"].map((t) => h("th", { scope: "col", text: t })));
    const body = h("tbody");
    if (r) {
      for (const row of r.rows) {
        const tds = [];
        if (cols.includes("image")) {
          const td = h("td", { class: "bcml-thumb" });
          const buf = row.image == null ? null : r.buffers[row.image];
          if (buf) {
            const bytes = buf instanceof DataView ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : buf;
            const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
            st.pageUrls.push(url); blobUrls.add(url);
            td.append(h("img", { src: url, width: 50, alt: `instance ${row.instance_id}` }));
          } else td.textContent = "no image";
          tds.push(td);
        }
        tds.push(h("td", { class: "bcml-instance", text: row.metadata ? String(row.metadata) : String(row.instance_id) }));
        if (cols.includes("data")) {
          const td = h("td", { class: "bcml-data" });
          if (row.data && typeof row.data === "object") for (const [k, v] of Object.entries(row.data)) td.append(h("div", { text: `${k}: ${v}` }));
          tds.push(td);
        }
        if (cols.includes("label")) tds.push(h("td", { text: row.label == null ? "" : String(row.label) }));
        tds.push(h("td", { text: className(row.h1_prediction, names) }), h("td", { text: className(row.h2_prediction, names) }),
          h("td", { text: className(row.ground_truth, names) }));
        body.append(h("tr", { "data-id": row.instance_id }, tds));
      }
    }
    const page = r ? r.page : st.page, pages = r ? r.pages : 1;
    const go = (p) => { st.page = p; loadPage(); };
    const prev = h("button", { type: "button", class: "bcml-page-prev", text: "Previous", disabled: !r || page <= 0, onclick: () => go(page - 1) });
    const next = h("button", { type: "button", class: "bcml-page-next", text: "Next", disabled: !r || page >= pages - 1, onclick: () => go(page + 1) });
    const dl = h("button", { type: "button", class: "bcml-download", text: "Download CSV", disabled: !r, onclick: () => download(filter) });
    const focused = instEl.contains(doc.activeElement) ? (doc.activeElement.getAttribute("class") || "").split(" ")[0] : null;
    instEl.replaceChildren(h("h3", { text: "Error instances" }),
      h("table", { class: "bcml-instance-table" }, caption, h("thead", {}, h("tr", {}, head)), body),
      h("div", { class: "bcml-row bcml-pager" }, prev,
        h("span", { class: "bcml-page-text", "aria-label": "error page number", "aria-live": "polite", text: `${page + 1} of ${pages}` }),
        next, dl, h("span", { class: "bcml-page-msg", "aria-live": "polite", text: st.pageMsg })));
    if (focused) { const n = instEl.querySelector(`.${focused}`); if (n && !n.disabled) n.focus(); else if (n) instEl.querySelector(".bcml-download").focus(); }
  }
  function download(filter) {
    const seq = ++st.csvSeq;
    request("csv", { index: st.evalIndex, filter }).then(({ result }) => {
      if (seq !== st.csvSeq) return;
      const url = URL.createObjectURL(new Blob([result.text], { type: "text/csv" }));
      blobUrls.add(url);
      const a = h("a", { href: url, download: result.filename || "bcml-errors.csv", hidden: true });
      root.append(a);
      a.click();
      a.remove();
      later(() => { URL.revokeObjectURL(url); blobUrls.delete(url); }, 30000);
    }, (err) => { st.pageMsg = `Download failed: ${err.message}`; renderInstances(); });
  }
  st.csvSeq = 0;

  // ---------------------------------------------------------------- live updates
  function onSelection() {
    const sel = selection();
    if (kind() !== "comparison") { for (const c of charts) drawChart(c); hint.hidden = sel.point != null; }
    const idx = evalIndexFor(sel);
    const key = JSON.stringify(selectionFilter(sel));
    if (idx !== st.evalIndex) {
      st.evalIndex = idx; st.filterKey = key; st.page = 0;
      loadEvaluation();
    } else if (st.evaluation) {
      renderVenn(); renderClasses();
      if (key !== st.filterKey) { st.filterKey = key; st.page = 0; st.pageResult = null; loadPage(); }
    }
  }
  function onFilters() {
    updateFilters();
    updateCharts();
    const sel = selection();
    const next = selectionAfterFilters(sel, get("points", []), filters());
    if (kind() !== "comparison" && next !== sel && sel.point != null) setTrait("selection", next);
  }
  listen("change:status", updateSweep);
  listen("change:progress", updateSweep);
  listen("change:error", updateSweep);
  listen("change:can_start", updateSweep);
  listen("change:title", updateSweep);
  listen("change:filters", onFilters);
  listen("change:points", () => { updateFilters(); updateCharts(); if (st.evalIndex != null && !st.evaluation) loadEvaluation(); });
  listen("change:lambdas", () => { updateFilters(); updateCharts(); });
  listen("change:h1_performance", () => { updateCharts(); if (st.evaluation) renderDetails(); });
  listen("change:selection", onSelection);
  listen("change:class_names", () => { if (st.evaluation) renderAnalysis(); });
  listen("change:page_size", () => { st.page = 0; loadPage(); });

  updateSweep();
  if (kind() !== "comparison") { updateFilters(); updateCharts(); }
  analysis.hidden = true;
  onSelection();

  return () => {
    for (const off of offs) off();
    if (panStop) panStop();
    for (const t of timers) clearTimeout(t);
    timers.clear();
    for (const u of blobUrls) URL.revokeObjectURL(u);
    blobUrls.clear();
    pending.clear();
    root.remove();
  };
}

export default { render };

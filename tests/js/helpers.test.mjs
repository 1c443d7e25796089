// Pure helpers of bcml/widget/static/widget.js, against hand-computed and numeric references.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as W from "../../bcml/widget/static/widget.js";

const close = (a, b, rel = 1e-9, abs = 1e-12) => assert.ok(Math.abs(a - b) <= abs + rel * Math.abs(b), `${a} != ${b}`);

// independent reference: midpoint-rule integration of the overlap of two circles along x
function lensNumeric(r1, r2, d, n = 200000) {
  const lo = Math.max(-r1, d - r2), hi = Math.min(r1, d + r2);
  if (hi <= lo) return 0;
  const dx = (hi - lo) / n;
  let area = 0;
  for (let i = 0; i < n; i++) {
    const x = lo + (i + 0.5) * dx;
    const h1 = Math.sqrt(Math.max(0, r1 * r1 - x * x)), h2 = Math.sqrt(Math.max(0, r2 * r2 - (x - d) ** 2));
    area += 2 * Math.min(h1, h2) * dx;
  }
  return area;
}

test("lensArea: disjoint, touching and empty circles have no overlap", () => {
  assert.equal(W.lensArea(1, 1, 2), 0);
  assert.equal(W.lensArea(1, 2, 5), 0);
  assert.equal(W.lensArea(0, 2, 1), 0);
});

test("lensArea: containment gives the smaller disc", () => {
  close(W.lensArea(3, 1, 0), Math.PI);
  close(W.lensArea(3, 1, 2), Math.PI);          // internally tangent
  close(W.lensArea(1, 3, 1.5), Math.PI);
  close(W.lensArea(2, 2, 0), 4 * Math.PI);
});

test("lensArea: hand-computed cases", () => {
  // two unit circles one radius apart: 2*pi/3 - sqrt(3)/2
  close(W.lensArea(1, 1, 1), 2 * Math.PI / 3 - Math.sqrt(3) / 2);
  // r1 = r2 = r, d = r*sqrt(2): quarter-circle lens = r^2 (pi/2 - 1)
  close(W.lensArea(2, 2, 2 * Math.SQRT2), 4 * (Math.PI / 2 - 1));
  // symmetric in the radii
  close(W.lensArea(5, 3, 4), W.lensArea(3, 5, 4));
});

test("lensArea matches numeric integration", () => {
  for (const [r1, r2, d] of [[60, 40, 50], [60, 13, 55], [10, 10, 3], [60, 59.9, 100], [1, 0.2, 0.9]]) {
    close(W.lensArea(r1, r2, d), lensNumeric(r1, r2, d), 1e-6, 1e-6);
  }
});

test("vennLayout: areas proportional to the counts, lens matches |both|", () => {
  for (const [a, b, ab] of [[738, 652, 573], [100, 400, 30], [5, 5, 1], [4218, 3896, 2725], [1000, 3, 2]]) {
    const R = 60, L = W.vennLayout(a, b, ab, R);
    const big = Math.max(a, b);
    assert.equal(L.kind, "overlap");
    close(Math.max(L.r1, L.r2), R);
    close(Math.PI * L.r1 ** 2 / (Math.PI * R * R), a / big);
    close(Math.PI * L.r2 ** 2 / (Math.PI * R * R), b / big);
    const target = Math.PI * R * R * ab / big;
    close(W.lensArea(L.r1, L.r2, L.d), target, 1e-6);
    assert.ok(L.d > Math.abs(L.r1 - L.r2) && L.d < L.r1 + L.r2);
  }
});

test("vennLayout: nested, disjoint and empty cases", () => {
  let L = W.vennLayout(100, 25, 25, 60);      // h2's errors all inside h1's
  assert.equal(L.kind, "nested");
  close(L.r1, 60); close(L.r2, 30); close(L.d, 30);
  close(W.lensArea(L.r1, L.r2, L.d), Math.PI * 30 * 30);
  L = W.vennLayout(10, 10, 10, 60);
  assert.equal(L.d, 0);
  L = W.vennLayout(100, 25, 0, 60, 10);
  assert.equal(L.kind, "disjoint");
  close(L.d, 60 + 30 + 10);
  assert.equal(W.lensArea(L.r1, L.r2, L.d), 0);
  L = W.vennLayout(0, 7, 0, 60);
  assert.equal(L.r1, 0); close(L.r2, 60);
  assert.equal(W.vennLayout(0, 0, 0), null);
});

test("niceTicks: round steps covering the range", () => {
  assert.deepEqual(W.niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(W.niceTicks(0, 100, 5), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(W.niceTicks(0.61, 0.72, 5), [0.62, 0.64, 0.66, 0.68, 0.7, 0.72]);
  assert.deepEqual(W.niceTicks(-1, 1, 4), [-1, -0.5, 0, 0.5, 1]);
  assert.deepEqual(W.niceTicks(3, 3), [3]);
  assert.deepEqual(W.niceTicks(1, 0, 5), W.niceTicks(0, 1, 5));
  assert.deepEqual(W.niceTicks(NaN, 1), []);
  const t = W.niceTicks(0.6312, 0.9588, 5);
  assert.ok(t.length >= 3 && t.length <= 8);
  for (const v of t) assert.ok(v >= 0.6312 && v <= 0.9588);
  for (let i = 1; i < t.length; i++) close(t[i] - t[i - 1], t[1] - t[0], 1e-9);
  assert.equal(W.tickDecimals([0.62, 0.64]), 2);
  assert.equal(W.tickDecimals([0, 20]), 0);
});

test("padDomain handles a single value", () => {
  const [lo, hi] = W.padDomain(0.5, 0.5);
  assert.ok(lo < 0.5 && hi > 0.5);
  const [a, b] = W.padDomain(0, 1, 0.1);
  close(a, -0.1); close(b, 1.1);
});

test("paging: counts and clamping", () => {
  assert.equal(W.pageCount(0, 5), 1);
  assert.equal(W.pageCount(5, 5), 1);
  assert.equal(W.pageCount(6, 5), 2);
  assert.equal(W.pageCount(79, 5), 16);
  const items = Array.from({ length: 12 }, (_, i) => i);
  assert.deepEqual(W.pageSlice(items, 0, 5), { total: 12, page: 0, pages: 3, items: [0, 1, 2, 3, 4] });
  assert.deepEqual(W.pageSlice(items, 2, 5).items, [10, 11]);
  assert.equal(W.pageSlice(items, 99, 5).page, 2);
  assert.equal(W.pageSlice(items, -3, 5).page, 0);
  assert.deepEqual(W.pageSlice([], 4, 5), { total: 0, page: 0, pages: 1, items: [] });
  assert.equal(W.clampPage(7, 3), 2);
});

const P = (i, lam, train, ne, perf = 0.5) => ({ datapoint_index: i, lambda_c: lam, training: train, testing: !train,
  "new-error": ne, "strict-imitation": !ne, performance: perf, btc: 0.9, bec: 0.8 });
const POINTS = [P(0, 0, true, true), P(1, 0, false, true), P(2, 0, true, false), P(3, 0, false, false),
  P(4, 0.25, true, true), P(5, 0.25, false, true), P(6, 0.25, true, false), P(7, 0.25, false, false),
  P(8, 0.5, true, true), P(9, 0.5, false, true, null)];

test("point filtering by the filters trait", () => {
  const all = W.defaultFilters(W.lambdaGrid([], POINTS));
  assert.deepEqual(all, { training: true, testing: true, new_error: true, strict_imitation: true, lambda_min: 0, lambda_max: 0.5 });
  const ids = (f) => W.visiblePoints(POINTS, f).map((p) => p.datapoint_index);
  assert.deepEqual(ids(all), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(ids({ ...all, testing: false }), [0, 2, 4, 6, 8]);
  assert.deepEqual(ids({ ...all, new_error: false }), [2, 3, 6, 7]);
  assert.deepEqual(ids({ ...all, lambda_min: 0.25, lambda_max: 0.25 }), [4, 5, 6, 7]);
  assert.deepEqual(ids({ ...all, training: false, testing: false }), []);
  assert.deepEqual(ids({}), ids(all));
  assert.equal(W.visiblePoints(POINTS, all).filter(W.plottable).length, 9); // null performance is not plotted
  assert.deepEqual(W.lambdaGrid([0, 0.5, 0.25, 0.5], []), [0, 0.25, 0.5]);
  assert.equal(W.gridStep([0, 0.25, 0.5, 0.75, 1]), 0.25);
  assert.equal(W.gridStep([0.3]), "any");
});

test("a filter change that hides the selected point clears the selection", () => {
  const all = W.defaultFilters([0, 0.25, 0.5]);
  const sel = { point: 5, region: "regress", class: null, bar: null };
  assert.equal(W.selectionAfterFilters(sel, POINTS, all), sel);
  assert.equal(W.selectionAfterFilters(sel, POINTS, { ...all, training: false }), sel);
  assert.deepEqual(W.selectionAfterFilters(sel, POINTS, { ...all, testing: false }), W.EMPTY_SELECTION);
  assert.deepEqual(W.selectionAfterFilters(sel, POINTS, { ...all, lambda_max: 0 }), W.EMPTY_SELECTION);
});

const EV = {
  models_error_overlap: [[9, 1, 4, 6, 7], [2, 4, 9, 8, 3], [4, 9]],
  h1_accuracy_by_class: [{ class: 0, accuracy: 0.5, error_instance_ids: [1, 4, 9] }, { class: 1, accuracy: null, error_instance_ids: [] }],
  h2_accuracy_by_class: [{ class: 0, accuracy: 0.75, error_instance_ids: [2, 9] }, { class: 1, accuracy: 0.1, error_instance_ids: [3, 8, 4] }],
  h2_incompatible_instance_ids_by_class: [{ class: 0, incompatibleInstanceIds: [2] }, { class: 1, incompatibleInstanceIds: [8, 3] }],
};

test("filter ids: regions and class bars keep their list's order", () => {
  assert.equal(W.filterIds(EV, {}), null);
  assert.deepEqual(W.filterIds(EV, { region: "progress" }), [1, 6, 7]);
  assert.deepEqual(W.filterIds(EV, { region: "common" }), [4, 9]);
  assert.deepEqual(W.filterIds(EV, { region: "regress" }), [2, 8, 3]);
  assert.deepEqual(W.filterIds(EV, { class: 1, bar: "h2" }), [3, 8, 4]);
  assert.deepEqual(W.filterIds(EV, { class: "0", bar: "h1" }), [1, 4, 9]);
  assert.deepEqual(W.filterIds(EV, { class: 1, bar: "incompatible" }), [8, 3]);
  assert.deepEqual(W.filterIds(EV, { class: 7, bar: "h1" }), []);
  assert.throws(() => W.filterIds(EV, { region: "bogus" }), /unknown region/);
  assert.throws(() => W.filterIds(EV, { class: 0, bar: "h3" }), /unknown bar/);
  assert.deepEqual(W.regionCounts(EV.models_error_overlap), { progress: 3, common: 2, regress: 3 });
  // rows come out in error_instances order, whatever the filter list's order
  const order = [1, 2, 3, 4, 6, 7, 8, 9];
  assert.deepEqual(W.selectRows(order, [8, 3, 2]).map((i) => order[i]), [2, 3, 8]);
  assert.deepEqual(W.selectRows(order, null), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(W.selectionFilter({ point: 1, region: "common", class: null, bar: null }), { region: "common" });
  assert.deepEqual(W.selectionFilter({ point: 1, region: null, class: 0, bar: "h1" }), { class: 0, bar: "h1" });
  assert.deepEqual(W.selectionFilter({ point: 1, region: null, class: null, bar: null }), {});
});

test("CSV text and file name", () => {
  const text = W.csvText([{ instance_id: 3, h1_prediction: 1, h2_prediction: 2, ground_truth: 1 },
    { instance_id: 8, h1_prediction: 'a,"b"', h2_prediction: null, ground_truth: "x\ny" }]);
  assert.equal(text, 'instance_id,h1_prediction,h2_prediction,ground_truth\n3,1,2,1\n8,"a,""b""",,"x\ny"\n');
  assert.equal(W.csvText([]), "instance_id,h1_prediction,h2_prediction,ground_truth\n");
  assert.equal(W.csvFilename(5, {}), "bcml-5-errors.csv");
  assert.equal(W.csvFilename(5, { region: "regress" }), "bcml-5-regress.csv");
  assert.equal(W.csvFilename(5, { class: 1, bar: "h2" }, { 1: "Trouser" }), "bcml-5-h2-class-Trouser.csv");
  assert.equal(W.csvFilename(0, { class: 3, bar: "incompatible" }), "bcml-0-incompatible-class-3.csv");
});

test("formatting helpers", () => {
  close(W.relativeChange(0.631, 0.674), (0.674 - 0.631) / 0.631 * 100);
  assert.equal(W.fmtChange(W.relativeChange(0.631, 0.674)), "+6.815 %");
  assert.equal(W.fmtChange(W.relativeChange(0.5, 0.4)), "-20.000 %");
  assert.equal(W.relativeChange(0, 0.5), null);
  assert.equal(W.relativeChange(null, 0.5), null);
  assert.equal(W.fmtChange(null), "n/a");
  assert.equal(W.fmt(null), "n/a");
  assert.equal(W.fmt(0.12345), "0.123");
  assert.equal(W.className(3, { 3: "Dress" }), "Dress");
  assert.equal(W.className(4, { 3: "Dress" }), "4");
  assert.equal(W.pointLabel(P(5, 0.25, false, true, 0.674), "model_accuracy"),
    "lambda_c 0.25, new error, test: model_accuracy 0.674, BTC 0.900, BEC 0.800");
});

test("the palette is Okabe-Ito", () => {
  const okabeIto = new Set(["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]);
  for (const c of Object.values(W.PALETTE)) assert.ok(okabeIto.has(c), c);
});

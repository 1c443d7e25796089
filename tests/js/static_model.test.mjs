// createStaticModel (the HTML report's stand-in for anywidget's model), and module import hygiene.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createStaticModel, EMPTY_SELECTION } from "../../bcml/widget/static/widget.js";

const MODULE = fileURLToPath(new URL("../../bcml/widget/static/widget.js", import.meta.url));
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);

const point = (i, lam, train, ne) => ({ datapoint_index: i, lambda_c: lam, training: train, testing: !train,
  "new-error": ne, "strict-imitation": !ne, performance: 0.7, btc: 0.9, bec: 0.8 });

function data() {
  return {
    state: { kind: "analysis", title: "t", status: "done", progress: 1, can_start: true, static: false,
      points: [point(0, 0, true, true), point(1, 0, false, true), point(2, 0.5, true, false), point(3, 0.5, false, false)],
      lambdas: [0, 0.5], h1_performance: 0.6, performance_metric: "model_accuracy",
      filters: { training: true, testing: true, new_error: true, strict_imitation: true, lambda_min: 0, lambda_max: 0.5 },
      selection: { ...EMPTY_SELECTION }, error: "", page_size: 5, columns: ["image", "data", "label"], class_names: { 1: "one" } },
    evaluations: {
      1: {
        models_error_overlap: [[10, 11, 12, 13, 14, 15, 16], [12, 13, 20, 21, 22, 23, 24], [12, 13]],
        h1_accuracy_by_class: [{ class: 0, accuracy: 0.5, error_instance_ids: [10, 12] }, { class: 1, accuracy: 0.7, error_instance_ids: [11, 13, 14, 15, 16] }],
        h2_accuracy_by_class: [{ class: 0, accuracy: 0.6, error_instance_ids: [24, 12] }, { class: 1, accuracy: 0.8, error_instance_ids: [13, 20, 21, 22, 23] }],
        h2_incompatible_instance_ids_by_class: [{ class: 0, incompatibleInstanceIds: [24] }, { class: 1, incompatibleInstanceIds: [23, 20, 21, 22] }],
        sorted_classes: [0, 1], h2_performance: 0.7, btc: 0.9, bec: 0.8, dataset_size: 100,
        lambda_c: 0, training: false, testing: true, datapoint_index: 1,
        error_instances: {
          instance_id: [10, 11, 12, 13, 14, 15, 16, 20, 21, 22, 23, 24],
          metadata: ["m10", "", "m12", "m13", "m14", "m15", "m16", "m20", "m21", "m22", "m23", "m,24"],
          h1_prediction: [1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0],
          h2_prediction: [0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1],
          ground_truth: [0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
        },
      },
    },
    rows: { 20: { data: { age: "39", work: "state-gov" }, label: "<=50K" } },
    images: { 21: PNG.toString("base64") },
  };
}

// send a request and wait for its answer through "msg:custom"
function ask(model, method, args) {
  return new Promise((resolve) => {
    const id = `t${Math.random()}`;
    const cb = (msg, buffers) => { if (msg.id === id) { model.off("msg:custom", cb); resolve({ msg, buffers }); } };
    model.on("msg:custom", cb);
    model.send({ type: "bcml:request", id, method, args });
  });
}

test("get/set/on/off/save_changes; the report is always static and cannot start", () => {
  const m = createStaticModel(data());
  assert.equal(m.get("static"), true);
  assert.equal(m.get("can_start"), false);
  assert.equal(m.get("title"), "t");
  let n = 0;
  const cb = () => { n++; };
  m.on("change:title", cb);
  m.set("title", "u"); m.save_changes();
  assert.equal(n, 1);
  assert.equal(m.get("title"), "u");
  m.set("title", "u"); // unchanged: no event
  assert.equal(n, 1);
  m.off("change:title", cb);
  m.set("title", "v");
  assert.equal(n, 1);
  assert.equal(createStaticModel({}).get("kind"), "analysis");
});

test("a filters change hiding the selected point clears the selection (and only then)", () => {
  const m = createStaticModel(data());
  const seen = [];
  m.on("change:selection", () => seen.push(m.get("selection")));
  m.set("selection", { point: 1, region: "regress", class: null, bar: null }); m.save_changes();
  m.set("filters", { ...m.get("filters"), training: false }); m.save_changes();   // point 1 is a test point
  assert.equal(m.get("selection").point, 1);
  m.set("filters", { ...m.get("filters"), new_error: false }); m.save_changes();
  assert.deepEqual(m.get("selection"), EMPTY_SELECTION);
  assert.equal(seen.length, 2);
});

test("evaluation: the dict without error_instances, plus error_count", async () => {
  const m = createStaticModel(data());
  const { msg, buffers } = await ask(m, "evaluation", { index: 1 });
  assert.equal(msg.type, "bcml:response");
  assert.equal(msg.ok, true);
  assert.equal(msg.result.error_count, 12);
  assert.equal("error_instances" in msg.result, false);
  assert.deepEqual(msg.result.models_error_overlap[2], [12, 13]);
  assert.deepEqual(buffers, []);
  const bad = await ask(m, "evaluation", { index: 7 });
  assert.equal(bad.msg.ok, false);
  assert.match(bad.msg.error, /7/);
});

test("page: filtering, order, clamping, extras and PNG buffers", async () => {
  const m = createStaticModel(data());
  let { msg, buffers } = await ask(m, "page", { index: 1, filter: { region: "regress" }, page: 0, page_size: 2 });
  assert.equal(msg.ok, true);
  assert.deepEqual([msg.result.total, msg.result.page, msg.result.pages], [5, 0, 3]);
  assert.deepEqual(msg.result.rows.map((r) => r.instance_id), [20, 21]);
  const [r20, r21] = msg.result.rows;
  assert.deepEqual(r20, { instance_id: 20, metadata: "m20", h1_prediction: 1, h2_prediction: 0, ground_truth: 1,
    data: { age: "39", work: "state-gov" }, label: "<=50K", image: null });
  assert.equal(r21.image, 0);
  assert.equal(buffers.length, 1);
  assert.ok(buffers[0] instanceof DataView);
  assert.deepEqual(Buffer.from(buffers[0].buffer, buffers[0].byteOffset, buffers[0].byteLength), PNG);
  ({ msg } = await ask(m, "page", { index: 1, filter: { region: "regress" }, page: 99, page_size: 2 }));
  assert.equal(msg.result.page, 2);
  assert.deepEqual(msg.result.rows.map((r) => r.instance_id), [24]);
  // class bar: rows in error_instances order, not in the id list's order
  ({ msg } = await ask(m, "page", { index: 1, filter: { class: 1, bar: "incompatible" }, page: 0, page_size: 10 }));
  assert.deepEqual(msg.result.rows.map((r) => r.instance_id), [20, 21, 22, 23]);
  ({ msg } = await ask(m, "page", { index: 1, filter: { class: 0, bar: "h2" }, page: 0, page_size: 10 }));
  assert.deepEqual(msg.result.rows.map((r) => r.instance_id), [12, 24]);
  ({ msg } = await ask(m, "page", { index: 1, filter: {}, page: 0, page_size: 5 }));
  assert.deepEqual([msg.result.total, msg.result.pages], [12, 3]);
  ({ msg } = await ask(m, "page", { index: 1, filter: { region: "progress" }, page: 0, page_size: 10 }));
  assert.deepEqual(msg.result.rows.map((r) => r.instance_id), [10, 11, 14, 15, 16]);
  ({ msg } = await ask(m, "page", { index: 1, filter: { region: "common" }, page: 0, page_size: 10 }));
  assert.deepEqual(msg.result.rows.map((r) => r.instance_id), [12, 13]);
});

test("csv: exactly the filter's ids, all pages", async () => {
  const m = createStaticModel(data());
  const { msg } = await ask(m, "csv", { index: 1, filter: { class: 0, bar: "incompatible" } });
  assert.equal(msg.ok, true);
  assert.equal(msg.result.filename, "bcml-1-incompatible-class-0.csv");
  assert.equal(msg.result.text, "instance_id,h1_prediction,h2_prediction,ground_truth\n24,0,1,0\n");
  const all = (await ask(m, "csv", { index: 1, filter: { region: "regress" } })).msg.result.text.trim().split("\n");
  assert.deepEqual(all.slice(1).map((l) => +l.split(",")[0]), [20, 21, 22, 23, 24]);
});

test("start and cancel answer 'no kernel'; answers are asynchronous", async () => {
  const m = createStaticModel(data());
  let sync = true;
  const p = ask(m, "start", {}).then((r) => { assert.equal(sync, false); return r; });
  sync = false;
  const { msg } = await p;
  assert.equal(msg.ok, false);
  assert.equal(msg.error, "static report: no kernel");
  assert.equal((await ask(m, "cancel", {})).msg.error, "static report: no kernel");
  assert.equal((await ask(m, "bogus", {})).msg.ok, false);
});

test("importing the module touches neither document nor window", () => {
  const code = `
    for (const name of ["document", "window", "navigator", "location"]) {
      Object.defineProperty(globalThis, name, { configurable: true, get() { throw new Error("touched " + name); } });
    }
    const m = await import(${JSON.stringify("file://" + MODULE)});
    if (typeof m.default.render !== "function") throw new Error("no render");
    console.log("imported");`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /imported/);
});

"""save_html: one or more widgets as one self-contained HTML file. The page runs the widget's own
ES module against a stand-in for the widget model (``createStaticModel`` in widget.js) that
answers the view's requests from the data embedded in the page: no kernel, no server, no CDN;
it opens from file:// offline."""
import base64
import html
import json
import math
import os
import pathlib
import tempfile

STATIC = pathlib.Path(__file__).resolve().parent / "static"
_SYNCED = ("kind", "title", "status", "progress", "points", "lambdas", "h1_performance", "performance_metric",
           "filters", "selection", "error", "page_size", "columns", "class_names")

_BOOTSTRAP = """
const src = JSON.parse(document.getElementById("bcml-esm").textContent);
const url = URL.createObjectURL(new Blob([src], {type: "text/javascript"}));
const mod = await import(url);
for (const el of document.querySelectorAll("div[data-bcml]")) {
  const data = JSON.parse(document.getElementById("bcml-data-" + el.dataset.bcml).textContent);
  const model = mod.createStaticModel(data);
  mod.default.render({model, el});
}
"""


def _clean(v):
    """JSON-ready: non-finite floats become null, tuples lists, keys strings."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def script_json(value):
    """JSON text safe inside a <script> element (no "</script>", no HTML or JS line breaks)."""
    s = json.dumps(_clean(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _columnar(instances):
    keys = ("instance_id", "metadata", "h1_prediction", "h2_prediction", "ground_truth")
    return {k: [r.get(k) for r in instances] for k in keys}


def static_data(widget, max_images):
    """The data block of one widget: its state, every evaluation (error instances columnar), the
    optional columns of every error instance and up to max_images thumbnails (base64)."""
    state = {k: getattr(widget, k) for k in _SYNCED}
    state.update(static=True, can_start=False)
    if state["status"] in ("running", "cancelling"):
        state["status"] = "idle"
    evaluations, ids = {}, []
    seen = set()
    for i, ev in widget._static_evaluations().items():
        instances = ev.get("error_instances") or []
        evaluations[str(i)] = dict({k: v for k, v in ev.items() if k != "error_instances"},
                                   error_instances=_columnar(instances))
        for r in instances:
            iid = r.get("instance_id")
            if iid not in seen:
                seen.add(iid)
                ids.append(iid)
    data = widget._data
    rows, images = {}, {}
    if data.get_instance_data_by_id is not None or data.get_instance_label_by_id is not None:
        for iid in ids:
            d, label = data.row_extras(iid)
            rows[str(iid)] = {"data": d, "label": label}
    if data.get_instance_image_by_id is not None:
        for iid in ids[:max_images]:
            img = data.image(iid)
            if img is not None:
                images[str(iid)] = base64.b64encode(img).decode("ascii")
    return {"state": state, "evaluations": evaluations, "rows": rows, "images": images,
            "images_total": len(ids), "images_kept": min(len(ids), max_images)}


def page_html(blocks, title):
    css = (STATIC / "widget.css").read_text(encoding="utf-8")
    esm = (STATIC / "widget.js").read_text(encoding="utf-8")
    parts = ['<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
             '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
             "<title>%s</title>\n" % html.escape(title),
             "<meta name=\"generator\" content=\"bcml save_html\">\n",
             "<style>\nbody { margin: 16px; font-family: system-ui, sans-serif; background: #fff; }\n"
             ".bcml-report + .bcml-report { margin-top: 32px; }\n%s\n</style>\n</head>\n<body>\n" % css]
    for i in range(len(blocks)):
        parts.append('<div class="bcml-report" data-bcml="%d"></div>\n' % i)
    parts.append('<script type="application/json" id="bcml-esm">%s</script>\n' % script_json(esm))
    for i, b in enumerate(blocks):
        parts.append('<script type="application/json" id="bcml-data-%d">%s</script>\n' % (i, script_json(b)))
    parts.append('<script type="module">%s</script>\n</body>\n</html>\n' % _BOOTSTRAP)
    return "".join(parts)


def check_output(path, max_images, fname):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError("%s(): argument 'path' must be a file path, not %s" % (fname, type(path).__name__))
    if isinstance(max_images, bool) or not isinstance(max_images, int):
        raise TypeError("%s(): argument 'max_images' must be an int, not %s" % (fname, type(max_images).__name__))
    if max_images < 0:
        raise ValueError("%s(): argument 'max_images' must be >= 0, got %d" % (fname, max_images))


def save_html(path, widgets, max_images=5000):
    from ._base import _Widget
    check_output(path, max_images, "save_html")
    if not widgets:
        raise ValueError("save_html(): argument 'widgets': give at least one widget")
    for w in widgets:
        if not isinstance(w, _Widget):
            raise TypeError("save_html(): argument 'widgets' must hold CompatibilityAnalysis or ModelComparison "
                            "widgets, got %s" % type(w).__name__)
    return write_report(path, widgets, max_images, "save_html")


def write_report(path, widgets, max_images, fname):
    """Writes the page of widgets (objects with the synced state as attributes) to path, atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError("%s(): argument 'path': the folder %r does not exist" % (fname, folder))
    text = page_html([static_data(w, max_images) for w in widgets], widgets[0].title)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".html", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # a report to share (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return path

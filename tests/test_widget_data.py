"""The widgets' data layer (bcml/widget/_data.py) on a real sweep folder, without a browser or a
kernel: the answers to the front end's requests (evaluation, page, csv), the filter rules
checked against sets computed here from the evaluation JSON, the image conversion (decoded
back with Pillow) and the HTML report's escaping."""
import csv
import io
import json
import os
import zlib

import numpy as np
import pytest

from bcml.widget import _data, _html
from bcml.widget._data import WidgetData, array_to_png, encode_png, to_image_bytes

from conftest import FASHION_MNIST, need, need_path
from test_sweep_manager import _sweep_into


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished breast-cancer sweep (LogisticRegression h1, MLP h2; lambda_c 0, 0.5, 1)."""
    from test_sweep import _setup
    folder = tmp_path_factory.mktemp("widget-sweep")
    _sweep_into(folder, _setup())
    return folder


def _load(folder, i):
    with open(os.path.join(folder, "%d-evaluation-data.json" % i), encoding="utf-8") as f:
        return json.load(f)


def _data_of(folder, **kw):
    from bcml.sweep_management import SweepManager
    return WidgetData(SweepManager.from_folder(folder).get_evaluation, **kw)


def _expected_ids(ev, flt):
    """The ids a filter keeps, computed from the evaluation JSON independently of _data."""
    h1, h2, both = (set(x) for x in ev["models_error_overlap"])
    if not flt:
        keep = h1 | h2
    elif "region" in flt:
        keep = {"progress": h1 - both, "common": both, "regress": h2 - both}[flt["region"]]
    else:
        key, ids = {"h1": ("h1_accuracy_by_class", "error_instance_ids"),
                    "h2": ("h2_accuracy_by_class", "error_instance_ids"),
                    "incompatible": ("h2_incompatible_instance_ids_by_class", "incompatibleInstanceIds")}[flt["bar"]]
        keep = set(next(e[ids] for e in ev[key] if e["class"] == flt["class"]))
    order = [r["instance_id"] for r in ev["error_instances"]]
    return [i for i in order if i in keep]


def _filters(ev):
    out = [{}, {"region": "progress"}, {"region": "common"}, {"region": "regress"}]
    for c in ev["sorted_classes"]:
        out += [{"class": c, "bar": b} for b in ("h1", "h2", "incompatible")]
    return out


def test_evaluation_request_is_the_file_without_instances(sweep):
    d = _data_of(sweep)
    for i in range(12):
        ev = _load(sweep, i)
        got = d.evaluation(i)
        assert got.pop("error_count") == len(ev["error_instances"])
        ev.pop("error_instances")
        assert got == ev


def test_regions_and_class_bars_match_the_evaluation(sweep):
    d = _data_of(sweep)
    checked = 0
    for i in range(12):
        ev = _load(sweep, i)
        h1, h2, both = (set(x) for x in ev["models_error_overlap"])
        assert both == h1 & h2  # the sweep's overlap, as the Venn diagram reads it
        for flt in _filters(ev):
            want = _expected_ids(ev, flt)
            assert [r["instance_id"] for r in d.filter_rows(i, flt)] == want
            checked += bool(want)
    assert checked > 20  # the sweep has errors in most regions and classes


def test_pages_cover_the_filter_exactly_once(sweep):
    d = _data_of(sweep)
    ev = _load(sweep, 1)
    for flt in _filters(ev):
        want = _expected_ids(ev, flt)
        for size in (1, 5, 7):
            res, bufs = d.page(1, flt, 0, size)
            assert res["total"] == len(want) and res["pages"] == max(1, -(-len(want) // size))
            got = []
            for p in range(res["pages"]):
                res, bufs = d.page(1, flt, p, size)
                assert res["page"] == p and bufs == []
                assert len(res["rows"]) == (size if p < res["pages"] - 1 else len(want) - size * (res["pages"] - 1))
                got += [r["instance_id"] for r in res["rows"]]
            assert got == want
            # past the end: the last page
            assert d.page(1, flt, 10 ** 6, size)[0]["page"] == res["pages"] - 1
    rows = {r["instance_id"]: r for r in ev["error_instances"]}
    res, _ = d.page(1, {"region": "regress"}, 0, 3)
    for r in res["rows"]:
        src = rows[r["instance_id"]]
        assert {k: r[k] for k in src} == src and r["data"] is None and r["label"] is None and r["image"] is None


def test_csv_is_exactly_the_filters_rows(sweep):
    d = _data_of(sweep, class_names=["benign", "malignant"])
    ev = _load(sweep, 3)
    rows = {r["instance_id"]: r for r in ev["error_instances"]}
    for flt in _filters(ev):
        out = d.csv(3, flt)
        table = list(csv.reader(io.StringIO(out["text"])))
        assert table[0] == ["instance_id", "h1_prediction", "h2_prediction", "ground_truth"]
        assert [int(r[0]) for r in table[1:]] == _expected_ids(ev, flt)
        for r in table[1:]:
            src = rows[int(r[0])]
            assert r[1:] == [str(src["h1_prediction"]), str(src["h2_prediction"]), str(src["ground_truth"])]
    assert d.csv(3, {"class": 1, "bar": "incompatible"})["filename"] == "bcml-3-incompatible-class-malignant.csv"
    assert d.csv(3, {"region": "regress"})["filename"] == "bcml-3-regress.csv"


def test_handle_routes_requests_and_reports_errors(sweep):
    d = _data_of(sweep)
    req = {"type": "bcml:request", "id": "v1:7", "method": "page", "args": {"index": 5, "filter": {"region": "common"},
                                                                            "page": 0, "page_size": 2}}
    reply, bufs = d.handle(req)
    assert reply["type"] == "bcml:response" and reply["id"] == "v1:7" and reply["ok"]
    assert reply["result"] == d.page(5, {"region": "common"}, 0, 2)[0]
    assert d.handle({"type": "other"}) is None and d.handle("not a dict") is None
    bad = [({"method": "nope"}, "argument 'method' must be one of"),
           ({"method": "evaluation", "args": {"index": 12}}, "IndexError"),
           ({"method": "evaluation", "args": {"index": "a"}}, "index must be an int"),
           ({"method": "evaluation", "args": {"index": -1}}, "index must be in"),
           ({"method": "page", "args": {"index": 1, "filter": {"region": "all"}}}, "filter['region']"),
           ({"method": "page", "args": {"index": 1, "filter": {"class": 7, "bar": "h1"}}}, "no class 7"),
           ({"method": "page", "args": {"index": 1, "filter": {"bar": "h1"}}}, "filter must be"),
           ({"method": "page", "args": {"index": 1, "page_size": 0}}, "page_size"),
           ({"method": "page", "args": {"index": 1, "page": 1.5}}, "page must be an int"),
           ({"method": "csv", "args": []}, "args must be a dict")]
    for extra, words in bad:
        reply, bufs = d.handle(dict({"type": "bcml:request", "id": 3}, **extra))
        assert reply["ok"] is False and reply["id"] == 3 and words in reply["error"], (extra, reply)
        assert bufs == []


def test_optional_columns_and_user_function_errors(sweep):
    calls = []

    def data_fn(i):
        calls.append(i)
        return {"age": 30 + i, "sex": "F"}

    d = _data_of(sweep, get_instance_data_by_id=data_fn, get_instance_label_by_id=lambda i: {"label": i % 2})
    assert d.columns() == ["data", "label"]
    res, _ = d.page(1, {}, 0, 3)
    for r in res["rows"]:
        i = r["instance_id"]
        assert r["data"] == {"age": str(30 + i), "sex": "F"} and r["label"] == str(i % 2)
    assert _data._label_text({"a": 1, "b": 2}) == "a: 1, b: 2" and _data._label_text(3) == "3"

    def broken(i):
        raise ValueError("no row %d" % i)

    d = _data_of(sweep, get_instance_data_by_id=broken)
    reply, _ = d.handle({"type": "bcml:request", "id": 1, "method": "page", "args": {"index": 1}})
    first = _load(sweep, 1)["error_instances"][0]["instance_id"]
    assert not reply["ok"] and reply["error"] == "ValueError: get_instance_data_by_id(%d) raised ValueError: no row %d" \
        % (first, first)


# ---- images --------------------------------------------------------------------------------------
def _decode(png):
    Image = need("PIL.Image") and __import__("PIL.Image", fromlist=["Image"])
    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def test_encode_png_round_trips_through_pillow():
    rng = np.random.default_rng(0)
    for shape, mode in (((7, 5), "L"), ((4, 9, 3), "RGB"), ((6, 6, 4), "RGBA"), ((1, 1), "L"), ((3, 2, 1), "L")):
        a = rng.integers(0, 256, size=shape, dtype=np.uint8)
        img = _decode(encode_png(a))
        assert img.mode == mode and img.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(img), a.reshape(shape[:2]) if len(shape) == 2 or shape[2] == 1 else a)


def test_array_to_png_scaling_rules():
    f = np.array([[0.0, 0.5], [1.0, 0.25]])
    assert np.array_equal(np.asarray(_decode(array_to_png(f))), np.rint(f * 255).astype(np.uint8))
    g = np.array([[-1.0, 0.0], [1.0, 3.0]])  # outside [0, 1]: stretched from its own range
    assert np.array_equal(np.asarray(_decode(array_to_png(g))), np.rint((g + 1) / 4 * 255).astype(np.uint8))
    i = np.array([[0, 7], [255, 100]], dtype=np.int64)  # ints within 0..255: as they are
    assert np.array_equal(np.asarray(_decode(array_to_png(i))), i.astype(np.uint8))
    chw = np.random.default_rng(1).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    assert np.array_equal(np.asarray(_decode(array_to_png(chw))), np.moveaxis(chw, 0, 2))
    b = np.array([[True, False]])
    assert np.array_equal(np.asarray(_decode(array_to_png(b))), [[255, 0]])
    nan = np.array([[np.nan, 1.0]])
    assert np.array_equal(np.asarray(_decode(array_to_png(nan))), [[0, 255]])
    f255 = np.array([[7.5, 200.0]])  # floats within 0..255 (not all within 0..1): as they are, rounded
    assert np.array_equal(np.asarray(_decode(array_to_png(f255))), [[8, 200]])
    flat = np.full((2, 2), -3.0)  # out of range and constant: black
    assert np.array_equal(np.asarray(_decode(array_to_png(flat))), np.zeros((2, 2)))
    for bad, err, words in ((np.zeros((2, 3, 5)), ValueError, "shape (2, 3, 5)"), (np.zeros(4), ValueError, "shape"),
                            (np.zeros((0, 3)), ValueError, "each side"), (np.array([["a"]]), TypeError, "dtype <U1"),
                            (np.zeros((5000, 2)), ValueError, "5000 x 2")):
        with pytest.raises(err, match="get_instance_image_by_id"):
            array_to_png(bad)
        with pytest.raises(err, match=words.replace("(", r"\(").replace(")", r"\)")):
            array_to_png(bad)


def test_every_image_form_gives_the_same_pixels():
    need_path(FASHION_MNIST)
    need("PIL")
    from PIL import Image
    from bcml.datasets import load_fashion_mnist
    ds = load_fashion_mnist()
    img = ds.X_test[3]
    img = np.asarray(img).reshape(28, 28)
    want = np.asarray(_decode(array_to_png(img)))
    png = encode_png(want)

    class FlaskLike:  # BCML's examples returned flask.send_file(BytesIO PNG): an object with get_data()
        def get_data(self):
            return png

    moved = io.BytesIO(png)
    moved.seek(len(png))  # a file object left at its end after writing: read from its start
    import bcml
    forms = [png, bytearray(png), memoryview(png), io.BytesIO(png), moved, FlaskLike(), Image.fromarray(want),
             want, want.astype(np.float32) / 255.0, bcml.tensor(want.astype(np.float32) / 255.0)]
    for form in forms:
        got = np.asarray(_decode(to_image_bytes(form)).convert("L"))
        assert np.array_equal(got, want), type(form)
    assert to_image_bytes(None) is None
    jpeg = io.BytesIO()
    Image.fromarray(want).save(jpeg, format="JPEG")
    assert to_image_bytes(jpeg.getvalue()) == jpeg.getvalue()
    with pytest.raises(ValueError, match="not a PNG, JPEG, GIF or WebP"):
        to_image_bytes(b"hello")
    with pytest.raises(TypeError, match="must return PNG bytes"):
        to_image_bytes(object())
    with pytest.raises(TypeError, match="must return PNG bytes"):
        to_image_bytes("picture.png")


def test_thumbnails_in_page_buffers(sweep):
    calls = []

    def image(i):
        calls.append(i)
        return np.full((3, 4), i % 256, dtype=np.uint8) if i % 5 else None  # every fifth has no image

    d = _data_of(sweep, get_instance_image_by_id=image)
    assert d.columns() == ["image"]
    res, bufs = d.page(1, {}, 0, 10)
    k = 0
    for r in res["rows"]:
        i = r["instance_id"]
        if i % 5 == 0:
            assert r["image"] is None
        else:
            assert r["image"] == k
            assert np.array_equal(np.asarray(_decode(bufs[k])), np.full((3, 4), i % 256))
            k += 1
    assert len(bufs) == k
    n = len(calls)
    d.page(1, {}, 0, 10)
    assert len(calls) == n  # cached per id

    def bad(i):
        return "not an image"

    reply, bufs = _data_of(sweep, get_instance_image_by_id=bad).handle(
        {"type": "bcml:request", "id": 0, "method": "page", "args": {"index": 1}})
    assert not reply["ok"] and "get_instance_image_by_id(" in reply["error"] and "got str" in reply["error"]


# ---- filters and selection -------------------------------------------------------------------------
def test_point_visibility_and_checks():
    p = {"lambda_c": 0.5, "training": False, "testing": True, "new-error": False, "strict-imitation": True}
    f = dict(_data.DEFAULT_FILTERS)
    assert _data.point_visible(p, f)
    assert not _data.point_visible(p, dict(f, testing=False))
    assert _data.point_visible(p, dict(f, training=False))
    assert not _data.point_visible(p, dict(f, strict_imitation=False))
    assert not _data.point_visible(p, dict(f, lambda_min=0.6))
    assert _data.point_visible(p, dict(f, lambda_min=0.5, lambda_max=0.5))
    with pytest.raises(TypeError, match=r"filters\['training'\]"):
        _data.check_filters({"training": 1})
    with pytest.raises(ValueError, match="unknown key"):
        _data.check_filters({"train": True})
    with pytest.raises(ValueError, match="finite"):
        _data.check_filters({"lambda_min": float("nan")})
    with pytest.raises(ValueError, match="'class' and 'bar' go together"):
        _data.check_selection({"point": 1, "class": 2})
    with pytest.raises(ValueError, match="cannot both"):
        _data.check_selection({"point": 1, "region": "common", "class": 2, "bar": "h1"})
    with pytest.raises(TypeError, match=r"selection\['point'\]"):
        _data.check_selection({"point": True})
    assert _data.selection_filter({"region": "common"}) == {"region": "common"}
    assert _data.selection_filter({"class": 0, "bar": "h2", "region": None}) == {"class": 0, "bar": "h2"}


def test_script_json_cannot_close_the_script_element():
    text = _html.script_json({"m": "</script><script>alert(1)</script>", "a": "x & y", "l": "\u2028\u2029",
                              "n": float("nan"), "i": float("inf")})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"m": "</script><script>alert(1)</script>", "a": "x & y", "l": "\u2028\u2029",
                                "n": None, "i": None}
    assert zlib.crc32(b"") == 0  # (zlib is what encode_png's CRC uses)

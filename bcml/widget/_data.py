"""The widgets' data layer, without any front end: the answers to the requests the ES module
sends (an evaluation, a page of error instances with thumbnails, the CSV of a selection), image
conversion to PNG, and the rules that decide which points a filter shows.

Everything here is plain Python and NumPy, so the message handlers are tested without a
browser or a kernel; the anywidget classes only route messages to ``WidgetData.handle``.
"""
import collections
import io
import math
import numbers
import re
import struct
import zlib

import numpy as np

from .._checks import call_user

REGIONS = ("progress", "common", "regress")
BARS = ("h1", "h2", "incompatible")
FILTER_KEYS = ("training", "testing", "new_error", "strict_imitation", "lambda_min", "lambda_max")
DEFAULT_FILTERS = {"training": True, "testing": True, "new_error": True, "strict_imitation": True,
                   "lambda_min": 0.0, "lambda_max": 1.0}
EMPTY_SELECTION = {"point": None, "region": None, "class": None, "bar": None}
INSTANCE_KEYS = ("instance_id", "metadata", "h1_prediction", "h2_prediction", "ground_truth")
MAX_IMAGE_SIDE = 4096
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))


# ---- points and filters --------------------------------------------------------------------------
def check_filters(filters, lambdas=None):
    """The widget's ``filters`` dict, checked (TypeError / ValueError naming the key)."""
    if not isinstance(filters, dict):
        raise TypeError("filters must be a dict with keys %s, got %s" % (", ".join(FILTER_KEYS), type(filters).__name__))
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise ValueError("filters: unknown key(s) %s (known: %s)" % (", ".join(sorted(map(str, unknown))),
                                                                     ", ".join(FILTER_KEYS)))
    out = dict(DEFAULT_FILTERS)
    for k, v in filters.items():
        if k.startswith("lambda"):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError("filters[%r] must be a number, got %s" % (k, type(v).__name__))
            if not math.isfinite(v):
                raise ValueError("filters[%r] must be finite, got %r" % (k, v))
            out[k] = float(v)
        else:
            if not isinstance(v, bool):
                raise TypeError("filters[%r] must be True or False, got %r" % (k, v))
            out[k] = v
    return out


def point_visible(point, filters):
    """Whether a summary row (a point of the scatter plots) passes the filters."""
    f = filters
    split_ok = (point.get("training") and f["training"]) or (point.get("testing") and f["testing"])
    kind_ok = (point.get("new-error") and f["new_error"]) or (point.get("strict-imitation") and f["strict_imitation"])
    lam = point.get("lambda_c")
    lam_ok = lam is not None and f["lambda_min"] - 1e-9 <= lam <= f["lambda_max"] + 1e-9
    return bool(split_ok and kind_ok and lam_ok)


def check_selection(selection):
    """The widget's ``selection`` dict, checked: {"point", "region", "class", "bar"}."""
    if not isinstance(selection, dict):
        raise TypeError("selection must be a dict with keys point, region, class, bar, got %s"
                        % type(selection).__name__)
    unknown = set(selection) - set(EMPTY_SELECTION)
    if unknown:
        raise ValueError("selection: unknown key(s) %s (known: point, region, class, bar)"
                         % ", ".join(sorted(map(str, unknown))))
    out = dict(EMPTY_SELECTION)
    out.update(selection)
    p = out["point"]
    if p is not None and (isinstance(p, bool) or not isinstance(p, numbers.Integral)):
        raise TypeError("selection['point'] must be a datapoint index (int) or None, got %r" % (p,))
    if out["region"] is not None and out["region"] not in REGIONS:
        raise ValueError("selection['region'] must be None or one of %s, got %r" % (", ".join(REGIONS), out["region"]))
    if out["bar"] is not None and out["bar"] not in BARS:
        raise ValueError("selection['bar'] must be None or one of %s, got %r" % (", ".join(BARS), out["bar"]))
    if (out["bar"] is None) != (out["class"] is None):
        raise ValueError("selection: 'class' and 'bar' go together (both None or both set), got class=%r, bar=%r"
                         % (out["class"], out["bar"]))
    if out["region"] is not None and out["bar"] is not None:
        raise ValueError("selection: a Venn region and a class bar cannot both be selected")
    return out


def selection_filter(selection):
    """The instance-table filter a selection implies: {}, {"region"} or {"class", "bar"}."""
    if selection.get("region") is not None:
        return {"region": selection["region"]}
    if selection.get("bar") is not None:
        return {"class": selection["class"], "bar": selection["bar"]}
    return {}


# ---- images --------------------------------------------------------------------------------------
def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels):
    """PNG bytes of a uint8 array H x W (grey), H x W x 1, H x W x 3 (RGB) or H x W x 4 (RGBA)."""
    a = np.ascontiguousarray(pixels, dtype=np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    h, w = a.shape[:2]
    colour = 0 if a.ndim == 2 else {3: 2, 4: 6}[a.shape[2]]
    rows = a.reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))


def _to_uint8(a, who):
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint8:
        return a
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError("%s returned an array of dtype %s; an image needs numbers (uint8, or floats in [0, 1])"
                        % (who, a.dtype))
    f = a.astype(np.float64)
    f[~np.isfinite(f)] = 0.0
    lo, hi = (float(f.min()), float(f.max())) if f.size else (0.0, 0.0)
    if np.issubdtype(a.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        f = f * 255.0
    elif not (lo >= 0.0 and hi <= 255.0):  # e.g. normalised inputs: stretched from their own range
        f = (f - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(f)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def array_to_png(array, who="get_instance_image_by_id"):
    """PNG bytes of an image array: H x W, H x W x C or C x H x W with C in 1, 3, 4. Floats all
    within [0, 1] are multiplied by 255; other values all within 0..255 are used as they are
    (rounded); anything else (e.g. normalised inputs) is stretched from its min..max to 0..255."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] not in (1, 3, 4) and a.shape[0] in (1, 3, 4):
        a = np.moveaxis(a, 0, 2)  # C x H x W, as a tensor holds an image
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise ValueError("%s returned an array of shape %s; an image is H x W, H x W x C or C x H x W with "
                         "C in 1, 3, 4" % (who, tuple(a.shape)))
    if a.shape[0] < 1 or a.shape[1] < 1 or a.shape[0] > MAX_IMAGE_SIDE or a.shape[1] > MAX_IMAGE_SIDE:
        raise ValueError("%s returned an image of %d x %d pixels; each side must be 1 to %d"
                         % (who, a.shape[0], a.shape[1], MAX_IMAGE_SIDE))
    return encode_png(_to_uint8(a, who))


def _image_bytes(b, who):
    b = bytes(b)
    if any(b.startswith(sig) for sig, _ in _SIGNATURES) or (b[:4] == b"RIFF" and b[8:12] == b"WEBP"):
        return b
    raise ValueError("%s returned %d bytes that are not a PNG, JPEG, GIF or WebP image" % (who, len(b)))


def to_image_bytes(obj, who="get_instance_image_by_id"):
    """Encoded image bytes (PNG unless the user gave JPEG, GIF or WebP bytes) of what an image
    function returned: bytes, a file-like object (read from its start), an object with
    ``get_data()`` (a Flask response, as BCML's examples returned), a PIL image, a NumPy array or
    a tensor. None stays None (no image for that instance)."""
    if obj is None:
        return None
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _image_bytes(obj, who)
    get_data = getattr(obj, "get_data", None)
    if callable(get_data) and not isinstance(obj, np.ndarray):
        return _image_bytes(get_data(), who)
    read = getattr(obj, "read", None)
    if callable(read):
        if callable(getattr(obj, "seek", None)) and getattr(obj, "seekable", lambda: True)():
            obj.seek(0)
        return _image_bytes(read(), who)
    if any(k.__module__.split(".")[0] == "PIL" for k in type(obj).__mro__) and callable(getattr(obj, "save", None)):
        buf = io.BytesIO()
        img = obj if getattr(obj, "mode", "RGB") in ("1", "L", "LA", "P", "RGB", "RGBA") else obj.convert("RGB")
        img.save(buf, format="PNG")
        return buf.getvalue()
    if isinstance(obj, (np.ndarray, np.generic)) or hasattr(obj, "__array__"):
        try:
            arr = np.asarray(obj)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError("%s returned a %s that NumPy cannot read as an image array: %s"
                            % (who, type(obj).__name__, e)) from None
        return array_to_png(arr, who)
    raise TypeError("%s must return PNG bytes, a file-like object, an object with get_data(), a PIL image, "
                    "an H x W (x C) array or None, got %s" % (who, type(obj).__name__))


# ---- the rows of the instance table --------------------------------------------------------------
def _text_dict(value):
    if value is None:
        return None
    items = getattr(value, "items", None)
    if callable(items):
        return {str(k): str(v) for k, v in items()}
    return {"value": str(value)}


def _label_text(value):
    if value is None:
        return None
    items = getattr(value, "items", None)
    if callable(items):
        pairs = list(items())
        if len(pairs) == 1 and str(pairs[0][0]) == "label":
            return str(pairs[0][1])
        return ", ".join("%s: %s" % (k, v) for k, v in pairs)
    return str(value)


class _Evaluation(object):
    """One evaluation, with its error instances indexed for filtering."""

    def __init__(self, ev):
        self.raw = ev
        self.instances = ev.get("error_instances") or []
        ov = ev.get("models_error_overlap") or [[], [], []]
        h1, h2, both = (list(x) for x in ov)
        both_set = set(both)
        self.regions = {"progress": set(h1) - both_set, "common": both_set, "regress": set(h2) - both_set}
        self.by_class = {}
        for key, bar, ids_key in (("h1_accuracy_by_class", "h1", "error_instance_ids"),
                                  ("h2_accuracy_by_class", "h2", "error_instance_ids"),
                                  ("h2_incompatible_instance_ids_by_class", "incompatible", "incompatibleInstanceIds")):
            for entry in ev.get(key) or []:
                self.by_class[(bar, _class_key(entry.get("class")))] = set(entry.get(ids_key) or [])

    def summary(self):
        out = {k: v for k, v in self.raw.items() if k != "error_instances"}
        for k in ("lambda_c", "training", "testing", "datapoint_index"):
            out.setdefault(k, None)
        out["error_count"] = len(self.instances)
        return out

    def ids(self, flt):
        """The set of instance ids a page filter keeps (None: every error instance)."""
        if not flt:
            return None
        if "region" in flt:
            return self.regions[flt["region"]]
        key = (flt["bar"], _class_key(flt["class"]))
        if key not in self.by_class:
            raise ValueError("page filter: this evaluation has no class %r" % (flt["class"],))
        return self.by_class[key]

    def rows(self, flt):
        keep = self.ids(flt)
        if keep is None:
            return self.instances
        return [r for r in self.instances if r.get("instance_id") in keep]


def _class_key(c):
    """Classes compare as JSON does: 1, 1.0 and True are the same key only when equal numbers."""
    if isinstance(c, bool):
        return ("b", c)
    if isinstance(c, numbers.Real):
        return ("n", float(c))
    return ("s", str(c))


def check_page_filter(flt):
    """{} / {"region": r} / {"class": c, "bar": b}."""
    if flt is None:
        return {}
    if not isinstance(flt, dict):
        raise TypeError("filter must be a dict ({}, {'region': ...} or {'class': ..., 'bar': ...}), got %s"
                        % type(flt).__name__)
    keys = set(flt)
    if not keys:
        return {}
    if keys == {"region"}:
        if flt["region"] not in REGIONS:
            raise ValueError("filter['region'] must be one of %s, got %r" % (", ".join(REGIONS), flt["region"]))
        return {"region": flt["region"]}
    if keys == {"class", "bar"}:
        if flt["bar"] not in BARS:
            raise ValueError("filter['bar'] must be one of %s, got %r" % (", ".join(BARS), flt["bar"]))
        c = flt["class"]
        if not isinstance(c, (numbers.Real, str)):
            raise TypeError("filter['class'] must be a class value (a number or a string), got %s" % type(c).__name__)
        return {"class": c, "bar": flt["bar"]}
    raise ValueError("filter must be {}, {'region': ...} or {'class': ..., 'bar': ...}, got keys %s"
                     % ", ".join(sorted(map(str, keys))))


def _index(v, name, lo=0):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or (isinstance(v, float) and not v.is_integer()):
        raise TypeError("%s must be an int, got %r" % (name, v))
    v = int(v)
    if v < lo or v > 2 ** 53:
        raise ValueError("%s must be in [%d, 2**53], got %d" % (name, lo, v))
    return v


def _filter_name(flt, class_names):
    if not flt:
        return "errors"
    if "region" in flt:
        return flt["region"]
    c = class_names.get(str(flt["class"]), flt["class"])
    return "%s-class-%s" % (flt["bar"], re.sub(r"[^A-Za-z0-9._-]+", "_", str(c)))


class WidgetData(object):
    """Answers the widget's requests from evaluations (``get_evaluation(index) -> dict``).

    get_instance_image_by_id, get_instance_data_by_id and get_instance_label_by_id are the user's
    functions of an instance id (None when absent); their results are cached per id."""

    def __init__(self, get_evaluation, get_instance_image_by_id=None, get_instance_data_by_id=None,
                 get_instance_label_by_id=None, class_names=None, cache_size=8, image_cache_size=4096):
        self._get_evaluation = get_evaluation
        self.get_instance_image_by_id = get_instance_image_by_id
        self.get_instance_data_by_id = get_instance_data_by_id
        self.get_instance_label_by_id = get_instance_label_by_id
        if isinstance(class_names, (list, tuple)):
            class_names = {str(i): str(v) for i, v in enumerate(class_names)}
        self.class_names = class_names or {}
        self._evals = collections.OrderedDict()
        self._cache_size = cache_size
        self._images = collections.OrderedDict()
        self._image_cache_size = image_cache_size

    def columns(self):
        return [name for name, fn in (("image", self.get_instance_image_by_id), ("data", self.get_instance_data_by_id),
                                      ("label", self.get_instance_label_by_id)) if fn is not None]

    def forget(self):
        """Drops the cached evaluations (a sweep rewrote them)."""
        self._evals.clear()

    def _evaluation(self, index):
        index = _index(index, "index")
        ev = self._evals.get(index)
        if ev is None:
            ev = _Evaluation(self._get_evaluation(index))
            self._evals[index] = ev
            while len(self._evals) > self._cache_size:
                self._evals.popitem(last=False)
        else:
            self._evals.move_to_end(index)
        return ev

    # ---- the requests ----
    def evaluation(self, index):
        """The evaluation dict of data point index, without its error instances (plus their count)."""
        return self._evaluation(index).summary()

    def filter_rows(self, index, flt=None):
        """The error instances of evaluation index that the filter keeps, in data set order."""
        return self._evaluation(index).rows(check_page_filter(flt))

    def image(self, instance_id):
        """Encoded image bytes of an instance (None without get_instance_image_by_id)."""
        fn = self.get_instance_image_by_id
        if fn is None:
            return None
        if instance_id in self._images:
            self._images.move_to_end(instance_id)
            return self._images[instance_id]
        who = "get_instance_image_by_id(%r)" % (instance_id,)
        result = call_user(fn, who, instance_id)
        data = to_image_bytes(result, who)
        self._images[instance_id] = data
        while len(self._images) > self._image_cache_size:
            self._images.popitem(last=False)
        return data

    def row_extras(self, instance_id):
        """(data, label) of an instance for the table's optional columns."""
        data = label = None
        if self.get_instance_data_by_id is not None:
            data = _text_dict(call_user(self.get_instance_data_by_id, "get_instance_data_by_id(%r)" % (instance_id,),
                                        instance_id))
        if self.get_instance_label_by_id is not None:
            label = _label_text(call_user(self.get_instance_label_by_id,
                                          "get_instance_label_by_id(%r)" % (instance_id,), instance_id))
        return data, label

    def page(self, index, flt=None, page=0, page_size=5):
        """(result, buffers): one page of the filtered error instances, with the thumbnails' bytes
        in buffers (a row's "image" is its buffer's position, or None)."""
        page = _index(page, "page")
        page_size = _index(page_size, "page_size", 1)
        if page_size > 10000:
            raise ValueError("page_size must be at most 10000, got %d" % page_size)
        rows = self.filter_rows(index, flt)
        total = len(rows)
        pages = max(1, -(-total // page_size))
        page = min(page, pages - 1)
        out, buffers = [], []
        for r in rows[page * page_size:(page + 1) * page_size]:
            iid = r.get("instance_id")
            row = {k: r.get(k) for k in INSTANCE_KEYS}
            row["data"], row["label"] = self.row_extras(iid)
            img = self.image(iid)
            if img is not None:
                row["image"] = len(buffers)
                buffers.append(img)
            else:
                row["image"] = None
            out.append(row)
        return {"total": total, "page": page, "pages": pages, "rows": out}, buffers

    def csv(self, index, flt=None):
        """{"filename", "text"}: the filter's instances as CSV (instance_id, predictions, truth)."""
        flt = check_page_filter(flt)
        rows = self.filter_rows(index, flt)
        lines = ["instance_id,h1_prediction,h2_prediction,ground_truth"]
        for r in rows:
            lines.append(",".join(_csv_field(r.get(k)) for k in INSTANCE_KEYS if k != "metadata"))
        return {"filename": "bcml-%s-%s.csv" % (index, _filter_name(flt, self.class_names)),
                "text": "\n".join(lines) + "\n"}

    METHODS = ("evaluation", "page", "csv")

    def dispatch(self, method, args, extra=None):
        """(result, buffers) of request method with args (a dict); raises for a bad request.
        ``extra``: {method: fn(args) -> (result, buffers)} for the methods the widget adds."""
        known = self.METHODS + tuple(extra or ())
        if not isinstance(method, str):
            raise TypeError("request: argument 'method' must be a str (one of %s), not %s"
                            % (", ".join(known), type(method).__name__))
        if method not in known:
            raise ValueError("request: argument 'method' must be one of %s, got %r" % (", ".join(known), method))
        if not isinstance(args, dict):
            raise TypeError("request args must be a dict, got %s" % type(args).__name__)
        allowed = {"evaluation": ("index",), "page": ("index", "filter", "page", "page_size"),
                   "csv": ("index", "filter")}.get(method)
        if allowed is not None:
            unknown = sorted(set(map(str, args)) - set(allowed))
            if unknown:
                raise TypeError("request %r: unexpected argument(s) %s (it takes %s)"
                                % (method, ", ".join(unknown), ", ".join(allowed)))
        if extra and method in extra:
            return extra[method](args)
        if method == "evaluation":
            return self.evaluation(args.get("index")), []
        if method == "page":
            return self.page(args.get("index"), args.get("filter"), args.get("page", 0), args.get("page_size", 5))
        return self.csv(args.get("index"), args.get("filter")), []

    def handle(self, content, extra=None):
        """(reply, buffers) for a request message {"type": "bcml:request", "id", "method", "args"};
        None for a message that is not a request. Errors become {"ok": False, "error"}, shown by
        the front end (the kernel keeps running)."""
        if not isinstance(content, dict) or content.get("type") != "bcml:request":
            return None
        rid = content.get("id")
        args = content.get("args")
        try:
            result, buffers = self.dispatch(content.get("method"), {} if args is None else args, extra)
            return {"type": "bcml:response", "id": rid, "ok": True, "result": result}, buffers
        except Exception as e:
            return {"type": "bcml:response", "id": rid, "ok": False,
                    "error": "%s: %s" % (type(e).__name__, e)}, []


def _csv_field(v):
    s = "" if v is None else str(v)
    if any(c in s for c in ',"\n\r'):
        s = '"' + s.replace('"', '""') + '"'
    return s

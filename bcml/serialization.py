"""bcml.save / bcml.load in the safetensors format: 8 bytes N (u64, little-endian), a JSON header
of N bytes, then the raw little-endian data. Loading never runs code. Files are readable by the
`safetensors` package and PyTorch, and bcml reads theirs.

Reading checks every rule of the format in the C core (csrc/core/safetensors.c), before any
data is touched: header at most 100,000,000 bytes and starting with ``{``; strict JSON nested
at most 3 levels deep; no duplicate tensor name, metadata key or entry field; a known dtype, a shape of non-negative integers and
``data_offsets`` [begin, end) with begin <= end and end - begin = size of the shape; ranges that
tile the data buffer exactly (no overlap, no hole, no trailing byte, nothing past the end of the
file); ``__metadata__`` a map of strings to strings. Any violation raises ValueError naming the
file and what is wrong.

Every dtype of the format is read into the nearest bcml dtype:

======================================  =========  ==============================================
file dtype                              bcml       conversion
======================================  =========  ==============================================
F32                                     float32    none
F16, BF16                               float32    exact (every value is a float32)
F64                                     float32    rounded to nearest; a finite value beyond
                                                   float32's range raises ValueError (inf and
                                                   NaN stay inf and NaN)
BOOL                                    bool       any nonzero byte is True
U8, I8, I16, U16, I32, U32, I64         int64      exact
U64                                     int64      exact; a value above 2**63-1 raises ValueError
F8_E5M2, F8_E4M3                        --         ValueError "dtype F8_E4M3 is not supported"
======================================  =========  ==============================================

Writing uses F32, I64 and BOOL, always little-endian, and keeps every shape (a 0-d tensor is
written with shape ``[]``).

Optimizer state dicts (``Optimizer.state_dict()``) are saved as tensors ``state.{i}.{name}`` (i:
the parameter's position, name: PyTorch's key, e.g. ``state.0.exp_avg``) with the parameter
groups as JSON in the metadata key ``param_groups`` and the metadata key ``bcml_type`` set to
``optimizer_state_dict``; ``load`` recognises that key and returns the state dict again.
"""
import json
import os
import re
import struct

import numpy as np

from ._tensor import Tensor, from_numpy

TYPE_KEY = "bcml_type"                     # metadata key marking what a file holds
OPTIMIZER_STATE = "optimizer_state_dict"   # its value for an optimizer's state dict
GROUPS_KEY = "param_groups"                # metadata key of an optimizer's groups (JSON)

_TO_ST = {"float32": ("F32", "<f4"), "int64": ("I64", "<i8"), "bool": ("BOOL", "|u1")}
_INTS = {"U8": "|u1", "I8": "|i1", "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4", "I64": "<i8"}
_STATE_NAME = re.compile(r"state\.(0|[1-9][0-9]*)\.([A-Za-z_][A-Za-z0-9_]*)\Z")


def _value_tensor(k, v):
    if isinstance(v, Tensor):
        return v
    if isinstance(v, np.ndarray):
        return from_numpy(np.asarray(v, order="C"))  # np.ascontiguousarray would make 0-d 1-d
    raise TypeError("save: value of %r must be a tensor, got %s" % (k, type(v).__name__))


def _is_optimizer_state(obj):
    return isinstance(obj, dict) and set(obj) == {"state", "param_groups"}


def _flatten_optimizer(sd):
    """An optimizer state dict -> (tensors, metadata)."""
    state, groups = sd["state"], sd["param_groups"]
    if not isinstance(state, dict) or not isinstance(groups, (list, tuple)):
        raise TypeError("save: an optimizer state dict needs 'state' (a dict) and 'param_groups' (a list)")
    out = {}
    for i, ps in state.items():
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
            raise TypeError("save: optimizer state keys must be parameter indices (ints >= 0), got %r" % (i,))
        if not isinstance(ps, dict):
            raise TypeError("save: optimizer state of parameter %d must be a dict, got %s" % (i, type(ps).__name__))
        for name, v in ps.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError("save: optimizer state name %r of parameter %d is not an identifier" % (name, i))
            if v is None:
                continue
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                v = from_numpy(np.array(int(v), dtype=np.int64))
            out["state.%d.%s" % (i, name)] = _value_tensor("state.%d.%s" % (i, name), v)
    try:
        text = json.dumps([dict(g) for g in groups], allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError("save: the optimizer's param_groups must hold JSON values (numbers, strings, "
                        "bools, lists): %s" % e) from None
    return out, {TYPE_KEY: OPTIMIZER_STATE, GROUPS_KEY: text}


def _flatten(obj):
    """obj -> (tensors, bcml's own metadata)."""
    if isinstance(obj, Tensor):
        return {"": obj}, {}
    if not isinstance(obj, dict) and hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise TypeError("save: obj must be a tensor, a dict of tensors, a Module or an optimizer, got %s"
                        % type(obj).__name__)
    if _is_optimizer_state(obj):
        return _flatten_optimizer(obj)
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError("save: dict keys must be strings, got %r" % (k,))
        out[k] = _value_tensor(k, v)
    return out, {}


def _check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError("save: metadata must be a dict of str to str or None, got %s" % type(metadata).__name__)
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("save: metadata must map str to str, got %r: %r (%s: %s)"
                            % (k, v, type(k).__name__, type(v).__name__))
    if TYPE_KEY in metadata:
        raise ValueError("save: metadata key %r is reserved by bcml" % TYPE_KEY)
    return dict(metadata)


def _check_path(f, fname):
    if not isinstance(f, (str, bytes, os.PathLike)):
        raise TypeError("%s(): argument 'f' must be a path (str, bytes or os.PathLike), not %s"
                        % (fname, type(f).__name__))


def save(obj, f, metadata=None):
    """Writes a tensor, a dict of tensors (a state dict), a Module's state dict or an
    optimizer's state dict to the path f, atomically (a temporary file, then a rename).

    metadata: None or a dict of str to str, stored in the header's ``__metadata__`` (read it back
    with ``load(f, return_metadata=True)``). A tensor may not be named ``__metadata__``."""
    _check_path(f, "save")
    user_meta = _check_metadata(metadata)
    tensors, own_meta = _flatten(obj)
    if "__metadata__" in tensors:
        raise ValueError("save: a tensor may not be named '__metadata__' (the safetensors format reserves "
                         "that key for metadata)")
    for k in own_meta:
        if k in user_meta:
            raise ValueError("save: metadata key %r is used by bcml to store an optimizer's state dict" % k)
    meta = dict(user_meta, **own_meta)
    header, blobs, offset = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k]
        st_dtype, le = _TO_ST[t._dtype_name]
        arr = np.asarray(t.detach().numpy(), order="C")
        b = arr.astype(le, copy=False).tobytes()  # little-endian whatever the machine
        header[k] = {"dtype": st_dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if meta:
        header["__metadata__"] = meta
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    path = os.fspath(f)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as fh:
            fh.write(struct.pack("<Q", len(hb)))
            fh.write(hb)
            for b in blobs:
                fh.write(b)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _float64_to_float32(d, what, error=ValueError):
    """float64 values rounded to float32; a finite value beyond float32's range raises error
    naming what (also used by load_torch_checkpoint)."""
    with np.errstate(over="ignore"):
        a = d.astype(np.float32)
    bad = np.isfinite(d) & ~np.isfinite(a)
    if bad.any():
        raise error("%s holds %r, beyond float32's range" % (what, float(d[bad][0])))
    return a


def _uint64_to_int64(u, what, error=ValueError):
    """uint64 values as int64; a value above 2**63-1 raises error naming what."""
    if u.size and int(u.max()) > 2 ** 63 - 1:
        raise error("%s holds %d, which cannot be converted to type int64 without overflow" % (what, int(u.max())))
    return u.astype(np.int64)


def _convert(path, name, dtype, shape, raw):
    """The bytes of one entry -> a NumPy array of bcml's dtype (see the module's table)."""
    where = "load: %s: tensor %r" % (path, name)
    if dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F64":
        a = _float64_to_float32(np.frombuffer(raw, dtype="<f8"), "%s (F64)" % where)
    elif dtype == "BOOL":
        a = np.frombuffer(raw, dtype="|u1") != 0
    elif dtype in _INTS:
        a = np.frombuffer(raw, dtype=_INTS[dtype]).astype(np.int64)
    elif dtype == "U64":
        a = _uint64_to_int64(np.frombuffer(raw, dtype="<u8"), "%s (U64)" % where)
    else:
        raise ValueError("%s: dtype %s is not supported" % (where, dtype))
    return np.ascontiguousarray(a).reshape(shape)


def _optimizer_state(path, out, meta):
    """The tensors and metadata of a saved optimizer state dict -> the state dict."""
    try:
        groups = json.loads(meta.get(GROUPS_KEY, ""))
    except ValueError as e:
        raise ValueError("load: %s: metadata %r is not valid JSON: %s" % (path, GROUPS_KEY, e)) from None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                               for g in groups):
        raise ValueError("load: %s: metadata %r must be a list of parameter groups with 'params'" % (path, GROUPS_KEY))
    state = {}
    for k, t in out.items():
        m = _STATE_NAME.match(k)
        if not m:
            raise ValueError("load: %s: tensor %r of an optimizer state dict is not named state.{i}.{name}" % (path, k))
        state.setdefault(int(m.group(1)), {})[m.group(2)] = t
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def load(f, map_location=None, weights_only=True, return_metadata=False):
    """Reads a safetensors file (written by save() or any other writer): a dict of tensors in
    the header's order, the tensor itself when save() was given a single tensor, or an
    optimizer's state dict when save() was given one. With return_metadata=True, returns
    ``(result, metadata)``, metadata the header's ``__metadata__`` dict ({} when absent).
    Files that break the format's rules raise ValueError (see the module's docstring)."""
    from ._tensor import check_device
    from . import _core
    from ._values import flag
    check_device(map_location, "map_location")
    if not isinstance(return_metadata, (bool, np.bool_)):
        raise TypeError("load: return_metadata must be a bool, got %s" % type(return_metadata).__name__)
    if not flag(weights_only, "load", "weights_only"):  # bcml's files hold tensors only: nothing else to allow
        pass
    _check_path(f, "load")
    path = os.fspath(f)
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        entries, meta, start = _core.safetensors_header(data)
    except ValueError as e:
        raise ValueError("load: %s: %s" % (path, e)) from None
    meta = {} if meta is None else meta
    body = memoryview(data)
    out = {}
    for name, dtype, shape, begin, end in entries:
        if len(shape) > 4:
            raise ValueError("load: %s: tensor %r has %d dimensions; bcml tensors have at most 4"
                             % (path, name, len(shape)))
        out[name] = from_numpy(_convert(path, name, dtype, shape, body[start + begin:start + end]))
    if meta.get(TYPE_KEY) == OPTIMIZER_STATE:
        result = _optimizer_state(path, out, meta)
    elif set(out) == {""}:
        result = out[""]
    else:
        result = out
    return (result, meta) if return_metadata else result

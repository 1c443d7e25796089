"""bcml.save / bcml.load in the safetensors format (a JSON header and raw little-endian data;
loading never runs code). Files are readable by the `safetensors` package and PyTorch."""
import json
import os
import struct

import numpy as np

from ._tensor import Tensor, from_numpy

_TO_ST = {"float32": "F32", "int64": "I64", "bool": "BOOL"}
_FROM_ST = {"F32": np.float32, "I64": np.int64, "BOOL": np.bool_, "F64": np.float64,
            "I32": np.int32, "F16": np.float16, "U8": np.uint8, "I8": np.int8, "I16": np.int16}
_MAX_HEADER = 100 * 1024 * 1024


def _flatten(obj):
    if isinstance(obj, Tensor):
        return {"": obj}
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise TypeError("save: obj must be a tensor, a dict of tensors or a Module, got %s" % type(obj).__name__)
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError("save: dict keys must be strings, got %r" % (k,))
        if isinstance(v, Tensor):
            out[k] = v
        elif isinstance(v, np.ndarray):
            out[k] = from_numpy(np.ascontiguousarray(v))
        else:
            raise TypeError("save: value of %r must be a tensor, got %s" % (k, type(v).__name__))
    return out


def save(obj, f, metadata=None):
    """Writes a tensor, a state dict or a Module's state dict to path f (atomically)."""
    tensors = _flatten(obj)
    header, blobs, offset = {}, [], 0
    for k in sorted(tensors):
        arr = np.ascontiguousarray(tensors[k].detach().numpy())
        b = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": _TO_ST[tensors[k]._dtype_name], "shape": list(arr.shape),
                     "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = {str(a): str(b) for a, b in metadata.items()}
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


def load(f, map_location=None, weights_only=True):
    """Reads a file written by save() (or any safetensors file): a dict of tensors, or the
    tensor itself when save() was given a single tensor. Truncated or corrupt files raise
    ValueError."""
    from ._tensor import check_device
    check_device(map_location, "map_location")
    path = os.fspath(f)
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 8:
        raise ValueError("load: %s is not a safetensors file (too short)" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise ValueError("load: %s is truncated or corrupt (header of %d bytes in a %d-byte file)" % (path, n, len(data)))
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("load: %s has a corrupt header" % path) from None
    if not isinstance(header, dict):
        raise ValueError("load: %s has a corrupt header" % path)
    body = memoryview(data)[8 + n:]
    out = {}
    for k, info in header.items():
        if k == "__metadata__":
            continue
        try:
            dt = _FROM_ST[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            a, b = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("load: %s: entry %r is corrupt" % (path, k)) from None
        if dt not in (np.float32, np.int64, np.bool_):
            pass  # converted by from_numpy
        count = int(np.prod(shape)) if shape else 1
        if any(s < 0 for s in shape) or not 0 <= a <= b <= len(body) or b - a != count * np.dtype(dt).itemsize:
            raise ValueError("load: %s is truncated or corrupt (entry %r does not fit the file)" % (path, k))
        arr = np.frombuffer(body[a:b], dtype=np.dtype(dt).newbyteorder("<")).astype(dt).reshape(shape)
        out[k] = from_numpy(np.array(arr, copy=True))
    if set(out) == {""}:
        return out[""]
    return out

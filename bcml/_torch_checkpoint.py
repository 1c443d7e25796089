"""bcml.load_torch_checkpoint: a safe reader of the checkpoints ``torch.save`` writes (state
dicts of tensors), in pure Python and NumPy, without importing torch. See load_torch_checkpoint's
docstring for the formats, the globals a checkpoint may name and the dtype mapping."""
import io
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict

import numpy as np

__all__ = ["load_torch_checkpoint", "TorchCheckpointError"]

_FN = "load_torch_checkpoint"
_MAGIC = 0x1950A86A20F9469CFC6C        # torch.serialization.MAGIC_NUMBER (legacy format)
_PROTOCOL_VERSION = 1001               # torch.serialization.PROTOCOL_VERSION (legacy format)
_MAX_DIMS = 4                          # bcml tensors have at most 4 dimensions
# a tensor may hold more elements than its storage only through zero strides (an expanded
# tensor); its copy is limited to this many elements so that a few bytes cannot ask for terabytes
_MAX_EXPANDED = 1 << 27
_MAX_PICKLE = 1 << 31                  # bytes of data.pkl


class TorchCheckpointError(ValueError, pickle.UnpicklingError):
    """A checkpoint that is corrupt, truncated, not a PyTorch checkpoint, or names a global that
    load_torch_checkpoint does not allow. Both a ValueError and a pickle.UnpicklingError."""


# ==== what a checkpoint may name ===============================================================
class _Kind:
    """An element type of a storage. np_name: the little-endian NumPy type of its bytes."""

    __slots__ = ("name", "np_name", "itemsize")

    def __init__(self, name, np_name):
        self.name, self.np_name = name, np_name
        self.itemsize = np.dtype(np_name).itemsize

    def __repr__(self):
        return "torch.%s" % self.name


_KINDS = {k: _Kind(k, n) for k, n in (
    ("float32", "<f4"), ("float64", "<f8"), ("float16", "<f2"), ("bfloat16", "<u2"),
    ("int64", "<i8"), ("int32", "<i4"), ("int16", "<i2"), ("int8", "|i1"), ("uint8", "|u1"),
    ("bool", "|u1"), ("uint16", "<u2"), ("uint32", "<u4"), ("uint64", "<u8"))}


class _StorageType:
    """Stand-in for a storage class the pickle names (torch.FloatStorage, ...,
    torch.storage.UntypedStorage). kind is None for an untyped (byte) storage. Not callable."""

    __slots__ = ("qualname", "kind")

    def __init__(self, qualname, kind):
        self.qualname, self.kind = qualname, kind

    def __repr__(self):
        return self.qualname


_TYPED = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
          "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
          "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}
_UNTYPED = _StorageType("torch.UntypedStorage", None)


class _Storage:
    """One storage of the checkpoint: its raw bytes (None while only scanning), its element
    type (None: untyped bytes), its key in the file, and the byte order of its data."""

    __slots__ = ("key", "kind", "raw", "byteorder")

    def __init__(self, key, kind, raw, byteorder):
        self.key, self.kind, self.raw, self.byteorder = key, kind, raw, byteorder


class _Pending:
    """What a rebuild returns while a legacy file's pickle is only scanned (its storages come
    after it in the file)."""

    __slots__ = ()


_PENDING = _Pending()


def _int(v, what):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TorchCheckpointError("%s must be an int, got %s" % (what, type(v).__name__))
    return v


def _ints(v, what):
    if not isinstance(v, (tuple, list)):
        raise TorchCheckpointError("%s must be a tuple of ints, got %s" % (what, type(v).__name__))
    out = tuple(_int(x, what) for x in v)
    if any(x < 0 for x in out):
        raise TorchCheckpointError("%s must hold non-negative ints, got %s" % (what, out))
    return out


def _to_bcml(a, kind, what):
    """A NumPy array of the file's element type (native byte order) -> a bcml tensor: float32
    as is; float64 rounded (a finite value beyond float32's range raises); float16 and bfloat16
    exactly; integers to int64 (uint64 above 2**63-1 raises); bool to bool."""
    from ._tensor import from_numpy
    from .serialization import _float64_to_float32, _uint64_to_int64
    name = kind.name
    if name == "float32":
        out = a  # already a fresh native float32 copy
    elif name == "float16":
        out = a.astype(np.float32)
    elif name == "bfloat16":
        out = (a.astype(np.uint32) << 16).view(np.float32)
    elif name == "float64":
        out = _float64_to_float32(a, "%s (float64)" % what, TorchCheckpointError)
    elif name == "bool":
        out = a != 0
    elif name == "uint64":
        out = _uint64_to_int64(a, "%s (uint64)" % what, TorchCheckpointError)
    else:
        out = a.astype(np.int64)
    return from_numpy(np.asarray(out, order="C"))  # every branch made a fresh array


def _rebuild(storage, offset, size, stride, requires_grad, backward_hooks, kind, metadata):
    """The tensor that PyTorch's set_(storage, offset, size, stride) would give, as a bcml tensor."""
    if not isinstance(storage, _Storage):
        raise TorchCheckpointError("the storage of a tensor must be a storage record, got %s" % type(storage).__name__)
    what = "storage %r" % (storage.key,)
    offset = _int(offset, "storage_offset")
    size = _ints(size, "size")
    stride = _ints(stride, "stride")
    if not isinstance(requires_grad, bool):
        raise TorchCheckpointError("requires_grad must be a bool, got %s" % type(requires_grad).__name__)
    if not isinstance(backward_hooks, dict):
        raise TorchCheckpointError("backward_hooks must be a dict, got %s" % type(backward_hooks).__name__)
    neg = False
    if metadata is not None:
        if not isinstance(metadata, dict) or not set(metadata) <= {"conj", "neg"}:
            raise TorchCheckpointError("tensor metadata must be a dict with the keys 'conj' / 'neg', got %r"
                                       % (metadata,))
        neg = bool(metadata.get("neg"))
    if len(size) != len(stride):
        raise TorchCheckpointError("size %s and stride %s differ in length" % (size, stride))
    if len(size) > _MAX_DIMS:
        raise TorchCheckpointError("has %d dimensions (size %s); bcml tensors have at most %d"
                                   % (len(size), size, _MAX_DIMS))
    if offset < 0:
        raise TorchCheckpointError("storage_offset must be >= 0, got %d" % offset)
    if any(v > 2 ** 63 - 1 for v in size + stride + (offset,)):
        raise TorchCheckpointError("size %s, stride %s or storage_offset %d is beyond int64" % (size, stride, offset))
    if requires_grad and kind.name not in ("float32", "float64", "float16", "bfloat16"):
        raise TorchCheckpointError("a %s tensor cannot require grad" % kind.name)
    if neg and kind.name == "bool":
        raise TorchCheckpointError("a bool tensor cannot have the negative bit")
    if storage.raw is None:  # scanning a legacy file: the data comes later
        return _PENDING
    n = len(storage.raw) // kind.itemsize
    numel = 1
    for s in size:
        numel *= s
    if offset > n:
        raise TorchCheckpointError("storage_offset %d is beyond the end of %s (%d elements of %s)"
                                   % (offset, what, n, kind.name))
    if numel:
        last = offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= n:
            raise TorchCheckpointError("size %s, stride %s and storage_offset %d reach element %d, beyond the end "
                                       "of %s (%d elements of %s)" % (size, stride, offset, last, what, n, kind.name))
        if numel > n and numel > _MAX_EXPANDED:
            raise TorchCheckpointError("size %s holds %d elements, more than %s (%d) and the limit of %d for an "
                                       "expanded tensor" % (size, numel, what, n, _MAX_EXPANDED))
    np_dtype = np.dtype(kind.np_name)
    if storage.byteorder == "big":
        np_dtype = np_dtype.newbyteorder(">")
    if numel:
        flat = np.frombuffer(storage.raw, dtype=np_dtype, count=n)
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                               strides=[st * kind.itemsize if sz > 1 else 0  # unused strides
                                                        for sz, st in zip(size, stride)], writeable=False)
        a = np.array(view, dtype=np_dtype.newbyteorder("="), order="C")
    else:
        a = np.zeros(size, dtype=np_dtype.newbyteorder("="))
    if neg:
        a = -a
    t = _to_bcml(a, kind, what)
    if requires_grad:
        t.requires_grad = True
    return t


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v2: the element type is the storage's."""
    if isinstance(storage, _Storage) and storage.kind is None:
        raise TorchCheckpointError("_rebuild_tensor_v2 needs a typed storage, got an untyped one")
    return _rebuild(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                    getattr(storage, "kind", None), metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v3: an untyped storage read as dtype."""
    if not isinstance(dtype, _Kind):
        raise TorchCheckpointError("_rebuild_tensor_v3's dtype must be a torch dtype, got %s" % type(dtype).__name__)
    if isinstance(storage, _Storage) and storage.kind is not None and storage.kind is not dtype:
        raise TorchCheckpointError("_rebuild_tensor_v3 reads storage %r (%s) as %s" % (storage.key, storage.kind.name,
                                                                                     dtype.name))
    return _rebuild(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata)


def _parameter(data, requires_grad):
    from ._tensor import Tensor
    from .nn import Parameter
    if data is _PENDING:
        return _PENDING
    if not isinstance(data, Tensor):
        raise TorchCheckpointError("a Parameter's data must be a tensor, got %s" % type(data).__name__)
    if not isinstance(requires_grad, bool):
        raise TorchCheckpointError("requires_grad must be a bool, got %s" % type(requires_grad).__name__)
    if requires_grad and not data.is_floating_point():
        raise TorchCheckpointError("a %s Parameter cannot require grad" % data.dtype)
    return Parameter(data, requires_grad)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """Stand-in for torch._utils._rebuild_parameter: a bcml.nn.Parameter."""
    return _parameter(data, requires_grad)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    """Stand-in for torch._utils._rebuild_parameter_with_state: a bcml.nn.Parameter (the Python
    attributes that were set on the saved Parameter are dropped)."""
    return _parameter(data, requires_grad)


_CALLABLES = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("collections", "OrderedDict"): OrderedDict,
}
_GLOBALS = dict(_CALLABLES)
_GLOBALS.update({("torch", name): _StorageType("torch." + name, _KINDS[k]) for name, k in _TYPED.items()})
_GLOBALS[("torch", "UntypedStorage")] = _GLOBALS[("torch.storage", "UntypedStorage")] = _UNTYPED
_GLOBALS.update({("torch", k): v for k, v in _KINDS.items()})
ALLOWED_GLOBALS = tuple(sorted("%s.%s" % k for k in _GLOBALS))


# ==== the restricted unpickler ===================================================================
def _is_stand_in(obj):
    return any(obj is f for f in _CALLABLES.values())


def _global_name(module, name):
    """module.name as the pickle names it, and its Python 3 name when the pickle uses Python 2's
    (protocol 2 writes builtins.eval as __builtin__.eval; PyTorch's reader maps it back)."""
    if not isinstance(module, str) or not isinstance(name, str):
        return "%r.%r" % (module, name)
    import _compat_pickle  # the standard library's table of those names (data only)
    py3 = _compat_pickle.NAME_MAPPING.get((module, name))
    if py3 is None and module in _compat_pickle.IMPORT_MAPPING:
        py3 = (_compat_pickle.IMPORT_MAPPING[module], name)
    here = "%s.%s" % (module, name)
    return here if py3 is None or py3 == (module, name) else "%s (Python 3: %s.%s)" % (here, py3[0], py3[1])


class _Unpickler(pickle._Unpickler):
    """pickle's own (pure-Python) Unpickler, restricted: find_class gives only bcml's stand-ins
    for the allowed globals and persistent_load only the checkpoint's storages. The opcodes that
    would call or mutate an object are narrowed to what a state dict needs: REDUCE / NEWOBJ call
    only the stand-ins and OrderedDict; BUILD sets attributes only on an OrderedDict (a state
    dict's ``_metadata``); SETITEM(S) only on dicts, APPEND(S) only on lists, ADDITEMS only on
    sets. (The C Unpickler offers no hook for these opcodes, so that a pickle could call, e.g., a
    tensor's __setitem__ or a property setter through them.)"""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, storage_loader):
        super().__init__(file)
        self._storage_loader = storage_loader

    def find_class(self, module, name):
        obj = _GLOBALS.get((module, name)) if isinstance(module, str) and isinstance(name, str) else None
        if obj is None:
            raise TorchCheckpointError(
                "the checkpoint's pickle names the global %s, which load_torch_checkpoint does not allow (only the "
                "tensor and storage rebuilds and collections.OrderedDict; nothing else is imported or called)"
                % _global_name(module, name))
        return obj

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise TorchCheckpointError("a persistent id must be a tuple, got %r" % (type(pid).__name__,))
        typename = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if typename == "module":
            raise TorchCheckpointError("the checkpoint holds a pickled nn.Module class (torch.save(model)); "
                                       "load_torch_checkpoint reads state dicts: save model.state_dict() instead")
        if typename != "storage":
            raise TorchCheckpointError("unknown persistent id type %r" % (typename,))
        return self._storage_loader(pid[1:])

    # ---- opcodes narrowed ----------------------------------------------------------------
    def _call(self, func, args):
        if not (func is OrderedDict or _is_stand_in(func)):
            raise TorchCheckpointError("the pickle calls %r, which is not an allowed global" % (func,))
        if type(args) is not tuple:
            raise TorchCheckpointError("the arguments of %s must be a tuple" % getattr(func, "__name__", func))
        try:
            return func(*args)
        except TorchCheckpointError as e:
            raise TorchCheckpointError("tensor%s: %s" % (self._key_hint(), e)) from None
        except (TypeError, ValueError) as e:
            raise TorchCheckpointError("%s%s: %s" % (getattr(func, "__name__", func), self._key_hint(), e)) from None

    def _key_hint(self):
        """The dict key the object being built will be stored under, when it is on the stack."""
        for item in reversed(self.stack):
            if _is_stand_in(item) or isinstance(item, _StorageType):
                continue
            return " %r" % (item,) if isinstance(item, str) else ""
        return ""

    def load_reduce(self):
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)
    dispatch[pickle.REDUCE[0]] = load_reduce

    def _new(self, cls, args):
        """An object the pickle creates: only OrderedDict is allowed."""
        if cls is not OrderedDict:
            raise TorchCheckpointError("the pickle creates an object of %r, which is not an allowed class" % (cls,))
        self.append(self._call(cls, args))

    def load_newobj(self):
        args = self.stack.pop()
        self._new(self.stack.pop(), args)
    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        if kwargs:
            raise TorchCheckpointError("NEWOBJ_EX with keyword arguments is not allowed")
        self.load_newobj()
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_obj(self):
        args = self.pop_mark()
        cls = args.pop(0) if args else None
        self._new(cls, tuple(args))
    dispatch[pickle.OBJ[0]] = load_obj

    def load_inst(self):
        module = self.readline()[:-1].decode("ascii", "replace")
        name = self.readline()[:-1].decode("ascii", "replace")
        cls = self.find_class(module, name)
        self._new(cls, tuple(self.pop_mark()))
    dispatch[pickle.INST[0]] = load_inst

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is not OrderedDict:
            raise TorchCheckpointError("the pickle sets the state of a %s; only an OrderedDict's attributes may be "
                                       "set" % type(inst).__name__)
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if not isinstance(state, dict) or not all(isinstance(k, str) and not k.startswith("__") for k in state):
            raise TorchCheckpointError("the state of an OrderedDict must be a dict of attribute names")
        inst.__dict__.update(state)
    dispatch[pickle.BUILD[0]] = load_build

    def _target(self, index, types, op):
        target = self.stack[index] if len(self.stack) >= -index else None
        if type(target) not in types:
            raise TorchCheckpointError("%s on a %s" % (op, type(target).__name__))

    def load_setitem(self):
        self._target(-3, (dict, OrderedDict), "SETITEM")
        pickle._Unpickler.load_setitem(self)
    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self):
        items = self.pop_mark()
        self._target(-1, (dict, OrderedDict), "SETITEMS")
        d = self.stack[-1]
        if len(items) % 2:
            raise TorchCheckpointError("SETITEMS with an odd number of items")
        for i in range(0, len(items), 2):
            d[items[i]] = items[i + 1]
    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_append(self):
        self._target(-2, (list,), "APPEND")
        pickle._Unpickler.load_append(self)
    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self):
        items = self.pop_mark()
        self._target(-1, (list,), "APPENDS")
        self.stack[-1].extend(items)
    dispatch[pickle.APPENDS[0]] = load_appends

    def load_bytearray8(self):  # pickle's own would allocate the declared size before reading
        raise TorchCheckpointError("the pickle holds a bytearray, which a checkpoint of tensors never does")
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_additems(self):
        items = self.pop_mark()
        self._target(-1, (set,), "ADDITEMS")
        self.stack[-1].update(items)
    dispatch[pickle.ADDITEMS[0]] = load_additems


# ==== the two file formats =========================================================================
def _kind_of(storage_type):
    if not isinstance(storage_type, _StorageType):
        raise TorchCheckpointError("a storage's type must be a torch storage class, got %r" % (storage_type,))
    return storage_type.kind


def _nbytes(kind, numel):
    numel = _int(numel, "a storage's element count")
    if numel < 0:
        raise TorchCheckpointError("a storage's element count must be >= 0, got %d" % numel)
    return numel * (1 if kind is None else kind.itemsize)


def _check_key(key):
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str):
        raise TorchCheckpointError("a storage key must be a str, got %s" % type(key).__name__)
    return key


def _same_kind(st, kind):
    if st.kind is not kind:
        raise TorchCheckpointError("storage %r is used as %s and as %s" % (st.key, st.kind, kind))


def _load_zip(data, where):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = zf.namelist()
    except MemoryError:
        raise
    except Exception as e:  # zipfile's own errors (BadZipFile, struct.error, UnicodeDecodeError, ...)
        raise TorchCheckpointError("%s: a corrupt or truncated zip archive: %s" % (where, e)) from None
    pkls = [n for n in names if re.fullmatch(r"[^/]+/data\.pkl", n)]
    if len(pkls) != 1:
        raise TorchCheckpointError("%s: a zip archive without exactly one <folder>/data.pkl (found %d): not a "
                                   "checkpoint written by torch.save" % (where, len(pkls)))
    prefix = pkls[0][:-len("data.pkl")]
    infos = {i.filename: i for i in zf.infolist()}

    def record(name, size=None, limit=None):
        info = infos.get(prefix + name)
        if info is None:
            raise TorchCheckpointError("the archive has no record %s%s" % (prefix, name))
        if info.compress_type != zipfile.ZIP_STORED:
            raise TorchCheckpointError("record %s%s is compressed; torch.save stores records uncompressed"
                                       % (prefix, name))
        if size is not None and info.file_size != size:
            raise TorchCheckpointError("record %s%s holds %d bytes, expected %d" % (prefix, name, info.file_size, size))
        if limit is not None and info.file_size > limit:
            raise TorchCheckpointError("record %s%s is too large (%d bytes)" % (prefix, name, info.file_size))
        try:
            return zf.read(info)
        except MemoryError:
            raise
        except Exception as e:  # a CRC mismatch, a bad local header, ...
            raise TorchCheckpointError("record %s%s cannot be read: %s" % (prefix, name, e)) from None

    byteorder = "little"
    if prefix + "byteorder" in infos:
        mark = record("byteorder", limit=16)
        if mark not in (b"little", b"big"):
            raise TorchCheckpointError("record %sbyteorder holds %r, not 'little' or 'big'" % (prefix, mark[:16]))
        byteorder = mark.decode()
    storages = {}

    def load_storage(pid):
        if len(pid) != 4:
            raise TorchCheckpointError("a storage id must have 4 fields after 'storage', got %d" % len(pid))
        storage_type, key, _location, numel = pid
        kind, key = _kind_of(storage_type), _check_key(key)
        nbytes = _nbytes(kind, numel)
        st = storages.get(key)
        if st is None:
            st = storages[key] = _Storage(key, kind, record("data/" + key, size=nbytes), byteorder)
        _same_kind(st, kind)
        if len(st.raw) != nbytes:
            raise TorchCheckpointError("storage %r is used with %d and %d bytes" % (key, len(st.raw), nbytes))
        return st

    pkl = record("data.pkl", limit=_MAX_PICKLE)
    return _unpickle(io.BytesIO(pkl), load_storage, where)


def _unpickle(f, storage_loader, where):
    try:
        return _Unpickler(f, storage_loader).load()
    except TorchCheckpointError as e:
        raise TorchCheckpointError("%s: %s" % (where, e)) from None
    except MemoryError:
        raise
    except Exception as e:  # a corrupt pickle: whatever pickle's own reader raised
        raise TorchCheckpointError("%s: a corrupt or truncated pickle: %s: %s" % (where, type(e).__name__, e)) from None


def _load_legacy(data, where):
    f = io.BytesIO(data)
    magic = _unpickle(f, None, where)
    if magic != _MAGIC:
        raise TorchCheckpointError("%s: not a PyTorch checkpoint (wrong magic number)" % where)
    version = _unpickle(f, None, where)
    if version != _PROTOCOL_VERSION:
        raise TorchCheckpointError("%s: legacy format protocol version %r, expected %d" % (where, version,
                                                                                          _PROTOCOL_VERSION))
    sys_info = _unpickle(f, None, where)
    if not isinstance(sys_info, dict):
        raise TorchCheckpointError("%s: the legacy header's sys_info must be a dict" % where)
    start = f.tell()
    # pass 1: which storages the pickle uses (their data follow the pickle in the file)
    declared = {}

    def scan_storage(pid):
        if len(pid) != 5:
            raise TorchCheckpointError("a storage id must have 5 fields after 'storage', got %d" % len(pid))
        storage_type, key, _location, numel, view = pid
        kind, key = _kind_of(storage_type), _check_key(key)
        nbytes = _nbytes(kind, numel)
        if key in declared:
            if declared[key] != (kind, nbytes):
                raise TorchCheckpointError("storage %r is used as %s of %d bytes and as %s of %d bytes"
                                           % ((key,) + declared[key] + (kind, nbytes)))
        else:
            declared[key] = (kind, nbytes)
        if view is not None:
            _view_fields(view)
        return _Storage(key, kind, None, "little")

    _unpickle(f, scan_storage, where)
    keys = _unpickle(f, None, where)
    if not isinstance(keys, list) or not all(isinstance(k, (str, bytes)) for k in keys):
        raise TorchCheckpointError("%s: the list of storage keys after the pickle is not a list of str" % where)
    keys = [_check_key(k) for k in keys]
    if len(set(keys)) != len(keys):
        raise TorchCheckpointError("%s: the list of storage keys repeats a key" % where)
    missing = sorted(set(declared) - set(keys))
    if missing:
        raise TorchCheckpointError("%s: storages %s are used but not stored in the file" % (where, missing[:5]))
    pos = f.tell()
    raws = {}
    for k in keys:
        head = data[pos:pos + 8]
        if len(head) != 8:
            raise TorchCheckpointError("%s: truncated: the element count of storage %r is missing" % (where, k))
        count, = struct.unpack("<q", head)
        kind, expected = declared.get(k, (None, None))
        itemsize = 1 if kind is None else kind.itemsize
        if count < 0:
            raise TorchCheckpointError("%s: storage %r has a negative element count %d" % (where, k, count))
        nbytes = count * itemsize
        if expected is not None and nbytes != expected:
            raise TorchCheckpointError("%s: storage %r holds %d bytes, the pickle says %d" % (where, k, nbytes, expected))
        raw = data[pos + 8:pos + 8 + nbytes]
        if len(raw) != nbytes:
            raise TorchCheckpointError("%s: truncated: storage %r needs %d bytes, the file has %d"
                                       % (where, k, nbytes, len(raw)))
        raws[k] = raw
        pos += 8 + nbytes
    if pos != len(data):
        raise TorchCheckpointError("%s: %d bytes after the last storage" % (where, len(data) - pos))
    # pass 2: the pickle again, now with the storages' data
    storages = {k: _Storage(k, declared[k][0], raws[k], "little") for k in declared}

    def load_storage(pid):
        storage_type, key, _location, numel, view = pid
        st = storages[_check_key(key)]
        if view is None:
            return st
        view_key, off, n = _view_fields(view)
        itemsize = 1 if st.kind is None else st.kind.itemsize
        if (off + n) * itemsize > len(st.raw):
            raise TorchCheckpointError("storage view %r [%d, %d) is beyond the end of storage %r" % (view_key, off,
                                                                                                   off + n, key))
        return _Storage(view_key, st.kind, st.raw[off * itemsize:(off + n) * itemsize], "little")

    f.seek(start)
    return _unpickle(f, load_storage, where)


def _view_fields(view):
    if not isinstance(view, tuple) or len(view) != 3:
        raise TorchCheckpointError("a storage view must be (key, offset, size), got %r" % (view,))
    key, off, n = _check_key(view[0]), _int(view[1], "a storage view's offset"), _int(view[2], "a storage view's size")
    if off < 0 or n < 0:
        raise TorchCheckpointError("a storage view's offset and size must be >= 0, got %d, %d" % (off, n))
    return key, off, n


# ==== the public function ========================================================================
def load_torch_checkpoint(path):
    """Reads a checkpoint that ``torch.save`` wrote (a state dict, e.g. torchvision's ResNet18
    ImageNet weights in a ``.pth`` / ``.pt`` file), safely, without PyTorch: what the pickle holds,
    with every tensor replaced by a bcml tensor. Usually an OrderedDict of str -> Tensor; nested
    dicts / lists / tuples of tensors, ints, floats, strs, bools and None (e.g.
    ``{"state_dict": ..., "epoch": 3}``) are read too. (Bytes and sets only with
    ``pickle_protocol=4`` or above: protocol 2, torch.save's default, writes them through the
    globals ``_codecs.encode`` and ``builtins.set``, which are refused.) A saved ``nn.Parameter`` becomes a
    ``bcml.nn.Parameter`` (attributes set on it are dropped).

    Formats (both of those PyTorch 2.x writes):

    - zip (the default): a zip archive with one top folder (its name varies) holding ``data.pkl``
      (the object's pickle), ``data/<key>`` (each storage's raw bytes), ``byteorder`` (``little``
      or ``big``; little-endian when absent) and ``version``. Records must be stored uncompressed,
      as torch.save writes them.
    - legacy (``_use_new_zipfile_serialization=False``): five pickles in a row, the magic number
      0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict, the object, and the
      sorted list of storage keys; then, per key in that order, the element count (8 bytes,
      little-endian) and the storage's bytes (little-endian).

    A storage is named in the pickle by a persistent id ``('storage', storage type, key,
    location, element count[, view])``; the location (``cpu``, ``cuda:0``, ...) is ignored:
    everything is read to the CPU.

    Safety: the pickle is read by a restricted unpickler. The only globals it may name are
    ``torch._utils._rebuild_tensor_v2``, ``_rebuild_tensor_v3``, ``_rebuild_parameter``,
    ``_rebuild_parameter_with_state``, the storage types ``torch.FloatStorage``,
    ``DoubleStorage``, ``HalfStorage``, ``BFloat16Storage``, ``LongStorage``, ``IntStorage``,
    ``ShortStorage``, ``CharStorage``, ``ByteStorage``, ``BoolStorage``, ``torch.UntypedStorage``
    / ``torch.storage.UntypedStorage``, the dtypes ``torch.float32`` ... ``torch.uint64`` of the
    table below, and ``collections.OrderedDict``; each maps to a stand-in of bcml's (torch is never
    imported). Any other global (``os.system``, ``builtins.eval``, a class of the user's, a whole
    pickled ``nn.Module``) raises TorchCheckpointError naming it before anything is called.
    Opcodes that would call or change objects act only on the stand-ins, dicts, lists and sets.

    dtypes (tensors are copied; tensors that shared a storage in PyTorch, views and transposes
    included, read correctly but no longer share memory):

    =====================================  =======  ===========================================
    PyTorch dtype                          bcml     conversion
    =====================================  =======  ===========================================
    float32                                float32  none
    float16, bfloat16                      float32  exact
    float64                                float32  rounded to nearest; a finite value beyond
                                                    float32's range raises
    int64, int32, int16, int8, uint8,      int64    exact
    uint16, uint32
    uint64                                 int64    exact; a value above 2**63-1 raises
    bool                                   bool     none
    complex, quantized, float8 types       --       their globals are refused
    =====================================  =======  ===========================================

    Errors: a path that is not a str / bytes / os.PathLike raises TypeError; a missing file,
    FileNotFoundError. A file that is not a checkpoint, truncated or corrupt, a storage offset,
    size or stride that reaches beyond its storage (the message names the tensor's key), more
    than 4 dimensions (bcml's limit) or a refused global raise TorchCheckpointError, which is a
    ValueError and a pickle.UnpicklingError.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError("%s(): argument 'path' must be a path (str, bytes or os.PathLike), not %s"
                        % (_FN, type(path).__name__))
    p = os.fspath(path)
    if isinstance(p, (str, bytes)) and (b"\0" in p if isinstance(p, bytes) else "\0" in p):
        raise ValueError("%s(): argument 'path' must not contain a NUL character" % _FN)
    with open(p, "rb") as fh:
        data = fh.read()
    where = "%s: %s" % (_FN, os.fsdecode(p))
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return _load_zip(data, where)
    if data[:1] == b"\x80" and len(data) > 2:  # a binary pickle: the legacy format's magic number first
        return _load_legacy(data, where)
    if len(data) >= 512 and data[257:262] == b"ustar":
        raise TorchCheckpointError("%s: a tar archive: the tar format of PyTorch before 0.1.10 is not read; load "
                                   "and re-save it with a recent PyTorch" % where)
    if not data:
        raise TorchCheckpointError("%s: the file is empty, not a PyTorch checkpoint" % where)
    raise TorchCheckpointError("%s: not a PyTorch checkpoint (neither a zip archive nor the legacy pickle format)"
                               % where)

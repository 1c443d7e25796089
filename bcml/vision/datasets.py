"""Image data sets (``bcml.vision.datasets``, as ``torchvision.datasets``): ``MNIST``,
``FashionMNIST`` and ``CIFAR10`` with ``(root, train=True, transform=None, target_transform=None,
download=False)``.

Map-style: ``dataset[i]`` is ``(img, target)``, img a PIL image (a uint8 NumPy array H x W or
H x W x C when Pillow is not installed) passed through ``transform``, target an int passed
through ``target_transform``. ``.data`` holds the images as a uint8 NumPy array ((n, 28, 28), or
(n, 32, 32, 3) for CIFAR-10, as torchvision's), ``.targets`` the labels (an int64 tensor for
(Fashion-)MNIST, a list of ints for CIFAR-10, as torchvision's), ``.classes`` and
``.class_to_idx`` the class names.

Where the files are looked for (bcml reads them with ``bcml.datasets``' readers):

- MNIST / FashionMNIST: the four IDX files (plain or ``.gz``) in ``root/MNIST/raw`` (resp.
  ``root/FashionMNIST/raw``), torchvision's layout, or directly in ``root`` (as Debian's
  ``dataset-fashion-mnist`` installs them in ``/usr/share/datasets/fashion-mnist``).
- CIFAR10: ``root/cifar-10-batches-py`` (torchvision's layout: the python version's pickles, read
  by a restricted unpickler that builds only dicts, lists, bytes, numbers and NumPy number
  arrays, and never imports or calls anything else), or the binary version's
  ``root/cifar-10-batches-bin`` (or its ``.bin`` files directly in ``root``, or the archive
  ``cifar-10-binary.tar.gz`` in ``root``).

``download=True`` first looks for the files in ``root`` as above and downloads only what is
missing: the (Fashion-)MNIST ``.gz`` files into ``root/<Name>/raw`` (torchvision's layout), the
CIFAR-10 binary version into ``root/cifar-10-batches-bin`` (bcml reads the binary version, which
needs no unpickling). Missing files without ``download`` raise :class:`DatasetNotFoundError`, a
RuntimeError (torchvision's "Dataset not found. You can use download=True to download it") and a
``bcml.datasets.DatasetNotFoundError`` that says where the files were looked for.
"""
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..datasets import _fetch, _images
from ..utils.data import Dataset

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "DatasetNotFoundError"]


class DatasetNotFoundError(RuntimeError, _fetch.DatasetNotFoundError):
    """The data set's files are not in ``root`` and ``download`` is False (torchvision raises a
    RuntimeError; bcml.datasets' error is a FileNotFoundError: this is both)."""

    def __init__(self, cause):
        _fetch.DatasetNotFoundError.__init__(
            self, "Dataset not found. You can use download=True to download it. (%s)" % cause, cause.filename,
            dataset=cause.dataset, missing=cause.missing, searched=cause.searched, sources=cause.sources,
            cache=cause.cache)


def _root(root, fname):
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError("%s(): argument 'root' must be a folder (str or os.PathLike), not %s"
                        % (fname, type(root).__name__))
    path = Path(os.path.expanduser(os.fspath(root)))
    if path.exists() and not path.is_dir():
        raise ValueError("%s(): argument 'root' must be a folder, got the file %s" % (fname, path))
    return path


def _image_module():
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


class _VisionDataset(Dataset):
    def __init__(self, root, train, transform, target_transform, download):
        from .._values import flag
        fname = type(self).__name__
        self.root = os.fspath(root) if isinstance(root, os.PathLike) else root
        self._path = _root(root, fname)
        self.train = flag(train, fname, "train")
        download = flag(download, fname, "download")
        for name, t in (("transform", transform), ("target_transform", target_transform)):
            if t is not None and not callable(t):
                raise TypeError("%s(): argument '%s' must be callable or None, not %s" % (fname, name, type(t).__name__))
        self.transform, self.target_transform = transform, target_transform
        try:
            self.data, labels, self.classes = self._load(download)
        except _fetch.DatasetNotFoundError as e:
            raise DatasetNotFoundError(e) from None
        self._labels = labels.astype(np.int64)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError("%s index must be an int, not %s" % (type(self).__name__, type(index).__name__))
        n = len(self.data)
        if not -n <= index < n:
            raise IndexError("%s index %d is out of range for %d samples" % (type(self).__name__, index, n))
        img, target = self.data[index], int(self._labels[index])
        Image = _image_module()
        if Image is not None:
            img = Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB")
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def _bcml_arrays(self, indices):
        """(images, labels) at ``indices`` transformed in one step (bcml.utils.data's fast path),
        or None when the transform cannot be applied to a whole array (or items are PIL images
        that collate would refuse)."""
        if self.target_transform is not None:
            return None
        if self.transform is None:
            if _image_module() is not None:
                return None
            return self.data[indices], self._labels[indices]
        batch = getattr(self.transform, "_batch", None)
        if batch is None:
            return None
        x = batch(self.data[indices])
        return None if x is None else (x, self._labels[indices])

    def __repr__(self):
        return "Dataset %s\n    Number of datapoints: %d\n    Root location: %s\n    Split: %s" % (
            type(self).__name__, len(self), self.root, "Train" if self.train else "Test")


class MNIST(_VisionDataset):
    """MNIST handwritten digits: 60,000 training (``train=True``) or 10,000 test images, 28 x 28."""

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]
    _key, _title = "mnist", "MNIST"

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, train, transform, target_transform, download)

    @property
    def raw_folder(self):
        return os.path.join(str(self._path), type(self).__name__, "raw")

    @property
    def targets(self):
        from .._tensor import from_numpy
        return from_numpy(self._labels)

    def _load(self, download):
        files = _images._locate_idx(self._title, self._key, [self._path], Path(self.raw_folder), download, None)
        prefix = "train" if self.train else "t10k"
        images, labels = _images._read_idx_split(files[prefix + "-images-idx3-ubyte"],
                                                 files[prefix + "-labels-idx1-ubyte"])
        return images.reshape(-1, 28, 28), labels, list(type(self).classes)


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando Research): 60,000 training or 10,000 test clothing images, 28 x 28."""

    classes = list(_images.FASHION_MNIST_CLASSES)
    _key, _title = "fashion_mnist", "Fashion-MNIST"


# ---- CIFAR-10's python version: a restricted unpickler ----------------------------------------------
_PY_FOLDER = "cifar-10-batches-py"
_PY_TRAIN = ["data_batch_%d" % i for i in range(1, 6)]
_PY_TEST = ["test_batch"]


class _Stub:
    """An object numpy's pickle creates, before BUILD gives its state: an array or a dtype."""

    def __init__(self, kind, dtype=None):
        self.kind, self.value = kind, dtype


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY:
        raise ValueError("_reconstruct of %r (only numpy.ndarray is allowed)" % (cls,))
    return _Stub("array")


def _dtype(name, align=False, copy=True):
    if not isinstance(name, str) or len(name) > 4:
        raise ValueError("dtype %r is not a plain number type" % (name,))
    d = np.dtype(name)
    if d.kind not in "biuf":
        raise ValueError("dtype %r is not a number type (only numbers are read)" % (name,))
    return _Stub("dtype", d)


def _encode(text, encoding="utf-8"):   # Python 3 pickles of bytes at protocol 2
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError("_codecs.encode(%r) is not a latin-1 bytes literal" % (encoding,))
    return text.encode("latin-1")


_NDARRAY = object()   # the stand-in that find_class gives for numpy.ndarray
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


def _safe_unpickler():
    from .._torch_checkpoint import TorchCheckpointError, _Unpickler

    class CifarUnpickler(_Unpickler):
        """bcml's restricted unpickler of PyTorch checkpoints, allowing instead the few globals a
        CIFAR-10 batch's pickle names: numpy's array and dtype reconstruction (given only number
        dtypes, the array built from its bytes by NumPy's frombuffer) and latin-1 bytes."""

        dispatch = dict(_Unpickler.dispatch)

        def __init__(self, file):
            super().__init__(file, None)
            self.encoding = "bytes"   # Python 2's str: bytes

        def find_class(self, module, name):
            obj = _CIFAR_GLOBALS.get((module, name))
            if obj is None:
                raise TorchCheckpointError("the pickle names the global %s.%s, which is not allowed (only NumPy "
                                           "number arrays are read)" % (module, name))
            return obj

        def persistent_load(self, pid):
            raise TorchCheckpointError("the pickle holds a persistent id, which a CIFAR-10 batch never does")

        def _call(self, func, args):
            if func not in (_reconstruct, _dtype, _encode) or type(args) is not tuple:
                raise TorchCheckpointError("the pickle calls %r, which is not allowed" % (func,))
            try:
                return func(*args)
            except (TypeError, ValueError) as e:
                raise TorchCheckpointError(str(e)) from None

        def load_build(self):
            state = self.stack.pop()
            inst = self.stack[-1]
            if not isinstance(inst, _Stub) or not isinstance(state, tuple):
                raise TorchCheckpointError("the pickle sets the state of a %s" % type(inst).__name__)
            if inst.kind == "dtype":
                if len(state) > 1 and state[1] in ("<", ">") and inst.value.itemsize > 1:
                    inst.value = inst.value.newbyteorder(state[1])
                return
            if inst.value is not None:
                raise TorchCheckpointError("an array's state is set twice")
            if len(state) == 5:
                state = state[1:]
            if len(state) != 4:
                raise TorchCheckpointError("an array's state must be (shape, dtype, fortran, data)")
            shape, dtype, fortran, raw = state
            if isinstance(dtype, _Stub) and dtype.kind == "dtype":
                dtype = dtype.value
            if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple) or \
                    not all(isinstance(s, int) and s >= 0 for s in shape):
                raise TorchCheckpointError("an array's state has a bad shape or dtype")
            if isinstance(raw, str):
                raw = raw.encode("latin-1")
            if not isinstance(raw, bytes) or len(raw) != int(np.prod(shape, dtype=object)) * dtype.itemsize:
                raise TorchCheckpointError("an array's data does not match its shape %s and dtype %s"
                                           % (shape, dtype))
            inst.value = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        dispatch[pickle.BUILD[0]] = load_build

    return CifarUnpickler, TorchCheckpointError


def _resolve(obj):
    if isinstance(obj, _Stub):
        if obj.kind != "array" or obj.value is None:
            raise ValueError("an object of the pickle was never completed")
        return obj.value
    if isinstance(obj, (dict, OrderedDict)):
        return {_str_key(k): _resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    return obj


def _str_key(k):
    return k.decode("latin-1") if isinstance(k, bytes) else k


def load_cifar_pickle(path):
    """The dict a CIFAR-10 python-version file holds (keys as str), read without running code."""
    unpickler, error = _safe_unpickler()
    with open(path, "rb") as f:
        try:
            out = _resolve(unpickler(f).load())
        except (error, ValueError, EOFError, pickle.UnpicklingError, UnicodeDecodeError) as e:
            raise ValueError("%s: not a CIFAR-10 python batch, or one bcml will not unpickle: %s" % (path, e)) from None
    if not isinstance(out, dict):
        raise ValueError("%s: a CIFAR-10 batch is a dict, got %s" % (path, type(out).__name__))
    return out


def _read_py_batch(path):
    d = load_cifar_pickle(path)
    data, labels = d.get("data"), d.get("labels", d.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError("%s: 'data' must be a uint8 array (n, 3072)" % path)
    if not isinstance(labels, list) or len(labels) != len(data) or \
            not all(isinstance(v, int) and 0 <= v <= 9 for v in labels):
        raise ValueError("%s: 'labels' must be a list of %d ints in 0..9" % (path, len(data)))
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


class CIFAR10(_VisionDataset):
    """CIFAR-10: 50,000 training (``train=True``) or 10,000 test colour images, 32 x 32."""

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, train, transform, target_transform, download)

    @property
    def targets(self):
        return self._labels.tolist()

    def _load(self, download):
        py = self._path / _PY_FOLDER
        if all((py / f).is_file() for f in _PY_TRAIN + _PY_TEST):
            parts = [_read_py_batch(py / f) for f in (_PY_TRAIN if self.train else _PY_TEST)]
            images = np.concatenate([p[0] for p in parts])
            labels = np.concatenate([p[1] for p in parts])
            classes = list(_images.CIFAR10_CLASSES)
            if (py / "batches.meta").is_file():
                names = load_cifar_pickle(py / "batches.meta").get("label_names")
                if isinstance(names, list) and len(names) == 10 and all(isinstance(n, bytes) for n in names):
                    classes = [n.decode("utf-8", "replace") for n in names]
        else:
            ds = _images.load_cifar10(self._path, download=download, cache_dir=self._path, normalize=False,
                                      records_per_file=None)
            images = ds.X_train if self.train else ds.X_test
            labels = ds.y_train if self.train else ds.y_test
            classes = list(ds.class_names)
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1)), labels, classes

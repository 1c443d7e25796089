"""Loaders for the image data sets: MNIST and Fashion-MNIST (IDX files) and
CIFAR-10 (binary version).

Every loader reads the data set's original files, unmodified, and returns an
:class:`ImageDataset`. Files are read whole and turned into arrays with
``numpy.frombuffer`` / ``numpy.fromfile``; no Python loop runs per pixel or
per image.

IDX format (MNIST, Fashion-MNIST)
---------------------------------
A big-endian header: the magic number ``0x00000803`` for images (unsigned
bytes, three dimensions) or ``0x00000801`` for labels (unsigned bytes, one
dimension), then one 32-bit count per dimension (images: n, rows, columns;
labels: n), then the bytes of the array in C order. A file must hold exactly
the bytes its header announces: a shorter (truncated) or longer file, a wrong
magic number, images that are not 28 x 28, a label above 9 or an image file
and a label file with different counts raise a ValueError naming the file.

CIFAR-10 binary version
-----------------------
Each batch file is a sequence of 3073-byte records: one label byte (0..9)
then 3072 pixel bytes, the 1024 red values of the 32 x 32 image (row by row),
then the 1024 green ones, then the 1024 blue ones, i.e. a (3, 32, 32) array
in C order.
"""

import gzip
import operator
import os
import shutil
import struct
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Tuple

import numpy as np

from ._fetch import (DatasetNotFoundError, _new_folders, _remove_empty, check_args, check_record,
                     default_cache_dir, fetch_all)

__all__ = ["ImageDataset", "IMAGE_URLS", "IMAGE_MD5", "IMAGE_SHA256",
           "FASHION_MNIST_DIR", "load_mnist", "load_fashion_mnist", "load_cifar10"]

#: The four IDX files of MNIST and Fashion-MNIST (each may also be ``.gz``).
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

#: Where Debian's ``dataset-fashion-mnist`` package installs Fashion-MNIST;
#: :func:`load_fashion_mnist` looks here when no ``path`` is given.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror
_FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
_CIFAR10_FOLDER = "cifar-10-batches-bin"

#: Official download address of every file, by data set then file name.
#: Tests and mirrors may change entries, or pass ``base_url=`` to a loader.
IMAGE_URLS = {
    "mnist": {n + ".gz": _MNIST_URL + n + ".gz" for n in IDX_FILES},
    "fashion_mnist": {n + ".gz": _FASHION_MNIST_URL + n + ".gz" for n in IDX_FILES},
    "cifar10": {_CIFAR10_ARCHIVE: "https://www.cs.toronto.edu/~kriz/" + _CIFAR10_ARCHIVE},
}

#: MD5 of every downloadable file, as torchvision pins them (MNIST, Fashion-
#: MNIST) and as the CIFAR-10 page publishes it; checked after a download.
#:
#: Verification here: the Fashion-MNIST values were checked against the
#: files of Debian's ``dataset-fashion-mnist``: Debian's .gz files hold the
#: upstream deflate streams byte for byte, with a normalised gzip header (no
#: file name, time stamp 2020-06-05); restoring the original header (file
#: name, time stamps 2017-08-31 10:50:06 UTC for the train files and
#: 10:50:27 UTC for the t10k files) reproduces each of these MD5s exactly.
#: The MNIST and CIFAR-10 values could not be verified on the machine that
#: wrote this (no copy of those files, no network); they are torchvision's.
IMAGE_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {_CIFAR10_ARCHIVE: "c32a1d4ab5d03f1284b67883e8d87530"},
}

#: SHA-256 of the downloadable files where it is known, checked after a
#: download as well as the MD5. The Fashion-MNIST values are those of the
#: upstream files rebuilt from Debian's copies as described above (each
#: rebuilt file matching torchvision's MD5).
IMAGE_SHA256 = {
    "mnist": {},
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {},
}

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                   "horse", "ship", "truck")

_CIFAR10_BATCHES = tuple("data_batch_{}.bin".format(i) for i in range(1, 6)) + ("test_batch.bin",)
_CIFAR10_RECORD = 1 + 3 * 32 * 32


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A loaded image data set.

    Attributes
    ----------
    X_train, y_train, X_test, y_test : numpy arrays
        Images (n, channels, height, width), float32 in [0, 1] (the stored
        byte divided by 255) or, with ``normalize=False``, uint8 as stored;
        int64 labels (n,) in 0..9.
    class_names : tuple of str
        ``class_names[k]`` names label ``k``.
    description : str
        Source, license (where stated) and encoding, in words.
    X, y : numpy arrays
        Every image and label, the training part first. ``X_train`` /
        ``X_test`` (and ``y_train`` / ``y_test``) are views of ``X`` (``y``),
        so the data are held once.
    train_index, test_index : int64 arrays
        Rows of X / y that form the training and test parts.
    name : str
        Short name of the data set.
    files : tuple of str
        The files read, in the order read.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: Tuple[str, ...]
    description: str
    X: np.ndarray
    y: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    name: str = ""
    files: Tuple[str, ...] = ()

    def __post_init__(self):
        check_record(self, 4)

    def __repr__(self):
        return ("ImageDataset(name={!r}, X_train={}, X_test={}, dtype={}, classes={})"
                .format(self.name, self.X_train.shape, self.X_test.shape,
                        self.X_train.dtype, self.class_names))


def _assemble(name, train, test, class_names, description, normalize, files):
    """``train``, ``test``: lists of (images uint8 (n, c, h, w), labels (n,)),
    copied (and scaled) straight into one array X."""
    chunks = list(train) + list(test)
    n_train = sum(x.shape[0] for x, _ in train)
    n = n_train + sum(x.shape[0] for x, _ in test)
    X = np.empty((n,) + chunks[0][0].shape[1:], dtype=np.float32 if normalize else np.uint8)
    start = 0
    for src, _ in chunks:
        rows = slice(start, start + src.shape[0])
        if normalize:
            # Correctly rounded float32 division, as torchvision's ToTensor.
            np.divide(src, np.float32(255), out=X[rows], dtype=np.float32)
        else:
            X[rows] = src
        start += src.shape[0]
    y = np.concatenate([labels for _, labels in chunks]).astype(np.int64)
    return ImageDataset(
        X_train=X[:n_train], y_train=y[:n_train], X_test=X[n_train:], y_test=y[n_train:],
        class_names=tuple(class_names), description=description, X=X, y=y,
        train_index=np.arange(n_train, dtype=np.int64),
        test_index=np.arange(n_train, n, dtype=np.int64),
        name=name, files=tuple(str(f) for f in files))


def _check_path(path, what):
    if path is None:
        return None
    path = Path(os.fspath(path)).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError("path must be a folder holding {}, got the file {}".format(what, path))
    return path


def _cache(cache_dir):
    return (Path(os.fspath(cache_dir)).expanduser() if cache_dir is not None
            else default_cache_dir())


def _check_labels(path, labels):
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ValueError("{}: label {} at position {} is not in 0..9".format(
            path, int(labels[bad[0]]), int(bad[0])))


# --------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)

_IDX_IMAGES = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS = 0x00000801  # unsigned bytes, 1 dimension


def _read_bytes(path):
    """The file's bytes, gunzipped when its name ends in .gz."""
    if path.suffix != ".gz":
        with open(path, "rb") as f:
            return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError("{}: not a valid gzip file, or a truncated one ({})".format(
            path, exc)) from exc


def _read_idx(path, magic):
    """The uint8 array of an IDX file whose magic number must be ``magic``."""
    raw = _read_bytes(path)
    ndim = magic & 0xFF
    kind = "images" if magic == _IDX_IMAGES else "labels"
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise ValueError("{}: {} bytes, too short for an IDX header (the file is "
                         "truncated or empty)".format(path, len(raw)))
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        hint = ""
        if raw[:2] == b"\x1f\x8b":
            hint = " (the file looks gzip-compressed: its name should end in .gz)"
        elif found in (_IDX_IMAGES, _IDX_LABELS):
            hint = " (an IDX {} file: swapped image and label files?)".format(
                "images" if found == _IDX_IMAGES else "labels")
        raise ValueError("{}: wrong magic number 0x{:08x}, expected 0x{:08x} (IDX {}: "
                         "unsigned bytes, {} dimension{}){}".format(
                             path, found, magic, kind, ndim, "s" if ndim > 1 else "", hint))
    if len(raw) < header:
        raise ValueError("{}: truncated IDX header ({} bytes, the header of IDX {} takes "
                         "{})".format(path, len(raw), kind, header))
    dims = struct.unpack(">{}I".format(ndim), raw[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) != header + size:
        what = "truncated" if len(raw) < header + size else "over-long"
        raise ValueError("{}: {} file: the header announces {} {} ({} bytes of data), "
                         "the file holds {} bytes of data".format(
                             path, what, kind, " x ".join(str(d) for d in dims), size,
                             len(raw) - header))
    return np.frombuffer(raw, dtype=np.uint8, count=size, offset=header).reshape(dims)


def _read_idx_split(images_path, labels_path):
    images = _read_idx(images_path, _IDX_IMAGES)
    if images.shape[1:] != (28, 28):
        raise ValueError("{}: images are {} x {} pixels, expected 28 x 28".format(
            images_path, images.shape[1], images.shape[2]))
    labels = _read_idx(labels_path, _IDX_LABELS)
    if labels.shape[0] != images.shape[0]:
        raise ValueError("{} holds {} images but {} holds {} labels".format(
            images_path, images.shape[0], labels_path, labels.shape[0]))
    _check_labels(labels_path, labels)
    return images.reshape(-1, 1, 28, 28), labels


def _locate_idx(title, key, folders, cache, download, base_url, hint=""):
    """``{name: Path}`` for the four IDX files, plain or .gz.

    Each file is looked for in ``folders`` then in ``cache``, the plain file
    before the .gz one in each folder; missing ones are downloaded (.gz)
    into ``cache`` when ``download`` is true.
    """
    found, missing = {}, []
    for name in IDX_FILES:
        hit = None
        for folder in list(folders) + [cache]:
            hit = next((c for c in (folder / name, folder / (name + ".gz")) if c.is_file()),
                       None)
            if hit is not None:
                break
        if hit is None:
            missing.append(name)
        else:
            found[name] = hit

    def url_of(name):
        gz = name + ".gz"
        return base_url.rstrip("/") + "/" + gz if base_url else IMAGE_URLS[key][gz]

    if missing and download:
        found.update(fetch_all(title, [(n, url_of(n), cache / (n + ".gz"),
                                        IMAGE_SHA256[key].get(n + ".gz"),
                                        IMAGE_MD5[key].get(n + ".gz")) for n in missing]))
        missing = []
    if missing:
        where = ", ".join(str(f) for f in list(folders) + [cache])
        source = base_url.rstrip("/") + "/" if base_url else \
            IMAGE_URLS[key][IDX_FILES[0] + ".gz"].rsplit("/", 1)[0] + "/"
        raise DatasetNotFoundError(
            "{}: cannot find {} (plain or .gz) in {}. Put the original IDX files {} "
            "(plain or gzip-compressed, same names) in a folder and pass path= to it "
            "(or put them in {}), or pass download=True to fetch the .gz files from {} "
            "into {}.{}".format(title, ", ".join(missing), where, ", ".join(IDX_FILES),
                                cache, source, cache, hint),
            filename=str((list(folders) + [cache])[0] / missing[0]),
            dataset=title, missing=missing, searched=list(folders) + [cache],
            sources=[url_of(n) for n in missing], cache=cache)
    return {n: found[n] for n in IDX_FILES}


def _load_idx_dataset(name, title, key, folders, cache, download, base_url, normalize,
                      class_names, description, hint=""):
    files = _locate_idx(title, key, folders, cache, download, base_url, hint)
    train, test = [_read_idx_split(files[prefix + "-images-idx3-ubyte"],
                                   files[prefix + "-labels-idx1-ubyte"])
                   for prefix in ("train", "t10k")]
    return _assemble(name, [train], [test], class_names, description, normalize,
                     [files[n] for n in IDX_FILES])


_IDX_PARAMS = """
    Parameters
    ----------
    path : str or PathLike, optional
        Folder holding the four IDX files ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each plain or gzip-compressed (name
        ending in ``.gz``); where both exist, the plain file is read.{default}
    download : bool
        Fetch the .gz files not found on disk from
        {site} (or ``base_url``)
        into ``cache_dir/{sub}`` and check their checksums
        (``IMAGE_MD5["{key}"]``{sha}).
    cache_dir : str or PathLike, optional
        Cache folder (default ``$XDG_CACHE_HOME/bcml``, else
        ``~/.cache/bcml``); the files are looked for, and downloaded to, its
        subfolder ``{sub}``.
    base_url : str, optional
        Download from ``base_url + "/" + file name`` instead.
    normalize : bool
        True (default): float32 images, the stored byte divided by 255
        (exactly, as torchvision's ``ToTensor``), so in [0, 1]; no mean/std
        standardisation. False: the stored uint8 bytes.

    Returns
    -------
    ImageDataset
        ``X_train`` (60000, 1, 28, 28), ``X_test`` (10000, 1, 28, 28),
        ``y_train`` / ``y_test`` int64 in 0..9, ``class_names``, ...
        (other counts if the files hold other counts).

    Raises
    ------
    DatasetNotFoundError (a FileNotFoundError)
        A file is missing and ``download`` is false; the message says where
        to put the files.
    ValueError
        A malformed file (wrong magic number, truncated, over-long, not
        28 x 28, image and label counts differ, label above 9); the message
        names the file. A download whose checksum differs raises
        :class:`ChecksumError`, a ValueError, and is not kept.
    DownloadError (an OSError)
        A download failed.
"""


def load_mnist(path=None, download=False, cache_dir=None, base_url=None, normalize=True):
    """MNIST handwritten digits (LeCun, Cortes and Burges): 60,000 training
    and 10,000 test grayscale images of 28 x 28 pixels, labels 0..9
    (class_names ``"0"`` .. ``"9"``).

    The files are looked for in ``path`` (when given), then in
    ``cache_dir/mnist``.
    """
    check_args("load_mnist", path, download, cache_dir, base_url, normalize=normalize)
    cache = _cache(cache_dir) / "mnist"
    path = _check_path(path, "the MNIST IDX files")
    return _load_idx_dataset(
        "mnist", "MNIST", "mnist", [path] if path is not None else [], cache, download,
        base_url, normalize, MNIST_CLASSES,
        "MNIST handwritten digits (Y. LeCun, C. Cortes, C. J. C. Burges), read from the "
        "original IDX files; downloads come from the mirror torchvision uses, {}. "
        "Images 28 x 28, one channel, {}; labels 0..9 are the digits.".format(
            _MNIST_URL, "float32 = byte / 255" if normalize else "uint8 bytes as stored"))


def load_fashion_mnist(path=None, download=False, cache_dir=None, base_url=None,
                       normalize=True):
    """Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; Zalando Research, MIT
    license): 60,000 training and 10,000 test grayscale images of 28 x 28
    pixels of clothing, 10 classes (6,000 training and 1,000 test images
    each): T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt,
    Sneaker, Bag, Ankle boot.

    The files are looked for in ``path`` when given, else in
    :data:`FASHION_MNIST_DIR` (``/usr/share/datasets/fashion-mnist``, where
    Debian's ``dataset-fashion-mnist`` package installs them), then in
    ``cache_dir/fashion-mnist``.
    """
    check_args("load_fashion_mnist", path, download, cache_dir, base_url, normalize=normalize)
    cache = _cache(cache_dir) / "fashion-mnist"
    path = _check_path(path, "the Fashion-MNIST IDX files")
    folders = [path] if path is not None else [Path(FASHION_MNIST_DIR)]
    return _load_idx_dataset(
        "fashion_mnist", "Fashion-MNIST", "fashion_mnist", folders, cache, download,
        base_url, normalize, FASHION_MNIST_CLASSES,
        "Fashion-MNIST (H. Xiao, K. Rasul, R. Vollgraf, 2017; Zalando Research, MIT "
        "license), read from the original IDX files ({}). Images 28 x 28, one channel, "
        "{}; 10 classes of clothing.".format(
            _FASHION_MNIST_URL, "float32 = byte / 255" if normalize else "uint8 bytes as stored"),
        hint=" On Debian or Ubuntu, the package dataset-fashion-mnist installs them in "
             "{}.".format(FASHION_MNIST_DIR))


if load_mnist.__doc__ is not None:  # None under python -OO
    load_mnist.__doc__ += _IDX_PARAMS.format(
        default="", site=_MNIST_URL, sub="mnist", key="mnist", sha="")
    load_fashion_mnist.__doc__ += _IDX_PARAMS.format(
        default="\n        Default: ``/usr/share/datasets/fashion-mnist``.",
        site=_FASHION_MNIST_URL, sub="fashion-mnist", key="fashion_mnist",
        sha=' and ``IMAGE_SHA256["fashion_mnist"]``')


# --------------------------------------------------------------------------
# CIFAR-10

def _read_cifar_batch(path, records_per_file):
    raw = np.fromfile(str(path), dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR10_RECORD:
        raise ValueError(
            "{}: {} bytes is not a whole, non-zero number of {}-byte records (1 label "
            "byte + 3072 pixel bytes): the file is truncated or not a CIFAR-10 binary "
            "batch".format(path, raw.size, _CIFAR10_RECORD))
    n = raw.size // _CIFAR10_RECORD
    if records_per_file is not None and n != records_per_file:
        raise ValueError(
            "{}: {} records, expected {} (a truncated file? pass records_per_file=None "
            "to accept any whole number of records)".format(path, n, records_per_file))
    records = raw.reshape(n, _CIFAR10_RECORD)
    labels = records[:, 0]
    _check_labels(path, labels)
    return records[:, 1:].reshape(n, 3, 32, 32), labels


def _read_cifar_meta(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as exc:
        raise ValueError("{}: not a text file of class names ({})".format(path, exc)) from exc
    if len(names) != 10:
        raise ValueError("{}: expected 10 class names (one per line), found {}".format(
            path, len(names)))
    return tuple(names)


def _member_name(member, archive):
    """The file name of a regular file directly in cifar-10-batches-bin/, None
    for that folder itself; ValueError for anything else (other paths,
    absolute or ``..`` paths, links, special files)."""
    name = member.name[2:] if member.name.startswith("./") else member.name
    parts = PurePosixPath(name).parts
    if (not parts or parts[0] != _CIFAR10_FOLDER or name.startswith("/") or "\\" in name
            or any(p in ("..", ".") for p in parts) or len(parts) > 2):
        raise ValueError("{}: unexpected member {!r} (expected files directly in "
                         "{}/)".format(archive, member.name, _CIFAR10_FOLDER))
    if len(parts) == 1:
        if not member.isdir():
            raise ValueError("{}: {!r} is not a folder".format(archive, member.name))
        return None
    if not member.isfile():
        raise ValueError("{}: {!r} is not a regular file (links and special files "
                         "are refused)".format(archive, member.name))
    return parts[1]


def _extract_cifar(archive, cache):
    """Extracts ``archive`` (cifar-10-binary.tar.gz) into
    ``cache/cifar-10-batches-bin``: into a temporary folder first, checked,
    then moved into place."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / _CIFAR10_FOLDER
    tmp = Path(tempfile.mkdtemp(prefix="." + _CIFAR10_FOLDER + ".", suffix=".part",
                                dir=str(cache)))
    try:
        try:
            # One pass over the stream; every member is checked before it is
            # written (into tmp, removed below whatever happens).
            with tarfile.open(str(archive), "r:gz") as tar:
                for member in tar:
                    fname = _member_name(member, archive)
                    if fname is None:
                        continue
                    if (tmp / fname).exists():
                        raise ValueError("{}: {!r} occurs twice".format(archive, member.name))
                    src = tar.extractfile(member)
                    with src, open(str(tmp / fname), "xb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError("{}: not a valid .tar.gz archive, or a truncated one "
                             "({})".format(archive, exc)) from exc
        absent = [f for f in _CIFAR10_BATCHES if not (tmp / f).is_file()]
        if absent:
            raise ValueError("{}: the archive lacks {}/{}".format(
                archive, _CIFAR10_FOLDER, ", ".join(absent)))
        if not target.exists():
            os.rename(str(tmp), str(target))
        else:
            for f in tmp.iterdir():
                os.replace(str(f), str(target / f.name))
    finally:
        shutil.rmtree(str(tmp), ignore_errors=True)
    return target


def _has_batches(folder):
    return all((folder / f).is_file() for f in _CIFAR10_BATCHES)


def load_cifar10(path=None, download=False, cache_dir=None, base_url=None, normalize=True,
                 records_per_file=10000):
    """CIFAR-10 (A. Krizhevsky, "Learning Multiple Layers of Features from
    Tiny Images", 2009), binary version: 50,000 training images
    (``data_batch_1.bin`` .. ``data_batch_5.bin``, read in this order) and
    10,000 test images (``test_batch.bin``), 32 x 32 colour, 10 classes.

    Parameters
    ----------
    path : str or PathLike, optional
        Folder holding the batch files, or holding the folder
        ``cifar-10-batches-bin`` that holds them (as the archive unpacks).
        Looked in before the cache folder.
    download : bool
        When the batch files are not found (in ``path``, or in
        ``cache_dir/cifar-10-batches-bin``) and no archive
        ``cifar-10-binary.tar.gz`` is in ``path`` or ``cache_dir``, fetch
        the archive from https://www.cs.toronto.edu/~kriz/ (or ``base_url``)
        into ``cache_dir``, check its MD5 (``IMAGE_MD5["cifar10"]``), extract
        it into ``cache_dir/cifar-10-batches-bin`` and delete it. An archive
        found on disk is extracted there as well (whatever ``download``),
        and kept. Extraction accepts only plain files directly in
        ``cifar-10-batches-bin/`` (no links, absolute or ``..`` paths).
    cache_dir : str or PathLike, optional
        Cache folder (default ``$XDG_CACHE_HOME/bcml``, else
        ``~/.cache/bcml``).
    base_url : str, optional
        Download from ``base_url + "/cifar-10-binary.tar.gz"`` instead.
    normalize : bool
        True (default): float32 images, the stored byte divided by 255
        (exactly), so in [0, 1]; no mean/std standardisation. False: the
        stored uint8 bytes.
    records_per_file : int or None
        Records each batch file must hold (10000, as in the original files;
        fewer means a truncated file). None accepts any whole, non-zero
        number of 3073-byte records (small test files).

    Returns
    -------
    ImageDataset
        ``X_train`` (50000, 3, 32, 32) and ``X_test`` (10000, 3, 32, 32):
        channels red, green, blue, rows top to bottom; int64 labels 0..9;
        ``class_names`` from ``batches.meta.txt`` when it is next to the
        batches (10 non-blank lines), else airplane, automobile, bird, cat,
        deer, dog, frog, horse, ship, truck.

    Raises
    ------
    DatasetNotFoundError (a FileNotFoundError)
        A batch file is missing and ``download`` is false.
    ValueError
        A batch file whose size is not a whole number of 3073-byte records
        or not ``records_per_file`` records, a label above 9, a malformed
        ``batches.meta.txt`` or archive; the message names the file. A
        download whose MD5 differs raises :class:`ChecksumError`, a
        ValueError, and is not kept.
    DownloadError (an OSError)
        The download failed.
    """
    check_args("load_cifar10", path, download, cache_dir, base_url, normalize=normalize)
    if records_per_file is not None and (isinstance(records_per_file, bool) or
                                         not isinstance(records_per_file, (int, np.integer))):
        raise TypeError("load_cifar10(): argument 'records_per_file' must be an int or None, not {}"
                        .format(type(records_per_file).__name__))
    if records_per_file is not None:
        if isinstance(records_per_file, bool):
            raise TypeError("records_per_file must be an int or None, got a bool")
        try:
            records_per_file = operator.index(records_per_file)
        except TypeError:
            raise TypeError("records_per_file must be an int or None, got {!r}".format(
                records_per_file)) from None
        if records_per_file < 1:
            raise ValueError("records_per_file must be positive, got {}".format(
                records_per_file))
    path = _check_path(path, "the CIFAR-10 binary batches")
    cache = _cache(cache_dir)
    folders = ([path / _CIFAR10_FOLDER, path] if path is not None else []) + \
        [cache / _CIFAR10_FOLDER]
    folder = next((f for f in folders if _has_batches(f)), None)
    if folder is None:
        archives = ([path / _CIFAR10_ARCHIVE] if path is not None else []) + \
            [cache / _CIFAR10_ARCHIVE]
        archive = next((a for a in archives if a.is_file()), None)
        if archive is not None:
            folder = _extract_cifar(archive, cache)
        elif download:
            url = (base_url.rstrip("/") + "/" + _CIFAR10_ARCHIVE if base_url
                   else IMAGE_URLS["cifar10"][_CIFAR10_ARCHIVE])
            made = _new_folders(cache)  # removed again if the download or extraction fails
            try:
                archive = fetch_all("CIFAR-10", [(
                    _CIFAR10_ARCHIVE, url, cache / _CIFAR10_ARCHIVE,
                    IMAGE_SHA256["cifar10"].get(_CIFAR10_ARCHIVE),
                    IMAGE_MD5["cifar10"].get(_CIFAR10_ARCHIVE))])[_CIFAR10_ARCHIVE]
                try:
                    folder = _extract_cifar(archive, cache)
                finally:
                    archive.unlink()
            except BaseException:
                _remove_empty(made)
                raise
        else:
            first = next((f for f in folders if f.is_dir()), folders[0])
            missing = [f for f in _CIFAR10_BATCHES if not (first / f).is_file()]
            raise DatasetNotFoundError(
                "CIFAR-10: cannot find the binary batches {} in any of {}. Put the files "
                "{} in a folder and pass path= to it (or unpack cifar-10-binary.tar.gz "
                "into {}, or put the archive itself there), or pass download=True to "
                "fetch {} into {}.".format(
                    ", ".join(missing), ", ".join(str(f) for f in folders),
                    ", ".join(_CIFAR10_BATCHES), cache,
                    IMAGE_URLS["cifar10"][_CIFAR10_ARCHIVE] if not base_url
                    else base_url.rstrip("/") + "/" + _CIFAR10_ARCHIVE, cache),
                filename=str(first / missing[0]), dataset="CIFAR-10", missing=missing,
                searched=folders, sources=[IMAGE_URLS["cifar10"][_CIFAR10_ARCHIVE] if not base_url
                                           else base_url.rstrip("/") + "/" + _CIFAR10_ARCHIVE],
                cache=cache)

    files = [folder / f for f in _CIFAR10_BATCHES]
    batches = [_read_cifar_batch(f, records_per_file) for f in files]
    meta = folder / "batches.meta.txt"
    class_names = _read_cifar_meta(meta) if meta.is_file() else CIFAR10_CLASSES
    if meta.is_file():
        files.append(meta)
    return _assemble(
        "cifar10", batches[:5], batches[5:], class_names,
        "CIFAR-10 (A. Krizhevsky, 2009), binary version, read from {}. Images 32 x 32, "
        "channels red, green, blue, {}; 10 classes.".format(
            folder, "float32 = byte / 255" if normalize else "uint8 bytes as stored"),
        normalize, files)

"""Tests of bcml.datasets' image loaders (MNIST, Fashion-MNIST, CIFAR-10).

Small IDX files and CIFAR-10 batches are written by the tests and read
back exactly; malformed files must raise a ValueError naming the file;
downloads go to a loopback HTTP server serving files the tests write, with
the checksum tables monkeypatched. The real Fashion-MNIST is read from
/usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist): skipped
when absent, failing when the environment variable CI is set. Nothing is
written outside pytest's temporary folders (XDG_CACHE_HOME is pointed at one).
"""

import gzip
import hashlib
import io
import re
import socket
import struct
import tarfile

import numpy as np
import pytest

import bcml.datasets as ds
from bcml.datasets import (ChecksumError, DatasetNotFoundError, DownloadError,
                           ImageDataset, load_cifar10, load_fashion_mnist, load_mnist)
from bcml.datasets import _images

from conftest import FASHION_MNIST, need_path  # noqa: E402

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY")
IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_BATCHES = ["data_batch_{}.bin".format(i) for i in range(1, 6)] + ["test_batch.bin"]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Never touch ~/.cache or the real Debian folder (unless a test asks),
    and reach the loopback server directly."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_images, "FASHION_MNIST_DIR", tmp_path / "no-debian-folder")


def _named(path):
    """pytest.raises match= for a message naming ``path``."""
    return re.escape(str(path))


# --------------------------------------------------------------------------
# Writing small IDX files

def _idx(array, magic):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">I", magic) + struct.pack(">{}I".format(array.ndim), *array.shape) \
        + array.tobytes()


def _make_idx(seed=0, n_train=5, n_test=3):
    """{file name: (array, IDX bytes)} for a tiny MNIST-shaped data set."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        out[prefix + "-images-idx3-ubyte"] = (images, _idx(images, 0x803))
        out[prefix + "-labels-idx1-ubyte"] = (labels, _idx(labels, 0x801))
    return out


def _write_idx(folder, files, gz=()):
    """Writes each file plain, or gzip-compressed (name + .gz) when in ``gz``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (_, body) in files.items():
        if name in gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(body))
        else:
            (folder / name).write_bytes(body)


def _check_idx(d, files):
    tr_x = files["train-images-idx3-ubyte"][0]
    te_x = files["t10k-images-idx3-ubyte"][0]
    assert isinstance(d, ImageDataset)
    assert d.X_train.shape == (tr_x.shape[0], 1, 28, 28)
    assert d.X_test.shape == (te_x.shape[0], 1, 28, 28)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.testing.assert_array_equal(d.X_train[:, 0], tr_x.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(d.X_test[:, 0], te_x.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(d.y_train, files["train-labels-idx1-ubyte"][0])
    np.testing.assert_array_equal(d.y_test, files["t10k-labels-idx1-ubyte"][0])
    assert d.X_train.min() == 0.0 and d.X_train.max() == 1.0


def test_idx_plain_read_back_exactly(tmp_path):
    files = _make_idx()
    _write_idx(tmp_path / "m", files)
    d = load_mnist(tmp_path / "m")
    _check_idx(d, files)
    assert d.class_names == tuple("0123456789") and d.name == "mnist"
    assert d.files == tuple(str(tmp_path / "m" / n) for n in IDX)
    # Views of one array, train rows first.
    assert np.shares_memory(d.X_train, d.X) and np.shares_memory(d.X_test, d.X)
    np.testing.assert_array_equal(d.X[5:], d.X_test)
    np.testing.assert_array_equal(d.y, np.concatenate([d.y_train, d.y_test]))
    np.testing.assert_array_equal(d.train_index, np.arange(5))
    np.testing.assert_array_equal(d.test_index, [5, 6, 7])
    assert d.train_index.dtype == np.int64
    assert d.X.flags["C_CONTIGUOUS"] and d.X_train.flags["C_CONTIGUOUS"]
    assert "MNIST" in d.description and "byte / 255" in d.description

    raw = load_mnist(tmp_path / "m", normalize=False)
    assert raw.X_train.dtype == np.uint8
    np.testing.assert_array_equal(raw.X_train[:, 0], files["train-images-idx3-ubyte"][0])
    np.testing.assert_array_equal(raw.X_test[:, 0], files["t10k-images-idx3-ubyte"][0])


def test_idx_gz_and_mixed(tmp_path):
    files = _make_idx(seed=1)
    _write_idx(tmp_path / "gz", files, gz=IDX)
    d = load_fashion_mnist(tmp_path / "gz")
    _check_idx(d, files)
    assert d.files == tuple(str(tmp_path / "gz" / (n + ".gz")) for n in IDX)
    assert d.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert d.name == "fashion_mnist"

    _write_idx(tmp_path / "mixed", files, gz=IDX[1:3])
    _check_idx(load_mnist(tmp_path / "mixed"), files)


def test_idx_plain_preferred_over_gz(tmp_path):
    plain, other = _make_idx(seed=2), _make_idx(seed=3)
    _write_idx(tmp_path / "m", other, gz=IDX)
    _write_idx(tmp_path / "m", plain)
    _check_idx(load_mnist(tmp_path / "m"), plain)


def test_idx_counts_other_than_mnist_are_read(tmp_path):
    files = _make_idx(n_train=1, n_test=1)
    _write_idx(tmp_path / "m", files)
    d = load_mnist(tmp_path / "m")
    assert d.X_train.shape == (1, 1, 28, 28) and d.X_test.shape == (1, 1, 28, 28)


# --------------------------------------------------------------------------
# Malformed IDX files: a ValueError naming the file

def _corrupt_cases():
    def truncated(files):
        body = files["train-images-idx3-ubyte"][1]
        return "train-images-idx3-ubyte", body[:-1], "truncated"

    def truncated_in_data(files):
        body = files["t10k-labels-idx1-ubyte"][1]
        return "t10k-labels-idx1-ubyte", body[:9], "truncated"

    def over_long(files):
        body = files["t10k-images-idx3-ubyte"][1]
        return "t10k-images-idx3-ubyte", body + b"\0", "over-long"

    def short_header(files):
        return "train-images-idx3-ubyte", files["train-images-idx3-ubyte"][1][:10], \
            "truncated IDX header"

    def empty(files):
        return "train-labels-idx1-ubyte", b"", "too short"

    def wrong_magic(files):
        body = files["train-images-idx3-ubyte"][1]
        return "train-images-idx3-ubyte", struct.pack(">I", 0x0D03) + body[4:], \
            "wrong magic number 0x00000d03, expected 0x00000803"

    def little_endian_magic(files):
        body = files["train-labels-idx1-ubyte"][1]
        return "train-labels-idx1-ubyte", struct.pack("<I", 0x801) + body[4:], \
            "wrong magic number"

    def swapped(files):
        # a label file where the image file should be
        return "train-images-idx3-ubyte", files["train-labels-idx1-ubyte"][1], \
            "swapped image and label files"

    def gz_named_plain(files):
        return "t10k-images-idx3-ubyte", gzip.compress(files["t10k-images-idx3-ubyte"][1]), \
            "looks gzip-compressed"

    def not_28x28(files):
        images = np.zeros((5, 28, 27), np.uint8)
        return "train-images-idx3-ubyte", _idx(images, 0x803), "28 x 27 pixels"

    def bad_label(files):
        labels = np.array([1, 2, 10], np.uint8)
        return "t10k-labels-idx1-ubyte", _idx(labels, 0x801), "label 10 at position 2"

    return [truncated, truncated_in_data, over_long, short_header, empty, wrong_magic,
            little_endian_magic, swapped, gz_named_plain, not_28x28, bad_label]


@pytest.mark.parametrize("case", _corrupt_cases(), ids=lambda f: f.__name__)
def test_idx_malformed_names_file(tmp_path, case):
    files = _make_idx()
    _write_idx(tmp_path / "m", files)
    name, body, what = case(files)
    (tmp_path / "m" / name).write_bytes(body)
    with pytest.raises(ValueError) as info:
        load_mnist(tmp_path / "m")
    msg = str(info.value)
    assert str(tmp_path / "m" / name) in msg and what in msg, msg


def test_idx_malformed_gz(tmp_path):
    files = _make_idx()
    _write_idx(tmp_path / "m", files, gz=IDX)
    f = tmp_path / "m" / "train-labels-idx1-ubyte.gz"
    good = f.read_bytes()
    f.write_bytes(good[:-12])  # truncated gzip stream
    with pytest.raises(ValueError, match=_named(f)):
        load_mnist(tmp_path / "m")
    f.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=_named(f)):
        load_mnist(tmp_path / "m")
    # a valid gzip stream holding a truncated IDX file
    f.write_bytes(gzip.compress(gzip.decompress(good)[:-1]))
    with pytest.raises(ValueError, match=_named(f) + ".*truncated"):
        load_mnist(tmp_path / "m")


def test_idx_count_mismatch_names_both_files(tmp_path):
    files = _make_idx()
    _write_idx(tmp_path / "m", files)
    labels = np.arange(4, dtype=np.uint8)
    (tmp_path / "m" / "train-labels-idx1-ubyte").write_bytes(_idx(labels, 0x801))
    with pytest.raises(ValueError) as info:
        load_mnist(tmp_path / "m")
    msg = str(info.value)
    assert str(tmp_path / "m" / "train-images-idx3-ubyte") in msg
    assert str(tmp_path / "m" / "train-labels-idx1-ubyte") in msg
    assert "5 images" in msg and "4 labels" in msg


# --------------------------------------------------------------------------
# Where the IDX files are looked for

def test_idx_missing_files_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(empty, cache_dir=cache)
    assert isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    assert str(empty) in msg and str(cache / "mnist") in msg
    assert "download=True" in msg and "path=" in msg and ".gz" in msg
    assert "ossci-datasets.s3.amazonaws.com/mnist/" in msg
    assert not cache.exists()  # looking does not create the cache


def test_fashion_default_folder_then_cache(tmp_path, monkeypatch):
    files = _make_idx(seed=4)
    debian = tmp_path / "debian"
    monkeypatch.setattr(_images, "FASHION_MNIST_DIR", debian)
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist()
    msg = str(info.value)
    assert str(debian) in msg and "dataset-fashion-mnist" in msg
    assert str(tmp_path / "xdg-cache" / "bcml" / "fashion-mnist") in msg

    _write_idx(tmp_path / "xdg-cache" / "bcml" / "fashion-mnist", files, gz=IDX)
    _check_idx(load_fashion_mnist(), files)  # from the default cache

    other = _make_idx(seed=5)
    _write_idx(debian, other, gz=IDX)
    _check_idx(load_fashion_mnist(), other)  # the Debian folder comes first
    # an explicit path replaces the Debian folder (then the cache)
    _check_idx(load_fashion_mnist(tmp_path / "nowhere"), files)


def test_path_must_be_a_folder(tmp_path):
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(b"")
    with pytest.raises(ValueError, match="folder"):
        load_mnist(f)
    with pytest.raises(ValueError, match="folder"):
        load_cifar10(f)


# --------------------------------------------------------------------------
# CIFAR-10 binary batches

def _make_cifar(n=10, seed=0):
    """{batch file name: (r, g, b planes (n, 32, 32), labels, bytes)}."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = {}
    for k, name in enumerate(CIFAR_BATCHES):
        r, g, b = (rng.integers(0, 256, size=(n, 32, 32), dtype=np.uint8) for _ in range(3))
        labels = ((np.arange(n) + k) % 10).astype(np.uint8)
        records = b"".join(bytes([labels[i]]) + r[i].tobytes() + g[i].tobytes() + b[i].tobytes()
                           for i in range(n))
        out[name] = (r, g, b, labels, records)
    return out


def _write_cifar(folder, batches):
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in batches.items():
        (folder / name).write_bytes(value[-1])


def _check_cifar(d, batches):
    n = batches["test_batch.bin"][0].shape[0]
    assert d.X_train.shape == (5 * n, 3, 32, 32) and d.X_test.shape == (n, 3, 32, 32)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    for k, name in enumerate(CIFAR_BATCHES):
        r, g, b, labels, _ = batches[name]
        X, y = (d.X_test, d.y_test) if k == 5 else (d.X_train[k * n:(k + 1) * n],
                                                     d.y_train[k * n:(k + 1) * n])
        for c, plane in enumerate((r, g, b)):  # channel 0 red, 1 green, 2 blue
            np.testing.assert_array_equal(X[:, c], plane.astype(np.float32) / np.float32(255))
        np.testing.assert_array_equal(y, labels)


def test_cifar_read_back_exactly(tmp_path):
    batches = _make_cifar()
    _write_cifar(tmp_path / "c", batches)
    d = load_cifar10(tmp_path / "c", records_per_file=None)
    _check_cifar(d, batches)
    assert d.class_names == ("airplane", "automobile", "bird", "cat", "deer", "dog",
                             "frog", "horse", "ship", "truck")
    assert d.name == "cifar10"
    assert d.files == tuple(str(tmp_path / "c" / f) for f in CIFAR_BATCHES)
    np.testing.assert_array_equal(d.test_index, np.arange(50, 60))
    assert np.shares_memory(d.X_test, d.X)

    raw = load_cifar10(tmp_path / "c", records_per_file=None, normalize=False)
    r, g, b, _, _ = batches["data_batch_2.bin"]
    assert raw.X_train.dtype == np.uint8
    np.testing.assert_array_equal(raw.X_train[10:20], np.stack([r, g, b], axis=1))
    # records_per_file as a number
    load_cifar10(tmp_path / "c", records_per_file=10)


def test_cifar_batches_folder_and_meta(tmp_path):
    batches = _make_cifar(n=3, seed=1)
    folder = tmp_path / "c" / "cifar-10-batches-bin"
    _write_cifar(folder, batches)
    names = ["a{}".format(i) for i in range(10)]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n\n")
    d = load_cifar10(tmp_path / "c", records_per_file=None)  # the parent folder
    _check_cifar(d, batches)
    assert d.class_names == tuple(names)
    assert d.files[-1] == str(folder / "batches.meta.txt")
    (folder / "batches.meta.txt").write_text("only\nthree\nnames\n")
    with pytest.raises(ValueError, match=_named(folder / "batches.meta.txt")):
        load_cifar10(folder, records_per_file=None)
    (folder / "batches.meta.txt").write_bytes(b"\xff\xfe\n" * 10)
    with pytest.raises(ValueError, match=_named(folder / "batches.meta.txt")):
        load_cifar10(folder, records_per_file=None)


def test_cifar_records_per_file_default_is_10000(tmp_path):
    _write_cifar(tmp_path / "c", _make_cifar(n=2))
    f = tmp_path / "c" / "data_batch_1.bin"
    with pytest.raises(ValueError, match=_named(f) + ".*2 records, expected 10000"
                       ".*records_per_file=None"):
        load_cifar10(tmp_path / "c")
    with pytest.raises(ValueError, match="records_per_file"):
        load_cifar10(tmp_path / "c", records_per_file=0)
    with pytest.raises(TypeError, match="records_per_file"):
        load_cifar10(tmp_path / "c", records_per_file=2.0)
    with pytest.raises(TypeError, match="records_per_file"):
        load_cifar10(tmp_path / "c", records_per_file=True)
    load_cifar10(tmp_path / "c", records_per_file=np.int64(2))


@pytest.mark.parametrize("cut", [1, 3072, 3074])
def test_cifar_truncated_names_file(tmp_path, cut):
    batches = _make_cifar(n=2)
    _write_cifar(tmp_path / "c", batches)
    f = tmp_path / "c" / "data_batch_3.bin"
    f.write_bytes(batches["data_batch_3.bin"][-1][:-cut])
    with pytest.raises(ValueError, match=_named(f) + ".*3073-byte records"):
        load_cifar10(tmp_path / "c", records_per_file=None)


def test_cifar_empty_or_bad_label(tmp_path):
    batches = _make_cifar(n=2)
    _write_cifar(tmp_path / "c", batches)
    f = tmp_path / "c" / "test_batch.bin"
    f.write_bytes(b"")
    with pytest.raises(ValueError, match=_named(f)):
        load_cifar10(tmp_path / "c", records_per_file=None)
    body = bytearray(batches["test_batch.bin"][-1])
    body[3073] = 10  # label of the second record
    f.write_bytes(bytes(body))
    with pytest.raises(ValueError, match=_named(f) + ".*label 10 at position 1"):
        load_cifar10(tmp_path / "c", records_per_file=None)


def test_cifar_missing_message(tmp_path):
    _write_cifar(tmp_path / "c", {k: v for k, v in _make_cifar(n=1).items()
                                  if k != "data_batch_4.bin"})
    cache = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(tmp_path / "c", cache_dir=cache, records_per_file=None)
    msg = str(info.value)
    assert "data_batch_4.bin" in msg and str(tmp_path / "c") in msg
    assert str(cache / "cifar-10-batches-bin") in msg and "download=True" in msg
    assert "cifar-10-binary.tar.gz" in msg and "path=" in msg
    assert info.value.filename == str(tmp_path / "c" / "data_batch_4.bin")
    assert not cache.exists()


# --------------------------------------------------------------------------
# CIFAR-10 archives

def _cifar_archive(batches, extra=(), top="cifar-10-batches-bin"):
    """A .tar.gz like cifar-10-binary.tar.gz; ``extra``: (TarInfo, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(top)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name, value in list(batches.items()) + [("batches.meta.txt", None)]:
            body = value[-1] if value is not None else \
                "\n".join("c{}".format(i) for i in range(10)).encode() + b"\n\n"
            info = tarfile.TarInfo(top + "/" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for info, body in extra:
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


def test_cifar_archive_on_disk_is_extracted_and_kept(tmp_path):
    batches = _make_cifar(n=2)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cifar-10-binary.tar.gz").write_bytes(_cifar_archive(batches))
    d = load_cifar10(cache_dir=cache, records_per_file=None)
    _check_cifar(d, batches)
    assert d.class_names == tuple("c{}".format(i) for i in range(10))
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-bin",
                                                       "cifar-10-binary.tar.gz"]
    assert sorted(p.name for p in (cache / "cifar-10-batches-bin").iterdir()) == \
        sorted(CIFAR_BATCHES + ["batches.meta.txt"])
    # an archive in path= is extracted into the cache too
    path = tmp_path / "p"
    path.mkdir()
    (path / "cifar-10-binary.tar.gz").write_bytes(_cifar_archive(batches))
    cache2 = tmp_path / "cache2"
    _check_cifar(load_cifar10(path, cache_dir=cache2, records_per_file=None), batches)
    assert (cache2 / "cifar-10-batches-bin" / "test_batch.bin").is_file()


def _unsafe(kind):
    if kind == "dotdot":
        info = tarfile.TarInfo("cifar-10-batches-bin/../evil.bin")
        return info, b"x"
    if kind == "absolute":
        return tarfile.TarInfo("/tmp/evil.bin"), b"x"
    if kind == "outside":
        return tarfile.TarInfo("elsewhere/evil.bin"), b"x"
    if kind == "nested":
        return tarfile.TarInfo("cifar-10-batches-bin/sub/evil.bin"), b"x"
    info = tarfile.TarInfo("cifar-10-batches-bin/link.bin")
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "cifar-10-batches-bin/test_batch.bin"
    elif kind == "device":
        info.type = tarfile.CHRTYPE
    return info, None


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "outside", "nested", "symlink",
                                  "hardlink", "device"])
def test_cifar_archive_unsafe_members_refused(tmp_path, kind):
    batches = _make_cifar(n=1)
    info, body = _unsafe(kind)
    if body is not None:
        info.size = len(body)
    cache = tmp_path / "cache"
    cache.mkdir()
    archive = cache / "cifar-10-binary.tar.gz"
    archive.write_bytes(_cifar_archive(batches, extra=[(info, body)]))
    with pytest.raises(ValueError, match=_named(archive)):
        load_cifar10(cache_dir=cache, records_per_file=None)
    # nothing extracted, no temporary folder left, nothing written outside
    assert [p.name for p in cache.iterdir()] == ["cifar-10-binary.tar.gz"]
    assert not (tmp_path / "evil.bin").exists()


def test_cifar_archive_corrupt_or_incomplete(tmp_path):
    batches = _make_cifar(n=1)
    cache = tmp_path / "cache"
    cache.mkdir()
    archive = cache / "cifar-10-binary.tar.gz"
    body = _cifar_archive(batches)
    archive.write_bytes(body[: len(body) // 2])
    with pytest.raises(ValueError, match=_named(archive)):
        load_cifar10(cache_dir=cache, records_per_file=None)
    archive.write_bytes(_cifar_archive({k: v for k, v in batches.items()
                                        if k != "data_batch_5.bin"}))
    with pytest.raises(ValueError, match=_named(archive) + ".*data_batch_5.bin"):
        load_cifar10(cache_dir=cache, records_per_file=None)
    assert [p.name for p in cache.iterdir()] == ["cifar-10-binary.tar.gz"]


# --------------------------------------------------------------------------
# download=True against a loopback HTTP server



def _serve_idx(www, key, monkeypatch, seed=0):
    """Serves a tiny data set as .gz files; pins their MD5s (and SHA-256s)."""
    files = _make_idx(seed=seed)
    _write_idx(www, files, gz=IDX)
    for name in IDX:
        body = (www / (name + ".gz")).read_bytes()
        monkeypatch.setitem(ds.IMAGE_MD5[key], name + ".gz", hashlib.md5(body).hexdigest())
        monkeypatch.setitem(ds.IMAGE_SHA256[key], name + ".gz",
                            hashlib.sha256(body).hexdigest())
    return files


def test_mnist_download_with_base_url(server, tmp_path, monkeypatch):
    base, www, hits = server
    files = _serve_idx(www, "mnist", monkeypatch)
    cache = tmp_path / "cache"
    d = load_mnist(download=True, cache_dir=cache, base_url=base + "/")
    _check_idx(d, files)
    assert sorted(hits) == sorted("/" + n + ".gz" for n in IDX)
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(n + ".gz" for n in IDX)
    for n in IDX:
        assert (cache / "mnist" / (n + ".gz")).read_bytes() == (www / (n + ".gz")).read_bytes()
    # cached: no new request
    _check_idx(load_mnist(cache_dir=cache), files)
    load_mnist(download=True, cache_dir=cache, base_url=base)
    assert len(hits) == 4


def test_fashion_download_via_url_table_into_default_cache(server, tmp_path, monkeypatch):
    base, www, hits = server
    files = _serve_idx(www, "fashion_mnist", monkeypatch, seed=7)
    for n in IDX:
        monkeypatch.setitem(ds.IMAGE_URLS["fashion_mnist"], n + ".gz", base + "/" + n + ".gz")
    _check_idx(load_fashion_mnist(download=True), files)
    cache = tmp_path / "xdg-cache" / "bcml" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(n + ".gz" for n in IDX)


@pytest.mark.parametrize("algo", ["md5", "sha256"])
def test_idx_download_checksum_mismatch_leaves_nothing(server, tmp_path, monkeypatch, algo):
    base, www, _ = server
    _serve_idx(www, "fashion_mnist", monkeypatch)
    table = ds.IMAGE_MD5 if algo == "md5" else ds.IMAGE_SHA256
    first = IDX[0] + ".gz"
    good = table["fashion_mnist"][first]
    wrong = "0" * len(good)
    monkeypatch.setitem(table["fashion_mnist"], first, wrong)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as info:
        load_fashion_mnist(download=True, cache_dir=cache, base_url=base)
    assert isinstance(info.value, ChecksumError)
    msg = str(info.value)
    assert first in msg and algo in msg and wrong in msg and good in msg
    assert not cache.exists()  # nothing left, not even an empty cache folder


def test_idx_download_mismatch_on_a_later_file(server, tmp_path, monkeypatch):
    """Files verified before the bad one stay (they are correct); the bad one
    and any temporary file do not."""
    base, www, _ = server
    _serve_idx(www, "mnist", monkeypatch)
    monkeypatch.setitem(ds.IMAGE_MD5["mnist"], IDX[2] + ".gz", "f" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=IDX[2]):
        load_mnist(download=True, cache_dir=cache, base_url=base)
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == \
        sorted(n + ".gz" for n in IDX[:2])


def _unused_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_unreachable(tmp_path):
    cache = tmp_path / "cache"
    base = "http://127.0.0.1:{}".format(_unused_port())
    with pytest.raises(DownloadError) as info:
        load_mnist(download=True, cache_dir=cache, base_url=base)
    msg = str(info.value)
    assert base in msg and str(cache / "mnist" / (IDX[0] + ".gz")) in msg
    with pytest.raises(DownloadError, match="cifar-10-binary.tar.gz"):
        load_cifar10(download=True, cache_dir=cache, base_url=base)
    assert not (cache / "cifar-10-batches-bin").exists()


def test_download_http_error(server, tmp_path):
    base, _, _ = server  # an empty folder: 404
    with pytest.raises(DownloadError, match="404"):
        load_fashion_mnist(download=True, cache_dir=tmp_path / "cache", base_url=base)


def test_cifar_download(server, tmp_path, monkeypatch):
    base, www, hits = server
    batches = _make_cifar(n=4, seed=3)
    body = _cifar_archive(batches)
    (www / "cifar-10-binary.tar.gz").write_bytes(body)
    monkeypatch.setitem(ds.IMAGE_MD5["cifar10"], "cifar-10-binary.tar.gz",
                        hashlib.md5(body).hexdigest())
    monkeypatch.setitem(ds.IMAGE_URLS["cifar10"], "cifar-10-binary.tar.gz",
                        base + "/cifar-10-binary.tar.gz")
    d = load_cifar10(download=True, records_per_file=None)
    _check_cifar(d, batches)
    cache = tmp_path / "xdg-cache" / "bcml"
    # extracted, the downloaded archive deleted, no temporary files
    assert [p.name for p in cache.iterdir()] == ["cifar-10-batches-bin"]
    assert hits == ["/cifar-10-binary.tar.gz"]
    _check_cifar(load_cifar10(download=True, records_per_file=None), batches)
    assert len(hits) == 1


def test_cifar_download_checksum_mismatch_leaves_nothing(server, tmp_path, monkeypatch):
    base, www, _ = server
    body = _cifar_archive(_make_cifar(n=1))
    (www / "cifar-10-binary.tar.gz").write_bytes(body)
    wrong = "0" * 32
    monkeypatch.setitem(ds.IMAGE_MD5["cifar10"], "cifar-10-binary.tar.gz", wrong)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as info:
        load_cifar10(download=True, cache_dir=cache, base_url=base, records_per_file=None)
    assert wrong in str(info.value) and hashlib.md5(body).hexdigest() in str(info.value)
    assert not cache.exists()  # nothing left, not even an empty cache folder


def test_cifar_download_unsafe_archive_leaves_nothing(server, tmp_path, monkeypatch):
    base, www, _ = server
    info, body = _unsafe("dotdot")
    info.size = len(body)
    archive = _cifar_archive(_make_cifar(n=1), extra=[(info, body)])
    (www / "cifar-10-binary.tar.gz").write_bytes(archive)
    monkeypatch.setitem(ds.IMAGE_MD5["cifar10"], "cifar-10-binary.tar.gz",
                        hashlib.md5(archive).hexdigest())
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="unexpected member"):
        load_cifar10(download=True, cache_dir=cache, base_url=base, records_per_file=None)
    assert not cache.exists()  # nothing left, not even an empty cache folder


def test_pinned_tables():
    for key in ("mnist", "fashion_mnist"):
        assert sorted(ds.IMAGE_URLS[key]) == sorted(n + ".gz" for n in IDX)
        assert sorted(ds.IMAGE_MD5[key]) == sorted(n + ".gz" for n in IDX)
    assert ds.IMAGE_URLS["mnist"][IDX[0] + ".gz"] == \
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
    assert ds.IMAGE_MD5["mnist"][IDX[0] + ".gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert ds.IMAGE_URLS["fashion_mnist"][IDX[0] + ".gz"] == \
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"
    assert ds.IMAGE_URLS["cifar10"]["cifar-10-binary.tar.gz"] == \
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert ds.IMAGE_MD5["cifar10"]["cifar-10-binary.tar.gz"] == \
        "c32a1d4ab5d03f1284b67883e8d87530"


# --------------------------------------------------------------------------
# The real Fashion-MNIST (Debian's dataset-fashion-mnist)

@pytest.fixture(scope="module")
def fashion():
    need_path(FASHION_MNIST)
    return load_fashion_mnist(FASHION_MNIST)


def test_real_fashion_mnist(fashion):
    d = fashion
    assert d.X_train.shape == (60000, 1, 28, 28) and d.X_test.shape == (10000, 1, 28, 28)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.y_train.shape == (60000,) and d.y_test.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(d.y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), [1000] * 10)
    assert d.X_train.min() == 0.0 and d.X_train.max() == 1.0
    assert d.X_test.min() == 0.0 and d.X_test.max() == 1.0
    assert len(d.class_names) == 10 and d.class_names[9] == "Ankle boot"
    # every value is a byte / 255
    b = d.X_test * np.float32(255)
    np.testing.assert_array_equal(b, np.round(b))


def test_real_fashion_mnist_default_folder(fashion, tmp_path, monkeypatch):
    monkeypatch.setattr(_images, "FASHION_MNIST_DIR", FASHION_MNIST)
    raw = load_fashion_mnist(normalize=False, cache_dir=tmp_path / "cache")
    assert raw.X_train.dtype == np.uint8
    assert raw.files[0].startswith(str(FASHION_MNIST))
    np.testing.assert_array_equal(raw.X_test.astype(np.float32) / np.float32(255),
                                  fashion.X_test)
    np.testing.assert_array_equal(raw.y_train, fashion.y_train)
    assert not (tmp_path / "cache").exists()


# Debian's .gz files hold the upstream deflate streams with a normalised gzip
# header; with the original header (file name, 2017 time stamp) restored
# they must match the checksums pinned for downloads.
_UPSTREAM_MTIME = {"train": 1504176606, "t10k": 1504176627}


@pytest.mark.parametrize("name", IDX)
def test_pinned_fashion_checksums_match_debian_files(name):
    folder = need_path(FASHION_MNIST)
    body = (folder / (name + ".gz")).read_bytes()
    assert body[:4] == b"\x1f\x8b\x08\x00"  # deflate, no file name field
    upstream = b"\x1f\x8b\x08\x08" + struct.pack("<I", _UPSTREAM_MTIME[name[:5].rstrip("-")]) \
        + body[8:10] + name.encode() + b"\0" + body[10:]
    assert hashlib.md5(upstream).hexdigest() == ds.IMAGE_MD5["fashion_mnist"][name + ".gz"]
    assert hashlib.sha256(upstream).hexdigest() == \
        ds.IMAGE_SHA256["fashion_mnist"][name + ".gz"]

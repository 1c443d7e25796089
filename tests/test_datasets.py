"""Tests of bcml.datasets: the tabular loaders on the real files in
../shared/data, their encoding, and download=True against a loopback server.

The real files are read from ``<checkout>/../shared/data``. When that folder
is missing the tests that need it are skipped, unless the environment
variable CI is set, in which case they fail. Nothing is written outside
pytest's temporary folders (XDG_CACHE_HOME is pointed at one).
"""

import hashlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest

import bcml.datasets as ds
from bcml.datasets import (ChecksumError, DatasetNotFoundError, DownloadError,
                           load_adult, load_breast_cancer, load_compas,
                           load_german_credit, train_test_split)

from conftest import SHARED_DATA as DATA  # noqa: E402

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Never touch ~/.cache, and reach the loopback server directly."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


def _require_data():
    if not DATA.is_dir():
        msg = "shared data folder {} not found".format(DATA)
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Each real data set, loaded once per module."""
    _require_data()
    cache = tmp_path_factory.mktemp("cache")
    return {
        "adult": load_adult(DATA, cache_dir=cache),
        "compas": load_compas(DATA, cache_dir=cache),
        "german_credit": load_german_credit(DATA, cache_dir=cache),
        "breast_cancer": load_breast_cancer(DATA, cache_dir=cache),
    }


NAMES = ["adult", "compas", "german_credit", "breast_cancer"]


# --------------------------------------------------------------------------
# Row counts and labels, as given in shared/data/README.md

def test_adult_counts(loaded):
    d = loaded["adult"]
    assert d.X_train.shape[0] == 32561 and int(d.y_train.sum()) == 7841
    assert d.X_test.shape[0] == 16281 and int(d.y_test.sum()) == 3846
    assert d.class_names == ("<=50K", ">50K")
    assert d.X_train.shape[1] == d.X_test.shape[1] == 108
    np.testing.assert_array_equal(d.train_index, np.arange(32561))
    # '?' has its own category; a training-only category exists.
    assert "workclass=<missing>" in d.feature_names
    assert "native-country=<missing>" in d.feature_names
    col = d.feature_names.index("native-country=Holand-Netherlands")
    assert d.X_train[:, col].sum() == 1 and d.X_test[:, col].sum() == 0


def test_compas_counts(loaded):
    d = loaded["compas"]
    assert d.X.shape[0] == 7214 and int(d.y.sum()) == 3251
    assert d.X_train.shape[0] + d.X_test.shape[0] == 7214
    assert d.X_test.shape[0] == 1443  # ceil(0.2 * 7214)
    assert int(d.y_train.sum()) + int(d.y_test.sum()) == 3251
    assert d.feature_names[:5] == ("age", "priors_count", "juv_fel_count",
                                   "juv_misd_count", "juv_other_count")
    assert set(d.categorical_groups) == {"sex", "race", "age_cat", "c_charge_degree"}


def test_compas_propublica_filter():
    _require_data()
    d = load_compas(DATA, propublica_filter=True)
    assert d.X.shape[0] == 6172
    assert d.X_train.shape[0] + d.X_test.shape[0] == 6172


def test_german_counts(loaded):
    d = loaded["german_credit"]
    assert d.X.shape[0] == 1000 and int(d.y.sum()) == 300
    assert d.class_names == ("good", "bad")
    assert len(d.numeric_features) == 7 and len(d.categorical_groups) == 13
    assert d.X_test.shape[0] == 200


def test_breast_cancer_counts_and_imputation():
    _require_data()
    d = load_breast_cancer(DATA)
    assert d.X.shape == (699, 9) and int(d.y.sum()) == 241
    assert d.class_names == ("benign", "malignant")
    assert d.X_test.shape[0] == 140  # ceil(0.2 * 699)

    raw = load_breast_cancer(DATA, standardize=False)
    lines = [l for l in (DATA / "breast-cancer-wisconsin.data").read_text().splitlines()
             if l.strip()]
    bare = [l.split(",")[6] for l in lines]
    missing = np.array([v == "?" for v in bare])
    assert missing.sum() == 16
    train_known = [float(bare[i]) for i in raw.train_index if not missing[i]]
    col = raw.feature_names.index("bare_nuclei")
    np.testing.assert_array_equal(raw.X[missing, col], np.median(train_known))
    known = np.array([float(v) if v != "?" else np.nan for v in bare])
    np.testing.assert_array_equal(raw.X[~missing, col], known[~missing])


# --------------------------------------------------------------------------
# Encoding properties common to all loaders

@pytest.mark.parametrize("name", NAMES)
def test_encoding_properties(loaded, name):
    d = loaded[name]
    n_features = len(d.feature_names)
    for X, y in ((d.X_train, d.y_train), (d.X_test, d.y_test), (d.X, d.y)):
        assert X.dtype == np.float32 and y.dtype == np.int64
        assert X.ndim == 2 and X.shape[1] == n_features and y.shape == (X.shape[0],)
        assert np.isfinite(X).all()
        assert set(np.unique(y).tolist()) <= {0, 1}
    np.testing.assert_array_equal(d.X_train, d.X[d.train_index])
    np.testing.assert_array_equal(d.y_test, d.y[d.test_index])
    assert len(d.class_names) == 2 and d.description

    # Every column is exactly one of: numeric, or part of one one-hot group.
    cols = list(d.numeric_features) + [c for g in d.categorical_groups.values() for c in g]
    assert sorted(cols) == list(range(n_features))

    num = list(d.numeric_features)
    assert num, "every data set has numeric columns"
    train = d.X_train[:, num].astype(np.float64)
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-4)

    for group, columns in d.categorical_groups.items():
        block = d.X[:, list(columns)]
        assert np.isin(block, (0.0, 1.0)).all(), group
        np.testing.assert_array_equal(block.sum(axis=1), 1.0, err_msg=group)
        for c in columns:
            assert d.feature_names[c].startswith(group + "=")


@pytest.mark.parametrize("loader", [load_compas, load_german_credit, load_breast_cancer])
def test_split_is_deterministic(loader):
    _require_data()
    a, b = loader(DATA, seed=5), loader(DATA, seed=5)
    np.testing.assert_array_equal(a.test_index, b.test_index)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    c = loader(DATA, seed=6)
    assert not np.array_equal(a.test_index, c.test_index)
    n = a.X.shape[0]
    assert np.intersect1d(a.train_index, a.test_index).size == 0
    np.testing.assert_array_equal(np.union1d(a.train_index, a.test_index), np.arange(n))
    whole = loader(DATA, test_size=0)
    assert whole.X_train.shape[0] == n and whole.X_test.shape == (0, a.X.shape[1])


def test_train_test_split():
    tr, te = train_test_split(10, test_size=0.25, seed=1)
    assert len(te) == 3 and len(tr) == 7  # ceil(2.5)
    assert tr.dtype == np.int64 and np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(10))
    perm = np.random.Generator(np.random.PCG64(1)).permutation(10)
    np.testing.assert_array_equal(te, np.sort(perm[:3]))
    tr, te = train_test_split(10, test_size=4, seed=1)
    assert len(te) == 4
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(10, test_size=1.0)
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(10, test_size=10)
    with pytest.raises(TypeError, match="test_size"):
        train_test_split(10, test_size="0.2")
    with pytest.raises(TypeError, match="seed"):
        train_test_split(10, seed=None)


# --------------------------------------------------------------------------
# Encoding details on small hand-written files

def _write_adult(folder, train_rows, test_rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adult.data").write_text("\n".join(train_rows) + "\n\n")
    (folder / "adult.test").write_text("|1x3 Cross validator\n" + "\n".join(test_rows) + "\n\n")


def test_adult_encoding_on_small_files(tmp_path):
    row = "{age}, {wc}, 1000, Bachelors, 13, Never-married, Sales, Own-child, White, Male, " \
          "0, 0, 40, United-States, {label}"
    _write_adult(tmp_path / "adult", [
        row.format(age=20, wc="Private", label="<=50K"),
        row.format(age=40, wc="?", label=">50K"),
        row.format(age=60, wc="State-gov", label="<=50K"),
    ], [
        row.format(age=40, wc="Never-seen", label=">50K."),
        row.format(age=30, wc="Private", label="<=50K."),
    ])
    d = load_adult(tmp_path / "adult")
    np.testing.assert_array_equal(d.y_train, [0, 1, 0])
    np.testing.assert_array_equal(d.y_test, [1, 0])
    wc = [d.feature_names[c] for c in d.categorical_groups["workclass"]]
    assert wc == ["workclass=Private", "workclass=State-gov", "workclass=<missing>"]
    block = d.X_test[:, list(d.categorical_groups["workclass"])]
    np.testing.assert_array_equal(block, [[0, 0, 0], [1, 0, 0]])  # unknown -> zeros
    age = d.X[:, d.feature_names.index("age")]
    std = np.std([20.0, 40.0, 60.0])
    np.testing.assert_allclose(age, (np.array([20, 40, 60, 40, 30]) - 40.0) / std, rtol=1e-6)
    # A column constant on the training part becomes 0, not NaN.
    assert np.all(d.X[:, d.feature_names.index("fnlwgt")] == 0.0)
    raw = load_adult(tmp_path / "adult", standardize=False)
    np.testing.assert_array_equal(raw.X[:, raw.feature_names.index("age")], [20, 40, 60, 40, 30])


def test_malformed_file_names_file_and_line(tmp_path):
    (tmp_path / "breast-cancer-wisconsin.data").write_text(
        "1,5,1,1,1,2,1,3,1,1,2\n2,5,1,1,1,2,1,3,1,1\n")
    with pytest.raises(ValueError, match="line 2"):
        load_breast_cancer(tmp_path)
    (tmp_path / "breast-cancer-wisconsin.data").write_text(
        "1,5,1,1,1,2,1,3,1,1,2\n2,5,1,1,1,2,1,3,1,1,3\n")
    with pytest.raises(ValueError, match="label"):
        load_breast_cancer(tmp_path)


# --------------------------------------------------------------------------
# Missing files

@pytest.mark.parametrize("loader", [load_adult, load_compas, load_german_credit,
                                    load_breast_cancer])
def test_missing_files_raise_clear_error(tmp_path, loader):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        loader(empty, cache_dir=tmp_path / "cache")
    assert isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    assert str(empty) in msg and str(tmp_path / "cache") in msg
    assert "download=True" in msg and "path=" in msg
    assert not (tmp_path / "cache").exists()  # looking does not create the cache


def test_missing_files_without_path_name_default_cache(tmp_path):
    # COMPAS: the one tabular data set not bundled with bcml (the others fall back on their copies)
    with pytest.raises(FileNotFoundError) as info:
        load_compas()
    assert str(tmp_path / "xdg-cache" / "bcml") in str(info.value)


def test_path_must_be_a_folder(tmp_path):
    f = tmp_path / "german.data"
    f.write_text("")
    with pytest.raises(ValueError, match="folder"):
        load_german_credit(f)


def test_default_cache_dir(tmp_path, monkeypatch):
    assert ds.default_cache_dir() == tmp_path / "xdg-cache" / "bcml"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert ds.default_cache_dir() == Path.home() / ".cache" / "bcml"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert ds.default_cache_dir() == Path.home() / ".cache" / "bcml"


# --------------------------------------------------------------------------
# download=True against a loopback HTTP server

BC_NAME = "breast-cancer-wisconsin.data"


def _breast_cancer_text(n=20):
    rng = np.random.Generator(np.random.PCG64(0))
    lines = []
    for i in range(n):
        feats = rng.integers(1, 11, size=9).tolist()
        cells = [str(v) for v in feats]
        if i == 3:
            cells[5] = "?"
        lines.append(",".join([str(1000 + i)] + cells + ["4" if i % 4 == 0 else "2"]))
    return "\n".join(lines) + "\n"




def _serve_breast_cancer(www, monkeypatch):
    body = _breast_cancer_text().encode()
    (www / BC_NAME).write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()
    monkeypatch.setitem(ds.SHA256, BC_NAME, digest)
    return body, digest


def test_download_into_cache_with_base_url(server, tmp_path, monkeypatch):
    base, www, hits = server
    body, _ = _serve_breast_cancer(www, monkeypatch)
    cache = tmp_path / "cache"
    d = load_breast_cancer(download=True, cache_dir=cache, base_url=base)
    assert d.X.shape == (20, 9) and int(d.y.sum()) == 5
    assert (cache / BC_NAME).read_bytes() == body
    assert sorted(p.name for p in cache.iterdir()) == [BC_NAME]  # no temp file left
    assert hits == ["/" + BC_NAME]
    # The cached file is used next time: no new request, no download needed.
    d2 = load_breast_cancer(cache_dir=cache)
    np.testing.assert_array_equal(d2.X, d.X)
    load_breast_cancer(download=True, cache_dir=cache, base_url=base)
    assert len(hits) == 1


def test_download_via_url_table_into_default_cache(server, tmp_path, monkeypatch):
    base, www, hits = server
    body, _ = _serve_breast_cancer(www, monkeypatch)
    monkeypatch.setitem(ds.URLS, BC_NAME, base + "/" + BC_NAME)
    d = load_breast_cancer(download=True)
    assert d.X.shape[0] == 20
    assert (tmp_path / "xdg-cache" / "bcml" / BC_NAME).read_bytes() == body


def test_download_checksum_mismatch_leaves_nothing(server, tmp_path, monkeypatch):
    base, www, _ = server
    _, digest = _serve_breast_cancer(www, monkeypatch)
    wrong = "0" * 64
    monkeypatch.setitem(ds.SHA256, BC_NAME, wrong)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as info:
        load_breast_cancer(download=True, cache_dir=cache, base_url=base)
    assert isinstance(info.value, ChecksumError)
    msg = str(info.value)
    assert BC_NAME in msg and wrong in msg and digest in msg
    assert not cache.exists()  # nothing left, not even an empty cache folder


def _unused_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_unreachable_says_where_to_put_files(tmp_path):
    cache = tmp_path / "cache"
    base = "http://127.0.0.1:{}".format(_unused_port())
    with pytest.raises(OSError) as info:
        load_breast_cancer(download=True, cache_dir=cache, base_url=base)
    assert isinstance(info.value, DownloadError)
    assert not isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    assert base in msg and str(cache / BC_NAME) in msg and "path=" in msg
    assert not cache.exists()  # nothing left, not even an empty cache folder


def test_download_http_error(server, tmp_path):
    base, _, _ = server  # serves an empty folder: 404
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="404"):
        load_german_credit(download=True, cache_dir=cache, base_url=base)
    assert not cache.exists()  # nothing left, not even an empty cache folder


def test_file_in_path_wins_over_download(tmp_path, monkeypatch):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / BC_NAME).write_text(_breast_cancer_text(12))
    monkeypatch.setitem(ds.URLS, BC_NAME, "http://127.0.0.1:{}/x".format(_unused_port()))
    d = load_breast_cancer(folder, download=True, cache_dir=tmp_path / "cache")
    assert d.X.shape[0] == 12
    assert not (tmp_path / "cache").exists()

"""The gzipped copies of UCI Adult, German credit and breast-cancer Wisconsin shipped in
bcml/datasets/data: byte for byte the originals (the sha256 sums of ../shared/data/README.md, copied
here), what the loaders read with no path, and an explicit path or download=True still winning."""
import gzip
import hashlib
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

import bcml.datasets as ds
from bcml.datasets import (DatasetNotFoundError, DownloadError, load_adult, load_breast_cancer,
                           load_german_credit)
from conftest import SHARED_DATA, need_path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "bcml" / "datasets" / "data"

# The sha256 sums that ../shared/data/README.md lists for the original files (copied, not imported)
README_SHA256 = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    "german.data": "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
    "breast-cancer-wisconsin.data": "402c585309c399237740f635ef9919dc512cca12cbeb20de5e563a4593f22b64",
}
# ... and for the two .gz copies it holds, made with the same gzip -9 -n
README_GZ_SHA256 = {
    "adult.data.gz": "c7a2b4716a97f930123e0baf879188d701e798172631a654fc703d4b082907f3",
    "adult.test.gz": "8a2c1bffa6e7ce5abfa43881ae5e87c4311ebc2b3cd526c9c40a43f19f06f799",
}
LOADERS = {"adult": load_adult, "german": load_german_credit, "breast": load_breast_cancer}


def test_the_bundled_files_are_the_four_originals_gzipped():
    assert sorted(p.name for p in BUNDLED.glob("*.gz")) == sorted(n + ".gz" for n in README_SHA256)
    for name, digest in README_SHA256.items():
        raw = (BUNDLED / (name + ".gz")).read_bytes()
        # gzip -n: no file name (FLG.FNAME unset) and no time stamp in the header
        assert raw[:3] == b"\x1f\x8b\x08" and raw[3] & 0x08 == 0 and raw[4:8] == b"\0\0\0\0", name
        assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == digest, name
        assert ds.SHA256[name] == digest  # the pin a download is checked against
    for name, digest in README_GZ_SHA256.items():
        assert hashlib.sha256((BUNDLED / name).read_bytes()).hexdigest() == digest, name


def test_licence_and_citations_ship_with_the_data():
    text = (BUNDLED / "LICENSE.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in text and "creativecommons.org/licenses/by/4.0" in text
    for cite in ("Becker, B. & Kohavi, R. (1996). Adult.", "Hofmann, H. (1994). Statlog (German Credit Data).",
                 "Wolberg, W. (1992). Breast Cancer Wisconsin (Original).", "10.24432/C5XW20",
                 "10.24432/C5NC77", "10.24432/C5HP4Z"):
        assert cite in text, cite


def test_package_data_lists_the_files():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import fnmatch
    import tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["bcml.datasets"]
    for p in list(BUNDLED.iterdir()):
        rel = "data/" + p.name
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), rel


@pytest.mark.parametrize("key", sorted(LOADERS))
def test_no_path_gives_what_the_original_files_give(key, tmp_path):
    need_path(SHARED_DATA / "adult.data")
    loader = LOADERS[key]
    bundled = loader(cache_dir=tmp_path / "empty-cache")  # nothing in the cache: the bundled copy
    original = loader(SHARED_DATA, cache_dir=tmp_path / "empty-cache")
    assert not (tmp_path / "empty-cache").exists()
    for f in ("X_train", "y_train", "X_test", "y_test", "X", "y", "train_index", "test_index"):
        a, b = getattr(bundled, f), getattr(original, f)
        assert a.dtype == b.dtype and np.array_equal(a, b), f
    for f in ("feature_names", "class_names", "description", "numeric_features", "categorical_groups", "name"):
        assert getattr(bundled, f) == getattr(original, f), f


def test_known_counts_of_the_bundled_adult(tmp_path):
    a = load_adult(cache_dir=tmp_path)
    # adult.names / the data README: 32,561 + 16,281 rows, 7,841 and 3,846 of them >50K
    assert a.X_train.shape == (32561, 108) and a.X_test.shape == (16281, 108)
    assert int(a.y_train.sum()) == 7841 and int(a.y_test.sum()) == 3846


def test_an_explicit_path_wins_and_does_not_fall_back_on_the_bundled_copy(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    lines = gzip.decompress((BUNDLED / "german.data.gz").read_bytes()).decode().splitlines(True)
    (folder / "german.data").write_text("".join(lines[:100]))
    assert len(load_german_credit(folder, cache_dir=tmp_path / "cache").y) == 100
    with pytest.raises(DatasetNotFoundError) as info:
        load_breast_cancer(folder, cache_dir=tmp_path / "cache")
    assert info.value.missing == ("breast-cancer-wisconsin.data",)


def test_a_file_in_the_cache_comes_before_the_bundled_copy(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    lines = gzip.decompress((BUNDLED / "breast-cancer-wisconsin.data.gz").read_bytes()).decode().splitlines(True)
    (cache / "breast-cancer-wisconsin.data").write_text("".join(lines[:50]))
    assert len(load_breast_cancer(cache_dir=cache).y) == 50


def _unused_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_still_fetches_the_originals(tmp_path):
    """download=True does not read the bundled copies: offline, it fails naming every missing file,
    and leaves no (empty) cache folder behind."""
    cache = tmp_path / "a" / "cache"
    base = "http://127.0.0.1:%d" % _unused_port()
    with pytest.raises(DownloadError) as info:
        load_adult(download=True, cache_dir=cache, base_url=base)
    e = info.value
    assert e.missing == ("adult.data", "adult.test")
    assert e.sources == (base + "/adult.data", base + "/adult.test")
    msg = str(e)
    assert "adult.data" in msg and "adult.test" in msg and str(cache / "adult.test") in msg
    cli = e.command_line_message("--data", "--download")
    assert "--data" in cli and "--download" in cli and "path=" not in cli and "download=True" not in cli
    assert "adult.data" in cli and "adult.test" in cli
    assert not (tmp_path / "a").exists()


def test_not_found_message_for_a_command_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_adult(empty, cache_dir=tmp_path / "cache")
    cli = info.value.command_line_message("--data", "--download")
    assert "cannot find adult.data, adult.test in %s" % empty in cli
    assert "--data FOLDER" in cli and "--download" in cli and "path=" not in cli and "download=True" not in cli

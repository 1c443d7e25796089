"""bcml.save / bcml.load: safetensors files, both ways against the safetensors package."""
import numpy as np
import pytest

import bcml
from bcml.models import MLPClassifier

from conftest import need


def test_roundtrip_module_state(tmp_path):
    bcml.manual_seed(0)
    m = MLPClassifier(7, 3, [5, 4])
    path = tmp_path / "m.safetensors"
    bcml.save(m.state_dict(), path)
    m2 = MLPClassifier(7, 3, [5, 4])
    m2.load_state_dict(bcml.load(path))
    for (k1, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k1 == k2
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_roundtrip_single_tensor_and_dtypes(tmp_path):
    t = bcml.arange(10).view(2, 5)
    bcml.save(t, tmp_path / "t.st")
    u = bcml.load(tmp_path / "t.st")
    assert u.dtype == bcml.int64 and u.tolist() == t.tolist()
    d = {"f": bcml.randn(3), "b": bcml.tensor([True, False])}
    bcml.save(d, tmp_path / "d.st")
    e = bcml.load(tmp_path / "d.st")
    assert e["b"].dtype == bcml.bool and e["b"].tolist() == [True, False]


def test_safetensors_package_reads_and_writes_our_format(tmp_path):
    st = need("safetensors")
    from safetensors.numpy import load_file, save_file
    bcml.manual_seed(1)
    m = MLPClassifier(4, 2, [3])
    bcml.save(m, tmp_path / "ours.safetensors")
    theirs = load_file(str(tmp_path / "ours.safetensors"))
    assert set(theirs) == set(m.state_dict())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(theirs[k], v.numpy())
    arrays = {"layers.0.weight": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
              "x": np.arange(4, dtype=np.int64)}
    save_file(arrays, str(tmp_path / "theirs.safetensors"))
    ours = bcml.load(tmp_path / "theirs.safetensors")
    for k, v in arrays.items():
        np.testing.assert_array_equal(ours[k].numpy(), v)
    assert st is not None


def test_pytorch_state_dict_maps_one_to_one(tmp_path, torch):
    need("safetensors")
    from safetensors.torch import load_file, save_file
    tm = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    save_file({"layers." + k: v.contiguous() for k, v in tm.state_dict().items()}, str(tmp_path / "t.st"))
    m = MLPClassifier(4, 2, [3])
    m.load_state_dict(bcml.load(tmp_path / "t.st"))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with bcml.no_grad():
        ours = m(bcml.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours, tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    bcml.save(m, tmp_path / "back.st")
    back = load_file(str(tmp_path / "back.st"))
    tm2 = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    tm2.load_state_dict({k[len("layers."):]: v for k, v in back.items()})
    np.testing.assert_allclose(tm2(torch.from_numpy(x)).detach().numpy(), ours, rtol=1e-5, atol=1e-6)


def test_truncated_and_corrupt_files_raise_valueerror(tmp_path):
    bcml.save({"w": bcml.randn(100)}, tmp_path / "ok.st")
    data = (tmp_path / "ok.st").read_bytes()
    for name, blob in [("short", data[:5]), ("truncated", data[:-10]), ("header", data[:8] + b"{not json" + data[17:]),
                       ("huge", (2 ** 60).to_bytes(8, "little") + data[8:])]:
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(ValueError, match=str(p.name)):
            bcml.load(p)
    with pytest.raises(FileNotFoundError):
        bcml.load(tmp_path / "missing.st")


def test_save_rejects_bad_objects(tmp_path):
    with pytest.raises(TypeError, match="obj"):
        bcml.save([1, 2], tmp_path / "x")
    with pytest.raises(TypeError, match="keys"):
        bcml.save({1: bcml.zeros(1)}, tmp_path / "x")


# ---- helpers: files crafted byte by byte --------------------------------------------------------
import inspect  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import struct  # noqa: E402


def st_file(path, header, data=b""):
    """Writes a safetensors file by hand: header a dict (JSON-encoded) or raw bytes."""
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + data)
    return path


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def header_of(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def refused(path, *words):
    """bcml.load(path) raises ValueError naming the file and saying each of words."""
    with pytest.raises(ValueError) as info:
        bcml.load(path)
    msg = str(info.value)
    assert path.name in msg, msg
    for w in words:
        assert re.search(w, msg), (w, msg)
    return msg


# ---- 0-d tensors (issue 9, part 3) -----------------------------------------------------------------
def test_zero_dim_tensors_keep_shape_empty(tmp_path):
    p = tmp_path / "z.st"
    bcml.save({"n": bcml.tensor(7), "x": bcml.tensor(2.5), "b": bcml.tensor(True),
               "np": np.array(3.0, dtype=np.float32)}, p)
    header, _ = header_of(p)
    assert {k: header[k]["shape"] for k in ("n", "x", "b", "np")} == {"n": [], "x": [], "b": [], "np": []}
    back = bcml.load(p)
    assert back["n"].shape == () and back["n"].item() == 7 and back["n"].dtype == bcml.int64
    assert back["x"].shape == () and back["x"].item() == 2.5
    assert back["b"].shape == () and back["b"].item() is True
    assert back["np"].shape == () and back["np"].item() == 3.0
    one = bcml.tensor(4)
    bcml.save(one, tmp_path / "one.st")
    assert bcml.load(tmp_path / "one.st").shape == ()


def test_files_with_shape_1_for_a_0d_entry_still_load(tmp_path):
    """Files written before the fix hold num_batches_tracked with shape [1]: PyTorch accepts a
    shape-(1,) value for a 0-d entry, and so does load_state_dict."""
    m = bcml.nn.BatchNorm1d(3)
    data = np.array([0.5, 1, 2], "<f4").tobytes() + np.array([1, 2, 3], "<f4").tobytes() + \
        np.array([7], "<i8").tobytes() + np.array([0, 0, 0], "<f4").tobytes() + np.array([4, 5, 6], "<f4").tobytes()
    header = {"bias": entry("F32", [3], 0, 12), "num_batches_tracked": entry("I64", [1], 24, 32),
              "running_mean": entry("F32", [3], 32, 44), "running_var": entry("F32", [3], 44, 56),
              "weight": entry("F32", [3], 12, 24)}
    p = st_file(tmp_path / "old.st", header, data[:12] + np.array([1, 2, 3], "<f4").tobytes() + data[24:])
    m.load_state_dict(bcml.load(p))
    assert m.num_batches_tracked.shape == () and m.num_batches_tracked.item() == 7
    np.testing.assert_array_equal(m.running_var.numpy(), [4, 5, 6])
    with pytest.raises(ValueError, match="size mismatch"):  # only (1,) is accepted for a 0-d entry
        m.load_state_dict(dict(bcml.load(p), num_batches_tracked=bcml.tensor([1, 2])))


# ---- every model of bcml.models round-trips ---------------------------------------------------------
def _model_classes():
    import bcml.models as M
    return sorted((c for _, c in inspect.getmembers(M, inspect.isclass)
                   if issubclass(c, bcml.nn.Module) and c.__module__ == M.__name__), key=lambda c: c.__name__)


# constructor arguments and input shape of every model; a model added to bcml.models without an
# entry here fails test_every_model_is_covered
MODEL_ARGS = {
    "LogisticRegression": ((6, 3), (2, 6)),
    "MLPClassifier": ((6, 3, [5, 4]), (2, 6)),
    "ConvNet": ((), (2, 1, 28, 28)),
    "SixLayerNet": ((), (2, 3, 32, 32)),
    "BasicBlock": (lambda: (4, 8, 2, bcml.nn.Sequential(bcml.nn.Conv2d(4, 8, 1, stride=2, bias=False),
                                                         bcml.nn.BatchNorm2d(8))), (2, 4, 8, 8)),
    "ResNet18": ((), (2, 3, 32, 32)),
}


def test_every_model_is_covered():
    names = [c.__name__ for c in _model_classes()]
    assert "ResNet18" in names and "LogisticRegression" in names
    assert sorted(names) == sorted(MODEL_ARGS), "add the new model's arguments to MODEL_ARGS"


def _torch_twin(name, torch):
    """An equivalent torch module with the same state-dict keys, or None."""
    nn = torch.nn
    if name == "LogisticRegression":
        class LR(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(6, 3)

            def forward(self, x):
                return self.linear(x)
        return LR()
    if name == "MLPClassifier":
        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))

            def forward(self, x):
                return self.layers(x)
        return MLP()
    import test_models_conv as C
    if name == "ConvNet":
        return C._torch_convnet(torch)
    if name == "SixLayerNet":
        return C._torch_sixlayer(torch)
    if name == "ResNet18":
        return C._torch_resnet18(torch)
    return None


def _run(model, x):
    model.eval()
    with bcml.no_grad():
        out = model(bcml.from_numpy(x))
    return (out[0] if isinstance(out, tuple) else out).numpy()


@pytest.mark.parametrize("cls", _model_classes(), ids=lambda c: c.__name__)
def test_every_model_roundtrips_through_bcml_safetensors_and_pytorch(cls, tmp_path, torch):
    need("safetensors")
    from safetensors.numpy import load_file as np_load
    from safetensors.torch import load_file as torch_load
    args, xshape = MODEL_ARGS[cls.__name__]
    bcml.manual_seed(3)
    args = args() if callable(args) else args  # built here: no draws from the generator at import
    m = cls(*args)
    if any(k.endswith("num_batches_tracked") for k in m.state_dict()):
        m.train()  # give the batch-norm statistics values other than their initial ones
        x0 = np.random.default_rng(0).standard_normal(xshape).astype(np.float32)
        with bcml.no_grad():
            m(bcml.from_numpy(x0))
            m(bcml.from_numpy(x0))
    sd = m.state_dict()
    p = tmp_path / "m.safetensors"
    bcml.save(m, p)

    def same(arrays, to_np):
        assert list(sorted(arrays)) == sorted(sd)
        for k, v in sd.items():
            a = to_np(arrays[k])
            ref = v.numpy()
            assert a.shape == ref.shape and a.dtype == ref.dtype, (k, a.shape, a.dtype, ref.shape, ref.dtype)
            np.testing.assert_array_equal(a, ref, err_msg=k)

    same(bcml.load(p), lambda t: t.numpy())
    same(np_load(str(p)), lambda a: a)
    theirs = torch_load(str(p))
    same(theirs, lambda t: t.numpy())
    if any(k.endswith("num_batches_tracked") for k in sd):
        k = next(k for k in sd if k.endswith("num_batches_tracked"))
        assert tuple(theirs[k].shape) == () and theirs[k].dtype == torch.int64 and int(theirs[k]) == 2
    x = np.random.default_rng(1).standard_normal(xshape).astype(np.float32)
    fresh = cls(*args)
    fresh.load_state_dict(bcml.load(p))
    np.testing.assert_array_equal(_run(fresh, x), _run(m, x))
    twin = _torch_twin(cls.__name__, torch)
    if twin is not None:
        twin.load_state_dict(theirs, strict=True)
        twin.eval()
        with torch.no_grad():
            out = twin(torch.from_numpy(x))
        out = (out[0] if isinstance(out, tuple) else out).numpy()
        np.testing.assert_allclose(out, _run(m, x), rtol=1e-3, atol=1e-4)
        # and back: PyTorch's weights through safetensors into bcml
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in twin.state_dict().items()}, str(tmp_path / "t.safetensors"))
        fresh2 = cls(*args)
        fresh2.load_state_dict(bcml.load(tmp_path / "t.safetensors"))
        np.testing.assert_array_equal(_run(fresh2, x), _run(m, x))


# ---- metadata ------------------------------------------------------------------------------------
def test_metadata_round_trip_and_the_safetensors_package_sees_it(tmp_path):
    need("safetensors")
    from safetensors import safe_open
    p = tmp_path / "m.st"
    meta = {"format": "pt", "note": "caf\u00e9 \u2603 \"quoted\" \\ \n", "": "empty key"}
    bcml.save({"w": bcml.ones(2)}, p, metadata=meta)
    tensors, got = bcml.load(p, return_metadata=True)
    assert got == meta and tensors["w"].tolist() == [1.0, 1.0]
    assert set(bcml.load(p)) == {"w"}  # the default still returns the tensors only
    with safe_open(str(p), framework="numpy") as f:
        assert f.metadata() == meta and list(f.keys()) == ["w"]
    bcml.save({"w": bcml.ones(2)}, p)
    assert bcml.load(p, return_metadata=True)[1] == {}
    t, m2 = bcml.load(p, return_metadata=True)
    assert m2 == {} and isinstance(t, dict)


def test_metadata_written_by_the_safetensors_package_is_read(tmp_path):
    need("safetensors")
    from safetensors.numpy import save_file
    save_file({"a": np.arange(3, dtype=np.int64)}, str(tmp_path / "s.st"), metadata={"k": "v", "x": "1"})
    t, meta = bcml.load(tmp_path / "s.st", return_metadata=True)
    assert meta == {"k": "v", "x": "1"} and t["a"].tolist() == [0, 1, 2]


def test_metadata_and_names_checked_on_save(tmp_path):
    p = tmp_path / "x.st"
    for bad in (["a"], "a=b", {"a": 1}, {1: "a"}, {"a": None}):
        with pytest.raises(TypeError, match="metadata"):
            bcml.save({"w": bcml.ones(1)}, p, metadata=bad)
    with pytest.raises(ValueError, match="__metadata__"):
        bcml.save({"__metadata__": bcml.ones(1), "w": bcml.ones(1)}, p)
    with pytest.raises(ValueError, match="bcml_type"):
        bcml.save({"w": bcml.ones(1)}, p, metadata={"bcml_type": "x"})
    assert not p.exists() and list(tmp_path.iterdir()) == []  # nothing written, no temporary left
    with pytest.raises(TypeError, match="return_metadata"):
        bcml.save({"w": bcml.ones(1)}, p) or bcml.load(p, return_metadata="yes")


def test_metadata_key_in_a_file_is_never_a_tensor(tmp_path):
    """A file whose __metadata__ is not a str->str object is refused, not half-read."""
    d = np.zeros(1, "<f4").tobytes()
    refused(st_file(tmp_path / "a.st", {"__metadata__": {"k": 1}, "w": entry("F32", [1], 0, 4)}, d),
            "__metadata__", "not a string")
    refused(st_file(tmp_path / "b.st", {"__metadata__": entry("F32", [1], 0, 4)}, d), "__metadata__")
    refused(st_file(tmp_path / "c.st", {"__metadata__": "x", "w": entry("F32", [1], 0, 4)}, d), "__metadata__")
    refused(st_file(tmp_path / "d.st", b'{"__metadata__":{"k":"v","k":"w"},"w":'
                    b'{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', d), "duplicate __metadata__ key 'k'")
    refused(st_file(tmp_path / "e.st", b'{"__metadata__":{},"__metadata__":{},"w":'
                    b'{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', d), "duplicate key '__metadata__'")


# ---- the format's rules, one by one -----------------------------------------------------------------
def test_rule_overlapping_ranges(tmp_path):
    h = {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}
    refused(st_file(tmp_path / "o.st", h, bytes(12)), "overlap", "'a'", "'b'")
    h = {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 0, 8)}  # the same range twice
    refused(st_file(tmp_path / "o2.st", h, bytes(8)), "overlap")
    h = {"a": entry("F32", [2], 0, 8), "e": entry("F32", [0], 4, 4)}  # an empty range inside another
    refused(st_file(tmp_path / "o3.st", h, bytes(8)), "overlap")


def test_rule_out_of_order_range(tmp_path):
    refused(st_file(tmp_path / "r.st", {"a": entry("F32", [1], 4, 0)}, bytes(4)), "out of order", "'a'")


def test_rule_ranges_may_come_in_any_header_order(tmp_path):
    """Entries are sorted by offset before the checks (as the reference implementation does), so
    a header listing them out of the data's order is valid."""
    data = np.array([1, 2], "<f4").tobytes() + np.array([3], "<i8").tobytes()
    p = st_file(tmp_path / "ok.st", {"z": entry("I64", [1], 8, 16), "a": entry("F32", [2], 0, 8),
                                     "e": entry("F32", [0, 5], 8, 8)}, data)
    t = bcml.load(p)
    assert list(t) == ["z", "a", "e"] and t["z"].tolist() == [3] and t["a"].tolist() == [1, 2]
    assert t["e"].shape == (0, 5)


def test_rule_holes_and_trailing_bytes(tmp_path):
    refused(st_file(tmp_path / "h.st", {"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)},
                    bytes(12)), "hole", r"\[4, 8\)")
    refused(st_file(tmp_path / "h0.st", {"a": entry("F32", [1], 4, 8)}, bytes(8)), "hole", r"\[0, 4\)")
    refused(st_file(tmp_path / "t.st", {"a": entry("F32", [1], 0, 4)}, bytes(5)), "1 trailing bytes")
    refused(st_file(tmp_path / "t0.st", {}, bytes(3)), "3 bytes", "no tensor")
    assert bcml.load(st_file(tmp_path / "empty.st", {})) == {}


def test_rule_ranges_inside_the_file(tmp_path):
    refused(st_file(tmp_path / "p.st", {"a": entry("F32", [2], 0, 8)}, bytes(4)), "beyond", "truncated")
    refused(st_file(tmp_path / "big.st", {"a": entry("U8", [1], 2 ** 64 - 2, 2 ** 64 - 1)}, bytes(1)),
            "data_offsets of tensor 'a' must hold non-negative integers below 2\\*\\*63")


def test_rule_range_size_matches_dtype_and_shape(tmp_path):
    refused(st_file(tmp_path / "s.st", {"a": entry("F32", [3], 0, 8)}, bytes(8)),
            "'a'", "8 bytes", "needs 12 bytes")
    refused(st_file(tmp_path / "s2.st", {"a": entry("F32", [2 ** 40, 2 ** 40], 0, 8)}, bytes(8)),
            "more than 2\\*\\*63-1 elements")
    refused(st_file(tmp_path / "s3.st", {"a": entry("F64", [2 ** 61], 0, 8)}, bytes(8)),
            "more than 2\\*\\*63-1 bytes")
    refused(st_file(tmp_path / "s4.st", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}},
                    bytes(8)), "2 integers")


def test_rule_duplicate_keys(tmp_path):
    d = bytes(8)
    refused(st_file(tmp_path / "d.st", b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                    b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', d), "duplicate tensor name 'a'")
    refused(st_file(tmp_path / "d2.st", b'{"a":{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}}', d),
            "duplicate key 'shape'")
    # the same name spelt with an escape is the same name
    refused(st_file(tmp_path / "d3.st", b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                    b'"\\u0061":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', d), "duplicate tensor name")


@pytest.mark.parametrize("shape,word", [([-1], "got '-1'"), ([1.5], "got '1.5'"), ([2.0], "got '2.0'"),
                                        ([1e2], "got '100.0'"), (["2"], "got a string"), ([True], "got a bool"),
                                        ([None], "got null"), ([2 ** 63], "got '9223372036854775808'"),
                                        ([[2]], "got a list"), (3, "must be a list"), ({"a": 1}, "must be a list")])
def test_rule_shapes_are_non_negative_integers(tmp_path, shape, word):
    refused(st_file(tmp_path / "s.st", {"a": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}, bytes(4)),
            "shape of tensor 'a' must", re.escape(word))


def test_rule_header_size_limit_and_start(tmp_path):
    refused(st_file(tmp_path / "n.st", b""), "start with '\\{'")
    (tmp_path / "big.st").write_bytes(struct.pack("<Q", 100_000_001) + b"{}")
    refused(tmp_path / "big.st", "100000001", "limit of 100000000")
    (tmp_path / "huge.st").write_bytes(struct.pack("<Q", 2 ** 64 - 1) + b"{}")
    refused(tmp_path / "huge.st", "limit")
    (tmp_path / "long.st").write_bytes(struct.pack("<Q", 50) + b"{}")
    refused(tmp_path / "long.st", "longer than the file")
    (tmp_path / "short.st").write_bytes(b"\x02\x00\x00")
    refused(tmp_path / "short.st", "3 bytes")
    refused(st_file(tmp_path / "sp.st", b' {"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"x"),
            "start with")
    refused(st_file(tmp_path / "arr.st", b"[]"), "start with")
    refused(st_file(tmp_path / "tr.st", b'{} x'), "trailing characters")
    refused(st_file(tmp_path / "tr2.st", b'{}{}'), "trailing characters")
    # padding with spaces (as writers align the data) is fine
    ok = st_file(tmp_path / "pad.st", b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}      ', b"\x05")
    assert bcml.load(ok)["a"].tolist() == [5]


@pytest.mark.parametrize("raw,word", [
    (b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},}', "expected a string"),
    (b'{"a" {"dtype":"U8"}}', "expected ':'"),
    (b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}', "expected ',' or '}'"),
    (b'{"\xff":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', "invalid UTF-8"),
    (b'{"\xc0\xaf":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', "invalid UTF-8"),  # overlong '/'
    (b'{"\xed\xa0\x80":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', "invalid UTF-8"),  # a surrogate
    (b'{"\\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', "surrogate"),
    (b'{"\\udc00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', "surrogate"),
    (b'{"a\x01":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', "control character"),
    (b'{"a\\x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', "bad escape"),
    (b'{"a":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}}', "expected ',' or ']'"),
    (b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":tru}}', "invalid value"),
    (b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1.}}', "invalid number"),
    (b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":NaN}}', "invalid value"),
])
def test_rule_strict_json(tmp_path, raw, word):
    refused(st_file(tmp_path / "j.st", raw, b"\x01"), word)


def test_rule_entries_need_dtype_shape_and_offsets(tmp_path):
    refused(st_file(tmp_path / "a.st", {"a": {"dtype": "U8", "shape": [0]}}), "'a' lacks 'data_offsets'")
    refused(st_file(tmp_path / "b.st", {"a": {"shape": [0], "data_offsets": [0, 0]}}), "lacks 'dtype'")
    refused(st_file(tmp_path / "c.st", {"a": [1]}), "tensor 'a' must be described by an object")
    refused(st_file(tmp_path / "d.st", {"a": {"dtype": 5, "shape": [0], "data_offsets": [0, 0]}}),
            "dtype of tensor 'a' must be a string")
    # unknown keys in an entry are skipped (as the reference implementation does)
    ok = st_file(tmp_path / "e.st", {"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1],
                                           "extra": {"x": 1, "y": "s", "z": None},
                                           "more": [1, -2.5e3, None, True, False, "s"]}}, b"\x09")
    assert bcml.load(ok)["a"].tolist() == [9]


@pytest.mark.parametrize("dtype", ["F8_E4M3", "F8_E5M2", "F4", "C64", "XYZ", "f32"])
def test_unsupported_dtypes_say_so(tmp_path, dtype):
    p = st_file(tmp_path / "u.st", {"a": entry(dtype, [1], 0, 1)}, b"\x00")
    msg = refused(p, "dtype '?%s'? is not supported" % dtype)
    assert "corrupt" not in msg


def test_nesting_deeper_than_the_format_is_a_valueerror_not_recursionerror(tmp_path):
    for depth in (4, 50, 100_000):
        extra = b"[" * (depth - 2) + b"]" * (depth - 2)
        raw = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":' + extra + b"}}"
        refused(st_file(tmp_path / ("n%d.st" % depth), raw, b"\x01"), "deeper than the format allows")
    deep_meta = b'{"__metadata__":{"k":' + b"{" * 100_000 + b"}"
    refused(st_file(tmp_path / "m.st", deep_meta), "__metadata__")
    # three levels (object, entry, list) are what the format needs, and pass
    raw = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":[]}}'
    assert bcml.load(st_file(tmp_path / "ok.st", raw, b"\x01"))["a"].tolist() == [1]


def test_rank_above_four_is_refused_by_name(tmp_path):
    refused(st_file(tmp_path / "r.st", {"a": entry("U8", [1, 1, 1, 1, 1], 0, 1)}, b"\x01"),
            "'a' has 5 dimensions", "at most 4")


# ---- dtype conversions --------------------------------------------------------------------------
_INT_CASES = {
    "U8": np.array([0, 1, 200, 255], "<u1"), "I8": np.array([-128, -1, 0, 127], "<i1"),
    "I16": np.array([-32768, -7, 300, 32767], "<i2"), "U16": np.array([0, 9, 40000, 65535], "<u2"),
    "I32": np.array([-2 ** 31, -5, 70000, 2 ** 31 - 1], "<i4"), "U32": np.array([0, 3, 2 ** 31, 2 ** 32 - 1], "<u4"),
    "I64": np.array([-2 ** 63, -1, 2 ** 53 + 1, 2 ** 63 - 1], "<i8"), "U64": np.array([0, 5, 2 ** 53 + 1, 2 ** 63 - 1], "<u8"),
}


@pytest.mark.parametrize("dtype", sorted(_INT_CASES))
def test_integer_dtypes_become_int64_exactly(tmp_path, dtype):
    a = _INT_CASES[dtype]
    t = bcml.load(st_file(tmp_path / "i.st", {"a": entry(dtype, [2, 2], 0, a.nbytes)}, a.tobytes()))["a"]
    assert t.dtype == bcml.int64 and t.shape == (2, 2)
    np.testing.assert_array_equal(t.numpy(), a.astype(np.int64).reshape(2, 2))
    assert t.numpy().tolist() == [[int(v) for v in a[:2]], [int(v) for v in a[2:]]]


def test_u64_above_int64_max_is_refused(tmp_path):
    a = np.array([1, 2 ** 63], "<u8")
    refused(st_file(tmp_path / "u.st", {"a": entry("U64", [2], 0, 16)}, a.tobytes()),
            "9223372036854775808", "int64 without overflow")


def test_float_dtypes_become_float32(tmp_path):
    f16 = np.array([0, -1.5, 65504, np.inf, -np.inf, 6e-8, np.nan], "<f2")
    t = bcml.load(st_file(tmp_path / "h.st", {"a": entry("F16", [7], 0, 14)}, f16.tobytes()))["a"]
    assert t.dtype == bcml.float32
    np.testing.assert_array_equal(t.numpy(), f16.astype(np.float32))
    f64 = np.array([0.1, -1e-300, 3.4028234663852886e38, np.inf, np.nan, 1 / 3, -2.5e10], "<f8")
    t = bcml.load(st_file(tmp_path / "d.st", {"a": entry("F64", [7], 0, 56)}, f64.tobytes()))["a"]
    np.testing.assert_array_equal(t.numpy(), f64.astype(np.float32))  # rounded to nearest, as NumPy does
    # bfloat16: the upper half of a float32; these values are exact in bfloat16
    ref = np.array([1.0, -2.5, 3.140625, 2.0 ** 100, -np.inf, np.nan, 0.0, -0.0], np.float32)
    bf16 = (ref.view(np.uint32) >> 16).astype("<u2")
    assert np.array_equal((bf16.astype(np.uint32) << 16).view(np.float32), ref, equal_nan=True)
    t = bcml.load(st_file(tmp_path / "b.st", {"a": entry("BF16", [2, 4], 0, 16)}, bf16.tobytes()))["a"]
    np.testing.assert_array_equal(t.numpy(), ref.reshape(2, 4))
    assert np.signbit(t.numpy()[1, 3])  # -0.0 stays -0.0


def test_f64_beyond_float32_range_is_refused(tmp_path):
    a = np.array([1.0, -1e39], "<f8")
    refused(st_file(tmp_path / "d.st", {"a": entry("F64", [2], 0, 16)}, a.tobytes()), "F64", "-1e\\+39",
            "float32's range")


def test_bool_and_u8_bytes(tmp_path):
    raw = bytes([0, 1, 2, 255])
    t = bcml.load(st_file(tmp_path / "b.st", {"b": entry("BOOL", [4], 0, 4), "u": entry("U8", [4], 4, 8)},
                          raw + raw))
    assert t["b"].dtype == bcml.bool and t["b"].tolist() == [False, True, True, True]
    assert t["b"].numpy().view(np.uint8).tolist() == [0, 1, 1, 1]  # normalised bytes
    assert t["u"].dtype == bcml.int64 and t["u"].tolist() == [0, 1, 2, 255]


def test_files_of_the_safetensors_package_read_back_in_every_dtype(tmp_path):
    need("safetensors")
    from safetensors.numpy import save_file
    rng = np.random.default_rng(5)
    arrays = {
        "bool": rng.integers(0, 2, (2, 3)).astype(bool), "u8": rng.integers(0, 256, 5).astype(np.uint8),
        "i8": rng.integers(-128, 128, 5).astype(np.int8), "i16": rng.integers(-3000, 3000, 5).astype(np.int16),
        "u16": rng.integers(0, 60000, 5).astype(np.uint16), "i32": rng.integers(-2 ** 31, 2 ** 31, 5).astype(np.int32),
        "u32": rng.integers(0, 2 ** 32, 5).astype(np.uint32), "i64": rng.integers(-2 ** 62, 2 ** 62, 5),
        "u64": rng.integers(0, 2 ** 63 - 1, 5).astype(np.uint64), "f16": rng.standard_normal(4).astype(np.float16),
        "f32": rng.standard_normal((2, 2, 2, 2)).astype(np.float32), "f64": rng.standard_normal(3),
        "scalar": np.array(1.25, np.float32), "empty": np.zeros((0, 4), np.float32),
    }
    save_file(arrays, str(tmp_path / "s.st"))
    ours = bcml.load(tmp_path / "s.st")
    assert set(ours) == set(arrays)
    for k, a in arrays.items():
        want = a != 0 if a.dtype == bool else a.astype(np.float32 if a.dtype.kind == "f" else np.int64)
        got = ours[k].numpy()
        assert got.shape == a.shape and got.dtype == want.dtype, k
        np.testing.assert_array_equal(got, want, err_msg=k)


def test_bfloat16_from_pytorch(tmp_path, torch):
    need("safetensors")
    from safetensors.torch import save_file
    t = torch.tensor([[1.0, -3.5], [1e20, 0.015625]], dtype=torch.bfloat16)
    save_file({"w": t}, str(tmp_path / "b.st"))
    got = bcml.load(tmp_path / "b.st")["w"]
    np.testing.assert_array_equal(got.numpy(), t.float().numpy())


def test_big_endian_is_never_written(tmp_path):
    f = np.array([1.5, -2.25, 3e-5], dtype=">f4")
    i = np.array([1, -2, 2 ** 40], dtype=">i8")
    p = tmp_path / "le.st"
    bcml.save({"f": f, "i": i, "t": bcml.tensor([0.5, 7.0])}, p)
    header, data = header_of(p)
    assert {k: v["dtype"] for k, v in header.items()} == {"f": "F32", "i": "I64", "t": "F32"}
    def block(k):
        a, b = header[k]["data_offsets"]
        return data[a:b]
    assert block("f") == struct.pack("<3f", 1.5, -2.25, np.float32(3e-5))
    assert block("i") == struct.pack("<3q", 1, -2, 2 ** 40)
    assert block("t") == struct.pack("<2f", 0.5, 7.0)
    back = bcml.load(p)
    np.testing.assert_array_equal(back["f"].numpy(), f.astype(np.float32))
    np.testing.assert_array_equal(back["i"].numpy(), i.astype(np.int64))


def test_fuzz_seed_corpus_behaves_as_named():
    """The libFuzzer seed corpus: valid_* files load, bad_* files raise ValueError."""
    import os
    d = os.path.join(os.path.dirname(__file__), "fuzz", "corpus", "safetensors")
    names = sorted(os.listdir(d))
    assert any(n.startswith("valid_") for n in names) and any(n.startswith("bad_") for n in names)
    for n in names:
        if n.startswith("valid_"):
            bcml.load(os.path.join(d, n))
        else:
            with pytest.raises(ValueError, match=re.escape(n)):
                bcml.load(os.path.join(d, n))

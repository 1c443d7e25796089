"""Drop-in for code written against BCML and PyTorch (issue 11, item 2): snippets written as
BCML's notebooks and docs write them, run with only their imports changed
(``backwardcompatibilityml`` -> ``bcml``, ``torch`` -> ``bcml``). Each test names the gap it
covers. The metrics BCML's users reach for beyond accuracy are checked against independent
NumPy float64 references (pairwise ROC AUC, per-class recall)."""
import numpy as np
import pytest

import bcml
import bcml.nn as nn
from bcml.data import DataLoader


def _pair(seed=0, classes=3, n=120):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] * 2 + rng.normal(size=n) > 0).astype(np.int64) if classes == 2 else \
        np.digitize(X[:, 0] + 0.5 * rng.normal(size=n), [-0.5, 0.5]).astype(np.int64)
    bcml.manual_seed(seed)
    h1 = bcml.models.LogisticRegression(4, classes)
    h2 = bcml.models.MLPClassifier(4, classes)
    return h1, h2, DataLoader(X, y, batch_size=32), X, y


def test_device_selection_as_pytorch_code_writes_it():
    # torch.cuda / torch.backends.cudnn, as the notebooks' first cells use them
    device = "cuda" if bcml.cuda.is_available() else "cpu"
    assert device == "cpu" and bcml.cuda.device_count() == 0
    bcml.backends.cudnn.enabled = False
    bcml.backends.cudnn.deterministic = True
    bcml.backends.cudnn.benchmark = False
    assert bcml.backends.cudnn.deterministic is True and not bcml.backends.cudnn.is_available()
    bcml.backends.cudnn.enabled, bcml.backends.cudnn.deterministic = True, False
    h1, h2, data, X, y = _pair()
    h1 = h1.to(device)  # the usual model.to(device) runs on the device picked
    assert bcml.metrics.model_accuracy(h1, data, device) >= 0.0


def test_loss_modules_under_bcmls_names():
    import bcml.loss as bcloss
    from bcml.loss.new_error import BCCrossEntropyLoss, BCNLLLoss  # noqa: F401
    from bcml.loss.strict_imitation import StrictImitationCrossEntropyLoss  # noqa: F401
    assert bcloss.new_error.BCCrossEntropyLoss is bcloss.BCCrossEntropyLoss
    assert bcloss.new_error.BCKLDivergenceLoss is bcloss.BCKLDivergenceLoss
    assert bcloss.strict_imitation.StrictImitationKLDivergenceLoss is bcloss.StrictImitationKLDivergenceLoss
    assert set(bcloss.new_error.__all__) | set(bcloss.strict_imitation.__all__) == set(bcloss.__all__)
    h1, h2, data, X, y = _pair()
    ids, x, t = next(iter(data))
    # the Adult notebooks' spelling: bcloss.new_error.BCCrossEntropyLoss
    loss = bcloss.new_error.BCCrossEntropyLoss(h1, h2, 0.5)(x, t)
    assert float(loss) == pytest.approx(float(bcloss.BCCrossEntropyLoss(h1, h2, 0.5)(x, t)), rel=1e-6)


def test_discriminant_pivot_spellings():
    from bcml.loss import BCBinaryCrossEntropyLoss
    h1 = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
    h2 = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
    for key in ("discriminant_pivot", "discriminan_pivot", "discriminant_pivit"):
        assert BCBinaryCrossEntropyLoss(h1, h2, 1.0, **{key: 0.7}).discriminant_pivot == pytest.approx(0.7)
    with pytest.raises(TypeError, match="not discriminant_pivot and discriminan_pivot"):
        BCBinaryCrossEntropyLoss(h1, h2, 1.0, discriminant_pivot=0.7, discriminan_pivot=0.6)
    with pytest.raises(ValueError, match="discriminant_pivot"):
        BCBinaryCrossEntropyLoss(h1, h2, 1.0, discriminan_pivot=float("nan"))


def test_performance_metric_none_means_accuracy(tmp_path):
    from bcml.helpers.training import (evaluate_model_performance_and_compatibility,
                                       evaluate_model_performance_and_compatibility_on_dataset)
    from bcml.metrics import model_accuracy
    from bcml.sweep_management import SweepManager
    h1, h2, data, X, y = _pair()
    a = evaluate_model_performance_and_compatibility_on_dataset(h1, h2, data, performance_metric=None)
    b = evaluate_model_performance_and_compatibility_on_dataset(h1, h2, data)
    assert a == b and a["h2_performance"] == model_accuracy(h2, data)
    both = evaluate_model_performance_and_compatibility(h1, h2, data, data, None)
    assert both["training"] == b == both["test"]
    m = SweepManager(str(tmp_path), 1, h1, h2, data, data, 32, 32, bcml.optim.SGD, {"lr": 0.1},
                     bcml.loss.BCCrossEntropyLoss, bcml.loss.StrictImitationCrossEntropyLoss, lambda_c_stepsize=1.0,
                     performance_metric=None, seed=0, n_jobs=1, progress=False)
    assert m.performance_metric is model_accuracy
    summary = m.start_sweep_synchronous()
    assert summary["performance_metric"] == "model_accuracy" and summary["h1_performance"] == model_accuracy(h1, data)


# ---- metrics beyond accuracy -----------------------------------------------------------------------
def _auc_pairwise(score, positive):
    pos, neg = score[positive], score[~positive]
    return ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)


def _probs(model, X):
    with bcml.no_grad():
        out = model(bcml.from_numpy(X))
    return np.asarray(out[1] if isinstance(out, tuple) else out, dtype=np.float64)


def test_roc_auc_against_pairwise_reference():
    from bcml.metrics import model_roc_auc
    # two classes: the softmax of class 1
    h1, h2, data, X, y = _pair(classes=2)
    assert model_roc_auc(h2, data) == pytest.approx(_auc_pairwise(_probs(h2, X)[:, 1], y == 1), abs=1e-12)
    # three classes: one-vs-rest, macro average
    h1, h2, data, X, y = _pair(classes=3)
    p = _probs(h1, X)
    want = np.mean([_auc_pairwise(p[:, c], y == c) for c in range(3)])
    assert model_roc_auc(h1, data) == pytest.approx(want, abs=1e-12)
    # a binary model (one probability per sample), with tied scores (counted as half)
    model = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
    Xt = np.repeat(X[:30], 2, axis=0)
    yt = np.tile([0, 1], 30)
    bin_data = [(bcml.from_numpy(Xt), bcml.from_numpy(yt.astype(np.int64)))]
    got = model_roc_auc(model, bin_data)
    assert got == pytest.approx(_auc_pairwise(_probs(model, Xt).reshape(-1), yt == 1), abs=1e-12)
    assert got == pytest.approx(0.5, abs=1e-12)  # every score appears once per class: all ties
    # hand-computed: scores perfectly ordered
    assert bcml.metrics._auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True])) == 1.0
    assert bcml.metrics._auc(np.array([0.9, 0.2, 0.8, 0.1]), np.array([False, False, True, True])) == 0.25
    with pytest.raises(ValueError, match="single class"):
        model_roc_auc(h1, [(bcml.from_numpy(X[:5]), bcml.tensor([1, 1, 1, 1, 1]))])


def test_balanced_accuracy_against_per_class_recall():
    from bcml.metrics import model_accuracy, model_balanced_accuracy
    h1, h2, data, X, y = _pair(classes=3)
    pred = _probs(h2, X).argmax(axis=1)
    want = np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)])
    assert model_balanced_accuracy(h2, data) == pytest.approx(want, abs=1e-12)
    # a class with no samples is left out, as scikit-learn does
    keep = y != 2
    sub = [(bcml.from_numpy(X[keep]), bcml.from_numpy(y[keep]))]
    want = np.mean([np.mean(pred[keep][y[keep] == c] == c) for c in (0, 1)])
    assert model_balanced_accuracy(h2, sub) == pytest.approx(want, abs=1e-12)
    # a constant model scores 1/C whatever the class balance (accuracy would be the majority share)
    const = nn.Sequential(nn.Linear(4, 3))
    with bcml.no_grad():
        const[0].weight.fill_(0.0)
        const[0].bias.copy_(bcml.tensor([0.0, 5.0, 0.0]))
    model = lambda x: (lambda z: (z, z.softmax(dim=1), z.log_softmax(dim=1)))(const(x))  # noqa: E731
    assert model_balanced_accuracy(model, data) == pytest.approx(1 / 3)
    assert model_accuracy(model, data) == pytest.approx(np.mean(y == 1))


def test_metrics_as_performance_metric_of_the_evaluation():
    from bcml.helpers.training import evaluate_model_performance_and_compatibility_on_dataset as evaluate
    from bcml.metrics import model_balanced_accuracy, model_roc_auc
    h1, h2, data, X, y = _pair(classes=2)
    for metric in (model_roc_auc, model_balanced_accuracy):
        ev = evaluate(h1, h2, data, performance_metric=metric)
        assert ev["h2_performance"] == metric(h2, data)


def test_bcmls_later_per_batch_helpers():
    """get_all_error_instance_indices, get_incompatible_instances_by_class,
    get_error_instance_ids_by_class and update_error_instances_by_class_dict, in the per-batch
    loop BCML's evaluation ran, against NumPy on the two models' predictions and against the
    data-set evaluation."""
    from bcml.helpers.training import (evaluate_model_performance_and_compatibility_on_dataset,
                                       get_all_error_instance_indices, get_error_instance_ids_by_class,
                                       get_incompatible_instances_by_class, update_error_instances_by_class_dict)
    h1, h2, data, X, y = _pair(classes=3)
    p1, p2 = _probs(h1, X).argmax(axis=1), _probs(h2, X).argmax(axis=1)
    all_errors, incompatible, h2_by_class = [], {}, {}
    for batch_ids, x, t in data:  # BCML's loop over (ids, x, y) batches
        errors = get_all_error_instance_indices(h1, h2, batch_ids, x, t, get_instance_metadata=lambda i: "id %d" % i)
        get_incompatible_instances_by_class(errors, batch_ids, t, incompatible)
        update_error_instances_by_class_dict(h2_by_class, get_error_instance_ids_by_class(h2, batch_ids, x, t))
        all_errors += errors
    wrong = np.flatnonzero((p1 != y) | (p2 != y))
    assert all_errors == [(int(i), "id %d" % i, int(p1[i]), int(p2[i]), int(y[i])) for i in wrong]
    want_incompatible = {c: np.flatnonzero((p1 == y) & (p2 != y) & (y == c)).tolist() for c in range(3)}
    assert incompatible == {c: v for c, v in want_incompatible.items() if v}
    assert h2_by_class == {c: np.flatnonzero((p2 != y) & (y == c)).tolist() for c in range(3)}
    ev = evaluate_model_performance_and_compatibility_on_dataset(h1, h2, data)
    assert {e["class"]: e["error_instance_ids"] for e in ev["h2_accuracy_by_class"]} == h2_by_class
    assert {e["class"]: e["incompatibleInstanceIds"] for e in ev["h2_incompatible_instance_ids_by_class"]
            if e["incompatibleInstanceIds"]} == incompatible
    # bad input names the argument
    ids, x, t = next(iter(data))
    with pytest.raises(ValueError, match="batch_ids does not hold"):
        get_incompatible_instances_by_class([(10 ** 6, "", 0, 1, 0)], ids, t, {})
    with pytest.raises(TypeError, match="class_incompatible_instance_ids"):
        get_incompatible_instances_by_class([], ids, t, [])
    with pytest.raises(ValueError, match="all_errors"):
        get_incompatible_instances_by_class([(1, 2)], ids, t, {})
    with pytest.raises(TypeError, match=r"new_error_instances_by_class_dict\[0\]"):
        update_error_instances_by_class_dict({}, {0: 5})
    with pytest.raises(TypeError, match="get_instance_metadata"):
        get_all_error_instance_indices(h1, h2, ids, x, t, get_instance_metadata=3)


def test_bcml_models_module_and_its_mlp_key_names(torch, tmp_path):
    """helpers.models under BCML's name, and an MLP state dict saved from BCML's MLPClassifier
    (layers registered as "layer-0", "layer-1", ...) loaded into bcml's, via a torch.save file."""
    import bcml.helpers.models as hm
    assert hm.MLPClassifier is bcml.models.MLPClassifier and hm.LogisticRegression is bcml.models.LogisticRegression

    class BCMLStyleMLP(torch.nn.Module):  # the layout of BCML's helpers/models.py, written here
        def __init__(self, sizes):
            super().__init__()
            self.layers = [torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
            for i, layer in enumerate(self.layers):
                self.add_module("layer-%d" % i, layer)

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i < len(self.layers) - 1:
                    x = torch.relu(x)
            return x

    torch.manual_seed(0)
    ref = BCMLStyleMLP([6, 50, 10, 3])
    assert sorted(ref.state_dict()) == ["layer-%d.%s" % (i, k) for i in range(3) for k in ("bias", "weight")]
    torch.save(ref.state_dict(), tmp_path / "mlp.pt")
    model = hm.MLPClassifier(6, 3)
    result = model.load_state_dict(bcml.load_torch_checkpoint(tmp_path / "mlp.pt"))
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    with bcml.no_grad():
        got = model(bcml.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # bcml's own keys still load; a BCML key that names no layer is refused like any unexpected key
    model.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="unexpected"):
        model.load_state_dict(dict(model.state_dict(), **{"layer-7.weight": np.zeros((3, 10), np.float32)}))


# ---- hooks (module hooks, BCML's memory helpers, NumPy interop) ----------------------------------
def test_log_mem_as_bcmls_docs_show_it():
    """BCML's helpers.utils.log_mem docstring: hook_handles, mem_log = log_mem(model, exp=...),
    then a training run, then remove_memory_hooks(hook_handles)."""
    import bcml.nn.functional as F
    import bcml.optim as optim
    from bcml.helpers.utils import log_mem, remove_memory_hooks
    _h1, model, data, _X, _y = _pair()
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    hook_handles, mem_log = log_mem(model, exp="memory-profiling-experiment")
    _ids, x, t = next(iter(data))   # ... then do a training run ... (one step here)
    optimizer.zero_grad()
    loss = F.nll_loss(model(x)[2], t)
    loss.backward()
    optimizer.step()
    remove_memory_hooks(hook_handles)
    n_modules = len(list(model.modules()))
    assert len(hook_handles) == 3 * n_modules
    assert len(mem_log) == 3 * n_modules   # pre, fwd and bwd of every module, once
    assert {k for e in mem_log for k in e} == {"layer_idx", "call_idx", "layer_type", "exp", "hook_type", "mem_all",
                                               "mem_cached"}
    assert [e["call_idx"] for e in mem_log] == list(range(len(mem_log)))
    assert [(e["layer_idx"], e["hook_type"]) for e in mem_log[:3]] == [(0, "pre"), (1, "pre"), (2, "pre")]
    assert [e["hook_type"] for e in mem_log[-n_modules:]] == ["bwd"] * n_modules
    assert mem_log[0]["layer_type"] == "MLPClassifier" and mem_log[0]["exp"] == "memory-profiling-experiment"
    assert all(e["mem_all"] > 0 and e["mem_cached"] > 0 for e in mem_log)
    model(next(iter(data))[1])[2].sum().backward()   # hooks removed: nothing more is logged
    assert len(mem_log) == 3 * n_modules
    # a second experiment in the same log starts its call_idx at 0
    handles, same = log_mem(model, mem_log)
    with bcml.no_grad():
        model(next(iter(data))[1])
    remove_memory_hooks(handles)
    assert same is mem_log and mem_log[3 * n_modules]["exp"] == "exp_%d" % (3 * n_modules)
    assert mem_log[3 * n_modules]["call_idx"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # PyTorch's own __array_wrap__ signature
def test_dev_app_get_instance_image_on_a_bcml_tensor(torch):
    """BCML's dev app (development/compatibility-analysis): np.transpose(tensor, (1, 2, 0)).numpy(),
    np.uint8 and np.reshape on a data set's image tensor, then a PNG; the same code on a PyTorch
    tensor gives the same pixels."""
    import io

    from PIL import Image

    img = np.random.default_rng(0).uniform(-1, 1, size=(1, 28, 28)).astype(np.float32)

    def unnormalize(img):
        img = img / 2 + 0.5
        return img

    def get_instance_image(dataset, instance_id):
        img_bytes = io.BytesIO()
        data = np.reshape(
            np.uint8(np.transpose((unnormalize(dataset[instance_id][1])), (1, 2, 0)).numpy() * 255),
            (28, 28))
        img = Image.fromarray(data)
        img.save(img_bytes, format="PNG")
        img_bytes.seek(0)
        return img_bytes.getvalue(), data

    png, pixels = get_instance_image([(0, bcml.from_numpy(img), 3)], 0)
    _, want = get_instance_image([(0, torch.from_numpy(img), 3)], 0)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(pixels, want)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), want)

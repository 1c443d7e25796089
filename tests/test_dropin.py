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
    # BCML's eight losses under its module names; bcml's positive-congruent losses (not BCML's) are not there
    assert set(bcloss.new_error.__all__) | set(bcloss.strict_imitation.__all__) == \
        set(bcloss.__all__) - {"FocalDistillationLoss", "LogitDifferenceInhibitionLoss"}
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


# ---- losslabels ---------------------------------------------------------------------------------
# BCML's notebooks' loss and scores cells (BCML examples/: bcbinary_cross_entropy, si_nllloss,
# si_cross_entropy_loss) with `torch` -> `bcml`, `backwardcompatibilityml` -> `bcml`. The data
# come from bcml.datasets (the binary notebook's Adult rows, as its cells lay them out: one float32
# target per row) or synthetic arrays (the MNIST notebooks' shapes), sizes scaled down.
def _loader_cell(training_set, batch_size_train):
    """The binary notebook's batching cell (its loop, written once for both sets there; as there,
    each batch holds batch_size - 1 rows)."""
    train_loader = []
    prev = 0
    for i in range((batch_size_train - 1), len(training_set), batch_size_train):
        training_data = list(map(lambda r: r[0], training_set[prev:i]))
        training_labels = list(map(lambda r: r[1], training_set[prev:i]))
        prev = i
        train_loader.append([bcml.stack(training_data, dim=0), bcml.stack(training_labels, dim=0)])
    return train_loader


def _train_update_cell(bc_loss, new_optimizer, train_loader_b, log_interval, update_train_losses):
    """The notebooks' train_update cell (one epoch, printing left out), as written there."""
    for batch_idx, (data, target) in enumerate(train_loader_b):
        new_optimizer.zero_grad()
        loss = bc_loss(data, target)
        loss.backward()
        new_optimizer.step()
        if batch_idx % log_interval == 0:
            update_train_losses.append(loss.item())


def test_bcbinary_cross_entropy_notebook_cells():
    import copy

    import bcml.loss as bcloss
    import bcml.nn.functional as F
    import bcml.optim as optim
    import bcml.scores as scores
    from bcml.datasets import load_adult
    from bcml.helpers import training, utils

    adult = load_adult()
    rows = [(bcml.tensor(x), bcml.tensor(np.argmax([1 - t, t]), dtype=bcml.float32))  # the notebook's
            for x, t in zip(adult.X[:3000], adult.y[:3000])]                           # float32 targets
    # ---- cells, as written
    data_rows_transformed = rows
    training_set = data_rows_transformed[:2400]
    testing_set = data_rows_transformed[2400:]
    n_epochs, batch_size_train, batch_size_test, learning_rate, momentum, log_interval = 3, 200, 600, 0.01, 0.5, 10
    bcml.backends.cudnn.enabled = False
    train_loader = _loader_cell(training_set, batch_size_train)
    test_loader = _loader_cell(testing_set, batch_size_test)
    train_loader_a = train_loader[:int(len(train_loader) / 2)]
    train_loader_b = train_loader[int(len(train_loader) / 2):]

    class LogisticRegression(nn.Module):
        def __init__(self, input_dim, output_dim):
            super(LogisticRegression, self).__init__()
            self.linear = nn.Linear(input_dim, output_dim)

        def forward(self, x):
            out = self.linear(x)
            out_sigmoid = F.sigmoid(out)
            return out_sigmoid

    bcml.manual_seed(456)
    network = LogisticRegression(adult.X.shape[1], 1)
    discriminant_pivot = 0.3
    optimizer = optim.SGD(network.parameters(), lr=learning_rate, momentum=momentum)
    # The notebook's own train cell calls F.binary_cross_entropy((B, 1) output, (B,) target), which
    # PyTorch 2 refuses; bcml's F is as strict. BCML's helper trains the same model on these batches.
    with pytest.raises(ValueError, match="target size"):
        F.binary_cross_entropy(network(train_loader_a[0][0]), train_loader_a[0][1])
    training.train(n_epochs, network, optimizer, F.binary_cross_entropy, train_loader_a, test_loader,
                   batch_size_train, batch_size_test)
    test_losses, corrects = [], []

    def test():
        network.eval()
        test_loss = 0
        correct = 0
        with bcml.no_grad():
            for data, target in test_loader:
                output_sigmoid = network(data)
                # .view(-1): the cell's (B, 1) vs (B,) call fails in PyTorch 2 as in bcml (see above)
                test_loss += F.binary_cross_entropy(output_sigmoid.view(-1), target, reduction="sum").item()
                pred = utils.sigmoid_to_labels(output_sigmoid, discriminant_pivot=discriminant_pivot)
                correct += pred.eq(target.data.view_as(pred)).sum()
        test_losses.append(test_loss)
        corrects.append(int(correct))

    test()
    h1 = copy.deepcopy(network)
    h2 = copy.deepcopy(network)
    h1.eval()
    new_optimizer = optim.SGD(h2.parameters(), lr=learning_rate, momentum=momentum)
    lambda_c = 0.5
    bc_loss = bcloss.BCBinaryCrossEntropyLoss(h1, h2, lambda_c, discriminant_pivot=discriminant_pivot)
    update_train_losses = []
    for epoch in range(1, n_epochs + 1):
        _train_update_cell(bc_loss, new_optimizer, train_loader_b, log_interval, update_train_losses)
    h2.eval()
    h1.eval()
    test_index = 0
    with bcml.no_grad():
        h1_output_sigmoid = h1(test_loader[test_index][0])
        h2_output_sigmoid = h2(test_loader[test_index][0])
    h1_labels = utils.sigmoid_to_labels(h1_output_sigmoid, discriminant_pivot=discriminant_pivot)
    h2_labels = utils.sigmoid_to_labels(h2_output_sigmoid, discriminant_pivot=discriminant_pivot)
    expected_labels = test_loader[test_index][1]
    trust_compatibility = scores.trust_compatibility_score(h1_labels, h2_labels, expected_labels)
    error_compatibility = scores.error_compatibility_score(h1_labels, h2_labels, expected_labels)
    # ---- checks against NumPy on the same predictions
    y = expected_labels.numpy().astype(np.int64)
    l1 = (h1_output_sigmoid.numpy().reshape(-1) >= 0.3).astype(np.int64)
    l2 = (h2_output_sigmoid.numpy().reshape(-1) >= 0.3).astype(np.int64)
    assert tuple(h1_labels.shape) == (599, 1) and expected_labels.dtype == bcml.float32
    assert trust_compatibility == np.sum((l1 == y) & (l2 == y)) / np.sum(l1 == y)
    assert error_compatibility == np.sum((l1 != y) & (l2 != y)) / np.sum(l2 != y)
    assert corrects[0] == np.sum(l1 == y) + sum(                          # the test cell's count
        int(np.sum((network(b[0]).numpy().reshape(-1) >= 0.3) == b[1].numpy())) for b in test_loader[1:])
    assert np.isfinite(update_train_losses).all() and np.isfinite(test_losses).all()
    # the documented dissonance on h1's correct samples, as BCML's forward computed it
    data, target = train_loader_b[0]
    with bcml.no_grad():
        h1_out = h1(data).numpy().reshape(-1)
    support = (h1_out >= 0.3) == (target.numpy() == 1)
    h2_support_output_sigmoid = h2(bcml.tensor(data.numpy()[support]))
    dissonance = bc_loss.dissonance(h2_support_output_sigmoid, bcml.tensor(target.numpy()[support]))
    assert dissonance.item() * support.sum() / len(support) == pytest.approx(
        bc_loss.dissonance_from_inputs(data, target).item(), rel=1e-5)


@pytest.mark.parametrize("loss_name", ["StrictImitationNLLLoss", "StrictImitationCrossEntropyLoss"])
def test_si_notebooks_loss_and_scores_cells(loss_name):
    import copy

    import bcml.loss as bcloss
    import bcml.nn.functional as F
    import bcml.optim as optim
    import bcml.scores as scores

    rng = np.random.default_rng(1)
    X = rng.normal(size=(256, 1, 28, 28)).astype(np.float32)
    Y = (X[:, 0, 10:18, 10:18].mean(axis=(1, 2)) * 40).astype(np.int64) % 10
    train_loader_b = [(bcml.tensor(X[i:i + 64]), bcml.tensor(Y[i:i + 64])) for i in range(0, 192, 64)]
    test_loader = [(bcml.tensor(X[192:]), bcml.tensor(Y[192:].astype(np.float32)))]  # float labels, as == allows
    batch_size_train, learning_rate, momentum, log_interval = 64, 0.01, 0.5, 10
    bcml.manual_seed(0)
    network = bcml.models.ConvNet()   # the MNIST notebooks' Net (the docs' ConvNet), same layers
    # ---- cells, as written
    h1 = copy.deepcopy(network)
    h2 = copy.deepcopy(network)
    h1.eval()
    new_optimizer = optim.SGD(h2.parameters(), lr=learning_rate, momentum=momentum)
    lambda_c = 1.0
    si_loss = getattr(bcloss, loss_name)(h1, h2, lambda_c)
    update_train_losses = []
    _train_update_cell(si_loss, new_optimizer, train_loader_b, log_interval, update_train_losses)
    h2.eval()                                             # the test_update cell's body
    test_loss, correct = 0, 0
    with bcml.no_grad():
        for data, target in test_loader:
            _, _, output = h2(data)
            # .long(): these float test labels; F.nll_loss takes class indices, in PyTorch too
            test_loss += F.nll_loss(output, target.long(), reduction="sum").item()
            pred = output.data.max(1, keepdim=True)[1]
            correct += pred.eq(target.data.view_as(pred)).sum()
    h2.eval()
    h1.eval()
    test_index = 0
    with bcml.no_grad():
        _, _, h1_output = h1(test_loader[test_index][0])
        _, _, h2_output = h2(test_loader[test_index][0])
    h1_labels = h1_output.data.max(1)[1]
    h2_labels = h2_output.data.max(1)[1]
    expected_labels = test_loader[test_index][1]
    trust_compatibility = scores.trust_compatibility_score(h1_labels, h2_labels, expected_labels)
    error_compatibility = scores.error_compatibility_score(h1_labels, h2_labels, expected_labels)
    # ---- checks against NumPy on the same predictions
    l1, l2, y = h1_output.numpy().argmax(1), h2_output.numpy().argmax(1), Y[192:]
    assert trust_compatibility == np.sum((l1 == y) & (l2 == y)) / np.sum(l1 == y)
    assert error_compatibility == np.sum((l1 != y) & (l2 != y)) / np.sum(l2 != y)
    assert int(correct) == np.sum(l2 == y) and np.isfinite(test_loss) and np.isfinite(update_train_losses).all()
    # BCML's documented strict-imitation dissonance arguments on the test batch
    with bcml.no_grad():
        z1, p1, lp1 = h1(test_loader[0][0])
        z2, p2, lp2 = h2(test_loader[0][0])
    d = si_loss.dissonance(lp1, lp2) if loss_name == "StrictImitationNLLLoss" else si_loss.dissonance(p1, z2)
    want = -(np.exp(lp1.numpy().astype(np.float64)) * lp2.numpy()).sum(1).mean()
    assert d.item() == pytest.approx(want, rel=1e-5)


# ---- bcml.vision and bcml.utils.data (issue 11, item 2: the vision helper's part) -----------------
# BCML's bcnllloss notebook (its si_* and bckldivergence notebooks share these cells), with only
# its imports changed: torch -> bcml, torchvision -> bcml.vision, backwardcompatibilityml -> bcml.
# The cells run on Fashion-MNIST's files standing in for MNIST's (same format), in a "datasets/"
# folder in torchvision's layout and, second, holding the IDX files directly (Debian's layout).
# The test shortens the data between cells (fewer batches), never the cells themselves.
_BCNLL_DATA_CELLS = '''
import bcml as torch
import bcml.vision as torchvision
import bcml.nn as nn
import bcml.nn.functional as F
import bcml.optim as optim
import random

import bcml.loss as bcloss
import bcml.scores as scores

random.seed(123)
torch.manual_seed(456)
torch.backends.cudnn.deterministic = True
torch.backends.cudnn.benchmark = False

n_epochs = 3
batch_size_train = 64
batch_size_test = 1000
learning_rate = 0.01
momentum = 0.5
log_interval = 10

torch.backends.cudnn.enabled = False

train_loader = list(torch.utils.data.DataLoader(
  torchvision.datasets.MNIST('datasets/', train=True, download=True,
                             transform=torchvision.transforms.Compose([
                               torchvision.transforms.ToTensor(),
                               torchvision.transforms.Normalize(
                                 (0.1307,), (0.3081,))
                             ])),
  batch_size=batch_size_train, shuffle=True))

test_loader = list(torch.utils.data.DataLoader(
  torchvision.datasets.MNIST('datasets/', train=False, download=True,
                             transform=torchvision.transforms.Compose([
                               torchvision.transforms.ToTensor(),
                               torchvision.transforms.Normalize(
                                 (0.1307,), (0.3081,))
                             ])),
  batch_size=batch_size_test, shuffle=True))

train_loader_a = train_loader[:int(len(train_loader)/2)]
train_loader_b = train_loader[int(len(train_loader)/2):]
'''

_BCNLL_MODEL_CELLS = '''
class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return x, F.softmax(x, dim=1), F.log_softmax(x, dim=1)

network = Net()
optimizer = optim.SGD(network.parameters(), lr=learning_rate, momentum=momentum)

train_losses = []
train_counter = []
test_losses = []
test_counter = [i*len(train_loader_a)*batch_size_train for i in range(n_epochs + 1)]

def train(epoch):
    network.train()
    for batch_idx, (data, target) in enumerate(train_loader_a):
        optimizer.zero_grad()
        _, _, output = network(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader_a)*batch_size_train,
                100. * batch_idx / len(train_loader_a), loss.item()))
            train_losses.append(loss.item())
            train_counter.append(
                (batch_idx*64) + ((epoch-1)*len(train_loader_a)*batch_size_train))

def test():
    network.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            _, _, output = network(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.data.max(1, keepdim=True)[1]
            correct += pred.eq(target.data.view_as(pred)).sum()
        test_loss /= len(train_loader_a)*batch_size_train
        test_losses.append(test_loss)
        print('\\nTest set: Avg. loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\\n'.format(
            test_loss, correct, len(train_loader_a)*batch_size_train,
            100. * correct / (len(train_loader_a)*batch_size_train)))

test()
for epoch in range(1, 2):
    train(epoch)
    test()

with torch.no_grad():
    _, _, output = network(test_loader[0][0])
'''


@pytest.mark.parametrize("layout", ["torchvision", "idx-files-in-root"])
def test_bcnllloss_notebook_data_cells(tmp_path, monkeypatch, capsys, layout):
    from conftest import FASHION_MNIST, need_path
    src = need_path(FASHION_MNIST)
    folder = tmp_path / "datasets" / ("MNIST/raw" if layout == "torchvision" else "")
    folder.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        (folder / f.name).symlink_to(f)
    monkeypatch.chdir(tmp_path)
    from bcml.datasets import _fetch
    monkeypatch.setattr(_fetch, "fetch", lambda *a, **k: pytest.fail("download=True downloaded files on disk"))
    ns = {}
    exec(compile(_BCNLL_DATA_CELLS, "bcnllloss-data-cells", "exec"), ns)
    train_loader, test_loader = ns["train_loader"], ns["test_loader"]
    assert len(train_loader) == 938 and len(test_loader) == 10
    x, y = train_loader[0]
    assert tuple(x.shape) == (64, 1, 28, 28) and tuple(y.shape) == (64,) and y.dtype == bcml.int64
    assert tuple(train_loader[-1][0].shape) == (32, 1, 28, 28)
    assert len(ns["train_loader_a"]) == 469 and len(ns["train_loader_b"]) == 469
    # every training image once, normalised as the notebook asks: against bcml.datasets' loader
    from bcml.datasets import load_fashion_mnist
    ref = load_fashion_mnist(src)
    ys = np.concatenate([b[1].numpy() for b in train_loader])
    assert np.array_equal(np.bincount(ys, minlength=10), np.bincount(ref.y_train, minlength=10))
    first = ref.X_train[np.flatnonzero(ref.y_train == int(y[0]))]
    want = (first - np.float32(0.1307)) / np.float32(0.3081)
    assert (np.abs(want - x.numpy()[0]).reshape(len(want), -1).max(axis=1) == 0).any()
    # the model and training cells, on fewer batches
    ns["train_loader_a"], ns["test_loader"] = ns["train_loader_a"][:12], ns["test_loader"][:1]
    exec(compile(_BCNLL_MODEL_CELLS, "bcnllloss-model-cells", "exec"), ns)
    out = capsys.readouterr().out
    assert out.count("Test set: Avg. loss") == 2 and "Train Epoch: 1 [640/768 (83%)]" in out
    import re
    assert len(re.findall(r"Accuracy: \d+/768 \(\d+%\)", out)) == 2, out
    assert tuple(ns["output"].shape) == (1000, 10)


# BCML's dev app (development/app.py, mnist_sweep): the data set of 1-sample batches it builds its
# (ids, x, y) batches from, with only imports changed; n_samples as the app sets it.
_DEV_APP_DATA = '''
import bcml as torch
import bcml.vision as torchvision

n_samples = 5000
batch_size_train = 64
batch_size_test = 1000
random_seed = 1
torch.backends.cudnn.enabled = False
torch.manual_seed(random_seed)
transform = torchvision.transforms.Compose([
                            torchvision.transforms.ToTensor(),
                            torchvision.transforms.Normalize(
                                (0.1307,), (0.3081,))])
download = not os.path.exists("examples/datasets/MNIST")
data_set = torchvision.datasets.MNIST('examples/datasets/', train=True, download=download,
                                      transform=transform)
data_loader = list(torch.utils.data.DataLoader(data_set, shuffle=True))

instance_ids = list(range(len(data_loader)))
dataset = []
for (instance_id, (data_instance, data_label)) in zip(instance_ids, data_loader):
    dataset.append([instance_id, data_instance.view(1, 28, 28), data_label.view(1)])

training_set = dataset[:int(0.8*n_samples)]
testing_set = dataset[int(0.8*n_samples):]

train_loader = []
prev = 0
for i in range((batch_size_train - 1), len(training_set), batch_size_train):
    batch_ids = list(map(lambda r: r[0], training_set[prev:i]))
    training_data = list(map(lambda r: r[1], training_set[prev:i]))
    training_labels = list(map(lambda r: r[2], training_set[prev:i]))
    prev = i
    train_loader.append([batch_ids, torch.stack(training_data, dim=0), torch.stack(training_labels, dim=0).view(len(training_labels))])
'''


def test_dev_app_mnist_data_preparation(tmp_path, monkeypatch):
    import os
    from conftest import FASHION_MNIST, need_path
    src = need_path(FASHION_MNIST)
    raw = tmp_path / "examples" / "datasets" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in src.iterdir():
        (raw / f.name).symlink_to(f)
    monkeypatch.chdir(tmp_path)
    ns = {"os": os}
    exec(compile(_DEV_APP_DATA, "dev-app-mnist-data", "exec"), ns)
    assert len(ns["data_loader"]) == 60000 and len(ns["dataset"]) == 60000
    ids, x, y = ns["train_loader"][0]
    assert ids == list(range(63)) and tuple(x.shape) == (63, 1, 28, 28) and tuple(y.shape) == (63,)
    # the helpers take the app's batches as they are
    from bcml.metrics import model_accuracy
    bcml.manual_seed(0)
    assert 0.0 <= model_accuracy(bcml.models.ConvNet(), ns["train_loader"][:3]) <= 1.0


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

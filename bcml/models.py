"""The example notebooks' models. Every classifier returns the triple
(logits, softmax(logits), log_softmax(logits)) of shape (B, C) (SPEC section 2); a model built
with one output returns the sigmoid probability of shape (B, 1) instead (a binary model)."""
import re

from . import _core, _values, nn
from .nn import functional as F


def _size(v, model, argname):
    """A layer size of a model: a positive int within int64 (TypeError / ValueError naming it)."""
    v = _values.index(v, model, argname)
    if v < 1:
        raise ValueError("%s(): argument '%s' must be a positive int, got %d" % (model, argname, v))
    return v


def _input(x, model, ndim, trailing=None):
    """The model's input x: a float32 tensor of ndim dimensions whose trailing sizes are
    `trailing` (None: any), named in the message otherwise."""
    if not isinstance(x, _core.TensorBase):
        raise TypeError("%s.forward(): argument 'x' must be a bcml tensor, not %s" % (model, type(x).__name__))
    if x._dtype_name != "float32":
        raise TypeError("%s.forward(): argument 'x' must be a float32 tensor, got %s" % (model, x._dtype_name))
    if x.ndim != ndim or (trailing is not None and tuple(x.shape)[1:] != tuple(trailing)):
        want = "(B, %s)" % ", ".join(str(t) for t in trailing) if trailing is not None else "%d-D" % ndim
        raise ValueError("%s.forward(): argument 'x' must have shape %s, got %s" % (model, want, tuple(x.shape)))
    return x


# ---- scikit-learn-style conveniences (issue 13, item 6) -----------------------------------------
def _features(X, fname):
    """X (a NumPy array, a list, a pandas object, a bcml or PyTorch tensor) as a C-contiguous
    float32 array of at least one row and one feature dimension, all finite."""
    import numpy as np
    from .metrics import _array
    a = _array(X, fname, "X")
    if a.dtype.kind not in "fiub":
        raise TypeError("%s(): argument 'X' must hold numbers, got dtype %s" % (fname, a.dtype))
    if a.ndim < 2:
        raise ValueError("%s(): argument 'X' must have a row per sample (at least 2-D), got shape %s"
                         % (fname, a.shape))
    if a.shape[0] == 0:
        raise ValueError("%s(): argument 'X' must hold at least one sample, got shape %s" % (fname, a.shape))
    _values.check_size(a.shape, 4, fname, "X", "float32")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError("%s(): argument 'X' must hold finite values (it holds NaN or infinity, or values "
                         "beyond float32's range)" % fname)
    return a


def _class_labels(y, n, fname, argname="y"):
    """y as an int64 array of n class indices (integral floats accepted)."""
    from .metrics import _labels_array
    import numpy as np
    a = _labels_array(y, fname, argname)
    if a.dtype.kind not in "iub":
        raise TypeError("%s(): argument '%s' must hold integer class indices 0..C-1, got dtype %s"
                        % (fname, argname, a.dtype))
    if n is not None and a.shape[0] != n:
        raise ValueError("%s(): arguments 'X' and '%s' must have the same number of samples, got %d and %d"
                         % (fname, argname, n, a.shape[0]))
    return a.astype(np.int64)


def _batch_size(v, fname, default):
    v = default if v is None else _values.index(v, fname, "batch_size")
    if v < 1:
        raise ValueError("%s(): argument 'batch_size' must be a positive int, got %d" % (fname, v))
    return v


def _validation_rows(y, fraction, seed):
    """The rows fit holds out for early stopping (sorted): ceil(fraction * N) of them, split
    among the classes in proportion to their counts (largest remainders first, then the
    lower class), each class's rows drawn in the order of numpy.random.default_rng(seed)
    .permutation(N)."""
    import math
    import numpy as np
    n = y.size
    n_val = min(n, int(math.ceil(fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    classes, counts = np.unique(y, return_counts=True)
    share = n_val * counts / n
    take = np.floor(share).astype(np.int64)
    extra = np.argsort(-(share - take), kind="stable")[:n_val - int(take.sum())]
    take[extra] += 1
    yp = y[perm]
    return np.sort(np.concatenate([perm[yp == c][:k] for c, k in zip(classes, take)]))


class ClassifierMixin:
    """scikit-learn's classifier methods for a bcml.nn.Module whose forward returns the triple
    (logits, softmax, log_softmax) of shape (B, C), or one sigmoid probability per sample (a
    binary model, (B,) or (B, 1)). Every model of bcml.models has them; mix it into your own
    module (``class Net(ClassifierMixin, nn.Module)``) to get them too.

    Classes are the indices 0..C-1 of the model's output (0 and 1 for a binary model); X is
    anything that holds numbers (a NumPy array, a list, a pandas DataFrame, a bcml or PyTorch
    tensor) of the shape the model's forward takes, converted to float32 once.
    """

    # ---- prediction --------------------------------------------------------------------------
    def _outputs(self, X, fname, batch_size):
        """The model's outputs over X (bcml._engine.Outputs), in eval mode under no_grad, in
        batches replayed in C after the first; every module's training flag is put back."""
        import numpy as np
        from . import _engine
        from .data import DataLoader
        x = _features(X, fname)
        bs = _batch_size(batch_size, fname, 256)
        loader = DataLoader(x, np.zeros(x.shape[0], np.int64), batch_size=bs)
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            outputs, _y, _ids = _engine.predict(self, _engine.Dataset("argument 'X'", loader=loader),
                                                "%s.%s()" % (type(self).__name__, fname.rsplit(".", 1)[-1]))
        finally:
            for m, t in modes:
                object.__setattr__(m, "training", t)
        return outputs

    def predict_proba(self, X, *, batch_size=256):
        """The predicted class probabilities of every sample of X: a float32 NumPy array (N, C),
        the softmax of the logits (for a binary model, the columns 1 - p and p). The model runs
        in eval mode under no_grad, ``batch_size`` samples at a time (the batches after the first
        replayed in C), and every module's training flag is restored afterwards."""
        import numpy as np
        out = self._outputs(X, "%s.predict_proba" % type(self).__name__, batch_size)
        if out.binary:
            p = out.parts[0].reshape(-1)
            return np.stack([1 - p, p], axis=1).astype(np.float32)
        return np.ascontiguousarray(out.parts[1], dtype=np.float32)

    def predict(self, X, *, batch_size=256):
        """The predicted class of every sample of X: an int64 NumPy array (N,), the argmax of
        the logits (for a binary model, probability >= 0.5). As predict_proba for the mode and
        batching."""
        return self._outputs(X, "%s.predict" % type(self).__name__, batch_size).labels()

    def score(self, X, y, sample_weight=None, *, batch_size=256):
        """The accuracy of predict(X) against the class indices y (a float), weighted by
        sample_weight when given, as scikit-learn's ``ClassifierMixin.score``."""
        import numpy as np
        fname = "%s.score" % type(self).__name__
        y = _class_labels(y, None, fname)
        w = None
        if sample_weight is not None:
            from .metrics import _weights
            w = _weights(sample_weight, y.shape[0], fname)
        pred = self.predict(X, batch_size=batch_size)
        if pred.shape[0] != y.shape[0]:
            raise ValueError("%s(): arguments 'X' and 'y' must have the same number of samples, got %d and %d"
                             % (fname, pred.shape[0], y.shape[0]))
        return float(np.average(pred == y, weights=w))


    # ---- training ----------------------------------------------------------------------------
    def _fit_optimizer(self, optimizer, lr, fname):
        from . import optim
        if lr is not None:
            lr = _values.setting(lr, fname, "lr", low=0.0, low_open=True)
        if optimizer is None or isinstance(optimizer, str):
            name = "adam" if optimizer is None else optimizer.lower()
            lr = 1e-3 if lr is None else lr
            if name == "adam":
                return optim.Adam(self.parameters(), lr=lr)
            if name == "sgd":
                return optim.SGD(self.parameters(), lr=lr, momentum=0.9, nesterov=True)
            raise ValueError("%s(): argument 'optimizer' must be 'adam', 'sgd', a bcml.optim optimizer or None, "
                             "got %r" % (fname, optimizer))
        if not isinstance(optimizer, optim.Optimizer):
            raise TypeError("%s(): argument 'optimizer' must be 'adam', 'sgd', a bcml.optim.Optimizer or None, not %s"
                            % (fname, type(optimizer).__name__))
        if lr is not None:
            raise ValueError("%s(): argument 'lr' applies to an optimizer given by name; set the learning rate of "
                             "the optimizer instance instead" % fname)
        mine = {id(q) for q in self.parameters()}
        if not any(id(q) in mine for g in optimizer.param_groups for q in g["params"]):
            raise ValueError("%s(): argument 'optimizer' does not hold any parameter of this model" % fname)
        return optimizer

    def fit(self, X, y, *, epochs=10, batch_size=200, optimizer=None, lr=None, early_stopping=False, tol=1e-4,
            patience=5, validation_fraction=0.1, seed=None):
        """Trains the model on (X, y) with the mean cross-entropy of its logits (NLL of its
        log_softmax; binary cross-entropy of a binary model's probability) and returns self,
        as scikit-learn's ``fit``. Training continues from the current weights (as
        scikit-learn's ``warm_start=True``; build a new model to start afresh).

        * ``y``: class indices 0..C-1 (C the model's output width; 0/1 for a binary model).
        * ``epochs``: the number of passes over the training rows (scikit-learn's max_iter;
          without early stopping all of them run: the training-loss plateau rule of
          scikit-learn's MLP is not applied).
        * ``batch_size``: rows per step (the last batch holds the rest).
        * ``optimizer``: None or "adam" (``bcml.optim.Adam(lr=1e-3)``, scikit-learn's MLP
          default), "sgd" (``bcml.optim.SGD(lr=1e-3, momentum=0.9, nesterov=True)``, its sgd
          defaults), or a bcml.optim optimizer holding the model's parameters (its state
          carries over between fit calls; a named one is new at every call). ``lr`` sets a
          named optimizer's learning rate.
        * ``seed``: an int >= 0 from which the shuffling (``bcml.data.DataLoader(...,
          shuffle=True, seed=seed)``), dropout (a ``bcml.Generator(seed)``; the default
          generator is left alone) and the validation split derive; None draws one from bcml's
          default generator (so ``bcml.manual_seed`` makes fit reproducible).
        * ``early_stopping``: hold out ``ceil(validation_fraction * N)`` rows, stratified by class
          (``numpy.random.default_rng(seed)``, every class contributing in proportion), score
          their accuracy after every epoch, and stop as scikit-learn's MLP does: an epoch whose
          score is below the best so far + ``tol`` counts as no improvement (any other resets the
          count), and training stops when the count exceeds ``patience`` (scikit-learn's
          n_iter_no_change), i.e. after patience + 1 such epochs in a row. The weights (and
          batch-norm statistics) of the best-scoring epoch are restored at the end, as
          scikit-learn's MLP restores its best coefficients.

        Each epoch runs through bcml's record-and-replay training (``bcml._engine.train_epoch``:
        the first step recorded, the others replayed in C). The same weights as this loop
        (with ``X_tr, y_tr`` all rows without early stopping)::

            loader = bcml.data.DataLoader(X_tr, y_tr, batch_size, shuffle=True, seed=seed)
            model.train()
            for epoch in range(epochs):
                for _ids, x, t in loader:
                    opt.zero_grad()
                    F.nll_loss(model(x)[2], t).backward()
                    opt.step()

        Afterwards: ``loss_curve_`` (mean training loss of every epoch), ``validation_scores_``
        (validation accuracy of every epoch, or None), ``best_validation_score_`` (or None),
        ``n_iter_`` (epochs run) and ``classes_`` (0..C-1). The modules' training flags are
        put back as they were."""
        import math
        import numpy as np
        from . import _engine
        from ._random import Generator, default_for_thread
        from .data import DataLoader, _default_seed
        fname = "%s.fit" % type(self).__name__
        x = _features(X, fname)
        yy = _class_labels(y, x.shape[0], fname)
        epochs = _values.index(epochs, fname, "epochs")
        if epochs < 1:
            raise ValueError("%s(): argument 'epochs' must be a positive int, got %d" % (fname, epochs))
        bs = _batch_size(batch_size, fname, 200)
        early_stopping = _values.flag(early_stopping, fname, "early_stopping")
        tol = _values.setting(tol, fname, "tol", low=0.0)
        patience = _values.index(patience, fname, "patience")
        if patience < 1:
            raise ValueError("%s(): argument 'patience' must be a positive int, got %d" % (fname, patience))
        fraction = _values.setting(validation_fraction, fname, "validation_fraction", 0.0, 1.0, True, True)
        if seed is not None:
            seed = _values.index(seed, fname, "seed") if not (_values.is_int(seed) and seed >= 2 ** 63) else int(seed)
            if not 0 <= seed < 2 ** 64:
                raise ValueError("%s(): argument 'seed' must be an int in [0, 2**64) or None, got %d" % (fname, seed))
        opt = self._fit_optimizer(optimizer, lr, fname)

        probe = self._outputs(x[:1], fname, 1)
        C = 2 if probe.binary else int(probe.parts[0].shape[1])
        if yy.min() < 0 or yy.max() >= C:
            bad = int(yy.min()) if yy.min() < 0 else int(yy.max())
            raise ValueError("%s(): argument 'y' must hold class indices in [0, %d) (the model's %s), got %d"
                             % (fname, C, "binary output" if probe.binary else "%d outputs" % C, bad))
        if seed is None:
            seed = _default_seed()
        if early_stopping:
            val = _validation_rows(yy, fraction, seed)
            if val.size < 2 or val.size >= yy.size:
                raise ValueError("%s(): with early_stopping=True, argument 'validation_fraction' (%r) leaves %d of %d samples for validation; "
                                 "at least 2 and at most N - 1 are needed" % (fname, fraction, val.size, yy.size))
            keep = np.ones(yy.size, bool)
            keep[val] = False
            x_tr, y_tr, x_val, y_val = x[keep], yy[keep], x[val], yy[val]
        else:
            x_tr, y_tr = x, yy
        loader = DataLoader(x_tr, y_tr, batch_size=bs, shuffle=True, seed=seed)
        data = _engine.Dataset("argument 'X'", loader=loader)
        sizes = np.minimum(bs, y_tr.size - bs * np.arange(len(loader))).astype(np.float64)
        binary = probe.binary

        def step(xb, yb, _h1):
            out = self(xb)
            if binary:
                return F.binary_cross_entropy(out.reshape(-1), yb.float())
            return F.nll_loss(out[2], yb)

        modes = [(m, m.training) for m in self.modules()]
        session = _engine.Session()
        self.loss_curve_, self.validation_scores_, self.best_validation_score_ = [], None, None
        self.n_iter_, self.classes_ = 0, np.arange(C)
        best, best_state, no_improvement = -math.inf, None, 0
        if early_stopping:
            self.validation_scores_ = []
        try:
            with default_for_thread(Generator(seed)):
                for _epoch in range(epochs):
                    self.train()
                    losses = _engine.train_epoch(step, data, opt, session=session)
                    self.n_iter_ += 1
                    self.loss_curve_.append(float(np.dot(losses, sizes) / sizes.sum()))
                    if not early_stopping:
                        continue
                    score = self.score(x_val, y_val, batch_size=max(bs, 256))
                    self.validation_scores_.append(score)
                    no_improvement = no_improvement + 1 if score < best + tol else 0
                    if score > best:
                        best = score
                        best_state = [(t, t.detach().numpy().copy()) for t in self._fit_state()]
                    if no_improvement > patience:
                        break
            if early_stopping:
                self.best_validation_score_ = best
                for t, a in best_state:
                    np.copyto(t.detach().numpy(), a)
        finally:
            for m, t in modes:
                object.__setattr__(m, "training", t)
        return self

    def _fit_state(self):
        """The tensors a training step changes: parameters and buffers (batch-norm statistics)."""
        return list(self.parameters()) + [b for b in self.buffers() if b is not None]


def _triple(logits):
    if logits.shape[-1] == 1:
        return F.sigmoid(logits)
    return logits, F.softmax(logits, dim=-1), F.log_softmax(logits, dim=-1)


class LogisticRegression(ClassifierMixin, nn.Module):
    """One Linear layer (input_dim -> output_dim)."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(_size(input_dim, "LogisticRegression", "input_dim"),
                                _size(output_dim, "LogisticRegression", "output_dim"))

    def forward(self, x):
        return _triple(self.linear(_input(x, "LogisticRegression", 2, (self.linear.in_features,))))


_BCML_MLP_KEY = re.compile(r"^layer-(\d+)\.")


class MLPClassifier(ClassifierMixin, nn.Module):
    """Linear layers of sizes input_size -> hidden_sizes... -> num_classes with ReLU between them.
    State-dict keys: layers.0.weight, layers.2.weight, ... (an nn.Sequential named `layers`)."""

    def __init__(self, input_size, num_classes, hidden_sizes=(50, 10)):
        super().__init__()
        if not isinstance(hidden_sizes, (tuple, list)):
            raise TypeError("MLPClassifier(): argument 'hidden_sizes' must be a tuple or list of layer sizes, not %s"
                            % type(hidden_sizes).__name__)
        sizes = ([_size(input_size, "MLPClassifier", "input_size")]
                 + [_size(h, "MLPClassifier", "hidden_sizes") for h in hidden_sizes]
                 + [_size(num_classes, "MLPClassifier", "num_classes")])
        mods = []
        for i in range(len(sizes) - 1):
            mods.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        self.layers = nn.Sequential(*mods)

    def load_state_dict(self, state_dict, strict=True):
        """As ``Module.load_state_dict``; BCML's key names (``layer-0.weight``, ``layer-1.bias``,
        ...: its i-th Linear layer) are accepted too and mapped to bcml's (``layers.0.weight``,
        ``layers.2.bias``, ...: the Linear layers sit at even positions, ReLU between them)."""
        import collections.abc
        if isinstance(state_dict, collections.abc.Mapping) and any(
                isinstance(k, str) and _BCML_MLP_KEY.match(k) for k in state_dict):
            state_dict = {(_BCML_MLP_KEY.sub(lambda m: "layers.%d." % (2 * int(m.group(1))), k)
                           if isinstance(k, str) else k): v for k, v in state_dict.items()}
        return super().load_state_dict(state_dict, strict)

    def forward(self, x):
        first = next(iter(self.layers._modules.values()))
        return _triple(self.layers(_input(x, "MLPClassifier", 2, (first.in_features,))))


class ConvNet(ClassifierMixin, nn.Module):
    """The MNIST network of BCML's documentation (input (N, 1, 28, 28)): conv 1->10 k5,
    max-pool 2, relu, conv 10->20 k5, dropout2d, max-pool 2, relu, view(-1, 320),
    fc 320->50, relu, dropout, fc 50->10. Keys: conv1, conv2, conv2_drop, fc1, fc2."""

    def __init__(self, num_classes=10):
        super().__init__()
        num_classes = _size(num_classes, "ConvNet", "num_classes")
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, num_classes)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(_input(x, "ConvNet", 4, (1, 28, 28))), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        return _triple(self.fc2(x))


class SixLayerNet(ClassifierMixin, nn.Module):
    """The CIFAR-10 network of BCML's documentation (input (N, 3, 32, 32)): conv 3->18 k3 p1,
    relu, view(-1, 18*32*32), fc 18432->192, three fc 192->192, fc 192->10, relu between.
    Keys: conv1, fc1 ... fc5."""

    def __init__(self, num_classes=10):
        super().__init__()
        num_classes = _size(num_classes, "SixLayerNet", "num_classes")
        self.conv1 = nn.Conv2d(3, 18, kernel_size=3, stride=1, padding=1)
        self.fc1 = nn.Linear(18 * 32 * 32, 192)
        self.fc2 = nn.Linear(192, 192)
        self.fc3 = nn.Linear(192, 192)
        self.fc4 = nn.Linear(192, 192)
        self.fc5 = nn.Linear(192, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(_input(x, "SixLayerNet", 4, (3, 32, 32))))
        x = x.view(-1, 18 * 32 * 32)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = F.relu(self.fc3(x))
        x = F.relu(self.fc4(x))
        return _triple(self.fc5(x))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: two 3x3 convolutions with batch norm, and a 1x1
    convolution + batch norm on the shortcut when the shape changes (key `downsample`)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        inplanes, planes = _size(inplanes, "BasicBlock", "inplanes"), _size(planes, "BasicBlock", "planes")
        stride = _size(stride, "BasicBlock", "stride")
        if downsample is not None and not isinstance(downsample, nn.Module):
            raise TypeError("BasicBlock(): argument 'downsample' must be a Module or None, not %s"
                            % type(downsample).__name__)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if downsample is not None:
            self.downsample = downsample
        else:
            self.downsample = None

    def forward(self, x):
        identity = x = _input(x, "BasicBlock", 4)
        if x.shape[1] != self.conv1.in_channels:
            raise ValueError("BasicBlock.forward(): argument 'x' must have %d channels (dim 1), got shape %s"
                             % (self.conv1.in_channels, tuple(x.shape)))
        fused = F._conv_bn_relu(x, self.conv1, self.bn1, True)  # eval mode, no gradient: one op
        out = self.relu(self.bn1(self.conv1(x))) if fused is None else fused
        fused = F._conv_bn_relu(out, self.conv2, self.bn2, False)
        out = self.bn2(self.conv2(out)) if fused is None else fused
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet18(ClassifierMixin, nn.Module):
    """ResNet-18 with torchvision's layout and state-dict key names (7x7 stride-2 stem without
    bias, batch norm, 3x3 stride-2 max-pool, BasicBlocks [2, 2, 2, 2] of 64/128/256/512 planes,
    adaptive average pool, fc), so torchvision weights load 1:1. Returns the triple."""

    def __init__(self, num_classes=10):
        super().__init__()
        num_classes = _size(num_classes, "ResNet18", "num_classes")
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(planes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = _input(x, "ResNet18", 4)
        if x.shape[1] != 3:
            raise ValueError("ResNet18.forward(): argument 'x' must be (B, 3, H, W) images, got shape %s"
                             % (tuple(x.shape),))
        fused = F._conv_bn_relu(x, self.conv1, self.bn1, True)  # eval mode, no gradient: one op
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))) if fused is None else fused)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return _triple(self.fc(x))

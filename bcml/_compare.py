"""bcml.compare: the compatibility report of any two models' predictions, by cohort, with
bootstrap intervals and McNemar's exact test; bcml.seed_baseline: the scores seed noise alone
gives. The report type is bcml.scores.CompatibilityReport (one type for both entry points).

Intervals: every score is a ratio of cells of a count table. Per class, a sample falls into one
of five disjoint cells (h1 right & h2 right, h1 right & h2 wrong, h1 wrong & h2 right, both
wrong with the same label, both wrong with different labels), so a per-sample bootstrap of n
samples draws the table from Multinomial(n, cells / n); bcml draws it that way in C
(``_core.bootstrap_tables``: K binomials per resample instead of n draws) and takes the
percentile interval of each score over the resamples. Each cohort's table is resampled on its
own (with its own size), the classes of the whole input jointly with the overall scores.
"""
import collections.abc
import itertools
import json
import math
import numbers

import numpy as np

from . import _core

SCORES = ("btc", "bec", "bec_h1", "nfr", "pfr", "nfi", "churn", "h1_accuracy", "h2_accuracy")
FLIP_MATRIX_MAX_CLASSES = 64    # (C, C, C) int64 cells: 2 MiB at most


# ---- argument checks ------------------------------------------------------------------------
def _to_numpy(x):
    """An ndarray of x (NumPy, lists, pandas Series, bcml or PyTorch tensors: duck typed)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # bcml / PyTorch tensors
        x = x.detach()
        if hasattr(x, "cpu"):
            x = x.cpu()
        return np.asarray(x.numpy())
    if hasattr(x, "to_numpy"):  # pandas
        return np.asarray(x.to_numpy())
    return np.asarray(x)


def _check_real(value, fname, arg, lo, hi, lo_open=False, hi_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s(): argument '%s' must be a float, not %s" % (fname, arg, type(value).__name__))
    v = float(value)
    if not (v > lo if lo_open else v >= lo) or not (v < hi if hi_open else v <= hi):
        raise ValueError("%s(): argument '%s' must lie in %s%g, %g%s, got %r"
                         % (fname, arg, "(" if lo_open else "[", lo, hi, ")" if hi_open else "]", value))
    return v


def _check_int(value, fname, arg, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError("%s(): argument '%s' must be an int, not %s" % (fname, arg, type(value).__name__))
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        raise ValueError("%s(): argument '%s' must be %s, got %d"
                         % (fname, arg, ">= %d" % lo if hi is None else "in [%d, %d]" % (lo, hi), v))
    return v


def _check_seed(seed, fname):
    if seed is None:
        return int(np.random.SeedSequence().entropy % (1 << 63))
    return _check_int(seed, fname, "seed", 0, (1 << 64) - 1)


def _groups(groups, n, fname):
    """[(name, index array)] from an array of labels or a dict name -> boolean mask."""
    if isinstance(groups, collections.abc.Mapping):
        out = []
        for name, mask in groups.items():
            if not isinstance(name, str):
                raise TypeError("%s(): argument 'groups' must map str names to boolean masks, got a %s name"
                                % (fname, type(name).__name__))
            try:
                m = _to_numpy(mask)
            except Exception as e:
                raise TypeError("%s(): argument 'groups': the mask of %r could not be read: %s" % (fname, name, e)) from None
            if m.dtype != np.bool_:
                raise TypeError("%s(): argument 'groups': the mask of %r must hold booleans, got %s"
                                % (fname, name, m.dtype))
            if m.ndim != 1 or m.shape[0] != n:
                raise ValueError("%s(): argument 'groups': the mask of %r must have shape (%d,) (one flag per "
                                 "sample), got %s" % (fname, name, n, m.shape))
            out.append((name, np.flatnonzero(m)))
        return out
    if isinstance(groups, (str, bytes, numbers.Number)):
        raise TypeError("%s(): argument 'groups' must be an array of group labels or a dict of name to boolean "
                        "mask, not %s" % (fname, type(groups).__name__))
    try:
        g = _to_numpy(groups)
    except Exception as e:
        raise TypeError("%s(): argument 'groups' could not be read as group labels: %s" % (fname, e)) from None
    if g.dtype.kind not in "biufUSO":
        raise TypeError("%s(): argument 'groups' must hold group labels (ints, strings), got %s" % (fname, g.dtype))
    if g.ndim != 1 or g.shape[0] != n:
        raise ValueError("%s(): argument 'groups' must have shape (%d,) (one label per sample), got %s"
                         % (fname, n, g.shape))
    if g.dtype.kind == "f" and not np.isfinite(g).all():
        raise ValueError("%s(): argument 'groups' holds a nan or infinite group label" % fname)
    try:
        labels, inverse = np.unique(g, return_inverse=True)
    except TypeError as e:
        raise ValueError("%s(): argument 'groups' holds labels that cannot be ordered: %s" % (fname, e)) from None
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse.reshape(-1), minlength=len(labels)))])
    return [(str(lab.item() if hasattr(lab, "item") else lab), order[bounds[k]:bounds[k + 1]])
            for k, lab in enumerate(labels)]


def _proba(p, n, C, fname, arg):
    """(n, C) float64 probabilities; a 1-D array is P(class 1) of a binary model."""
    if p is None:
        return None
    try:
        a = _to_numpy(p)
    except Exception as e:
        raise TypeError("%s(): argument '%s' could not be read as probabilities: %s" % (fname, arg, e)) from None
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError("%s(): argument '%s' must hold float probabilities, got %s" % (fname, arg, a.dtype))
    if a.ndim not in (1, 2) or a.shape[0] != n:
        raise ValueError("%s(): argument '%s' must have shape (%d, %d) (one row of class probabilities per "
                         "sample), got %s" % (fname, arg, n, C, a.shape))
    try:
        a = a.astype(np.float64)
    except MemoryError:
        raise MemoryError("%s(): argument '%s': out of memory converting %s probabilities to float64"
                          % (fname, arg, a.shape)) from None
    if a.ndim == 1:
        if C > 2:
            raise ValueError("%s(): argument '%s' is 1-D (P(class 1) of a binary model) but there are %d classes"
                             % (fname, arg, C))
        a = np.stack([1.0 - a, a], axis=1)
    if a.ndim != 2 or a.shape[0] != n or a.shape[1] < C:
        raise ValueError("%s(): argument '%s' must have shape (%d, %d) (one row of class probabilities per "
                         "sample), got %s" % (fname, arg, n, C, a.shape))
    if not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
        raise ValueError("%s(): argument '%s' must hold probabilities in [0, 1]" % (fname, arg))
    s = a.sum(axis=1)
    bad = np.flatnonzero(np.abs(s - 1.0) > 1e-3)
    if bad.size:
        raise ValueError("%s(): argument '%s': each row must sum to 1 (within 1e-3); row %d sums to %r"
                         % (fname, arg, bad[0], float(s[bad[0]])))
    return a


# ---- scores from cell tables ----------------------------------------------------------------
def _disjoint(table):
    """(..., 5) count table -> (..., 5) disjoint cells: RR, RW, WR, both wrong & same label,
    both wrong & different labels (DIFF counts RW, WR and the last)."""
    t = np.asarray(table, dtype=np.int64)
    d = t.copy()
    d[..., 3] = t[..., 3] - (t[..., 4] - t[..., 1] - t[..., 2])
    d[..., 4] = t[..., 4] - t[..., 1] - t[..., 2]
    return d


def _score_arrays(d):
    """Every score (nan where its denominator is 0) from disjoint cells d (..., 5), float64."""
    d = d.astype(np.float64)
    rr, rw, wr, ww = d[..., 0], d[..., 1], d[..., 2], d[..., 3] + d[..., 4]
    diff = rw + wr + d[..., 4]
    n = rr + rw + wr + ww
    with np.errstate(divide="ignore", invalid="ignore"):
        def ratio(a, b):
            return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)
        return {"btc": ratio(rr, rr + rw), "bec": ratio(ww, rw + ww), "bec_h1": ratio(ww, wr + ww),
                "nfr": ratio(rw, n), "pfr": ratio(wr, n), "nfi": ratio(rw, rw + ww), "churn": ratio(diff, n),
                "h1_accuracy": ratio(rr + rw, n), "h2_accuracy": ratio(rr + wr, n)}


def _intervals(draws, level):
    """{score: [lo, hi]} percentile intervals over the draws (axis 0) of disjoint tables."""
    s = _score_arrays(draws)
    a = (1.0 - level) / 2
    out = {}
    for k in SCORES:
        v = s[k]
        v = v[~np.isnan(v)]
        out[k] = [float("nan"), float("nan")] if v.size == 0 else \
            [float(np.quantile(v, a)), float(np.quantile(v, 1 - a))]
    return out


def mcnemar_exact(b, c):
    """Two-sided exact McNemar p-value for b and c discordant pairs: 2 P(X <= min(b, c)),
    X ~ Binomial(b + c, 1/2), capped at 1 (scipy.stats.binomtest(b, b + c).pvalue)."""
    b, c = int(b), int(c)
    m = b + c
    if m == 0:
        return 1.0
    k = min(b, c)
    if k * 2 == m:
        return 1.0
    if m <= 4096:  # exact integer arithmetic (one rounding at the end)
        tail, term = 0, 1
        for j in range(k + 1):
            tail += term
            term = term * (m - j) // (j + 1)
        return min(1.0, 2 * tail / (1 << m))  # int / int: correctly rounded
    # the terms C(m, j) / 2^m for j = k, k - 1, ...: each is the last times j / (m - j + 1) < 1,
    # so they fall at least as fast as a normal density of sd sqrt(m) / 2 around m / 2: after
    # 20 sqrt(m) terms (40 sd) the rest is below exp(-800) of the first
    L = min(k, int(20 * math.sqrt(m)) + 100)
    j = np.arange(k, k - L, -1, dtype=np.float64)  # the ratio from term j to term j - 1
    logt = np.concatenate([[0.0], np.cumsum(np.log(j / (m - j + 1)))])
    logk = math.lgamma(m + 1) - math.lgamma(k + 1) - math.lgamma(m - k + 1) - m * math.log(2.0)
    logp = logk + math.log(np.exp(logt).sum())
    return min(1.0, 2.0 * math.exp(logp))


# ---- the report's extension -----------------------------------------------------------------
def extend(report, table, h1, h2, y, fname, *, groups=None, min_group_size=30, ci=None, n_boot=1000,
           seed=None, h1_proba=None, h2_proba=None, ids=None, full=False):
    """Adds cohorts, intervals, McNemar's test and (full: bcml.compare) the flip matrix,
    probability scores and flip ids to a report built from table (C, 5). h1, h2, y: int64
    arrays (n,) (None when neither groups nor full need them)."""
    from .scores import _scores
    C = table.shape[0]
    n = int(report["n"])
    report["mcnemar_pvalue"] = mcnemar_exact(report["counts"]["h1_right_h2_wrong"],
                                             report["counts"]["h1_wrong_h2_right"])
    cohorts = []
    if groups is not None:
        for name, idx in _groups(groups, n, fname):
            if idx.size:
                t = _core.count_table(h1[idx], h2[idx], y[idx], C, name=fname)
            else:
                t = np.zeros((C, 5), np.int64)
            cohorts.append((name, idx, t))
    p1 = _proba(h1_proba, n, C, fname, "h1_proba") if full else None
    p2 = _proba(h2_proba, n, C, fname, "h2_proba") if full else None
    if full:
        report["flip_matrix"] = None if C > FLIP_MATRIX_MAX_CLASSES else \
            np.bincount((y * C + h1) * C + h2, minlength=C ** 3).reshape(C, C, C)
        _proba_scores(report, None, h1, h2, y, p1, p2)
        for entry in report["per_class"]:
            _proba_scores(entry, np.flatnonzero(y == entry["class"]), h1, h2, y, p1, p2)
        if ids is None:
            report["negative_flip_ids"] = report["positive_flip_ids"] = None
        else:
            try:
                ia = _to_numpy(ids)
            except Exception as e:
                raise (TypeError if isinstance(e, TypeError) else ValueError)(
                    "%s(): argument 'ids' could not be read as an array of ids: %s" % (fname, e)) from None
            if ia.ndim != 1 or ia.shape[0] != n:
                raise ValueError("%s(): argument 'ids' must have shape (%d,) (one id per sample), got %s"
                                 % (fname, n, ia.shape))
            r1, r2 = h1 == y, h2 == y
            report["negative_flip_ids"] = ia[r1 & ~r2].tolist()
            report["positive_flip_ids"] = ia[~r1 & r2].tolist()
    if groups is not None:
        per_group = []
        for name, idx, t in cohorts:
            tot = [int(v) for v in t.sum(axis=0)]
            entry = {"group": name, "n": sum(tot[:4])}
            entry.update(_scores(tot, float("nan"), "group %s" % name, []))
            entry["counts"] = dict(zip(("h1_right_h2_right", "h1_right_h2_wrong", "h1_wrong_h2_right",
                                        "both_wrong", "h1_ne_h2"), tot))
            entry["btc_drop"] = 1.0 - entry["btc"]
            entry["mcnemar_pvalue"] = mcnemar_exact(tot[1], tot[2])
            entry["ranked"] = entry["n"] >= min_group_size
            if full:
                _proba_scores(entry, idx, h1, h2, y, p1, p2)
            per_group.append(entry)
        report["per_group"] = per_group
        report["min_group_size"] = min_group_size
    if ci is not None:
        seed = _check_seed(seed, fname)
        tabs = [_disjoint(table).reshape(-1)] + [_disjoint(t).reshape(-1) for _, _, t in cohorts]
        draws = _core.bootstrap_tables(np.stack(tabs), n_boot, seed, name=fname)  # (S, n_boot, C * 5)
        d0 = draws[0].reshape(n_boot, C, 5)
        report["ci"] = _intervals(d0.sum(axis=1), ci)
        for c, entry in enumerate(report["per_class"]):
            entry["ci"] = _intervals(d0[:, c], ci)
        for s, entry in enumerate(report.get("per_group", ())):
            entry["ci"] = _intervals(draws[s + 1].reshape(n_boot, C, 5).sum(axis=1), ci)
            lo, hi = entry["ci"]["btc"]
            entry["ci"]["btc_drop"] = [1.0 - hi, 1.0 - lo]
        report["ci_settings"] = {"level": ci, "n_boot": n_boot, "seed": seed}
    if groups is not None:
        ranked = [e for e in report["per_group"] if e["ranked"]]
        ranked.sort(key=lambda e: (-_nan_low(e["nfr"]), -_nan_low(e["btc_drop"]), e["group"]))
        report["ranking"] = [e["group"] for e in ranked]
    return report


def _nan_low(v):
    return -math.inf if v is None or math.isnan(v) else v


def _proba_scores(entry, idx, h1, h2, y, p1, p2):
    """prob_churn (mean total-variation distance between the two predicted distributions) and
    the mean confidences on the regressed samples (h1 right, h2 wrong): h2's probability of its
    own (wrong) label, h1's probability of its (right) label. None without the probabilities,
    nan without samples."""
    sel = slice(None) if idx is None else idx
    if p1 is not None and p2 is not None:
        a, b = p1[sel], p2[sel]
        entry["prob_churn"] = float(0.5 * np.abs(a - b).sum(axis=1).mean()) if len(a) else float("nan")
    else:
        entry["prob_churn"] = None
    hh1, hh2, yy = h1[sel], h2[sel], y[sel]
    reg = np.flatnonzero((hh1 == yy) & (hh2 != yy))
    for key, p, h in (("regressed_h2_confidence", p2, hh2), ("regressed_h1_confidence", p1, hh1)):
        if p is None:
            entry[key] = None
        else:
            ps = p[sel]
            entry[key] = float(ps[reg, h[reg]].mean()) if reg.size else float("nan")


# ---- bcml.compare ---------------------------------------------------------------------------
_RENAME = (("h1_labels", "h1_pred"), ("h2_labels", "h2_pred"))


def _renamed(e):
    msg = str(e)
    for a, b in _RENAME:
        msg = msg.replace(a, b)
    return type(e)(msg)


def compare(h1_pred, h2_pred, y, *, h1_proba=None, h2_proba=None, groups=None, class_names=None, ids=None,
            num_classes=None, min_group_size=30, ci=0.95, n_boot=1000, seed=None, zero_division=float("nan")):
    """The compatibility report of two models' predictions (any model's: arrays, lists, pandas
    Series, bcml/NumPy/PyTorch tensors).

    Returns the :class:`~bcml.scores.CompatibilityReport` of :func:`~bcml.scores.compatibility_report`
    with, beyond its keys: ``mcnemar_pvalue``; ``flip_matrix`` ((C, C, C) counts indexed
    [true class, h1 label, h2 label], None above 64 classes); ``prob_churn``,
    ``regressed_h2_confidence``, ``regressed_h1_confidence`` (overall, per class and per group;
    None without both / the needed probabilities); ``negative_flip_ids`` /
    ``positive_flip_ids`` (the ``ids`` of those samples, None without ids); with ``groups``:
    ``per_group``, ``ranking``, ``min_group_size``; with ``ci`` (default 0.95; None for
    none): ``ci`` ({score: [lo, hi]}, also in every per_class / per_group entry) and
    ``ci_settings`` ({level, n_boot, seed}). ``seed=None`` draws a fresh seed (recorded in
    ci_settings).
    """
    fname = "compare"
    from . import scores
    min_group_size = _check_int(min_group_size, fname, "min_group_size", 0)
    if ci is not None:
        ci = _check_real(ci, fname, "ci", 0.0, 1.0, lo_open=True, hi_open=True)
    n_boot = _check_int(n_boot, fname, "n_boot", 1, 1 << 24)
    if seed is not None:
        seed = _check_seed(seed, fname)
    arrs = []
    for arg, v in (("h1_pred", h1_pred), ("h2_pred", h2_pred), ("y", y)):
        try:
            arrs.append(_to_numpy(v))
        except Exception as e:
            raise TypeError("%s(): argument '%s' could not be read as labels: %s" % (fname, arg, e)) from None
    try:
        table, names, zd = scores._table(arrs[0], arrs[1], arrs[2], num_classes, class_names,
                                         zero_division, fname)
    except (TypeError, ValueError) as e:
        raise _renamed(e) from None
    if num_classes is None and class_names is None:  # classes no label shows: from the probabilities
        k = max((p.shape[1] for p in (h1_proba, h2_proba) if getattr(p, "ndim", 0) == 2
                 and isinstance(p.shape[1], int)), default=0)
        if table.shape[0] < k <= (1 << 16):
            table = np.concatenate([table, np.zeros((k - table.shape[0], table.shape[1]), table.dtype)])
    report = scores._report_from_table(table, names, zd, fname)
    h1, h2, yy = (a.reshape(-1).astype(np.int64) for a in arrs)
    extend(report, table, h1, h2, yy, fname, groups=groups, min_group_size=min_group_size, ci=ci,
           n_boot=n_boot, seed=seed, h1_proba=h1_proba, h2_proba=h2_proba, ids=ids, full=True)
    # the per-sample labels, for ModelComparison.from_report (an attribute: not a key, not exported)
    report._labels = (h1, h2, yy, None if ids is None else _to_numpy(ids).reshape(-1))
    return report


def widget_evaluation(l1, l2, y, ids, C, get_instance_metadata=None):
    """The dict the model-comparison widget shows (the keys of
    helpers.training.evaluate_model_performance_and_compatibility_on_dataset) from labels;
    h2_performance is h2's accuracy."""
    from . import scores
    from .helpers import training as T
    if ids is None:
        ids = np.arange(len(y))
    table = _core.count_table(l1, l2, y, C, name="ModelComparison")
    tot = table.sum(axis=0)
    return T._evaluation(l1, l2, y, ids, C, table, float(tot[0] + tot[2]) / len(y),
                         scores._ratio(int(tot[0]), int(tot[0] + tot[1]), 0.0, "", ""),
                         scores._ratio(int(tot[3]), int(tot[1] + tot[3]), 0.0, "", ""), get_instance_metadata)


# ---- bcml.seed_baseline ---------------------------------------------------------------------
def _predictions(out, X, fname):
    """Labels from what train_fn returned: predictions, a bcml model (called on X: the triple
    (logits, softmax, log_softmax) or logits, whose argmax is the label; one sigmoid output:
    label 1 at 0.5 and above, as bcml labels a binary model), or an object with predict(X)."""
    if hasattr(out, "predict") and callable(out.predict):
        out = out.predict(X)
    elif callable(out):
        from . import no_grad
        from ._tensor import from_numpy
        from .nn.modules import Module
        if isinstance(out, Module) and not isinstance(X, _core.TensorBase):
            # a bcml model takes a float32 tensor: X as one (as the model's own inputs are)
            X = from_numpy(np.ascontiguousarray(_to_numpy(X), dtype=np.float32))
        with no_grad():
            out = out(X)
        if isinstance(out, tuple):
            out = out[0]
        a = _to_numpy(out)
        if a.dtype.kind == "f" and (a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)):
            return (a.reshape(-1) >= 0.5).astype(np.int64)   # one sigmoid output per sample, as bcml labels it
    a = _to_numpy(out)
    if a.ndim == 2 and a.shape[1] > 1:
        a = a.argmax(axis=1)
    return a.reshape(-1)


def seed_baseline(train_fn, X, y, seeds=(0, 1, 2, 3, 4)):
    """The BTC / BEC / NFR (and the other scores) that seed noise alone produces.

    ``train_fn(seed)`` returns a trained model (a bcml model called on X, giving logits or the
    (logits, softmax, log_softmax) triple, labelled by argmax, or one sigmoid output, labelled
    by >= 0.5; or any object with ``predict(X)``) or its predictions on X (labels, or scores of
    shape (n, C) labelled by argmax). Every ordered pair of seeds (s, t), s != t, is scored as h1 = model s, h2 = model t.
    Returns a dict: ``seeds``, ``pairs`` (one dict per pair: h1_seed, h2_seed and every
    score) and, per score, ``{"mean", "min", "max"}`` over the pairs.
    """
    fname = "seed_baseline"
    if not callable(train_fn):
        raise TypeError("%s(): argument 'train_fn' must be a callable train_fn(seed), not %s"
                        % (fname, type(train_fn).__name__))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, collections.abc.Iterable):
        raise TypeError("%s(): argument 'seeds' must be a sequence of ints, not %s" % (fname, type(seeds).__name__))
    try:
        seeds = list(seeds)
    except TypeError as e:
        raise TypeError("%s(): argument 'seeds' must be a sequence of ints: %s" % (fname, e)) from None
    seeds = [_check_int(s, fname, "seeds", 0, (1 << 63) - 1) for s in seeds]
    if len(seeds) < 2:
        raise ValueError("%s(): argument 'seeds' needs at least 2 seeds, got %d" % (fname, len(seeds)))
    if len(set(seeds)) != len(seeds):
        raise ValueError("%s(): argument 'seeds' holds a seed twice" % fname)
    try:
        ya = _to_numpy(y)
    except Exception as e:
        raise TypeError("%s(): argument 'y' could not be read as labels: %s" % (fname, e)) from None
    preds = {}
    for s in seeds:
        try:
            preds[s] = _predictions(train_fn(s), X, fname)
        except (TypeError, ValueError) as e:
            raise type(e)("%s(): train_fn(%d) (or its model on X) failed: %s" % (fname, s, e)) from e
    pairs = []
    from .scores import _scores
    for s, t in itertools.permutations(seeds, 2):
        try:
            tab = _core.count_table(preds[s], preds[t], ya, None, name=fname)
        except (TypeError, ValueError) as e:
            msg = str(e).replace("h1_labels", "the predictions of train_fn(%d)" % s) \
                        .replace("h2_labels", "the predictions of train_fn(%d)" % t)
            raise type(e)(msg) from None
        tot = [int(v) for v in tab.sum(axis=0)]
        entry = {"h1_seed": s, "h2_seed": t}
        entry.update(_scores(tot, float("nan"), "", []))
        pairs.append(entry)
    out = {"seeds": seeds, "pairs": pairs}
    for k in SCORES:
        v = np.array([p[k] for p in pairs], dtype=np.float64)
        v = v[~np.isnan(v)]
        out[k] = {"mean": float(v.mean()) if v.size else float("nan"),
                  "min": float(v.min()) if v.size else float("nan"),
                  "max": float(v.max()) if v.size else float("nan")}
    return out


# ---- serialisation --------------------------------------------------------------------------
def plain(obj, nan=float("nan")):
    """obj with NumPy values as Python ones (arrays as nested lists), nan replaced by nan."""
    if isinstance(obj, dict):
        return {str(k): plain(v, nan) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, nan) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist(), nan)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return nan
    return obj


def to_json(report, indent):
    return json.dumps(plain(report, None), indent=indent, allow_nan=False)

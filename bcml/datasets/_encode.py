"""Turning parsed text columns into a float32 design matrix.

The whole encoding is fitted on one set of rows (the training part) and
applied to every row, so the training and test parts always have the same
columns in the same order:

* numeric attribute -> one column. Missing entries (``?`` or empty) are
  replaced by the median of the non-missing training values (0 when the
  training part has none); then, when ``standardize`` is true, the column
  becomes ``(value - mean) / std`` with the mean and population standard
  deviation (ddof=0) of the imputed training values (a std of 0 is
  replaced by 1).
* categorical attribute -> one 0/1 column per category, named
  ``"attribute=category"``. The categories are the distinct values in the
  vocabulary rows, sorted, followed by :data:`MISSING` (column
  ``"attribute=<missing>"``) when a missing value (``?`` or empty) occurs
  in those rows. A value outside the vocabulary (a category only seen in
  the test part) encodes as all zeros.

Columns come in the order of the attributes, a categorical attribute's
one-hot columns side by side where the attribute was.
"""

import math

import numpy as np

__all__ = ["MISSING", "encode", "train_test_split"]

#: Category name given to missing values (``?`` or empty fields).
MISSING = "<missing>"

_MISSING_TOKENS = ("?", "")


def _parse_numeric(raw, name):
    raw = np.asarray(raw, dtype=str)
    missing = np.isin(raw, _MISSING_TOKENS)
    try:
        values = np.where(missing, "nan", raw).astype(np.float64)
    except ValueError as exc:
        raise ValueError("column {!r} holds a non-numeric value: {}".format(name, exc)) from exc
    return values, missing


def encode(columns, fit_rows, vocab_rows=None, standardize=True):
    """Encode text columns into a float32 matrix.

    Parameters
    ----------
    columns : list of (name, kind, values)
        ``kind`` is ``"numeric"`` or ``"categorical"``; ``values`` is a
        sequence of strings, one per row (all columns the same length).
    fit_rows : int64 array
        Rows whose statistics (median, mean, std) are used.
    vocab_rows : int64 array or None
        Rows that fix the categories; ``fit_rows`` when None.
    standardize : bool
        Standardise numeric columns (see module docstring).

    Returns
    -------
    X : float32 array (n_rows, n_features)
    feature_names : tuple of str
    numeric_features : tuple of int
        Indices of the numeric columns.
    categorical_groups : dict
        Attribute name -> tuple of the indices of its one-hot columns.
    """
    if vocab_rows is None:
        vocab_rows = fit_rows
    blocks, names, numeric, groups = [], [], [], {}
    width = 0
    for name, kind, values in columns:
        if kind == "numeric":
            x, missing = _parse_numeric(values, name)
            train = x[fit_rows]
            train = train[~missing[fit_rows]]
            fill = float(np.median(train)) if train.size else 0.0
            x[missing] = fill
            if standardize:
                train = x[fit_rows]
                mean = float(train.mean()) if train.size else 0.0
                std = float(train.std()) if train.size else 1.0
                x = (x - mean) / (std if std > 0 else 1.0)
            blocks.append(x[:, None])
            names.append(name)
            numeric.append(width)
            width += 1
        elif kind == "categorical":
            raw = np.asarray(values, dtype=str)
            raw = np.where(np.isin(raw, _MISSING_TOKENS), MISSING, raw)
            seen = set(raw[vocab_rows].tolist())
            cats = sorted(seen - {MISSING}) + ([MISSING] if MISSING in seen else [])
            index = {c: i for i, c in enumerate(cats)}
            codes = np.fromiter((index.get(v, -1) for v in raw.tolist()),
                                dtype=np.int64, count=raw.shape[0])
            onehot = np.zeros((raw.shape[0], len(cats)), dtype=np.float64)
            known = codes >= 0
            onehot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(onehot)
            names.extend("{}={}".format(name, c) for c in cats)
            groups[name] = tuple(range(width, width + len(cats)))
            width += len(cats)
        else:
            raise ValueError("kind must be 'numeric' or 'categorical', got {!r}".format(kind))
    n_rows = len(columns[0][2]) if columns else 0
    X = np.concatenate(blocks, axis=1) if blocks else np.zeros((n_rows, 0))
    return X.astype(np.float32), tuple(names), tuple(numeric), groups


def train_test_split(n_samples, test_size=0.2, seed=0):
    """Deterministic split of ``range(n_samples)`` into train and test rows.

    The rows are permuted with ``numpy.random.Generator(PCG64(seed))``;
    the first ``n_test`` of the permutation are the test rows, the rest the
    training rows, and each part is returned sorted (file order). ``n_test``
    is ``ceil(test_size * n_samples)`` for a float ``test_size`` in
    [0, 1), or ``test_size`` itself for an int. The same arguments always
    give the same split, whatever the NumPy version (PCG64 and
    ``Generator.permutation`` are stable).

    Returns ``(train_index, test_index)``, two int64 arrays.
    """
    n_samples = _as_int(n_samples, "n_samples")
    if n_samples < 0:
        raise ValueError("n_samples must be >= 0, got {}".format(n_samples))
    from .._values import check_size
    check_size((n_samples,), 8, "train_test_split", "n_samples", "int64")  # the permutation it draws
    check_split_args(test_size, seed)
    if isinstance(test_size, bool):
        raise TypeError("test_size must be a float in [0, 1) or an int, got a bool")
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
    elif isinstance(test_size, (float, np.floating)):
        if not 0.0 <= float(test_size) < 1.0:  # NaN too
            raise ValueError("test_size must be in [0, 1) when a float, got {}".format(test_size))
        n_test = int(math.ceil(float(test_size) * n_samples))
    else:
        raise TypeError("test_size must be a float in [0, 1) or an int, got {}".format(
            type(test_size).__name__))
    if not 0 <= n_test < n_samples:
        raise ValueError("test_size={} leaves no training rows out of {} (or is negative)".format(
            test_size, n_samples))
    seed = _as_int(seed, "seed")
    if not 0 <= seed < 2 ** 64:
        raise ValueError("seed must be an int in [0, 2**64), got {}".format(seed))
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n_samples)
    return np.sort(perm[n_test:]).astype(np.int64), np.sort(perm[:n_test]).astype(np.int64)


def check_split_args(test_size, seed):
    """test_size (a float in [0, 1) or a non-negative int) and seed (an int in [0, 2**64)),
    checked before a loader reads its file."""
    if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer, float, np.floating)):
        raise TypeError("test_size must be a float in [0, 1) or an int, got {}".format(type(test_size).__name__))
    if isinstance(test_size, (float, np.floating)) and not 0.0 <= float(test_size) < 1.0:
        raise ValueError("test_size must be in [0, 1) when a float, got {}".format(test_size))
    if isinstance(test_size, (int, np.integer)) and test_size < 0:
        raise ValueError("test_size must be >= 0 when an int, got {}".format(test_size))
    seed = _as_int(seed, "seed")
    if not 0 <= seed < 2 ** 64:
        raise ValueError("seed must be an int in [0, 2**64), got {}".format(seed))


def _as_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError("{} must be an int, got {}".format(name, type(value).__name__))
    return int(value)

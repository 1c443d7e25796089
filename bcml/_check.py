"""``bcml check``: a CI gate on two models' predictions (issue 13, item 4).

    bcml check --h1 h1.csv --h2 h2.csv --labels y.csv [--groups g.csv] [--min-btc 0.97]
               [--max-nfr 0.02] [--min-bec 0.5] [--ci 0.95] [--json out.json]
               [--min-group-size 30] [--n-boot 1000] [--seed 0]

(also ``python -m bcml check ...``). It prints :func:`bcml.compare`'s report and one verdict per
threshold, overall and, with ``--groups``, for every cohort of at least ``--min-group-size`` rows.

Exit status: 0 when every threshold holds, 1 when one is crossed, 2 on unreadable or mismatched
input (the message on stderr names the file and the problem).

A threshold is crossed by the point estimate (``--min-btc 0.97``: BTC < 0.97; ``--max-nfr``:
NFR > the threshold; equality passes); with ``--ci LEVEL`` only when the whole bootstrap
interval lies beyond it (BTC's upper end < 0.97, NFR's lower end > the threshold). A score that
is undefined (no denominator: BTC where h1 is never right, BEC where h2 makes no error) has
nothing to regress and does not fail the gate; its verdict reads "undefined".

Inputs, each ``FILE`` or ``FILE:COLUMN`` (COLUMN: a name, or a 0-based position):
- ``.npy``: a 1-D array (labels), a 2-D array (a column of labels with COLUMN; without it, a
  predictions file's rows of class probabilities), or a structured array (COLUMN by field name).
- ``.csv``: the first row is a header when one of its cells does not parse as a number; else it
  is data (so a CSV of class-name labels needs a header row). A column is chosen by its header
  name or its position; without COLUMN the file must have one column, or (for --h1 / --h2) one
  column per class of probabilities.
- ``.parquet``: needs pyarrow; columns as in a CSV (by name or position).
Labels may be ints (class indices) or strings (class names): when any input holds a name, every
label is read as a name (ints too: "3") and the classes are the sorted names of all inputs.
Probabilities give h1's / h2's labels by their argmax and are passed to bcml.compare (the report
then has the probability scores); their columns are the classes in order, or, with class names,
the columns' header names. ``--groups`` holds one cohort label (any text) per row.

``--json PATH`` writes the report's ``to_dict()`` (nan as null) plus the key ``gate``:
``{"passed": bool, "exit_status": 0 or 1, "ci": level or null, "min_group_size": int,
"thresholds": {"min_btc": v, "max_nfr": v, "min_bec": v} (the ones given), "failures": int,
"checks": [{"scope": "overall" | "cohort", "name": "overall" | cohort name, "n": rows,
"score": "btc" | "nfr" | "bec", "kind": "min" | "max", "threshold": v, "value": point estimate
or null, "interval": [lo, hi] or null (with --ci), "verdict": "pass" | "fail" | "undefined"}]}``.
"""
import argparse
import csv
import json
import math
import os
import re
import sys
import warnings

import numpy as np


class InputError(Exception):
    """Unreadable or mismatched input: exit status 2, the message on stderr."""


#: (option, report key, kind): the gate's thresholds
THRESHOLDS = (("min_btc", "btc", "min"), ("max_nfr", "nfr", "max"), ("min_bec", "bec", "min"))


def _prog():
    return "bcml" if os.path.basename(sys.argv[0] or "") == "bcml" else "python -m bcml"


def _level(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number in (0, 1), got %r" % text) from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError("must lie in (0, 1), got %r" % text)
    return v


def _fraction(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number in [0, 1], got %r" % text) from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("must lie in [0, 1], got %r" % text)
    return v


def _count(lo, hi):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("must be an int, got %r" % text) from None
        if v < lo or v > hi:
            raise argparse.ArgumentTypeError("must lie in [%d, %d], got %d" % (lo, hi, v))
        return v
    return parse


def parser(prog=None):
    p = argparse.ArgumentParser(
        prog=(prog or _prog()) + " check",
        description="A CI gate: the compatibility report of two models' predictions, and exit status 1 when "
                    "a threshold is crossed (2 on unreadable or mismatched input).",
        epilog="Inputs are FILE or FILE:COLUMN (a column name or 0-based position) of .npy, .csv or .parquet "
               "(pyarrow) files. A CSV's first row is a header when one of its cells is not a number. Labels "
               "are ints or class names; --h1/--h2 may also be rows of class probabilities (argmax).")
    p.add_argument("--h1", required=True, metavar="FILE[:COLUMN]", help="the old model's predictions")
    p.add_argument("--h2", required=True, metavar="FILE[:COLUMN]", help="the new model's predictions")
    p.add_argument("--labels", required=True, metavar="FILE[:COLUMN]", help="the true labels")
    p.add_argument("--groups", metavar="FILE[:COLUMN]", help="one cohort label per row: gate every cohort too")
    p.add_argument("--min-btc", type=_fraction, metavar="V", help="fail when BTC < V")
    p.add_argument("--max-nfr", type=_fraction, metavar="V", help="fail when NFR > V")
    p.add_argument("--min-bec", type=_fraction, metavar="V", help="fail when BEC < V")
    p.add_argument("--ci", type=_level, nargs="?", const=0.95, metavar="LEVEL",
                   help="bootstrap intervals at LEVEL (0.95 without a value): fail only when the whole "
                        "interval lies beyond a threshold")
    p.add_argument("--min-group-size", type=_count(0, 2 ** 62), default=30, metavar="N",
                   help="gate (and rank) only cohorts of at least N rows (default 30)")
    p.add_argument("--n-boot", type=_count(1, 1 << 24), default=1000, metavar="N",
                   help="bootstrap resamples with --ci (default 1000)")
    p.add_argument("--seed", type=_count(0, (1 << 64) - 1), default=0, metavar="S",
                   help="the bootstrap's seed (default 0: the same files give the same intervals)")
    p.add_argument("--json", metavar="PATH", help="also write the report and the verdicts as JSON")
    return p


# ---- reading ----------------------------------------------------------------------------------
def _split_spec(spec):
    """(path, column or None) of FILE[:COLUMN]; an existing file's name may contain ':'."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, col = spec.rsplit(":", 1)
    if not path:
        raise InputError("%s: no file name before ':'" % spec)
    if col == "":
        raise InputError("%s: no column after ':'" % spec)
    return path, col


def _column_index(col, names, ncols, where):
    """The 0-based index of col (a name among names, or a position) in a table of ncols columns."""
    if names is not None and col in names:
        if names.count(col) > 1:
            raise InputError("%s: the column name %r appears %d times in the header" % (where, col, names.count(col)))
        return names.index(col)
    try:
        k = int(col)
    except ValueError:
        if names is None:
            raise InputError("%s: no column named %r (the file has no header row; name the column by its "
                             "0-based position)" % (where, col)) from None
        raise InputError("%s: no column named %r (columns: %s)" % (where, col, ", ".join(map(repr, names)))) from None
    if not 0 <= k < ncols:
        raise InputError("%s: column %d is out of range (the file has %d column%s: positions 0 to %d)"
                         % (where, k, ncols, "" if ncols == 1 else "s", ncols - 1))
    return k


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path, col, where):
    """(list of columns, each a list of str; header names or None)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f)]
    except UnicodeDecodeError as e:
        raise InputError("%s: not a UTF-8 text file (%s)" % (where, e.reason)) from None
    except csv.Error as e:
        raise InputError("%s: not a valid CSV file: %s" % (where, e)) from None
    while rows and not any(c.strip() for c in rows[-1]):  # blank lines at the end
        rows.pop()
    if not rows:
        raise InputError("%s: the file is empty" % where)
    names = None
    first = 1
    if any(not _is_number(c.strip()) for c in rows[0]):
        names = [c.strip() for c in rows[0]]
        rows = rows[1:]
        first = 2
        if not rows:
            raise InputError("%s: the file has a header row (%s) but no data" % (where, ",".join(names)))
    ncols = len(names) if names is not None else len(rows[0])
    if ncols == 1:  # a blank line in a file of one column: an empty cell
        rows = [r or [""] for r in rows]
    for i, r in enumerate(rows):
        if len(r) != ncols:
            raise InputError("%s: line %d has %d field%s, but the %s has %d" % (
                where, i + first, len(r), "" if len(r) == 1 else "s",
                "header" if names is not None else "first line", ncols))
    cols = [[r[k].strip() for r in rows] for k in range(ncols)]
    if col is not None:
        k = _column_index(col, names, ncols, where)
        return [cols[k]], None if names is None else [names[k]], first
    return cols, names, first


def _read_npy(path, col, where):
    try:
        a = np.load(path, allow_pickle=False)
    except ValueError as e:  # pickled object arrays, bad headers
        raise InputError("%s: not a readable .npy file (%s)" % (where, e)) from None
    if not isinstance(a, np.ndarray):
        raise InputError("%s: not a .npy array" % where)
    if a.dtype.names is not None:  # a structured array: named columns
        names = list(a.dtype.names)
        if a.ndim != 1:
            raise InputError("%s: a structured array must be 1-D, got shape %s" % (where, a.shape))
        ks = range(len(names)) if col is None else [_column_index(col, names, len(names), where)]
        return [np.asarray(a[names[k]]) for k in ks], [names[k] for k in ks], None
    if a.ndim == 1:
        if col is not None:
            _column_index(col, None, 1, where)
        return [a], None, None
    if a.ndim != 2:
        raise InputError("%s: expected a 1-D array (one value per row) or a 2-D array (rows x columns), got "
                         "shape %s" % (where, a.shape))
    if col is not None:
        k = _column_index(col, None, a.shape[1], where)
        return [a[:, k]], None, None
    return [a[:, k] for k in range(a.shape[1])], None, None


def _read_parquet(path, col, where):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("%s: reading .parquet files needs pyarrow (pip install pyarrow), which is not "
                         "installed" % where) from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow's own errors (ArrowInvalid...) for a damaged file
        raise InputError("%s: not a readable Parquet file (%s)" % (where, e)) from None
    names = [str(n) for n in table.column_names]
    ks = range(len(names)) if col is None else [_column_index(col, names, len(names), where)]
    cols = []
    for k in ks:
        values = table.column(k).to_pylist()
        if any(v is None for v in values):
            raise InputError("%s: column %r has a missing value at row %d"
                             % (where, names[k], next(i for i, v in enumerate(values) if v is None)))
        cols.append(np.asarray(values) if values else np.zeros(0))
    return cols, [names[k] for k in ks], None


def read_columns(spec, option):
    """(columns: list of 1-D arrays or str lists, header names or None, first data line of a CSV
    or None, where) of one input."""
    path, col = _split_spec(spec)
    where = "%s %s" % (option, spec)
    if os.path.isdir(path):
        raise InputError("%s: is a folder, not a file" % where)
    if not os.path.exists(path):
        raise InputError("%s: no such file" % where)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            cols, names, first = _read_npy(path, col, where)
        elif ext == ".csv":
            cols, names, first = _read_csv(path, col, where)
        elif ext in (".parquet", ".pq"):
            cols, names, first = _read_parquet(path, col, where)
        else:
            raise InputError("%s: unknown file type %r (bcml check reads .npy, .csv and .parquet)"
                             % (where, ext or "(no extension)"))
    except OSError as e:
        raise InputError("%s: cannot read the file: %s" % (where, e.strerror or e)) from None
    if not cols:
        raise InputError("%s: the file has no columns" % where)
    return cols, names, first, where


def _row(first, i):
    return "line %d" % (first + i) if first is not None else "row %d" % i


def _labels(values, where, first):
    """A 1-D int64 array (class indices) or a list of str (class names) of one column."""
    if isinstance(values, list):  # CSV text
        for i, v in enumerate(values):
            if v == "":
                raise InputError("%s: %s is empty (a label is missing)" % (where, _row(first, i)))
        try:
            return _int_labels(np.array([float(v) for v in values], dtype=np.float64), where, first)
        except ValueError:
            return list(values)
    a = np.asarray(values)
    if a.dtype.kind in "US":
        out = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in a.tolist()]
        for i, v in enumerate(out):
            if v == "":
                raise InputError("%s: %s is empty (a label is missing)" % (where, _row(first, i)))
        return out
    if a.dtype.kind == "b":
        return a.astype(np.int64)
    if a.dtype.kind in "iu":
        if a.dtype.kind == "u" and a.size and int(a.max()) > np.iinfo(np.int64).max:
            raise InputError("%s: the label %d is too large" % (where, int(a.max())))
        return _int_labels(a, where, first)
    if a.dtype.kind == "f":
        return _int_labels(a.astype(np.float64), where, first)
    raise InputError("%s: holds %s values, not labels (ints or strings)" % (where, a.dtype))


def _int_labels(a, where, first):
    if a.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(a) | (a != np.round(a)))
        if bad.size:
            raise InputError("%s: %s holds %r, not a label (labels are ints or class names; rows of class "
                             "probabilities need one column per class)"
                             % (where, _row(first, bad[0]), float(a[bad[0]])))
        if a.size and (np.abs(a) > 2.0 ** 62).any():
            i = int(np.flatnonzero(np.abs(a) > 2.0 ** 62)[0])
            raise InputError("%s: %s holds %r, too large for a class index" % (where, _row(first, i), float(a[i])))
    a = a.astype(np.int64)
    neg = np.flatnonzero(a < 0)
    if neg.size:
        raise InputError("%s: %s holds the label %d (class indices start at 0)"
                         % (where, _row(first, neg[0]), a[neg[0]]))
    return a


def _probabilities(cols, where, first):
    """(n, C) float64 rows of class probabilities from C >= 2 columns."""
    out = np.empty((len(cols[0]) if len(cols) else 0, len(cols)), dtype=np.float64)
    for k, c in enumerate(cols):
        if isinstance(c, list):
            for i, v in enumerate(c):
                try:
                    out[i, k] = float(v)
                except ValueError:
                    raise InputError("%s: %s, column %d holds %r, not a probability (a file of %d columns without "
                                     ":COLUMN is read as one column of class probabilities per class; name the "
                                     "column of labels as FILE:COLUMN)"
                                     % (where, _row(first, i), k, v, len(cols))) from None
        else:
            a = np.asarray(c)
            if a.dtype.kind not in "biuf":
                raise InputError("%s: column %d holds %s values, not probabilities" % (where, k, a.dtype))
            out[:, k] = a
    if out.size and not np.isfinite(out).all():
        i, k = np.argwhere(~np.isfinite(out))[0]
        raise InputError("%s: %s, column %d holds %r, not a probability" % (where, _row(first, i), k, float(out[i, k])))
    bad = np.flatnonzero(((out < 0) | (out > 1)).any(axis=1))
    if bad.size:
        raise InputError("%s: %s holds a value outside [0, 1]: not class probabilities" % (where, _row(first, bad[0])))
    s = out.sum(axis=1)
    bad = np.flatnonzero(np.abs(s - 1.0) > 1e-3)
    if bad.size:
        raise InputError("%s: %s sums to %r; rows of class probabilities must sum to 1 (within 1e-3)"
                         % (where, _row(first, bad[0]), float(s[bad[0]])))
    return out


class _Input:
    """One input: labels (int64 array or list of str) or probabilities (n, C) with column names."""

    def __init__(self, spec, option, allow_proba):
        cols, names, first, where = read_columns(spec, option)
        self.where, self.first, self.proba, self.proba_names = where, first, None, None
        if len(cols) == 1:
            self.labels = _labels(cols[0], where, first)
        elif not allow_proba:
            raise InputError("%s: the file has %d columns; name the one to use as FILE:COLUMN (a name or a "
                             "0-based position)" % (where, len(cols)))
        else:
            self.proba = _probabilities(cols, where, first)
            self.proba_names = names
            self.labels = None
        self.n = len(self.labels) if self.labels is not None else self.proba.shape[0]


def _map_classes(inputs):
    """(h1, h2, y as int64 arrays, class names or None, h1_proba, h2_proba) from the three inputs,
    with class names mapped consistently over all of them."""
    named = any(isinstance(i.labels, list) for i in inputs if i.labels is not None)
    if not named:
        out = [i.labels for i in inputs]
        names = None
        C = max((int(a.max()) + 1 for a in out if a is not None and a.size), default=0)
        for i in inputs:
            if i.proba is not None:
                C = max(C, i.proba.shape[1])
        for i in inputs:
            if i.proba is not None and i.proba.shape[1] < C:
                raise InputError("%s: has %d probability columns, but the other inputs have %d classes (labels "
                                 "up to %d)" % (i.where, i.proba.shape[1], C, C - 1))
        probas = [None if i.proba is None else i.proba for i in inputs[:2]]
    else:
        label_names = set()
        for i in inputs:
            if isinstance(i.labels, list):
                label_names.update(i.labels)
        names = set(label_names)
        for i in inputs:
            if i.labels is not None:
                continue
            if i.proba_names is None:
                raise InputError("%s: rows of class probabilities with class-name labels need a header row naming "
                                 "each column's class" % i.where)
            if not set(i.proba_names) & label_names:
                raise InputError("%s: its columns (%s) name none of the classes of the labels (%s); with class-name "
                                 "labels, the header names each probability column's class"
                                 % (i.where, _some(i.proba_names), _some(label_names)))
            names.update(i.proba_names)
        texts = set(names)
        for i in inputs:
            if i.labels is not None and not isinstance(i.labels, list):
                vals = set(str(v) for v in i.labels.tolist())
                if not vals & texts:
                    raise InputError("%s: holds class indices (%s) that name none of the classes of the other "
                                     "inputs (%s): give every input the same kind of labels"
                                     % (i.where, _some(i.labels.tolist()), _some(texts)))
                names.update(vals)
        names = sorted(names)
        index = {name: k for k, name in enumerate(names)}
        out, probas = [], []
        for i in inputs:
            if i.labels is not None:
                vals = i.labels if isinstance(i.labels, list) else [str(v) for v in i.labels.tolist()]
                out.append(np.fromiter((index[v] for v in vals), dtype=np.int64, count=len(vals)))
            else:
                out.append(None)
            if i.proba is not None:
                if len(set(i.proba_names)) != len(i.proba_names):
                    raise InputError("%s: the header names a class twice" % i.where)
                p = np.zeros((i.proba.shape[0], len(names)))
                p[:, [index[c] for c in i.proba_names]] = i.proba
                probas.append(p)
            elif len(probas) < 2:
                probas.append(None)
        probas = probas[:2]
    for k, i in enumerate(inputs[:2]):
        if out[k] is None:
            out[k] = np.argmax(probas[k], axis=1).astype(np.int64)
    return out, names, probas


def _some(values, k=4):
    values = sorted(set(values))
    return ", ".join(map(repr, values[:k])) + (", ..." if len(values) > k else "")


def load(args):
    """The arguments of bcml.compare from the parsed options (InputError on bad input)."""
    inputs = [_Input(args.h1, "--h1", True), _Input(args.h2, "--h2", True), _Input(args.labels, "--labels", False)]
    groups = None
    if args.groups is not None:
        cols, _, first, where = read_columns(args.groups, "--groups")
        if len(cols) != 1:
            raise InputError("%s: the file has %d columns; name the one to use as FILE:COLUMN (a name or a "
                             "0-based position)" % (where, len(cols)))
        c = cols[0]
        if isinstance(c, list):
            groups = c
        else:
            a = np.asarray(c)
            if a.dtype.kind not in "biuUS":
                if a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.round(a)).all():
                    a = a.astype(np.int64)
                else:
                    raise InputError("%s: holds %s values, not cohort labels (ints or strings)" % (where, a.dtype))
            groups = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in a.tolist()]
        for i, v in enumerate(groups):
            if v == "":
                raise InputError("%s: %s is empty (a cohort label is missing)" % (where, _row(first, i)))
        inputs_n = [(i.where, i.n) for i in inputs] + [(where, len(groups))]
    else:
        inputs_n = [(i.where, i.n) for i in inputs]
    w0, n0 = inputs_n[0]
    for w, n in inputs_n[1:]:
        if n != n0:
            raise InputError("%s: has %d rows, but %s has %d (one row per sample in every input)" % (w, n, w0, n0))
    if n0 == 0:
        raise InputError("%s: has no rows" % w0)
    (h1, h2, y), names, (p1, p2) = _map_classes(inputs)
    return dict(h1=h1, h2=h2, y=y, class_names=names, h1_proba=p1, h2_proba=p2,
                groups=None if groups is None else np.array(groups, dtype=object).astype(str))


# ---- the gate ---------------------------------------------------------------------------------
def _verdict(value, interval, kind, threshold):
    if interval is not None:
        lo, hi = interval
        if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
            return "undefined"
        beyond = hi < threshold if kind == "min" else lo > threshold
        return "fail" if beyond else "pass"
    if value is None or math.isnan(value):
        return "undefined"
    return "fail" if (value < threshold if kind == "min" else value > threshold) else "pass"


def gate(report, thresholds, use_ci):
    """The list of checks (dicts, the --json 'gate.checks' entries) of report."""
    scopes = [("overall", "overall", report["n"], report)]
    scopes += [("cohort", g["group"], g["n"], g) for g in report.get("per_group", ()) if g["ranked"]]
    checks = []
    for scope, name, n, d in scopes:
        for opt, key, kind in THRESHOLDS:
            t = thresholds.get(opt)
            if t is None:
                continue
            value = float(d[key])
            interval = [float(v) for v in d["ci"][key]] if use_ci else None
            checks.append({"scope": scope, "name": name, "n": n, "score": key, "kind": kind, "threshold": t,
                           "value": value, "interval": interval,
                           "verdict": _verdict(value, interval, kind, t)})
    return checks


def _fmt(v):
    return "nan" if v is None or math.isnan(v) else "%.4f" % v


def _line(c):
    where = "overall" if c["scope"] == "overall" else "cohort %r (n=%d)" % (c["name"], c["n"])
    op = ">=" if c["kind"] == "min" else "<="
    text = "%-6s %s %s: %s" % (c["verdict"].upper(), where, c["score"].upper(), _fmt(c["value"]))
    if c["interval"] is not None:
        text += " [%s, %s]" % (_fmt(c["interval"][0]), _fmt(c["interval"][1]))
    text += ", required %s %g" % (op, c["threshold"])
    if c["verdict"] == "fail" and c["interval"] is not None:
        text += " (the whole interval is beyond it)"
    elif c["verdict"] == "pass" and c["interval"] is not None and _verdict(c["value"], None, c["kind"],
                                                                            c["threshold"]) == "fail":
        text += " (the point estimate is beyond it, the interval is not)"
    elif c["verdict"] == "undefined":
        text += " (undefined: nothing to regress)"
    return text


def run(args, out=None):
    """Loads, compares, prints and gates; returns the exit status (InputError on bad input)."""
    out = sys.stdout if out is None else out
    from . import _compare
    data = load(args)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = _compare.compare(data["h1"], data["h2"], data["y"], h1_proba=data["h1_proba"],
                                      h2_proba=data["h2_proba"], groups=data["groups"],
                                      class_names=data["class_names"], min_group_size=args.min_group_size,
                                      ci=args.ci, n_boot=args.n_boot, seed=args.seed)
    except (TypeError, ValueError) as e:  # what the readers let through (a label beyond the classes bcml supports)
        msg = str(e)
        for arg, opt, spec in (("h1_pred", "--h1", args.h1), ("h2_pred", "--h2", args.h2),
                               ("y", "--labels", args.labels)):
            msg = re.sub(r"\b%s (holds|must|has)\b" % arg, "%s %s \\1" % (opt, spec.replace("\\", "\\\\")), msg)
        raise InputError(msg[len("compare: "):] if msg.startswith("compare: ") else msg) from None
    thresholds = {opt: getattr(args, opt) for opt, _, _ in THRESHOLDS if getattr(args, opt) is not None}
    checks = gate(report, thresholds, args.ci is not None)
    failures = [c for c in checks if c["verdict"] == "fail"]
    status = 1 if failures else 0
    print(report.format(), file=out)
    print("", file=out)
    if not thresholds:
        print("gate: no thresholds given (--min-btc, --max-nfr, --min-bec): nothing to check", file=out)
    else:
        rule = ("the whole %g%% interval beyond a threshold fails" % (100 * args.ci) if args.ci is not None
                else "the point estimate beyond a threshold fails")
        print("gate (%s%s):" % (rule, "; cohorts of n >= %d" % args.min_group_size if args.groups else ""), file=out)
        for c in checks:
            print("  " + _line(c), file=out)
    print("bcml check: %s" % ("FAILED, %d of %d checks" % (len(failures), len(checks)) if failures
                              else "passed (%d check%s)" % (len(checks), "" if len(checks) == 1 else "s")), file=out)
    if args.json is not None:
        doc = _compare.plain(dict(report), None)
        doc["gate"] = {"passed": not failures, "exit_status": status, "ci": args.ci,
                       "min_group_size": args.min_group_size, "thresholds": thresholds,
                       "failures": len(failures), "checks": _compare.plain(checks, None)}
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1, allow_nan=False)
                f.write("\n")
        except OSError as e:
            raise InputError("--json %s: cannot write the file: %s" % (args.json, e.strerror or e)) from None
    return status


def main(argv=None, prog=None):
    """``bcml check``'s entry point: returns the exit status (0 pass, 1 a threshold crossed, 2 bad
    input; argparse's own usage errors exit 2 through SystemExit)."""
    p = parser(prog)
    args = p.parse_args(argv)
    try:
        return run(args)
    except InputError as e:
        sys.stdout.flush()
        print("%s: error: %s" % (p.prog, e), file=sys.stderr)
        return 2
    except MemoryError:
        print("%s: error: out of memory reading the inputs" % p.prog, file=sys.stderr)
        return 2

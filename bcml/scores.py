"""Compatibility scores of an updated classifier h2 against a reference classifier h1.

Every score is a ratio of cells of one count table filled in a single pass in C
(:func:`count_table`): per true class, the samples where h1 and h2 are right or wrong
(four cells) and the samples where h1's and h2's labels differ (churn; both can be wrong
with different labels). Counts are pooled over the whole input (BCML averaged per-batch
ratios; bcml does not).

========================================  ==============================================
score                                     formula
========================================  ==============================================
``trust_compatibility_score`` (BTC)       #(h1 right, h2 right) / #(h1 right)
``error_compatibility_score`` (BEC)       #(both wrong) / #(h2 wrong)   (``normalize="h2"``)
                                          #(both wrong) / #(h1 wrong)   (``normalize="h1"``)
``negative_flip_rate`` (NFR)              #(h1 right, h2 wrong) / N
``positive_flip_rate`` (PFR)              #(h1 wrong, h2 right) / N
``negative_flip_impact`` (NFI)            #(h1 right, h2 wrong) / #(h2 wrong)
``churn``                                 #(h1 label != h2 label) / N
========================================  ==============================================

BEC: the published definition (Bansal et al. 2019, "the probability that a mistake made by
the new model is not new") divides by h2's errors, the default here; BCML's code divides by
h1's errors, available as ``normalize="h1"``.

Labels may be lists, NumPy arrays of any integer dtype (int64 arrays are read in place,
others converted once) or bcml int64 tensors, of shape (B,) or (B, 1) (as
``argmax(dim=1, keepdim=True)`` gives). Float arrays and tensors whose values are integral
count as those integers (BCML compared labels with ``==``; its binary notebook passes float32
targets); a non-integral value (1.5, nan, inf) raises ValueError naming its index and value.
Bool, string, complex and object labels raise TypeError; other shapes, different lengths,
empty inputs, negative labels and labels at or above ``num_classes`` raise ValueError; each
message names the argument.

Zero denominators follow scikit-learn: ``zero_division="warn"`` returns 0.0 and emits an
:class:`UndefinedMetricWarning`; 0.0, 1.0 or nan return that value silently.
"""
import collections.abc
import math
import numbers
import warnings

import numpy as np

from . import _core

__all__ = [
    "UndefinedMetricWarning", "CompatibilityReport", "count_table",
    "trust_compatibility_score", "error_compatibility_score", "negative_flip_rate",
    "positive_flip_rate", "negative_flip_impact", "churn", "compatibility_report",
]

# Columns of the count table (csrc/core/bcml.h, BCML_CT_*).
RR, RW, WR, WW, DIFF = range(5)
CELLS = ("h1_right_h2_right", "h1_right_h2_wrong", "h1_wrong_h2_right", "both_wrong",
         "h1_ne_h2")


class UndefinedMetricWarning(UserWarning):
    """A score's denominator is zero (as scikit-learn's warning of the same name)."""


def count_table(h1_labels, h2_labels, y, num_classes=None):
    """The (num_classes, 5) int64 count table, one row per true class.

    Columns: h1 right & h2 right, h1 right & h2 wrong, h1 wrong & h2 right, both wrong,
    h1 label != h2 label. Without ``num_classes`` the class count is the largest label of
    the three arrays plus one.
    """
    return _core.count_table(h1_labels, h2_labels, y, _num_classes(num_classes, "count_table"),
                             name="count_table")


def _num_classes(num_classes, fname):
    """None or a positive int within int64 (checked here: the C count pass reads it as one)."""
    if num_classes is None:
        return None
    from . import _values
    n = _values.index(num_classes, fname, "num_classes")
    if n < 1:
        raise ValueError("%s(): argument 'num_classes' must be a positive int, got %d" % (fname, n))
    return n


def _zero_division(value, fname):
    if isinstance(value, str):
        if value == "warn":
            return value
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        if v == 0.0 or v == 1.0 or math.isnan(v):
            return v
    else:
        raise TypeError('%s: zero_division must be "warn", 0.0, 1.0 or nan, not %s' % (fname, type(value).__name__))
    raise ValueError('%s: zero_division must be "warn", 0.0, 1.0 or nan, got %r'
                     % (fname, value))


def _ratio(num, den, zero_division, fname, den_text, undefined=None):
    """num / den as a float; a zero den gives zero_division's value ("warn": 0.0 and a
    warning, or, when undefined is a list, a note appended to it for one later warning)."""
    if den:
        return num / den
    if zero_division == "warn":
        if undefined is None:
            warnings.warn("%s is ill-defined and set to 0.0: %s is 0. Use `zero_division` to "
                          "control this behavior." % (fname, den_text),
                          UndefinedMetricWarning, stacklevel=3)
        else:
            undefined.append(den_text)
        return 0.0
    return zero_division


def _totals(h1_labels, h2_labels, y, fname, num_classes=None):
    table = _core.count_table(h1_labels, h2_labels, y, num_classes, name=fname)
    return [int(v) for v in table.sum(axis=0)]


def trust_compatibility_score(h1_labels, h2_labels, y, zero_division="warn"):
    """Backward trust compatibility (BTC): the share of the samples h1 classifies correctly
    that h2 also classifies correctly, #(h1 right and h2 right) / #(h1 right)."""
    fname = "trust_compatibility_score"
    zd = _zero_division(zero_division, fname)
    c = _totals(h1_labels, h2_labels, y, fname)
    return _ratio(c[RR], c[RR] + c[RW], zd, fname,
                  "the number of samples h1 classifies correctly")


def error_compatibility_score(h1_labels, h2_labels, y, normalize="h2", zero_division="warn"):
    """Backward error compatibility (BEC): #(both wrong) divided by h2's errors
    (``normalize="h2"``, the published definition: the share of h2's mistakes that h1 also
    makes) or by h1's errors (``normalize="h1"``, what BCML's code computes)."""
    fname = "error_compatibility_score"
    if not isinstance(normalize, str):
        raise TypeError("%s: normalize must be 'h2' or 'h1', not %s" % (fname, type(normalize).__name__))
    if normalize not in ("h1", "h2"):
        raise ValueError("%s: normalize must be 'h2' (both wrong / h2 wrong, the published "
                         "definition) or 'h1' (both wrong / h1 wrong, BCML's), got %r"
                         % (fname, normalize))
    zd = _zero_division(zero_division, fname)
    c = _totals(h1_labels, h2_labels, y, fname)
    if normalize == "h2":
        return _ratio(c[WW], c[RW] + c[WW], zd, fname,
                      "the number of samples h2 classifies wrongly")
    return _ratio(c[WW], c[WR] + c[WW], zd, fname, "the number of samples h1 classifies wrongly")


def negative_flip_rate(h1_labels, h2_labels, y):
    """Negative flip rate (NFR): the share of all samples that h1 gets right and h2 wrong."""
    c = _totals(h1_labels, h2_labels, y, "negative_flip_rate")
    return c[RW] / sum(c[:4])


def positive_flip_rate(h1_labels, h2_labels, y):
    """Positive flip rate (PFR): the share of all samples that h1 gets wrong and h2 right."""
    c = _totals(h1_labels, h2_labels, y, "positive_flip_rate")
    return c[WR] / sum(c[:4])


def negative_flip_impact(h1_labels, h2_labels, y, zero_division="warn"):
    """Negative flip impact (NFI): the share of h2's errors that are new, i.e. where h1 was
    right: #(h1 right and h2 wrong) / #(h2 wrong) (= 1 - BEC)."""
    fname = "negative_flip_impact"
    zd = _zero_division(zero_division, fname)
    c = _totals(h1_labels, h2_labels, y, fname)
    return _ratio(c[RW], c[RW] + c[WW], zd, fname, "the number of samples h2 classifies wrongly")


def churn(h1_labels, h2_labels, y=None):
    """Churn: the share of samples on which h1 and h2 predict different labels. ``y`` is not
    needed (it is accepted, and checked, for symmetry with the other scores)."""
    c = _totals(h1_labels, h2_labels, h1_labels if y is None else y, "churn")
    return c[DIFF] / sum(c[:4])


# ---- the report ----------------------------------------------------------------------------
_COLUMNS = (("btc", "BTC"), ("bec", "BEC"), ("bec_h1", "BEC_h1"), ("nfr", "NFR"),
            ("pfr", "PFR"), ("nfi", "NFI"), ("churn", "churn"), ("h1_accuracy", "h1_acc"),
            ("h2_accuracy", "h2_acc"))


def _scores(c, zd, where, undefined):
    """Every score from one row of cells (a class's or the totals); notes the undefined ones
    in undefined (for one warning)."""
    n = c[RR] + c[RW] + c[WR] + c[WW]
    notes = []
    out = {
        "btc": _ratio(c[RR], c[RR] + c[RW], zd, "", "btc (h1 never right)", notes),
        "bec": _ratio(c[WW], c[RW] + c[WW], zd, "", "bec (h2 never wrong)", notes),
        "bec_h1": _ratio(c[WW], c[WR] + c[WW], zd, "", "bec_h1 (h1 never wrong)", notes),
        "nfr": _ratio(c[RW], n, zd, "", "nfr", notes),
        "pfr": _ratio(c[WR], n, zd, "", "pfr", notes),
        "nfi": _ratio(c[RW], c[RW] + c[WW], zd, "", "nfi (h2 never wrong)", notes),
        "churn": _ratio(c[DIFF], n, zd, "", "churn", notes),
        "h1_accuracy": _ratio(c[RR] + c[RW], n, zd, "", "h1_accuracy", notes),
        "h2_accuracy": _ratio(c[RR] + c[WR], n, zd, "", "h2_accuracy", notes),
    }
    if n == 0 and notes:
        undefined.append("every score of %s (no samples)" % where)
    else:
        undefined.extend("%s of %s" % (note, where) for note in notes)
    return out


class CompatibilityReport(dict):
    """The result of :func:`compatibility_report` and :func:`bcml.compare`: a dict whose repr
    is an aligned table.

    Keys: ``btc, bec, bec_h1, nfr, pfr, nfi, churn, h1_accuracy, h2_accuracy, n,
    num_classes, counts`` (the overall cells, by name), ``mcnemar_pvalue`` and ``per_class``:
    one dict per class (``class`` index, ``name``, ``support`` and the same scores on that
    class's samples). Groups, intervals and :func:`bcml.compare` add keys (see those).
    ``to_dict()`` / ``to_json()`` / ``to_frame()`` / ``save_html(path)`` export it.
    """

    def __init__(self, mapping=(), **kwargs):
        if not isinstance(mapping, (dict, collections.abc.Mapping)) and not (
                isinstance(mapping, tuple) and not mapping):
            raise TypeError("CompatibilityReport(): argument 'mapping' must be a dict (of scores), not %s"
                            % type(mapping).__name__)
        super().__init__(mapping, **kwargs)

    def format(self, digits=4):
        if isinstance(digits, bool) or not isinstance(digits, numbers.Integral):
            raise TypeError("format(): argument 'digits' must be an int, not %s" % type(digits).__name__)
        if not 0 <= digits <= 30:
            raise ValueError("format(): argument 'digits' must lie in [0, 30], got %d" % digits)
        for k in ("n", "num_classes", "per_class"):
            if k not in self:
                raise ValueError("format(): this report has no %r (only compatibility_report's reports format)" % k)
        rows = [("overall", self["n"], self)]
        rows += [(pc["name"], pc["support"], pc) for pc in self["per_class"]]
        name_w = max(len("class"), max(len(r[0]) for r in rows))
        sup_w = max(len("support"), len(str(self["n"])))
        num_w = max(digits + 3, max(len(h) for _, h in _COLUMNS))

        def fmt(v):
            return "nan" if math.isnan(v) else "%.*f" % (digits, v)

        head = "compatibility report: %d samples, %d classes" % (self["n"], self["num_classes"])
        if isinstance(self.get("mcnemar_pvalue"), float):
            head += "; McNemar exact p-value (h1 vs h2 errors): %s" % fmt(self["mcnemar_pvalue"])
        lines = [head,
                 "%-*s  %*s  %s" % (name_w, "class", sup_w, "support",
                                    "  ".join("%*s" % (num_w, h) for _, h in _COLUMNS))]
        for name, support, d in rows:
            lines.append("%-*s  %*d  %s" % (name_w, name, sup_w, support,
                                            "  ".join("%*s" % (num_w, fmt(d[k]))
                                                      for k, _ in _COLUMNS)))
        return "\n".join(lines + self._extra_lines(digits))

    def _extra_lines(self, digits):
        """The lines beyond the class table: McNemar, probabilities, intervals, cohorts."""
        def fmt(v):
            return "-" if v is None else "nan" if math.isnan(v) else "%.*f" % (digits, v)

        lines = []
        if self.get("prob_churn") is not None or self.get("regressed_h2_confidence") is not None:
            lines.append("probability churn (mean total variation): %s; mean confidence on regressed "
                         "samples: h2 %s, h1 %s" % (fmt(self.get("prob_churn")),
                                                    fmt(self.get("regressed_h2_confidence")),
                                                    fmt(self.get("regressed_h1_confidence"))))
        if "ci" in self and "ci_settings" in self:
            st = self["ci_settings"]
            lines.append("%g%% bootstrap intervals (%d resamples, seed %d):"
                         % (100 * st["level"], st["n_boot"], st["seed"]))
            lines.append("  " + "  ".join("%s [%s, %s]" % (h, fmt(self["ci"][k][0]), fmt(self["ci"][k][1]))
                                          for k, h in _COLUMNS))
        if "per_group" in self:
            groups = {g["group"]: g for g in self["per_group"]}
            ranked = [groups[g] for g in self.get("ranking", ())]
            rest = [g for g in self["per_group"] if not g["ranked"]]
            gw = max([len("cohort")] + [len(g["group"]) for g in self["per_group"]])
            nw = max(len("n"), len(str(self["n"])))
            has_ci = all("ci" in g for g in self["per_group"])
            lines.append("cohorts, the most hurt first (by NFR, then BTC drop; n >= %d):"
                         % self.get("min_group_size", 0))
            cols = ["NFR", "BTC_drop", "h1_acc", "h2_acc", "churn"]
            lines.append("%-*s  %*s  %s" % (gw, "cohort", nw, "n", "  ".join(
                "%*s" % (digits + 3 + (2 * digits + 12 if has_ci and c in ("NFR", "BTC_drop") else 0), c)
                for c in cols)))
            for g in ranked + rest:
                cells = []
                for key in ("nfr", "btc_drop", "h1_accuracy", "h2_accuracy", "churn"):
                    txt = "%*s" % (digits + 3, fmt(g[key]))
                    if has_ci and key in ("nfr", "btc_drop"):
                        lo, hi = g["ci"][key]
                        txt += " [%*s, %*s]" % (digits + 3, fmt(lo), digits + 3, fmt(hi))
                        txt = "%*s" % (3 * digits + 15, txt)
                    cells.append(txt)
                lines.append("%-*s  %*d  %s%s" % (gw, g["group"], nw, g["n"], "  ".join(cells),
                                                  "" if g["ranked"] else "  (too small to rank)"))
        return lines

    def to_dict(self):
        """A plain dict of Python values (arrays as nested lists; nan stays a float nan)."""
        from . import _compare
        return _compare.plain(dict(self))

    def to_json(self, indent=None):
        """The report as JSON (the keys of :meth:`to_dict`; nan written as null)."""
        from . import _compare
        if indent is not None and (isinstance(indent, bool) or not isinstance(indent, numbers.Integral)):
            raise TypeError("to_json(): argument 'indent' must be an int or None, not %s" % type(indent).__name__)
        if indent is not None and not 0 <= indent <= 16:
            raise ValueError("to_json(): argument 'indent' must lie in [0, 16], got %d" % indent)
        return _compare.to_json(self, indent)

    def to_frame(self):
        """A pandas DataFrame: one row per scope (overall, each class, each cohort) with its
        size and every score (and ``<score>_lo`` / ``<score>_hi`` with intervals). Needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_frame() needs pandas (pip install pandas)") from None
        return pd.DataFrame(self._rows())

    def _rows(self):
        rows = []
        scopes = [("overall", "overall", self.get("n"), self)]
        scopes += [("class", pc["name"], pc["support"], pc) for pc in self.get("per_class", ())]
        scopes += [("group", g["group"], g["n"], g) for g in self.get("per_group", ())]
        for scope, name, n, d in scopes:
            row = {"scope": scope, "name": name, "n": n}
            for k, _ in _COLUMNS:
                row[k] = d.get(k)
                if "ci" in d:
                    row[k + "_lo"], row[k + "_hi"] = d["ci"][k]
            for k in ("prob_churn", "regressed_h2_confidence", "mcnemar_pvalue"):
                if k in d:
                    row[k] = d[k]
            rows.append(row)
        return rows

    def save_html(self, path):
        """Writes the report as a static, self-contained HTML page (its tables); returns path."""
        import html as _html
        import os
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError("save_html(): argument 'path' must be a str or path, not %s" % type(path).__name__)
        rows = self._rows()
        cols = list(dict.fromkeys(k for r in rows for k in r))

        def cell(v):
            if isinstance(v, float):
                return "nan" if math.isnan(v) else "%.4f" % v
            return _html.escape("" if v is None else str(v))

        parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>bcml compatibility report</title>",
                 "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                 "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                 "td:nth-child(-n+2){text-align:left}.wide{overflow-x:auto;max-width:100%}</style></head><body>",
                 # the wide text and table scroll inside the page instead of running off its edge
                 "<h1>Compatibility report</h1><div class='wide'><pre>%s</pre></div>" % _html.escape(self.format()),
                 "<h2>Scores</h2><div class='wide'><table><tr>%s</tr>"
                 % "".join("<th>%s</th>" % _html.escape(c) for c in cols)]
        for r in rows:
            parts.append("<tr>%s</tr>" % "".join("<td>%s</td>" % cell(r.get(c)) for c in cols))
        parts.append("</table></div>")
        fm = self.get("flip_matrix")
        if fm is not None:
            names = [pc["name"] for pc in self.get("per_class", ())]
            parts.append("<h2>Flip matrix (rows: h1's label, columns: h2's label), per true class</h2>")
            for c, name in enumerate(names):
                parts.append("<h3>true class %s</h3><table><tr><th></th>%s</tr>" % (
                    _html.escape(name), "".join("<th>h2=%s</th>" % _html.escape(m) for m in names)))
                for a, an in enumerate(names):
                    parts.append("<tr><th>h1=%s</th>%s</tr>" % (
                        _html.escape(an), "".join("<td>%d</td>" % fm[c][a][b] for b in range(len(names)))))
                parts.append("</table>")
        parts.append("</body></html>")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(parts))
        return path

    def __repr__(self):
        return self.format()

    __str__ = __repr__

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(self.format())


def _table(h1_labels, h2_labels, y, num_classes, class_names, zero_division, fname):
    """(count table (C, 5), class names or None, checked zero_division) of a report."""
    zd = _zero_division(zero_division, fname)
    num_classes = _num_classes(num_classes, fname)
    names = None
    if class_names is not None:
        if isinstance(class_names, (str, bytes, _core.TensorBase)) or \
                not isinstance(class_names, collections.abc.Iterable) \
                or (isinstance(class_names, np.ndarray) and class_names.ndim != 1):
            raise TypeError("%s: class_names must be a sequence of names, got %s"
                            % (fname, "a string" if isinstance(class_names, (str, bytes))
                               else type(class_names).__name__))
        names = list(class_names)
        for n in names:
            if not isinstance(n, str):
                raise TypeError("%s: class_names must hold str names, got %s" % (fname, type(n).__name__))
        if num_classes is None and not names:
            raise ValueError("%s: class_names is empty" % fname)
        if num_classes is not None and len(names) != num_classes:
            raise ValueError("%s: class_names has %d names but num_classes is %d"
                             % (fname, len(names), num_classes))
    if names is not None and num_classes is None:
        # the class count comes from class_names: a label beyond it is class_names' fault
        table = _core.count_table(h1_labels, h2_labels, y, None, name=fname)
        if table.shape[0] > len(names):
            try:  # the count pass with that class count names the label, its argument and index
                _core.count_table(h1_labels, h2_labels, y, len(names), name=fname)
                detail = "the labels go up to %d" % (table.shape[0] - 1)
            except ValueError as e:
                detail = str(e).split(": ", 1)[-1]
            raise ValueError("%s: class_names has %d names (one per class), but %s"
                             % (fname, len(names), detail))
        table = np.concatenate([table, np.zeros((len(names) - table.shape[0], table.shape[1]), table.dtype)])
    else:
        table = _core.count_table(h1_labels, h2_labels, y, num_classes, name=fname)
    return table, names, zd


def _report_from_table(table, names, zd, fname):
    C = table.shape[0]
    undefined = []
    totals = [int(v) for v in table.sum(axis=0)]
    report = CompatibilityReport(_scores(totals, zd, "all samples", undefined))
    report["n"] = sum(totals[:4])
    report["num_classes"] = C
    report["counts"] = dict(zip(CELLS, totals))
    per_class = []
    for c in range(C):
        row = [int(v) for v in table[c]]
        name = names[c] if names is not None else str(c)
        entry = {"class": c, "name": name, "support": sum(row[:4])}
        entry.update(_scores(row, zd, "class %s" % name, undefined))
        entry["counts"] = dict(zip(CELLS, row))
        per_class.append(entry)
    report["per_class"] = per_class
    if undefined:
        shown = ", ".join(undefined[:8]) + (", ..." if len(undefined) > 8 else "")
        warnings.warn("%s: %d scores are ill-defined and set to 0.0 (zero denominator): %s. "
                      "Use `zero_division` to control this behavior."
                      % (fname, len(undefined), shown), UndefinedMetricWarning, stacklevel=3)
    return report


def compatibility_report(h1_labels, h2_labels, y, num_classes=None, class_names=None,
                         zero_division=float("nan"), *, groups=None, min_group_size=30, ci=None,
                         n_boot=1000, seed=None):
    """Every score, overall and per true class, from one pass.

    ``class_names``: one name per class (then ``num_classes`` defaults to its length).
    Scores whose denominator is zero (e.g. BTC of a class h1 never gets right, or every
    score of a class without samples) take ``zero_division``'s value: nan by default, or
    "warn" (0.0 and one warning listing them), 0.0, 1.0.

    ``mcnemar_pvalue``: McNemar's exact test of h1's and h2's errors (two-sided exact binomial
    test on the discordant pairs, h1 right & h2 wrong against h1 wrong & h2 right).
    ``groups`` (an array of group labels, or a dict of name to boolean mask) adds
    ``per_group`` (every score per cohort, nan where undefined, plus ``btc_drop`` = 1 - BTC
    and the cohort's McNemar p-value), ``ranking`` (the names of the cohorts of at least
    ``min_group_size`` samples, the most hurt first: by NFR, then BTC drop) and
    ``min_group_size``. ``ci`` (a level in (0, 1), e.g. 0.95) adds bootstrap percentile
    intervals of every score (``ci``, and ``ci`` in every per_class / per_group entry) from
    ``n_boot`` multinomial resamples of the count table drawn in C with ``seed`` (None: a
    fresh seed, recorded in ``ci_settings``). :func:`bcml.compare` adds more.
    """
    fname = "compatibility_report"
    from . import _compare
    min_group_size = _compare._check_int(min_group_size, fname, "min_group_size", 0)
    if ci is not None:
        ci = _compare._check_real(ci, fname, "ci", 0.0, 1.0, lo_open=True, hi_open=True)
    n_boot = _compare._check_int(n_boot, fname, "n_boot", 1, 1 << 24)
    if seed is not None:
        seed = _compare._check_seed(seed, fname)
    if groups is not None:  # the cohorts' tables index the labels: read them once as arrays
        arrs = []
        for arg, v in (("h1_labels", h1_labels), ("h2_labels", h2_labels), ("y", y)):
            try:
                arrs.append(_compare._to_numpy(v))
            except Exception as e:
                raise TypeError("%s: %s could not be read as labels: %s" % (fname, arg, e)) from None
        h1_labels, h2_labels, y = arrs
    table, names, zd = _table(h1_labels, h2_labels, y, num_classes, class_names, zero_division, fname)
    report = _report_from_table(table, names, zd, fname)
    h1 = h2 = yy = None
    if groups is not None:
        h1, h2, yy = (a.reshape(-1).astype(np.int64) for a in (h1_labels, h2_labels, y))
    return _compare.extend(report, table, h1, h2, yy, fname, groups=groups, min_group_size=min_group_size,
                           ci=ci, n_boot=n_boot, seed=seed)


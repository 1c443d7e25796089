"""Plots of a compatibility sweep (matplotlib, an optional extra: ``pip install bcml[plot]``).

matplotlib is imported when a plot is made, not when bcml is imported.
"""
import math
import os

__all__ = ["plot_tradeoff"]

KINDS = ("new-error", "strict-imitation")
SPLITS = ("training", "testing")
_COLORS = {"new-error": "tab:blue", "strict-imitation": "tab:orange"}
_STYLES = {"training": ("--", "s"), "testing": ("-", "o")}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plot_tradeoff needs matplotlib: pip install matplotlib (or bcml[plot])") from None
    return plt


def _as_summary(summary_or_folder):
    if isinstance(summary_or_folder, (str, os.PathLike)):
        from .sweep_management import load_sweep_summary
        folder = os.fspath(summary_or_folder)
        if not os.path.isdir(folder):
            raise FileNotFoundError("plot_tradeoff(): argument 'summary_or_folder': %r is not a folder" % (folder,))
        summary = load_sweep_summary(folder)
        if summary is None:
            raise FileNotFoundError("plot_tradeoff: %r holds no sweep (no %s or sweep_settings.json)"
                                    % (folder, "sweep_summary.json"))
        return summary
    if not isinstance(summary_or_folder, dict) or not isinstance(summary_or_folder.get("data"), list):
        raise TypeError("plot_tradeoff(): argument 'summary_or_folder' must be a sweep summary (a dict with a 'data' list, as returned by "
                        "compatibility_sweep or SweepManager.get_sweep_summary) or a sweep folder, got %s"
                        % type(summary_or_folder).__name__)
    for row in summary_or_folder["data"]:
        missing = {"lambda_c", "performance", "btc", "bec"} - set(row)
        if missing or not (any(row.get(k) for k in KINDS) and any(row.get(s) for s in SPLITS)):
            raise ValueError("plot_tradeoff: a summary row needs lambda_c, performance, btc, bec, a loss kind "
                             "('new-error' or 'strict-imitation') and a split ('training' or 'testing'), got %r"
                             % (row,))
    return summary_or_folder


def _names(v, argname, allowed):
    """kinds / splits: a tuple or list of some of the allowed names (at least one)."""
    if not isinstance(v, (tuple, list)):
        raise TypeError("plot_tradeoff(): argument '%s' must be a tuple of %r, not %s"
                        % (argname, allowed, type(v).__name__))
    for k in v:
        if not isinstance(k, str):
            raise TypeError("plot_tradeoff(): argument '%s' must hold str names, got %s" % (argname, type(k).__name__))
        if k not in allowed:
            raise ValueError("%s: %r is not one of %r" % (argname, k, allowed))
    if not v:
        raise ValueError("plot_tradeoff(): argument '%s' must name at least one of %r" % (argname, allowed))
    return tuple(v)


def _value(v):
    return math.nan if v is None else float(v)


def _series(summary, kind, split, score):
    """(scores, performances, lambdas) of one loss kind and split, in lambda_c order; a None
    (an undefined value, written as null) becomes NaN, a gap in the line."""
    rows = sorted((r for r in summary["data"] if r.get(kind) and r.get(split)), key=lambda r: r["lambda_c"])
    return ([_value(r[score]) for r in rows], [_value(r["performance"]) for r in rows],
            [r["lambda_c"] for r in rows])


def plot_tradeoff(summary_or_folder, ax=None, *, kinds=KINDS, splits=SPLITS, annotate=False, title=None):
    """The performance / compatibility trade-off of a lambda_c sweep: h2's performance against
    BTC (left) and against BEC (right), one line per loss kind (color: new error, strict
    imitation) and split (solid circles: test set, dashed squares: training set) through the
    lambda_c values in order, and h1's performance on the test set as a horizontal line.

    summary_or_folder: the summary (``compatibility_sweep``'s return value,
    ``SweepManager.get_sweep_summary()``) or the sweep's folder (a running or interrupted
    sweep shows its finished points). ax: two matplotlib Axes to draw into (BTC, BEC), or None
    for a new figure. kinds, splits: the lines to draw. annotate: write each point's lambda_c
    beside it. Returns the matplotlib Figure.
    """
    from ._values import flag
    summary = _as_summary(summary_or_folder)
    kinds, splits = _names(kinds, "kinds", KINDS), _names(splits, "splits", SPLITS)
    annotate = flag(annotate, "plot_tradeoff", "annotate")
    if title is not None and not isinstance(title, str):
        raise TypeError("plot_tradeoff(): argument 'title' must be a str or None, not %s" % type(title).__name__)
    plt = _pyplot()
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    else:
        from matplotlib.axes import Axes
        try:
            axes = list(ax) if not isinstance(ax, Axes) else None
        except TypeError:
            axes = None
        if axes is None or len(axes) != 2 or not all(isinstance(a, Axes) for a in axes):
            raise TypeError("plot_tradeoff(): argument 'ax' must be two matplotlib Axes (BTC, BEC) or None, got %s"
                            % type(ax).__name__)
        fig = axes[0].figure
    metric = summary.get("performance_metric") or "performance"
    h1 = summary.get("h1_performance")
    for a, score, name in zip(axes, ("btc", "bec"), ("BTC", "BEC")):
        for kind in kinds:
            for split in splits:
                xs, ys, lams = _series(summary, kind, split, score)
                if not xs:
                    continue
                style, marker = _STYLES[split]
                a.plot(xs, ys, linestyle=style, marker=marker, color=_COLORS[kind],
                       label="%s, %s" % (kind, split))
                if annotate:
                    for x, y, lam in zip(xs, ys, lams):
                        if math.isfinite(x) and math.isfinite(y):
                            a.annotate("%g" % lam, (x, y), textcoords="offset points", xytext=(4, 4),
                                       fontsize="x-small")
        if h1 is not None:
            a.axhline(float(h1), color="gray", linestyle=":", label="h1 (test)")
        a.set_xlabel(name)
        a.set_ylabel(metric)
        a.set_title("%s against %s" % (metric, name))
        a.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig

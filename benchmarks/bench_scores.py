"""Benchmark: BTC + BEC on random int64 labels (10 classes), bcml against vectorised NumPy.

Protocol (DESIGN.md): each thread count runs in its own process with OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS set before import (bcml's count pass uses as many threads as its BLAS); both
sides get the same prebuilt arrays; each timing is the median of >= 5 repetitions after a
warm-up, the implementations interleaved so that they share the machine's noise; the ratio is
a speedup, NumPy time / bcml time (above 1: bcml is faster). "best" takes each library's
faster thread count.

Measured (plus, for context, the time NumPy takes to just read the three arrays once):
  together  both scores from one call: bcml.scores.compatibility_report (one pass, gives
            every score overall and per class) against the fastest of several NumPy
            formulations computing only the two overall scores (r1 = h1 == y, r2 = h2 == y,
            count_nonzero ...; the candidates and their times are printed).
  separate  trust_compatibility_score + error_compatibility_score, two calls (two passes),
            against two NumPy functions that each compare the labels themselves.
  bootstrap 95% intervals of every score from 1,000 resamples of 1 million labels (10
            classes): bcml.scores.compatibility_report(ci=0.95, n_boot=1000) (one count pass,
            then multinomial resamples of the count table drawn in C) against a per-sample NumPy
            bootstrap (resampled indices, the nine overall scores per resample). NumPy's time is
            that of --boot-np resamples (default 20, --quick 5) scaled to 1,000: its cost is
            linear in the resamples.

Usage: python benchmarks/bench_scores.py [--quick] [--n N] [--reps R] [--boot-np B]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402,F401  (the checkout's in-place bcml build first on sys.path)


def make_labels(n, classes=10, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n, dtype=np.int64)
    h1 = np.where(rng.random(n) < 0.80, y, rng.integers(0, classes, n, dtype=np.int64))
    h2 = np.where(rng.random(n) < 0.85, y, rng.integers(0, classes, n, dtype=np.int64))
    return h1, h2, y


def numpy_candidates(h1, h2, y):
    """NumPy formulations of (BTC, BEC) from the same arrays; the fastest is kept."""
    import numpy as np
    n = len(y)
    buf1 = np.empty(n, dtype=bool)
    buf2 = np.empty(n, dtype=bool)

    def count_nonzero():
        r1 = h1 == y
        r2 = h2 == y
        a = np.count_nonzero(r1)
        b = np.count_nonzero(r2)
        ab = np.count_nonzero(r1 & r2)
        return ab / a, (n - a - b + ab) / (n - b)

    def reused_buffers():  # scratch buffers allocated once, outside the timing
        r1 = np.equal(h1, y, out=buf1)
        r2 = np.equal(h2, y, out=buf2)
        a = np.count_nonzero(r1)
        b = np.count_nonzero(r2)
        ab = np.count_nonzero(np.logical_and(r1, r2, out=r1))
        return ab / a, (n - a - b + ab) / (n - b)

    def wrong_masks():
        w1 = h1 != y
        w2 = h2 != y
        ww = np.count_nonzero(w1 & w2)
        nw1 = np.count_nonzero(w1)
        nw2 = np.count_nonzero(w2)
        return (n - nw1 - nw2 + ww) / (n - nw1), ww / nw2

    def bincount():
        r1 = h1 == y
        r2 = h2 == y
        c = np.bincount(r1.view(np.uint8) * 2 + r2.view(np.uint8), minlength=4)
        # c[3]: both right, c[2]: h1 right only, c[1]: h2 right only, c[0]: both wrong
        return c[3] / (c[3] + c[2]), c[0] / (c[0] + c[2])

    return {"count_nonzero": count_nonzero, "reused_buffers": reused_buffers,
            "wrong_masks": wrong_masks, "bincount": bincount}


def numpy_separate(h1, h2, y):
    import numpy as np

    def btc():
        r1 = h1 == y
        return np.count_nonzero(r1 & (h2 == y)) / np.count_nonzero(r1)

    def bec():
        w2 = h2 != y
        return np.count_nonzero((h1 != y) & w2) / np.count_nonzero(w2)

    return lambda: (btc(), bec())


def median_times(fns, reps):
    """Interleaved repetitions after one warm-up call each; median seconds per function."""
    import statistics
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


BOOT_N, BOOT_RESAMPLES = 1_000_000, 1000


def numpy_bootstrap(h1, h2, y, resamples, seed=0):
    """Per-sample bootstrap: the nine overall scores of each of `resamples` resampled index sets."""
    import numpy as np
    rng = np.random.default_rng(seed)
    n = len(y)
    out = np.empty((resamples, 9))
    for b in range(resamples):
        i = rng.integers(0, n, n)
        a, c, t = h1[i], h2[i], y[i]
        r1, r2 = a == t, c == t
        rr = np.count_nonzero(r1 & r2)
        k1, k2 = np.count_nonzero(r1), np.count_nonzero(r2)
        rw, wr = k1 - rr, k2 - rr
        ww = n - rr - rw - wr
        diff = np.count_nonzero(a != c)
        out[b] = (rr / k1, ww / (rw + ww), ww / (wr + ww), rw / n, wr / n, rw / (rw + ww), diff / n,
                  k1 / n, k2 / n)
    return np.quantile(out, [0.025, 0.975], axis=0)


def worker(n, reps, boot_np):
    import numpy as np
    import bcml
    from bcml import scores
    h1, h2, y = make_labels(n)

    def bcml_together():
        r = scores.compatibility_report(h1, h2, y)
        return r["btc"], r["bec"]

    def bcml_separate():
        return (scores.trust_compatibility_score(h1, h2, y),
                scores.error_compatibility_score(h1, h2, y))

    cands = numpy_candidates(h1, h2, y)
    np_sep = numpy_separate(h1, h2, y)
    want = cands["count_nonzero"]()
    for name, f in list(cands.items()) + [("separate", np_sep), ("bcml", bcml_together),
                                          ("bcml_separate", bcml_separate)]:
        got = f()
        if not np.allclose(got, want, rtol=1e-12, atol=0):
            raise SystemExit("bench_scores: %s disagrees: %r vs %r" % (name, got, want))
    fns = {"np_" + k: f for k, f in cands.items()}
    fns.update(np_separate=np_sep, bcml_together=bcml_together, bcml_separate=bcml_separate)
    # context, not a competitor: reading the three arrays once (the memory-traffic floor of
    # any one-pass method)
    fns["read_once"] = lambda: (h1.sum(), h2.sum(), y.sum())
    bh1, bh2, by = make_labels(BOOT_N, seed=1)
    fns["np_boot"] = lambda: numpy_bootstrap(bh1, bh2, by, boot_np)
    fns["bcml_boot"] = lambda: scores.compatibility_report(bh1, bh2, by, ci=0.95, n_boot=BOOT_RESAMPLES, seed=0)
    # the two bootstraps agree (each with its own Monte Carlo error: within 0.3 of a width, 200 NumPy resamples)
    lo_hi = numpy_bootstrap(bh1, bh2, by, 200)
    rep = fns["bcml_boot"]()
    for j, k in enumerate(("btc", "bec", "bec_h1", "nfr", "pfr", "nfi", "churn", "h1_accuracy", "h2_accuracy")):
        width = lo_hi[1, j] - lo_hi[0, j]
        if not np.allclose(rep["ci"][k], lo_hi[:, j], rtol=0, atol=0.3 * width):
            raise SystemExit("bench_scores: bootstrap intervals of %s disagree: %r vs %r" % (k, rep["ci"][k],
                                                                                           lo_hi[:, j]))
    t = median_times(fns, reps)
    t["np_boot"] *= BOOT_RESAMPLES / boot_np
    print(json.dumps({"times": t, "numpy": np.__version__, "bcml": bcml.__version__,
                      "blas_threads": bcml.get_num_threads()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 million labels, 5 repetitions")
    ap.add_argument("--n", type=int, default=None, help="labels per array (default 10 million)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (>= 5)")
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--boot-np", type=int, default=None,
                    help="NumPy bootstrap resamples timed (scaled to 1,000; default 20, --quick 5)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = args.n or (2_000_000 if args.quick else 10_000_000)
    reps = max(5, args.reps or (5 if args.quick else 11))
    boot_np = max(1, args.boot_np or (5 if args.quick else 20))
    if args.worker:
        worker(n, reps, boot_np)
        return
    print("bench_scores: BTC + BEC, %d random int64 labels per array, 10 classes, median of %d"
          % (n, reps))
    results = {}
    for threads in args.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", "--n", str(n),
                              "--reps", str(reps), "--boot-np", str(boot_np)], env=env, check=True, capture_output=True,
                             text=True)
        results[threads] = json.loads(out.stdout.strip().splitlines()[-1])
    first = next(iter(results.values()))
    print("numpy %s, bcml %s, %d CPUs" % (first["numpy"], first["bcml"], os.cpu_count()))
    print("\nNumPy candidates for both scores (ms):")
    for threads, r in results.items():
        t = r["times"]
        print("  threads=%d  " % threads + "  ".join(
            "%s %.2f" % (k[3:], v * 1e3) for k, v in t.items()
            if k.startswith("np_") and k not in ("np_separate", "np_boot")))
    print("Reading the three arrays once (NumPy sums, the memory floor of one pass): " +
          ", ".join("threads=%d %.2f ms" % (th, r["times"]["read_once"] * 1e3)
                    for th, r in results.items()))
    print("\n%-9s %-7s %12s %-16s %12s %8s" % ("case", "threads", "numpy ms", "(formulation)",
                                               "bcml ms", "speedup"))
    best = {"together": [None, None, None], "separate": [None, None, None], "bootstrap": [None, None, None]}
    for threads, r in results.items():
        t = r["times"]
        cand = min((v, k[3:]) for k, v in t.items() if k.startswith("np_") and k not in ("np_separate", "np_boot"))
        rows = [("together", cand[0], cand[1], t["bcml_together"]),
                ("separate", t["np_separate"], "two functions", t["bcml_separate"]),
                ("bootstrap", t["np_boot"], "per-sample", t["bcml_boot"])]
        for case, tn, form, tb in rows:
            print("%-9s %-7d %12.2f %-16s %12.2f %7.2fx" % (case, threads, tn * 1e3, form,
                                                           tb * 1e3, tn / tb))
            b = best[case]
            if b[0] is None or tn < b[0]:
                b[0], b[1] = tn, form
            if b[2] is None or tb < b[2]:
                b[2] = tb
    for case, (tn, form, tb) in best.items():
        print("%-9s %-7s %12.2f %-16s %12.2f %7.2fx" % (case, "best", tn * 1e3, form, tb * 1e3,
                                                       tn / tb))


if __name__ == "__main__":
    main()

"""Shared pieces of the benchmark scripts (DESIGN.md's protocol): each configuration runs in its
own process with its thread count set in the environment before any import; a configuration
reports the median of its repetitions after a warm-up; the driver prints speedups
(reference time / bcml time, above 1 means bcml is faster), for n = 1 and n = 2 threads and for
each library's best."""
import glob
import json
import os
import statistics
import subprocess
import sys
import time

# The checkout's bcml when it is built in place (python setup.py build_ext --inplace), not a copy
# installed in site-packages: every script imports this module before bcml.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if glob.glob(os.path.join(_ROOT, "bcml", "_core*.so")) and _ROOT not in sys.path:
    sys.path.insert(1, _ROOT)


def thread_env(n):
    env = dict(os.environ)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(n)
    env["BENCH_THREADS"] = str(n)
    return env


def run_config(script, args, threads):
    """Runs `python script --worker args...` with n threads; returns its JSON result."""
    cmd = [sys.executable, script, "--worker"] + [str(a) for a in args]
    out = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("benchmark worker failed: %s\n%s" % (" ".join(cmd), out.stderr[-3000:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_reps(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def torch_version():
    try:
        import torch
        return torch.__version__
    except ImportError:
        return None


def print_table(title, rows):
    """rows: list of (label, ref_seconds, bcml_seconds)."""
    print(title)
    print("  %-36s %12s %12s %9s" % ("configuration", "reference s", "bcml s", "speedup"))
    for label, ref, mine in rows:
        print("  %-36s %12.4f %12.4f %8.2fx" % (label, ref, mine, ref / mine if mine > 0 else float("inf")))
    sys.stdout.flush()


def thread_rows(label, ref, mine):
    """Table rows at 1 and 2 threads and best of each; ref, mine: {threads: seconds}."""
    sep = ", " if label else ""
    rows = [("%s%s%d thread%s" % (label, sep, n, "s" if n > 1 else ""), ref[n], mine[n]) for n in (1, 2)]
    rows.append(("%s%sbest of each" % (label, sep), min(ref[1], ref[2]), min(mine[1], mine[2])))
    return rows

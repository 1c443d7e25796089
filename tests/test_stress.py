"""Thread and fork stress tests (issue 9), bounded in count and time.

Each scenario is a small Python script run in its own interpreter by run_scenario(), with a
subprocess timeout: a crash (a signal) or a deadlock in the scenario fails the test instead of
killing or hanging pytest, and the scenario's own output names what went wrong. A scenario prints
"OK ..." as its last line when it passes. New scenarios (hogwild training, zero_grad racing
backward, .data swaps racing ops) go in as further SCRIPT strings with a test each."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_scenario(script, args=(), timeout=300):
    """Runs script (Python source) in a fresh interpreter that imports this checkout's bcml, with
    a deadline of timeout seconds; returns (returncode, stdout, stderr). Fails the test when the
    scenario outlives the deadline (the whole process group is killed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                         cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail("scenario did not finish within %d s (deadlock?)\nstdout:\n%s\nstderr:\n%s"
                    % (timeout, out[-4000:], err[-4000:]))
    return p.returncode, out, err


def check_scenario(script, args=(), timeout=300):
    code, out, err = run_scenario(script, args, timeout)
    lines = out.strip().splitlines()
    assert code == 0 and lines and lines[-1].startswith("OK"), (
        "scenario exited with %s\nstdout:\n%s\nstderr:\n%s"
        % ("signal %d" % -code if code < 0 else "code %d" % code, out[-4000:], err[-4000:]))
    return lines[-1]


# ---- fork while other threads are inside OpenBLAS ------------------------------------------
# Two threads run matmuls large enough that bcml releases the GIL (inputs over 16,384 elements)
# while the main thread forks; each child does a small matmul of its own (which goes through
# OpenBLAS's buffer allocator and bcml's allocator cache), checks it against NumPy and exits. A
# child forked while a lock of either was held would block forever: the parent polls each child
# with WNOHANG, kills one that is not done within CHILD_DEADLINE seconds and reports the
# iteration. Arguments: number of forks, child deadline in seconds.
FORK_SCRIPT = r"""
import os, sys, threading, time, warnings
import numpy as np
import bcml

warnings.simplefilter("ignore", DeprecationWarning)  # "use of fork() may lead to deadlocks"
n_forks, child_deadline = int(sys.argv[1]), float(sys.argv[2])
stop = threading.Event()
started = threading.Barrier(3)
busy_counts = [0, 0]
errors = []


def busy(k):
    rng = np.random.default_rng(k)
    pairs = []
    # square products, and batches of many small ones: each product is one cblas_sgemm call,
    # which takes and releases OpenBLAS's buffer lock, so small ones spend the largest share of
    # their time at the lock
    for shape_a, shape_b in (((96, 96), (96, 96)), ((256, 256), (256, 256)),
                             ((512, 6, 6), (512, 6, 6)), ((300, 8, 4), (300, 4, 8))):
        a = rng.standard_normal(shape_a).astype(np.float32)
        b = rng.standard_normal(shape_b).astype(np.float32)
        pairs.append((bcml.from_numpy(a), bcml.from_numpy(b), np.matmul(a.astype(np.float64), b)))
    started.wait()
    try:
        while not stop.is_set():
            for ta, tb, ref in pairs:
                got = (ta @ tb).numpy()
                if not np.allclose(got, ref, rtol=1e-4, atol=1e-3):
                    errors.append("thread %d: wrong matmul result" % k)
                    return
                busy_counts[k] += 1
    except BaseException as e:  # reported by the main thread
        errors.append("thread %d: %r" % (k, e))


rng = np.random.default_rng(99)
small_a = rng.standard_normal((24, 40)).astype(np.float32)
small_b = rng.standard_normal((40, 32)).astype(np.float32)
small_ref = small_a.astype(np.float64) @ small_b
ta, tb = bcml.from_numpy(small_a), bcml.from_numpy(small_b)

threads = [threading.Thread(target=busy, args=(k,), daemon=True) for k in range(2)]
for t in threads:
    t.start()
started.wait()
failure = None
try:
    for i in range(n_forks):
        if errors:
            failure = errors[0]
            break
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                got = (ta @ tb).numpy()
                code = 0 if np.allclose(got, small_ref, rtol=1e-4, atol=1e-4) else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + child_deadline
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                failure = "fork %d: child %d hung (killed after %.0f s)" % (i, pid, child_deadline)
                break
            time.sleep(0.0002)
        if failure:
            break
        if os.WIFSIGNALED(status):
            failure = "fork %d: child died of signal %d" % (i, os.WTERMSIG(status))
        elif os.WEXITSTATUS(status) != 0:
            failure = "fork %d: child exited with %d (2: wrong matmul result)" % (
                i, os.WEXITSTATUS(status))
        if failure:
            break
finally:
    stop.set()
    for t in threads:
        t.join(60)
if failure is None and errors:
    failure = errors[0]
if failure:
    print("FAIL", failure, flush=True)
    sys.exit(1)
if min(busy_counts) == 0:
    print("FAIL a matmul thread made no progress", busy_counts, flush=True)
    sys.exit(1)
print("OK %d forks, %d + %d matmuls in the threads" % (n_forks, *busy_counts), flush=True)
"""


def test_fork_while_threads_run_matmuls():
    """2,000 forks while two threads are inside OpenBLAS; every child finishes within 10 s."""
    check_scenario(FORK_SCRIPT, args=(2000, 10), timeout=600)

"""Thread and fork stress tests (issue 9), bounded in count and time.

Each scenario is a small Python script run in its own interpreter by check_scenario(), with a
subprocess timeout: a crash (a signal) or a deadlock in the scenario fails the test instead of
killing or hanging pytest, and the scenario's own output names what went wrong. A scenario prints
"OK ..." as its last line when it passes.""" 
import textwrap

from conftest import run_python


def check_scenario(script, args=(), timeout=300):
    """Runs a scenario script in a subprocess (run_python: a crash or a deadlock fails the test);
    its last line must start with OK."""
    out = run_python(script, timeout=timeout, args=args)
    lines = out.strip().splitlines()
    assert lines and lines[-1].startswith("OK"), "scenario output:\n%s" % out[-4000:]
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


# ---- threads sharing a model --------------------------------------------------------------
# Results may interleave, as in PyTorch, but nothing crashes. The ops are large enough (over
# 16,384 input elements) that they, backward and replayed epochs run with the GIL released, so
# the threads really overlap. Allowed outcomes besides success are the errors PyTorch gives for
# the same races: a backward whose saved weights another thread's optimizer step changed raises
# RuntimeError "modified by an inplace operation", or "invalid gradient" when the other thread
# gave a weight another shape; an op on a tensor whose shape another thread just changed raises
# ValueError.
PRELUDE = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    import bcml
    import bcml.nn.functional as F
    from bcml import nn
    bcml.set_num_threads(1)
    bcml.manual_seed(0)
    ALLOWED = ("modified by an inplace operation", "returned an invalid gradient")
    errors, counts = [], {}

    def guarded(name, body, n):
        def run():
            done = 0
            for i in range(n):
                try:
                    body(i)
                    done += 1
                except RuntimeError as e:
                    if not any(a in str(e) for a in ALLOWED):
                        errors.append((name, repr(e)))
                        return
                except ValueError as e:
                    if "shape" not in str(e) and "broadcast" not in str(e):
                        errors.append((name, repr(e)))
                        return
                except Exception as e:
                    errors.append((name, repr(e)))
                    return
            counts[name] = done
        return threading.Thread(target=run, name=name)

    def go(threads):
        for t in threads: t.start()
        for t in threads: t.join()
        if errors:
            print("ERRORS", errors)
            sys.exit(3)
        print("OK counts", counts)
""")


def _scenario(body, timeout=240):
    return check_scenario(PRELUDE + textwrap.dedent(body), timeout=timeout)


def test_hogwild_three_threads_share_one_model():
    out = _scenario("""
        model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
        opt = bcml.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = bcml.randn(128, 256)
        y = bcml.from_numpy(np.random.default_rng(0).integers(0, 10, 128))

        def step(i):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        go([guarded("hogwild%d" % k, step, 150) for k in range(3)])
        w = model[0].weight.detach().numpy()
        assert np.all(np.isfinite(w))
    """)
    assert "OK counts" in out


def test_zero_grad_races_backward():
    out = _scenario("""
        model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
        opt = bcml.optim.SGD(model.parameters(), lr=0.01)
        x = bcml.randn(128, 256)

        def back(i):
            model(x).sum().backward()

        def zero(i):
            opt.zero_grad()
            for p in model.parameters():
                g = p.grad
                if g is not None:
                    float(g.sum())      # read whatever is there
            time.sleep(0)

        def step(i):
            opt.step()

        go([guarded("backward", back, 200), guarded("zero_grad", zero, 4000), guarded("step", step, 2000)])
    """)
    assert "OK counts" in out


def test_data_swaps_race_ops_that_release_the_gil():
    out = _scenario("""
        w = bcml.randn(256, 256, requires_grad=True)
        x = bcml.randn(256, 256)
        shapes = [(256, 256), (128, 256), (256, 256)]

        def ops(i):
            y = (x @ w).relu()
            z = (y * 2.0 + x).sum()
            z.backward()
            a = w.detach().numpy().sum()       # a view of whatever storage w has now

        def swap(i):
            with bcml.no_grad():
                w.data = bcml.randn(*shapes[i % 3])
            w.grad = None

        go([guarded("ops", ops, 300), guarded("swap", swap, 3000), guarded("ops2", ops, 300)])
    """)
    assert "OK counts" in out


def test_zero_grad_and_data_swaps_race_a_replayed_epoch():
    out = _scenario("""
        from bcml.data import DataLoader
        from bcml.helpers.training import train_epoch
        from bcml.models import MLPClassifier
        rng = np.random.default_rng(0)
        X = rng.standard_normal((6000, 128)).astype(np.float32)
        Y = rng.integers(0, 4, 6000)
        model = MLPClassifier(128, 4, [256, 64])
        opt = bcml.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loader = DataLoader(X, Y, batch_size=200, shuffle=True, seed=0, return_ids=False)
        stop = threading.Event()

        def epoch(i):
            train_epoch(i + 1, model, opt, F.nll_loss, loader, 200)
            stop.set() if i == 5 else None

        def meddle(i):
            if stop.is_set():
                return
            opt.zero_grad()
            if i % 50 == 0:
                p = model.layers[0].weight
                with bcml.no_grad():
                    p.data = p.detach().clone()
            time.sleep(0)

        go([guarded("epochs", epoch, 6), guarded("meddle", meddle, 20000)])
    """, timeout=400)
    assert "OK counts" in out

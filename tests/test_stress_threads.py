"""Threads sharing a model (issue 9): results may interleave, as in PyTorch, but nothing crashes.
Each scenario runs in a subprocess with a time bound (run_python), so a crash or a deadlock fails
the test instead of taking pytest down. The ops are large enough (over 16,384 input elements)
that they, backward and replayed epochs run with the GIL released, so the threads really overlap.

Allowed outcomes besides success are the errors PyTorch gives for the same races: a backward whose
saved weights another thread's optimizer step changed raises RuntimeError "modified by an inplace
operation"; an op on a tensor whose shape another thread just changed raises ValueError."""
import textwrap

from conftest import run_python

PRELUDE = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    import bcml
    import bcml.nn.functional as F
    from bcml import nn
    bcml.set_num_threads(1)
    bcml.manual_seed(0)
    ALLOWED = ("modified by an inplace operation",)
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
        print("counts", counts)
""")


def _scenario(body, timeout=240):
    return run_python(PRELUDE + textwrap.dedent(body), timeout=timeout)


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
    assert "counts" in out


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
    assert "counts" in out


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
    assert "counts" in out


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
    assert "counts" in out

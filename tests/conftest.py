"""Shared test helpers: optional oracles (PyTorch) and data that skip on a user's machine but
FAIL when the environment variable CI is set, and finite-difference gradient checks."""
import functools
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

CI = bool(os.environ.get("CI"))
# ../shared/data beside the checkout; BCML_SHARED_DATA overrides it (CI's sanitizer run tests a
# copy of the tree that lives elsewhere)
SHARED_DATA = Path(os.environ.get("BCML_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True, scope="session")
def _poison_fresh_gradients():
    """Gradient buffers that an op's backward writes from scratch (instead of adding into zeros)
    start as NaN in every test, so an element a kernel fails to write shows in the results."""
    from bcml import _core
    before = _core.get_poison_fresh()
    _core.set_poison_fresh(1)
    yield
    _core.set_poison_fresh(before)


def need(module_name):
    """Imports an optional oracle; skips without it, fails under CI."""
    try:
        return __import__(module_name)
    except ImportError:
        if CI:
            pytest.fail("%s is required when CI is set" % module_name)
        pytest.skip("%s is not installed" % module_name)


def need_path(path):
    path = Path(path)
    if not path.exists():
        if CI:
            pytest.fail("%s is required when CI is set" % path)
        pytest.skip("%s is not available" % path)
    return path


@pytest.fixture
def torch():
    t = need("torch")
    t.set_num_threads(1)
    return t


@pytest.fixture(params=[1, 0], ids=["avx512", "portable"])
def kernels(request):
    """Runs the test on the AVX-512 kernels (where the CPU has them) and on the portable ones, and
    puts the switch back."""
    from bcml import _core
    before = _core.get_avx512()
    if request.param and not _core.cpu_avx512():
        pytest.skip("this CPU has no AVX-512")
    _core.set_avx512(request.param)
    yield request.param
    _core.set_avx512(before)


@pytest.fixture
def shared_data():
    return need_path(SHARED_DATA)


def numeric_grad(f, arrays, k, eps=1e-3):
    """Central finite differences (in float64) of the scalar f(*arrays) w.r.t. arrays[k]."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    x = arrays[k]
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f(*arrays)
        x[i] = old - eps
        fm = f(*arrays)
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def grad_check(bcml_fn, arrays, wrt=None, eps=1e-2, rtol=1e-2, atol=1e-3, seed=0):
    """bcml's gradients of bcml_fn(*tensors) against central differences (float32 bcml forward,
    float64 arithmetic): backward is seeded with fixed random weights w, and the differences are
    taken of sum(w * bcml_fn(...)), so only the ops under test are exercised."""
    import bcml
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    wrt = list(range(len(arrays))) if wrt is None else list(wrt)
    ts = [bcml.tensor(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    out = bcml_fn(*ts)
    w = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(bcml.tensor(w))

    def f(*arrs):
        with bcml.no_grad():
            o = bcml_fn(*[bcml.tensor(a.astype(np.float32)) for a in arrs])
        return float(np.sum(o.numpy().astype(np.float64) * w))

    for i in wrt:
        num = numeric_grad(f, arrays, i, eps)
        np.testing.assert_allclose(ts[i].grad.numpy(), num, rtol=rtol, atol=atol,
                                   err_msg="gradient of input %d" % i)


def check_grad(bcml_fn, arrays, eps=1e-2, rtol=1e-2, atol=1e-3, wrt=None, seed=0):
    """grad_check with eps before wrt (the older argument order)."""
    grad_check(bcml_fn, arrays, wrt, eps, rtol, atol, seed)


def child_env(env=None):
    """The environment for a child interpreter that must import the bcml under test (an installed
    copy or the in-place build): its folder first on PYTHONPATH, then the checkout and tests/ (for
    the tests' own modules). Children started with -c must also run from a neutral folder
    (child_cwd), since Python puts the working directory first on sys.path and the checkout's
    bcml/ has no build when bcml is installed with pip."""
    import bcml
    root = str(Path(__file__).resolve().parents[1])
    bcml_root = str(Path(bcml.__file__).resolve().parents[1])
    full_env = dict(os.environ)
    tests = str(Path(__file__).resolve().parent)
    full_env["PYTHONPATH"] = os.pathsep.join([bcml_root, root, tests]
                                             + [p for p in [full_env.get("PYTHONPATH")] if p])
    full_env.update(env or {})
    return full_env


def child_cwd():
    """A neutral working directory for a child interpreter (see child_env)."""
    import tempfile
    d = os.path.join(tempfile.gettempdir(), "bcml-test-child")
    os.makedirs(d, exist_ok=True)
    return d


def run_python(code, timeout=120, env=None, args=()):
    """Runs code (Python source, dedented) in a fresh interpreter that imports the bcml under test,
    with args as sys.argv[1:]; returns its stdout. A crash (signal), a hang (the whole process
    group is killed at the deadline) or a non-zero exit fails the calling test with the child's
    output, so a reproducer that used to crash the interpreter fails cleanly here."""
    import signal
    import subprocess
    import sys
    import textwrap
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=child_env(env),
                         cwd=child_cwd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail("child did not finish within %s s (a deadlock?); output:\n%s\n%s"
                    % (timeout, out[-4000:], err[-4000:]))
    if p.returncode != 0:
        how = "signal %d" % -p.returncode if p.returncode < 0 else "code %d" % p.returncode
        pytest.fail("child exited with %s; output:\n%s\n%s" % (how, out[-4000:], err[-4000:]))
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server for tmp_path/www; yields (base_url, folder, hits)."""
    www = tmp_path / "www"
    www.mkdir()
    hits = []

    class Handler(_QuietHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:{}".format(httpd.server_address[1]), www, hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def pytest_terminal_summary(terminalreporter):
    """Says where the browser tests wrote their screenshots ($BCML_ARTIFACTS or a temporary
    folder), after the run's summary."""
    import sys
    browser = sys.modules.get("_browser")
    if browser is not None and browser._ARTIFACTS:
        terminalreporter.write_line("bcml browser-test screenshots: %s" % browser._ARTIFACTS[0])

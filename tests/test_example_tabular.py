"""The README's first command: the tabular example trains h1 and h2 on real UCI Adult data."""
import importlib.util
from pathlib import Path

import numpy as np

from conftest import SHARED_DATA, need_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tabular_update.py"


def test_tabular_example_reaches_080_on_adult_test(capsys):
    need_path(SHARED_DATA / "adult.data")
    spec = importlib.util.spec_from_file_location("tabular_update", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    acc1, acc2, report = mod.main(["--data", str(SHARED_DATA)])
    out = capsys.readouterr().out
    assert acc1 >= 0.80 and acc2 >= 0.80, (acc1, acc2)
    assert "test accuracy" in out and "btc" in out.lower()
    # the report's numbers are consistent with the printed accuracies
    assert np.isclose(report["h1_accuracy"], acc1) and np.isclose(report["h2_accuracy"], acc2)
    assert 0.0 <= report["btc"] <= 1.0 and 0.0 <= report["bec"] <= 1.0


# ---- the README's first command, as a user runs it ------------------------------------------------
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from conftest import child_cwd, child_env  # noqa: E402

EXAMPLES = sorted(EXAMPLE.parent.glob("*.py"))


def _run(script, args, env, timeout=300):
    return subprocess.run([sys.executable, str(script), *args], env=child_env(env), cwd=child_cwd(),
                          capture_output=True, text=True, timeout=timeout)


def _offline(tmp_path):
    """An empty cache folder, and every download sent to a proxy on a closed port: offline, even on
    a machine that can reach UCI."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        proxy = "http://127.0.0.1:%d" % s.getsockname()[1]
    env = {k: proxy for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    env.update(no_proxy="", NO_PROXY="", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    return env


def test_first_command_runs_with_no_argument_from_any_folder(tmp_path):
    """`python examples/tabular_update.py` on a fresh clone: no ../shared, nothing in the cache, no
    network; the Adult copy bundled with bcml is read."""
    assert "shared" not in EXAMPLE.read_text()
    p = _run(EXAMPLE, [], _offline(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    accs = [float(line.rsplit(":", 1)[1]) for line in p.stdout.splitlines() if "test accuracy:" in line]
    assert len(accs) == 2 and all(0.80 <= a < 0.9 for a in accs), p.stdout
    assert "compatibility report: 16281 samples" in p.stdout
    assert not (tmp_path / "xdg").exists()


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_examples_speak_of_their_own_flags(script, tmp_path):
    """A bad --data, a --data folder without the files, and an offline --download: each a usage error
    (exit 2) naming --data / --download, not path= / download=True; the offline --download names
    every missing file and leaves no empty cache folder."""
    env = _offline(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    wanted = (["adult.data", "adult.test"] if script.stem == "tabular_update" else
              ["compas-scores-two-years.csv"] if script.stem == "why_compatibility_matters" else
              ["german.data"] if script.stem == "german_credit_sklearn" else
              ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"])
    for args, words in ((["--data", str(tmp_path / "nowhere")], ["--data", "not a folder"]),
                        (["--data", str(empty)], ["--data", "--download", "cannot find"] + wanted),
                        (["--data", str(empty), "--download"], ["--data", "--download", "could not download"] + wanted)):
        p = _run(script, args, env, timeout=120)
        assert p.returncode == 2, (args, p.stdout[-2000:], p.stderr[-3000:])
        err = p.stderr.strip().splitlines()[-1]
        assert err.startswith(script.name + ": error: "), err
        for w in words:
            assert w in err, (args, w, err)
        assert "path=" not in err and "download=True" not in err and "Traceback" not in p.stderr, err
        assert not (tmp_path / "xdg").exists(), args  # no empty cache folder left behind

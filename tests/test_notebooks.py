"""The example notebooks (notebooks/*.ipynb, issue 11 item 1).

Every notebook runs headless with nbclient in quick mode (``BCML_NOTEBOOK_QUICK=1`` changes only
the size constants of its first code cell), in a copy in a temporary folder, on real data
(Fashion-MNIST from Debian's dataset-fashion-mnist, the Adult copy bundled with bcml) or on small
files the test writes (CIFAR-format images, a ResNet18 checkpoint written by PyTorch). A run fails
on any error; afterwards every sweep folder must hold every evaluation file its summary lists,
no output may hold a traceback, and h1 must beat the majority-class rate. The committed notebooks
must hold the outputs of an executed run, with no error and no path of the machine that ran them.
None of these tests skips when CI is set."""
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FASHION_MNIST, need, need_path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]
CIFAR = {"compatibility-analysis-cifar10-resnet18", "compatibility-analysis-cifar10-resnet18-pretrained"}

# Appended to a copy of each notebook: reports what the test checks from the kernel's state.
_CHECK_CELL = """
import json as _json
print("BCML_NOTEBOOK_CHECK " + _json.dumps({"h1_accuracy": float(h1_accuracy), "majority_rate": float(majority_rate)}))
"""


def test_the_notebooks_are_there():
    expected = {"bcnllloss", "compatibility-analysis", "compatibility-analysis-adult",
                "compatibility-analysis-cifar10-resnet18", "compatibility-analysis-cifar10-resnet18-pretrained",
                "compatibility-analysis-from-saved-data", "si_cross_entropy_loss", "si_nllloss",
                "model-comparison", "why-compatibility-matters"}
    assert expected <= set(NAMES), sorted(expected - set(NAMES))


def _read(path):
    nbformat = need("nbformat")
    return nbformat.read(str(path), as_version=4)


def _texts(cell):
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            yield o.get("text", "")
        elif o.get("output_type") == "error":
            yield "\n".join(o.get("traceback", [])) + o.get("ename", "") + o.get("evalue", "")
        else:
            for mime, v in o.get("data", {}).items():
                if mime.startswith("text/"):
                    yield v if isinstance(v, str) else "".join(v)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_an_executed_run(name):
    nb = _read(ROOT / "notebooks" / (name + ".ipynb"))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, name
    first = code[0].source
    assert "BCML_NOTEBOOK_QUICK" in first, "%s: the first code cell must hold the size constants" % name
    stopped = False
    for c in code:
        if stopped:
            assert c.get("execution_count") is None, name
            continue
        assert c.get("execution_count") is not None, "%s: a cell was not executed:\n%s" % (name, c.source[:200])
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                # only the clean stop of a CIFAR notebook without its data may end a run
                assert o.get("ename") == "StopNotebook" and not o.get("traceback"), (name, o.get("ename"))
                stopped = True
        for t in _texts(c):
            assert "Traceback (most recent call last)" not in t, (name, t[:500])
            for p in ("/work/", "/tmp/", "/home/", "/root/"):
                assert p not in t, "%s: an output names this machine's path %s: %s" % (name, p, t[:300])
    if name in CIFAR:
        assert not stopped, "%s: the committed run must come from the small CIFAR-format data" % name
    assert not stopped


def _write_cifar(root, n_train=2000, n_test=400, seed=0):
    """A small CIFAR-10 binary-version folder (cifar-10-batches-bin): 32x32 colour images whose
    class sets their mean colour (learnable by h1), balanced classes."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(30, 225, size=(10, 3))
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)

    def records(n):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        img = palette[labels][:, :, None] + rng.normal(0, 25, size=(n, 3, 1024))
        img = np.clip(img, 0, 255).astype(np.uint8)
        return np.concatenate([labels.astype(np.uint8)[:, None], img.reshape(n, 3072)], axis=1)

    per = n_train // 5
    for k in range(1, 6):
        records(per).tofile(str(folder / ("data_batch_%d.bin" % k)))
    records(n_test).tofile(str(folder / "test_batch.bin"))
    (folder / "batches.meta.txt").write_text("\n".join(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]) + "\n")
    return root


def _write_resnet18_checkpoint(path):
    """torchvision's ResNet18 state_dict layout (conv1, bn1, layer1..4 with downsample, fc 1000),
    random weights, written by PyTorch's own torch.save."""
    torch = need("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            c = 64
            for i, w in enumerate((64, 128, 256, 512), 1):
                setattr(self, "layer%d" % i, nn.Sequential(Block(c, w, 1 if i == 1 else 2), Block(w, w, 1)))
                c = w
            self.fc = nn.Linear(512, 1000)

    torch.manual_seed(0)
    torch.save(ResNet18().state_dict(), str(path))
    return path


def _environment(tmp_path, name):
    env = {"BCML_NOTEBOOK_QUICK": "1", "BCML_MNIST_ROOT": str(tmp_path / "no-mnist"),
           "BCML_FASHION_MNIST_ROOT": str(need_path(FASHION_MNIST))}
    import bcml
    env["PYTHONPATH"] = os.pathsep.join([str(Path(bcml.__file__).resolve().parents[1])]
                                        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    if name in CIFAR:
        env["BCML_CIFAR10_ROOT"] = str(_write_cifar(tmp_path / "cifar"))
    if name.endswith("-pretrained"):
        env["BCML_RESNET18_CHECKPOINT"] = str(_write_resnet18_checkpoint(tmp_path / "resnet18.pth"))
    if name == "why-compatibility-matters":
        from conftest import SHARED_DATA
        env["BCML_SHARED_DATA"] = str(need_path(SHARED_DATA))
        env["PYTHONPATH"] += os.pathsep + str(ROOT / "examples")  # the study's code
    return env


def _execute(nb, cwd, env, monkeypatch, timeout=900):
    need("ipykernel")
    need("matplotlib")  # the notebooks plot
    nbclient = need("nbclient")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def _check_sweeps(folder):
    """Every sweep under folder: its summary lists one point per loss kind, split and lambda_c,
    and every point's evaluation file exists and reads as JSON."""
    sweeps = [p.parent for p in folder.rglob("sweep_summary.json")]
    for sweep in sweeps:
        summary = json.loads((sweep / "sweep_summary.json").read_text())
        idx = sorted(r["datapoint_index"] for r in summary["data"])
        lambdas = {r["lambda_c"] for r in summary["data"]}
        assert idx == list(range(4 * len(lambdas))), (sweep, idx, lambdas)
        for i in idx:
            f = sweep / ("%d-evaluation-data.json" % i)
            assert f.is_file(), f
            json.loads(f.read_text())
    return sweeps


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_quick_mode(name, tmp_path, monkeypatch):
    nbformat = need("nbformat")
    work = tmp_path / "run"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / (name + ".ipynb"), work)
    nb = _read(work / (name + ".ipynb"))
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.cells.append(nbformat.v4.new_code_cell(_CHECK_CELL))
    _execute(nb, work, _environment(tmp_path, name), monkeypatch)
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for t in _texts(c):
            assert "Traceback (most recent call last)" not in t, (name, t[:2000])
        assert not [o for o in c.outputs if o.get("output_type") == "error"], (name, c.source[:300])
    line = [t for t in _texts(nb.cells[-1]) if "BCML_NOTEBOOK_CHECK" in t]
    assert line, "%s: the notebook must define h1_accuracy and majority_rate" % name
    check = json.loads(line[0].split("BCML_NOTEBOOK_CHECK ", 1)[1])
    assert check["h1_accuracy"] > check["majority_rate"], (name, check)
    sweeps = _check_sweeps(work)
    uses_sweep = any("start_sweep()" in c.source or "compatibility_sweep(" in c.source or "run_sweeps(" in c.source
                     for c in nb.cells if c.cell_type == "code")
    assert bool(sweeps) == uses_sweep, (name, sweeps)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_notebook_without_its_data_stops_cleanly(name, tmp_path, monkeypatch):
    nbclient = need("nbclient")
    work = tmp_path / "run"
    work.mkdir()
    nb = _read(ROOT / "notebooks" / (name + ".ipynb"))
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    env = {"BCML_NOTEBOOK_QUICK": "1", "BCML_CIFAR10_ROOT": str(tmp_path / "empty")}
    import bcml
    env["PYTHONPATH"] = str(Path(bcml.__file__).resolve().parents[1])
    with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
        _execute(nb, work, env, monkeypatch, timeout=300)
    assert info.value.ename == "StopNotebook"
    stopped = [c for c in nb.cells if c.cell_type == "code"
               and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(stopped) == 1
    err = [o for o in stopped[0].outputs if o.get("output_type") == "error"][0]
    assert err.get("traceback") == []  # IPython renders nothing for it: no traceback shown
    said = "".join(_texts(stopped[0]))
    assert "CIFAR-10 is not available" in said and "Traceback" not in said
    later = nb.cells[nb.cells.index(stopped[0]) + 1:]
    assert all(not c.get("outputs") for c in later if c.cell_type == "code")

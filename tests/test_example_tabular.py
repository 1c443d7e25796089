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

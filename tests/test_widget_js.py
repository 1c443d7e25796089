"""The widget's ES module (bcml/widget/static/widget.js): its pure helpers (Venn lens area and
bisection, axis ticks, paging, point and instance filtering, CSV) and the static report's
stand-in model, under ``node --test`` (tests/js/*.test.mjs). Node is Debian's ``nodejs``; the
test skips without it on a user's machine and fails when CI is set."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CI

JS_TESTS = Path(__file__).resolve().parent / "js"


def test_node_suite():
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        if CI:
            pytest.fail("node is required when CI is set (apt install nodejs)")
        pytest.skip("node is not installed")
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, "no tests/js/*.test.mjs"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONMALLOC")}  # (the ASan run)
    out = subprocess.run([node, "--test", *files], capture_output=True, text=True, env=env, timeout=300,
                         cwd=str(JS_TESTS))
    report = out.stdout + out.stderr
    counts = dict(re.findall(r"^# (pass|fail|cancelled|skipped|todo) (\d+)$", report, re.M))
    assert out.returncode == 0 and counts.get("fail") == "0", report[-6000:]
    assert int(counts.get("pass", 0)) >= 20 and counts.get("skipped", "0") == "0", report[-3000:]

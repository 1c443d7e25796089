"""Shared pieces of the browser tests: Debian's Chromium driven by Playwright for Python (its own
browser download cannot reach its host here), and the artifacts folder for screenshots. Both are
optional on a user's machine (the tests skip) and required when CI is set (the tests fail)."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import CI

OKABE_ITO = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}


def chromium_path():
    for p in (os.environ.get("BCML_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if p and os.path.exists(p):
            return p
    return None


def need_browser():
    """(sync_playwright, chromium path), or skip (fail under CI)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if CI:
            pytest.fail("playwright is required when CI is set (pip install playwright)")
        pytest.skip("playwright is not installed")
    path = chromium_path()
    if path is None:
        if CI:
            pytest.fail("chromium is required when CI is set (apt install chromium)")
        pytest.skip("chromium is not installed")
    return sync_playwright, path


_ARTIFACTS = []


def artifacts_dir():
    """$BCML_ARTIFACTS, or one temporary folder per run; its path is printed once."""
    if not _ARTIFACTS:
        d = os.environ.get("BCML_ARTIFACTS") or tempfile.mkdtemp(prefix="bcml-artifacts-")
        os.makedirs(d, exist_ok=True)
        _ARTIFACTS.append(Path(d))
        print("\nbcml browser-test artifacts (screenshots): %s" % d)
    return _ARTIFACTS[0]


def launch(pw, path):
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    return pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])


def hex_colour(css):
    """'rgb(0, 114, 178)' or '#0072b2' -> '#0072B2' (None for 'none' and the like)."""
    css = (css or "").strip()
    if css.startswith("#") and len(css) == 7:
        return css.upper()
    if css.startswith("rgb"):
        parts = css[css.index("(") + 1:css.index(")")].split(",")
        r, g, b = (int(float(x)) for x in parts[:3])
        return "#%02X%02X%02X" % (r, g, b)
    return None


class ConsoleLog:
    """Collects a page's console errors and uncaught exceptions."""

    def __init__(self, page):
        self.errors = []
        page.on("console", lambda m: self.errors.append("console.%s: %s" % (m.type, m.text))
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append("pageerror: %s" % e))

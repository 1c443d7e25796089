"""`bcml check` (bcml/_check.py, issue 13 item 4): the CI gate's exit status 0/1/2 on prepared
files, against hand-computed scores of constructed updates (NFR, BTC and BEC known exactly), the
--ci rule (a point estimate beyond a threshold whose interval is not), cohorts, every input
format, and exit 2 with the file named for every kind of unreadable or mismatched input. Most
cases run main() in-process; a few run `python -m bcml check` in a child interpreter."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import child_cwd, child_env

import bcml
from bcml import _check

ROOT = Path(__file__).resolve().parents[1]


# ---- constructed updates ----------------------------------------------------------------------
def update(rr, rw, wr, ww, seed=0):
    """Binary labels (h1, h2, y) with exactly rr rows both right, rw h1 right & h2 wrong (the
    negative flips), wr h1 wrong & h2 right, ww both wrong, in a shuffled order."""
    rng = np.random.default_rng(seed)
    n = rr + rw + wr + ww
    y = rng.integers(0, 2, n)
    kind = rng.permutation(np.repeat(np.arange(4), [rr, rw, wr, ww]))
    h1 = np.where((kind == 0) | (kind == 1), y, 1 - y)
    h2 = np.where((kind == 0) | (kind == 2), y, 1 - y)
    return h1, h2, y


# n = 1000: h1 right on 800, h2 breaks 30 of them; of h1's 200 errors h2 fixes 150
# NFR = 30/1000 = 0.03, BTC = 770/800 = 0.9625, BEC = 50/(30 + 50) = 0.625
BIG = dict(rr=770, rw=30, wr=150, ww=50)


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        if header is not None:
            f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in (r if isinstance(r, (list, tuple)) else [r])) + "\n")
    return str(path)


def npy_set(tmp_path, h1, h2, y, groups=None):
    """The three (four) inputs as .npy files."""
    out = []
    for name, a in (("h1", h1), ("h2", h2), ("y", y)) + ((("g", groups),) if groups is not None else ()):
        p = str(tmp_path / (name + ".npy"))
        np.save(p, np.asarray(a))
        out.append(p)
    return out


def check(capsys, *argv):
    """(exit status, stdout, stderr) of main(argv) in this process."""
    status = _check.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def gate_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def big(tmp_path):
    return npy_set(tmp_path, *update(**BIG))


# ---- thresholds on exactly known scores ---------------------------------------------------------
@pytest.mark.parametrize("option, value, status", [
    ("--max-nfr", "0.03", 0), ("--max-nfr", "0.029", 1), ("--max-nfr", "0.1", 0), ("--max-nfr", "0", 1),
    ("--min-btc", "0.9625", 0), ("--min-btc", "0.963", 1), ("--min-btc", "0.5", 0), ("--min-btc", "1", 1),
    ("--min-bec", "0.625", 0), ("--min-bec", "0.63", 1), ("--min-bec", "0", 0),
])
def test_threshold_on_point_estimate(capsys, big, option, value, status):
    h1, h2, y = big
    code, out, err = check(capsys, "--h1", h1, "--h2", h2, "--labels", y, option, value)
    assert (code, err) == (status, "")
    assert "compatibility report: 1000 samples, 2 classes" in out
    word = "FAIL" if status else "PASS"
    score = option.split("-")[-1].upper()
    assert "%s   overall %s: " % (word, score) in out
    assert out.rstrip().endswith("FAILED, 1 of 1 checks" if status else "passed (1 check)")


def test_report_and_json_equal_bcml_scores(capsys, big, tmp_path):
    h1, h2, y = big
    j = tmp_path / "out.json"
    code, out, _ = check(capsys, "--h1", h1, "--h2", h2, "--labels", y, "--min-btc", 0.97, "--max-nfr", 0.02,
                         "--min-bec", 0.6, "--json", j)
    assert code == 1
    a1, a2, ay = (np.load(p) for p in big)
    doc = gate_json(j)
    # the report is bcml.compare's, printed as its repr
    want = bcml.compare(a1, a2, ay, ci=None)
    assert out.startswith(repr(want))
    assert doc["nfr"] == bcml.scores.negative_flip_rate(a1, a2, ay) == 0.03
    assert doc["btc"] == bcml.scores.trust_compatibility_score(a1, a2, ay) == 770 / 800
    assert doc["bec"] == bcml.scores.error_compatibility_score(a1, a2, ay) == 50 / 80
    assert doc["counts"] == {"h1_right_h2_right": 770, "h1_right_h2_wrong": 30, "h1_wrong_h2_right": 150,
                             "both_wrong": 50, "h1_ne_h2": 180}
    assert {k for k in want.to_dict()} <= set(doc)
    g = doc["gate"]
    assert g["passed"] is False and g["exit_status"] == 1 and g["ci"] is None and g["failures"] == 2
    assert g["thresholds"] == {"min_btc": 0.97, "max_nfr": 0.02, "min_bec": 0.6}
    assert [(c["scope"], c["name"], c["n"], c["score"], c["kind"], c["threshold"], c["value"], c["interval"],
             c["verdict"]) for c in g["checks"]] == [
        ("overall", "overall", 1000, "btc", "min", 0.97, 770 / 800, None, "fail"),
        ("overall", "overall", 1000, "nfr", "max", 0.02, 0.03, None, "fail"),
        ("overall", "overall", 1000, "bec", "min", 0.6, 0.625, None, "pass")]


def test_no_threshold_passes(capsys, big):
    code, out, _ = check(capsys, "--h1", big[0], "--h2", big[1], "--labels", big[2])
    assert code == 0 and "no thresholds given" in out and "passed (0 checks)" in out


# ---- the --ci rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, point, with_ci", [
    # NFR 0.03 of 1000 rows: its 95% interval is about [0.02, 0.04]; BTC 0.9625: about [0.95, 0.975]
    ("--max-nfr", "0.025", 1, 0),   # beyond by the point estimate, not by the interval
    ("--max-nfr", "0.01", 1, 1),    # the whole interval above 0.01
    ("--max-nfr", "0.05", 0, 0),
    ("--min-btc", "0.97", 1, 0),
    ("--min-btc", "0.99", 1, 1),    # the whole interval below 0.99
    ("--min-bec", "0.9", 1, 1),     # BEC 50/80: the interval stays far below 0.9
])
def test_ci_rule(capsys, big, tmp_path, option, value, point, with_ci):
    h1, h2, y = big
    assert check(capsys, "--h1", h1, "--h2", h2, "--labels", y, option, value)[0] == point
    j = tmp_path / "ci.json"
    code, out, _ = check(capsys, "--h1", h1, "--h2", h2, "--labels", y, option, value, "--ci", "0.95",
                         "--n-boot", 400, "--seed", 7, "--json", j)
    assert code == with_ci
    # the interval is bcml.compare's (same seed and resamples), and the verdict follows it
    a1, a2, ay = (np.load(p) for p in big)
    key = option.split("-")[-1]
    lo, hi = bcml.compare(a1, a2, ay, ci=0.95, n_boot=400, seed=7)["ci"][key]
    (c,) = gate_json(j)["gate"]["checks"]
    assert c["interval"] == [lo, hi]
    t = float(value)
    assert c["verdict"] == ("fail" if (hi < t if option.startswith("--min") else lo > t) else "pass")
    if point and not with_ci:
        assert "(the point estimate is beyond it, the interval is not)" in out
    if with_ci:
        assert "(the whole interval is beyond it)" in out


def test_ci_default_level_and_seed_reproducible(capsys, big, tmp_path):
    h1, h2, y = big
    docs = []
    for k in range(2):
        j = tmp_path / ("r%d.json" % k)
        assert check(capsys, "--h1", h1, "--h2", h2, "--labels", y, "--max-nfr", 0.025, "--ci",
                     "--n-boot", 300, "--json", j)[0] == 0
        docs.append(gate_json(j))
    assert docs[0]["ci_settings"] == {"level": 0.95, "n_boot": 300, "seed": 0}
    assert docs[0]["ci"] == docs[1]["ci"] and docs[0]["gate"]["ci"] == 0.95


def test_undefined_score_does_not_fail(capsys, tmp_path):
    # h2 makes no error: BEC = 0/0, undefined; nothing can regress
    h1, h2, y = update(rr=40, rw=0, wr=10, ww=0)
    p = npy_set(tmp_path, h1, h2, y)
    code, out, _ = check(capsys, "--h1", p[0], "--h2", p[1], "--labels", p[2], "--min-bec", 0.5, "--ci",
                         "--n-boot", 100)
    assert code == 0 and "UNDEFINED overall BEC: nan" in out and "(undefined: nothing to regress)" in out


# ---- cohorts ------------------------------------------------------------------------------------
def _cohorts(tmp_path):
    """Cohort a (40 rows): 8 negative flips (NFR 0.2); b (60): none; tiny (10): all 10 flipped."""
    parts = [update(32, 8, 0, 0, 1), update(50, 0, 5, 5, 2), update(0, 10, 0, 0, 3)]
    h1, h2, y = (np.concatenate([p[k] for p in parts]) for k in range(3))
    g = np.repeat(["a", "b", "tiny"], [40, 60, 10])
    return npy_set(tmp_path, h1, h2, y, g), (h1, h2, y, g)


def test_cohorts_gate_every_large_cohort(capsys, tmp_path):
    (h1, h2, y, g), arrays = _cohorts(tmp_path)
    # overall NFR = 18 / 110 = 0.1636: passes 0.17; cohort a (0.2) fails; tiny (1.0) is too small to gate
    j = tmp_path / "c.json"
    code, out, _ = check(capsys, "--h1", h1, "--h2", h2, "--labels", y, "--groups", g, "--max-nfr", 0.17,
                         "--json", j)
    assert code == 1
    checks = gate_json(j)["gate"]["checks"]
    assert [(c["scope"], c["name"], c["n"], c["value"], c["verdict"]) for c in checks] == [
        ("overall", "overall", 110, 18 / 110, "pass"), ("cohort", "a", 40, 0.2, "fail"),
        ("cohort", "b", 60, 0.0, "pass")]
    assert "FAIL   cohort 'a' (n=40) NFR: 0.2000" in out and "FAILED, 1 of 3 checks" in out
    assert "(too small to rank)" in out   # the report still lists the small cohort
    report = bcml.compare(*arrays[:3], groups=arrays[3], ci=None)
    assert gate_json(j)["per_group"] == json.loads(report.to_json())["per_group"]
    # a smaller --min-group-size gates the tiny cohort too
    code, out, _ = check(capsys, "--h1", h1, "--h2", h2, "--labels", y, "--groups", g, "--max-nfr", 0.5,
                         "--min-group-size", 10)
    assert code == 1 and "FAIL   cohort 'tiny' (n=10) NFR: 1.0000" in out and "FAILED, 1 of 4 checks" in out
    assert check(capsys, "--h1", h1, "--h2", h2, "--labels", y, "--groups", g, "--max-nfr", 0.5)[0] == 0


def test_cohorts_with_ci(capsys, tmp_path):
    (h1, h2, y, g), arrays = _cohorts(tmp_path)
    j = tmp_path / "c.json"
    # cohort a: NFR 8/40 = 0.2; 0.1 is beyond it by the point estimate, and 0.01 by its whole interval
    report = bcml.compare(*arrays[:3], groups=arrays[3], ci=0.95, n_boot=300, seed=0)
    want = {e["group"]: e["ci"]["nfr"] for e in report["per_group"]}
    want["overall"] = report["ci"]["nfr"]
    # overall 18/110 = 0.164 [0.10, 0.24], cohort a 8/40 = 0.2 [0.075, 0.325], b 0 [0, 0]
    assert 0.05 < want["overall"][0] < 0.12 and 0.05 < want["a"][0] < 0.09
    for t, status in ((0.12, 0), (0.09, 1), (0.05, 1), (0.3, 0)):
        assert check(capsys, "--h1", h1, "--h2", h2, "--labels", y, "--groups", g, "--max-nfr", t, "--ci",
                     "--n-boot", 300, "--json", j)[0] == status
        checks = gate_json(j)["gate"]["checks"]
        assert [c["name"] for c in checks] == ["overall", "a", "b"]
        for c in checks:
            assert c["interval"] == want[c["name"]]
            assert c["verdict"] == ("fail" if c["interval"][0] > t else "pass")
        # with 0.12, overall and cohort a pass by their intervals (but fail by their point estimates)
        assert [c["verdict"] for c in checks] == {0.12: ["pass", "pass", "pass"], 0.09: ["fail", "pass", "pass"],
                                                  0.05: ["fail", "fail", "pass"], 0.3: ["pass", "pass", "pass"]}[t]
    assert check(capsys, "--h1", h1, "--h2", h2, "--labels", y, "--groups", g, "--max-nfr", 0.12)[0] == 1


# ---- input formats ------------------------------------------------------------------------------
def _same_counts(capsys, tmp_path, h1, h2, y, *extra):
    j = tmp_path / "fmt.json"
    code, out, err = check(capsys, "--h1", h1, "--h2", h2, "--labels", y, "--json", j, *extra)
    assert (code, err) == (0, "")
    return gate_json(j)


SMALL = update(rr=20, rw=3, wr=5, ww=2, seed=4)   # 30 rows, NFR 0.1, BTC 20/23


def test_csv_by_name_position_with_and_without_header(capsys, tmp_path):
    h1, h2, y = SMALL
    ref = bcml.compare(h1, h2, y, ci=None).to_dict()
    ids = np.arange(100, 130)
    wide = write_csv(tmp_path / "wide.csv", ["id", "old", "new", "truth"], zip(ids, h1, h2, y))
    bare = write_csv(tmp_path / "bare.csv", None, zip(ids, h1, h2, y))
    one = write_csv(tmp_path / "one.csv", None, y)
    named = write_csv(tmp_path / "named.csv", ["label"], y)
    for a, b, c in ((wide + ":old", wide + ":new", wide + ":truth"),    # by name
                    (wide + ":1", wide + ":2", wide + ":3"),            # by position, with a header
                    (bare + ":1", bare + ":2", bare + ":3"),            # without a header
                    (bare + ":1", wide + ":new", one),                   # one column, no header: no COLUMN
                    (bare + ":1", wide + ":new", named)):                # one column with a header
        doc = _same_counts(capsys, tmp_path, a, b, c)
        assert doc["counts"] == ref["counts"] and doc["nfr"] == 0.1 and doc["n"] == 30


def test_npy_layouts(capsys, tmp_path):
    h1, h2, y = SMALL
    ref = bcml.compare(h1, h2, y, ci=None).to_dict()
    np.save(tmp_path / "cols.npy", np.stack([h1, h2, y], axis=1).astype(np.int32))
    np.save(tmp_path / "f.npy", y.astype(np.float32))       # integral floats are labels
    rec = np.zeros(30, dtype=[("old", "i8"), ("new", "u1"), ("truth", "i2")])
    rec["old"], rec["new"], rec["truth"] = h1, h2, y
    np.save(tmp_path / "rec.npy", rec)
    c = str(tmp_path / "cols.npy")
    r = str(tmp_path / "rec.npy")
    for a, b, t in ((c + ":0", c + ":1", str(tmp_path / "f.npy")), (r + ":old", r + ":new", r + ":truth"),
                    (r + ":0", r + ":1", c + ":2")):
        assert _same_counts(capsys, tmp_path, a, b, t)["counts"] == ref["counts"]


def test_class_names_mapped_over_all_inputs(capsys, tmp_path):
    h1, h2, y = update(rr=30, rw=4, wr=6, ww=3, seed=5)
    names = np.array(["no", "yes"])
    ref = bcml.compare(h1, h2, y, class_names=["no", "yes"], ci=None).to_dict()
    a = write_csv(tmp_path / "a.csv", ["pred"], names[h1])
    np.save(tmp_path / "b.npy", names[h2])                  # a NumPy str array
    t = write_csv(tmp_path / "t.csv", ["y"], names[y])
    doc = _same_counts(capsys, tmp_path, a, str(tmp_path / "b.npy"), t)
    assert [pc["name"] for pc in doc["per_class"]] == ["no", "yes"]
    assert doc["per_class"] == ref["per_class"] and doc["counts"] == ref["counts"]
    # names the labels never use in one input (h2 never says "maybe") are still classes; sorted names
    h2n = np.where(h2 == 0, "maybe", "yes")
    b2 = write_csv(tmp_path / "b2.csv", ["pred"], h2n)
    doc = _same_counts(capsys, tmp_path, a, b2, t)
    assert [pc["name"] for pc in doc["per_class"]] == ["maybe", "no", "yes"]
    codes = {"maybe": 0, "no": 1, "yes": 2}
    want = bcml.compare([codes[v] for v in names[h1]], [codes[v] for v in h2n], [codes[v] for v in names[y]],
                        num_classes=3, ci=None).to_dict()
    assert doc["counts"] == want["counts"]
    # ints beside names: read as names ("1" is a class name among "0", "1", "cat")
    mixed = write_csv(tmp_path / "m.csv", ["pred"], np.where(h1 == 0, "cat", "1"))
    np.save(tmp_path / "yi.npy", y)
    doc = _same_counts(capsys, tmp_path, mixed, str(tmp_path / "b.npy"), str(tmp_path / "yi.npy"))
    assert [pc["name"] for pc in doc["per_class"]] == ["0", "1", "cat", "no", "yes"]


def test_probabilities(capsys, tmp_path):
    rng = np.random.default_rng(6)
    n, C = 40, 3
    y = rng.integers(0, C, n)
    p1 = rng.dirichlet(np.ones(C), n)
    p2 = rng.dirichlet(np.ones(C), n)
    np.save(tmp_path / "p1.npy", p1)
    f2 = write_csv(tmp_path / "p2.csv", ["c0", "c1", "c2"], ["%.17g,%.17g,%.17g" % tuple(r) for r in p2])
    np.save(tmp_path / "y.npy", y)
    doc = _same_counts(capsys, tmp_path, str(tmp_path / "p1.npy"), f2, str(tmp_path / "y.npy"))
    ref = bcml.compare(p1.argmax(1), p2.argmax(1), y, ci=None).to_dict()
    assert doc["counts"] == ref["counts"]
    assert doc["prob_churn"] == pytest.approx(0.5 * np.abs(p1 - p2).sum(axis=1).mean(), rel=1e-12)
    # class names: the header names each column's class, in any order
    names = np.array(["bird", "cat", "dog"])
    perm = [2, 0, 1]
    f1 = write_csv(tmp_path / "n1.csv", list(names[perm]), ["%.17g,%.17g,%.17g" % tuple(r[perm]) for r in p1])
    t = write_csv(tmp_path / "t.csv", ["y"], names[y])
    f2n = write_csv(tmp_path / "n2.csv", ["pred"], names[p2.argmax(1)])
    doc = _same_counts(capsys, tmp_path, f1, f2n, t)
    assert doc["counts"] == ref["counts"] and [pc["name"] for pc in doc["per_class"]] == list(names)
    assert doc["prob_churn"] is None   # h1's probabilities, not h2's: no probability churn
    a1, a2 = p1.argmax(1), p2.argmax(1)
    reg = (a1 == y) & (a2 != y)
    assert reg.sum() >= 2
    assert doc["regressed_h1_confidence"] == pytest.approx(p1[reg, a1[reg]].mean(), rel=1e-12)


def test_groups_formats(capsys, tmp_path):
    (h1, h2, y, g), (a1, a2, ay, ag) = _cohorts(tmp_path)
    ref = [(e["group"], e["n"], e["nfr"]) for e in bcml.compare(a1, a2, ay, groups=ag, ci=None)["per_group"]]
    gc = write_csv(tmp_path / "g.csv", ["id", "band"], zip(range(110), ag))
    codes = {"a": 0, "b": 1, "tiny": 2}
    np.save(tmp_path / "gi.npy", np.array([codes[v] for v in ag]))
    for spec, names in ((gc + ":band", ["a", "b", "tiny"]), (gc + ":1", ["a", "b", "tiny"]),
                        (str(tmp_path / "gi.npy"), ["0", "1", "2"])):
        doc = _same_counts(capsys, tmp_path, h1, h2, y, "--groups", spec)
        assert [(e["group"], e["n"], e["nfr"]) for e in doc["per_group"]] == \
            [(nm, k, v) for nm, (_, k, v) in zip(names, ref)]


def test_parquet(capsys, tmp_path):
    pa = pytest.importorskip("pyarrow")   # pyarrow comes with mlflow, which .ci/run installs; a user without it skips
    import pyarrow.parquet as pq
    h1, h2, y = SMALL
    ref = bcml.compare(h1, h2, y, ci=None).to_dict()
    pq.write_table(pa.table({"old": h1, "new": h2, "truth": [str(v) for v in y]}), str(tmp_path / "p.parquet"))
    p = str(tmp_path / "p.parquet")
    doc = _same_counts(capsys, tmp_path, p + ":old", p + ":1", p + ":truth")
    assert doc["counts"] == ref["counts"]
    code, _, err = check(capsys, "--h1", p + ":nope", "--h2", p + ":new", "--labels", p + ":truth")
    assert code == 2 and "--h1 %s:nope: no column named 'nope'" % p in err
    # rows of probabilities (every column, no :COLUMN), a missing value, a damaged file
    p1 = np.eye(2)[h1] * 0.75 + 0.125
    # (truth holds strings, so the labels are class names "0" and "1": the columns' names)
    pq.write_table(pa.table({"1": p1[:, 1], "0": p1[:, 0]}), str(tmp_path / "proba.parquet"))
    doc = _same_counts(capsys, tmp_path, str(tmp_path / "proba.parquet"), p + ":new", p + ":truth")
    assert doc["counts"] == ref["counts"] and doc["regressed_h1_confidence"] == 0.875
    pq.write_table(pa.table({"c0": p1[:, 0], "c1": p1[:, 1]}), str(tmp_path / "pc.parquet"))
    code, _, err = check(capsys, "--h1", tmp_path / "pc.parquet", "--h2", p + ":new", "--labels", p + ":truth")
    assert code == 2 and "--h1 %s: its columns ('c0', 'c1') name none of the classes of the labels ('0', '1')" \
        % (tmp_path / "pc.parquet") in err
    pq.write_table(pa.table({"y": [0, None] + [1] * 28}), str(tmp_path / "null.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but not really")
    for name, text in (("null.parquet", "column 'y' has a missing value at row 1"),
                       ("bad.parquet", "not a readable Parquet file")):
        code, _, err = check(capsys, "--h1", p + ":old", "--h2", p + ":new", "--labels", tmp_path / name)
        assert code == 2 and "--labels %s: %s" % (tmp_path / name, text) in err


def test_parquet_without_pyarrow(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)   # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    p = tmp_path / "h1.parquet"
    p.write_bytes(b"PAR1")
    t = write_csv(tmp_path / "y.csv", None, [0, 1])
    code, out, err = check(capsys, "--h1", p, "--h2", t, "--labels", t)
    assert code == 2 and out == ""
    assert err == "python -m bcml check: error: --h1 %s: reading .parquet files needs pyarrow (pip install " \
                  "pyarrow), which is not installed\n" % p


# ---- unreadable or mismatched input: exit 2, the file named --------------------------------------
def _bad_inputs(tmp_path):
    """(h1 spec, h2 spec, labels spec, extra args, the message's expected text)."""
    h1, h2, y = SMALL
    good = write_csv(tmp_path / "good.csv", ["old", "new", "y"], zip(h1, h2, y))
    G = lambda c: good + ":" + c   # noqa: E731
    d = tmp_path
    short = write_csv(d / "short.csv", ["y"], y[:-1])
    frac = write_csv(d / "frac.csv", ["y"], list(y[:-1]) + ["0.5"])
    neg = write_csv(d / "neg.csv", None, list(y[:-1]) + [-1])
    empty_cell = write_csv(d / "hole.csv", ["y"], list(y[:10]) + [""] + list(y[11:]))
    ragged = write_csv(d / "ragged.csv", ["a", "b"], [(0, 1)] * 5 + [(1,)] + [(0, 1)] * 24)
    blank = write_csv(d / "blank.csv", None, [])
    header_only = write_csv(d / "header.csv", ["y"], [])
    txt = write_csv(d / "y.txt", None, y)
    two = write_csv(d / "two.csv", ["a", "b"], zip(y, y))
    np.save(d / "obj.npy", np.array([1, "a", None] * 10, dtype=object), allow_pickle=True)
    np.save(d / "cube.npy", np.zeros((30, 2, 2)))
    np.save(d / "cplx.npy", np.zeros(30, dtype=complex))
    (d / "junk.npy").write_bytes(b"not an npy file at all")
    (d / "latin.csv").write_bytes(b"y\n" + b"\xe9\n" * 30)
    os.mkdir(d / "folder.csv")
    pn = write_csv(d / "pn.csv", ["c0", "c1"], [("0.5", "0.5")] * 29 + [("high", "0.5")])
    psum = write_csv(d / "psum.csv", ["c0", "c1"], [("0.5", "0.5")] * 29 + [("0.5", "0.7")])
    prange = write_csv(d / "prange.csv", ["c0", "c1"], [("0.5", "0.5")] * 29 + [("1.5", "-0.5")])
    pnan = write_csv(d / "pnan.csv", ["c0", "c1"], [("0.5", "0.5")] * 29 + [("nan", "0.5")])
    p3 = write_csv(d / "p3.csv", ["c0", "c1"], [("0.5", "0.5")] * 30)
    names = write_csv(d / "names.csv", ["y"], np.array(["no", "yes"])[y])
    pbare = str(d / "pbare.npy")
    np.save(pbare, np.full((30, 2), 0.5))
    y3 = write_csv(d / "y3.csv", ["y"], list(y[:-1]) + [2])
    gtwo = write_csv(d / "g2.csv", ["a", "b"], zip(y, y))
    gshort = write_csv(d / "gs.csv", ["g"], ["x"] * 29)
    huge = write_csv(d / "huge.csv", ["y"], list(y[:-1]) + [2 ** 40])   # beyond the classes bcml supports
    return [
        (str(d / "missing.csv"), G("new"), G("y"), [], "--h1 %s: no such file" % (d / "missing.csv")),
        (G("old"), G("nope"), G("y"), [], "--h2 %s:nope: no column named 'nope' (columns: 'old', 'new', 'y')" % good),
        (G("old"), G("new"), G("7"), [], "--labels %s:7: column 7 is out of range (the file has 3 columns: "
                                         "positions 0 to 2)" % good),
        (G("old"), G("new"), short, [], "--labels %s: has 29 rows, but --h1 %s:old has 30" % (short, good)),
        (G("old"), G("new"), frac, [], "--labels %s: line 31 holds 0.5, not a label" % frac),
        (G("old"), G("new"), neg, [], "--labels %s: line 30 holds the label -1 (class indices start at 0)" % neg),
        (G("old"), G("new"), empty_cell, [], "--labels %s: line 12 is empty (a label is missing)" % empty_cell),
        (G("old"), G("new"), ragged + ":a", [], "--labels %s:a: line 7 has 1 field, but the header has 2" % ragged),
        (G("old"), G("new"), blank, [], "--labels %s: the file is empty" % blank),
        (G("old"), G("new"), header_only, [], "--labels %s: the file has a header row (y) but no data" % header_only),
        (G("old"), G("new"), txt, [], "--labels %s: unknown file type '.txt'" % txt),
        (G("old"), G("new"), two, [], "--labels %s: the file has 2 columns; name the one to use" % two),
        (G("old"), G("new"), str(d / "obj.npy"), [], "--labels %s: not a readable .npy file" % (d / "obj.npy")),
        (G("old"), G("new"), str(d / "cube.npy"), [], "--labels %s: expected a 1-D array" % (d / "cube.npy")),
        (G("old"), G("new"), str(d / "cplx.npy"), [], "--labels %s: holds complex128 values, not labels"
         % (d / "cplx.npy")),
        (G("old"), G("new"), str(d / "junk.npy"), [], "--labels %s: not a readable .npy file" % (d / "junk.npy")),
        (G("old"), G("new"), str(d / "latin.csv"), [], "--labels %s: not a UTF-8 text file" % (d / "latin.csv")),
        (G("old"), G("new"), str(d / "folder.csv"), [], "--labels %s: is a folder, not a file" % (d / "folder.csv")),
        (G("old"), pbare + ":x", G("y"), [], "--h2 %s:x: no column named 'x' (the file has no header "
                                                             "row" % pbare),
        (pn, G("new"), G("y"), [], "--h1 %s: line 31, column 0 holds 'high', not a probability" % pn),
        (psum, G("new"), G("y"), [], "--h1 %s: line 31 sums to 1.2; rows of class probabilities must sum to 1"
         % psum),
        (prange, G("new"), G("y"), [], "--h1 %s: line 31 holds a value outside [0, 1]" % prange),
        (pnan, G("new"), G("y"), [], "--h1 %s: line 31, column 0 holds nan, not a probability" % pnan),
        (p3, G("new"), y3, [], "--h1 %s: has 2 probability columns, but the other inputs have 3 classes (labels up to 2)" % p3),
        (pbare, G("new"), names, [], "--h1 %s: rows of class probabilities with class-name labels need a header "
                                     "row" % pbare),
        (p3, G("new"), names, [], "--h1 %s: its columns ('c0', 'c1') name none of the classes of the labels "
                                  "('no', 'yes')" % p3),
        (G("old"), G("new"), names, [], "--h1 %s:old: holds class indices (0, 1) that name none of the classes "
                                        "of the other inputs ('no', 'yes')" % good),
        (G("old"), G("new"), huge, [], "--labels %s holds label 1099511627776 at index 29, but at most" % huge),
        (G("old"), G("new"), G("y"), ["--groups", gtwo], "--groups %s: the file has 2 columns; name the one" % gtwo),
        (G("old"), G("new"), G("y"), ["--groups", gshort], "--groups %s: has 29 rows, but --h1 %s:old has 30"
         % (gshort, good)),
        (G("old"), G("new"), G("y"), ["--json", str(d / "nowhere" / "o.json")],
         "--json %s: cannot write the file" % (d / "nowhere" / "o.json")),
    ]


def test_bad_inputs_exit_2_naming_the_file(capsys, tmp_path):
    cases = _bad_inputs(tmp_path)
    for h1, h2, y, extra, text in cases:
        code, out, err = check(capsys, "--h1", h1, "--h2", h2, "--labels", y, *extra)
        assert code == 2, (text, out, err)
        assert err.startswith("python -m bcml check: error: ") and err.endswith("\n") and err.count("\n") == 1
        assert text in err, (text, err)
        assert "Traceback" not in err and (out == "" or extra[:1] == ["--json"])


@pytest.mark.parametrize("argv, text", [
    (["--max-nfr", "abc"], "argument --max-nfr: must be a number in [0, 1], got 'abc'"),
    (["--min-btc", "1.5"], "argument --min-btc: must lie in [0, 1], got '1.5'"),
    (["--ci", "1"], "argument --ci: must lie in (0, 1), got '1'"),
    (["--n-boot", "0"], "argument --n-boot: must lie in [1, 16777216], got 0"),
    (["--min-group-size", "x"], "argument --min-group-size: must be an int, got 'x'"),
])
def test_bad_options_exit_2(capsys, big, argv, text):
    with pytest.raises(SystemExit) as e:
        _check.main(["--h1", big[0], "--h2", big[1], "--labels", big[2]] + argv)
    assert e.value.code == 2 and text in capsys.readouterr().err


# ---- the command line -------------------------------------------------------------------------
def _run(*argv):
    return subprocess.run([sys.executable, "-m", "bcml", *map(str, argv)], env=child_env(), cwd=child_cwd(),
                          capture_output=True, text=True, timeout=120)


def test_python_m_bcml_check_exit_status(tmp_path):
    h1, h2, y = npy_set(tmp_path, *update(**BIG))
    p = _run("check", "--h1", h1, "--h2", h2, "--labels", y, "--max-nfr", "0.03", "--min-btc", "0.96")
    assert (p.returncode, p.stderr) == (0, "") and "passed (2 checks)" in p.stdout
    p = _run("check", "--h1", h1, "--h2", h2, "--labels", y, "--max-nfr", "0.025")
    assert (p.returncode, p.stderr) == (1, "") and "FAIL   overall NFR: 0.0300, required <= 0.025" in p.stdout
    p = _run("check", "--h1", h1, "--h2", h2, "--labels", str(tmp_path / "nope.csv"), "--max-nfr", "0.03")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == "python -m bcml check: error: --labels %s: no such file\n" % (tmp_path / "nope.csv")


def test_help():
    p = _run("check", "--help")
    assert p.returncode == 0 and p.stdout.startswith("usage: python -m bcml check ")
    for opt in ("--h1", "--h2", "--labels", "--groups", "--min-btc", "--max-nfr", "--min-bec", "--ci", "--json",
                "--min-group-size", "--n-boot", "--seed"):
        assert opt in p.stdout
    p = _run("--help")    # the demo is still there, beside check
    assert p.returncode == 0 and "{demo,check}" in p.stdout
    p = _run("demo", "--data", "nope")   # demo's own parser still runs (its tests: tests/test_demo.py)
    assert p.returncode == 2 and "invalid choice: 'nope'" in p.stderr


def test_console_script_declared():
    try:
        import tomllib
    except ImportError:   # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["scripts"] == {"bcml": "bcml.__main__:main"}
    import bcml.__main__ as entry
    assert entry.main(["check", "--h1", "x.csv", "--h2", "y.csv", "--labels", str(ROOT / "nope.csv")]) == 2


def test_installed_console_script(tmp_path):
    """When bcml is pip-installed (as CI's README command does), the `bcml` script runs check."""
    import shutil
    import sysconfig
    if "site-packages" not in bcml.__file__ and "dist-packages" not in bcml.__file__:
        pytest.skip("bcml is not pip-installed here (an in-place build): no console script to run")
    script = shutil.which("bcml") or os.path.join(sysconfig.get_path("scripts"), "bcml")
    if not os.path.exists(script):
        pytest.fail("bcml is installed but its console script bcml is not (%s)" % script)
    h1, h2, y = npy_set(tmp_path, *update(**BIG))
    p = subprocess.run([script, "check", "--h1", h1, "--h2", h2, "--labels", y, "--max-nfr", "0.025"],
                       cwd=child_cwd(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "FAIL   overall NFR" in p.stdout
    assert p.stdout.count("usage") == 0
    p = subprocess.run([script, "check", "--help"], cwd=child_cwd(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("usage: bcml check ")
    p = subprocess.run([script, "--help"], cwd=child_cwd(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("usage: bcml [-h] {demo,check}")


def test_readme_github_actions_step(capsys, tmp_path, monkeypatch):
    """The README's GitHub Actions step runs as written, on files at the paths it names."""
    import re
    import shlex
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text[text.index("## The CI gate"):], re.S).group(1)
    run = block.split("run: |", 1)[1].replace("\\\n", " ")
    line = next(ln for ln in run.splitlines() if ln.strip().startswith("bcml check"))
    argv = shlex.split(line)[2:]
    (tmp_path / "out").mkdir()
    (tmp_path / "data").mkdir()
    parts = [update(32, 8, 0, 0, 1), update(50, 0, 5, 5, 2)]
    h1, h2, y = (np.concatenate([p[k] for p in parts]) for k in range(3))
    names = np.array(["<=50K", ">50K"])
    write_csv(tmp_path / "out" / "h1_pred.csv", ["id", "label"], zip(range(100), names[h1]))
    write_csv(tmp_path / "out" / "h2_pred.csv", ["id", "label"], zip(range(100), names[h2]))
    write_csv(tmp_path / "data" / "test.csv", ["x", "y", "age_band"],
              zip(range(100), names[y], ["18-40"] * 40 + ["60+"] * 60))
    monkeypatch.chdir(tmp_path)
    code, out, err = check(capsys, *argv)
    # cohort 18-40: NFR 8/40 = 0.2, beyond 0.02 by its whole interval
    assert (code, err) == (1, "") and "FAIL   cohort '18-40' (n=40) NFR: 0.2000" in out
    doc = gate_json(tmp_path / "out" / "compatibility.json")
    assert doc["gate"]["thresholds"] == {"min_btc": 0.97, "max_nfr": 0.02} and doc["gate"]["ci"] == 0.95

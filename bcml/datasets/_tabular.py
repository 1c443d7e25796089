"""Loaders for the tabular data sets: UCI Adult, ProPublica COMPAS, UCI German
credit and UCI breast-cancer Wisconsin (original).

Every loader reads the data set's original file(s), unmodified, and returns a
:class:`Dataset`. The encoding of the features is described in
:mod:`bcml.datasets._encode` and in each loader's docstring.
"""

import csv
import gzip
from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np

from ._encode import check_split_args, encode, train_test_split
from ._fetch import check_args, check_record, locate

__all__ = ["Dataset", "URLS", "SHA256", "load_adult", "load_compas",
           "load_german_credit", "load_breast_cancer"]

_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"

#: Official download address of every file, by file name. Tests and mirrors
#: may change entries, or pass ``base_url=`` to a loader instead.
URLS = {
    "adult.data": _UCI + "/adult/adult.data",
    "adult.test": _UCI + "/adult/adult.test",
    "compas-scores-two-years.csv":
        "https://raw.githubusercontent.com/propublica/compas-analysis/master/"
        "compas-scores-two-years.csv",
    "german.data": _UCI + "/statlog/german/german.data",
    "breast-cancer-wisconsin.data":
        _UCI + "/breast-cancer-wisconsin/breast-cancer-wisconsin.data",
}

#: SHA-256 of every file, checked after a download (files already on disk
#: are read as they are).
SHA256 = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    "compas-scores-two-years.csv":
        "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d",
    "german.data": "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
    "breast-cancer-wisconsin.data":
        "402c585309c399237740f635ef9919dc512cca12cbeb20de5e563a4593f22b64",
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded data set.

    Attributes
    ----------
    X_train, y_train, X_test, y_test : numpy arrays
        float32 features (n, n_features) and int64 labels (n,) of the two
        parts.
    feature_names : tuple of str
        One name per column of X: the attribute name for a numeric column,
        ``"attribute=category"`` for a one-hot column.
    class_names : tuple of str
        ``class_names[k]`` describes label ``k``.
    description : str
        Source, license, label and encoding, in words.
    X, y : numpy arrays
        Every row, encoded the same way (file order; Adult: the training
        file's rows, then the test file's).
    train_index, test_index : int64 arrays
        Rows of X / y that form the training and test parts.
    numeric_features : tuple of int
        Columns holding numeric attributes (standardised unless the loader
        was called with ``standardize=False``).
    categorical_groups : dict
        Categorical attribute -> tuple of the columns of its one-hot block.
    name : str
        Short name of the data set.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: Tuple[str, ...]
    class_names: Tuple[str, ...]
    description: str
    X: np.ndarray
    y: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    numeric_features: Tuple[int, ...] = ()
    categorical_groups: Dict[str, Tuple[int, ...]] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self):
        check_record(self, 2)

    def __repr__(self):
        return ("Dataset(name={!r}, X_train={}, X_test={}, n_features={}, classes={})"
                .format(self.name, self.X_train.shape, self.X_test.shape,
                        len(self.feature_names), self.class_names))


def _build(name, columns, labels, train_index, test_index, vocab_rows,
           standardize, class_names, description):
    X, feature_names, numeric, groups = encode(
        columns, train_index, vocab_rows=vocab_rows, standardize=standardize)
    y = np.asarray(labels, dtype=np.int64)
    return Dataset(
        X_train=X[train_index], y_train=y[train_index],
        X_test=X[test_index], y_test=y[test_index],
        feature_names=feature_names, class_names=tuple(class_names),
        description=description, X=X, y=y,
        train_index=train_index, test_index=test_index,
        numeric_features=numeric, categorical_groups=groups, name=name)


def _read_lines(path):
    """The file's lines; a name ending in .gz (a copy bundled with bcml) is decompressed."""
    if str(path).endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            return f.read().splitlines()
    with open(path, "r", encoding="utf-8", newline="") as f:
        return f.read().splitlines()


def _corrupt(path, lineno, what):
    return ValueError("{}, line {}: {}".format(path, lineno, what))


def _split_rows(path, lines, sep, n_fields, start=0):
    """Split non-blank lines into fields, stripping blanks around each."""
    rows, linenos = [], []
    for lineno, line in enumerate(lines[start:], start + 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in (line.split(sep) if sep else line.split())]
        if len(fields) != n_fields:
            raise _corrupt(path, lineno, "expected {} fields, found {}".format(
                n_fields, len(fields)))
        rows.append(fields)
        linenos.append(lineno)
    return rows, linenos


def _labels(path, values, linenos, mapping):
    out = []
    for v, lineno in zip(values, linenos):
        if v not in mapping:
            raise _corrupt(path, lineno, "unexpected label {!r} (expected one of {})".format(
                v, ", ".join(sorted(mapping))))
        out.append(mapping[v])
    return out


def _columns(rows, spec):
    """``spec``: list of (name, kind, field index) -> encode()'s columns."""
    return [(name, kind, [r[j] for r in rows]) for name, kind, j in spec]


# --------------------------------------------------------------------------
# Adult

_ADULT_SPEC = [
    ("age", "numeric", 0),
    ("workclass", "categorical", 1),
    ("fnlwgt", "numeric", 2),
    ("education", "categorical", 3),
    ("education-num", "numeric", 4),
    ("marital-status", "categorical", 5),
    ("occupation", "categorical", 6),
    ("relationship", "categorical", 7),
    ("race", "categorical", 8),
    ("sex", "categorical", 9),
    ("capital-gain", "numeric", 10),
    ("capital-loss", "numeric", 11),
    ("hours-per-week", "numeric", 12),
    ("native-country", "categorical", 13),
]


def load_adult(path=None, download=False, cache_dir=None, standardize=True,
               base_url=None):
    """UCI Adult (census income): does a person earn more than $50K a year?

    Reads ``adult.data`` (training part, 32,561 rows) and ``adult.test``
    (test part, 16,281 rows; its first line, ``|1x3 Cross validator``, is
    skipped and the period ending its labels is ignored). Blank lines are
    skipped.

    Label: ``y = 1`` for ``>50K``, 0 for ``<=50K`` (class_names
    ``("<=50K", ">50K")``).

    Features (108 columns), in the order of ``adult.names``: the numeric
    attributes age, fnlwgt, education-num, capital-gain, capital-loss and
    hours-per-week, standardised with the training file's mean and std;
    the categorical attributes workclass, education, marital-status,
    occupation, relationship, race, sex and native-country, one-hot encoded
    with the categories of the training file (sorted). ``?`` (missing, in
    workclass, occupation and native-country) is a category of its own,
    ``"<missing>"``, placed last in its group. A category that only occurs
    in the test file would encode as all zeros (none does in the original
    files; ``native-country=Holand-Netherlands`` occurs only in training).

    Parameters
    ----------
    path : str or PathLike, optional
        Folder holding ``adult.data`` and ``adult.test`` under these names.
        Files not found there are looked for in the cache folder. With no
        ``path`` (and no ``download``), files not in the cache folder are
        read from the gzipped copies bundled with bcml
        (``bcml/datasets/data/adult.data.gz``, ``adult.test.gz``; CC BY 4.0),
        which decompress to the original files byte for byte.
    download : bool
        Fetch files missing from ``path`` and the cache folder from the UCI
        repository (:data:`URLS`) into the cache folder, checking their
        SHA-256 (:data:`SHA256`); the bundled copies are not used then.
    cache_dir : str or PathLike, optional
        Cache folder; default ``$XDG_CACHE_HOME/bcml``, else ``~/.cache/bcml``.
    standardize : bool
        When False, numeric columns keep their raw values.
    base_url : str, optional
        Download from ``base_url + "/" + filename`` instead (a mirror).

    Raises
    ------
    DatasetNotFoundError (a FileNotFoundError)
        A file is missing from ``path`` and the cache folder, and
        ``download`` is False.
    DownloadError (an OSError), ChecksumError (a ValueError)
        The download failed or gave a different file.
    ValueError
        A file is malformed (the message names the file and line).
    """
    check_args("load_adult", path, download, cache_dir, base_url, standardize=standardize)
    names = ("adult.data", "adult.test")
    files = locate("adult", names, URLS, SHA256, path=path, download=download,
                   cache_dir=cache_dir, base_url=base_url, bundled=True)
    train_rows, train_lines = _split_rows(files["adult.data"],
                                          _read_lines(files["adult.data"]), ",", 15)
    test_lines = _read_lines(files["adult.test"])
    skip = 1 if test_lines and test_lines[0].startswith("|") else 0
    test_rows, test_linenos = _split_rows(files["adult.test"], test_lines, ",", 15, start=skip)

    mapping = {"<=50K": 0, ">50K": 1}
    labels = (_labels(files["adult.data"], [r[14] for r in train_rows], train_lines, mapping)
              + _labels(files["adult.test"], [r[14].rstrip(".") for r in test_rows],
                        test_linenos, mapping))
    rows = train_rows + test_rows
    train_index = np.arange(len(train_rows), dtype=np.int64)
    test_index = np.arange(len(train_rows), len(rows), dtype=np.int64)
    return _build(
        "adult", _columns(rows, _ADULT_SPEC), labels, train_index, test_index,
        vocab_rows=train_index, standardize=standardize,
        class_names=("<=50K", ">50K"),
        description=(
            "UCI Adult (Becker & Kohavi 1996, doi:10.24432/C5XW20, CC BY 4.0): 1994 US "
            "census records. Label 1 = income >50K. Train = adult.data, test = adult.test. "
            "Numeric attributes {}; categorical ones one-hot with the training file's "
            "categories; '?' is the category '<missing>'.".format(
                "standardised with training statistics" if standardize else "raw")))


# --------------------------------------------------------------------------
# COMPAS

_COMPAS_SPEC = [
    ("age", "numeric"),
    ("priors_count", "numeric"),
    ("juv_fel_count", "numeric"),
    ("juv_misd_count", "numeric"),
    ("juv_other_count", "numeric"),
    ("sex", "categorical"),
    ("race", "categorical"),
    ("age_cat", "categorical"),
    ("c_charge_degree", "categorical"),
]


def _propublica_keep(row, col):
    """ProPublica's row filter (their R analysis, compas-analysis)."""
    days = row[col["days_b_screening_arrest"]]
    if days == "":
        return False  # NA: dplyr's filter() drops it
    return (-30 <= float(days) <= 30 and row[col["is_recid"]] != "-1"
            and row[col["c_charge_degree"]] != "O" and row[col["score_text"]] != "N/A")


def load_compas(path=None, download=False, cache_dir=None, test_size=0.2, seed=0,
                propublica_filter=False, standardize=True, base_url=None):
    """ProPublica COMPAS two-year recidivism (Broward County, FL).

    Reads ``compas-scores-two-years.csv`` (7,214 rows). By default every row
    is kept; ``propublica_filter=True`` applies the filter of ProPublica's
    analysis (``days_b_screening_arrest`` present and within [-30, 30],
    ``is_recid != -1``, ``c_charge_degree != "O"``, ``score_text != "N/A"``),
    which keeps 6,172 rows.

    Label: ``y = two_year_recid`` (1 = re-arrested within two years;
    class_names ``("no recidivism", "recidivism")``).

    Features: the subset commonly used in the fairness literature, in this
    order: numeric age, priors_count (the first of the two identical
    columns of that name), juv_fel_count, juv_misd_count, juv_other_count
    (standardised with the training part's statistics), then categorical
    sex, race, age_cat, c_charge_degree (one-hot; categories from all kept
    rows, sorted). The COMPAS scores themselves are not features. Empty
    fields would be missing values (numeric: training median; categorical:
    ``"<missing>"``); the chosen columns have none.

    Split: ``train_test_split(n, test_size, seed)`` (:func:`train_test_split`:
    a fixed PCG64 permutation; ``ceil(test_size * n)`` test rows; each part
    in file order). ``X``/``y`` hold all kept rows. The one-hot categories
    come from all rows (labels play no part in that); medians, means and
    standard deviations from the training part only. ``test_size=0`` gives
    an empty test part.

    Other parameters and errors are as for :func:`load_adult`.
    """
    check_args("load_compas", path, download, cache_dir, base_url, propublica_filter=propublica_filter, standardize=standardize)
    check_split_args(test_size, seed)
    name = "compas-scores-two-years.csv"
    files = locate("compas", (name,), URLS, SHA256, path=path, download=download,
                   cache_dir=cache_dir, base_url=base_url)
    with open(files[name], "r", encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    if not table:
        raise ValueError("{} is empty".format(files[name]))
    header, body = table[0], table[1:]
    col = {}
    for j, c in enumerate(header):
        col.setdefault(c, j)  # first occurrence of duplicated names
    needed = [n for n, _ in _COMPAS_SPEC] + ["two_year_recid", "days_b_screening_arrest",
                                             "is_recid", "score_text"]
    absent = [n for n in needed if n not in col]
    if absent:
        raise ValueError("{}: missing column(s) {}".format(files[name], ", ".join(absent)))
    rows, linenos = [], []
    for lineno, r in enumerate(body, 2):
        if not r:
            continue
        if len(r) != len(header):
            raise _corrupt(files[name], lineno, "expected {} fields, found {}".format(
                len(header), len(r)))
        if propublica_filter and not _propublica_keep(r, col):
            continue
        rows.append(r)
        linenos.append(lineno)

    labels = _labels(files[name], [r[col["two_year_recid"]] for r in rows], linenos,
                     {"0": 0, "1": 1})
    train_index, test_index = train_test_split(len(rows), test_size=test_size, seed=seed)
    spec = [(n, kind, col[n]) for n, kind in _COMPAS_SPEC]
    return _build(
        "compas", _columns(rows, spec), labels, train_index, test_index,
        vocab_rows=np.arange(len(rows), dtype=np.int64), standardize=standardize,
        class_names=("no recidivism", "recidivism"),
        description=(
            "ProPublica COMPAS two-year recidivism, Broward County FL (Machine Bias, 2016; "
            "no license stated by ProPublica). Label 1 = two_year_recid. Features: age, "
            "priors_count, juv_fel_count, juv_misd_count, juv_other_count ({}), "
            "sex, race, age_cat, c_charge_degree (one-hot). ProPublica's row filter: {}; "
            "split test_size={}, seed={}.".format(
                "standardised" if standardize else "raw",
                "applied" if propublica_filter else "not applied", test_size, seed)))


# --------------------------------------------------------------------------
# German credit

_GERMAN_SPEC = [
    ("checking_status", "categorical"),
    ("duration", "numeric"),
    ("credit_history", "categorical"),
    ("purpose", "categorical"),
    ("credit_amount", "numeric"),
    ("savings", "categorical"),
    ("employment_since", "categorical"),
    ("installment_rate", "numeric"),
    ("personal_status_sex", "categorical"),
    ("other_debtors", "categorical"),
    ("residence_since", "numeric"),
    ("property", "categorical"),
    ("age", "numeric"),
    ("other_installment_plans", "categorical"),
    ("housing", "categorical"),
    ("existing_credits", "numeric"),
    ("job", "categorical"),
    ("num_dependents", "numeric"),
    ("telephone", "categorical"),
    ("foreign_worker", "categorical"),
]


def load_german_credit(path=None, download=False, cache_dir=None, test_size=0.2, seed=0,
                       standardize=True, base_url=None):
    """UCI Statlog German credit: is an applicant a bad credit risk?

    Reads ``german.data`` (1,000 rows, 20 attributes, whitespace separated).

    Label: ``y = 1`` for bad credit (class 2 in the file), 0 for good
    (class 1); class_names ``("good", "bad")``. Note the cost matrix in
    ``german.doc``: predicting good for a bad applicant costs 5, the
    reverse 1.

    Features, in the file's attribute order: the 7 numeric attributes
    (duration, credit_amount, installment_rate, residence_since, age,
    existing_credits, num_dependents) standardised with the training
    part's statistics; the 13 categorical ones one-hot encoded with the
    file's codes as category names (e.g. ``"checking_status=A11"``;
    ``german.doc`` explains the codes), categories from all rows, sorted.

    With no ``path`` and no ``download``, ``german.data`` is read from the
    cache folder, else from the gzipped copy bundled with bcml
    (``bcml/datasets/data/german.data.gz``; CC BY 4.0), as for
    :func:`load_adult`.

    Split, ``X``/``y`` and the other parameters: as for :func:`load_compas`.
    """
    check_args("load_german_credit", path, download, cache_dir, base_url, standardize=standardize)
    check_split_args(test_size, seed)
    name = "german.data"
    files = locate("german_credit", (name,), URLS, SHA256, path=path, download=download,
                   cache_dir=cache_dir, base_url=base_url, bundled=True)
    rows, linenos = _split_rows(files[name], _read_lines(files[name]), None, 21)
    labels = _labels(files[name], [r[20] for r in rows], linenos, {"1": 0, "2": 1})
    train_index, test_index = train_test_split(len(rows), test_size=test_size, seed=seed)
    spec = [(n, kind, j) for j, (n, kind) in enumerate(_GERMAN_SPEC)]
    return _build(
        "german_credit", _columns(rows, spec), labels, train_index, test_index,
        vocab_rows=np.arange(len(rows), dtype=np.int64), standardize=standardize,
        class_names=("good", "bad"),
        description=(
            "UCI Statlog German Credit (Hofmann 1994, doi:10.24432/C5NC77, CC BY 4.0). "
            "Label 1 = bad credit (class 2). 7 numeric attributes {}, 13 "
            "categorical ones one-hot by their codes (see german.doc). Cost of predicting "
            "good for a bad applicant: 5. Split test_size={}, seed={}.".format(
                "standardised" if standardize else "raw", test_size, seed)))


# --------------------------------------------------------------------------
# Breast cancer Wisconsin (original)

_BREAST_CANCER_FEATURES = [
    "clump_thickness",
    "uniformity_of_cell_size",
    "uniformity_of_cell_shape",
    "marginal_adhesion",
    "single_epithelial_cell_size",
    "bare_nuclei",
    "bland_chromatin",
    "normal_nucleoli",
    "mitoses",
]


def load_breast_cancer(path=None, download=False, cache_dir=None, test_size=0.2, seed=0,
                       standardize=True, base_url=None):
    """UCI breast-cancer Wisconsin (original): is a sample malignant?

    Reads ``breast-cancer-wisconsin.data`` (699 rows). The sample id (first
    column, not unique) is dropped.

    Label: ``y = 1`` for malignant (class 4), 0 for benign (class 2);
    class_names ``("benign", "malignant")``.

    Features: the 9 cell measurements (integers 1-10) as numeric columns:
    clump_thickness, uniformity_of_cell_size, uniformity_of_cell_shape,
    marginal_adhesion, single_epithelial_cell_size, bare_nuclei,
    bland_chromatin, normal_nucleoli, mitoses. The 16 ``?`` in bare_nuclei
    are replaced by the training part's median; then every column is
    standardised with the training part's mean and std
    (``standardize=False`` keeps the 1-10 scale; the original
    backwardcompatibilityml tests used raw values with ``?`` read as 0).

    With no ``path`` and no ``download``, the file is read from the cache
    folder, else from the gzipped copy bundled with bcml
    (``bcml/datasets/data/breast-cancer-wisconsin.data.gz``; CC BY 4.0), as
    for :func:`load_adult`.

    Split, ``X``/``y`` and the other parameters: as for :func:`load_compas`.
    """
    check_args("load_breast_cancer", path, download, cache_dir, base_url, standardize=standardize)
    check_split_args(test_size, seed)
    name = "breast-cancer-wisconsin.data"
    files = locate("breast_cancer", (name,), URLS, SHA256, path=path, download=download,
                   cache_dir=cache_dir, base_url=base_url, bundled=True)
    rows, linenos = _split_rows(files[name], _read_lines(files[name]), ",", 11)
    labels = _labels(files[name], [r[10] for r in rows], linenos, {"2": 0, "4": 1})
    train_index, test_index = train_test_split(len(rows), test_size=test_size, seed=seed)
    spec = [(n, "numeric", j + 1) for j, n in enumerate(_BREAST_CANCER_FEATURES)]
    return _build(
        "breast_cancer", _columns(rows, spec), labels, train_index, test_index,
        vocab_rows=None, standardize=standardize,
        class_names=("benign", "malignant"),
        description=(
            "UCI Breast Cancer Wisconsin (Original) (Wolberg 1992, doi:10.24432/C5HP4Z, "
            "CC BY 4.0). Label 1 = malignant (class 4). 9 cell measurements; '?' in "
            "bare_nuclei replaced by the training median; {}. Split test_size={}, "
            "seed={}.".format("standardised with training statistics" if standardize
                              else "raw values", test_size, seed)))


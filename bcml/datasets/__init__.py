"""Data set loaders (``bcml.datasets``).

Tabular data sets, each read from its original, unmodified file(s):

=========================  ==========================================  ============
loader                     file(s)                                     label 1
=========================  ==========================================  ============
:func:`load_adult`         ``adult.data`` (train), ``adult.test``      ``>50K``
:func:`load_compas`        ``compas-scores-two-years.csv``             re-arrested
:func:`load_german_credit` ``german.data``                             bad credit
:func:`load_breast_cancer` ``breast-cancer-wisconsin.data``            malignant
=========================  ==========================================  ============

Every loader returns a :class:`Dataset` (``X_train``, ``y_train``,
``X_test``, ``y_test``, ``feature_names``, ``class_names``, ``description``
and more): float32 features, int64 labels in {0, 1}. Numeric attributes are
standardised with the training part's mean and std (missing values first
replaced by the training median); categorical ones are one-hot encoded, a
missing value (``?``) being a category of its own, ``"<missing>"``, and a
category unknown to the encoding giving all zeros. Adult comes split into
its two files; the single-file data sets are split by
:func:`train_test_split` (``test_size=0.2, seed=0`` by default: a fixed
PCG64 permutation).

Where the files come from: a loader looks in ``path`` (a folder holding the
files under their original names), then in the cache folder
(``cache_dir``, default ``$XDG_CACHE_HOME/bcml`` or ``~/.cache/bcml``).
With ``download=True`` a missing file is fetched from its official address
(:data:`URLS`, or ``base_url=``) into the cache folder and its SHA-256
checked against :data:`SHA256`. A missing file raises
:class:`DatasetNotFoundError` (a FileNotFoundError), a failed download
:class:`DownloadError` (an OSError), a checksum mismatch
:class:`ChecksumError` (a ValueError); each message says where to put the
files.
"""

from ._encode import MISSING, train_test_split
from ._fetch import (ChecksumError, DatasetNotFoundError, DownloadError,
                     default_cache_dir)
from ._tabular import (SHA256, URLS, Dataset, load_adult, load_breast_cancer,
                       load_compas, load_german_credit)

__all__ = [
    "Dataset",
    "load_adult",
    "load_compas",
    "load_german_credit",
    "load_breast_cancer",
    "train_test_split",
    "default_cache_dir",
    "DatasetNotFoundError",
    "DownloadError",
    "ChecksumError",
    "URLS",
    "SHA256",
    "MISSING",
]

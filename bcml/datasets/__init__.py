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
checked against :data:`SHA256`. With neither ``path`` nor ``download``,
Adult, German credit and breast-cancer Wisconsin fall back on the gzipped
copies of their original files shipped with bcml (``bcml/datasets/data``,
CC BY 4.0; see ``LICENSE.md`` there), so ``load_adult()`` works offline on
a fresh install; COMPAS (no licence stated) is not bundled. A missing file raises
:class:`DatasetNotFoundError` (a FileNotFoundError), a failed download
:class:`DownloadError` (an OSError), a checksum mismatch
:class:`ChecksumError` (a ValueError); each message says where to put the
files. An offline ``download=True`` tries every missing file, names each in
one DownloadError and leaves no empty cache folder behind. Both errors carry
``missing`` (the file names) and ``command_line_message(path_option,
download_option)``, the message worded for a script's own options.

Image data sets, each read from its original files (:mod:`._images`):

=========================  ==================================================
loader                     file(s)
=========================  ==================================================
:func:`load_mnist`         IDX files ``train-images-idx3-ubyte``,
                           ``train-labels-idx1-ubyte``,
                           ``t10k-images-idx3-ubyte``,
                           ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``)
:func:`load_fashion_mnist` the same four IDX files
:func:`load_cifar10`       ``cifar-10-batches-bin/data_batch_1.bin`` ..
                           ``data_batch_5.bin``, ``test_batch.bin``
                           (binary version; ``batches.meta.txt`` if present)
=========================  ==================================================

They return an :class:`ImageDataset` (``X_train``, ``y_train``, ``X_test``,
``y_test``, ``class_names``, ``description``, ``X``, ``y``, ...): images
(n, channels, height, width) as float32 in [0, 1], the stored byte divided
by 255 (``normalize=False`` keeps the uint8 bytes), int64 labels 0..9.
MNIST and Fashion-MNIST give (n, 1, 28, 28) with 60,000 training and 10,000
test images; CIFAR-10 gives (n, 3, 32, 32), channels red, green, blue, with
50,000 and 10,000. A malformed file (wrong IDX magic number, truncated or
over-long file, image and label counts that differ, a label above 9) raises
a ValueError naming the file.

Where the image files come from: ``path``, then (Fashion-MNIST, when no
``path`` is given) :data:`FASHION_MNIST_DIR`,
``/usr/share/datasets/fashion-mnist``, where Debian's
``dataset-fashion-mnist`` package installs it, then a subfolder of the cache
folder (``mnist``, ``fashion-mnist``, ``cifar-10-batches-bin``). With
``download=True``, MNIST comes from the mirror torchvision uses, Fashion-MNIST
from Zalando's address and CIFAR-10 (``cifar-10-binary.tar.gz``, extracted
with checked member paths) from the University of Toronto (:data:`IMAGE_URLS`);
the MD5 digests torchvision pins (:data:`IMAGE_MD5`) and, where known, SHA-256
(:data:`IMAGE_SHA256`) are checked.
"""

from ._encode import MISSING, train_test_split
from ._fetch import (ChecksumError, DatasetNotFoundError, DownloadError,
                     default_cache_dir)
from ._images import (FASHION_MNIST_DIR, IMAGE_MD5, IMAGE_SHA256, IMAGE_URLS,
                      ImageDataset, load_cifar10, load_fashion_mnist, load_mnist)
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
    "ImageDataset",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "FASHION_MNIST_DIR",
    "IMAGE_URLS",
    "IMAGE_MD5",
    "IMAGE_SHA256",
]

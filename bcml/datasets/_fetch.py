"""Finding data files on disk and downloading them into the cache.

Only the standard library is used (``urllib.request``): a download streams
the response into a temporary file next to its destination while hashing
it, checks the SHA-256 (or the MD5, where only an MD5 is published), and
only then renames the file into place with ``os.replace``, so the cache
never holds a partial or unverified file.
"""

import errno
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

__all__ = [
    "DatasetNotFoundError",
    "DownloadError",
    "ChecksumError",
    "default_cache_dir",
    "fetch",
    "fetch_all",
    "locate",
    "BUNDLED_DIR",
]

#: Folder of the gzipped copies of the small UCI data sets shipped with bcml
#: (Adult, German credit, breast-cancer Wisconsin; CC BY 4.0, see LICENSE.md there).
BUNDLED_DIR = Path(__file__).resolve().parent / "data"

_CHUNK = 1 << 20


class DatasetNotFoundError(FileNotFoundError):
    """A data file is not on disk and ``download=True`` was not given.

    ``errno`` is ENOENT and ``filename`` the first missing file; ``str()``
    is the message alone. ``missing`` holds the names of every missing
    file, ``searched`` the folders looked in, ``sources`` the download
    addresses and ``cache`` the cache folder (a Path, or None).
    """

    def __init__(self, message, filename=None, *, dataset="", missing=(), searched=(),
                 sources=(), cache=None):
        super().__init__(errno.ENOENT, message, filename)
        self.dataset, self.missing, self.searched = dataset, tuple(missing), tuple(searched)
        self.sources, self.cache = tuple(sources), cache

    def __str__(self):
        return self.strerror

    def command_line_message(self, path_option="--data", download_option="--download"):
        """The message for a command-line tool whose options ``path_option`` (a folder of
        the files) and ``download_option`` stand for the loader's ``path=`` and
        ``download=True``."""
        if not self.missing:
            return str(self)
        return ("{}cannot find {} in {}. Pass {} FOLDER (a folder holding {} under these "
                "names), or {} to fetch {} into {}.".format(
                    self.dataset + ": " if self.dataset else "", ", ".join(self.missing),
                    ", ".join(str(f) for f in self.searched) or "any folder",
                    path_option, ", ".join(self.missing), download_option,
                    ", ".join(self.sources) or "them", self.cache))


class DownloadError(OSError):
    """A download failed (no network, unreachable host, HTTP error, ...).

    ``missing`` holds the names of every file that could not be downloaded,
    ``sources`` their addresses, ``reasons`` why each failed and ``cache``
    the folder they were to go to (empty / None when not known).
    """

    def __init__(self, *args, dataset="", missing=(), sources=(), reasons=(), cache=None):
        super().__init__(*args)
        self.dataset, self.missing, self.sources = dataset, tuple(missing), tuple(sources)
        self.reasons, self.cache = tuple(reasons), cache

    def command_line_message(self, path_option="--data", download_option="--download"):
        """The message for a command-line tool whose options ``path_option`` and
        ``download_option`` stand for the loader's ``path=`` and ``download=True``."""
        if not self.missing:
            return str(self)
        return ("{}{} failed: could not download {}. If this machine is offline, fetch "
                "the file(s) elsewhere and pass {} FOLDER (a folder holding {} under these "
                "names), or put them in {}.".format(
                    self.dataset + ": " if self.dataset else "", download_option,
                    ", ".join("{} from {} ({})".format(n, u, r) for n, u, r in
                              zip(self.missing, self.sources, self.reasons)),
                    path_option, ", ".join(self.missing), self.cache))


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 (or MD5) differs from the pinned one."""


def default_cache_dir():
    """Folder that downloads go to when no ``cache_dir`` is given.

    ``$XDG_CACHE_HOME/bcml`` when ``XDG_CACHE_HOME`` is set to an absolute
    path (the XDG spec says relative values are to be ignored), otherwise
    ``~/.cache/bcml``. The folder is not created here.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "bcml"
    return Path.home() / ".cache" / "bcml"


def _sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url, dest, sha256=None, timeout=60.0, md5=None):
    """Download ``url`` to the file ``dest`` and return ``dest`` as a Path.

    The body is written to a temporary file in ``dest``'s folder (created
    if needed) and renamed over ``dest`` only once complete and verified:
    its SHA-256 against ``sha256`` and its MD5 against ``md5``, each when
    given (hex digests, either case).

    Raises
    ------
    ChecksumError (a ValueError)
        The SHA-256 of the download is not ``sha256``, or its MD5 not
        ``md5``. The message names the file, the algorithm and both hashes;
        nothing is left on disk.
    DownloadError (an OSError)
        The download failed. The message says where to put the file by
        hand when the machine is offline.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            "cannot create the download folder {}: {}".format(dest.parent, exc)
        ) from exc

    fd, tmp_name = tempfile.mkstemp(prefix="." + dest.name + ".", suffix=".part",
                                    dir=str(dest.parent))
    try:
        h = hashlib.sha256()
        # MD5 is only compared with a digest published for the file
        # (usedforsecurity= exists from Python 3.9).
        h_md5 = hashlib.md5(usedforsecurity=False) if md5 is not None else None
        try:
            # A fresh opener per call, so proxy settings are read from the
            # environment now rather than frozen at the first urlopen().
            opener = urllib.request.build_opener()
            with os.fdopen(fd, "wb") as out, opener.open(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    if h_md5 is not None:
                        h_md5.update(chunk)
                    out.write(chunk)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # URLError/HTTPError and socket timeouts are OSErrors; a
            # malformed URL is a ValueError.
            if isinstance(exc, urllib.error.HTTPError):
                reason = str(exc)  # "HTTP Error 404: Not Found"
            elif isinstance(exc, urllib.error.URLError):
                reason = exc.reason  # e.g. "[Errno 111] Connection refused"
            else:
                reason = exc
            raise DownloadError(
                "could not download {} ({}). If this machine is offline, fetch "
                "the file elsewhere and put it at {}, or pass path= to a folder "
                "that holds {}.".format(url, reason, dest, dest.name),
                missing=(dest.name,), sources=(url,), reasons=(str(reason),),
                cache=dest.parent) from exc
        checks = [("sha256", sha256, h)] + ([("md5", md5, h_md5)] if md5 is not None else [])
        for algo, expected, hasher in checks:
            if expected is None:
                continue
            actual = hasher.hexdigest()
            if actual != expected.lower():
                raise ChecksumError(
                    "checksum mismatch for {} downloaded from {}: expected {} {}, "
                    "got {}. The file was not saved.".format(dest.name, url, algo,
                                                             expected, actual))
        os.replace(tmp_name, str(dest))
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return dest


def _new_folders(folder):
    """The folders from ``folder`` up that do not exist yet, deepest first."""
    out, f = [], Path(folder).absolute()
    while not f.exists() and f != f.parent:
        out.append(f)
        f = f.parent
    return out


def _remove_empty(folders):
    for f in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        try:
            f.rmdir()  # only an empty folder goes
        except OSError:
            pass


def fetch_all(dataset, jobs):
    """Download every ``(name, url, dest, sha256, md5)`` of ``jobs`` with
    :func:`fetch` and return ``{name: Path}``.

    A failed download does not stop the others. When any failed, one
    :class:`DownloadError` names every file that could not be downloaded,
    with its address and the reason; files that did arrive stay (they
    were verified). Folders this call created and left empty are removed,
    so an offline attempt leaves no empty cache folder behind.
    """
    made = [f for job in jobs for f in _new_folders(Path(job[2]).parent)]
    found, failed = {}, []
    try:
        for name, url, dest, sha256, md5 in jobs:
            try:
                found[name] = fetch(url, dest, sha256=sha256, md5=md5)
            except DownloadError as exc:
                failed.append((name, url, exc.reasons[0] if exc.reasons else str(exc)))
    finally:
        _remove_empty(made)
    if failed:
        cache = Path(jobs[0][2]).parent
        dests = {job[0]: job[2] for job in jobs}
        raise DownloadError(
            "{}: could not download {}. If this machine is offline, fetch the file(s) "
            "elsewhere and put them at {}, or pass path= to a folder that holds {}.".format(
                dataset, ", ".join("{} from {} ({})".format(*f) for f in failed),
                ", ".join(str(dests[f[0]]) for f in failed), ", ".join(f[0] for f in failed)),
            dataset=dataset, missing=[f[0] for f in failed], sources=[f[1] for f in failed],
            reasons=[f[2] for f in failed], cache=cache)
    return found


def check_record(rec, x_ndim):
    """The fields of a Dataset / ImageDataset made by hand, checked as the loaders make them:
    numeric arrays (features of x_ndim dimensions, 1-D labels, 1-D integer row indices that lie
    in X), rows that agree, tuples of str for the names, a str description and name."""
    import numpy as np
    cls = type(rec).__name__
    for k in ("X_train", "y_train", "X_test", "y_test", "X", "y", "train_index", "test_index"):
        a = getattr(rec, k)
        if not isinstance(a, np.ndarray):
            raise TypeError("{}(): argument '{}' must be a NumPy array, not {}".format(cls, k, type(a).__name__))
        if a.dtype.kind not in ("iu" if k.endswith("index") else "biuf"):
            raise TypeError("{}(): argument '{}' must hold {}, got dtype {}".format(
                cls, k, "integer row numbers" if k.endswith("index") else "numbers", a.dtype))
        want = x_ndim if k.startswith("X") else 1
        if a.ndim != want:
            raise ValueError("{}(): argument '{}' must have {} dimensions, got shape {}".format(cls, k, want, a.shape))
    for x, y in (("X_train", "y_train"), ("X_test", "y_test"), ("X", "y"), ("X_train", "train_index"),
                 ("X_test", "test_index")):
        if len(getattr(rec, x)) != len(getattr(rec, y)):
            raise ValueError("{}(): arguments '{}' and '{}' must have the same number of rows, got {} and {}".format(
                cls, x, y, len(getattr(rec, x)), len(getattr(rec, y))))
    for k in ("train_index", "test_index"):
        a = getattr(rec, k)
        if a.size and (a.min() < 0 or a.max() >= len(rec.X)):
            raise ValueError("{}(): argument '{}' must hold row numbers of X, in [0, {})".format(cls, k, len(rec.X)))
    for k in ("feature_names", "class_names", "files"):
        v = getattr(rec, k, ())
        if not isinstance(v, (tuple, list)) or not all(isinstance(e, str) for e in v):
            raise TypeError("{}(): argument '{}' must be a tuple of str, got {}".format(cls, k, type(v).__name__))
    for k in ("description", "name"):
        if not isinstance(getattr(rec, k), str):
            raise TypeError("{}(): argument '{}' must be a str, not {}".format(cls, k, type(getattr(rec, k)).__name__))
    nf = getattr(rec, "numeric_features", ())
    if not isinstance(nf, (tuple, list)) or not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool)
                                                      for e in nf):
        raise TypeError("{}(): argument 'numeric_features' must be a tuple of ints, got {}".format(
            cls, type(nf).__name__))
    groups = getattr(rec, "categorical_groups", {})
    if not isinstance(groups, dict) or not all(isinstance(k, str) and isinstance(v, (tuple, list))
                                               for k, v in groups.items()):
        raise TypeError("{}(): argument 'categorical_groups' must be a dict of str to tuples of column numbers, "
                        "got {}".format(cls, type(groups).__name__))


def check_args(fname, path=None, download=False, cache_dir=None, base_url=None, **flags):
    """The arguments every loader takes, checked before any file is read: path and cache_dir
    None or a path (str or os.PathLike), download and the flags bools, base_url None or a str."""
    from .._values import flag
    for name, value in (("path", path), ("cache_dir", cache_dir)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError("{}(): argument '{}' must be a folder (str or os.PathLike) or None, not {}".format(
                fname, name, type(value).__name__))
    if base_url is not None and not isinstance(base_url, str):
        raise TypeError("{}(): argument 'base_url' must be a str or None, not {}".format(
            fname, type(base_url).__name__))
    flag(download, fname, "download")
    for name, value in flags.items():
        flag(value, fname, name)


def locate(dataset, filenames, urls, sha256s, path=None, download=False,
           cache_dir=None, base_url=None, bundled=False):
    """Return ``{filename: Path}`` for every file a loader needs.

    Each file is looked for in ``path`` (when given) and then in the cache
    folder (``cache_dir`` or :func:`default_cache_dir`). A file found in
    neither is downloaded into the cache folder when ``download`` is true,
    from ``base_url + "/" + filename`` when ``base_url`` is given, else from
    ``urls[filename]``; ``sha256s[filename]`` is checked (every missing file
    is tried; see :func:`fetch_all`). Otherwise, with ``bundled`` true and no
    ``path``, the gzipped copy shipped with bcml (``BUNDLED_DIR / (filename +
    ".gz")``) is used. A file still missing raises
    :class:`DatasetNotFoundError`, which names every missing file and says
    where to put them.
    """
    if path is not None:
        path = Path(os.fspath(path)).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(
                "path must be a folder holding {} (with their original names), "
                "got the file {}".format(", ".join(filenames), path))
    cache = Path(os.fspath(cache_dir)).expanduser() if cache_dir is not None \
        else default_cache_dir()

    def source(name):
        return base_url.rstrip("/") + "/" + name if base_url else urls[name]

    found = {}
    for name in filenames:
        candidates = ([path / name] if path is not None else []) + [cache / name]
        if bundled and path is None and not download:
            candidates.append(BUNDLED_DIR / (name + ".gz"))
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is not None:
            found[name] = hit
    missing = [n for n in filenames if n not in found]
    if missing and download:
        found.update(fetch_all(dataset, [(n, source(n), cache / n, sha256s.get(n), None)
                                         for n in missing]))
        missing = []

    if missing:
        where = ("{} or in the cache folder {}".format(path, cache)
                 if path is not None else "the cache folder {}".format(cache))
        raise DatasetNotFoundError(
            "{}: cannot find {} in {}. Put the original file(s) {} (same names) "
            "in a folder and pass path= to it (or put them in {}), or pass "
            "download=True to fetch them from {} into {}.".format(
                dataset, ", ".join(missing), where, ", ".join(filenames), cache,
                ", ".join(source(n) for n in filenames), cache),
            filename=str((path if path is not None else cache) / missing[0]),
            dataset=dataset, missing=missing,
            searched=([path] if path is not None else []) + [cache],
            sources=[source(n) for n in missing], cache=cache)
    return {n: found[n] for n in filenames}

"""The harness's cache folder: what the dataset plugins keep there, and clearing it (``harness cache``).

``$HARNESS_CACHE_DIR`` (default ``~/.cache/harness``) holds ``datasets/<name>/``: decoded tensors, one
``<hash>.pt`` entry per source folder and file stamp (and per seed for a voxelised ``mnist3d``), and,
in ``download/``, the files torchvision fetched. A cache entry's modification time is refreshed each
time a run reads it, so it says when the entry was last used. No torch here: listing and clearing
only look at files.

Clearing deletes only what the cache writes, known by its name (:data:`ENTRY_NAME`,
:data:`UNFINISHED_NAME`, the ``download`` folder), and follows no link below ``datasets/``: a dataset
folder, an entry or a file in a download folder that is a link may point anywhere (a user's own data
linked in, or a link planted there), and deleting through it lost files outside the cache. Anything
else is listed as ``other`` and left where it is.
"""

from __future__ import annotations

import os
import pathlib
import re
import stat
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

UNFINISHED_AGE_S = 3600.0
"""A ``.tmp`` file younger than this may be a run's entry being written: clearing leaves it."""

ENTRY_NAME = re.compile(r"[0-9a-f]{24}\.pt")
"""A decoded entry's file name, as ``harness_plugins.datasets.cache.entry_path`` makes it (24 hex digits of the
key's SHA-256): the only files in a dataset's folder that clearing deletes, besides unfinished writes."""

UNFINISHED_NAME = re.compile(r"\.[0-9a-f]{24}(\.pt)?\.[A-Za-z0-9_]+\.tmp")
"""The temporary file an entry is written to before it takes its name (``tempfile.mkstemp`` beside it, as
:func:`harness.results.temp_file_beside` makes it: ``.<digest>.pt.<random>.tmp``; ``.<digest>.<random>.tmp``
from harness versions before it)."""

DOWNLOAD = "download"
"""A dataset's folder of torchvision's downloaded files, inside its cache folder."""


def cache_root() -> pathlib.Path:
    """The harness cache root: ``$HARNESS_CACHE_DIR`` or ``~/.cache/harness``."""
    configured = os.environ.get("HARNESS_CACHE_DIR", "").strip()
    if configured:
        return pathlib.Path(configured).expanduser()
    return pathlib.Path.home() / ".cache" / "harness"


_ON, _OFF = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def offline() -> bool:
    """Whether ``HARNESS_OFFLINE`` forbids downloads. A value that is neither on nor off counts as on: a
    download nobody asked for is the worse mistake (``harness run`` refuses such a value, see
    :func:`offline_problem`)."""
    return os.environ.get("HARNESS_OFFLINE", "").strip().lower() not in _OFF


def offline_problem() -> str | None:
    """Why ``HARNESS_OFFLINE`` cannot be read as on or off, else None."""
    value = os.environ.get("HARNESS_OFFLINE", "")
    if value.strip().lower() in _ON | _OFF:
        return None
    return f"HARNESS_OFFLINE must be 1, true, yes or on (no downloads) or 0, false, no or off, not {value!r}"


def default_data_dir() -> pathlib.Path:
    """The ``data_dir`` a dataset plugin's ``load`` gets when ``--data-dir`` is not given:
    ``<cache root>/data`` (the contract passes a path, never None). It need not exist; the built-in
    loaders search it like a ``--data-dir`` when it does, so it can hold files for every run."""
    return cache_root() / "data"


def datasets_dir() -> pathlib.Path:
    return cache_root() / "datasets"


USED_MARK = ".last-used"
"""A file a dataset plugin touches in a download folder each time a run reads from it: the downloaded
files' own times must not change (decoded entries are keyed on them), so the folder's use is kept here."""


def mark_used(path: pathlib.Path) -> None:
    """Record that ``path`` was just read (its modification time), for ``harness cache --older-than``. For a
    download folder, pass ``folder / USED_MARK``: it is made if missing."""
    try:
        if path.name == USED_MARK:  # made, never through a link (a shared cache's planted one made a file anywhere)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0),
                         0o666)
            try:
                if os.utime in os.supports_fd:
                    os.utime(fd)
                else:
                    os.utime(path)
            finally:
                os.close(fd)
        else:
            os.utime(path, follow_symlinks=os.utime not in os.supports_follow_symlinks)
    except OSError:  # a read-only cache still serves its entries
        pass


def root_problem() -> str | None:
    """Why the cache root cannot be a folder (it, or a folder above it, is a file), else None."""
    root = cache_root()
    for folder in (root, *root.parents):
        if folder.exists():
            if folder.is_dir():
                return None
            where = "HARNESS_CACHE_DIR" if os.environ.get("HARNESS_CACHE_DIR", "").strip() else "the default"
            return f"the cache folder {root} cannot be made: {folder} is a file ({where})"
    return None


@dataclass
class CacheItem:
    """One thing in the cache: a decoded entry, a dataset's download folder, or an unfinished write."""

    dataset: str
    kind: str  # "decoded", "download" or "unfinished"
    path: str
    bytes: int
    last_used: float  # seconds since the epoch: the entry's mtime; a download folder's newest file's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tree_size(folder: pathlib.Path) -> tuple[int, float]:
    """The bytes under ``folder`` and its newest modification time, links counted as links (``os.walk``
    enters no linked folder, and ``lstat`` reads the link, not a file outside the cache it points at)."""
    size, newest = 0, folder.lstat().st_mtime
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                info = (pathlib.Path(root) / name).lstat()
            except OSError:
                continue
            size += info.st_size
            newest = max(newest, info.st_mtime)
    return size, newest


def cache_items(datasets: Iterable[str] | None = None) -> list[CacheItem]:
    """What ``datasets/`` holds (only these datasets' folders when given), by dataset then path.

    The root and its ``datasets/`` are where the user put the cache, links or not; below them nothing is
    followed. A dataset folder that is a link is one ``other`` item, not entered; in a dataset's folder,
    only files named as the cache names them are ``decoded`` or ``unfinished``, only ``download`` is a
    ``download`` (a link of that name, to a shared copy, is unlinked by clearing, its files kept), and
    anything else is ``other``, which clearing leaves."""
    root = datasets_dir()
    if not root.is_dir():
        return []
    wanted = set(datasets) if datasets is not None else None
    items = []
    for folder in sorted(_listing(root)):
        if wanted is not None and folder.name not in wanted:
            continue
        try:
            info = folder.lstat()
            if stat.S_ISLNK(info.st_mode):
                if folder.is_dir():  # listed, so that it shows as left; its files are not the cache's to count
                    items.append(CacheItem(folder.name, "other", str(folder), 0, info.st_mtime))
                continue
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode):
            continue
        for path in sorted(_listing(folder)):
            try:
                items.append(_item(folder.name, path))
            except OSError:  # gone while we looked (another process cleared it)
                continue
    return items


def _item(dataset: str, path: pathlib.Path) -> CacheItem:
    """What ``path``, in ``dataset``'s cache folder, is, read from the entry itself (``lstat``), never
    from what a link points at."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return CacheItem(dataset, "download" if path.name == DOWNLOAD else "other", str(path), 0, info.st_mtime)
    if stat.S_ISDIR(info.st_mode):
        size, used = _tree_size(path)
        return CacheItem(dataset, "download" if path.name == DOWNLOAD else "other", str(path), size, used)
    kind = "other"
    if stat.S_ISREG(info.st_mode):
        kind = ("decoded" if ENTRY_NAME.fullmatch(path.name)
                else "unfinished" if UNFINISHED_NAME.fullmatch(path.name) else "other")
    return CacheItem(dataset, kind, str(path), info.st_size, info.st_mtime)


def cached_datasets() -> set[str]:
    """The datasets the cache has a folder for (an empty one, or one whose plugin is gone, included)."""
    return {p.name for p in _listing(datasets_dir()) if p.is_dir()}


def _listing(folder: pathlib.Path) -> list[pathlib.Path]:
    """A folder's entries; none when it cannot be read (gone meanwhile, or not ours to read)."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def removable(items: list[CacheItem], older_than_days: float | None = None, downloads: bool = False,
              now: float | None = None) -> list[CacheItem]:
    """The items ``harness cache --clear`` deletes: decoded entries (unused for ``older_than_days`` when
    given), downloads only with ``downloads``, unfinished writes once an hour old, never anything else."""
    now = time.time() if now is None else now
    out = []
    for item in items:
        age = now - item.last_used
        if item.kind == "unfinished":
            keep = age < UNFINISHED_AGE_S
        elif item.kind == "decoded" or (item.kind == "download" and downloads):
            keep = older_than_days is not None and age < older_than_days * 86400
        else:
            keep = True
        if not keep:
            out.append(item)
    return out


def remove(items: list[CacheItem]) -> tuple[list[CacheItem], list[str]]:
    """Delete ``items``: those deleted, and a line per item that could not be. Only a download folder is
    deleted with what it holds (``shutil.rmtree``, which removes the links inside it, not their targets);
    anything else is unlinked, so a link goes and what it points at stays, and a file that became a folder
    since it was listed is refused."""
    import shutil

    removed, failed = [], []
    for item in items:
        path = pathlib.Path(item.path)
        try:
            if item.kind == "download" and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:  # a file, or a link (to a shared download folder: the link goes, its target stays)
                path.unlink(missing_ok=True)
            removed.append(item)
        except OSError as exc:
            failed.append(f"{path}: {exc.strerror or exc}")
    return removed, failed

"""Exceptions with a meaning for the command line.

A :class:`HarnessError` is something the user can fix (a bad name, a missing
file, data that is not there): the CLI prints its message on one line and
exits with status 2, with no traceback unless ``--debug``. Inside a run, a
dataset's ``DataUnavailableError`` fails the jobs that need that dataset with
the same one-line message.
"""

from __future__ import annotations

import errno as _errno


class HarnessError(Exception):
    """An error caused by input the user can fix; shown as one line, exit status 2."""


EXIT_STORAGE = 74
"""The exit status of a :class:`StorageError`: sysexits' EX_IOERR."""

DISK_FULL_ERRNOS = frozenset(getattr(_errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(_errno, name))
"""A full disk, an exhausted quota, a file-size limit: what "make room" fixes."""

STORAGE_ERRNOS = DISK_FULL_ERRNOS | {_errno.EROFS}
"""The storage itself refuses, whatever the path: exit :data:`EXIT_STORAGE`, not a usage error."""


class StorageError(HarnessError):
    """A run folder that took the run's first files but refuses later ones (a full disk, a folder made
    read-only): not the user's input, so exit status :data:`EXIT_STORAGE` (74), not 2. The message names
    the cause and how to go on."""

    exit_code = EXIT_STORAGE


def storage_failure(exc: BaseException | None) -> OSError | None:
    """The ``OSError`` of a full disk, an exhausted quota or file-size limit, a read-only file system or a
    refused write (``EACCES``, ``EPERM``) in ``exc`` or the exceptions it was raised from; None when there is none."""
    # mid-run, a refused write is the folder turned read-only (EPERM: a file or folder made immutable)
    refused = STORAGE_ERRNOS | {_errno.EACCES, _errno.EPERM}
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in refused:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class UnknownNameError(HarnessError, KeyError):
    """A model, dataset, metric or plugin name that nothing registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataUnavailableError(HarnessError):
    """A dataset's files are not where they were looked for and could not be downloaded."""


class StageError(Exception):
    """A job stage failed; ``stage`` names it (build, train, export, ...)."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


def known_cause(exc: BaseException) -> str:
    """A hint for errors whose message hides a known cause ("" for any other): torchvision's compiled
    operators that do not load ("operator torchvision::nms does not exist") mean a torchvision built for
    another torch, typically torch's CPU build beside torchvision's CUDA wheel from PyPI."""
    if "torchvision::" not in str(exc):
        return ""
    import sys

    torch = sys.modules.get("torch")  # imported already where torchvision failed: never imported here
    version = f" ({torch.__version__})" if torch is not None and hasattr(torch, "__version__") else ""
    return (f" (torchvision was built for another torch than the one installed{version}: install both from one index, e.g. "
            "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu)")


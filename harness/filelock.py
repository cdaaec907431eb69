"""Advisory, non-blocking locks on an open file, released when the file is closed or the process ends
(however it ends: a killed run leaves no stale lock).

POSIX: ``flock`` (exclusive, or shared for a look). Windows: ``msvcrt.locking`` on one byte far past
the file's text, so the text (a holder's pid) stays readable while the byte is locked; Windows has
no shared lock, so a look takes the byte for an instant and lets it go.
"""

from __future__ import annotations

import errno
from typing import IO, Any

_WINDOWS_BYTE = 1 << 30  # the byte locked on Windows: past any pid the file holds


class Unsupported(OSError):
    """This platform or file system offers no such lock."""


def try_lock(handle: IO[Any], shared: bool = False) -> bool:
    """Take the lock on ``handle`` without waiting: True when taken, False when another process holds it.

    Raises :class:`Unsupported` where there is no lock to take (no ``fcntl`` nor ``msvcrt``, or a file
    system without ``flock``: some NFS, CIFS or FUSE mounts)."""
    try:
        import fcntl
    except ImportError:
        return _try_lock_windows(handle)
    try:
        fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise Unsupported(exc.errno, exc.strerror) from None
    return True


def held_elsewhere(handle: IO[Any]) -> bool:
    """Whether another process holds the lock on the file ``handle`` is open on; only looks (on Windows
    the lock is taken for an instant and let go). False where no lock can be taken."""
    try:
        taken = try_lock(handle, shared=True)
    except Unsupported:
        return False
    if taken and _msvcrt() is not None:
        _unlock_windows(handle)
    return not taken


def _msvcrt() -> Any:
    try:
        import msvcrt
    except ImportError:
        return None
    return msvcrt


def _try_lock_windows(handle: IO[Any]) -> bool:
    msvcrt = _msvcrt()
    if msvcrt is None:
        raise Unsupported(errno.ENOSYS, "no fcntl nor msvcrt")
    try:
        _at_lock_byte(handle, msvcrt.LK_NBLCK)
    except OSError as exc:
        if exc.errno in _HELD_ERRNOS:
            return False
        raise Unsupported(exc.errno, exc.strerror) from None
    return True


def _unlock_windows(handle: IO[Any]) -> None:
    msvcrt = _msvcrt()
    try:
        _at_lock_byte(handle, msvcrt.LK_UNLCK)
    except OSError:
        pass


_HELD_ERRNOS = {errno.EACCES, getattr(errno, "EDEADLOCK", errno.EACCES), getattr(errno, "EDEADLK", errno.EACCES)}


def _at_lock_byte(handle: IO[Any], mode: int) -> None:
    """``msvcrt.locking`` of the lock byte: it locks from the descriptor's position, which is put back."""
    import os

    msvcrt = _msvcrt()
    fd = handle.fileno()
    where = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, mode, 1)
    finally:
        os.lseek(fd, where, os.SEEK_SET)

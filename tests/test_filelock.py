"""The run folder's lock, with flock (POSIX) and with msvcrt's byte lock (Windows, simulated here)."""

from __future__ import annotations

import errno
import os
import sys
import types

import pytest

from harness.errors import HarnessError
from harness.results import RunFolder, RunInUseError


def fake_msvcrt() -> types.ModuleType:
    """msvcrt.locking as Windows does it: a byte range at the descriptor's position, refused (EACCES) to
    any other descriptor while its holder is open, whatever process or handle asks."""
    held: dict[tuple[int, int], int] = {}  # (file id, offset) -> holding descriptor
    module = types.ModuleType("msvcrt")
    module.LK_NBLCK, module.LK_UNLCK = 2, 0

    def is_open(fd: int) -> bool:
        try:
            os.fstat(fd)
            return True
        except OSError:
            return False

    def locking(fd: int, mode: int, nbytes: int) -> None:
        key = (os.fstat(fd).st_ino, os.lseek(fd, 0, os.SEEK_CUR))
        holder = held.get(key)
        if mode == module.LK_UNLCK:
            held.pop(key, None)
        elif holder is not None and holder != fd and is_open(holder):
            raise OSError(errno.EACCES, "Permission denied")
        else:
            held[key] = fd

    module.locking = locking
    return module


@pytest.fixture(params=["flock", "msvcrt"])
def platform_lock(request, monkeypatch):
    if request.param == "msvcrt":
        monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl -> ImportError, as on Windows
        monkeypatch.setitem(sys.modules, "msvcrt", fake_msvcrt())
    elif sys.platform == "win32":
        pytest.skip("flock is POSIX")
    return request.param


def test_a_held_run_folder_is_refused_to_a_second_holder_and_named_to_a_look(tmp_path, platform_lock):
    run = tmp_path / "r"
    run.mkdir()
    assert RunFolder.holder(run) is None  # no .lock file yet: nobody
    first = RunFolder(run, {}).lock()
    assert RunFolder.holder(run) == str(os.getpid())  # the pid stays readable beside the lock
    with pytest.raises(RunInUseError, match=f"in use by another harness process \\(pid {os.getpid()}\\)"):
        RunFolder(run, {}).lock()
    assert RunFolder.holder(run) == str(os.getpid())  # a look takes nothing away
    first.unlock()
    assert RunFolder.holder(run) is None
    second = RunFolder(run, {}).lock()  # free again
    assert RunFolder.holder(run) == str(os.getpid())
    second.unlock()


def test_a_file_system_without_locks_runs_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    import harness.filelock as filelock

    def unsupported(handle, shared=False):
        raise filelock.Unsupported(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(filelock, "try_lock", unsupported)
    folder = RunFolder(tmp_path, {}).lock()
    assert folder._lock is None and "running without the lock" in caplog.text
    with pytest.raises(HarnessError, match="cannot write in the run folder"):
        RunFolder(tmp_path / "missing", {}).lock()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="symbolic links and FIFOs as POSIX makes them")
def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_not_written_through_nor_waited_on(tmp_path):
    import threading

    run = tmp_path / "r"
    run.mkdir()
    precious = tmp_path / "notes.txt"
    precious.write_text("precious")
    (run / RunFolder.LOCK_FILE).symlink_to(precious)  # a copied run folder, or a planted link
    with pytest.raises(HarnessError, match="is a symbolic link, not the run's lock file"):
        RunFolder(run, {}).lock()
    assert precious.read_text() == "precious"  # the pid was not written through the link
    assert RunFolder.holder(run) is None
    dangling = tmp_path / "r2"
    dangling.mkdir()
    (dangling / RunFolder.LOCK_FILE).symlink_to(tmp_path / "made-elsewhere")
    with pytest.raises(HarnessError, match="symbolic link"):
        RunFolder(dangling, {}).lock()
    assert not (tmp_path / "made-elsewhere").exists()

    (run / RunFolder.LOCK_FILE).unlink()
    os.mkfifo(run / RunFolder.LOCK_FILE)
    looked: list = []
    look = threading.Thread(target=lambda: looked.append(RunFolder.holder(run)), daemon=True)
    look.start()
    look.join(timeout=10)
    assert looked == [None]  # a look (harness compare) answers at once: opening a FIFO to read would wait
    with pytest.raises(HarnessError, match="not a regular file"):
        RunFolder(run, {}).lock()


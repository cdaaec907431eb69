"""benchmarks/gpu_session.sh when things go wrong: the bundle still comes back.

A device call brings back only what is in $OUT, so every way the script can end (an install that
fails, no GPU, a signal) must still leave the bundle there. These tests run no harness work: a
stand-in python (`_python`) fails pip or the in-place link on demand, runs a sleeping stand-in for
`-m harness`, and passes everything else to this interpreter.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

if sys.platform == "win32":
    pytest.skip("gpu_session.sh is a bash script for the Linux GPU machine; its tests send POSIX signals",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"

STAND_IN = """#!/bin/sh
case "$1 $2" in
    "-m pip") [ -n "$FAKE_PIP_FAILS" ] && { echo "pip: no network here" >&2; exit 1; } ;;
    "-m harness") [ -n "$FAKE_HARNESS_SLEEPS" ] && exec "{python}" -c "$HARNESS_STAND_IN" ;;
esac
[ "$1" = - ] && [ -n "$FAKE_LINK_FAILS" ] && { echo "no tomllib here" >&2; exit 1; }
exec "{python}" "$@"
"""

# What `-m harness` runs with FAKE_HARNESS_SLEEPS: on SIGTERM, says so and stops, as the harness does.
HARNESS_STAND_IN = """
import os, signal, sys, time
log = os.path.join(os.environ["HARNESS_GPU_RUNS"], "logs", "stand-in.log")
def stop(*_):
    with open(log, "a") as f:
        f.write("stand-in harness: SIGTERM\\n")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
with open(log, "a") as f:
    f.write("stand-in harness: running\\n")
time.sleep(float(os.environ["FAKE_HARNESS_SLEEPS"]))
"""


def _python(tmp_path: Path) -> Path:
    path = tmp_path / "python"
    path.write_text(STAND_IN.replace("{python}", sys.executable))
    path.chmod(0o755)
    return path


def _other_checkout(tmp_path: Path) -> Path:
    """A folder whose harness_plugins shadows this tree's, as another checkout's install would."""
    (tmp_path / "other" / "harness_plugins").mkdir(parents=True)
    (tmp_path / "other" / "harness_plugins" / "__init__.py").write_text("")
    return tmp_path / "other"


def _env(tmp_path: Path, **env: str) -> dict[str, str]:
    # The script pip-installs this tree into the Python it is given when that Python imports another copy (as
    # under tox, whose install is not editable): the test suite's own environment, while other tests import
    # from it. Only a stand-in pip that fails (FAKE_PIP_FAILS) may take that path here.
    install = "1" if env.get("FAKE_PIP_FAILS") else "0"
    return {**os.environ, "HARNESS_GPU_RUNS": str(tmp_path / "runs"), "OUT": str(tmp_path / "out"),
            "HARNESS_GPU_DEVICE": "cpu", "PYTHON": str(_python(tmp_path)),
            "HARNESS_STAND_IN": HARNESS_STAND_IN, "HARNESS_GPU_INSTALL": install, **env}


def _run(tmp_path: Path, *stages: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *stages], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=_env(tmp_path, **env))


def _bundled(tmp_path: Path) -> list[str]:
    with tarfile.open(tmp_path / "out" / "gpu-session.tar.gz") as bundle:
        return bundle.getnames()


def test_another_checkouts_install_is_replaced_by_this_tree_linked_in_place(tmp_path):
    # pip fails (an older setuptools on the GPU machine): the tree goes first on the path, with a dist-info
    # named after harness.__version__ (pyproject's version is dynamic) that carries the entry points.
    import harness

    other = _other_checkout(tmp_path)
    result = _run(tmp_path, "bundle", PYTHONPATH=str(other), FAKE_PIP_FAILS="1")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f"harness_plugins imports from {os.path.realpath(other)}" in out
    assert "pip could not install the project" in out and "using this tree through PYTHONPATH=" in out
    info = tmp_path / "runs" / ".site" / f"harness-{harness.__version__}.dist-info"
    entry_points = (info / "entry_points.txt").read_text()
    assert "[harness]" in entry_points and "fast = harness_plugins.fast" in entry_points
    assert (tmp_path / "runs" / ".site" / "harness_plugins").resolve() == ROOT / "plugins"
    assert "runs/logs/install.log" in _bundled(tmp_path)
    assert out.count("== bundle") == 1  # the stage made it; the exit did not make it again


def test_an_install_that_fails_is_said_and_the_bundle_still_comes(tmp_path):
    result = _run(tmp_path, "fast", PYTHONPATH=str(_other_checkout(tmp_path)), FAKE_PIP_FAILS="1",
                  FAKE_LINK_FAILS="1")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    assert "could not link the project in place" in out
    assert re.search(r"!!! the project cannot be installed or imported from this tree .*the bundle still",
                     out)
    assert "== fast skipped: the project cannot be installed" in out and "== fast (" not in out
    assert "== bundle (on exit, status 1" in out
    assert "runs/logs/install.log" in _bundled(tmp_path)
    assert "no tomllib here" in (tmp_path / "runs" / "logs" / "install.log").read_text()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine where torch sees no GPU")
def test_no_gpu_with_device_cuda_skips_the_gpu_stages_loudly_and_still_bundles(tmp_path):
    result = _run(tmp_path, "fast", "seed002", HARNESS_GPU_DEVICE="cuda")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    assert re.search(r"!!! torch \S+ \(built for CUDA \S+\) sees no CUDA device, but HARNESS_GPU_DEVICE is",
                     out)
    assert "== fast skipped: torch" in out and "== seed002 skipped: torch" in out
    assert "== bundle (on exit, status 1" in out and "runs/logs" in _bundled(tmp_path)


def test_a_sigterm_during_a_stage_stops_the_harness_and_still_leaves_the_bundle(tmp_path):
    # As a stop of the whole process group (Ctrl-C, a tool's kill): `timeout` keeps the harness in a group of
    # its own, which that misses, so the script hands it the SIGTERM (the harness writes its reports on it)
    # and bundles once it has ended. `-m harness` is a stand-in that would sleep 60 s.
    log = tmp_path / "stdout.txt"
    start = time.monotonic()
    with log.open("w") as stdout:
        script = subprocess.Popen(["bash", str(SCRIPT), "fast"], stdout=stdout, stderr=subprocess.STDOUT,
                                  cwd=ROOT, env=_env(tmp_path, FAKE_HARNESS_SLEEPS="60"),
                                  start_new_session=True)
        try:
            ready = tmp_path / "runs" / "logs" / "stand-in.log"
            while not ready.exists() and time.monotonic() < start + 60:
                time.sleep(0.1)  # until the stage's first command runs, its SIGTERM handler set
            os.killpg(script.pid, signal.SIGTERM)
            rc = script.wait(timeout=60)
        finally:
            if script.poll() is None:
                os.killpg(script.pid, signal.SIGKILL)
    out = log.read_text()
    assert rc == 143, out[-3000:]
    assert "stopping what still runs (timeout pid" in out and "== bundle (on exit, status 143" in out
    assert time.monotonic() - start < 50  # the stand-in did not sleep on
    with tarfile.open(tmp_path / "out" / "gpu-session.tar.gz") as bundle:
        stopped = bundle.extractfile("runs/logs/stand-in.log").read().decode()
    assert stopped == "stand-in harness: running\nstand-in harness: SIGTERM\n", out


# What `-m harness` runs in the tests below: as the harness does on SIGTERM, prints the interrupted run's
# table and the --resume hint last, then stops.
HARNESS_LAST_WORDS_STAND_IN = """
import os, signal, sys, time
log = os.path.join(os.environ["HARNESS_GPU_RUNS"], "logs", "stand-in.log")
def stop(*_):
    print("interrupted: 2 of 5 jobs done")
    print("resume with: harness run --resume")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
print("stand-in harness: running")
with open(log, "a") as f:
    f.write("stand-in harness: running\\n")
time.sleep(float(os.environ["FAKE_HARNESS_SLEEPS"]))
"""
LAST_WORDS = "interrupted: 2 of 5 jobs done\nresume with: harness run --resume\n"


def _session(sid: int) -> list[int]:
    """The processes of session `sid` still running (zombies aside): the script's group and timeout's."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, _pgrp, session = stat.read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue  # ended meanwhile
        if int(session) == sid and state != "Z":
            left.append(int(stat.parent.name))
    return left


def _stop_mid_stage(tmp_path: Path, command: list[str], sig: int, **popen) -> tuple[int, list[int]]:
    """Runs `command` (the script, or a caller of it) in a session of its own with the last-words stand-in,
    sends `sig` to its process group once the stand-in runs, and returns its status and what of the session
    was still running 10 s after it ended (nothing, unless something outlived the call)."""
    script = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                              env=_env(tmp_path, FAKE_HARNESS_SLEEPS="60",
                                       HARNESS_STAND_IN=HARNESS_LAST_WORDS_STAND_IN), **popen)
    try:
        ready = tmp_path / "runs" / "logs" / "stand-in.log"
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # until the stage's first command runs, its SIGTERM handler set
        os.killpg(script.pid, sig)
        status = script.wait(timeout=60)
        deadline = time.monotonic() + 10
        while _session(script.pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # the script's last processes (a zombie's reaping, the bundle) may take a moment
        return status, _session(script.pid)
    finally:
        for pid in _session(script.pid):  # what outlived a failed test, timeout's group included
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_to_the_group_keeps_the_harness_last_lines_in_the_console_and_the_log(tmp_path, sig, rc):
    # The readers of the stage's pipeline (tee, tail) are in the script's group too: they must outlive the
    # signal to pass on what the harness prints as it stops, then end with it; the call still ends at once.
    log = tmp_path / "stdout.txt"
    start = time.monotonic()
    with log.open("w") as stdout:
        status, left = _stop_mid_stage(tmp_path, ["bash", str(SCRIPT), "fast"], sig, stdout=stdout,
                                       stderr=subprocess.STDOUT)
    out = log.read_text()
    assert status == rc, out[-3000:]
    assert time.monotonic() - start < 50, out[-3000:]  # the stand-in did not sleep on
    assert left == [], f"still running: {left}\n{out[-3000:]}"
    assert LAST_WORDS in out and f"== bundle (on exit, status {rc}" in out, out[-3000:]
    assert out.index(LAST_WORDS) < out.index("== bundle (on exit")
    assert "fast-graphs" not in out  # the stage's next command did not start
    stage_log = (tmp_path / "runs" / "logs" / "fast-eager.log").read_text()
    assert stage_log.endswith(LAST_WORDS), stage_log
    with tarfile.open(tmp_path / "out" / "gpu-session.tar.gz") as bundle:
        bundled_log = bundle.extractfile("runs/logs/fast-eager.log").read().decode()
    assert bundled_log.endswith(LAST_WORDS), bundled_log


def test_a_signal_that_ends_the_callers_tee_too_still_stops_the_harness_and_bundles(tmp_path):
    # A device command that keeps the console (`bash gpu_session.sh ... | tee $OUT/console.log`): its tee is
    # in the group and dies at once, so the script's next line hits a closed pipe. That must not end the
    # script (SIGPIPE) before it has stopped the harness and made the bundle.
    (tmp_path / "out").mkdir()
    console = tmp_path / "out" / "console.log"
    caller = ["bash", "-c", 'bash "$0" fast 2>&1 | tee "$1"', str(SCRIPT), str(console)]
    _, left = _stop_mid_stage(tmp_path, caller, signal.SIGTERM, stdout=subprocess.DEVNULL)
    assert left == [], f"still running: {left}"
    with tarfile.open(tmp_path / "out" / "gpu-session.tar.gz") as bundle:
        bundled_log = bundle.extractfile("runs/logs/fast-eager.log").read().decode()
    assert bundled_log.endswith(LAST_WORDS), bundled_log

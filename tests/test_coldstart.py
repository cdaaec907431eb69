"""Cold starts: a model's load and first answer timed in new processes (real ONNX Runtime, real processes)."""

from __future__ import annotations

import sys

import pytest
from conftest import relu_onnx, save_onnx_graph

from harness.coldstart import cold_start_for, cold_start_text, measure_cold_start, summarise

LINUX = sys.platform.startswith("linux")


def test_a_cold_start_is_timed_in_new_processes_not_in_this_one(tmp_path, monkeypatch):
    import harness.ort

    def refuse(*args, **kwargs):
        raise AssertionError("a cold start timed in the harness's own process")

    monkeypatch.setattr(harness.ort, "make_session", refuse)  # the probes import their own harness.ort
    path = relu_onnx(tmp_path / "relu.onnx", ["N", "C"])
    record = measure_cold_start(path, batch_size=4, runs=2, dims={"C": 8})
    assert "error" not in record, record
    assert record["runs"] == 2 and len(record["samples_ms"]) == 2
    assert record["session_ms"] > 0 and record["first_call_ms"] > 0 and record["runtime_ms"] > 0
    assert record["ms"] == pytest.approx(sum(record["samples_ms"]) / 2, abs=1e-5)  # the median of two
    assert (record["provider"], record["threads"], record["batch_size"]) == ("CPUExecutionProvider", 1, 4)
    assert cold_start_text(record).startswith("cold start (new process, CPU, batch 4, 1 thread): ")
    assert "median of 2" in cold_start_text(record)
    with pytest.raises(ValueError, match="no open input dimension is called 'c'"):  # was run at 1, silently
        measure_cold_start(path, runs=1, dims={"c": 8})


def test_a_cold_start_takes_the_batch_the_graph_fixes(tmp_path):
    record = measure_cold_start(relu_onnx(tmp_path / "fixed.onnx", [4, 8]), runs=1)  # failed at batch 1
    assert "error" not in record and record["batch_size"] == 4, record


@pytest.mark.skipif(not LINUX, reason="the peak is reset and read exactly on Linux only (macOS: ru_maxrss growth)")
def test_the_memory_a_model_adds_grows_with_its_weights(tmp_path):
    """A model whose weights are 16 MiB adds at least that much resident memory, and more than one with
    a few bytes of weights: the figure follows the model, not the process around it."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    def matmul(path, n):
        w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32), "w")
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], [w])
        return save_onnx_graph(graph, path)

    small = measure_cold_start(matmul(tmp_path / "small.onnx", 4), runs=1)
    # 2048^2 floats, 16 MiB: the small model's figure is ONNX Runtime's own ~0.8 MiB, and at 8 MiB the
    # tenfold margin below was within that figure's noise
    big = measure_cold_start(matmul(tmp_path / "big.onnx", 2048), runs=1)
    assert "error" not in big, big
    assert big["rss_bytes"] >= 2048 * 2048 * 4 > 10 * small["rss_bytes"] > 0
    # what it still holds after its first answer: the weights, not the passing copy made while loading
    assert 2048 * 2048 * 4 <= big["rss_held_bytes"] <= big["rss_bytes"]
    assert "MiB of resident memory at its peak (" in cold_start_text(big) and " held after it)" in cold_start_text(big)


def test_the_runs_stop_once_they_have_taken_the_time_allowed(tmp_path):
    path = relu_onnx(tmp_path / "relu.onnx", [1, 3])
    assert measure_cold_start(path, runs=3, max_time_s=0)["runs"] == 1  # at least one, however short the time


@pytest.mark.parametrize("case, batch_size, needle", [
    ("missing", 1, "NoSuchFile"),
    ("missing", None, "FileNotFoundError"),  # read here for the batch the graph fixes, not in the probe
    ("not onnx", None, "not a readable ONNX model (DecodeError)"),  # was protobuf's DecodeError, raised
    ("not onnx", 1, "Protobuf parsing failed"),
    ("static batch", 2, "static batch dimension 1"),
    ("timeout", 1, "took longer than 0.001 s"),
])
def test_a_failed_probe_is_an_error_in_the_record_not_an_exception(tmp_path, case, batch_size, needle):
    path = relu_onnx(tmp_path / "relu.onnx", [1, 3])
    if case == "missing":
        path = tmp_path / "gone.onnx"
    elif case == "not onnx":
        path = tmp_path / "truncated.onnx"
        path.write_bytes((tmp_path / "relu.onnx").read_bytes()[:40])
    record = measure_cold_start(path, batch_size=batch_size, runs=2, timeout_s=0.001 if case == "timeout" else 300)
    assert needle in record["error"] and "ms" not in record
    assert cold_start_text(record).endswith(f"not measured: {record['error']}")


def test_the_setting_is_where_the_latency_rows_start(tmp_path):
    path = relu_onnx(tmp_path / "relu.onnx", ["N", 3])
    rows = [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "threads": t, "batch_size": b,
             "opt_level": "basic"} for t in (2, 1) for b in (4, 2)]
    torch_row = {"runtime": "torch", "provider": "cpu", "threads": 1, "batch_size": 1}
    gpu_row = {**rows[0], "provider": "CUDAExecutionProvider", "threads": 1, "batch_size": 1}
    record = cold_start_for(path, [torch_row, gpu_row, *rows], runs=1)  # the CPU provider's, where measured
    assert record["provider"] == "CPUExecutionProvider" and "error" not in record
    assert (record["threads"], record["batch_size"], record["opt_level"], record["runs"]) == (1, 2, "basic", 1)
    assert cold_start_for(path, rows, runs=0) is None
    assert cold_start_for(path, [torch_row], runs=3) is None  # nothing timed in ONNX Runtime


def test_summarise_takes_medians_of_each_part_and_of_the_sums():
    samples = [{"runtime_ms": 100.0, "session_ms": 1.0, "first_call_ms": 9.0},
               {"runtime_ms": 120.0, "session_ms": 5.0, "first_call_ms": 1.0},
               {"runtime_ms": 110.0, "session_ms": 3.0, "first_call_ms": 2.0}]
    samples[1].update(rss_bytes=2048, rss_held_bytes=1024)  # only where it could be read
    assert summarise(samples) == {"ms": 6.0, "session_ms": 3.0, "first_call_ms": 2.0, "runtime_ms": 110.0,
                                  "rss_bytes": 2048, "rss_held_bytes": 1024, "runs": 3, "samples_ms": [10.0, 6.0, 5.0]}
    assert summarise(samples[:1])["rss_bytes"] is None


@pytest.mark.skipif(not LINUX, reason="reads process states from /proc")
def test_a_probe_leaves_by_itself_past_its_deadline_or_when_the_harness_is_gone(tmp_path):
    import subprocess
    import time

    # past its deadline: the watchdog ends a probe stuck in a load (here, a sleep)
    stuck = ("import os, time; from harness.coldstart import _watch; _watch(os.getppid(), 0.5); time.sleep(30)")
    started = time.monotonic()
    assert subprocess.run([sys.executable, "-c", stuck], timeout=20).returncode == 3
    assert time.monotonic() - started < 15
    # the harness gone (killed outright): the orphaned probe notices its parent changed and leaves
    pid_file = tmp_path / "probe.pid"
    orphan = (f"import os, time; from harness.coldstart import _watch; "
              f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); _watch(os.getppid(), 300); time.sleep(30)")
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {orphan!r}]); time.sleep(2)"
    subprocess.run([sys.executable, "-c", parent], timeout=20)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    assert not _alive(pid)


def test_on_windows_a_probe_keeps_to_its_deadline_whoever_its_parent_is():
    """A venv's python.exe on Windows starts the interpreter as its child: the probe's parent was never the
    harness, and every probe left at once (exit 3), so no cold start was ever measured there."""
    import subprocess

    code = ("import os, time; from harness.coldstart import _watch\n"
            "os.name = 'nt'  # as on Windows, where the parent is the venv's launcher\n"
            "_watch(os.getppid() + 12345, 5)\n"
            "time.sleep(1.2); print('measured', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "measured", (done.returncode, done.stderr)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone in all but name
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize("planted", ["onnxruntime.py", "harness/"])
def test_a_probe_does_not_import_modules_from_the_working_directory(tmp_path, monkeypatch, planted):
    """``python -m`` puts the working directory first on the probe's path: an ``onnxruntime.py`` or a
    ``harness/`` folder in whatever folder the user runs from was imported in place of the real ones
    (code run from an untrusted folder)."""
    path = relu_onnx(tmp_path / "relu.onnx", [1, 3])
    work = tmp_path / "untrusted"
    work.mkdir()
    marker = tmp_path / "imported-from-cwd"
    plant = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    if planted == "onnxruntime.py":
        (work / "onnxruntime.py").write_text(plant + "raise ImportError('the planted onnxruntime')\n")
    else:
        (work / "harness").mkdir()
        (work / "harness" / "__init__.py").write_text(plant)
        (work / "harness" / "coldstart.py").write_text(plant + "raise SystemExit(7)\n")
    monkeypatch.chdir(work)
    record = measure_cold_start(path, batch_size=1, runs=1)
    assert not marker.exists(), f"imported from the working directory: {marker.read_text().split()}"
    assert "error" not in record, record

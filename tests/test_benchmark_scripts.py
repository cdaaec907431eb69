"""The benchmark scripts run end to end on small real work and print what they promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(*args: str, name: str = "train_speed.py") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_train_speed_prints_one_ratio_per_configuration():
    result = _script("--model", "mnist-ultralight-cnn", "--dataset", "synthetic", "--max-train-samples", "256",
                     "--device", "cpu", "--configs", "eager,cuda-graphs")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert re.search(r"naive DataLoader\s+:\s+[\d.]+ s\s+test accuracy 0\.\d{4}", result.stdout)
    ratios = [line for line in lines if line.startswith("harness ")]
    assert [line.split()[1] for line in ratios] == ["eager", "cuda-graphs"]
    assert all(re.search(r"speed-up\s+[\d.]+x", line) for line in ratios)
    assert "no CUDA graph: CUDA graphs need a CUDA device" in ratios[1]


def test_train_speed_refuses_an_unknown_configuration_before_training():
    result = _script("--configs", "eager,cuda-graph")
    assert result.returncode != 0 and "unknown config word(s) cuda-graph" in result.stderr


def test_harness_overhead_refuses_fewer_than_two_rounds_before_measuring():
    result = _script("--rounds", "1", name="harness_overhead.py")
    assert result.returncode == 2 and "--rounds must be at least 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_channels_last_prints_a_ratio_per_fitting_model_and_their_median():
    result = _script("--models", "mnist-ultralight-cnn,cnn3d-resnet,mnist-mlp", "--samples", "128", "--rounds", "1",
                     name="train_ab.py")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if "ratio" in line and "median" not in line]
    # cnn3d-resnet takes volumes, not 1x28x28 images: left out.
    assert [line.split()[0] for line in rows] == ["mnist-ultralight-cnn", "mnist-mlp"]
    assert all(re.search(r"contiguous\s+[\d.]+ s\s+channels-last\s+[\d.]+ s\s+ratio\s+[\d.]+x", r) for r in rows)
    assert re.search(r"median ratio over 2 model\(s\): [\d.]+x", result.stdout)


def test_channels_last_refuses_a_dataset_that_is_not_2d():
    result = _script("--dataset", "synthetic3d", "--samples", "16", name="train_ab.py")
    assert result.returncode != 0 and "not a 2D image dataset" in result.stderr


def test_bf16_option_compares_float32_with_bf16_autocast_on_2d_and_3d_models():
    result = _script("--option", "bf16", "--models", "mnist-ultralight-cnn,cnn3d-resnet", "--samples", "64",
                     "--rounds", "1", name="train_ab.py")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "float32 (A) vs bf16 (B)" in result.stdout and "native bf16" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "ratio" in line and "median" not in line]
    assert [line.split()[0] for line in rows] == ["mnist-ultralight-cnn"]  # synthetic is 2D: the 3D model is left out
    assert re.search(r"float32\s+[\d.]+ s\s+bf16\s+[\d.]+ s\s+ratio\s+[\d.]+x\s+loss ([\d.]+) / ([\d.]+)", rows[0])


def _gpu_session(tmp_path: Path, *stages: str, **env: str) -> subprocess.CompletedProcess:
    """benchmarks/gpu_session.sh with its run folders under tmp_path/runs and its $OUT in tmp_path/out."""
    env = {**os.environ, "HARNESS_GPU_RUNS": str(tmp_path / "runs"), "OUT": str(tmp_path / "out"),
           "HARNESS_GPU_DEVICE": "cpu", "PYTHON": sys.executable, "HARNESS_GPU_INSTALL": "0", **env}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), *stages],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


@pytest.mark.skipif(sys.platform == "win32", reason="gpu_session.sh is a bash script for the Linux GPU machine")
def test_gpu_session_keeps_to_its_time_budget_and_always_bundles(tmp_path):
    """HARNESS_GPU_BUDGET: a stage that would start without time left is skipped, and the bundle still comes."""
    runs = tmp_path / "runs"
    (runs / "earlier-run").mkdir(parents=True)
    (runs / "earlier-run" / "results.json").write_text("{}")
    (runs / "earlier-run" / "model.onnx").write_bytes(b"x")
    result = _gpu_session(tmp_path, "fast", "seed002", HARNESS_GPU_BUDGET="20")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # 20 s of budget less the 45 s kept for the bundle: nothing but the bundle may start.
    assert "== fast skipped: time budget spent" in result.stdout
    assert "== seed002 skipped: time budget spent" in result.stdout
    assert "== bundle" in result.stdout
    with tarfile.open(tmp_path / "out" / "gpu-session.tar.gz") as bundle:
        names = bundle.getnames()
    assert "runs/earlier-run/results.json" in names and not any(n.endswith(".onnx") for n in names)
    # The device tool returns at most 8 files from $OUT: the logs travel inside the bundle.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu-session.tar.gz"]
    assert "runs/logs/install.log" in names or "runs/logs" in names


@pytest.mark.skipif(sys.platform == "win32", reason="gpu_session.sh is a bash script for the Linux GPU machine")
def test_gpu_session_refuses_an_unknown_stage_before_doing_anything(tmp_path):
    result = _gpu_session(tmp_path, "fast", "fastt")
    assert result.returncode == 2 and "unknown stage fastt" in result.stdout
    assert not (tmp_path / "runs" / "logs" / "install.log").exists()


def test_export_speed_prints_both_sides_the_ratio_and_that_the_files_match():
    result = _script("--model", "mnist-ultralight-cnn", "--rounds", "1", name="export_speed.py")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"op table rebuilt per export \(torch's way\): [\d.]+ s", result.stdout)
    assert re.search(r"op table reused \(the harness\):\s+[\d.]+ s", result.stdout)
    assert re.search(r"speed-up x[\d.]+; files byte for byte the same: yes", result.stdout)


def test_report_scale_times_two_run_sizes_and_prints_their_ratio():
    result = _script("--small", "6", "--large", "12", "--no-curves", name="report_scale.py")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"N=6\s+write_reports\s+[\d.]+ s", result.stdout)
    assert re.search(r"N=12\s+write_reports\s+[\d.]+ s", result.stdout)
    assert re.search(r"ratio N=12 / N=6: [\d.]+x \(jobs: 2\.0x\)", result.stdout)


def test_report_scale_refuses_sizes_out_of_order():
    result = _script("--small", "50", "--large", "10", name="report_scale.py")
    assert result.returncode == 2 and "--small must be" in result.stderr

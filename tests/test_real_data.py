"""Short real-data runs: real MNIST (when HARNESS_TEST_MNIST_DIR points at the IDX files) and real
Fashion-MNIST (when the Debian package dataset-fashion-mnist is installed). Full recipes run by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

FASHION = Path("/usr/share/datasets/fashion-mnist")
MNIST_DIR = os.environ.get("HARNESS_TEST_MNIST_DIR")


def _short_run(tmp_path, dataset, *extra):
    env = dict(os.environ, HARNESS_CACHE_DIR=str(tmp_path / "cache"), HARNESS_OFFLINE="1")
    result = run_cli("run", "--models", "mnist-enhanced-20k", "--datasets", dataset, "--epochs", "1",
                     "--max-train-samples", "3000", "--max-test-samples", "1000", "--batch-size", "32",
                     "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency",
                     "--exporter", "torchscript", "--out", str(tmp_path / "out"), "--run-id", "r", *extra, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    (job,) = json.loads((tmp_path / "out" / "r" / "results.json").read_text())["jobs"]
    return job


@pytest.mark.skipif(not MNIST_DIR or not Path(MNIST_DIR).is_dir(),
                    reason="no real MNIST: set HARNESS_TEST_MNIST_DIR to a folder with the IDX files")
def test_enhanced_20k_learns_real_mnist_from_data_dir(tmp_path):
    job = _short_run(tmp_path, "mnist", "--data-dir", MNIST_DIR)
    assert job["params"] == 19_306
    assert job["train"]["val_samples"] > 0  # the recipe's held-out validation split
    # One epoch on 2,500 images: 0.70-0.83 measured over seeds 0-2 with torch 2.11 and 2.13 (0.79 for
    # seed 0 on 2.11, so 0.8 was a coin toss there); chance is 0.1, a loader that scrambles labels ~0.1.
    assert job["onnx"]["metrics"]["accuracy"] > 0.6, job["onnx"]["metrics"]


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="no real Fashion-MNIST: apt-get install dataset-fashion-mnist")
def test_enhanced_20k_learns_real_fashion_mnist_offline(tmp_path):
    job = _short_run(tmp_path, "fashion-mnist")
    assert job["onnx"]["metrics"]["accuracy"] > 0.5, job["onnx"]["metrics"]  # 0.67 measured

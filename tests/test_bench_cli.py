"""``harness bench`` on foreign ONNX files built here with ``onnx.helper`` (subprocess, as users run it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli, save_onnx_graph

FAST = ["--min-runs", "5", "--min-time", "0.01", "--warmup", "1"]
ROW_FIELDS = {"runtime", "provider", "batch_size", "threads", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
              "std_ms", "throughput_per_s", "min_ms"}


def _conv_onnx(path, batch="N"):
    """A foreign model: Conv -> Relu -> GlobalAveragePool -> Flatten, input (batch, 3, 8, 8)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["g"]),
            helper.make_node("Flatten", ["g"], ["scores"]),
        ],
        "foreign",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 4])],
        [w],
    )
    return save_onnx_graph(graph, path, check=True, producer_name="not-harness")


def test_bench_json_on_a_foreign_model(tmp_path):
    from harness.ort import usable_providers

    path = _conv_onnx(tmp_path / "foreign.onnx")
    result = run_cli("bench", str(path), "--batch-sizes", "1,3", "--providers", "cpu,cuda", "--json", *FAST,
                     timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # nothing but JSON on stdout, even when a GPU provider cannot start
    assert set(data) >= {"model", "bytes", "latency"}
    assert data["model"] == str(path) and data["bytes"] == path.stat().st_size
    cpu_rows = [r for r in data["latency"] if r["provider"] == "CPUExecutionProvider"]
    assert [r["batch_size"] for r in cpu_rows] == [1, 3]
    for row in data["latency"]:
        assert ROW_FIELDS <= set(row)
        assert row["runtime"] == "onnxruntime" and row["threads"] == 1 and row["runs"] >= 5
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p99_ms"]
    if "CUDAExecutionProvider" not in usable_providers()[0]:
        assert "CUDAExecutionProvider" in result.stderr and "warning" in result.stderr
    cold = data["cold_start"]  # three new processes by default, at the first row's setting
    assert cold["runs"] == 3 and cold["ms"] > 0 and (cold["batch_size"], cold["threads"]) == (1, 1)


def test_bench_prints_the_cold_start_or_leaves_it_out(tmp_path):
    path = _conv_onnx(tmp_path / "foreign.onnx")
    result = run_cli("bench", str(path), "--cold-runs", "2", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("cold start (new process, CPU, batch 1, 1 thread): ") and "median of 2" in last
    result = run_cli("bench", str(path), "--cold-runs", "0", "--json", *FAST, timeout=300)
    assert result.returncode == 0 and "cold_start" not in json.loads(result.stdout)


def test_bench_skips_a_batch_size_the_static_shape_refuses(tmp_path):
    path = _conv_onnx(tmp_path / "static.onnx", batch=1)
    result = run_cli("bench", str(path), "--batch-sizes", "1,4", "--json", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [r["batch_size"] for r in json.loads(result.stdout)["latency"]] == [1]
    warnings = [line for line in result.stderr.splitlines() if "warning: skipped" in line]
    assert len(warnings) == 1 and "batch size 4" in warnings[0]


def test_bench_exits_2_when_nothing_can_be_measured(tmp_path):
    path = _conv_onnx(tmp_path / "static.onnx", batch=1)
    result = run_cli("bench", str(path), "--batch-sizes", "4", "--json", *FAST, timeout=300)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout.strip() == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("harness: error")]
    assert len(errors) == 1 and "nothing could be measured" in errors[0]


def test_bench_skips_a_batch_size_whose_inputs_cannot_be_allocated(tmp_path):
    path = _conv_onnx(tmp_path / "dynamic.onnx")
    # 10**12 images are petabytes: beyond any address space, so the allocation fails even with overcommit.
    result = run_cli("bench", str(path), "--batch-sizes", "1,1000000000000", "--json", *FAST, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert [r["batch_size"] for r in json.loads(result.stdout)["latency"]] == [1]
    assert any("batch size 1000000000000" in line for line in result.stderr.splitlines() if "warning" in line)


@pytest.mark.parametrize("bad", [["--min-runs", "0"], ["--cold-runs", "-1"], ["--batch-sizes", "0"], ["--dims", "h=0"], ["--dims", "h"]])
def test_bench_bad_options_exit_2(tmp_path, bad):
    path = _conv_onnx(tmp_path / "m.onnx")
    result = run_cli("bench", str(path), *bad, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def _open_size_onnx(path):
    """A foreign model with an open image size: Conv 3x3 (no padding) on (N, 3, h, w)."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["image", "w"], ["out"])], "open",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "h", "w"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w])
    return save_onnx_graph(graph, path)


def test_bench_sizes_open_dimensions_with_dims_and_warns_when_they_are_left_at_1(tmp_path):
    path = _open_size_onnx(tmp_path / "open.onnx")
    sized = run_cli("bench", str(path), "--dims", "h=32,w=16", "--json", *FAST, timeout=300)
    assert sized.returncode == 0 and "open input" not in sized.stderr, sized.stderr
    assert json.loads(sized.stdout)["flops"] == 2 * (4 * 30 * 14) * (3 * 3 * 3)  # each output: 3x3x3 multiply-adds
    unsized = run_cli("bench", str(path), *FAST, timeout=300)  # a 1x1 image: a 3x3 kernel cannot run on it
    assert unsized.returncode == 2 and "Traceback" not in unsized.stderr
    assert "image[h], image[w] set to 1" in unsized.stderr and "--dims" in unsized.stderr.splitlines()[-1]
    assert "[E:onnxruntime" not in unsized.stderr  # ONNX Runtime's own log line does not leak out


def test_bench_times_a_static_batch_by_default(tmp_path):
    path = _conv_onnx(tmp_path / "static4.onnx", batch=4)
    result = run_cli("bench", str(path), "--json", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["batch_size"] for r in data["latency"]] == [4] and data["activation_batch"] == 4


def test_bench_on_a_folder_says_so(tmp_path):
    result = run_cli("bench", str(tmp_path))
    assert result.returncode == 2 and "is a folder" in result.stderr and "Traceback" not in result.stderr

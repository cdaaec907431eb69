"""A job's FLOPs: never a silent undercount (a recurrent model's were its head's alone), and the tables'
MFLOPs never 0.00 for a counted tiny model."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from conftest import offline_cli_env, run_cli
from onnx import TensorProto, helper, numpy_helper

from harness.text import mflops


def test_a_tiny_models_mflops_keep_two_significant_digits():
    """A 1,408-FLOP tabular MLP showed 0.00, as an uncounted one's 240 did, while harness bench said 1,408."""
    assert [mflops(v) for v in (1, 240, 999, 1_408, 5_000, 9_949)] == \
        ["0.0000010", "0.00024", "0.0010", "0.0014", "0.0050", "0.0099"]
    assert [mflops(v) for v in (9_950, 14_999, 469_504, 14_904_832)] == ["0.01", "0.01", "0.47", "14.9"]
    assert mflops(0) == "0.00" and mflops(None) == "-"  # 0 exactly; not counted
    assert all(mflops(v) != "0.00" and float(mflops(v)) > 0 for v in range(1, 20_000, 7))


def _graph(tmp_path, name, nodes, initializers):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph(nodes, name, [x], [y], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def graphs(tmp_path):
    """A complete graph count (2 x 8 x 4 = 64 per sample) and a partial one (64 and an Einsum uncounted)."""
    w = numpy_helper.from_array(np.ones((8, 4), dtype=np.float32), "w")
    complete = _graph(tmp_path, "complete", [helper.make_node("MatMul", ["x", "w"], ["y"])], [w])
    partial = _graph(tmp_path, "partial", [helper.make_node("MatMul", ["x", "w"], ["m"]),
                                           helper.make_node("Einsum", ["m"], ["y"], equation="bi->bi")], [w])
    return complete, partial


@pytest.mark.parametrize("graph, in_torch, recorded", [
    ("complete", None, 64),  # not counted in PyTorch: the graph's stands in
    ("complete", 64, 64),  # the two agree
    ("complete", 100, 100),  # PyTorch's more: kept (the export may have folded work away)
    ("complete", 16, 64),  # PyTorch's less (a kernel it had no formula for, as an LSTM's was): the graph's
    ("partial", 100, 100),  # a partial graph count below PyTorch's says nothing against it
    ("partial", 16, None),  # above it: PyTorch's is short, and no complete figure exists
    ("partial", None, None),
])
def test_the_job_records_the_graphs_count_where_pytorchs_is_short(graphs, graph, in_torch, recorded, caplog):
    from harness.runner import _check

    path = dict(zip(("complete", "partial"), graphs))[graph]
    row = {"id": "m@d", "flops": in_torch, "onnx": {"path": path.name}}
    with caplog.at_level(logging.WARNING, logger="harness.runner"):
        _check(row, path)
    assert row["onnx"]["flops"] == 64 and bool(row["onnx"].get("flops_uncounted")) == (graph == "partial")
    assert row["flops"] == recorded
    said = [r.getMessage() for r in caplog.records if r.name == "harness.runner"]
    if in_torch is not None and in_torch < 64:  # a replaced or dropped PyTorch count is said
        assert said == [f"m@d: PyTorch counted {in_torch} FLOPs per sample, the exported graph "
                        + ("64; flops: the graph's" if graph == "complete" else "at least 64; flops: null")]
    else:
        assert said == []


def test_a_recurrent_models_job_counts_its_layers(tmp_path):
    """The LSTM job recorded 320 FLOPs (its head), ranked the cheapest by `harness report --sort flops`."""
    env = offline_cli_env(tmp_path, "harness-recurrent", {"recurrent": "recurrent_plugin"})
    result = run_cli("run", "--plugins", "recurrent,datasets", "--datasets", "synthetic", "--epochs", "1",
                     "--max-train-samples", "64", "--max-test-samples", "64", "--device", "cpu",
                     "--batch-sizes", "1", "--quick", "--no-torch-latency", "--cold-runs", "0",
                     "--out", str(tmp_path / "out"), "--run-id", "r", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {j["model"]: j for j in json.loads((tmp_path / "out" / "r" / "results.json").read_text())["jobs"]}
    lstm = 2 * 28 * 4 * 16 * (28 + 16) + 2 * 16 * 10  # 28 steps, 4 gates, hidden 16, 28 features; the head
    gru = 2 * 28 * 2 * 3 * 8 * (28 + 8) + 2 * 16 * 10  # both directions, 3 gates, hidden 8
    for name, expected in (("rows-lstm", lstm), ("rows-gru", gru)):
        job = jobs[name]
        counted = (job["flops"], job["onnx"]["flops"], job["onnx"].get("flops_uncounted"))
        assert counted == (expected, expected, None), name
    report = run_cli("report", str(tmp_path / "out" / "r"), "--sort", "flops", env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    rows = [line.split()[0] for line in report.stdout.splitlines() if line.startswith("rows-")]
    assert rows == ["rows-gru", "rows-lstm"]  # fewest first
    assert f"{mflops(lstm)}" == "0.16" and " 0.16 " in report.stdout

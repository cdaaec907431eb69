"""Variants of a small trained CNN: int8 dynamic/static, fp16, ONNX Runtime offline optimisation.

The model is trained in a second on learnable synthetic data (class prototypes
plus noise), so accuracy means something: quantized variants must stay within
one point of float32 and be smaller on disk.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from harness.latency import LatencyConfig
from harness.onnx_cost import onnx_cost
from harness.specs import MetricSpec
from harness.variants import VARIANTS, calibration_inputs, evaluate_variants, unknown_variants

TINY = LatencyConfig(warmup_runs=1, min_runs=5, min_time_s=0.005, max_time_s=1.0, warmup_time_s=0.0)
SHAPE = (1, 16, 16)


def _accuracy(logits, targets) -> float:
    return float((logits.argmax(1) == targets).float().mean())


ACCURACY = MetricSpec("accuracy", _accuracy)


def _data(n: int, seed: int, prototypes):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = prototypes[y] * 0.6 + torch.rand(n, *SHAPE, generator=g) * 0.4
    return x.float(), y


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from torch import nn

    from harness.export import export_onnx
    from harness.ort import make_session, run_batched

    torch.manual_seed(0)
    prototypes = torch.rand(10, *SHAPE, generator=torch.Generator().manual_seed(0))
    train_x, train_y = _data(640, 1, prototypes)
    test_x, test_y = _data(400, 2, prototypes)
    # ~18k parameters, most in the first Linear: enough weights for int8 to shrink the file.
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny net: more threads only contend on a busy machine
    try:
        for _ in range(5):
            for i in range(0, len(train_x), 32):
                optimizer.zero_grad()
                nn.functional.cross_entropy(net(train_x[i:i + 32]), train_y[i:i + 32]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    run_dir = tmp_path_factory.mktemp("run")
    fp32 = run_dir / "onnx" / "small-cnn.onnx"
    export_onnx(net, test_x[:8], fp32, exporter="torchscript")
    logits = run_batched(make_session(fp32), test_x.numpy())
    fp32_accuracy = _accuracy(torch.from_numpy(logits), test_y)
    assert fp32_accuracy > 0.9, "the test model did not learn; the variant checks would mean nothing"
    return SimpleNamespace(run_dir=run_dir, fp32=fp32, train_x=train_x, test_x=test_x, test_y=test_y,
                           metrics={"accuracy": fp32_accuracy})


def _options(**kw):
    return SimpleNamespace(batch_sizes=kw.get("batch_sizes", [1, 4]), threads=kw.get("threads", [1]),
                           latency=kw.get("latency", TINY))


def _evaluate(trained, variants, providers=("CPUExecutionProvider",), compare=False, **kw):
    return evaluate_variants(variants, trained.fp32, trained.run_dir, trained.train_x, trained.test_x, trained.test_y,
                             [ACCURACY], _options(**kw), list(providers), fp32_metrics=trained.metrics,
                             compare=compare)


def _check_common(row, trained, name):
    assert row["variant"] == name
    assert row["error"] is None, row["error"]
    assert row["path"] == f"onnx/small-cnn.{name}.onnx"
    target = trained.run_dir / row["path"]
    assert target.is_file() and row["bytes"] == target.stat().st_size
    assert row["activation_bytes"] == onnx_cost(target).activation_bytes > 0  # its own graph's
    assert 0.0 <= row["metrics"]["accuracy"] <= 1.0
    assert row["accuracy_drop"] == pytest.approx(trained.metrics["accuracy"] - row["metrics"]["accuracy"], abs=1e-6)
    assert row["max_abs_diff"] is not None and row["diff_samples"] == len(trained.test_x)


@pytest.mark.parametrize("name", ["int8-dynamic", "int8-static"])
def test_int8_variant_is_smaller_and_within_one_point(trained, name):
    (row,) = _evaluate(trained, [name])
    _check_common(row, trained, name)
    assert row["bytes"] < 0.6 * trained.fp32.stat().st_size
    assert row["accuracy_drop"] <= 0.01
    assert 0 < row["max_abs_diff"] < 5.0
    assert [(r["provider"], r["batch_size"]) for r in row["latency"]] == [("CPUExecutionProvider", 1),
                                                                          ("CPUExecutionProvider", 4)]
    assert all(r["p50_ms"] > 0 for r in row["latency"])
    # its own cold start, in new processes (TINY: the default three, within its max_time_s)
    assert row["cold_start"]["batch_size"] == 1 and 1 <= row["cold_start"]["runs"] <= TINY.cold_runs == 3
    assert row["cold_start"]["ms"] > 0


def test_int8_dynamic_is_scored_one_sample_per_call_as_a_batch_1_deployment_runs_it(trained):
    """Dynamic quantisation takes each call's activation range over the whole batch: scored 256 rows a
    call, a sample's logits depended on its batch-mates, and the accuracy was not a batch-1 deployment's."""
    import numpy as np

    from harness.ort import make_session, max_abs_diff, run_batched

    (row,) = _evaluate(trained, ["int8-dynamic"])
    session = make_session(trained.run_dir / row["path"])
    alone, batched = run_batched(session, trained.test_x.numpy(), 1), run_batched(session, trained.test_x.numpy())
    assert not np.allclose(alone, batched, rtol=0, atol=1e-6)  # else this test could not tell the two apart
    fp32 = run_batched(make_session(trained.fp32), trained.test_x.numpy())
    assert row["eval_batch_size"] == 1
    assert row["max_abs_diff"] == pytest.approx(max_abs_diff(alone, fp32), rel=1e-12)
    assert row["metrics"]["accuracy"] == pytest.approx(_accuracy(torch.from_numpy(alone), trained.test_y), abs=1e-12)
    (static,) = _evaluate(trained, ["int8-static"])  # fixed ranges: the batch changes nothing, scored 256 a call
    assert "eval_batch_size" not in static


@pytest.mark.parametrize("name", ["int8-dynamic", "int8-static"])
def test_quantizing_gives_the_root_logger_no_handler_it_did_not_have(trained, tmp_path, name):
    """ONNX Runtime's quantizer logs with logging.info(), whose basicConfig gave a handler-less root logger a
    stderr handler for good: a notebook's own logging.basicConfig() after harness.api.run() did nothing."""
    import logging

    from harness.variants import BUILDERS

    root = logging.getLogger()
    theirs = root.handlers[:]  # pytest's: without them basicConfig would add one, as in a plain script
    for handler in theirs:
        root.removeHandler(handler)
    try:
        BUILDERS[name](trained.fp32, tmp_path / f"q.{name}.onnx", trained.train_x[:64].numpy(), 0)
        added = root.handlers[:]
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in theirs:
            root.addHandler(handler)
    assert added == []


def test_a_cold_start_that_cannot_be_measured_is_said_and_the_variant_stands(trained, tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))  # no probe process can start
    (row,) = _evaluate(trained, ["int8-dynamic"], batch_sizes=[1])
    assert row["error"] is None and row["latency"] and "ms" not in row["cold_start"]
    assert row["cold_start"]["error"].startswith("could not start a probe process")
    assert f"cold start not measured: {row['cold_start']['error']}" in row["latency_skipped"]


def test_int8_static_calibrates_on_a_seeded_subset(trained):
    data = calibration_inputs(trained.train_x, n=128, seed=3)
    again = calibration_inputs(trained.train_x, n=128, seed=3)
    assert data.shape == (128, *SHAPE) and data.dtype.name == "float32"
    assert (data == again).all()
    (row,) = _evaluate(trained, ["int8-static"], batch_sizes=[1])
    assert any("256 training samples" in note for note in row["notes"])
    import hashlib

    def digest(seed):  # what a user recomputes from the training split to check the calibration inputs
        chosen = calibration_inputs(trained.train_x, seed=seed)
        return hashlib.sha256(f"float32|{tuple(chosen.shape)}|".encode() + chosen.tobytes()).hexdigest()

    assert row["calibration"] == {"split": "train", "samples": 256, "of": len(trained.train_x), "seed": 0,
                                  "sha256": digest(0)}
    # the run's --seed picks the subset (it was always seed 0), as it picks the splits' subsets
    (row,) = evaluate_variants(["int8-static"], trained.fp32, trained.run_dir, trained.train_x, trained.test_x,
                               trained.test_y, [ACCURACY], _options(batch_sizes=[1]), ["CPUExecutionProvider"],
                               fp32_metrics=trained.metrics, seed=3)
    assert row["calibration"]["seed"] == 3 and row["calibration"]["sha256"] == digest(3) != digest(0)


def test_fp16_is_evaluated_but_timed_on_gpu_providers_only(trained):
    (row,) = _evaluate(trained, ["fp16"])
    _check_common(row, trained, "fp16")
    assert row["accuracy_drop"] <= 0.01
    assert row["max_abs_diff"] < 0.05
    assert 0.4 < row["bytes"] / trained.fp32.stat().st_size < 0.75  # half-size weights
    assert row["activation_bytes"] < onnx_cost(trained.fp32).activation_bytes  # and half-size tensors inside
    assert row["latency"] == [] and "cold_start" not in row  # not timed on the CPU: no cold start either
    assert any("GPU providers only" in line for line in row["latency_skipped"])
    if row["eval_provider"] == "CPUExecutionProvider":  # its accuracy is float16 rounding, not a GPU's arithmetic
        assert any("computes in float32 between float16 tensors" in note for note in row["notes"])


def test_ort_opt_is_equivalent_and_timed_on_cpu(trained):
    (row,) = _evaluate(trained, ["ort-opt"], providers=["CPUExecutionProvider", "CUDAExecutionProvider"],
                       batch_sizes=[1])
    _check_common(row, trained, "ort-opt")
    assert row["max_abs_diff"] < 1e-4 and row["accuracy_drop"] == 0
    assert [r["provider"] for r in row["latency"]] == ["CPUExecutionProvider"]
    assert any("CUDAExecutionProvider" in line for line in row["latency_skipped"])


def test_vs_fp32_is_an_alternating_comparison(trained):
    # --threads 2,1: paired at 1 thread, the edge question's, as the report labels it (was the first given)
    (row,) = _evaluate(trained, ["ort-opt"], batch_sizes=[1], threads=[2, 1], compare=True)
    vs = row["vs_fp32"]
    assert vs["a"] == "ort-opt" and vs["b"] == "fp32" and vs["rounds"] >= 3
    # 1 / ratio, or where its rounds disagreed (a busy machine) 1 / the rounds' median: what the reports show
    from harness.latency import robust_ratio

    shown, _ = robust_ratio(vs)
    assert vs["ratio"] > 0 and vs["speedup"] == pytest.approx(1 / shown, rel=1e-3)
    assert vs["speedup_basis"] == ("ratio_paired_median" if vs["stability"] == "unstable" else "ratio")
    assert (vs["provider"], vs["batch_size"], vs["threads"]) == ("CPUExecutionProvider", 1, 1)


def test_a_failing_variant_is_recorded_and_the_rest_still_run(trained):
    rows = _evaluate(trained, ["no-such-variant", "fp32", "ort-opt"], batch_sizes=[1])
    assert [r["variant"] for r in rows] == ["no-such-variant", "ort-opt"]  # fp32 is the job's own export
    assert rows[0]["error"].startswith("ValueError: unknown variant 'no-such-variant'")
    assert "\n" not in rows[0]["error"] and rows[0]["latency"] == [] and rows[0]["bytes"] is None
    assert rows[1]["error"] is None


def test_a_broken_fp32_file_fails_every_variant_without_raising(tmp_path, trained):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    rows = evaluate_variants(["int8-dynamic", "fp16"], broken, tmp_path, trained.train_x, trained.test_x,
                             trained.test_y, [ACCURACY], _options(), ["CPUExecutionProvider"])
    assert [r["variant"] for r in rows] == ["int8-dynamic", "fp16"]
    assert all(r["error"] and "float32 model" in r["error"] for r in rows)


def test_slim_is_optional(trained, monkeypatch):
    try:
        import onnxslim  # noqa: F401
    except ImportError:
        pass
    else:  # installed (the dev extra has it): the real simplification
        (row,) = _evaluate(trained, ["slim"], batch_sizes=[1])
        _check_common(row, trained, "slim")
    monkeypatch.setitem(sys.modules, "onnxslim", None)  # as if not installed: import fails
    (row,) = _evaluate(trained, ["slim"], batch_sizes=[1])
    assert 'pip install "onnxslim>=0.1.98"' in row["error"]


def test_slim_without_onnxslim_is_refused_before_the_run(monkeypatch):
    from harness.errors import HarnessError
    from harness.runner import RunOptions, validate_options

    monkeypatch.setitem(sys.modules, "onnxslim", None)
    with pytest.raises(HarnessError, match=r'pip install "onnxslim>=0\.1\.98"'):
        validate_options(RunOptions(variants=["fp32", "slim"]))


def test_variant_names():
    assert {"fp32", "int8-dynamic", "int8-static", "fp16"} <= set(VARIANTS)
    assert unknown_variants(["fp32", "int4", "fp16"]) == ["int4"]


def test_int8_dynamic_of_the_dynamo_export_of_mnist_fast(tmp_path):
    """quant_pre_process fails on this graph and its recorded shapes disagreed with the quantizer's."""
    import json

    from conftest import run_cli

    result = run_cli("run", "--models", "mnist-fast", "--datasets", "synthetic", "--variants", "fp32,int8-dynamic",
                     "--epochs", "1", "--max-train-samples", "256", "--max-test-samples", "128", "--device", "cpu",
                     "--batch-sizes", "1", "--quick", "--no-torch-latency", "--exporter", "auto", "--no-progress",
                     "--out", str(tmp_path), "--run-id", "q")
    assert result.returncode == 0, result.stderr[-2000:]
    (job,) = json.loads((tmp_path / "q" / "results.json").read_text())["jobs"]
    if job["onnx"]["exporter"] != "dynamo":  # e.g. torch 2.11 with onnxscript 0.7 cannot convert this model
        pytest.skip(f"the dynamo exporter did not export mnist-fast here ({job['onnx']['exporter']} was used)")
    (int8,) = job["variants"]
    assert int8["error"] is None, int8["error"]
    fallback = "quantization pre-processing (shape inference) could not"
    if not any(fallback in note for note in int8.get("notes") or []):
        pytest.skip("quant_pre_process succeeds with this onnxruntime: the fallback is not exercised")
    assert int8["bytes"] < job["onnx"]["bytes"] / 2 and abs(int8["accuracy_drop"]) < 0.1


def test_the_quantizers_shape_inference_runs_in_a_scratch_folder_it_cannot_litter(tmp_path, monkeypatch):
    """ONNX Runtime 1.18's quantization shape inference, failing, left sym_shape_infer_temp.onnx and uuid-named
    weight files in the working directory (a user's checkout); it now runs in a temporary one."""
    import os
    from pathlib import Path

    from harness.variants import _scratch_cwd

    monkeypatch.chdir(tmp_path)
    with _scratch_cwd():
        inside = Path(os.getcwd())
        Path("sym_shape_infer_temp.onnx").write_bytes(b"x")
    assert Path(os.getcwd()) == tmp_path and list(tmp_path.iterdir()) == [] and not inside.exists()

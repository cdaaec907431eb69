"""``harness run`` end to end on real (small) work: training, ONNX export, ONNX Runtime, reports."""

from __future__ import annotations

import csv
import json
import sys

import pytest
from conftest import run_cli


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One real run: a built-in and a third-party model on a built-in and a third-party dataset."""
    from conftest import offline_cli_env

    root = tmp_path_factory.mktemp("e2e")
    env = offline_cli_env(root, "harness-demo-plugin", {"demo": "demo_plugin"})
    result = run_cli(
        "run", "--plugins", "all", "--models", "mnist-mlp,demo-tiny", "--datasets", "synthetic,demo-blobs",
        "--epochs", "1", "--max-train-samples", "256", "--device", "cpu", "--batch-sizes", "1,8", "--quick",
        "--cuda-graphs", "--warmup-steps", "1", "--out", str(root / "out"), "--run-id", "e2e", env=env,
    )
    return result, root / "out" / "e2e"


def test_run_exits_zero_and_prints_the_comparison_table(demo_run):
    result, _ = demo_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "onnx acc" in result.stdout and "mnist-mlp" in result.stdout and "demo-tiny" in result.stdout
    assert "[1/4]" in result.stderr  # progress lines when stderr is not a terminal
    assert "--cuda-graphs needs a CUDA device and this run trains on cpu: the eager loop trains" in result.stderr


def test_results_json_follows_the_contract(demo_run):
    _, run_dir = demo_run
    data = json.loads((run_dir / "results.json").read_text())
    assert data["schema_version"] == 1 and data["run_id"] == "e2e"
    env = data["environment"]
    for key in ("torch", "onnxruntime", "onnx", "cpu", "device", "torch_threads"):
        assert env[key], key
    assert {(j["model"], j["dataset"]) for j in data["jobs"]} == {
        ("mnist-mlp", "synthetic"), ("mnist-mlp", "demo-blobs"), ("demo-tiny", "synthetic"), ("demo-tiny", "demo-blobs")}
    for job in data["jobs"]:
        assert job["status"] == "ok" and job["error"] is None, job
        assert job["params"] > 0
        if job["dataset"] == "synthetic":  # the dataset's own account of its samples (Splits.info)
            assert job["data"]["source"] == "generated in memory"  # report.md: "synthetic generated in memory"
        assert job["train"]["epochs"] == 1 and job["train"]["device"] == "cpu" and job["train"]["seconds"] > 0
        stages = job["stage_seconds"]
        assert set(stages) == {"load", "build", "train", "evaluate", "export", "check", "onnx-eval", "latency"}
        assert all(v >= 0 for v in stages.values()) and sum(stages.values()) == pytest.approx(job["seconds"], abs=0.01)
        # Channels-last is automatic on the CPU (all four jobs have 1x28x28 images); the request is kept.
        assert job["train"]["channels_last"] is True and job["train"]["channels_last_requested"] is None
        # --cuda-graphs on a CPU run: the eager loop, and the reason recorded.
        assert job["train"]["cuda_graphs"] == {"used": False, "reason": "CUDA graphs need a CUDA device"}
        # --warmup-steps 1 (none by default on the CPU): one untimed step per batch size, its time apart
        assert job["train"]["warmup_steps"] == 1 and job["train"]["warmup_s"] >= 0  # rounded to ms: may read 0
        assert 0 <= job["metrics"]["accuracy"] <= 1
        if job["train"]["evaluated_on"] == "test":  # the final evaluation is the last epoch's, not a second pass
            assert job["metrics"]["accuracy"] == pytest.approx(job["train"]["history"][-1]["eval_accuracy"], abs=1e-6)
        onnx = job["onnx"]
        onnx_file = run_dir / onnx["path"]
        assert onnx_file.is_file() and not onnx["path"].startswith("/")
        assert onnx["bytes"] == onnx_file.stat().st_size  # single file: weights embedded
        assert onnx["opset"] >= 17 and onnx["max_abs_diff"] <= 1e-4 and onnx["diff_samples"] >= 64
        assert abs(onnx["metrics"]["accuracy"] - job["metrics"]["accuracy"]) <= 0.01
        ort_rows = [r for r in job["latency"] if r["runtime"] == "onnxruntime"]
        assert {(r["batch_size"], r["threads"]) for r in ort_rows} == {(1, 1), (8, 1)}
        # "ORT vs eager" timed in alternating rounds at the smallest batch, 1 thread (3 short ones: --quick)
        paired = job["ort_vs_eager"]
        assert (paired["provider"], paired["batch_size"], paired["threads"], paired["rounds"]) == (
            "CPUExecutionProvider", 1, 1, 3)
        assert (paired["a"], paired["b"]) == ("onnxruntime", "torch") and isinstance(paired["stable"], bool)
        from harness.latency import robust_ratio  # 1 / ratio, or 1 / the rounds' median where they disagreed

        assert paired["speedup"] == pytest.approx(1 / robust_ratio(paired)[0], rel=1e-3)
        for row in job["latency"]:
            assert row["runs"] >= 10
            assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
            assert row["throughput_per_s"] > 0
        assert any(r["runtime"] == "torch" for r in job["latency"])
        cold = onnx["cold_start"]  # --quick: one new process, at the smallest batch and fewest threads
        assert (cold["runs"], cold["batch_size"], cold["threads"]) == (1, 1, 1) and cold["ms"] > 0, cold
        if sys.platform.startswith("linux"):  # the peak's growth, read from /proc
            assert cold["rss_bytes"] > 0


def test_third_party_metric_appears_in_results(demo_run):
    _, run_dir = demo_run
    data = json.loads((run_dir / "results.json").read_text())
    for job in data["jobs"]:
        assert 0 <= job["metrics"]["demo-top2"] <= 1
        assert job["metrics"]["demo-top2"] >= job["metrics"]["accuracy"]
        assert "demo-top2" in job["onnx"]["metrics"]


def test_flops_and_activation_memory_are_recorded_and_reported(demo_run):
    import torch

    from harness.registry import build_registry

    _, run_dir = demo_run
    data = json.loads((run_dir / "results.json").read_text())
    mlp = build_registry().models["mnist-mlp"].build(num_classes=10, input_shape=(1, 28, 28))
    # The MLP's FLOPs are its matrix products: 2 per multiply-add of each Linear layer.
    expected = sum(2 * m.in_features * m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear))
    for job in data["jobs"]:
        assert job["flops"] > 0, job["id"]
        assert job["onnx"]["flops"] == job["flops"]  # the export's graph counts what the model counted
        assert job["onnx"]["activation_bytes"] > 0
        if job["id"] == "mnist-mlp@synthetic":  # 1x28x28 inputs (demo-blobs has another shape)
            assert job["flops"] == expected
            # The input and its flattened copy (784 floats each) are the most alive at once.
            assert job["onnx"]["activation_bytes"] == 2 * 784 * 4
    with (run_dir / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    by_id = {r["id"]: (r["flops"], r["activation_bytes"]) for r in rows if r["variant"] == "fp32"}
    eager = [r for r in rows if r["runtime"] == "torch"]
    assert eager and all(r["activation_bytes"] == "" and r["flops"] for r in eager)  # no ONNX model timed there
    assert by_id == {j["id"]: (str(j["flops"]), str(j["onnx"]["activation_bytes"])) for j in data["jobs"]}
    assert "MFLOPs" in (run_dir / "report.md").read_text()
    assert "Accuracy vs compute" in (run_dir / "report.html").read_text()


def test_trained_models_beat_chance(demo_run):
    _, run_dir = demo_run
    data = json.loads((run_dir / "results.json").read_text())
    mlp_synthetic = next(j for j in data["jobs"] if j["id"] == "mnist-mlp@synthetic")
    assert mlp_synthetic["metrics"]["accuracy"] > 0.3  # 10 classes: chance is 0.1


def test_csv_and_markdown_reports_are_written(demo_run):
    _, run_dir = demo_run
    with (run_dir / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["model"] for r in rows} == {"mnist-mlp", "demo-tiny"}
    assert all(float(r["p50_ms"]) > 0 for r in rows)
    markdown = (run_dir / "report.md").read_text()
    assert "| mnist-mlp" in markdown and "## Latency" in markdown


def test_harness_report_rebuilds_the_runs_own_reports_exactly(demo_run, tmp_path):
    import shutil

    _, run_dir = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    rebuilt = run_cli("report", str(copy))
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    # what the run wrote from its objects in memory is what results.json gives back (no tuple turned list)
    for name in ("report.md", "results.csv"):
        assert (copy / name).read_text() == (run_dir / name).read_text(), name


def test_each_job_records_what_made_it_and_the_data_it_used(demo_run):
    """Which plugin and package (at which version) gave each model and dataset, a digest of each split's
    samples, and the libraries and harness commit beyond torch's and ONNX Runtime's versions."""
    import re
    import subprocess
    from importlib import metadata
    from pathlib import Path

    _, run_dir = demo_run
    data = json.loads((run_dir / "results.json").read_text())
    jobs = {(j["model"], j["dataset"]): j for j in data["jobs"]}
    assert jobs[("mnist-mlp", "demo-blobs")]["plugins"] == {
        "model": {"plugin": "mnist-attention", "distribution": "harness", "version": metadata.version("harness")},
        "dataset": {"plugin": "demo", "distribution": "harness-demo-plugin", "version": "1.0"}}
    assert jobs[("demo-tiny", "synthetic")]["plugins"]["model"]["distribution"] == "harness-demo-plugin"
    digests = {job["dataset"]: job["data_sha256"] for job in data["jobs"]}
    for job in data["jobs"]:  # one dataset's jobs share its digests; the two datasets' differ
        assert job["data_sha256"] == digests[job["dataset"]]
        assert set(job["data_sha256"]) == {"train", "test"}
        assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in job["data_sha256"].values())
    assert digests["synthetic"]["test"] != digests["demo-blobs"]["test"]
    env = data["environment"]
    assert {k: env[k] for k in ("numpy", "onnxscript", "pluggy")} == {
        k: metadata.version(k) for k in ("numpy", "onnxscript", "pluggy")}
    repo = Path(__file__).resolve().parents[1]
    import harness

    if (repo / ".git").exists() and Path(harness.__file__).resolve().parents[1] == repo:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0:
            assert env["harness_commit"] == head.stdout.strip() and isinstance(env["harness_dirty"], bool)


def test_like_runs_a_run_again_with_its_recorded_options(demo_run):
    """`harness run --like RUN`: the same options (narrowed here by --models/--datasets, given on top), the
    same figures bit for bit, as a new run beside it; with --resume, or of no run, one line and exit 2."""
    from conftest import offline_cli_env

    _, run_dir = demo_run
    env = offline_cli_env(run_dir.parents[1], "harness-demo-plugin", {"demo": "demo_plugin"})
    again = run_cli("run", "--like", str(run_dir), "--models", "mnist-mlp", "--datasets", "synthetic",
                    "--run-id", "again", "--no-progress", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    before = json.loads((run_dir / "results.json").read_text())
    after = json.loads((run_dir.parent / "again" / "results.json").read_text())  # beside it: no --out given
    changed = {k for k in before["config"] if before["config"][k] != after["config"].get(k)}
    assert changed == {"run_id", "models", "datasets"} and after["config"]["resume"] is False
    (old,) = [j for j in before["jobs"] if j["id"] == "mnist-mlp@synthetic"]
    (new,) = after["jobs"]
    for key in ("metrics", "params", "flops", "data_sha256"):
        assert new[key] == old[key], key
    drop = ("seconds", "time_s", "wall_s")  # the epochs' losses and accuracies, not their clocks
    assert [{k: v for k, v in e.items() if k not in drop} for e in new["train"]["history"]] == [
        {k: v for k, v in e.items() if k not in drop} for e in old["train"]["history"]]
    for args, said in ((["--resume"], "give one of them"), ([], "no such run folder")):
        refused = run_cli("run", "--like", str(run_dir.parent / ("e2e" if args else "nope")), *args, env=env)
        assert refused.returncode == 2 and said in refused.stderr and "Traceback" not in refused.stderr


def test_weights_are_saved_and_load_with_weights_only(demo_run):
    import torch

    from harness.registry import build_registry

    _, run_dir = demo_run
    data = json.loads((run_dir / "results.json").read_text())
    job = next(j for j in data["jobs"] if j["id"] == "mnist-mlp@synthetic")
    state = torch.load(run_dir / job["train"]["weights"], weights_only=True)
    assert sum(v.numel() for k, v in state.items()) == job["params"]
    # It loads into the network the plugin builds, as the README says (no wrapper prefix on its keys), from
    # the row's own input_shape and num_classes (build_input_shape only where channels were adapted).
    assert job["input_shape"] == [1, 28, 28] and "build_input_shape" not in job
    net = build_registry().models["mnist-mlp"].build(num_classes=job["num_classes"], input_shape=tuple(job["input_shape"]))
    net.load_state_dict(state)  # strict: every key matches


def test_the_export_is_checked_on_at_least_64_inputs_when_few_test_samples_are_evaluated(tmp_path):
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1",
                     "--max-train-samples", "128", "--max-test-samples", "16", "--device", "cpu", "--batch-sizes", "1",
                     "--quick", "--no-torch-latency", "--exporter", "torchscript", "--no-progress",
                     "--out", str(tmp_path), "--run-id", "r")
    assert result.returncode == 0, result.stderr[-2000:]
    (job,) = json.loads((tmp_path / "r" / "results.json").read_text())["jobs"]
    assert job["test_samples"] == 16
    assert round(job["onnx"]["metrics"]["accuracy"] * 16, 6).is_integer()  # accuracy over the 16 evaluated
    assert job["onnx"]["diff_samples"] >= 64 and job["onnx"]["max_abs_diff"] <= 1e-4
    # all of them test inputs (the split has 2,048): training inputs only make up a test split below 256
    assert job["onnx"]["diff_test_samples"] == job["onnx"]["diff_samples"] == 256


def test_a_seed_sweep_scores_every_seed_on_the_same_test_samples(tmp_path):
    """Swept seeds vary training randomness only: the test subset is the run's --seed's, for every job."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from harness.registry import build_registry
    from harness.runner import _subset

    config = tmp_path / "seeds.toml"
    config.write_text("[sweep]\nseed = [0, 1]\n")
    result = run_cli("run", "--config", str(config), "--models", "mnist-mlp", "--datasets", "synthetic",
                     "--epochs", "1", "--max-train-samples", "128", "--max-test-samples", "200", "--device", "cpu",
                     "--batch-sizes", "1", "--quick", "--no-torch-latency", "--exporter", "torchscript",
                     "--no-progress", "--out", str(tmp_path), "--run-id", "s")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = json.loads((tmp_path / "s" / "results.json").read_text())["jobs"]
    assert sorted(job["point"]["seed"] for job in jobs) == [0, 1]
    splits = build_registry().specs["datasets"]["synthetic"].load(data_dir=None, seed=0)
    x, y = _subset(splits.test, 200, 0)  # what --seed 0 (the default) selects
    for job in jobs:
        session = ort.InferenceSession(str(tmp_path / "s" / job["onnx"]["path"]), providers=["CPUExecutionProvider"])
        logits = torch.from_numpy(np.concatenate([session.run(None, {session.get_inputs()[0].name: x[i:i + 50].numpy()})[0]
                                                  for i in range(0, len(x), 50)]))
        nll = torch.nn.functional.cross_entropy(logits, y).item()
        assert job["onnx"]["metrics"]["nll"] == pytest.approx(nll, rel=1e-4), job["point"]

"""MLflow and TensorBoard reporters (harness_plugins.trackers): real files in a tmp run folder, read back."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.registry import build_registry
from harness.reporters import Reporter, make_trackers

needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                  reason="mlflow not installed (pip install 'mlflow-skinny>=2.10')")
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard not installed (pip install 'tensorboard>=2.14')")


def tiny_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10))


def drive(reporter: Reporter, run_dir: Path) -> dict:
    """A run as the runner reports it: one job trained for two epochs and exported, one that failed at load."""
    model = tiny_model()
    onnx = run_dir / "onnx" / "tiny_synthetic.onnx"
    onnx.parent.mkdir(parents=True)
    onnx.write_bytes(b"not really onnx, but a file to upload" * 10)
    reporter.run_started(run_dir, {"epochs": 2, "max_train_samples": 512, "device": "cpu"},
                         {"torch": "2.x", "device": "cpu"})
    reporter.job_started("tiny@synthetic", {"model": "tiny", "dataset": "synthetic", "params": 1234,
                                            "recipe": {"optimizer": "adam", "lr": 0.001, "schedule": {"kind": "step"}},
                                            "point": {"dropout": 0.1}})
    history = []
    for epoch in (1, 2):
        record = {"epoch": epoch, "lr": 0.001, "train_loss": 2.0 / epoch, "train_accuracy": 0.4 * epoch,
                  "seconds": 1.5 * epoch, "eval_loss": 1.8 / epoch, "eval_accuracy": 0.45 * epoch}
        history.append(record)
        with __import__("torch").no_grad():
            model[0].weight.add_(0.5)  # the histograms must change between epochs
        reporter.epoch_ended("tiny@synthetic", record, model)
    row = {"id": "tiny@synthetic", "model": "tiny", "dataset": "synthetic", "status": "ok", "stage": None,
           "error": None, "params": 1234, "train": {"epochs": 2, "seconds": 3.0, "history": history,
                                                     "peak_memory_bytes": 123456789},
           "metrics": {"accuracy": 0.9}, "onnx": {"path": "onnx/tiny_synthetic.onnx", "bytes": 370,
                                                  "max_abs_diff": 1e-6, "metrics": {"accuracy": 0.89}},
           "latency": [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": 1,
                        "threads": 1, "p50_ms": 0.05, "p99_ms": 0.09, "throughput_per_s": 20000.0}]}
    reporter.job_ended("tiny@synthetic", row, run_dir)
    failed = {"id": "tiny@missing", "model": "tiny", "dataset": "missing", "status": "failed", "stage": "load",
              "error": "DataUnavailableError: no files", "params": None, "train": None, "metrics": None,
              "onnx": None, "latency": []}
    reporter.job_ended("tiny@missing", failed, run_dir)
    results = {"run_id": run_dir.name, "jobs": [row, failed]}
    (run_dir / "results.json").write_text(json.dumps(results))
    reporter.run_ended(results, run_dir)
    reports = [run_dir / "report.html", run_dir / "results.csv"]  # what harness run writes after run_ended
    for path in reports:
        path.write_text("report")
    reporter.reports_written(run_dir, [run_dir / "results.json", *reports])
    return {"model": model, "row": row}


# -- factory and hook --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry():
    from harness.registry import build_registry

    return build_registry()


def test_the_built_in_trackers_are_registered_as_tracker_specs(registry):
    assert registry.owners["trackers"] == {"mlflow": "trackers", "tensorboard": "trackers"}
    # `install` names the package on PyPI (this project is installed from its checkout, not from PyPI).
    assert {name: (spec.requires, spec.install) for name, spec in registry.trackers.items()} == {
        "mlflow": (("mlflow",), "mlflow-skinny>=2.10"), "tensorboard": (("tensorboard",), "tensorboard>=2.14")}


def test_unknown_tracker_is_a_harness_error_naming_the_known_ones(registry):
    with pytest.raises(HarnessError, match="unknown tracker 'wandb'; known: mlflow, tensorboard"):
        make_trackers(registry, ["wandb"])
    with pytest.raises(HarnessError, match="unknown tracker 'mlflw'; did you mean: mlflow"):
        make_trackers(registry, ["mlflw"])


@pytest.mark.parametrize("name, install", [("mlflow", "mlflow-skinny>=2.10"), ("tensorboard", "tensorboard>=2.14")])
def test_missing_package_says_how_to_install_it(registry, name, install, monkeypatch):
    spec = dataclasses.replace(registry.trackers[name], requires=("harness_no_such_package",))
    monkeypatch.setitem(registry.specs["trackers"], name, spec)
    with pytest.raises(HarnessError) as error:
        make_trackers(registry, [name])
    message = str(error.value)
    assert message == (f"the {name} tracker needs the harness_no_such_package package: "
                       f"pip install '{install}'")


@needs_tensorboard
def test_names_match_in_any_case_and_each_is_made_once(registry, tmp_path):
    (reporter,) = make_trackers(registry, ["TensorBoard", " tensorboard", ""])
    assert reporter.name == "tensorboard"


def test_plugin_module_imports_neither_torch_nor_the_trackers():
    code = ("import sys, harness_plugins.trackers as t; t.harness_trackers(); "
            "bad = [m for m in ('torch', 'mlflow', 'tensorboard') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_third_party_tracker_is_switched_on_by_name(tmp_path):
    from conftest import offline_cli_env, run_cli

    env = {**offline_cli_env(tmp_path, "harness-jsonlog", {"jsonlog": "named_tracker"}),
           "JSONLOG_PATH": str(tmp_path / "calls.jsonl")}
    listed = run_cli("list", "trackers", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[2:]}
    assert "pip install 'jsonlog[extra]'" in rows["needs-extra"] and rows["jsonlog"].split()[1] == "jsonlog"
    args = ["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples", "64",
            "--max-test-samples", "32", "--device", "cpu", "--batch-sizes", "1", "--quick", "--cold-runs", "0",
            "--no-torch-latency", "--exporter", "torchscript", "--out", str(tmp_path / "out")]
    for name, said in [("needs-extra", "--track: the needs-extra tracker needs the harness_no_such_package package: "
                                       "pip install 'jsonlog[extra]'"),
                       ("broken", "--track: the broken tracker could not be made: RuntimeError: no API key in "
                                  "$JSONLOG_KEY")]:
        refused = run_cli(*args, "--track", name, env=env)  # before any job: no run folder
        assert refused.returncode == 2 and refused.stderr.strip() == f"harness: error: {said}", refused.stderr
        assert not (tmp_path / "out").exists()
    result = run_cli(*args, "--run-id", "r", env={**env, "HARNESS_TRACK": "JsonLog"})
    assert result.returncode == 0, result.stderr[-2000:]
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls == [["run_started", "jsonlog"], ["job_ended", "mnist-mlp@synthetic", "ok"]]
    assert json.loads((tmp_path / "out" / "r" / "results.json").read_text()).get("reporter_errors", []) == []


def test_the_trackers_plugin_registers_through_its_hook():
    result = subprocess.run([sys.executable, "-m", "harness", "plugins", "--json"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    (plugin,) = [p for p in json.loads(result.stdout)["plugins"] if p["name"] == "trackers"]
    assert plugin["hooks"] == ["harness_trackers"] and plugin["registered"]["trackers"] == ["mlflow", "tensorboard"]


# -- MLflow ------------------------------------------------------------------------------------------------------


@needs_mlflow
def test_mlflow_writes_a_run_per_job_into_a_local_file_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    (reporter,) = make_trackers(build_registry(), ["mlflow"])
    drive(reporter, run_dir)
    assert (run_dir / "mlruns").is_dir()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run_dir / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("harness")
    found = client.search_runs([experiment.experiment_id])
    runs = {r.data.tags["harness.job"]: r for r in found if "harness.job" in r.data.tags}
    assert set(runs) == {"tiny@synthetic", "tiny@missing"}
    # the harness run's own MLflow run, each job's nested under it
    (parent,) = [r for r in found if r.data.tags.get("harness.kind") == "run"]
    assert parent.info.run_name == "run-1" and parent.info.status == "FAILED"  # a job failed
    assert {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {parent.info.run_id}
    assert parent.data.params["run.max_train_samples"] == "512"
    assert (parent.data.metrics["jobs/ok"], parent.data.metrics["jobs/failed"]) == (1, 1)
    kept = {a.path for a in client.list_artifacts(parent.info.run_id)} | {
        a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"results.json", "report/report.html", "report/results.csv"} <= kept
    ok, failed = runs["tiny@synthetic"], runs["tiny@missing"]
    assert ok.info.status == "FINISHED" and failed.info.status == "FAILED"
    assert failed.data.tags["harness.stage"] == "load" and "no files" in failed.data.tags["harness.error"]
    assert ok.data.params["model"] == "tiny" and ok.data.params["params"] == "1234"
    assert ok.data.params["recipe.optimizer"] == "adam" and ok.data.params["recipe.schedule.kind"] == "step"
    assert ok.data.params["point.dropout"] == "0.1" and ok.data.tags["harness.run"] == "run-1"
    # the run options that change the figures: two runs at other sample caps read apart
    assert (ok.data.params["run.max_train_samples"], ok.data.params["run.device"]) == ("512", "cpu")
    history = client.get_metric_history(ok.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 2.0), (2, 1.0)]
    assert ok.data.metrics["test/accuracy"] == pytest.approx(0.9)
    assert ok.data.metrics["onnx/accuracy"] == pytest.approx(0.89)
    assert ok.data.metrics["latency/onnxruntime_cpu/b1_t1/p50_ms"] == pytest.approx(0.05)
    artifacts = [a.path for a in client.list_artifacts(ok.info.run_id, "onnx")]
    assert artifacts == ["onnx/tiny_synthetic.onnx"]
    stored = Path(ok.info.artifact_uri.replace("file://", "")) / "onnx" / "tiny_synthetic.onnx"
    assert stored.read_bytes() == (run_dir / "onnx" / "tiny_synthetic.onnx").read_bytes()


@needs_mlflow
def test_mlflow_uses_the_tracking_uri_from_the_environment(tmp_path, monkeypatch):
    store = tmp_path / "elsewhere"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    # a file store the user names is their opt-in to MLflow 3's file store, as the default one is
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "my-experiment")
    run_dir = tmp_path / "run-2"
    run_dir.mkdir()
    (reporter,) = make_trackers(build_registry(), ["mlflow"])
    drive(reporter, run_dir)
    assert not (run_dir / "mlruns").exists() and store.is_dir()

    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri=store.as_uri()).get_experiment_by_name("my-experiment") is not None


# -- TensorBoard -------------------------------------------------------------------------------------------------


@needs_tensorboard
def test_tensorboard_writes_scalars_and_a_histogram_per_parameter_each_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run-3"
    run_dir.mkdir()
    (reporter,) = make_trackers(build_registry(), ["TensorBoard"])  # any case, as $HARNESS_TRACK is read
    state = drive(reporter, run_dir)
    folders = sorted(p.name for p in (run_dir / "tensorboard").iterdir())
    assert folders == ["tiny_missing", "tiny_synthetic"]
    events = EventAccumulator(str(run_dir / "tensorboard" / "tiny_synthetic"),
                              size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert [(e.step, e.value) for e in events.Scalars("loss/train")] == [(1, 2.0), (2, 1.0)]
    assert [e.step for e in events.Scalars("accuracy/eval")] == [1, 2]
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(0.9)
    names = {f"weights/{n}" for n, _ in state["model"].named_parameters()}
    assert names == set(tags["histograms"])  # every parameter: conv kernel and bias, BatchNorm gamma/beta, linear
    assert {"weights/1.weight", "weights/1.bias"} <= names  # the BatchNorm's gamma and beta
    conv = events.Histograms("weights/0.weight")
    assert [h.step for h in conv] == [1, 2]
    assert conv[1].histogram_value.min == pytest.approx(conv[0].histogram_value.min + 0.5, abs=1e-5)
    assert conv[1].histogram_value.num == state["model"][0].weight.numel()


def test_a_file_store_is_told_from_a_server_or_database():
    from harness_plugins.trackers.mlflow_reporter import is_file_store

    assert all(is_file_store(u) for u in ("file:///tmp/x", "/tmp/mlruns", "mlruns", "C:\\runs", "FILE:/x"))
    assert not any(is_file_store(u) for u in ("http://mlflow:5000", "https://x", "sqlite:///db.sqlite",
                                              "databricks", "postgresql://u@h/db"))


@needs_tensorboard
def test_track_on_the_command_line_replaces_harness_track_and_a_disabled_plugin_refuses_it(tmp_path):
    """--track tensorboard with HARNESS_TRACK=mlflow set ran both: the trackers plugin's hook read the
    variable again beside the CLI's option."""
    import os

    from conftest import run_cli

    args = ["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples", "64",
            "--max-test-samples", "32", "--device", "cpu", "--batch-sizes", "1", "--quick", "--cold-runs", "0",
            "--no-torch-latency", "--exporter", "torchscript", "--out", str(tmp_path)]
    env = {**os.environ, "HARNESS_TRACK": "mlflow", "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()}
    result = run_cli(*args, "--track", "tensorboard", "--run-id", "r", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    events = list((tmp_path / "r").rglob("events.out.tfevents.*"))  # tensorboard's, and not mlflow's:
    assert events and not (tmp_path / "mlruns").exists() and not (tmp_path / "r" / "mlruns").exists()
    if importlib.util.find_spec("tensorboard") is not None:  # histograms named as the plugin's model names them
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        import harness_plugins.mnist_attention as plugin

        accumulator = EventAccumulator(str(events[0].parent), size_guidance={"histograms": 0})
        accumulator.Reload()
        spec = next(m for m in plugin.harness_models() if m.name == "mnist-mlp")
        net = spec.build(num_classes=10, input_shape=(1, 28, 28))
        assert set(accumulator.Tags()["histograms"]) == {f"weights/{n}" for n, _ in net.named_parameters()}
    off = run_cli(*args, "--track", "tensorboard", "--run-id", "s", env={**env, "HARNESS_DISABLE_PLUGINS": "trackers"})
    assert off.returncode == 2 and "--track: unknown tracker 'tensorboard'" in off.stderr
    assert "HARNESS_DISABLE_PLUGINS keeps out plugin(s) trackers" in off.stderr


@pytest.mark.parametrize("fails_in", ["run_ended", "reports_written"])
def test_a_reporter_failing_as_the_run_ends_is_in_results_json(tmp_path, fails_in):
    from conftest import offline_cli_env, run_cli

    env = {**offline_cli_env(tmp_path, "harness-ending", {"ending": "ending_reporter"}),
           "ENDING_LOG": str(tmp_path / "calls.jsonl"), "ENDING_FAILS_IN": fails_in}
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples",
                     "64", "--max-test-samples", "32", "--device", "cpu", "--batch-sizes", "1", "--quick",
                     "--cold-runs", "0", "--no-torch-latency", "--exporter", "torchscript", "--out",
                     str(tmp_path / "out"), "--run-id", "r", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    errors = json.loads((tmp_path / "out" / "r" / "results.json").read_text())["reporter_errors"]
    assert errors == [f"reporter 'ending' failed in {fails_in}: RuntimeError: the tracking server went away"]
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    if fails_in == "reports_written":  # told of the files once they are written: results.json final, the reports
        assert calls == ["run_started", ["run_ended", False], ["reports_written", [
            "report.html", "report.md", "results.csv", "results.json"]]]
    else:  # switched off when it failed: not called again
        assert calls == ["run_started", ["run_ended", False]]
        # a resume's own reporter errors come after the earlier session's (they replaced them)
        again = run_cli("run", "--resume", "--run-id", "r", "--out", str(tmp_path / "out"), env=env)
        assert again.returncode == 0, again.stderr[-2000:]
        kept = json.loads((tmp_path / "out" / "r" / "results.json").read_text())["reporter_errors"]
        assert kept == errors * 2


@needs_mlflow
def test_an_unreachable_tracking_server_is_refused_at_once(tmp_path, monkeypatch):
    """MLflow's client retried an unreachable server for about 4 minutes before the first job."""
    import socket
    import time

    from harness_plugins.trackers.mlflow_reporter import MLflowReporter

    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}/")
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}/"):
        MLflowReporter().run_started(tmp_path, {}, {})
    assert time.monotonic() - started < 10

"""MLflow and TensorBoard reporters (harness_plugins.trackers): real files in a tmp run folder, read back."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.registry import build_registry
from harness.reporters import Reporter, make_trackers

needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                  reason='mlflow not installed (pip install "mlflow-skinny>=2.10")')
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason='tensorboard not installed (pip install "tensorboard>=2.14")')


def tiny_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10))


CONFIG = {"epochs": 2, "max_train_samples": 512, "device": "cpu", "models": ["tiny"], "profile": "edge",
          "providers": ["CPUExecutionProvider"], "out": "/somewhere", "resume": False,
          "sweep": [{"dropout": 0.1}, {"dropout": 0.2}],
          "latency": {"warmup_runs": 3, "min_runs": 10, "min_time_s": 0.05, "max_time_s": 2.0, "cold_runs": 0}}
"""A run's stored config as run_started gets it (results.json ``config``; here --quick --cold-runs 0)."""


def drive(reporter: Reporter, run_dir: Path) -> dict:
    """A run as the runner reports it: one job trained for two epochs and exported, one that failed at load."""
    model = tiny_model()
    onnx = run_dir / "onnx" / "tiny_synthetic.onnx"
    onnx.parent.mkdir(parents=True)
    onnx.write_bytes(b"not really onnx, but a file to upload" * 10)
    reporter.run_started(run_dir, CONFIG, {"torch": "2.x", "device": "cpu"})
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
                                                  "max_abs_diff": 1e-6, "metrics": {"accuracy": 0.89},
                                                  "exporter": "dynamo", "opset": 20, "activation_bytes": 6272},
           "latency": [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": 1,
                        "threads": 1, "p50_ms": 0.05, "p99_ms": 0.09, "throughput_per_s": 20000.0,
                        "drift_pct": 7.5, "stable": False}],
           "ort_vs_eager": {"speedup": 3.4, "stable": True, "stability": "stable", "ratio_spread_pct": 0.7}}
    row["train"]["evaluated_on"] = "val"
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
                       f'pip install "{install}"')


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
    assert 'pip install "jsonlog[extra]"' in rows["needs-extra"] and rows["jsonlog"].split()[1] == "jsonlog"
    args = ["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples", "64",
            "--max-test-samples", "32", "--device", "cpu", "--batch-sizes", "1", "--quick", "--cold-runs", "0",
            "--no-torch-latency", "--exporter", "torchscript", "--out", str(tmp_path / "out")]
    for name, said in [("needs-extra", "--track: the needs-extra tracker needs the harness_no_such_package package: "
                                       'pip install "jsonlog[extra]"'),
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
    # the whole config: what the run selected, its sweep grid and latency settings (by name and each)
    assert {k: parent.data.params[k] for k in ("run.epochs", "run.models", "run.sweep_points", "run.latency",
                                                 "run.latency.cold_runs")} == {
        "run.epochs": "2", "run.models": '["tiny"]', "run.sweep_points": "2", "run.latency": "--quick",
        "run.latency.cold_runs": "0"}
    assert json.loads(parent.data.params["run.sweep"]) == CONFIG["sweep"]
    assert not {"run.out", "run.resume", "run.run_id"} & set(parent.data.params)  # how it was found, not run
    assert parent.data.tags["harness.run_dir"] == str(run_dir.resolve()) and parent.data.tags["harness.sessions"] == "1"
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
    assert {k: ok.data.params[k] for k in ("run.latency", "run.latency.cold_runs", "run.profile", "run.providers")} \
        == {"run.latency": "--quick", "run.latency.cold_runs": "0", "run.profile": "edge",
            "run.providers": '["CPUExecutionProvider"]'}
    # what the row alone knows: the split eval_* scored, how the ONNX file was exported
    assert {k: ok.data.params[k] for k in ("evaluated_on", "onnx.exporter", "onnx.opset", "ort_vs_eager.stability")} \
        == {"evaluated_on": "val", "onnx.exporter": "dynamo", "onnx.opset": "20", "ort_vs_eager.stability": "stable"}
    assert (ok.data.tags["harness.attempt"], ok.data.tags["harness.status"]) == ("1", "ok")
    history = client.get_metric_history(ok.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 2.0), (2, 1.0)]
    assert ok.data.metrics["test/accuracy"] == pytest.approx(0.9)
    assert ok.data.metrics["onnx/accuracy"] == pytest.approx(0.89)
    assert ok.data.metrics["latency/onnxruntime_cpu/b1_t1/p50_ms"] == pytest.approx(0.05)
    # with its reliability: an unstable row reads as one
    assert (ok.data.metrics["latency/onnxruntime_cpu/b1_t1/stable"],
            ok.data.metrics["latency/onnxruntime_cpu/b1_t1/drift_pct"]) == (0.0, 7.5)
    assert (ok.data.metrics["ort_vs_eager/speedup"], ok.data.metrics["ort_vs_eager/stable"]) == (3.4, 1.0)
    assert ok.data.metrics["onnx/activation_bytes"] == 6272
    assert [m.step for m in client.get_metric_history(ok.info.run_id, "test/accuracy")] == [2]  # the last epoch
    artifacts = [a.path for a in client.list_artifacts(ok.info.run_id, "onnx")]
    assert artifacts == ["onnx/tiny_synthetic.onnx"]
    stored = Path(ok.info.artifact_uri.replace("file://", "")) / "onnx" / "tiny_synthetic.onnx"
    assert stored.read_bytes() == (run_dir / "onnx" / "tiny_synthetic.onnx").read_bytes()


def resumed_sessions(make: Any, run_dir: Path) -> dict:
    """A run over three sessions, each with a new reporter as each `harness run` makes one: the first is
    interrupted in epoch 2 of its job; the resume runs the job again, which fails in epoch 2 of a longer
    recipe (``train.epochs`` None); a last resume runs nothing (as one whose jobs had all finished)."""
    model = tiny_model()
    info = {"model": "tiny", "dataset": "synthetic", "params": 1234, "recipe": {"lr": 0.001}}
    first = make()
    first.run_started(run_dir, CONFIG, {})
    first.job_started("tiny@synthetic", info)
    first.epoch_ended("tiny@synthetic", {"epoch": 1, "train_loss": 2.0}, model)
    first.run_ended({"jobs": [], "interrupted": True}, run_dir)  # Ctrl-C: the job never reported its end
    # what harness run --resume writes before the reporters hear of the run: the resumes so far
    (run_dir / "results.json").write_text(json.dumps({"jobs": [], "resumed": [{}]}))
    second = make()
    second.run_started(run_dir, {**CONFIG, "epochs": 3}, {})  # resumed with more epochs
    second.job_started("tiny@synthetic", info)
    for epoch in (1, 2):
        second.epoch_ended("tiny@synthetic", {"epoch": epoch, "train_loss": 1.0 / epoch}, model)
    failed = {"id": "tiny@synthetic", "model": "tiny", "dataset": "synthetic", "status": "failed", "stage": "train",
              "error": "RuntimeError: NaN loss", "train": {"epochs": None, "seconds": 4.0}}
    second.job_ended("tiny@synthetic", failed, run_dir)
    second.run_ended({"jobs": [failed]}, run_dir)
    second.reports_written(run_dir, [])
    third = make()
    third.run_started(run_dir, {**CONFIG, "epochs": 3}, {})
    third.run_ended({"jobs": [failed]}, run_dir)
    (run_dir / "report.md").write_text("report")
    before = int(__import__("time").time() * 1000)
    third.reports_written(run_dir, [run_dir / "report.md"])
    return {"reports_from": before}


@needs_mlflow
def test_mlflow_resume_reopens_the_harness_run_and_tells_a_jobs_attempts_apart(tmp_path, monkeypatch):
    """Each --resume made another MLflow run named and tagged as the harness run (one KILLED, one FAILED, an
    empty one for a resume that ran nothing), and a job run again had two runs no tag told apart."""
    from harness_plugins.trackers.mlflow_reporter import MLflowReporter
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()  # one store for runs in two --out folders
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # the reporter sets it: not left to other tests
    run_dir = tmp_path / "out" / "r"
    run_dir.mkdir(parents=True)
    state = resumed_sessions(MLflowReporter, run_dir)
    elsewhere = tmp_path / "other-out" / "r"  # the same run name in another --out: another harness run
    elsewhere.mkdir(parents=True)
    other = MLflowReporter()
    other.run_started(elsewhere, CONFIG, {})
    other.run_ended({"jobs": []}, elsewhere)

    client = MlflowClient(tracking_uri=store)
    found = client.search_runs([client.get_experiment_by_name("harness").experiment_id])
    parents = {r.data.tags["harness.run_dir"]: r for r in found if r.data.tags.get("harness.kind") == "run"}
    assert set(parents) == {str(run_dir.resolve()), str(elsewhere.resolve())}
    parent = parents[str(run_dir.resolve())]
    assert (parent.info.run_name, parent.info.status, parent.data.tags["harness.status"]) == ("r", "FAILED", "failed")
    assert parent.data.tags["harness.sessions"] == "3"
    assert parent.info.end_time >= state["reports_from"]  # ended after its last reports were attached
    assert "report/report.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    # MLflow params cannot change: the first session's stay, the resume's change is a tag
    assert (parent.data.params["run.epochs"], parent.data.tags["harness.changed.run.epochs"]) == ("2", "3")
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "jobs/failed")] == [1, 2, 3]
    jobs = sorted((r for r in found if r.data.tags.get("harness.job") == "tiny@synthetic"),
                  key=lambda r: r.data.tags["harness.attempt"])
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert [(r.data.tags["harness.attempt"], r.data.tags["harness.session"], r.info.status,
             r.data.tags["harness.status"]) for r in jobs] == [("1", "1", "KILLED", "interrupted"),
                                                                ("2", "2", "FAILED", "failed")]
    assert [(r.data.params["recipe.lr"], r.data.params["run.latency"]) for r in jobs] == [("0.001", "--quick")] * 2
    # failed in training: its final figures beside the last epoch it reported, not at step 0
    assert [m.step for m in client.get_metric_history(jobs[1].info.run_id, "train/seconds")] == [2]
    killed = MLflowReporter()  # a session killed outright (SIGKILL): no run_ended closes its job's run
    killed.run_started(run_dir, CONFIG, {})
    killed.job_started("tiny@synthetic", {"model": "tiny"})
    MLflowReporter().run_started(run_dir, CONFIG, {})  # the next resume ends it
    (left,) = client.search_runs([parent.info.experiment_id], "tags.\"harness.attempt\" = '3'")
    assert (left.info.status, left.data.tags["harness.status"]) == ("KILLED", "interrupted")
    assert client.get_run(parent.info.run_id).data.tags["harness.sessions"] == "5"
    # a new run in a folder of the same path (CI: rm -rf, the same --run-id) is not a resume: its own MLflow run
    (run_dir / "results.json").write_text(json.dumps({"jobs": []}))
    fresh = MLflowReporter()
    fresh.run_started(run_dir, CONFIG, {})
    assert fresh.parent != parent.info.run_id and fresh.session == 1
    assert client.get_run(parent.info.run_id).data.tags["harness.sessions"] == "5"


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
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("test/accuracy")] == [(2, 0.9)]
    assert events.Scalars("latency/onnxruntime_cpu/b1_t1/stable")[0].value == 0.0
    assert text(events, "facts") == [("evaluated_on: val  \nonnx.exporter: dynamo  \nonnx.opset: 20  \n"
                                      "ort_vs_eager.stability: stable")]
    assert text(events, "status") == ["ok"]
    names = {f"weights/{n}" for n, _ in state["model"].named_parameters()}
    assert names == set(tags["histograms"])  # every parameter: conv kernel and bias, BatchNorm gamma/beta, linear
    assert {"weights/1.weight", "weights/1.bias"} <= names  # the BatchNorm's gamma and beta
    conv = events.Histograms("weights/0.weight")
    assert [h.step for h in conv] == [1, 2]
    assert conv[1].histogram_value.min == pytest.approx(conv[0].histogram_value.min + 0.5, abs=1e-5)
    assert conv[1].histogram_value.num == state["model"][0].weight.numel()


@needs_tensorboard
def test_tensorboard_keeps_a_resumed_jobs_earlier_attempt_apart(tmp_path):
    """A resumed job wrote a second event file into its folder: every scalar showed twice at the same steps."""
    from harness_plugins.trackers.tensorboard_reporter import TensorBoardReporter
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    resumed_sessions(TensorBoardReporter, run_dir)
    folder = run_dir / "tensorboard" / "tiny_synthetic"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["attempt-1"]

    def load(path: Path) -> EventAccumulator:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
        events.Reload()
        return events

    latest, earlier = load(folder), load(folder / "attempt-1")
    assert [(e.step, e.value) for e in latest.Scalars("loss/train")] == [(1, 1.0), (2, 0.5)]
    assert [e.step for e in latest.Scalars("train/seconds")] == [2]  # failed in epoch 2: at 2, not 0
    assert text(latest, "status") == ["failed at train: RuntimeError: NaN loss"]
    assert [(e.step, e.value) for e in earlier.Scalars("loss/train")] == [(1, 2.0)]
    assert text(earlier, "status") == ["interrupted"]


def text(events, tag: str) -> list[str]:
    """A TensorBoard text summary's values, in step order."""
    return [e.tensor_proto.string_val[0].decode() for e in events.Tensors(f"{tag}/text_summary")]


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
        import harness_plugins.mnist_attention as plugin
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        accumulator = EventAccumulator(str(events[0].parent), size_guidance={"histograms": 0})
        accumulator.Reload()
        spec = next(m for m in plugin.harness_models() if m.name == "mnist-mlp")
        net = spec.build(num_classes=10, input_shape=(1, 28, 28))
        assert set(accumulator.Tags()["histograms"]) == {f"weights/{n}" for n, _ in net.named_parameters()}
    off = run_cli(*args, "--track", "tensorboard", "--run-id", "s", env={**env, "HARNESS_DISABLE_PLUGINS": "trackers"})
    assert off.returncode == 2 and "--track: unknown tracker 'tensorboard'" in off.stderr
    assert "HARNESS_DISABLE_PLUGINS keeps out plugin(s) trackers" in off.stderr


@needs_mlflow
@needs_tensorboard
def test_a_real_run_and_its_resume_are_one_harness_run_in_mlflow_with_the_figures_reliability(tmp_path, monkeypatch):
    """The runner's own rows: the key names the trackers read (latency ``stable``, ``ort_vs_eager``, the
    exporter) are results.json's; a resume with nothing left to run added an empty MLflow run."""
    import os

    from conftest import run_cli
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_EXPERIMENT_NAME": "e2e"}
    env.pop("HARNESS_TRACK", None)
    out = tmp_path / "out"
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1",
                     "--max-train-samples", "64", "--max-test-samples", "32", "--device", "cpu", "--batch-sizes", "1",
                     "--quick", "--cold-runs", "0", "--exporter", "torchscript", "--out", str(out), "--run-id", "r",
                     "--track", "mlflow,tensorboard", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    again = run_cli("run", "--resume", "--run-id", "r", "--out", str(out), "--track", "mlflow,tensorboard", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "r" / "results.json").read_text()).get("reporter_errors", []) == []

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read MLflow 3's file store back
    client = MlflowClient(tracking_uri=store)
    found = client.search_runs([client.get_experiment_by_name("e2e").experiment_id])
    (parent,) = [r for r in found if r.data.tags.get("harness.kind") == "run"]
    (job,) = [r for r in found if r.data.tags.get("harness.kind") != "run"]
    assert (parent.info.status, parent.data.tags["harness.sessions"]) == ("FINISHED", "2")
    assert job.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {k: job.data.params.get(k) for k in ("evaluated_on", "onnx.exporter", "run.latency")} == {
        "evaluated_on": "test", "onnx.exporter": "torchscript", "run.latency": "--quick"}
    assert job.data.params["onnx.opset"].isdigit()
    assert {"latency/onnxruntime_cpu/b1_t1/stable", "latency/onnxruntime_cpu/b1_t1/drift_pct",
            "ort_vs_eager/speedup", "ort_vs_eager/stable", "onnx/activation_bytes"} <= set(job.data.metrics)
    events = list((out / "r" / "tensorboard").rglob("events.out.tfevents.*"))
    assert [e.parent.name for e in events] == ["mnist-mlp_synthetic"]  # one attempt: nothing set aside


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


@needs_mlflow
def test_a_tracking_server_that_drops_every_request_fails_the_reporter_in_seconds_not_minutes(tmp_path, monkeypatch):
    """A server that went away mid-run (here: one that accepts and drops each connection, past the start's
    reachability check) held every MLflow call some 4 minutes in the client's retries (7, backoff factor 2),
    and a job under --job-timeout failed for it. The retries are bounded unless the environment sets them."""
    import os
    import socket
    import threading
    import time

    from harness_plugins.trackers.mlflow_reporter import BOUNDED_HTTP, MLflowReporter

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def drop_all():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                connection.close()
            except OSError:
                continue

    threading.Thread(target=drop_all, daemon=True).start()
    for name in BOUNDED_HTTP:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's own setting stands
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.getsockname()[1]}/")
    started = time.monotonic()
    try:
        with pytest.raises(Exception):  # noqa: B017 - whichever error MLflow's client ends its retries with
            MLflowReporter().run_started(tmp_path, {}, {})
    finally:
        stop.set()
        server.close()
    assert time.monotonic() - started < 60
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == BOUNDED_HTTP["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_a_like_of_a_tracked_run_says_it_is_not_tracked_unless_asked(tmp_path, caplog):
    """--like gives RUN's options, and trackers are none: a tracked run's --like went to no tracker, silently."""
    import logging

    from conftest import run_cli, write_run

    from harness.api import _options

    fixture = json.loads((Path(__file__).parent / "fixtures" / "report_run" / "results.json").read_text())
    fixture["trackers"] = ["mlflow"]
    run = write_run(tmp_path / "tracked", fixture)
    result = run_cli("run", "--like", str(run), "--models", "no-such-model")  # stops before any job
    assert f"harness: warning: {run} was tracked (mlflow); this run is not unless asked: --track mlflow" \
        in result.stderr, result.stderr
    with caplog.at_level(logging.WARNING, logger="harness.runner"):  # api.run(like=) alike, unless track= is given
        _options({"like": run}, quick=False)
        _options({"like": run}, quick=False, tracking=True)
    assert [r.getMessage() for r in caplog.records if "was tracked" in r.getMessage()] == [
        f"{run} was tracked (mlflow); this run is not unless asked: --track mlflow"]
    del fixture["trackers"]
    untracked = write_run(tmp_path / "plain", fixture)
    assert "was tracked" not in run_cli("run", "--like", str(untracked), "--models", "no-such-model").stderr


@needs_mlflow
def test_a_param_cut_to_mlflows_length_says_it_was_cut():
    """run.sweep's JSON was cut at 500 characters without a mark, so it read as whole and failed to parse."""
    from harness_plugins.trackers.mlflow_reporter import MAX_PARAM, _param_text

    sweep = [{"lr": 0.001 * n, "seed": n} for n in range(40)]
    cut = _param_text(sweep)
    assert len(cut) == MAX_PARAM and cut.endswith("…")
    assert _param_text([{"seed": 0}]) == '[{"seed": 0}]'  # short ones whole, unmarked

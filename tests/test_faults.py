"""Fault isolation: each failing stage fails only its own job, with the stage and a one-line reason."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest
from conftest import SitePackages, offline_cli_env, run_cli


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    env = offline_cli_env(root, "harness-faulty", {"faulty": "faulty_plugin"})
    result = run_cli("run", "--plugins", "faulty,datasets,metrics", "--datasets", "synthetic,fault-data",
                     "--epochs", "1", "--max-train-samples", "128", "--device", "cpu", "--batch-sizes", "1",
                     "--quick", "--no-torch-latency", "--out", str(root / "out"), "--run-id", "f", env=env)
    data = json.loads((root / "out" / "f" / "results.json").read_text())
    result.run_folder = root / "out" / "f"
    return result, {job["id"]: job for job in data["jobs"]}


def test_run_finishes_with_exit_1_and_lists_failures(fault_run):
    result, jobs = fault_run
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert len(jobs) == 14  # 7 models x 2 datasets, every one recorded; fault-accepts paired with neither
    assert ("model 'fault-accepts' (plugin 'faulty'): its accepts(1x28x28) raised IndexError: tuple index out of "
            "range; not paired with synthetic") in result.stderr


@pytest.mark.parametrize("job_id, stage, needle", [
    ("fault-build@synthetic", "build", "ValueError: cannot build this network"),
    ("fault-not-module@synthetic", "build", "expected a torch.nn.Module"),
    ("fault-nan@synthetic", "train", "diverged"),
    ("fault-export@synthetic", "export", "harnessfault::double"),
    ("fault-mismatch@synthetic", "onnx-eval", "differs from PyTorch"),
    ("fault-ok@fault-data", "load", "the fault-data files are corrupt"),
])
def test_each_stage_failure_is_recorded_in_its_row(fault_run, job_id, stage, needle):
    _, jobs = fault_run
    job = jobs[job_id]
    assert job["status"] == "failed"
    assert job["stage"] == stage
    assert needle in job["error"] and "\n" not in job["error"]


def test_other_jobs_are_ok_and_a_failing_metric_is_null(fault_run):
    _, jobs = fault_run
    ok = jobs["fault-ok@synthetic"]
    assert ok["status"] == "ok", ok
    assert ok["metrics"]["fault-metric"] is None and ok["metrics"]["accuracy"] is not None
    assert ok["latency"] and ok["onnx"]["max_abs_diff"] <= 1e-4
    # computed for every job, in PyTorch and ONNX Runtime, yet said once, and why is kept with the job
    result, _ = fault_run
    assert result.stderr.count("metric fault-metric (plugin 'faulty') failed on ") == 1, result.stderr[-3000:]
    said = "ZeroDivisionError: bad metric"
    first = next(line for line in result.stderr.splitlines() if "metric fault-metric" in line)
    assert first.split(" failed on ")[1].split(":")[0] in jobs  # the job it first failed on, by its id
    assert ok["metric_errors"] == {"fault-metric": said} and ok["onnx"]["metric_errors"] == {"fault-metric": said}
    report = (result.run_folder / "report.md").read_text()
    computed = sum(1 for job in jobs.values() if job.get("metrics"))  # the jobs that got as far as the metrics
    assert f"- fault-metric failed on {computed} job(s) (PyTorch and ORT), so its value is empty there: {said}" \
        in report
    assert said in (result.run_folder / "report.html").read_text()


def test_a_metric_changing_its_inputs_in_place_changes_no_other_metric(fault_run):
    _, jobs = fault_run
    ok = jobs["fault-ok@synthetic"]  # fault-mutates negated the logits and zeroed the targets it was given
    for side in (ok["metrics"], ok["onnx"]["metrics"]):
        assert side["fault-mutates"] == 0.0 and side["fault-accuracy-again"] == pytest.approx(side["accuracy"])


def test_failed_stages_leave_later_fields_null_not_invented(fault_run):
    _, jobs = fault_run
    nan = jobs["fault-nan@synthetic"]
    assert nan["onnx"] is None and nan["latency"] == [] and nan["metrics"] is None
    export = jobs["fault-export@synthetic"]
    assert export["metrics"]["accuracy"] is not None  # the PyTorch evaluation before export stands
    assert export["onnx"] is None


@pytest.mark.slow  # 14-25 s of separate runs: kept out of CI's ten minutes (pytest -m slow)
def test_job_timeout_fails_only_the_slow_job(tmp_path):
    env = offline_cli_env(tmp_path, "harness-faulty", {"faulty": "faulty_plugin"})
    env["FAULT_SLOW_SECONDS"] = "120"
    result = run_cli("run", "--models", "fault-slow,fault-ok", "--datasets", "synthetic", "--epochs", "1",
                     "--max-train-samples", "64", "--device", "cpu", "--batch-sizes", "1", "--quick",
                     "--no-torch-latency", "--exporter", "torchscript", "--job-timeout", "20",
                     "--out", str(tmp_path / "out"), "--run-id", "t", env=env, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    jobs = {j["model"]: j for j in json.loads((tmp_path / "out" / "t" / "results.json").read_text())["jobs"]}
    assert jobs["fault-slow"]["status"] == "failed" and jobs["fault-slow"]["stage"] == "build"
    assert "--job-timeout 20" in jobs["fault-slow"]["error"] and jobs["fault-slow"]["timed_out"] is True
    assert jobs["fault-ok"]["status"] == "ok" and "timed_out" not in jobs["fault-ok"]


def test_a_plugin_dataset_whose_files_are_missing_is_a_usage_error_naming_the_file(tmp_path):
    # no --data-dir: load still gets a path (CONTRACT.md), and its FileNotFoundError stops the run up front
    env = offline_cli_env(tmp_path, "harness-contract", {"contract": "contract_plugin"})
    result = run_cli("run", "--plugins", "contract", "--models", "contract net", "--datasets", "contract-files",
                     "--out", str(tmp_path / "out"), env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    expected = tmp_path / "cache" / "data" / "contract-files" / "train.csv"
    assert line.startswith("harness: error: dataset 'contract-files': FileNotFoundError") and str(expected) in line
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def contract_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    env = offline_cli_env(root, "harness-contract", {"contract": "contract_plugin"})
    result = run_cli("run", "--plugins", "contract,datasets,metrics", "--epochs", "1", "--max-train-samples", "64",
                     "--datasets", "synthetic,contract-float64,contract-labels,contract-declared",
                     "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency",
                     "--exporter", "torchscript", "--out", str(root / "out"), "--run-id", "c",
                     "--latency-budget-ms", "1000", "--accuracy-floor", "0", "--size-budget", "10MB", env=env)
    folder = root / "out" / "c"
    return result, {job["id"]: job for job in json.loads((folder / "results.json").read_text())["jobs"]}, folder


@pytest.mark.parametrize("job_id, stage, needles", [
    ("contract-wide@synthetic", "build", ["contract-wide returns a torch.float32 tensor of shape (2, 13)",
                                          "(N, num_classes)", "(2, 10)"]),
    ("contract-tuple@synthetic", "build", ["contract-tuple returns a tuple"]),
    ("contract-fixed@synthetic", "build", ["contract-fixed fails on inputs of shape (2, 1, 28, 28) (N, *input_shape): "
                                           "RuntimeError: mat1 and mat2 shapes cannot be multiplied"]),
    ("contract net@contract-float64", "load", ["dataset 'contract-float64' breaks the Splits contract",
                                               "train inputs are torch.float64, expected torch.float32",
                                               "test targets are torch.int32, expected torch.int64"]),
    ("contract net@contract-labels", "load", ["train targets span 5..14, outside 0..9"]),
    ("contract net@contract-declared", "load", ["declares input_shape (1, 28, 28) but loads (1, 8, 8)"]),
])
def test_contract_breaches_fail_their_job_at_the_right_stage_with_what_is_wrong(contract_run, job_id, stage, needles):
    result, jobs, _ = contract_run
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    job = jobs[job_id]
    assert (job["status"], job["stage"]) == ("failed", stage), job
    assert all(n in job["error"] for n in needles), job["error"]


def test_published_figures_json_cannot_hold_are_null_and_the_job_is_kept(contract_run, tmp_path):
    """A NaN in a plugin's reference stopped the run at its first save with a traceback, the finished job
    lost; `harness list --json` printed a bare NaN, which strict JSON parsers refuse."""
    result, jobs, folder = contract_run
    assert "Traceback" not in result.stderr, result.stderr[-2000:]

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    strict = json.loads((folder / "results.json").read_text(), parse_constant=refuse)
    job = next(j for j in strict["jobs"] if j["id"] == "contract net@synthetic")
    assert job["status"] == "ok"
    assert job["reference"] == {"test_accuracy": None, "val_accuracy": None, "train_accuracy": 0.5, "epochs": 1}
    env = offline_cli_env(tmp_path, "harness-contract", {"contract": "contract_plugin"})
    listed = run_cli("list", "models", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(m for m in json.loads(listed.stdout, parse_constant=refuse) if m["name"] == "contract net")
    assert row["reference"]["test_accuracy"] is None and row["reference"]["train_accuracy"] == 0.5


def test_two_models_whose_names_clean_alike_keep_their_own_exports(contract_run):
    import onnx

    _, jobs, folder = contract_run
    plain, wider = jobs["contract net@synthetic"], jobs["contract_net@synthetic"]
    assert plain["status"] == wider["status"] == "ok"
    assert plain["onnx"]["path"] != wider["onnx"]["path"]
    nodes = [len(onnx.load(str(folder / job["onnx"]["path"])).graph.node) for job in (plain, wider)]
    assert nodes[0] < nodes[1]  # one linear layer vs two with a ReLU between: each file is its own model


def test_a_model_with_lazy_layers_is_counted_after_they_take_their_sizes(contract_run):
    _, jobs, _ = contract_run
    lazy, plain = jobs["contract-lazy@synthetic"], jobs["contract net@synthetic"]
    assert lazy["status"] == "ok", lazy["error"]
    assert lazy["params"] == plain["params"] == 28 * 28 * 10 + 10


def test_a_model_the_flop_counter_cannot_run_takes_its_exports_count(contract_run):
    _, jobs, _ = contract_run
    job, plain = jobs["contract-uncounted@synthetic"], jobs["contract net@synthetic"]
    assert job["status"] == "ok" and job["flops"] == job["onnx"]["flops"] == plain["flops"] == 2 * 28 * 28 * 10


def test_plugins_selects_metrics_too_and_the_builtin_metrics_always_take_part(tmp_path):
    """--plugins does not drop the built-in metrics; --metrics narrows them, but never drops accuracy."""
    env = offline_cli_env(tmp_path, "harness-contract", {"contract": "contract_plugin"})
    SitePackages(tmp_path / "site").install("harness-faulty", {"faulty": "faulty_plugin"})  # registers fault-metric
    common = ["--models", "contract net", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples", "64",
              "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency", "--exporter", "torchscript",
              "--out", str(tmp_path / "out")]
    result = run_cli("run", "--plugins", "contract,datasets", *common, "--run-id", "m", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    (job,) = json.loads((tmp_path / "out" / "m" / "results.json").read_text())["jobs"]
    assert set(job["metrics"]) == {"accuracy", "nll", "macro-f1"}  # not faulty's fault-metric
    refused = run_cli("run", "--plugins", "contract,datasets", "--metrics", "accuracy,fault-metric", *common,
                      "--run-id", "m2", env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "metric 'fault-metric' comes from plugin 'faulty', which --plugins does not include" in refused.stderr
    # --metrics narrows the others; accuracy, which the edge question judges by, stays
    narrowed = run_cli("run", "--plugins", "contract,datasets", "--metrics", "nll", *common, "--accuracy-floor", "0",
                       "--edge-gate", "--run-id", "m3", env=env)
    assert narrowed.returncode == 0, narrowed.stderr[-2000:]
    narrowed_run = json.loads((tmp_path / "out" / "m3" / "results.json").read_text())
    (job,) = narrowed_run["jobs"]
    assert set(job["metrics"]) == set(job["onnx"]["metrics"]) == {"accuracy", "nll"}
    assert narrowed_run["metric_specs"]["nll"]["higher_is_better"] is False  # for reports rebuilt elsewhere
    assert set(narrowed_run["metric_specs"]) == {"accuracy", "nll"}


def test_with_a_budget_or_floor_the_run_answers_the_edge_question_on_the_terminal(contract_run):
    import re

    result, jobs, folder = contract_run
    found = re.search(r"edge \(batch 1, 1 thread, CPU; accuracy >= 0, p50 <= 1000 ms, size <= 10.00 MiB\): (\d+) of "
                      r"(\d+) job\(s\) "
                      r"qualify, fastest first: (.*)", result.stdout)
    assert found, result.stdout[-2000:]
    ok = [j for j in jobs.values() if j["status"] == "ok"]
    # of the jobs judged: the failed ones are named as not judged, not counted
    assert (int(found[1]), int(found[2])) == (len(ok), len([j for j in jobs.values() if j["status"] == "ok"]))
    assert "; not judged, failed: " in found[3]
    assert "contract net fp32 on synthetic" in found[3]
    config = json.loads((folder / "results.json").read_text())["config"]  # --size-budget 10MB, recorded
    assert config["size_budget_bytes"] == 10 * 1024 ** 2 and config["activation_budget_bytes"] is None


def test_a_time_out_during_the_export_fails_the_job_instead_of_falling_back(tmp_path):
    """The dynamo exporter's failure falls back to TorchScript; --job-timeout's alarm inside it is no such
    failure (it was, and the job ended "ok" with a TorchScript file long after its limit). In a process of
    its own: an alarm can leave a module half-imported."""
    script = """
import torch
from harness.export import export_onnx
from harness.runner import JobTimeout, preload_job_modules, time_limit
preload_job_modules()
net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
try:
    with time_limit(0.05):  # a dynamo export takes far longer
        result = export_onnx(net, torch.rand(2, 1, 4, 4), __import__("pathlib").Path(r"%s"), exporter="auto")
    print("exported", result.exporter, result.fallback_reason)
except JobTimeout as exc:
    print("timed out:", exc)
""" % (tmp_path / "m.onnx")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("timed out: the job ran longer than --job-timeout 0.05 s"), result.stdout


def test_the_onnx_tolerance_grows_with_the_logits_beyond_1():
    """Logits near 1040 (a net trained at lr 0.1) differ by float32 rounding alone, 1.2e-4 a step: that is
    agreement. Near 1 the same difference is a wrong export."""
    import numpy as np

    from harness.runner import onnx_agreement

    big = np.array([[1040.0, -3.0]], dtype=np.float32)
    diff, mismatch = onnx_agreement(big, big + np.array([[3.7e-4, 1e-5]], dtype=np.float32), 1e-4)
    assert diff > 1e-4 and mismatch is None
    small = np.array([[0.9, -0.3]], dtype=np.float32)
    _, mismatch = onnx_agreement(small, small + np.float32(3.7e-4), 1e-4)
    assert mismatch.startswith("ONNX Runtime output differs from PyTorch by 0.00037 (> 0.0001)"), mismatch
    _, mismatch = onnx_agreement(big, big + np.array([[0.5, 0.0]], dtype=np.float32), 1e-4)  # beyond rounding
    assert mismatch and "(> 0.0001 x 1040, that logit's size)" in mismatch, mismatch
    # a large logit in one row does not excuse a small one elsewhere (here its argmax flips)
    mixed = np.array([[5000.0, 0.0], [0.1, 0.5]], dtype=np.float32)
    flipped = mixed.copy()
    flipped[1, 0] = 0.55
    _, mismatch = onnx_agreement(mixed, flipped, 1e-4)
    assert mismatch and mismatch.startswith("ONNX Runtime output differs from PyTorch by 0.45 (> 0.0001)"), mismatch
    # the figure the message names is the worst for its tolerance: a larger max_abs_diff is said beside it
    flipped[0, 0], flipped[1, 0] = 5000.25, 0.1 + 3e-4
    diff, mismatch = onnx_agreement(mixed, flipped, 1e-4)
    assert diff == np.float32(0.25) and mismatch.endswith("; the largest difference, 0.25, is within its own)"), mismatch


def test_a_metric_that_returns_no_number_says_what_it_returned(caplog):
    import torch

    from harness import MetricSpec
    from harness.runner import compute_metrics

    logits, targets = torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64)
    metrics = [MetricSpec("none-metric", lambda lo, ta: None), MetricSpec("list-metric", lambda lo, ta: [1, 2]),
               MetricSpec("tensor-metric", lambda lo, ta: torch.tensor(0.5)),
               MetricSpec("text-metric", lambda lo, ta: "0.5"), MetricSpec("nan-metric", lambda lo, ta: float("nan"))]
    with caplog.at_level(logging.WARNING, logger="harness.runner"):
        values = compute_metrics(metrics, logits, targets)
    assert values == {"none-metric": None, "list-metric": None, "tensor-metric": 0.5, "text-metric": None,
                      "nan-metric": None}
    assert "metric text-metric failed: TypeError: compute returned '0.5', expected a number" in caplog.text
    assert "metric nan-metric failed: ValueError: compute returned nan (its value is null" in caplog.text
    assert "metric none-metric failed: TypeError: compute returned None, expected a number" in caplog.text
    assert "metric list-metric failed: TypeError: compute returned [1, 2], expected a number" in caplog.text


def test_a_gated_metric_outside_0_1_is_refused_not_gated_100_times_over():
    """A gate=True metric returning a percentage (38.54) was stored as is; compare then read a 0.54-point
    move as 54 points and failed the gate. An ungated one may be any number."""
    import torch

    from harness import MetricSpec
    from harness.runner import compute_metrics

    logits, targets = torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64)
    metrics = [MetricSpec("pct", lambda lo, ta: 38.54, gate=True), MetricSpec("neg", lambda lo, ta: -0.5, gate=True),
               MetricSpec("edges", lambda lo, ta: 1.0, gate=True), MetricSpec("loss", lambda lo, ta: 38.54)]
    errors: dict[str, str] = {}
    assert compute_metrics(metrics, logits, targets, errors) == {"pct": None, "neg": None, "edges": 1.0, "loss": 38.54}
    assert errors == {"pct": "ValueError: compute returned 38.54; a gated metric (gate=True) is a fraction in [0, 1] "
                             "(a percentage?)",
                      "neg": "ValueError: compute returned -0.5; a gated metric (gate=True) is a fraction in [0, 1]"}


def test_a_model_that_fails_on_channels_last_inputs_is_told_the_layout():
    import torch

    from harness.errors import StageError
    from harness.runner import check_model_output

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.MaxPool2d(2), torch.nn.Flatten(1),
                              torch.nn.LazyLinear(3))
    with pytest.raises(StageError) as raised:  # a dataset of (N, 16, 16, 1): read as 16 channels of 16 x 1
        check_model_output("net", net, torch.rand(2, 16, 16, 1), 3)
    assert "(2, 16, 16, 1) (N, *input_shape) (these look channels-last: a dataset gives N x C x H x W)" \
        in str(raised.value)
    with pytest.raises(StageError) as raised:  # channels-first and still failing: no such hint
        check_model_output("net", torch.nn.Conv2d(3, 4, 3), torch.rand(2, 1, 16, 16), 3)
    assert "channels-last" not in str(raised.value)


def test_a_job_timeout_where_there_is_no_interval_timer_is_refused_not_ignored(monkeypatch):
    """On Windows (no signal.setitimer) --job-timeout did nothing, and nothing said so."""
    import signal

    from harness.errors import HarnessError
    from harness.runner import RunOptions, validate_options

    validate_options(RunOptions(job_timeout=5))  # here (POSIX): fine
    monkeypatch.delattr(signal, "setitimer")
    with pytest.raises(HarnessError, match=r"--job-timeout needs an interval timer \(signal.setitimer\)"):
        validate_options(RunOptions(job_timeout=5))
    validate_options(RunOptions())  # without it: nothing to refuse


@pytest.mark.parametrize("options, said", [({"device": "gpu"}, "--device must be one of auto, cpu, cuda, not 'gpu'"),
                                           ({"device": "CPU"}, "--device must be one of auto, cpu, cuda, not 'CPU'"),
                                           ({"amp": "bf17"}, "--amp must be one of bf16, fp16, fp32, not 'bf17'")])
def test_a_device_or_amp_the_cli_would_refuse_is_refused_from_python_too(options, said):
    """harness.api.run(device="gpu") failed inside every job with torch's error, and amp="bf17" trained in
    float32 recording "bf17" as asked for: click's choices guarded the CLI only."""
    from harness.errors import HarnessError
    from harness.runner import RunOptions, validate_options

    with pytest.raises(HarnessError, match=f"^{re.escape(said)}$"):
        validate_options(RunOptions(**options))
    for fine in ({"device": "cuda"}, {"device": "auto", "amp": "bf16"}, {"amp": "fp16"}, {"amp": None}):
        validate_options(RunOptions(**fine))


def test_the_clis_device_amp_and_exporter_choices_are_the_ones_the_run_checks():
    """The CLI spells its choices out (its start imports no runner); the run's own checks hold the same."""
    from harness.cli import main
    from harness.export import EXPORTERS
    from harness.runner import AMP_CHOICES, DEVICES

    choices = {p.name: tuple(p.type.choices) for p in main.commands["run"].params if hasattr(p.type, "choices")}
    assert (choices["device"], choices["amp"], choices["exporter"]) == (DEVICES, AMP_CHOICES, EXPORTERS)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_run_folder_that_stops_taking_files_mid_job_exits_74_and_resumes(tmp_path):
    """A full disk (here: a file-size limit) at a job's weights or export failed that job as if the model
    were broken (exit 1), and left a truncated weights file no row listed."""
    import resource
    import signal

    def small_files():  # every file this process writes stops at 150 kB: results.json fits, a model does not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    # the ultra-light CNN's files fit; the MLP's weights (900 kB) do not: the disk fills at the second job
    args = [sys.executable, "-m", "harness", "run", "--models", "mnist-ultralight-cnn,mnist-mlp", "--datasets",
            "synthetic", "--epochs", "1", "--max-train-samples", "128", "--max-test-samples", "64", "--batch-sizes",
            "1", "--quick", "--cold-runs", "0", "--no-torch-latency", "--device", "cpu", "--out", str(tmp_path),
            "--run-id", "a", "--no-progress"]
    full = subprocess.run(args, capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert full.returncode == 74 and "Traceback" not in full.stderr, full.stderr[-2000:]
    said = full.stderr.strip().splitlines()[-1]
    assert said.startswith(f"harness: error: cannot write {tmp_path / 'a' / 'weights' / 'mnist-mlp'}") and \
        said.endswith(f"continue with: harness run --resume --run-id a --out {tmp_path}"), said
    # the finished job's table is printed (it was not: a CI log kept nothing of the job that did finish)
    table = [line.split() for line in full.stdout.splitlines() if line.startswith("mnist-")]
    assert [(row[0], "ok" in row) for row in table] == [("mnist-ultralight-cnn", True)], full.stdout
    run = tmp_path / "a"
    data = json.loads((run / "results.json").read_text())
    assert [(j["id"], j["status"]) for j in data["jobs"]] == [("mnist-ultralight-cnn@synthetic", "ok")]  # no job
    assert data["interrupted"] is True  # blamed for the disk, and the run says it stopped short
    listed = {data["jobs"][0]["onnx"]["path"], data["jobs"][0]["train"]["weights"]}
    assert {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and p.parent.name in ("onnx", "weights")
            } == listed  # nothing half-written
    again = run_cli("run", "--resume", "--run-id", "a", "--out", str(tmp_path), "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert [j["status"] for j in json.loads((run / "results.json").read_text())["jobs"]] == ["ok", "ok"]


def test_a_storage_failure_is_found_under_the_exceptions_that_carry_it():
    import errno

    from harness.errors import storage_failure

    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("export failed") from exc
    except RuntimeError as wrapped:
        assert storage_failure(wrapped) is full
    assert storage_failure(OSError(errno.ENOENT, "gone")) is None and storage_failure(ValueError("x")) is None
    # a folder made immutable (chattr +i) refuses with EPERM: the disk's doing, not the model's (was exit 1)
    immutable = OSError(errno.EPERM, "Operation not permitted")
    assert storage_failure(immutable) is immutable


@pytest.mark.skipif(sys.platform == "win32", reason="the locale's file-name encoding is a POSIX matter")
def test_a_non_ascii_run_folder_under_a_non_utf8_locale(tmp_path):
    """Without Python's UTF-8 mode the path is a str with surrogates, which onnx's checker and ONNX
    Runtime's session refused: every job failed at 'check' as if its export were broken."""
    import os

    out = tmp_path / "lc_\u00fc"
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "LANG": "C"}
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1",
                     "--max-train-samples", "64", "--max-test-samples", "32", "--batch-sizes", "1", "--quick",
                     "--cold-runs", "0", "--no-torch-latency", "--device", "cpu", "--out", str(out), "--run-id", "a",
                     "--no-progress", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [j["status"] for j in json.loads((out / "a" / "results.json").read_text())["jobs"]] == ["ok"]


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_rebuild_leaves_the_pictures_of_a_plots_folder_linked_elsewhere(tmp_path):
    from pathlib import Path

    from harness.report import write_reports

    results = json.loads((Path(__file__).parent / "fixtures" / "report_run" / "results.json").read_text())
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "holiday.png").write_bytes(b"\x89PNG mine")
    run = tmp_path / "run"
    run.mkdir()
    (run / "plots").symlink_to(pictures, target_is_directory=True)  # a user's choice of where the figures go
    write_reports(run, results)
    assert (pictures / "holiday.png").read_bytes() == b"\x89PNG mine"  # not taken for a stale plot
    assert (pictures / "accuracy_vs_latency.png").is_file()  # the figures still go where the link says
    # in the run's own plots/ folder a stale figure goes, and a link there goes as a link only
    (run / "plots").unlink()
    (run / "plots").mkdir()
    (run / "plots" / "old.png").write_bytes(b"\x89PNG stale")
    (run / "plots" / "linked.png").symlink_to(pictures / "holiday.png")
    write_reports(run, results)
    assert not (run / "plots" / "old.png").exists() and not (run / "plots" / "linked.png").exists()
    assert (pictures / "holiday.png").read_bytes() == b"\x89PNG mine"


def test_a_stored_sweep_is_held_to_the_config_files_grid_limit():
    """--like and --resume took a results.json's sweep as it was: a fork's artifact planned 200,001 jobs,
    where a --config grid stops at MAX_GRID."""
    from harness.config import MAX_GRID
    from harness.errors import HarnessError
    from harness.runner import RunOptions, validate_options

    validate_options(RunOptions(sweep=[{"seed": i} for i in range(MAX_GRID)]))
    with pytest.raises(HarnessError, match=f"the sweep has {MAX_GRID + 1} points \\(more than {MAX_GRID}\\)"):
        validate_options(RunOptions(sweep=[{"seed": i} for i in range(MAX_GRID + 1)]))


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="--job-timeout's timer is POSIX")
def test_job_timeout_gives_the_callers_own_timer_back():
    """A notebook's own 600 s interval timer read (0.0, 0.0) after a run with job_timeout=: cancelled."""
    import signal

    from harness.runner import time_limit

    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 600, 5)
    try:
        with time_limit(30):
            assert 29 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30  # the job's, meanwhile
        left, interval = signal.getitimer(signal.ITIMER_REAL)
        assert 590 < left <= 600 and interval == 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_run_without_quantized_variants_leaves_onnx_runtimes_quantizer_unloaded():
    """The quantizer was preloaded for every run, and ONNX Runtime's transformers package it loads puts its
    own folder on sys.path: a notebook's later `import benchmark` silently got ONNX Runtime's script."""
    import subprocess
    import sys

    script = ("import sys\nfrom harness.runner import preload_job_modules\n"
              "preload_job_modules(None, ['fp32', 'ort-opt'])\n"
              "print('onnxruntime.quantization' in sys.modules, any('transformers' in p for p in sys.path))\n"
              "preload_job_modules(None, ['int8-dynamic'])\n"
              "print('onnxruntime.quantization' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False", "True"], done.stdout

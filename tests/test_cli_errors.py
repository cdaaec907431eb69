"""Bad input: exit status 2, one line on stderr naming the problem, no traceback."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, write_run

from harness.errors import HarnessError


def _assert_usage_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message_lines = [line for line in result.stderr.splitlines()
                     if line.strip() and not line.startswith(("Usage:", "Try "))]
    assert len(message_lines) == 1, result.stderr
    for needle in needles:
        assert needle in message_lines[0], message_lines[0]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["run", "--models", "mnist-cnnn", "--datasets", "synthetic"], ["unknown model 'mnist-cnnn'", "mnist-cnn"]),
        (["run", "--datasets", "synthetc"], ["unknown dataset 'synthetc'", "synthetic"]),
        (["run", "--plugins", "nosuchplugin"], ["unknown plugin 'nosuchplugin'"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "0"], ["--epochs"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "abc"], ["--epochs"]),
        (["run", "--batch-sizes", "1,-4"], ["--batch-sizes", "must be at least 1 (got -4)"]),
        (["bench", "x.onnx", "--threads", "0"], ["--threads", "thread counts must be at least 1 (got 0)"]),
        (["run", "--size-budget", "12 bananas"], ["--size-budget", "unknown unit 'bananas'"]),
        (["run", "--max-accuracy-drop", "-1"], ["--max-accuracy-drop"]),
        (["run", "--warmup-steps", "-1"], ["--warmup-steps"]),
        (["report", "r", "x/../r"], ["x/../r is given twice (as r)"]),
        (["report", "r", "--size-budget", "64", "KiB"], ["KiB: no such run folder", "'64 KiB'"]),
        (["report", "r", "--activation-budget", "-1"], ["--activation-budget", "'-1' is not a size"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--data-dir", "/no/such/dir"], ["--data-dir"]),
        (["run", "--config", "/no/such/config.toml"], ["/no/such/config.toml"]),
        (["bench", "/no/such/model.onnx"], ["no such file"]),
        (["report", "/no/such/run"], ["/no/such/run: no such run folder"]),
        (["compare", "/no/such/run", "b"], ["/no/such/run: no such run folder"]),
        pytest.param(["bench", "/dev/null"], ["/dev/null is not a regular file"],
                     marks=pytest.mark.skipif(sys.platform == "win32", reason="no /dev/null on Windows")),
        (["list", "widgets"], ["widgets"]),
        (["run", "--models", "cnn3d-sequential", "--datasets", "synthetic"], ["no job to run"]),
        (["run", "--plugins", "cnn3d,datasets", "--datasets", "synthetic"],
         ["no job to run", "synthetic 1x28x28", "cnn3d-resnet takes 1xDxHxW volumes"]),
        (["run", "--plugins", "mnist-cnns"], ["no job to run", "register no dataset"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--providers", "cpu,foo"],
         ["unknown ONNX Runtime provider", "foo"]),
        # nan and inf pass range checks (or switch them off) and then broke writing results.json
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--latency-budget-ms", "nan"],
         ["--latency-budget-ms", "not a finite number"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--lr", "inf"], ["--lr", "not a finite number"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--job-timeout", "inf"], ["--job-timeout"]),
        (["compare", "a", "b", "--fail-on-regression", "nan"], ["--fail-on-regression", "not a finite number"]),
        (["bench", "x.onnx", "--min-time", "inf"], ["--min-time", "not a finite number"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--cold-budget-ms", "0"],
         ["--cold-budget-ms", "0 is not in the range x>0"]),
        (["compare", "a", "b", "--max-accuracy-drop", "200"], ["--max-accuracy-drop", "0<=x<=100"]),
        (["report", "r", "--cold-budget-ms", "-2"], ["--cold-budget-ms"]),
        (["report", "r", "--sort", "speed"], ["--sort", "'speed' is not one of", "'p50'"]),
        (["report", "r", "--top", "0"], ["--top", "0 is not in the range x>=1"]),
        (["run", "--memory-budget", "lots"], ["--memory-budget", "'lots' is not a size"]),
        # fp16 autocast is CUDA-only: on a CPU it used to train in float32 without a word
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--device", "cpu", "--amp", "fp16"],
         ["--amp fp16 runs on CUDA only", "--amp bf16"]),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needles):
    _assert_usage_error(run_cli(*args, timeout=120), *needles)


def test_an_unknown_tracker_in_the_environment_is_one_line(tmp_path):
    import os

    env = {**os.environ, "HARNESS_TRACK": "nosuch"}  # the trackers plugin's hook had warned of it first
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--out", str(tmp_path), env=env)
    _assert_usage_error(result, "$HARNESS_TRACK: unknown tracker 'nosuch'; known: mlflow, tensorboard")
    given = run_cli("run", "--track", "nosuch", "--models", "mnist-mlp", "--out", str(tmp_path), env=env)
    _assert_usage_error(given, "--track: unknown tracker 'nosuch'")  # the option names it, not the variable


def test_a_joined_report_folder_given_as_a_run_says_what_it_is(tmp_path):
    (tmp_path / "joined").mkdir()
    (tmp_path / "joined" / "report.md").write_text("# joined\n")
    _assert_usage_error(run_cli("report", str(tmp_path / "joined")), "looks like a joined report",
                        "give the run folders")


def test_a_folder_inside_a_run_names_the_run(tmp_path):
    from harness.results import load_results

    run = tmp_path / "run1"
    (run / "onnx").mkdir(parents=True)
    (run / "results.json").write_text("{}")
    with pytest.raises(HarnessError, match=f"no results.json in {run / 'onnx'}: it is inside the run folder {run}; "
                                           "give that$"):
        load_results(run / "onnx")
    with pytest.raises(HarnessError, match=f"no results.json in {tmp_path / 'elsewhere'}$"):
        (tmp_path / "elsewhere").mkdir()
        load_results(tmp_path / "elsewhere")


def test_bench_json_given_to_report_or_compare_says_what_it_is(tmp_path):
    """It was "does not look like harness results (no 'jobs' list)": true, and no help to someone holding it."""
    from harness.results import load_results

    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"model": "m.onnx", "bytes": 10, "latency": [], "cold_start": None}))
    with pytest.raises(HarnessError, match=r"bench.json is the output of harness bench --json \(one ONNX "
                                           r"file's latency rows\), not a run's results.json: report and compare"
                                           r" read the run folders harness run writes$"):
        load_results(bench)
    bench.write_text(json.dumps({"model": "m.onnx"}))  # anything else: as before
    with pytest.raises(HarnessError, match=r"does not look like harness results \(no 'jobs' list\)$"):
        load_results(bench)


def test_a_low_accuracy_floor_is_warned_of_once(tmp_path):
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples",
                     "64", "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency",
                     "--exporter", "torchscript", "--accuracy-floor", "5", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("--accuracy-floor 5 is read as a percentage: 5 %") == 1, result.stderr
    from harness.edge import floor_warning

    assert "read as a fraction: 100 %" in floor_warning(1) and floor_warning(0.99) is None


def test_out_pointing_at_a_file_is_refused(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--out", str(target))
    _assert_usage_error(result, str(target))


def test_corrupt_onnx_file_for_bench(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    _assert_usage_error(run_cli("bench", str(bad)), "bad.onnx")


def test_malformed_config_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("epochs = [unclosed\n")
    _assert_usage_error(run_cli("run", "--config", str(config)), "malformed")


@pytest.mark.parametrize("args", [["--debug", "run", "--models", "nope"], ["run", "--models", "nope", "--debug"],
                                  ["bench", "--debug", "/no/such.onnx"]])
def test_debug_shows_the_traceback_and_keeps_the_usage_status(args):
    result = run_cli(*args)  # anywhere on the line: added at the end of a command that just failed
    assert result.returncode == 2 and "Traceback" in result.stderr, result.stderr[-1000:]
    assert result.stderr.strip().splitlines()[-1].startswith("harness: error: ")


def test_report_out_that_is_a_file_is_a_usage_error(tmp_path):
    from conftest import write_run

    fixture = json.loads((Path(__file__).parent / "fixtures" / "report_run" / "results.json").read_text())
    runs = [write_run(tmp_path / name, {**fixture, "run_id": name}) for name in ("a", "b")]
    target = tmp_path / "a-file"
    target.write_text("x")
    for out in (target, target / "sub"):
        result = run_cli("report", *map(str, runs), "--out", str(out))  # warnings first: the runs' ONNX files
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines()[-1] == f"harness: error: --out {out} is not a folder (it, or a " \
                                                         "folder above it, is a file)"


def test_debug_keeps_the_exporter_libraries_debug_logs_out():
    code = ("import logging, sys\n"
            "from harness.cli import CHATTY_LIBRARIES, main\n"
            "main(['--debug', 'list', 'metrics'], standalone_mode=False)\n"
            "print(logging.getLogger('harness.runner').getEffectiveLevel(), "
            "{logging.getLogger(n).getEffectiveLevel() for n in CHATTY_LIBRARIES}, 'onnxscript' in CHATTY_LIBRARIES)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{logging.DEBUG} {{{logging.WARNING}}} True"


def test_python_dash_m_and_version():
    result = run_cli("--version")
    assert result.returncode == 0 and "harness" in result.stdout


@pytest.mark.parametrize(
    "setting, needles",
    [
        ('batch_sizes = ["a"]', ["batch_sizes", "'a'"]),
        ("batch_sizes = [0]", ["batch_sizes"]),
        ("epoch = 3", ["unknown setting 'epoch'", "did you mean: epochs?"]),
        # a value the run's own checks refuse is named as the file's setting, not as a flag nobody typed
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\nepochs = 0', ["c.toml: epochs must be at least 1"]),
        ('device = "tpu"', ["device", "'tpu'"]),
        ('profile = "cloud"', ["profile", "'cloud'"]),
        ('amp = "fp8"', ["amp", "'fp8'"]),
        ("lr = -1", ["lr"]),
        ("lr = inf", ["lr: inf is not a finite number"]),  # not "must be positive"
        ("latency_budget_ms = nan", ["latency_budget_ms"]),
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\ncold_budget_ms = -5', ["c.toml: cold_budget_ms must be", "positive"]),
        ('cold_budget_ms = "fast"', ["c.toml: cold_budget_ms must be a number, not a string"]),
        ('memory_budget = "4 apples"', ["memory_budget:", "unknown unit 'apples'"]),
        ('size_budget = "64 apples"', ["size_budget:", "unknown unit 'apples'"]),
        ("activation_budget = 0", ["activation_budget:", "at least one byte"]),
        ("size_budget = true", ["size_budget", "boolean"]),
        ("epochs = 2.5", ["c.toml: epochs must be a whole number, not a number"]),
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\nbogus = [1]', ["c.toml: sweep key 'bogus'"]),
        ("max_accuracy_drop = 200", ["max_accuracy_drop", "200"]),
        ('providers = [""]', ["providers"]),
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\nbatchsize = [16, 64]', ["'batchsize'", "batch_size"]),
        ('models = ["mnist-enhanced-20k"]\ndatasets = ["synthetic"]\n[sweep]\nnum_classes = [5]', ["'num_classes'"]),
        # every model selected, mnist-fast's build among them takes **kwargs: that reads no key
        ('datasets = ["synthetic"]\n[sweep]\nbogus = [1, 2]', ["'bogus'", "**kwargs does not count"]),
        ('datasets = ["synthetic"]\n[sweep]\nmodels = ["mnist-mlp", "mnist-cnn"]', ["'models'", "run option"]),
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\nlr = [0.1, nan]', ["sweep.lr", "not a finite"]),
        # values no job could train with: refused before any job runs, not failed one job at a time
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\nbatch_size = [0]', ["batch_size = 0", "at least 1"]),
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\nlr = [-1]', ["lr = -1", "positive"]),
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\nepochs = ["x"]', ["epochs = 'x'"]),
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\nseed = ["a"]', ["seed = 'a'", "whole number"]),
        ('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\noptimizer = ["adamw9"]',
         ["optimizer = 'adamw9'", "sgd, adam, adamw"]),
        # which of the two won depended on the order of the file's keys; the warning blamed the command line
        ('epochs = 1\n[sweep]\nepochs = [0, 1]', ["c.toml: epochs is set both as an option and in [sweep]"]),
        ('[sweep]\nseed = [0, 0]', ["c.toml: sweep.seed lists 0 twice"]),  # ran once, silently
        ("models = []", ["c.toml: models: is an empty list"]),  # not "is not a list of names"
        ('models = ["mnist-mpl"]', ["c.toml: models: unknown model 'mnist-mpl'; did you mean: mnist-mlp"]),
        ('variants = ["int9"]', ["c.toml: variants has unknown variant(s) int9"]),
        ('models = ["mnist-mlp"]\n[sweep]\nlr = [true]', ["sweep value lr = true:"]),  # the file's spelling
        ('[sweep]\nlr = [1, 1.0]', ["sweep.lr lists 1.0 twice (as 1 too)"]),  # one training, two labels
        ('[sweep]\nbatch-size = [8]\nbatch_size = [16]', ["sweep.batch-size and sweep.batch_size are the same"]),
    ],
)
def test_config_file_values_get_the_command_line_checks(tmp_path, setting, needles):
    config = tmp_path / "c.toml"
    config.write_text(setting + "\n")
    _assert_usage_error(run_cli("run", "--config", str(config), "--out", str(tmp_path / "out")), *needles)


@pytest.mark.parametrize("args, needles", [(["--lr", "-1"], ["--lr"]), (["--onnx-tolerance", "0"], ["--onnx-tolerance"])])
def test_non_positive_rates_are_usage_errors(tmp_path, args, needles):
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", *args, "--out", str(tmp_path))
    _assert_usage_error(result, *needles)


@pytest.mark.parametrize("setting, flag, needles", [
    ('device = "tpu"', ["--device", "cpu"], ["c.toml: device", "'tpu'"]),
    ("epochs = 0", ["--epochs", "1"], ["c.toml: epochs must be at least 1, not 0"]),
])
def test_a_bad_config_value_is_refused_even_where_the_command_line_overrides_it(tmp_path, setting, flag, needles):
    # the file is wrong whichever wins: running would leave it to fail the day the flag is dropped
    config = tmp_path / "c.toml"
    config.write_text('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n' + setting + "\n")
    _assert_usage_error(run_cli("run", "--config", str(config), *flag, "--out", str(tmp_path / "out")), *needles)


def test_config_keys_reach_the_run_options(tmp_path):
    from harness.cli import _merge_config, _run_options, run_command

    config = tmp_path / "c.toml"
    config.write_text('compile = true\nonnx_tolerance = 1e-3\nbatch_sizes = [1, 8]\ndevice = "cpu"\n')
    ctx = run_command.make_context("run", ["--config", str(config), "--threads", "2"])
    values, explicit, from_config = _merge_config(ctx, dict(ctx.params))
    options = _run_options(values, explicit)
    assert options.compile is True and options.onnx_tolerance == 1e-3
    assert options.batch_sizes == [1, 8] and options.device == "cpu" and options.threads == [2]
    assert set(from_config) == {"compile_model", "onnx_tolerance", "batch_sizes", "device"}  # not threads
    assert set(from_config.values()) == {config}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_a_config_saved_by_windows_powershell_is_read(tmp_path, encoding):
    """PowerShell 5.1's '>' writes UTF-16 with a BOM (a traceback, exit 1), its UTF-8 a BOM ('Invalid
    statement (at line 1, column 1)')."""
    from harness.config import load_config

    config = tmp_path / "c.toml"
    config.write_bytes('epochs = 2\nseed = 7\n'.encode(encoding))
    assert load_config(config) == {"epochs": 2, "seed": 7}


def test_a_config_in_another_encoding_is_one_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_bytes('# r\xe9glages\nepochs = 2\n'.encode("cp1252"))
    result = run_cli("run", "--config", str(config), "--models", "mnist-mlp", "--datasets", "synthetic")
    _assert_usage_error(result, f"config {config} is not UTF-8 text (byte 3: b'\\xe9'); save it as UTF-8")


def test_a_toml_config_is_read_with_tomli_where_tomllib_is_missing(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib: the tomli package (a dependency there) reads the file instead."""
    import types

    from harness.config import load_config

    calls = []

    def loads(text):
        calls.append(text)
        return {"epochs": 3}

    monkeypatch.setitem(sys.modules, "tomllib", None)  # import tomllib -> ImportError
    monkeypatch.setitem(sys.modules, "tomli", types.SimpleNamespace(loads=loads))
    config = tmp_path / "c.toml"
    config.write_text("epochs = 3\n")
    assert load_config(config) == {"epochs": 3}
    assert calls == ["epochs = 3\n"]


def test_no_toml_parser_is_said_so_not_blamed_on_the_file(tmp_path, monkeypatch):
    from harness.config import load_config

    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    config = tmp_path / "c.toml"
    config.write_text("epochs = 3\n")
    with pytest.raises(HarnessError) as error:
        load_config(config)
    message = str(error.value)
    assert "malformed" not in message
    assert "tomli" in message and 'pip install "tomli>=1.1"' in message
    # A JSON config needs no TOML parser.
    (tmp_path / "c.json").write_text('{"epochs": 3}')
    assert load_config(tmp_path / "c.json") == {"epochs": 3}


def test_providers_none_of_which_can_run_here_are_a_usage_error(tmp_path):
    from harness.latency import provider_skip_reason

    if provider_skip_reason("cuda") is None:
        pytest.skip("ONNX Runtime's CUDA provider runs on this machine")
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--providers", "cuda",
                     "--out", str(tmp_path))
    _assert_usage_error(result, "none of --providers can run here", "CUDAExecutionProvider")
    assert not (tmp_path).exists() or not any(tmp_path.iterdir())  # refused before a run folder


def test_a_provider_that_cannot_run_beside_one_that_can_is_a_warning(tmp_path):
    import json

    from harness.latency import provider_skip_reason

    if provider_skip_reason("cuda") is None:
        pytest.skip("ONNX Runtime's CUDA provider runs on this machine")
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--providers", "cpu,cuda",
                     "--epochs", "1", "--max-train-samples", "64", "--max-test-samples", "64", "--device", "cpu",
                     "--batch-sizes", "1", "--quick", "--no-torch-latency", "--exporter", "torchscript",
                     "--no-progress", "--out", str(tmp_path), "--run-id", "r")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "harness: warning: CUDAExecutionProvider" in result.stderr and "measuring only CPUExecutionProvider" in result.stderr
    (job,) = json.loads((tmp_path / "r" / "results.json").read_text())["jobs"]
    assert {row["provider"] for row in job["latency"]} == {"CPUExecutionProvider"}
    assert any("CUDAExecutionProvider" in line for line in job["latency_skipped"])


def test_a_named_dataset_that_is_not_there_is_a_usage_error_before_any_job(tmp_path):
    import os

    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, HARNESS_OFFLINE="1", HARNESS_CACHE_DIR=str(tmp_path / "cache"))
    result = run_cli("run", "--models", "mnist-ultralight-cnn", "--datasets", "synthetic,mnist", "--data-dir", str(empty),
                     "--epochs", "1", "--out", str(tmp_path / "out"), env=env)
    _assert_usage_error(result, "mnist", str(empty))
    assert not (tmp_path / "out").exists()  # refused before a run folder, so before any training


def test_a_harness_offline_value_that_is_neither_on_nor_off_is_a_usage_error(tmp_path):
    import os

    env = dict(os.environ, HARNESS_OFFLINE="maybe", HARNESS_CACHE_DIR=str(tmp_path / "cache"))
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--out", str(tmp_path / "out"), env=env)
    _assert_usage_error(result, "HARNESS_OFFLINE must be", "'maybe'")
    assert not (tmp_path / "out").exists()


def test_harness_offline_reads_the_usual_spellings_and_counts_an_unknown_one_as_on(monkeypatch):
    from harness.cache import offline, offline_problem

    for value, expected in [("1", True), (" Yes", True), ("on", True), ("0", False), ("off", False), ("", False),
                            ("maybe", True)]:
        monkeypatch.setenv("HARNESS_OFFLINE", value)
        assert offline() is expected, value
        assert (offline_problem() is None) is (value != "maybe"), value
    monkeypatch.delenv("HARNESS_OFFLINE")
    assert offline() is False and offline_problem() is None


def test_more_threads_than_cores_is_a_warning_and_the_edge_table_names_the_count(tmp_path):
    """The "most threads" edge table stops at the usable cores: it ranked models at a count beyond them."""
    from harness.latency import usable_cores

    cores = usable_cores()
    over = cores + 1
    counts = ",".join(map(str, sorted({1, cores, over})))
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--threads", counts,
                     "--epochs", "1", "--max-train-samples", "64", "--max-test-samples", "64", "--device", "cpu",
                     "--batch-sizes", "1", "--quick", "--no-torch-latency", "--exporter", "torchscript",
                     "--no-spin", "--no-iobinding", "--no-progress", "--out", str(tmp_path), "--run-id", "r")
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("harness: warning: --threads")]
    assert len(warnings) == 1 and f"{over}" in warnings[0] and f"{over - 1} cores" in warnings[0], result.stderr
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"{over} threads" not in report and "all cores" not in report
    # --no-spin --no-iobinding: every ONNX Runtime row timed so, and the run's latency settings say it
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    rows = data["jobs"][0]["latency"]
    assert rows and {(r["allow_spinning"], r["iobinding"]) for r in rows} == {(False, False)}
    assert (data["config"]["latency"]["spinning"], data["config"]["latency"]["iobinding"]) == (False, False)
    if cores > 1:
        assert f"batch 1, {cores} threads, the most threads measured within the run's {cores} usable cores" in report
    else:  # 1 is the most within the cores: the 1-thread table says it all
        assert "the most threads measured" not in report


def test_sweep_values_training_accepts_are_not_refused():
    from harness.runner import check_sweep_keys

    # any case of an optimizer name, and "" to sweep augmentation off, train fine
    check_sweep_keys([], [{"optimizer": "SGD"}, {"optimizer": "adamw"}, {"augment": ""}, {"augment": "rotate7"},
                          {"label_smoothing": 1.0}, {"lr": 1}, {"val_size": 0.1}])


def test_a_swept_constant_schedule_holds_the_swept_lr_throughout():
    """Seed 003's single-LR runs beside its four-phase schedule: schedule = ["recipe", "constant"]."""
    from types import SimpleNamespace

    import harness_plugins.mnist_20k as plugin

    from harness.errors import HarnessError
    from harness.runner import RunOptions, check_sweep_keys, job_recipe

    spec = next(m for m in plugin.harness_models() if m.name == "mnist-enhanced-20k")
    sweep = [{"lr": 0.001, "schedule": "recipe"}, {"lr": 0.001, "schedule": "constant"}]
    check_sweep_keys([spec], sweep)
    scaled, constant = (job_recipe(SimpleNamespace(model=spec, point=p), RunOptions()) for p in sweep)
    assert [scaled.schedule.lr_at(e, scaled.lr) for e in (0, 5, 12)] == pytest.approx([0.001, 0.001 / 3, 0.0001])
    assert [constant.schedule.lr_at(e, constant.lr) for e in (0, 5, 12, 19)] == pytest.approx([0.001] * 4)
    flat = job_recipe(SimpleNamespace(model=spec, point={"schedule": "constant"}), RunOptions(lr=0.002))
    assert flat.schedule.kind == "constant" and flat.lr == 0.002  # --lr with a swept constant schedule
    with pytest.raises(HarnessError, match="schedule = 'step'.*'recipe' or 'constant'"):
        check_sweep_keys([spec], [{"schedule": "step"}])


def test_a_sweep_key_counts_only_when_some_selected_build_names_it():
    from harness import ModelSpec, lazy
    from harness.errors import HarnessError
    from harness.runner import check_sweep_keys

    def named(num_classes, input_shape, dropout=0.1, **kwargs):
        return None

    def open_ended(num_classes, input_shape, **kwargs):
        return None

    check_sweep_keys([ModelSpec("a", named), ModelSpec("b", open_ended)], [{"dropout": 0.2}])
    with pytest.raises(HarnessError, match="'dropout'.*kwargs does not count"):
        check_sweep_keys([ModelSpec("b", open_ended)], [{"dropout": 0.2}])
    # a lazy build is read through to its target: mnist-fast's takes width (and **kwargs)
    check_sweep_keys([ModelSpec("f", lazy("harness_plugins.fast:build_fast"))], [{"width": 16}])
    with pytest.raises(HarnessError, match="'widht'.*; did you mean: width\\?$"):
        check_sweep_keys([ModelSpec("f", lazy("harness_plugins.fast:build_fast"))], [{"widht": 16}])
    with pytest.raises(HarnessError, match="; did you mean: dropout\\?$"):  # a build argument, as a recipe field
        check_sweep_keys([ModelSpec("a", named)], [{"droput": 0.2}])


def test_a_sweep_key_is_dropped_from_the_jobs_of_models_that_do_not_take_it():
    from harness.config import sweep_points
    from harness.registry import build_registry
    from harness.runner import DatasetCache, RunOptions, plan_jobs

    sweep = sweep_points({"width": [8, 16], "batch-size": [32]})  # dashes, as the run options take them
    options = RunOptions(models=["mnist-fast", "mnist-mlp"], datasets=["synthetic"], sweep=sweep)
    plan = plan_jobs(build_registry(), options, DatasetCache(None, 0))
    # mnist-mlp has no width: it trained twice alike, labelled width=8 and width=16
    assert sorted(job.id for job in plan.jobs) == sorted(
        ["mnist-fast@synthetic#batch_size=32,width=8", "mnist-fast@synthetic#batch_size=32,width=16",
         "mnist-mlp@synthetic#batch_size=32"])


def test_models_no_chosen_dataset_fits_are_named_not_dropped_silently(tmp_path):
    from harness.registry import build_registry
    from harness.runner import DatasetCache, RunOptions, plan_jobs

    plan = plan_jobs(build_registry(), RunOptions(datasets=["synthetic"]), DatasetCache(None, 0))
    assert sorted(plan.unmatched) == [("cnn3d-resnet", "1xDxHxW volumes"), ("cnn3d-sequential", "1x16x16x16 volumes")]
    assert not plan_jobs(build_registry(), RunOptions(datasets=["synthetic", "synthetic3d"]),
                         DatasetCache(None, 0)).unmatched
    # an explicit pair is a skipped row with its reason instead
    explicit = plan_jobs(build_registry(), RunOptions(models=["mnist-mlp", "cnn3d-resnet"], datasets=["synthetic"]),
                         DatasetCache(None, 0))
    assert not explicit.unmatched and [s[0] for s in explicit.skipped] == ["cnn3d-resnet"]
    # said on stderr by a run, which goes on with the rest
    result = run_cli("run", "--plugins", "cnn3d,fast,datasets", "--datasets", "synthetic", "--epochs", "1",
                     "--max-train-samples", "64", "--max-test-samples", "32", "--device", "cpu", "--batch-sizes", "1",
                     "--quick", "--cold-runs", "0", "--no-torch-latency", "--exporter", "torchscript",
                     "--out", str(tmp_path), "--run-id", "r")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 model(s) fit none of the datasets chosen and are left out (they take 1x16x16x16 volumes: " \
           "cnn3d-sequential; 1xDxHxW volumes: cnn3d-resnet)" in result.stderr
    # and kept with the run, for a log without progress lines: results.json and the reports
    left_out = {"cnn3d-sequential": "1x16x16x16 volumes", "cnn3d-resnet": "1xDxHxW volumes"}
    assert json.loads((tmp_path / "r" / "results.json").read_text())["unmatched_models"] == left_out
    said = ("2 model(s) fit none of the datasets chosen and were left out: cnn3d-sequential (takes 1x16x16x16 "
            "volumes); cnn3d-resnet (takes 1xDxHxW volumes)")
    assert said in (tmp_path / "r" / "report.md").read_text()
    # an explicit pair that cannot run is a skipped row, and its reason is said under the table as a failure's
    # is (a resume: nothing is left to train)
    result = run_cli("run", "--resume", "--run-id", "r", "--out", str(tmp_path), "--models", "mnist-fast,cnn3d-resnet",
                     "--datasets", "synthetic", "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("1 job(s) skipped (--models and --datasets named pairs that cannot run):\n"
            "  cnn3d-resnet@synthetic: plan: cnn3d-resnet takes 1xDxHxW volumes, not 1x28x28") in result.stderr


def test_inputs_of_every_rank_are_named_for_what_they_are():
    """A rank-1 or rank-2 model read 'takes CxDxHxW rank-1 inputs' in errors and 'CxDxHxW' in harness list."""
    from harness import ModelSpec
    from harness.runner import _refusal

    def spec(rank, **fields):
        return ModelSpec("m", print, input_rank=rank, **fields)

    assert _refusal(spec(1), (1, 28, 28)) == "m takes F feature vectors, not 1x28x28"
    assert _refusal(spec(2, spatial_shape=(128,)), (1, 64)) == "m takes Cx128 sequences, not 1x64"
    assert _refusal(spec(3, input_channels=3), (1, 5)) == "m takes 3xHxW images, not 1x5"
    assert _refusal(spec(4), (1, 5)) == "m takes CxDxHxW volumes, not 1x5"
    # features are not channels: a 3-feature model is not fed one feature three times
    assert spec(1, input_channels=3).model_input_shape((1,)) is None
    assert spec(2, input_channels=3).model_input_shape((1, 64)) == (3, 64)


def test_an_option_given_on_the_command_line_replaces_the_configs_sweep_over_it(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\nbatch_size = [32, 64]\nseed = [0]\n')
    result = run_cli("run", "--config", str(config), "--batch-size", "16", "--epochs", "1", "--max-train-samples",
                     "64", "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency", "--cold-runs", "0",
                     "--exporter", "torchscript", "--out", str(tmp_path / "out"), "--run-id", "r")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--batch-size on the command line replaces the sweep over batch_size in" in result.stderr
    data = json.loads((tmp_path / "out" / "r" / "results.json").read_text())
    assert data["config"]["sweep"] == [{"seed": 0}]
    assert [j["train"]["recipe"]["batch_size"] for j in data["jobs"]] == [16]
    changes = data["jobs"][0]["train"]["recipe_changes"]  # what the reports judge comparability by
    assert changes["batch_size"] == [64, 16] and changes["epochs"] == [5, 1] and "lr" not in changes


def test_a_run_id_that_is_no_plain_folder_name_is_said_and_named_by_its_folder(tmp_path, caplog):
    from harness.errors import HarnessError
    from harness.results import RunFolder

    with caplog.at_level(logging.WARNING, logger="harness.results"):
        folder = RunFolder.create(tmp_path, "a:b", {}, {})
    folder.unlock()
    assert folder.path.name == "a_b" and "the run folder is 'a_b'" in caplog.text
    with pytest.raises(HarnessError, match=r"run 'a:b' \(folder 'a_b'\) already exists"):
        RunFolder.create(tmp_path, "a:b", {}, {})


def test_seed_on_the_command_line_keeps_a_swept_seed():
    from pathlib import Path

    from harness.cli import _sweep_without

    points = [{"seed": 0, "lr": 0.1}, {"seed": 1, "lr": 0.1}]
    # --seed picks the data and subsets, a swept seed what training draws: both stay
    assert _sweep_without(points, {"seed"}, Path("c.toml")) == points
    assert _sweep_without(points, {"seed", "lr"}, Path("c.toml")) == [{"seed": 0}, {"seed": 1}]


def test_data_dir_is_stored_resolved_with_home_expanded(tmp_path, monkeypatch):
    from harness.cli import _merge_config, _run_options, run_command

    (tmp_path / "home" / "data").mkdir(parents=True)
    (tmp_path / "work" / "gz").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    config = tmp_path / "c.toml"
    config.write_text('data_dir = "~/data"\n')  # a config file has no shell to expand "~"
    for args, expected in ((["--config", str(config)], tmp_path / "home" / "data"),
                           (["--data-dir", "gz"], tmp_path / "work" / "gz")):  # a resume from elsewhere finds it
        ctx = run_command.make_context("run", args)
        values, explicit, _ = _merge_config(ctx, dict(ctx.params))
        assert _run_options(values, explicit).data_dir == expected.resolve()


def test_a_taken_run_id_is_refused_before_the_data_is_loaded(tmp_path):
    (tmp_path / "out" / "r").mkdir(parents=True)
    (tmp_path / "out" / "r" / "results.json").write_text("{}")
    # mnist from a folder that does not hold it: the run id is checked first, so that is not the error
    (tmp_path / "empty").mkdir()
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "mnist", "--data-dir", str(tmp_path / "empty"),
                     "--out", str(tmp_path / "out"), "--run-id", "r")
    _assert_usage_error(result, "run 'r' already exists in")


def test_the_command_list_in_help_is_not_cut_off():
    import os

    result = run_cli("--help", env={**os.environ, "COLUMNS": "80"})
    commands = result.stdout.split("Commands:")[1].strip().splitlines()
    assert len(commands) >= 7 and not [line for line in commands if line.endswith("...")], commands
    assert "HARNESS_TRACK" in result.stdout and "RAY_ADDRESS" in result.stdout


def test_resume_with_profile_edge_brings_what_the_profile_implies(tmp_path):
    """--resume --profile edge recorded profile: edge but kept batch sizes [1, 32], 1 thread and fp32 only:
    the edge table had nothing to choose from."""
    from harness.cli import _merge_config, _run_options, run_command
    from harness.edge import edge_profile
    from harness.runner import RunOptions

    stored = RunOptions(models=["mnist-mlp"], datasets=["synthetic"], out=tmp_path, run_id="r")
    write_run(tmp_path / "r", {"schema_version": 1, "run_id": "r", "config": stored.to_config(), "jobs": []})
    ctx = run_command.make_context("run", ["--resume", "--run-id", "r", "--out", str(tmp_path), "--profile", "edge"])
    values, explicit, _ = _merge_config(ctx, dict(ctx.params))
    options = _run_options(values, explicit)
    profile = edge_profile()
    assert options.profile == "edge" and options.models == ["mnist-mlp"]
    assert (options.batch_sizes, options.threads, options.variants) == (
        profile["batch_sizes"], profile["threads"], profile["variants"])


def test_the_run_imports_leave_the_garbage_collector_on_with_their_objects_frozen():
    """The collector sits out the heavy imports and the interpreter's shutdown (~1.3 s a run), and must be
    back on for the run itself."""
    code = ("import gc; from harness.cli import _import_run_modules; _import_run_modules(); "
            "print(gc.isenabled(), gc.get_freeze_count() > 10000)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.split() == ["True", "True"], result.stderr[-2000:]


def test_a_path_that_cannot_be_read_is_one_line_not_a_traceback(tmp_path):
    too_long = tmp_path / ("L" * 300)  # stat() fails with ENAMETOOLONG, which Path.exists() raises
    for args in (["report", str(too_long)], ["compare", str(too_long), str(too_long)],
                 ["bench", f"{too_long}.onnx"]):
        result = run_cli(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr[-1500:])
        assert result.stderr.strip().splitlines()[-1].startswith("harness: error: File name too long"), args


@pytest.mark.skipif(sys.platform == "win32", reason="closes the child's stdout with preexec_fn, which is POSIX")
def test_standard_output_closed_full_or_left_by_its_reader(tmp_path):
    """The run's figures are on disk: a closed or full stdout is a warning (exit 0), not a traceback and 1;
    a reader that leaves (`| head -1`) ends a listing as it ends grep, 141."""
    import os

    from conftest import write_run

    fixture = json.loads((Path(__file__).parent / "fixtures" / "report_run" / "results.json").read_text())
    run = write_run(tmp_path / "r", fixture)
    command = [sys.executable, "-m", "harness", "report", str(run)]
    closed = subprocess.run(command, stdout=None, stderr=subprocess.PIPE, text=True, timeout=300,
                            preexec_fn=lambda: os.close(1))
    assert closed.returncode == 0 and "Traceback" not in closed.stderr, closed.stderr[-1500:]
    assert "the table could not be printed (standard output is closed); report.md holds it" in closed.stderr
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            result = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
        assert result.returncode in (0, 74) and "Traceback" not in result.stderr, result.stderr[-1500:]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before the first line
    try:
        listing = subprocess.run([sys.executable, "-m", "harness", "list", "models"], stdout=write_end,
                                 stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert listing.returncode == 141 and listing.stderr == "", listing.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_the_groups_own_help_and_version_into_a_full_stdout_are_one_line():
    """`harness --help` and `--version` are written while the arguments are parsed, before any command: a
    full standard output was a traceback and status 1 there, where every command's own help said 74."""
    for args in (["--help"], ["--version"], ["run", "--help"]):
        with open("/dev/full", "w") as full:
            done = subprocess.run([sys.executable, "-m", "harness", *args], stdout=full, stderr=subprocess.PIPE,
                                  text=True, timeout=120)
        assert done.returncode == 74 and "Traceback" not in done.stderr, (args, done.stderr[-1500:])
        assert done.stderr.strip() == "harness: error: No space left on device", args


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_or_closed_standard_error_neither_stops_a_run_nor_changes_its_status(tmp_path):
    """Progress lines into a full stderr ended the run before its first job (exit 1, no job); the error line
    of bad input into a closed one turned status 2 into 1."""
    import os

    args = [sys.executable, "-m", "harness", "run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs",
            "1", "--max-train-samples", "64", "--max-test-samples", "64", "--batch-sizes", "1", "--quick",
            "--cold-runs", "0", "--no-torch-latency", "--exporter", "torchscript", "--out", str(tmp_path),
            "--run-id", "r"]
    with open("/dev/full", "w") as full:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=full, text=True, timeout=600)
    assert done.returncode == 0 and "mnist-mlp" in done.stdout
    assert [j["status"] for j in json.loads((tmp_path / "r" / "results.json").read_text())["jobs"]] == ["ok"]
    for stderr in ("full", "closed"):
        with open("/dev/full", "w") as full:
            bad = subprocess.run([sys.executable, "-m", "harness", "run", "--models", "no-such-model"],
                                 stdout=subprocess.PIPE, stderr=full if stderr == "full" else None, timeout=120,
                                 preexec_fn=None if stderr == "full" else (lambda: os.close(2)))
        assert bad.returncode == 2, stderr


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")
def test_a_results_json_that_is_no_regular_file_or_is_gone_is_said_for_what_it_is(tmp_path):
    import os

    from conftest import write_run

    from harness.results import RunFolder

    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "results.json")  # reading it waited forever; /dev/zero behind a link filled the memory
    result = run_cli("report", str(fifo), timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == f"harness: error: {fifo / 'results.json'} is not a " \
                                                               "regular file", result.stderr
    config = tmp_path / "c.toml"
    config.symlink_to("/dev/zero")
    result = run_cli("run", "--config", str(config), timeout=120)
    assert result.returncode == 2 and "is not a regular file" in result.stderr, result.stderr[-1000:]
    gone = write_run(tmp_path / "gone", {})  # a run folder (its lock file) whose results.json was removed
    (gone / RunFolder.LOCK_FILE).write_text("1")
    (gone / "report.md").write_text("# run\n")
    (gone / "results.json").unlink()
    result = run_cli("report", str(gone))
    assert result.returncode == 2 and "the run was stopped before its first write, or the file was removed" \
        in result.stderr and "joined report" not in result.stderr, result.stderr


def test_a_console_that_cannot_write_a_name_gets_a_question_mark_not_a_lost_table(tmp_path):
    """A Windows console (cp1252) and a model named with a character it lacks: the table still prints."""
    import os

    fixture = Path(__file__).parent / "fixtures" / "compare" / "base" / "results.json"
    data = json.loads(fixture.read_text())
    for job in data["jobs"]:
        job["model"] = job["model"].replace("mnist", "mnist\u2192")
        job["id"] = job["id"].replace("mnist", "mnist\u2192")
    run = write_run(tmp_path / "run", data)
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    result = subprocess.run([sys.executable, "-m", "harness", "report", str(run)], capture_output=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr.decode("cp1252", "replace")[-2000:]
    assert b"could not be printed" not in result.stderr
    assert b"mnist?-rough-cnn" in result.stdout  # the table, with '?' for what cp1252 lacks
    missing = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path / "n\u2192o")],
                             capture_output=True, env=env, timeout=120)
    assert missing.returncode == 2 and b"Traceback" not in missing.stderr  # standard error escapes it (\u2192)
    assert b": no such run folder" in missing.stderr


def test_a_library_that_cannot_load_is_one_line_naming_it(monkeypatch):
    """Under `ulimit -v` torch's import failed ('failed to map segment') as a 34-line traceback and exit 1."""
    import importlib

    from harness import cli
    from harness.errors import HarnessError

    real = importlib.import_module

    def refuse(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("libtorch_cpu.so: failed to map segment from shared object")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", refuse)
    with pytest.raises(HarnessError) as raised:
        cli._import_run_modules()
    assert str(raised.value).startswith("cannot load torch: ImportError: libtorch_cpu.so: failed to map segment")
    assert "ulimit -v" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="stands a POSIX signal in for Windows' SIGBREAK")
def test_ctrl_break_stops_a_run_as_sighup_does(monkeypatch):
    """Windows has no SIGHUP but SIGBREAK (Ctrl-Break, a CI runner's CTRL_BREAK_EVENT): unhandled, it ended a
    run at once with no reports written. Emulated here by a SIGBREAK that is SIGUSR2."""
    from harness.cli import _StopSignals

    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR2, raising=False)
    stop = _StopSignals()
    previous = stop.install()
    try:
        assert previous is not None and signal.SIGUSR2 in previous and signal.getsignal(signal.SIGUSR2) is stop
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGUSR2)
        assert stop.exit_code() == 128 + signal.SIGUSR2
    finally:
        for sig, handler in (previous or {}).items():
            signal.signal(sig, handler)


def test_the_provider_names_the_help_lists_are_those_the_run_takes():
    """The help listed cpu, cuda and tensorrt where coreml, dml and openvino were taken too."""
    from harness.ort import PROVIDER_SHORT_NAMES, SHORT_PROVIDERS

    listed = PROVIDER_SHORT_NAMES.split(", ")
    assert set(listed) <= set(SHORT_PROVIDERS)
    assert {SHORT_PROVIDERS[name] for name in listed} == set(SHORT_PROVIDERS.values())  # each provider once


@pytest.mark.parametrize("name, text, needle", [
    ("dash.toml", "max-train-samples = 0\nmax_train_samples = 256\n",
     "dash.toml: max-train-samples and max_train_samples are the same setting; keep one"),
    ("dup.json", '{"epochs": 0, "epochs": 5}', "'epochs' is given twice"),
    ("width.toml", '[sweep]\nwidth = [8, "8"]\n', "sweep.width lists 8 and '8', which name one job (width=8)"),
])
def test_a_setting_given_twice_in_one_file_is_refused_not_the_last_kept(tmp_path, name, text, needle):
    """The last spelling won without a word (the first, max-train-samples = 0, was never checked); two sweep
    values named alike made one job id, and only one of the points ran."""
    config = tmp_path / name
    config.write_text(text)
    _assert_usage_error(run_cli("run", "--config", str(config), "--out", str(tmp_path / "out")), needle)


@pytest.mark.parametrize("sweep, flag, needle", [
    ("max_train_samples = [128, 256]", ["--max-train-samples", "64"], "c.toml: sweep key 'max_train_samples' is a run option"),
    ("epochs = [1.0]", ["--epochs", "1"], "c.toml: sweep value epochs = 1.0: must be a whole number"),
])
def test_a_configs_sweep_is_checked_whole_before_the_command_line_replaces_part_of_it(tmp_path, sweep, flag, needle):
    """Refused alone, these ran with the flag (dropped from the grid first): a file that passes locally with
    a flag failed in CI without it."""
    config = tmp_path / "c.toml"
    config.write_text(f'models = ["mnist-mlp"]\ndatasets = ["synthetic"]\n[sweep]\n{sweep}\n')
    _assert_usage_error(run_cli("run", "--config", str(config), *flag, "--out", str(tmp_path / "out")), needle)


def test_a_setting_given_with_like_replaces_the_stored_sweep_over_it_and_resume_refuses_it(tmp_path):
    """`--like RUN --epochs 1` of a run that swept epochs recorded epochs = 1 while its #epochs=2 job trained 2
    epochs; a resume said 'the jobs still to run use them' and they did not."""
    config = tmp_path / "c.toml"
    config.write_text('models = ["mnist-mlp"]\ndatasets = ["synthetic"]\nmax-train-samples = 64\nmax-test-samples = 64\n'
                      'batch-sizes = [1]\nquick = true\ncold-runs = 0\nno-torch-latency = true\nexporter = "torchscript"\n'
                      '[sweep]\nepochs = [1, 2]\n')
    out = tmp_path / "out"
    first = run_cli("run", "--config", str(config), "--out", str(out), "--run-id", "s1", "--no-progress")
    assert first.returncode == 0, first.stderr[-2000:]
    like = run_cli("run", "--like", str(out / "s1"), "--epochs", "1", "--run-id", "again", "--no-progress")
    assert like.returncode == 0, like.stderr[-2000:]
    assert "epochs given replaces the sweep over epochs that s1 ran" in like.stderr
    data = json.loads((out / "again" / "results.json").read_text())
    assert data["config"]["epochs"] == 1 and data["config"]["sweep"] == [{}]
    assert [(j["id"], j["train"]["epochs"]) for j in data["jobs"]] == [("mnist-mlp@synthetic", 1)]
    _assert_usage_error(run_cli("run", "--resume", "--run-id", "s1", "--out", str(out), "--epochs", "1"),
                        "s1 sweeps epochs: its jobs are those sweep points")


def test_a_command_line_only_option_in_a_config_and_a_file_given_as_like_say_what_they_are(tmp_path):
    """`progress = false` got "did you mean: providers, profile?"; `--like a.toml` said "no results.json in ."."""
    config = tmp_path / "g.toml"
    config.write_text("progress = false\n")
    _assert_usage_error(run_cli("run", "--config", str(config)),
                        "g.toml: progress is a command-line option only (--no-progress)")
    _assert_usage_error(run_cli("run", "--like", str(config)), f"{config} is a file, not a run folder or its results.json")


def test_a_like_runs_quick_and_no_torch_latency_can_be_turned_off_on_the_command_line(tmp_path):
    """A --like (or --config) run's --quick, --no-torch-latency, --compile and --cuda-graphs had no flag to
    undo them: a --like of a --quick run could never be measured in full without editing a file."""
    out = tmp_path / "out"
    first = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples",
                    "64", "--max-test-samples", "64", "--batch-sizes", "1", "--quick", "--cold-runs", "0",
                    "--no-torch-latency", "--exporter", "torchscript", "--out", str(out), "--run-id", "a",
                    "--no-progress")
    assert first.returncode == 0, first.stderr[-2000:]
    # --no-quick gives the full settings, as --quick gives its own: a flag on top (--cold-runs) is given again
    again = run_cli("run", "--like", str(out / "a"), "--no-quick", "--torch-latency", "--cold-runs", "0", "--run-id",
                    "b", "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    from harness.latency import LatencyConfig

    quick, full = (json.loads((out / r / "results.json").read_text()) for r in "ab")
    assert quick["config"]["latency"]["min_time_s"] < LatencyConfig().min_time_s
    assert full["config"]["latency"]["min_time_s"] == LatencyConfig().min_time_s
    assert full["config"]["latency"]["cold_runs"] == 0
    assert full["config"]["torch_latency"] is True
    assert {r["runtime"] for r in full["jobs"][0]["latency"]} == {"onnxruntime", "torch"}

"""harness.api: a run from Python writes what ``harness run`` writes and hands it back, leaving the process as
it found it (logging, the global torch random state, signal handlers)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_run

from harness import api
from harness.errors import HarnessError

SMALL = dict(models="mnist-mlp", datasets="synthetic", epochs=1, max_train_samples=128, max_test_samples=64,
             device="cpu", batch_sizes=1, torch_latency=False, exporter="torchscript", quick=True, progress=False)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    import torch

    out = tmp_path_factory.mktemp("api")
    handlers = list(logging.getLogger().handlers)
    sigint = signal.getsignal(signal.SIGINT)
    torch.manual_seed(1234)
    expected = torch.rand(3)  # what the next draw is after this seed, with no run in between
    torch.manual_seed(1234)
    result = api.run(out=out, run_id="r", **SMALL)
    after = torch.rand(3)
    return result, {"handlers": handlers, "sigint": sigint, "expected": expected, "after": after}


def test_a_run_returns_the_run_folder_and_its_results(done):
    result, _ = done
    assert result.path.name == "r" and (result.path / "results.json").is_file()
    assert result.results == json.loads((result.path / "results.json").read_text())
    (job,) = result.jobs
    assert (job["model"], job["dataset"], job["status"]) == ("mnist-mlp", "synthetic", "ok")
    assert result.failed == []
    assert [row["batch_size"] for row in job["latency"]] == [1]  # one value for a list option
    for name in ("results.csv", "report.md", "report.html"):
        assert (result.path / name).is_file(), name
    assert "mnist-mlp" in result.table()
    assert api.load(result.path).results == result.results
    assert api.load(result.path / "results.json").path == result.path


def test_like_runs_a_stored_run_again_as_the_cli_flag_does(done, tmp_path):
    result, _ = done
    again = api.run(like=result.path, run_id="again", out=tmp_path, reports=False, progress=False)
    assert again.path == tmp_path / "again"  # out given: there, not beside the run
    (old,), (new,) = result.jobs, again.jobs
    assert (new["metrics"], new["data_sha256"]) == (old["metrics"], old["data_sha256"])
    assert {k for k, v in result.results["config"].items() if again.results["config"][k] != v} == {"run_id", "out"}
    with pytest.raises(HarnessError, match="give one of them"):
        api.run(like=result.path, resume=True)
    with pytest.raises(TypeError, match="like takes a run folder's path"):
        api.run(like=3)


def test_ctrl_c_while_the_reports_are_written_leaves_the_folder_unlocked_and_named(tmp_path, monkeypatch):
    """The interrupt's handler took the exception's run_folder (none: the jobs had ended) for the folder: the
    run it had was never unlocked, so a resume (from this process or another) was refused as "in use by
    another harness process" while a notebook kept the exception."""
    from harness import runner
    from harness.results import RunFolder

    def interrupted(folder, reporters):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_run_reports", interrupted)
    with pytest.raises(KeyboardInterrupt) as stopped:
        api.run(out=tmp_path, run_id="k", **SMALL)
    assert stopped.value.run_folder.path == tmp_path / "k"
    RunFolder.open(tmp_path / "k", lock=True).unlock()  # not held


def test_a_run_leaves_logging_signals_and_the_torch_random_state_as_they_were(done):
    import torch

    _, before = done
    assert logging.getLogger().handlers == before["handlers"]
    assert signal.getsignal(signal.SIGINT) == before["sigint"]
    assert torch.equal(before["after"], before["expected"])  # each job reseeds torch; the caller's draws go on


def test_rows_are_the_csv_rows_flat_per_job_variant_and_latency_row(done):
    import csv

    result, _ = done
    rows = result.rows()
    with open(result.path / "results.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(rows) == len(written) >= 1
    assert [(r["id"], r["variant"], r["runtime"], str(r["batch_size"])) for r in rows] == \
        [(w["id"], w["variant"], w["runtime"], w["batch_size"]) for w in written]
    (job,) = result.jobs
    fp32 = next(r for r in rows if r["variant"] == "fp32" and r["runtime"] == "onnxruntime")
    assert (fp32["onnx_bytes"], fp32["onnx_accuracy"]) == (job["onnx"]["bytes"], job["onnx"]["metrics"]["accuracy"])
    assert fp32["p50_ms"] == next(r["p50_ms"] for r in job["latency"] if r["runtime"] == "onnxruntime")


def test_compare_takes_run_folders_or_results(done, tmp_path):
    result, _ = done
    comparison = api.compare(result, result.path, threshold=5)
    assert [j["id"] for j in comparison["jobs"]] == [result.jobs[0]["id"]]
    assert comparison["regressions"] == []
    written = api.report(result.path)
    assert result.path / "report.md" in written


COMPARE_RUNS = Path(__file__).parent / "fixtures" / "compare"


def cli_compare_json(*args: str) -> tuple[dict, str]:
    """``harness compare ... --json``'s document and its stderr."""
    result = subprocess.run([sys.executable, "-m", "harness", "compare", *map(str, args), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout), result.stderr


def as_json(document: dict) -> dict:
    from harness.results import json_text

    return json.loads(json_text(document))


def test_compare_is_the_clis_json_with_its_incomplete_runs_and_warnings(tmp_path, caplog):
    """A NEW run that stopped before a planned job: the CLI's --json says so in ``incomplete`` and warns; the API
    gives the same document and says the same through the ``harness`` logger (no handler of its own)."""
    base = write_run(tmp_path / "base", json.loads((COMPARE_RUNS / "base" / "results.json").read_text()))
    cut = json.loads((COMPARE_RUNS / "same" / "results.json").read_text())
    cut.update(planned_jobs=[j["id"] for j in json.loads((base / "results.json").read_text())["jobs"]],
               interrupted=True)
    new = write_run(tmp_path / "new", cut)
    cli, stderr = cli_compare_json(base, new, "--fail-on-regression", "10")
    handlers = list(logging.getLogger().handlers)
    with caplog.at_level(logging.WARNING, logger="harness"):
        comparison = api.compare(str(base), api.load(new), threshold=10)
    assert logging.getLogger().handlers == handlers
    assert as_json(comparison) == cli
    assert comparison["incomplete"]["new"].startswith("was interrupted before 1 of its planned jobs")
    assert comparison["not_run"] == {"new": sorted(set(cut["planned_jobs"]) - {j["id"] for j in cut["jobs"]})}
    said = f"NEW ({new}) {comparison['incomplete']['new']}"
    assert f"harness: warning: {said}" in stderr
    assert [(r.name.split(".")[0], r.levelno, r.getMessage()) for r in caplog.records] == [
        ("harness", logging.WARNING, said)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="harness"):
        api.compare(base, base / "results.json")  # a folder and its results.json: the same run
    assert [r.getMessage() for r in caplog.records] == [f"BASE and NEW are the same run ({base}): every change is 0"]
    assert f"harness: warning: BASE and NEW are the same run ({base})" in cli_compare_json(base, base)[1]


def test_compare_takes_the_clis_other_gates_as_keywords():
    """--max-accuracy-drop, --threads, --batch-sizes and --per-seed: a notebook gates batch 1 on 1 thread as the
    README's CI advice does, and gets what the CLI gives."""
    base, new = COMPARE_RUNS / "base", COMPARE_RUNS / "regressed"  # b1 t1 p50 +40 %, an accuracy -3 points
    cli, _ = cli_compare_json(base, new, "--fail-on-regression", "10", "--max-accuracy-drop", "5",
                              "--threads", "1", "--batch-sizes", "32", "--per-seed")
    comparison = api.compare(base, new, threshold=10, max_accuracy_drop=5, threads=1, batch_sizes="32",
                             per_seed=True)
    assert as_json(comparison) == cli
    assert comparison["regressions"] == [] and comparison["accuracy_points"] == 5
    assert (comparison["gated_threads"], comparison["gated_batch_sizes"]) == ([1], [32])
    tight = api.compare(base, new, threshold=10, max_accuracy_drop=1, threads=[1], batch_sizes=(1,))
    assert [d["kind"] for d in tight["regression_details"]] == ["latency", "metric", "metric"]
    assert as_json(tight) == cli_compare_json(base, new, "--fail-on-regression", "10", "--max-accuracy-drop", "1",
                                              "--threads", "1", "--batch-sizes", "1")[0]


@pytest.mark.parametrize("keywords, error, message", [
    ({"threshold": -5}, HarnessError, "threshold must be >= 0"),
    ({"threshold": "10"}, TypeError, "threshold takes a number, not '10'"),
    ({"threshold": float("nan")}, HarnessError, "threshold must be a finite number"),
    ({"min_change_ms": -1}, HarnessError, "min_change_ms must be >= 0"),
    ({"min_change_ms": None}, TypeError, "min_change_ms takes a number"),
    ({"max_accuracy_drop": 101}, HarnessError, "max_accuracy_drop must be between 0 and 100"),
    ({"threads": 0}, HarnessError, "threads must be at least 1 (got 0)"),
    ({"threads": [1, "2"]}, TypeError, "threads takes a whole number"),
    ({"batch_sizes": "1,x"}, HarnessError, "batch_sizes: '1,x' is not a comma-separated list"),
    ({"batch_sizes": []}, HarnessError, "batch_sizes is empty"),
    ({"threads": 4}, HarnessError, "compare threads=4: BASE has no ONNX Runtime latency row at threads 4"),
    ({"per_seed": 1}, TypeError, "per_seed takes True or False"),
])
def test_compare_refuses_what_the_cli_refuses_naming_the_keyword(keywords, error, message):
    with pytest.raises(error) as raised:
        api.compare(COMPARE_RUNS / "base", COMPARE_RUNS / "regressed", **keywords)
    assert message in str(raised.value)
    if keywords == {"threshold": -5}:  # the CLI's own line names its flag, as before
        result = subprocess.run([sys.executable, "-m", "harness", "compare", str(COMPARE_RUNS / "base"),
                                 str(COMPARE_RUNS / "regressed"), "--fail-on-regression", "-5"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "--fail-on-regression must be >= 0" in result.stderr


def test_a_name_list_may_be_one_name_or_comma_separated():
    from harness.api import _options

    options = _options({"models": "a, b", "datasets": ("synthetic",), "plugins": "all", "threads": 2}, quick=False)
    assert (options.models, options.datasets, options.plugins, options.threads) == (["a", "b"], ["synthetic"], None,
                                                                                    [2])


def test_a_resumed_ray_run_asks_for_its_cluster_again(tmp_path):
    """--ray-address was not recorded: the resume hint's command sent the rest of a cluster's sweep to a new
    local Ray instance on the driver's machine. Taken from results.json, a fork's CI artifact chose the cluster
    a --resume or --like connected to (Ray Client unpickles what the server sends): it is asked for again.
    A resume with executor local leaves the cluster out."""
    from harness.api import _options
    from harness.results import RunFolder

    first = _options({"executor": "ray", "ray_address": "ray://head:10001", "jobs": 4, "models": "mnist-mlp",
                      "out": str(tmp_path), "run_id": "sweep"}, quick=False)
    assert first.to_config()["ray_address"] == "ray://head:10001" and first.to_config()["jobs"] == 4
    RunFolder.create(tmp_path, "sweep", {}, first.to_config()).save()
    for again in ({"resume": True, "out": str(tmp_path), "run_id": "sweep"}, {"like": str(tmp_path / "sweep")}):
        with pytest.raises(HarnessError, match=r"the run went to the Ray cluster at ray://head:10001, and a "
                                               r"results.json does not choose where this machine connects: give "
                                               r"the address again \(--ray-address ray://head:10001\)"):
            _options(again, quick=False)
    resumed = _options({"resume": True, "out": str(tmp_path), "run_id": "sweep", "ray_address": "ray://head:10001"},
                       quick=False)
    assert (resumed.executor, resumed.ray_address, resumed.jobs) == ("ray", "ray://head:10001", 4)
    other = _options({"resume": True, "out": str(tmp_path), "run_id": "sweep", "ray_address": "auto"}, quick=False)
    assert (other.ray_address, other.jobs) == ("auto", 4)  # given: on top
    here = _options({"resume": True, "out": str(tmp_path), "run_id": "sweep", "executor": "local"}, quick=False)
    assert (here.executor, here.ray_address, here.jobs) == ("local", None, None)
    with pytest.raises(HarnessError, match="ray_address and jobs need executor='ray'"):
        _options({"jobs": 2}, quick=False)


def test_a_number_list_may_be_comma_separated_too_and_bad_values_say_so_as_the_cli_does():
    """threads="1,2" raised "TypeError: threads is str, not a list", though a list "may be one value or 'a,b'";
    latency={"min_runs": 0} raised a bare ValueError, quick="yes" was taken as true."""
    import re

    from harness.api import _options
    from harness.errors import HarnessError

    options = _options({"threads": "1,2", "batch_sizes": " 1, 32", "no_channels_last": True}, quick=False)
    assert (options.threads, options.batch_sizes, options.channels_last) == ([1, 2], [1, 32], False)
    assert _options({"no_channels_last": False}, quick=False).channels_last is True
    for given, said in (({"threads": "1,x"}, "threads: '1,x' is not a comma-separated list of whole numbers"),
                        ({"batch_sizes": "0"}, "batch_sizes must be at least 1 (got 0)"),
                        ({"latency": {"min_runs": 0}}, "latency: min_runs and max_runs must be >= 1")):
        with pytest.raises(HarnessError, match=f"^{re.escape(said)}"):
            _options(given, quick=False)
    for given, said in ((dict(quick="yes"), "quick takes True or False, not 'yes'"),
                        (dict(no_progress=1), "no_progress takes True or False, not 1"),
                        (dict(reports=None), "reports takes True or False, not None"),
                        (dict(no_channels_last=True, channels_last=True), "got both no_channels_last and channels_last")):
        with pytest.raises(TypeError, match=re.escape(said)):
            api.run(models="mnist-mlp", **given)


def test_a_run_without_reports_still_answers_its_edge_question_and_ask_asks_it_again(tmp_path):
    """reports=False skipped the edge answer with the reports: done.edge was None and the README's
    done.edge["qualifying"] (the --edge-gate stand-in) raised TypeError."""
    done = api.run(out=tmp_path, run_id="e", reports=False, accuracy_floor=0.05, **SMALL)
    assert not (done.path / "report.md").exists()
    assert done.edge["question"] == "accuracy >= 0.05" and isinstance(done.edge["qualifying"], list)
    assert json.loads((done.path / "results.json").read_text())["edge"] == done.edge
    assert api.run(out=tmp_path, run_id="none", reports=False, **SMALL).edge is None  # no question asked
    # asked again from Python, as `harness report RUN --accuracy-floor ...` does; results.json unchanged
    assert done.ask() == done.edge and done.ask(accuracy_floor=0.05) == done.edge
    strict = done.ask(accuracy_floor=1.0, size_budget="1KiB")
    assert strict["qualifying"] == [] and strict["question"].startswith("accuracy >= 1")
    assert strict["size_budget_bytes"] == 1024 and done.edge["size_budget_bytes"] is None
    assert api.load(done.path).edge == done.edge
    with pytest.raises(HarnessError, match="--accuracy-floor must be"):
        done.ask(accuracy_floor=101)
    with pytest.raises(TypeError, match="unknown keyword"):
        done.ask(floor=0.9)
    with pytest.raises(TypeError, match="latency_budget_ms takes a number"):
        done.ask(latency_budget_ms="1ms")


def test_every_run_flag_is_a_keyword_or_says_what_to_do_instead():
    """A flag added to `harness run` without a keyword here fails this test (the README promises flag names)."""
    import dataclasses

    from harness.api import _FLAGS, _NOT_HERE
    from harness.cli import main
    from harness.runner import RunOptions

    taken = {f.name for f in dataclasses.fields(RunOptions)} | set(_FLAGS) | set(_NOT_HERE) | {
        "quick", "progress", "track"}  # run()'s own parameters
    flags = {max(p.opts, key=len).lstrip("-").replace("-", "_") for p in main.commands["run"].params if p.opts}
    negated = {name.lstrip("-").replace("-", "_") for p in main.commands["run"].params for name in p.secondary_opts}
    assert "no_progress" in negated and flags - taken == set() and negated - taken == set()


def test_flag_named_keywords_give_the_options_the_cli_gives(monkeypatch):
    from click.testing import CliRunner

    from harness import cli
    from harness.api import _options

    seen = {}
    original = cli._run_options

    def keep(values, explicit):  # the CLI's options, caught before it runs anything
        seen["options"] = original(values, explicit)
        raise SystemExit(0)

    monkeypatch.setattr(cli, "_run_options", keep)
    CliRunner().invoke(cli.main, ["run", "--quick", "--cold-runs", "0", "--size-budget", "256KiB",
                                  "--memory-budget", "4MiB", "--no-torch-latency", "--models", "mnist-mlp"])
    api = _options({"cold_runs": 0, "size_budget": "256KiB", "memory_budget": "4MiB", "no_torch_latency": True,
                    "models": "mnist-mlp"}, quick=True)
    assert api == seen["options"]
    assert (api.latency.cold_runs, api.size_budget_bytes, api.torch_latency) == (0, 256 * 1024, False)
    # how ONNX Runtime rows are timed: on top of --quick's settings, by flag or keyword alike
    CliRunner().invoke(cli.main, ["run", "--quick", "--no-spin", "--no-iobinding", "--models", "mnist-mlp"])
    api = _options({"no_spin": True, "iobinding": False, "models": "mnist-mlp"}, quick=True)
    assert api == seen["options"] and (api.latency.spinning, api.latency.iobinding) == (False, False)
    assert api.latency.min_runs == _options({"models": "mnist-mlp"}, quick=True).latency.min_runs
    with pytest.raises(TypeError, match="both spin and no_spin"):
        _options({"spin": True, "no_spin": True}, quick=False)


@pytest.mark.parametrize("options, message", [
    ({"model": "mnist-mlp"}, "unknown option\\(s\\) model"),
    ({"models": 3}, "models takes a name"),
    ({"models": ["mnist-mlp", 3]}, "models takes a name"),
    ({"epochs": "2"}, "epochs holds '2', not int"),
    ({"batch_sizes": [1, "32"]}, "batch_sizes holds '32'"),
    ({"latency": 3}, "latency takes a LatencyConfig"),
    ({"cold_runs": "1"}, "cold_runs takes a whole number"),
    ({"no_torch_latency": 1}, "no_torch_latency takes True or False"),
    ({"size_budget": "1KiB", "size_budget_bytes": 1024}, "both size_budget and size_budget_bytes"),
    ({"config": "harness.toml"}, "takes no config \\(read the file"),
    ({"edge_gate": True}, "takes no edge_gate"),
])
def test_a_wrong_option_is_a_type_error_naming_it(options, message, tmp_path):
    with pytest.raises(TypeError, match=message):
        api.run(out=tmp_path, **options)
    assert not any(tmp_path.iterdir())  # refused before any run folder


def test_an_unknown_model_or_a_bad_value_is_the_clis_one_line_error(tmp_path):
    with pytest.raises(HarnessError, match="unknown model 'mnist-mpl'; did you mean: mnist-mlp"):
        api.run(out=tmp_path, **{**SMALL, "models": "mnist-mpl"})
    with pytest.raises(HarnessError, match="epochs must be at least 1"):
        api.run(out=tmp_path, **{**SMALL, "epochs": 0})
    with pytest.raises(HarnessError, match="profile 'phone'"):
        api.run(out=tmp_path, **{**SMALL, "profile": "phone"})
    with pytest.raises(HarnessError, match="size_budget: '12 parsecs': unknown unit"):
        api.run(out=tmp_path, **{**SMALL, "size_budget": "12 parsecs"})
    with pytest.raises(HarnessError, match="ray_address and jobs need executor='ray'"):
        api.run(out=tmp_path, **{**SMALL, "jobs": 2})


def test_a_job_timeout_that_cannot_apply_off_the_main_thread_is_said(caplog):
    import threading

    from harness.runner import RunOptions, say_option_warnings

    said = []
    worker = threading.Thread(target=lambda: said.append(say_option_warnings(RunOptions(job_timeout=5))))
    worker.start()
    worker.join()
    assert said == [None] and "--job-timeout is not applied" in caplog.text
    caplog.clear()
    say_option_warnings(RunOptions(job_timeout=5))  # the main thread: applied, nothing to say
    say_option_warnings(RunOptions())
    assert "--job-timeout" not in caplog.text


def test_run_refuses_what_the_cli_refuses_and_takes_a_config_files_sweep_table(tmp_path):
    """api.run took lr=inf and latency_budget_ms=nan (results.json recorded null: the budget vanished), a
    keyword that the sweep also set (the sweep's point won, the keyword was recorded), and not the
    [sweep] table of a config file the README says to pass as keywords."""
    from harness.api import run
    from harness.errors import HarnessError

    tiny = dict(models="mnist-mlp", datasets="synthetic", max_train_samples=64, max_test_samples=64, batch_sizes=1,
                quick=True, cold_runs=0, no_torch_latency=True, exporter="torchscript", out=tmp_path,
                reports=False, progress=False)
    for bad, needle in ((dict(lr=float("inf")), "lr=inf is not a finite number"),
                        (dict(latency_budget_ms=float("nan")), "latency_budget_ms=nan is not a finite number"),
                        (dict(epochs=1, sweep=[{"epochs": 2}]), "epochs given both as a keyword and in sweep")):
        with pytest.raises(HarnessError, match=needle):
            run(**tiny, **bad)
    done = run(**tiny, epochs=1, sweep={"lr": [0.01, 0.02]})
    assert [j["id"] for j in done.results["jobs"]] == ["mnist-mlp@synthetic#lr=0.01", "mnist-mlp@synthetic#lr=0.02"]


def test_an_out_folder_under_home_is_home_not_a_folder_named_tilde(tmp_path, monkeypatch):
    from harness.api import _options

    monkeypatch.setenv("HOME", str(tmp_path))
    assert _options({"out": "~/runs"}, quick=False).out == tmp_path / "runs"


def test_no_quick_gives_the_full_latency_settings_over_a_liked_runs_quick_ones(tmp_path):
    import dataclasses


    from harness.api import _options
    from harness.latency import QUICK, LatencyConfig

    fixture = json.loads((Path(__file__).parent / "fixtures" / "report_run" / "results.json").read_text())
    fixture["config"]["latency"] = dataclasses.asdict(QUICK)
    run_dir = write_run(tmp_path / "quick", fixture)
    assert _options({"like": run_dir}, quick=False).latency == QUICK  # the run's own, as --like keeps them
    assert _options({"like": run_dir, "no_quick": True}, quick=False).latency == LatencyConfig()
    assert _options({"like": run_dir, "no_compile": True}, quick=False).compile is False
    with pytest.raises(TypeError, match="both quick and no_quick"):
        _options({"no_quick": True}, quick=True)

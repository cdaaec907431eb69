"""Durable progress: a run killed mid-way loses at most the job in progress; --resume finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import offline_cli_env, run_cli

RUN_ARGS = ["run", "--models", "demo-tiny,mnist-mlp", "--datasets", "demo-blobs,synthetic", "--epochs", "1",
            "--max-train-samples", "128", "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency",
            "--exporter", "torchscript"]


@pytest.fixture
def env(tmp_path):
    return offline_cli_env(tmp_path, "harness-demo-plugin", {"demo": "demo_plugin"})


def _start(env, out, run_id, hold=None, more=()):
    if hold is not None:  # the demo model's second build waits while this file exists
        hold.touch()
        env = {**env, "HARNESS_DEMO_HOLD": str(hold)}
    return subprocess.Popen([sys.executable, "-m", "harness", *RUN_ARGS, *more, "--out", str(out), "--run-id", run_id],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_jobs(results, n, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if results.exists():
            jobs = json.loads(results.read_text())["jobs"]  # must always parse: atomic writes
            if len(jobs) >= n:
                return jobs
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for a finished job")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_then_resume_repeats_no_finished_job(env, tmp_path):
    out = tmp_path / "out"
    results = out / "k" / "results.json"
    # Held at demo-tiny's second build, the run cannot finish all four jobs before the kill,
    # however the machine schedules the two processes.
    proc = _start(env, out, "k", hold=tmp_path / "hold")
    finished = _wait_for_jobs(results, 1, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()  # reaps it and closes the pipes
    before = {job["id"]: job for job in json.loads(results.read_text())["jobs"]}
    assert len(before) < 4 and all(job["status"] == "ok" for job in before.values())
    assert finished[0]["id"] in before

    # Only --resume and the run id: the stored options of the run are reused.
    resumed = run_cli("run", "--resume", "--run-id", "k", "--out", str(out), env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(before)} job(s) already finished" in resumed.stderr
    after = json.loads(results.read_text())["jobs"]
    ids = [job["id"] for job in after]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4  # every job exactly once
    for job in after:
        assert job["status"] == "ok"
        if job["id"] in before:
            assert job == before[job["id"]]  # not redone: identical row, same timings
    final = json.loads(results.read_text())
    assert final["resumed"] and "interrupted" not in final and sorted(final["planned_jobs"]) == sorted(ids)


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child process, which Windows cannot")
def test_sigint_stops_cleanly_and_says_how_to_resume(env, tmp_path):
    from conftest import SitePackages

    site = SitePackages(tmp_path / "site")
    site.install("harness-ending", {"ending": "ending_reporter"})  # a reporter every run has
    site.install("harness-jsonlog", {"jsonlog": "named_tracker"})  # a tracker --track names
    env = {**env, "ENDING_LOG": str(tmp_path / "calls.jsonl"), "JSONLOG_PATH": str(tmp_path / "jsonlog.jsonl")}
    out = tmp_path / "out"
    # still running when the signal comes; asking the edge question of the jobs that finish by then
    proc = _start(env, out, "c", hold=tmp_path / "hold", more=["--accuracy-floor", "1", "--track", "jsonlog"])
    done = {job["id"] for job in _wait_for_jobs(out / "c" / "results.json", 1, proc)}
    # what an unfinished job leaves when stopped mid-export: a half-written file no row lists
    from harness.results import job_file_stem

    planted = [out / "c" / "onnx" / f"{job_file_stem(f'{m}@{d}')}.onnx" for m in ("demo-tiny", "mnist-mlp")
               for d in ("demo-blobs", "synthetic") if f"{m}@{d}" not in done]
    for file in planted:
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(b"half an export")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "harness run --resume --run-id c" in stderr
    # the resume hint keeps the tracker, or the jobs still to run would be missing from it
    assert f"--out {out} --track jsonlog" in stderr, stderr[-2000:]
    assert "onnx acc" in stdout and all(job_id.split("@")[0] in stdout for job_id in done)  # the finished jobs' table
    data = json.loads((out / "c" / "results.json").read_text())
    assert data["jobs"] and all(job["status"] == "ok" for job in data["jobs"])
    assert planted and not any(file.exists() for file in planted)  # gone; the finished jobs' exports stay:
    assert all((out / "c" / job["onnx"]["path"]).is_file() for job in data["jobs"])
    # The report can tell an interrupted run from a finished one, and name the jobs that never ran.
    assert data["interrupted"] is True
    assert len(data["planned_jobs"]) == 4 and {job["id"] for job in data["jobs"]} < set(data["planned_jobs"])
    # its answer is in results.json, as a finished run's, and says it is of part of the run
    assert data["edge"]["jobs"] == len(data["jobs"]) and "; not judged, not run yet: " in data["edge"]["answer"]
    # the trackers were told the run ended (an MLflow run of the interrupted job was left RUNNING), and what
    # failed in that is kept
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls == ["run_started", ["run_ended", True]]
    assert data["reporter_errors"] == ["reporter 'ending' failed in run_ended: RuntimeError: the tracking server "
                                       "went away"]


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child process, which Windows cannot")
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])  # SIGHUP: the ssh session closed; it killed the run
def test_sigterm_exits_143_and_a_second_ctrl_c_still_gets_the_reports(env, tmp_path, stop):
    if not hasattr(signal, stop):
        pytest.skip(f"no {stop} here")
    out = tmp_path / "out"
    proc = _start(env, out, "t", hold=tmp_path / "hold")
    _wait_for_jobs(out / "t" / "results.json", 1, proc)
    proc.send_signal(getattr(signal, stop))
    # Impatient: Ctrl-C again and again while the interrupted run writes its reports.
    for _ in range(20):
        time.sleep(0.05)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, stop), stderr[-2000:]  # 143 or 129, not Ctrl-C's 130
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert "harness run --resume --run-id t" in stderr
    folder = out / "t"
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()
    assert json.loads((folder / "results.json").read_text())["interrupted"] is True


def test_a_second_process_on_a_running_run_is_refused(env, tmp_path):
    out, hold = tmp_path / "out", tmp_path / "hold"
    proc = _start(env, out, "busy", hold=hold)  # held at demo-tiny's second build: still running
    try:
        _wait_for_jobs(out / "busy" / "results.json", 1, proc)
        second = run_cli("run", "--resume", "--run-id", "busy", "--out", str(out), env=env)
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-2000:]
        assert f"in use by another harness process (pid {proc.pid})" in second.stderr
        # harness report would rewrite the reports of a half-done run under it: refused too
        report = run_cli("report", str(out / "busy"), env=env)
        assert report.returncode == 2 and f"still writing it (pid {proc.pid})" in report.stderr, report.stderr
        assert not (out / "busy" / "report.md").exists()
        # a report of the jobs so far, elsewhere, says the run is still going and what it has yet to run
        snapshot = run_cli("report", str(out / "busy"), "--out", str(tmp_path / "snap"), env=env)
        assert snapshot.returncode == 0, snapshot.stderr[-2000:]
        header = (tmp_path / "snap" / "report.md").read_text().splitlines()[2]
        assert f"planned not run yet (the run was still running, pid {proc.pid}, when this report was made)" in header
    finally:
        hold.unlink(missing_ok=True)
        proc.communicate(timeout=300)
    assert proc.returncode == 0
    # Once it has ended, the folder is free again (a killed run leaves no stale lock either: the
    # lock is the process's open file, gone with it).
    again = run_cli("run", "--resume", "--run-id", "busy", "--out", str(out), env=env)
    assert again.returncode == 0 and "4 job(s) already finished, 0 to run" in again.stderr, again.stderr[-2000:]


def test_resume_latest_run_without_run_id(env, tmp_path):
    out = tmp_path / "out"
    first = run_cli(*RUN_ARGS[:2], "demo-tiny", "--datasets", "demo-blobs", "--epochs", "1", "--device", "cpu",
                    "--batch-sizes", "1", "--quick", "--no-torch-latency", "--exporter", "torchscript",
                    "--out", str(out), "--run-id", "only", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_cli("run", "--resume", "--out", str(out), env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 job(s) already finished, 0 to run" in again.stderr
    assert len(json.loads((out / "only" / "results.json").read_text())["resumed"]) == 1


def test_resume_with_nothing_to_resume_is_a_usage_error_saying_what_to_do(tmp_path):
    result = run_cli("run", "--resume", "--run-id", "missing", "--out", str(tmp_path))
    assert result.returncode == 2 and "nothing to resume" in result.stderr and "Traceback" not in result.stderr
    assert "start it without --resume" in result.stderr
    (tmp_path / "emptied").mkdir()  # the folder is there, its results.json is not
    result = run_cli("run", "--resume", "--run-id", "emptied", "--out", str(tmp_path))
    assert result.returncode == 2 and "has no results.json" in result.stderr


@pytest.mark.slow  # 14-25 s of separate runs: kept out of CI's ten minutes (pytest -m slow)
def test_resuming_with_a_larger_sweep_records_the_new_grid(tmp_path):
    out, config = tmp_path / "out", tmp_path / "sweep.toml"
    args = ["run", "--config", str(config), "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1",
            "--max-train-samples", "64", "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency",
            "--exporter", "torchscript", "--out", str(out)]  # no --run-id: a generated one, found again
    config.write_text("[sweep]\nseed = [0]\n")
    assert run_cli(*args).returncode == 0
    (folder,) = out.iterdir()
    unchanged = run_cli("run", "--resume", "--out", str(out))
    assert unchanged.returncode == 0, unchanged.stderr[-2000:]
    data = json.loads((folder / "results.json").read_text())
    assert "config_before" not in data["resumed"][-1]  # nothing changed: nothing recorded
    # a new budget judges every job, the finished ones too: recorded and used, with no warning
    budget = run_cli("run", "--resume", "--out", str(out), "--size-budget", "1MiB", "--accuracy-floor", "0")
    assert budget.returncode == 0 and "changed options" not in budget.stderr, budget.stderr[-2000:]
    data = json.loads((folder / "results.json").read_text())
    assert data["config"]["size_budget_bytes"] == 1024 ** 2 and "config_before" in data["resumed"][-1]
    assert "\nedge (batch 1, 1 thread, CPU; accuracy >= 0, size <= 1.00 MiB): 1 of 1 job(s) qualify" in budget.stdout
    config.write_text("[sweep]\nseed = [0, 1]\n")
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    data = json.loads((folder / "results.json").read_text())
    assert [p["seed"] for p in data["config"]["sweep"]] == [0, 1] and len(data["jobs"]) == 2
    assert [p["seed"] for p in data["resumed"][-1]["config_before"]["sweep"]] == [0]
    warning = [line for line in resumed.stderr.splitlines() if "changed options" in line]
    assert len(warning) == 1 and "sweep" in warning[0] and "1 finished job(s) keep" in warning[0], resumed.stderr
    assert "changed options" not in unchanged.stderr
    config.write_text("[sweep]\nseed = [0, 1, 2]\n")
    colder = run_cli(*args, "--cold-runs", "2", "--resume")  # latency settings: what differs, not two dicts
    warning = [line for line in colder.stderr.splitlines() if "changed options" in line]
    assert len(warning) == 1 and "(latency.cold_runs 1 -> 2, sweep 2 -> 3 points)" in warning[0], colder.stderr


def test_a_resume_with_nothing_left_to_run_does_not_record_options_no_job_ran_with(tmp_path):
    out = tmp_path / "out"
    args = ["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples", "64",
            "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency", "--exporter", "torchscript",
            "--cold-runs", "0", "--out", str(out), "--run-id", "r"]
    assert run_cli(*args).returncode == 0
    path = out / "r" / "results.json"
    before = json.loads(path.read_text())["config"]
    again = run_cli(*args[:5], "--epochs", "2", *args[7:], "--threads", "2", "--accuracy-floor", "0.5", "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to resume in r: the job(s) these options select have all finished, so the changed options " \
           "(epochs 1 -> 2, threads [1] -> [2]) are not recorded" in again.stderr
    config = json.loads(path.read_text())["config"]
    assert config == {**before, "accuracy_floor": 0.5}  # the edge question is re-asked; epochs 2 never ran
    # a copy of the run folder resumed under its own name takes that name as its run id
    import shutil

    shutil.copytree(out / "r", out / "copy")
    copied = run_cli(*args[:-1], "copy", "--resume")
    assert copied.returncode == 0, copied.stderr[-2000:]
    data = json.loads((out / "copy" / "results.json").read_text())
    assert data["run_id"] == "copy" and data["resumed"][-1]["run_id_before"] == "r"
    assert json.loads(path.read_text())["run_id"] == "r"


@pytest.mark.slow  # 14-25 s of separate runs: kept out of CI's ten minutes (pytest -m slow)
def test_resuming_a_run_whose_finished_jobs_trained_in_another_precision_warns(tmp_path):
    out, config = tmp_path / "out", tmp_path / "sweep.toml"
    args = ["run", "--config", str(config), "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1",
            "--max-train-samples", "64", "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency",
            "--exporter", "torchscript", "--amp", "bf16", "--out", str(out), "--run-id", "r"]
    config.write_text("[sweep]\nseed = [0, 1]\n")
    assert run_cli(*args).returncode == 0
    results = out / "r" / "results.json"
    data = json.loads(results.read_text())
    assert [j["train"]["amp"] for j in data["jobs"]] == ["bf16", "bf16"]
    # As an older harness left it: --amp bf16 on the CPU trained in float32, and one job is still to run.
    data["jobs"][0]["train"]["amp"] = None
    data["jobs"].pop()
    results.write_text(json.dumps(data))
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    warning = [line for line in resumed.stderr.splitlines() if "mixed precision" in line]
    assert len(warning) == 1 and "1 trained in fp32" in warning[0] and "train in bf16" in warning[0], resumed.stderr
    assert "changed options" not in resumed.stderr
    # --amp fp32 resumes a bf16 run in float32 (there was no way back to the default)
    data = json.loads(results.read_text())
    data["jobs"].pop()
    results.write_text(json.dumps(data))
    back = run_cli(*args, "--resume", "--amp", "fp32")  # the last --amp given wins
    assert back.returncode == 0, back.stderr[-2000:]
    data = json.loads(results.read_text())
    assert data["config"]["amp"] is None and data["jobs"][-1]["train"]["amp"] is None
    assert "amp 'bf16' -> None" in back.stderr


def test_mixed_precision_warning_names_what_each_side_ran():
    from harness.runner import mixed_precision_warning

    def job(amp, status="ok"):
        return {"status": status, "train": {"amp": amp}}

    assert mixed_precision_warning([job("bf16"), job("bf16")], "bf16", "cpu") is None
    assert mixed_precision_warning([job(None), job(None, "failed")], None, "cuda") is None
    # fp16 is CUDA-only: resumed on a CPU, the jobs to run train in fp32 like the third finished one.
    text = mixed_precision_warning([job("fp16"), job("fp16"), job(None)], "fp16", "cpu")
    assert "of the finished jobs, 2 trained in fp16; the jobs still to run train in fp32 on cpu" in text
    text = mixed_precision_warning([job("fp16"), job(None)], "bf16", "cuda:0")
    assert "1 trained in fp16, 1 trained in fp32;" in text and "train in bf16 on cuda:0" in text
    assert mixed_precision_warning([{"status": "skipped", "train": None}], "bf16", "cpu") is None
    # The oldest records kept the request in "amp" (no "amp_requested"): on a CPU that was fp32 training.
    oldest = {"status": "ok", "train": {"amp": "bf16", "device": "cpu"}}
    assert "1 trained in fp32" in mixed_precision_warning([oldest], "bf16", "cpu")
    assert mixed_precision_warning([{**oldest, "train": {"amp": "bf16", "device": "cuda:0"}}], "bf16", "cuda") is None


def _damaged(tmp_path, edit):
    """A copy of the report fixture's run, edited by ``edit(data)``, as run folder ``tmp_path/r/d``."""
    from fixtures.shared import load_report_run

    data = load_report_run()
    edit(data)
    folder = tmp_path / "r" / "d"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def _set(path: str, value):
    def edit(data):
        keys = path.split(".")
        target = data
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[keys[-1] if not isinstance(target, list) else int(keys[-1])] = value
    return edit


@pytest.mark.parametrize("edit, needle", [
    (_set("jobs.0", "oops"), "job 1 is str, not an object"),
    (_set("jobs.0.onnx", "model.onnx"), "onnx is str, not an object"),
    (_set("jobs.0.latency.0.p50_ms", "fast"), "latency p50_ms is str, not a number"),
    (_set("jobs.0.metrics.accuracy", "0.9"), "metrics accuracy is str, not a number"),
    (_set("jobs.0.status", "weird"), "status 'weird' is none of ok, failed, skipped"),
    (_set("config", "x"), "config is str, not an object"),
    (_set("environment", []), "environment is list, not an object"),
    (_set("jobs.0.latency.0.provider", ["CPU"]), "latency provider is list, not a string"),
    (_set("jobs.0.train.history", {}), "train.history is dict, not a list"),
    (_set("jobs.0.variants.0.variant", {"a": 1}), "variant 1's name is dict, not a string"),
    (_set("jobs.0.variants.0.latency_skipped", "fp16"), "latency_skipped is not a list"),
    (_set("planned_jobs", [{"id": "x"}]), "planned_jobs is not a list of job ids"),
])
def test_a_hand_edited_results_json_is_one_line_naming_the_field(tmp_path, edit, needle):
    folder = _damaged(tmp_path, edit)
    for args in (["report", str(folder)], ["compare", str(folder), str(folder)],
                 ["run", "--resume", "--run-id", "d", "--out", str(folder.parent)]):
        result = run_cli(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr[-1500:])
        assert "was edited or damaged" in result.stderr and needle in result.stderr, (args, result.stderr)


@pytest.mark.parametrize("edit, needle", [
    (_set("config", None), "records no run options"),
    (_set("config.models", "mnist-mlp"), "config.models is str, not a list"),
    (_set("config.epochs", "one"), "config.epochs holds 'one', not int"),
    (_set("config.latency", {"min_runs": "x"}), "config.latency:"),
])
def test_resume_refuses_stored_options_it_cannot_trust_rather_than_widening_the_run(tmp_path, edit, needle):
    folder = _damaged(tmp_path, edit)
    result = run_cli("run", "--resume", "--run-id", "d", "--out", str(folder.parent))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1500:]
    assert needle in result.stderr, result.stderr
    assert "cannot resume" in result.stderr or "start a new run" in result.stderr, result.stderr


def test_two_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    import harness.results as results

    monkeypatch.setattr(results, "new_run_id", lambda: "20261130-120000")  # both in the same second
    first, second, third = (results.RunFolder.create(tmp_path, None, {}, {}) for _ in range(3))
    assert [f.path.name for f in (first, second, third)] == ["20261130-120000", "20261130-120000-2",
                                                             "20261130-120000-3"]
    with pytest.raises(results.HarnessError, match="already exists"):  # an id the user chose is kept as given
        results.RunFolder.create(tmp_path, "20261130-120000", {}, {})
    # a run that has taken the next name but not yet written its results.json: the next free name, not an error
    (tmp_path / "20261130-120000-4").mkdir()
    holder = results.RunFolder(tmp_path / "20261130-120000-4", {}).lock()
    assert results.RunFolder.create(tmp_path, None, {}, {}).path.name == "20261130-120000-5"
    with pytest.raises(results.RunInUseError):  # ... while a chosen id in use is refused
        results.RunFolder.create(tmp_path, "20261130-120000-4", {}, {})
    holder.unlock()
    # "": no choice made; the name the holder left without a results.json is free again
    assert results.RunFolder.create(tmp_path, "", {}, {}).path.name == "20261130-120000-4"


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--out", str(blocker / "sub"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1500:]
    assert "cannot make the run folder" in result.stderr


def test_results_json_that_cannot_be_written_says_so_and_how_to_continue(tmp_path, monkeypatch):
    import harness.results as results

    folder = results.RunFolder.create(tmp_path, "full", {}, {"models": ["m"]})
    folder.record({"id": "a@b", "model": "a", "dataset": "b", "status": "ok"})

    def full(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results, "atomic_write_text", full)
    with pytest.raises(results.StorageError) as raised:  # exit status 74: the disk, not the user's input
        folder.record({"id": "c@b", "model": "c", "dataset": "b", "status": "ok"})
    message = str(raised.value)
    assert "No space left on device; it keeps the jobs written before: make room, then continue with" in message
    assert "--resume --run-id full" in message and raised.value.exit_code == 74
    assert [job["id"] for job in results.load_results(folder.path)["jobs"]] == ["a@b"]  # the last good write

    def read_only(path, text):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(results, "atomic_write_text", read_only)
    with pytest.raises(results.StorageError, match="Read-only file system; .*: make the folder writable, then"):
        folder.record({"id": "c@b", "model": "c", "dataset": "b", "status": "ok"})


TINY_RUN_CALL = ("cli.main(['run', '--models', 'mnist-mlp', '--datasets', 'synthetic', '--epochs', '1', "
                 "'--max-train-samples', '64', '--device', 'cpu', '--batch-sizes', '1', '--quick', "
                 "'--no-torch-latency', '--cold-runs', '0', '--exporter', 'torchscript', '--out', 'out', "
                 "'--run-id', 'r'])\n")
"""The last line of a ``python -c`` script: one small run into ``out/r``, after the script's own changes."""


def _tiny_run_after(setup: str, cwd: Path) -> subprocess.CompletedProcess:
    """``setup`` (Python lines that change the harness for this run), then :data:`TINY_RUN_CALL`, in a new
    process in ``cwd``."""
    return subprocess.run([sys.executable, "-c", setup + TINY_RUN_CALL], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_a_run_folder_that_stops_taking_files_mid_run_exits_74_not_2(tmp_path):
    """2 says "your input was wrong": a CI script could not tell a full disk after an hour of jobs from a
    typo in --models."""
    code = ("import harness.results as results, harness.cli as cli\n"
            "real, calls = results.atomic_write_text, []\n"
            "def write(path, text):\n"
            "    calls.append(path)\n"
            "    if len(calls) > 1: raise OSError(28, 'No space left on device')\n"
            "    real(path, text)\n"
            "results.atomic_write_text = write\n")
    result = _tiny_run_after(code, tmp_path)
    assert result.returncode == 74, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("harness: error: cannot write out/r/results.json: No space")


def test_reports_that_cannot_be_written_say_so_in_one_line(tmp_path):
    from fixtures.shared import load_report_run

    from harness.errors import StorageError
    from harness.report import write_reports

    (tmp_path / "results.csv").mkdir()  # a folder where the CSV goes: the write is refused
    with pytest.raises(StorageError, match="cannot write the reports in .*'harness report"):
        write_reports(tmp_path, load_report_run())
    # harness report on such a folder: the folder given is the input, nothing ran: status 2, not 74
    (tmp_path / "results.json").write_text(json.dumps(load_report_run()))
    refused = run_cli("report", str(tmp_path))
    assert refused.returncode == 2 and "harness: error: cannot write the reports in" in refused.stderr, refused.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill(pid, SIGINT) terminates the process on Windows")
def test_a_signal_after_the_last_job_keeps_the_run_complete(tmp_path):
    """As Ray shuts down after the last job, a Ctrl-C used to mark a complete run "interrupted" and print a
    --resume command that had nothing to run."""
    code = ("import os, signal\n"
            "import harness.cli as cli, harness.executors as executors\n"
            "class ThenSignal(executors.LocalExecutor):\n"
            "    def run(self, jobs, ctx, on_done):\n"
            "        super().run(jobs, ctx, on_done)\n"
            "        os.kill(os.getpid(), signal.SIGINT)  # while the executor closes down\n"
            "executors.EXECUTORS['local'] = ThenSignal\n")
    result = _tiny_run_after(code, tmp_path)
    assert result.returncode == 130, result.stderr[-2000:]
    assert "interrupted after every job had finished; the reports in out/r are complete" in result.stderr
    assert "--resume" not in result.stderr and "mnist-mlp" in result.stdout  # the table, as a finished run's
    data = json.loads((tmp_path / "out" / "r" / "results.json").read_text())
    assert "interrupted" not in data and [job["status"] for job in data["jobs"]] == ["ok"]
    assert (tmp_path / "out" / "r" / "report.html").is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill(pid, SIGINT) terminates the process on Windows")
def test_a_ctrl_c_python_drops_inside_a_weakref_callback_still_stops_the_run(tmp_path):
    """A signal that lands in a weakref callback (the dynamo exporter runs torch's during an export) raises
    the handler's KeyboardInterrupt where Python reports it as unraisable and drops it: the run went on
    through every job, a second Ctrl-C was only noted, and it then claimed every job had finished."""
    code = ("import os, signal, sys, weakref\n"
            "import harness.cli as cli, harness.export as export\n"
            "real = export.export_onnx\n"
            "def export_onnx(*args, **kwargs):\n"
            "    class Thing: pass\n"
            "    thing = Thing()\n"
            "    def callback(_):\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        for _ in range(1000): pass  # the handler runs here, and its exception is dropped\n"
            "    ref = weakref.ref(thing, callback)\n"
            "    del thing\n"
            "    print('signal sent', file=sys.stderr, flush=True)\n"
            "    return real(*args, **kwargs)\n"
            "export.export_onnx = export_onnx\n")
    call = TINY_RUN_CALL.replace("'--models', 'mnist-mlp'", "'--models', 'mnist-mlp,mnist-cnn'")
    assert call != TINY_RUN_CALL
    result = subprocess.run([sys.executable, "-c", code + call], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert "signal sent" in result.stderr and result.stderr.count("signal sent") == 1, result.stderr[-2000:]
    assert result.returncode == 130, result.stderr[-2000:]
    assert "interrupted: 0 finished job(s) kept" in result.stderr and "every job had finished" not in result.stderr
    data = json.loads((tmp_path / "out" / "r" / "results.json").read_text())
    assert data["interrupted"] is True and data["jobs"] == []  # the first job stopped after its export


def test_files_no_row_lists_are_removed_for_the_jobs_run_only(tmp_path):
    from types import SimpleNamespace

    import harness.results as results
    from harness.runner import remove_unlisted_files

    folder = results.RunFolder.create(tmp_path, "r", {}, {})
    folder.record({"id": "a@d", "status": "ok", "onnx": {"path": "onnx/a_d.onnx"}, "train": {"weights": "weights/a_d.pt"},
                   "variants": [{"variant": "int8-dynamic", "path": "onnx/a_d.int8-dynamic.onnx"}]})
    folder.record({"id": "t@d", "status": "failed", "timed_out": True, "onnx": None, "train": None})
    folder.record({"id": "a_d.x@d", "status": "failed", "onnx": None, "train": None})  # an earlier run's
    files = {name: folder.path / name for name in (
        "onnx/a_d.onnx", "onnx/a_d.onnx.data", "onnx/a_d.int8-dynamic.onnx", "weights/a_d.pt",  # listed: kept
        "onnx/a_d.int8-static.onnx",  # a variant cut off before its row listed it
        "onnx/t_d.onnx", "weights/t_d.pt",  # the timed-out job's
        f"onnx/{results.job_file_stem('a_d.x@d')}.onnx",  # job a_d.x@d's (a longer stem that fits): not run now
        "onnx/o_d.onnx",  # a job not run now (a narrower resume): kept for its own resume
        "onnx/notes.txt")}  # the user's
    for file in files.values():
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(b"x")
    jobs = [SimpleNamespace(id=i) for i in ("a@d", "t@d")]
    removed = remove_unlisted_files(folder, jobs)
    assert sorted(p.relative_to(folder.path).as_posix() for p in removed) == [
        "onnx/a_d.int8-static.onnx", "onnx/t_d.onnx", "weights/t_d.pt"]
    assert all(file.exists() for name, file in files.items() if name not in {
        "onnx/a_d.int8-static.onnx", "onnx/t_d.onnx", "weights/t_d.pt"})


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill(pid, SIGINT) terminates the process on Windows")
def test_a_signal_during_the_heavy_imports_is_held_until_they_are_done(tmp_path):
    # The signal arrives inside _import_run_modules (here: sent by it); it must not raise there, and the
    # run must then stop before its first job with 130, not crash in a half-imported C extension.
    code = ("import os, signal\n"
            "import harness.cli as cli\n"
            "real = cli._import_run_modules\n"
            "def imports():\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    real()\n"
            "    print('imports finished', flush=True)\n"
            "cli._import_run_modules = imports\n"
            "cli.main(['run', '--models', 'mnist-mlp', '--datasets', 'synthetic'])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 130, result.stderr[-2000:]
    assert "imports finished" in result.stdout and "interrupted before the first job" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_ctrl_c_in_another_command_exits_130_not_1(debug):
    code = ("import harness.cli as cli\n"
            "def boom(*a, **k):\n"
            "    raise KeyboardInterrupt\n"
            "cli._registry = boom\n"
            f"cli.main({debug + ['list', 'models']!r})\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 130 and "harness: interrupted" in result.stderr and "Aborted" not in result.stderr
    assert ("Traceback" in result.stderr) == bool(debug)  # --debug shows where it was interrupted


def test_cold_runs_is_a_run_option_and_a_run_from_before_it_resumes_without_a_warning(tmp_path):
    out = tmp_path / "out"
    first = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples",
                    "64", "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency", "--exporter",
                    "torchscript", "--cold-runs", "2", "--out", str(out), "--run-id", "r")
    assert first.returncode == 0, first.stderr[-2000:]
    path = out / "r" / "results.json"
    data = json.loads(path.read_text())
    assert data["config"]["latency"]["cold_runs"] == 2  # over --quick's one
    assert data["jobs"][0]["onnx"]["cold_start"]["runs"] == 2
    del data["config"]["latency"]["cold_runs"]  # as a run from before cold starts recorded it
    path.write_text(json.dumps(data))
    resumed = run_cli("run", "--resume", "--out", str(out), "--run-id", "r")
    assert resumed.returncode == 0 and "changed options" not in resumed.stderr, resumed.stderr[-2000:]
    assert "config_before" not in json.loads(path.read_text())["resumed"][-1]


@pytest.mark.slow  # 14-25 s of separate runs: kept out of CI's ten minutes (pytest -m slow)
def test_a_resume_with_a_narrower_selection_keeps_the_other_jobs_for_a_later_resume(tmp_path):
    out = tmp_path / "out"
    common = ["--epochs", "1", "--max-train-samples", "64", "--device", "cpu", "--batch-sizes", "1", "--quick",
              "--no-torch-latency", "--cold-runs", "0", "--exporter", "torchscript", "--out", str(out), "--run-id", "r"]
    first = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", *common)
    assert first.returncode == 0, first.stderr[-2000:]
    results = out / "r" / "results.json"
    data = json.loads(results.read_text())
    # As an interrupted run leaves it: three jobs planned, one finished; and started with other options.
    data["planned_jobs"] = ["mnist-mlp@synthetic", "mnist-ultralight-cnn@synthetic", "mnist-cnn@synthetic"]
    data["config"]["models"] = None
    data["config"]["max_train_samples"] = 128
    data["interrupted"] = True
    results.write_text(json.dumps(data))
    narrow = run_cli("run", "--resume", "--run-id", "r", "--out", str(out), "--models", "mnist-ultralight-cnn",
                     "--max-train-samples", "64")
    assert narrow.returncode == 0, narrow.stderr[-2000:]
    assert "leave out 1 unfinished job(s) of the run (mnist-cnn@synthetic)" in narrow.stderr
    data = json.loads(results.read_text())
    assert data["config"]["models"] is None  # the run still covers every model
    assert data["planned_jobs"] == ["mnist-mlp@synthetic", "mnist-ultralight-cnn@synthetic", "mnist-cnn@synthetic"]
    # the finished job keeps the options it ran with, and the report judges it by them
    mlp = next(j for j in data["jobs"] if j["id"] == "mnist-mlp@synthetic")
    assert mlp["trained_with"]["max_train_samples"] == 128
    report = (out / "r" / "report.md").read_text()
    assert "1 of 3 planned not run" in report and "mnist-cnn@synthetic" in report
    assert "| resumed with changes | max_train_samples 128 -\\> 64 (1 job(s) ran with the earlier options) |" in report
    rest = run_cli("run", "--resume", "--run-id", "r", "--out", str(out), "--models", "mnist-cnn")
    assert rest.returncode == 0 and "leave out" not in rest.stderr, rest.stderr[-2000:]
    data = json.loads(results.read_text())
    assert sorted(j["id"] for j in data["jobs"]) == sorted(data["planned_jobs"])
    assert "planned not run" not in (out / "r" / "report.md").read_text()


def test_the_training_notes_read_the_options_each_job_ran_with():
    from harness.report import reference_notes

    job = {"id": "m@mnist", "model": "m", "dataset": "mnist", "status": "ok", "train": {"seconds": 60, "epochs": 20},
           "reference": {"train_minutes": 10, "epochs": 20, "dataset": "mnist", "test_accuracy": 0.99}}
    results = {"config": {"max_train_samples": 1000}, "jobs": [job]}
    assert "1,000 training samples" in reference_notes(results)[0]
    # a job finished before a resume that changed the cap ran with its own (stored as trained_with)
    results["jobs"] = [{**job, "trained_with": {"max_train_samples": 2000}}]
    assert "2,000 training samples" in reference_notes(results)[0]
    results["jobs"] = [{**job, "trained_with": {"max_train_samples": None}}]
    assert reference_notes(results) == []


def test_a_file_held_open_elsewhere_is_replaced_once_it_is_let_go_or_named(tmp_path, monkeypatch):
    """On Windows replacing a file fails while another program holds it (Excel on results.csv, a virus
    scan): the run stopped at once, and the message named the temporary file."""
    import harness.results as results

    real, tries = os.replace, []

    def held(source, target):
        tries.append(target)
        if len(tries) <= 2:
            raise PermissionError(13, "The process cannot access the file", source)
        real(source, target)

    monkeypatch.setattr(results.os, "replace", held)
    monkeypatch.setattr(results.time, "sleep", lambda s: None)
    results.atomic_write_text(tmp_path / "results.csv", "a,b\n")  # let go on the third try
    assert (tmp_path / "results.csv").read_text() == "a,b\n" and len(tries) == 3
    tries.clear()
    monkeypatch.setattr(results, "REPLACE_TRIES", 2)
    with pytest.raises(PermissionError) as raised:
        results.atomic_write_text(tmp_path / "report.md", "x")
    assert raised.value.filename == str(tmp_path / "report.md") and "open in another program" in str(raised.value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_the_latest_run_is_the_last_created_not_the_last_saved(tmp_path):
    """An idle --resume --run-id A saves A; a plain --resume after it must still go on with the newer B."""
    import os

    from harness.results import latest_run

    for name, created, mtime in (("a", "2026-12-01T09:00:00+00:00", 2_000), ("b", "2026-12-01T10:00:00+00:00", 1_000)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps({"run_id": name, "created": created}))
        os.utime(folder / "results.json", (mtime, mtime))
    assert latest_run(tmp_path) == tmp_path / "b"
    (tmp_path / "b" / "results.json").write_text("{broken")  # unreadable: its mtime still counts
    os.utime(tmp_path / "b" / "results.json", (3_000, 3_000))
    assert latest_run(tmp_path) == tmp_path / "a"
    # a downloaded artifact stamped in the future does not become the run a plain --resume goes on with
    (tmp_path / "b" / "results.json").write_text(json.dumps({"run_id": "b", "created": "9999-01-01T00:00:00"}))
    os.utime(tmp_path / "b" / "results.json", (1_000, 1_000))
    assert latest_run(tmp_path) == tmp_path / "a"


def test_a_resume_without_the_trackers_the_run_had_says_so(tmp_path, caplog):
    """The hint after Ctrl-C named no --track, and a resume run that way sent its jobs to no tracker without a
    word: the run's MLflow experiment silently missed them."""
    import logging

    from harness.reporters import Reporter, ReporterSet
    from harness.results import RunFolder
    from harness.runner import note_reporters

    class Named(Reporter):
        def __init__(self, name, tracker=True):
            self.name = name
            self.harness_tracker = tracker  # as make_trackers marks what --track switched on

    folder = RunFolder.create(tmp_path, "r", {}, {})
    note_reporters(folder, ReporterSet([Named("mlflow"), Named("tensorboard"), Named("a-plugins-own", False)]),
                   resume=False)
    assert folder.data["trackers"] == ["mlflow", "tensorboard"]  # a plugin's reporter is on in every run
    with caplog.at_level(logging.WARNING, logger="harness.runner"):
        note_reporters(folder, ReporterSet([Named("tensorboard")]), resume=True)
    assert ("this run was reported to mlflow before; this resume is not, so the jobs it runs will be missing "
            "there (resume with --track mlflow)") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="harness.runner"):
        note_reporters(folder, ReporterSet([Named("mlflow"), Named("tensorboard")]), resume=True)
    assert "reported to" not in caplog.text and folder.data["trackers"] == ["mlflow", "tensorboard"]
    plain = RunFolder.create(tmp_path, "p", {}, {})
    note_reporters(plain, ReporterSet([Named("a-plugins-own", False)]), resume=False)
    assert "trackers" not in plain.data  # a run without any says nothing about them


def test_resuming_an_older_versions_run_names_the_other_harness_and_no_option_it_did_not_record(tmp_path):
    """A run from before --cuda-graphs recorded no cuda_graphs: its resume warned "changed options
    (cuda_graphs None -> False)", which nobody changed; and a run another harness made was finished by this
    one without a word, one table then holding both versions' figures."""
    out = tmp_path / "out"
    args = ["run", "--models", "mnist-mlp,mnist-ultralight-cnn", "--datasets", "synthetic", "--epochs", "1",
            "--max-train-samples", "64", "--max-test-samples", "64", "--device", "cpu", "--batch-sizes", "1",
            "--quick", "--no-torch-latency", "--exporter", "torchscript", "--cold-runs", "0", "--out", str(out),
            "--run-id", "old", "--no-progress"]
    assert run_cli(*args).returncode == 0
    path = out / "old" / "results.json"
    data = json.loads(path.read_text())
    data["jobs"] = data["jobs"][:1]  # stopped before its second job
    del data["config"]["cuda_graphs"]
    data["environment"].update(harness_commit="0123456789abcdef", harness_dirty=False)
    path.write_text(json.dumps(data))
    resumed = run_cli("run", "--resume", "--run-id", "old", "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "changed options" not in resumed.stderr, resumed.stderr
    assert "resuming old, whose finished job(s) were made by harness 0.1.0 (commit 0123456789ab); the jobs still " \
           "to run are made by harness 0.1.0 (commit " in resumed.stderr

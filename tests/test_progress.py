"""Progress lines for logs: stages, epochs, and a heartbeat inside a long epoch."""

from __future__ import annotations

import io
import re
import time

from harness.progress import LineProgress


def _lines(progress: LineProgress) -> list[str]:
    """The printed lines, a heartbeat's seconds ("(0s)") left out."""
    return [re.sub(r" \(\d+s\)$", "", line) for line in progress.stream.getvalue().splitlines()]


def _train_two_epochs(progress: LineProgress, steps: int = 4) -> None:
    progress.job(1, 1, "net@data")
    progress.stage("net@data", "train")
    for epoch in (1, 2):
        for step in range(1, steps + 1):
            progress.batch("net@data", step, steps)
        progress.epoch("net@data", {"epoch": epoch, "train_loss": 0.5, "train_accuracy": 0.9, "seconds": 1.0}, 2)


def test_a_long_epoch_says_how_far_it_is():
    progress = LineProgress(io.StringIO(), heartbeat_s=0)
    _train_two_epochs(progress)
    lines = _lines(progress)
    assert "[1/1] net@data: epoch 1, batch 1/4" in lines
    assert "[1/1] net@data: epoch 2, batch 3/4" in lines
    # The epoch's own line says the last batch; the heartbeat does not repeat it.
    assert not any(line.endswith("batch 4/4") for line in lines)
    assert lines.index("[1/1] net@data: epoch 1/2 loss 0.5000 acc 0.9000 (1.0s)") < lines.index(
        "[1/1] net@data: epoch 2, batch 1/4")


def test_short_epochs_print_no_heartbeat():
    progress = LineProgress(io.StringIO(), heartbeat_s=3600)
    _train_two_epochs(progress)
    assert _lines(progress) == [
        "[1/1] net@data",
        "[1/1] net@data: train",
        "[1/1] net@data: epoch 1/2 loss 0.5000 acc 0.9000 (1.0s)",
        "[1/1] net@data: epoch 2/2 loss 0.5000 acc 0.9000 (1.0s)",
    ]


def test_a_new_training_stage_counts_epochs_from_one():
    progress = LineProgress(io.StringIO(), heartbeat_s=0)
    _train_two_epochs(progress)
    progress.job(2, 2, "other@data")
    progress.stage("other@data", "train")
    progress.batch("other@data", 1, 4)
    assert _lines(progress)[-1] == "[2/2] other@data: epoch 1, batch 1/4"


def _record(epoch: int) -> dict:
    return {"epoch": epoch, "train_loss": 0.5, "train_accuracy": 0.9, "seconds": 1.0}


def test_jobs_running_at_once_each_name_their_own_lines():
    """Under Ray the stages of jobs still running came out under the id of the job that last finished."""
    progress = LineProgress(io.StringIO(), heartbeat_s=3600)
    progress.stage("a@d", "train")
    progress.stage("b@d", "train")
    progress.epoch("a@d", _record(1), 2)
    progress.epoch("b@d", _record(1), 2)
    progress.stage("b@d", "export")
    progress.job(1, 2, "b@d")  # as Ray says a job: when it has finished
    progress.job_done({"id": "b@d", "status": "failed", "stage": "export", "error": "OSError: no room"})
    progress.epoch("a@d", _record(2), 2)
    progress.job(2, 2, "a@d")
    progress.job_done({"id": "a@d", "status": "ok", "params": 10, "latency": []})
    assert _lines(progress) == [
        "[running] a@d: train",
        "[running] b@d: train",
        "[running] a@d: epoch 1/2 loss 0.5000 acc 0.9000 (1.0s)",
        "[running] b@d: epoch 1/2 loss 0.5000 acc 0.9000 (1.0s)",
        "[running] b@d: export",
        "[1/2] b@d",
        "[1/2] b@d: FAILED at export: OSError: no room",
        "[running] a@d: epoch 2/2 loss 0.5000 acc 0.9000 (1.0s)",
        "[2/2] a@d",
        "[2/2] a@d: ok, 10 params",
    ]


def test_each_running_job_counts_its_own_epochs():
    progress = LineProgress(io.StringIO(), heartbeat_s=0)
    progress.stage("a@d", "train")
    progress.stage("b@d", "train")
    progress.epoch("a@d", _record(1), 3)
    progress.epoch("a@d", _record(2), 3)
    progress.batch("b@d", 1, 4)
    progress.batch("a@d", 1, 4)
    assert _lines(progress)[-2:] == ["[running] b@d: epoch 1, batch 1/4", "[running] a@d: epoch 3, batch 1/4"]


def test_a_finished_job_line_shows_the_exported_models_latency_not_eager_pytorchs():
    from harness.progress import describe_row

    torch_row = {"runtime": "torch", "provider": "cpu", "batch_size": 1, "p50_ms": 0.061}
    ort_row = {"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": 1, "p50_ms": 0.017}
    row = {"status": "ok", "params": 1000, "onnx": {"metrics": {"accuracy": 0.9}}}
    assert describe_row({**row, "latency": [torch_row, ort_row]}).endswith("p50 0.017 ms @ batch 1")
    # ONNX Runtime measured nothing: the eager figure is said to be one
    assert describe_row({**row, "latency": [torch_row]}).endswith("p50 0.061 ms @ batch 1 (eager PyTorch)")


def test_a_finished_job_line_names_a_failed_variant():
    from harness.progress import describe_row

    row = {"status": "ok", "params": 10, "latency": [],
           "variants": [{"variant": "int8-dynamic", "error": None},
                        {"variant": "slim", "error": "RuntimeError: the slim\n variant broke"}]}
    assert describe_row(row).endswith("variant slim FAILED: RuntimeError: the slim variant broke")
    assert "int8-dynamic" not in describe_row(row)


def test_the_epoch_line_names_the_split_it_scored(tmp_path):
    """A seed-003 model scores a validation split each epoch, the others the test split: "eval acc" said
    neither, and the last epoch's figure then differed from the test accuracy reported for the job."""
    from conftest import run_cli

    result = run_cli("run", "--models", "mnist-mlp,mnist-baseline-20k", "--datasets", "synthetic", "--epochs", "1",
                     "--max-train-samples", "96", "--max-test-samples", "32", "--device", "cpu", "--batch-sizes", "1",
                     "--quick", "--no-torch-latency", "--cold-runs", "0", "--exporter", "torchscript",
                     "--out", str(tmp_path), "--run-id", "r")
    assert result.returncode == 0, result.stderr[-2000:]
    epochs = {line.split("]")[1].split(":")[0].strip(): line for line in result.stderr.splitlines()
              if ": epoch 1/1 " in line}
    assert " test acc " in epochs["mnist-mlp@synthetic"], epochs
    assert " val acc " in epochs["mnist-baseline-20k@synthetic"], epochs


def test_without_colour_the_live_display_shows_a_percentage_not_a_bar(monkeypatch):
    from rich.progress import BarColumn, TaskProgressColumn

    from harness.progress import RichProgress

    monkeypatch.setenv("NO_COLOR", "1")  # rich then draws a bar's done and to-do parts alike
    kinds = {type(c) for c in RichProgress().bar.columns}
    assert TaskProgressColumn in kinds and BarColumn not in kinds
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")  # a colour terminal, as rich sees one (pytest's stderr is not)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert BarColumn in {type(c) for c in RichProgress().bar.columns}
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.delenv("FORCE_COLOR")
    assert BarColumn not in {type(c) for c in RichProgress().bar.columns}


def test_a_terminal_gets_the_live_display_except_in_ci_or_a_dumb_terminal(monkeypatch):
    """A CI runner that gives the job a terminal recorded thousands of redraws of the live bar."""
    import sys

    from harness.progress import RichProgress, make_progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    for name in ("CI", "TERM"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(make_progress(), RichProgress)
    monkeypatch.setenv("CI", "true")
    assert isinstance(make_progress(), LineProgress)
    monkeypatch.setenv("CI", "false")
    monkeypatch.setenv("TERM", "dumb")  # cannot redraw: nothing showed until the end
    assert isinstance(make_progress(), LineProgress)


def _live_display(jobs: int):
    """A started :class:`RichProgress` drawing into a string instead of the terminal."""
    from rich.console import Console

    from harness.progress import RichProgress

    shown = RichProgress()
    shown.console = Console(file=io.StringIO(), force_terminal=False, width=300)
    shown.bar = type(shown.bar)(*shown.bar.columns, console=shown.console)
    shown.start(jobs)
    return shown


def test_the_live_display_shows_ids_stages_and_errors_as_text_not_markup():
    """An error holding '[/data/x]' ended a run with rich's MarkupError in a terminal; '[tag]' vanished."""
    shown = _live_display(1)
    shown.job(1, 1, "m@d#tags=[red]")
    shown.stage("m@d#tags=[red]", "export [/data/x]")
    shown.job_done({"id": "m@d#tags=[red]", "status": "failed", "stage": "export",
                    "error": "OSError: cannot open [/data/x] [bold]"})
    shown.stop()
    text = shown.console.file.getvalue()
    assert "m@d#tags=[red]" in text and "cannot open [/data/x] [bold]" in text


def test_the_live_display_gives_each_running_job_its_own_row():
    """Under Ray one step row showed the latest stage of whichever job sent it, with no job id."""
    shown = _live_display(3)

    def rows():
        return [task.description for task in shown.bar.tasks if task.visible and task.id != shown.jobs_task]

    shown.stage("a@d", "train")
    shown.stage("b@d", "loading data")
    shown.epoch("a@d", _record(1), 2)
    assert rows() == ["a@d: train 1/2", "b@d: loading data"]
    shown.job(1, 3, "a@d")
    shown.job_done({"id": "a@d", "status": "ok", "params": 10, "latency": []})
    assert rows() == ["b@d: loading data"]
    shown.job(2, 3, "b@d")
    shown.job_done({"id": "b@d", "status": "ok", "params": 10, "latency": []})
    shown.job(3, 3, "c@d")  # a local run: announced first, its row needs no id (the jobs row says it)
    shown.stage("c@d", "export")
    assert rows() == ["export"] and len(shown.bar.tasks) == 3  # a finished job's row is reused
    shown.stop()


def test_the_live_display_times_each_stage_from_its_own_start():
    """One row serves every stage of every job: its clock ran from the first job ('train 1/8 0:00:52')."""
    shown = _live_display(2)
    shown.job(1, 2, "a@d")
    shown.stage("a@d", "train")
    (row,) = [task for task in shown.bar.tasks if task.id != shown.jobs_task]
    first = row.start_time
    time.sleep(0.05)
    shown.job_done({"id": "a@d", "status": "ok", "params": 10, "latency": []})
    shown.job(2, 2, "b@d")
    shown.stage("b@d", "loading data")
    (again,) = [task for task in shown.bar.tasks if task.id != shown.jobs_task]
    assert again.id == row.id and again.start_time >= first + 0.05  # the same row, its clock started again
    assert again.elapsed < 0.05
    shown.stop()


def test_a_large_run_says_it_is_writing_its_reports(monkeypatch, tmp_path):
    """A 1,000-job sweep went quiet for 15 s after its last job while its reports were written."""
    from conftest import cli_runner

    from harness import cli

    monkeypatch.setattr(cli, "REPORTS_SAID_FROM", 1)  # one job stands for a large sweep here
    result = cli_runner().invoke(cli.main, [
        "run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples", "64",
        "--max-test-samples", "64", "--batch-sizes", "1", "--quick", "--cold-runs", "0", "--no-torch-latency",
        "--exporter", "torchscript", "--out", str(tmp_path), "--run-id", "r"])
    assert result.exit_code == 0, result.output
    said = result.stderr if hasattr(result, "stderr") and result.stderr else result.output
    assert "writing the reports of 1 jobs (results.csv, report.md, report.html, plots)" in said


def test_a_warning_goes_to_the_stderr_the_live_display_put_in_place(monkeypatch):
    """The CLI's log handler kept the stderr it was made with: under the live display a job's warning was
    written into its rows and half erased by the next redraw. It writes to sys.stderr as it is now."""
    import io
    import logging

    from harness.cli import _StderrHandler

    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("harness: %(message)s"))
    drawn = io.StringIO()
    monkeypatch.setattr("sys.stderr", drawn)  # what rich's Live puts there while it draws
    handler.emit(logging.LogRecord("harness.runner", logging.WARNING, __file__, 1, "metric failed", None, None))
    assert drawn.getvalue() == "harness: metric failed\n"

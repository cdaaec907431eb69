"""Progress of a run on stderr: a live bar in a terminal, one line per step elsewhere (CI logs)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from harness.text import squeeze


class Progress:
    """Says which job and stage is running; subclasses decide how it looks."""

    def start(self, total: int) -> None: ...
    def job(self, index: int, total: int, job_id: str) -> None: ...
    def stage(self, job_id: str, stage: str) -> None: ...
    def epoch(self, job_id: str, record: dict[str, Any], epochs: int) -> None: ...
    def batch(self, job_id: str, step: int, steps: int) -> None: ...
    def job_done(self, row: dict[str, Any]) -> None: ...
    def note(self, message: str) -> None: ...
    def stop(self) -> None: ...


def describe_epoch(record: dict[str, Any], epochs: int) -> str:
    text = f"epoch {record['epoch']}/{epochs} loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}"
    if "eval_accuracy" in record:  # "val acc" or "test acc" when the caller says which split it was
        text += f" {record.get('evaluated_on') or 'eval'} acc {record['eval_accuracy']:.4f}"
    return text + f" ({record['seconds']:.1f}s)"


def describe_row(row: dict[str, Any]) -> str:
    if row.get("status") != "ok":
        return f"{row['status'].upper()} at {row.get('stage')}: {row.get('error')}"
    acc = (row.get("onnx") or {}).get("metrics", {}).get("accuracy")
    rows = row.get("latency") or []
    # The exported model's latency; eager PyTorch's only when ONNX Runtime measured nothing, and then named.
    first = next((r for r in rows if r.get("runtime") != "torch"), None) or next(iter(rows), {})
    parts = [f"ok, {row.get('params'):,} params"]
    if acc is not None:
        parts.append(f"onnx acc {acc:.4f}")
    if first.get("p50_ms") is not None:
        runtime = " (eager PyTorch)" if first.get("runtime") == "torch" else ""
        parts.append(f"p50 {first['p50_ms']:.3f} ms @ batch {first['batch_size']}{runtime}")
    failed = [v for v in row.get("variants") or [] if isinstance(v, dict) and v.get("error")]
    for variant in failed:  # a failed variant never fails the job, but should not pass unseen
        parts.append(f"variant {variant.get('variant')} FAILED: {squeeze(variant['error'], 160)}")
    return ", ".join(parts)


class LineProgress(Progress):
    """Plain lines, for logs and pipes.

    Every stage and epoch line names its own job, so the lines of jobs that run
    at once (Ray) can be told apart: ``[index/total] JOB_ID`` once :meth:`job`
    announced the job (a local run announces each before it starts), else
    ``[running] JOB_ID`` (under Ray a job is announced only when it finishes).

    An epoch can take minutes on a CPU; so that a log never looks stuck, a line
    says how far the epoch is whenever ``heartbeat_s`` seconds passed without one.
    """

    def __init__(self, stream: TextIO | None = None, heartbeat_s: float = 30.0):
        self.stream = stream or sys.stderr
        self.heartbeat_s = heartbeat_s
        self._prefixes: dict[str, str] = {}  # job id -> "[index/total] job id", set by job()
        self._epochs: dict[str, int] = {}  # job id -> the epoch it is in (1-based)
        self._epochs_started: dict[str, float] = {}  # job id -> when that epoch (or its stage) began
        self._last_line = self._created = time.perf_counter()
        self._mute = False  # set once the stream refused a line

    def _print(self, text: str) -> None:
        if self._mute:
            return
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):  # standard error full (/dev/full) or closed: the run goes on without it
            self._mute = True
        self._last_line = time.perf_counter()

    def _prefix(self, job_id: str) -> str:
        return self._prefixes.get(job_id) or f"[running] {job_id}"

    def job(self, index: int, total: int, job_id: str) -> None:
        # Executors that report jobs as they finish (Ray) call this right before job_done: no "started".
        self._prefixes[job_id] = f"[{index}/{total}] {job_id}"
        self._print(self._prefixes[job_id])

    def stage(self, job_id: str, stage: str) -> None:
        self._epochs[job_id] = 1
        self._print(f"{self._prefix(job_id)}: {stage}")
        self._epochs_started[job_id] = self._last_line

    def batch(self, job_id: str, step: int, steps: int) -> None:
        if step < steps and time.perf_counter() - self._last_line >= self.heartbeat_s:
            seconds = time.perf_counter() - self._epochs_started.get(job_id, self._created)
            self._print(f"{self._prefix(job_id)}: epoch {self._epochs.get(job_id, 1)}, batch {step}/{steps} "
                        f"({seconds:.0f}s)")

    def epoch(self, job_id: str, record: dict[str, Any], epochs: int) -> None:
        self._epochs[job_id] = record["epoch"] + 1
        self._print(f"{self._prefix(job_id)}: {describe_epoch(record, epochs)}")
        self._epochs_started[job_id] = self._last_line

    def job_done(self, row: dict[str, Any]) -> None:
        job_id = str(row.get("id"))
        prefix = self._prefixes.pop(job_id, None) or job_id  # every executor announces a job first
        self._epochs.pop(job_id, None)
        self._epochs_started.pop(job_id, None)
        self._print(f"{prefix}: {describe_row(row)}")

    def note(self, message: str) -> None:
        self._print(message)


class RichProgress(Progress):
    """A live progress display (rich) for interactive terminals."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bar

        self.console = Console(stderr=True)
        # Without colour (NO_COLOR, TERM=dumb) rich draws the bar's done and to-do parts alike, a solid line
        # that says nothing: the counts and the percentage carry it instead.
        plain = bool(os.environ.get("NO_COLOR")) or self.console.no_color or self.console.color_system is None
        self.bar = Bar(
            # job ids, stages and errors are text, never rich markup: an error holding "[/data/x]" ended a run
            # with rich's MarkupError, and "[tag]" in a sweep value vanished
            TextColumn("{task.description}", markup=False, style="" if plain else "bold"),
            TaskProgressColumn() if plain else BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}", markup=False),
            console=self.console,
            transient=False,
        )
        self.jobs_task = None
        # One step row per running job: a local run has one at a time, a Ray run one per job running now.
        # A finished job's row is hidden and kept for the next job's.
        self._steps: dict[str, Any] = {}  # job id -> its rich task
        self._spare: list[Any] = []  # hidden rows of finished jobs
        self._announced: str | None = None  # the job the "jobs" row names (job()): its rows need no id

    def start(self, total: int) -> None:
        self.bar.start()
        self.jobs_task = self.bar.add_task("jobs", total=total, status="")

    def _step(self, job_id: str) -> Any:
        task = self._steps.get(job_id)
        if task is None:
            if self._spare:
                task = self._spare.pop()
            else:
                task = self.bar.add_task("", total=1, status="", visible=False)
            self._steps[job_id] = task
        return task

    def _label(self, job_id: str, text: str) -> str:
        # Locally the jobs row already names the running job; a job running beside others (Ray) says its id.
        return text if job_id == self._announced else f"{job_id}: {text}"

    def job(self, index: int, total: int, job_id: str) -> None:
        self._announced = job_id
        self.bar.update(self.jobs_task, status=job_id)

    def stage(self, job_id: str, stage: str) -> None:
        # reset, not update: the row's clock starts again with each stage (one row serves every stage and,
        # hidden between them, every job: its time read "train 1/8 0:00:52", counted from the first job)
        self.bar.reset(self._step(job_id), description=self._label(job_id, stage), status="", visible=True,
                       completed=0, total=1)

    def batch(self, job_id: str, step: int, steps: int) -> None:
        self.bar.update(self._step(job_id), completed=step, total=steps)

    def epoch(self, job_id: str, record: dict[str, Any], epochs: int) -> None:
        label = self._label(job_id, f"train {record['epoch']}/{epochs}")
        self.bar.update(self._step(job_id), description=label, status=describe_epoch(record, epochs), visible=True)

    def job_done(self, row: dict[str, Any]) -> None:
        from rich.text import Text

        style = "green" if row.get("status") == "ok" else "red"
        self.console.print(Text.assemble((str(row["id"]), style), f": {describe_row(row)}"), highlight=False)
        self.bar.advance(self.jobs_task)
        task = self._steps.pop(str(row["id"]), None)
        if task is not None:
            self.bar.update(task, visible=False)
            self._spare.append(task)

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)

    def stop(self) -> None:
        self.bar.stop()


def make_progress(enabled: bool = True) -> Progress:
    """Rich in a terminal, lines otherwise (also in CI, ``$CI`` set, whose runners may give a terminal that
    records every redraw, and with ``TERM=dumb``, which cannot redraw), nothing when ``enabled`` is False."""
    if not enabled:
        return Progress()
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    if sys.stderr.isatty() and not in_ci and os.environ.get("TERM") != "dumb":
        try:
            return RichProgress()
        except ImportError:  # pragma: no cover - rich is a dependency
            pass
    return LineProgress()

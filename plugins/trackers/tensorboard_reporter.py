"""TensorBoard reporter: one log folder per job under ``<run folder>/tensorboard/``.

The folder is named after the job's file stem (:func:`harness.results.job_file_stem`, as its ONNX file:
``mnist-mlp@synthetic`` -> ``mnist-mlp_synthetic``). Each epoch: scalars ``loss/train``, ``loss/eval``,
``accuracy/train``, ``accuracy/eval`` (``eval`` is the split the text ``evaluated_on`` names: ``val`` or
``test``), ``lr`` and ``time/elapsed_seconds`` (training time since its start), and a histogram of
every parameter of the model (``weights/<parameter name>``; a BatchNorm's
``weight``/``bias`` are Keras's gamma/beta, a conv or linear ``weight`` its
kernel: the histograms seed 004 shows). At the end of the job: the final
figures (``test/accuracy``, ``onnx/accuracy``, ``latency/...`` with each row's ``stable`` and ``drift_pct``,
``ort_vs_eager/speedup``...) at the last epoch's step (a job that failed mid-training: the last epoch it
reported), and the job's settings, what it was measured with (``facts``: ``evaluated_on``, the exporter and
opset) and its status as text. A job the run was interrupted in gets the status ``interrupted``.

A job that runs again (a failed or interrupted job on ``--resume``) would write a second event file into
its folder, and TensorBoard would show both attempts' points at the same steps. So the earlier attempt's
event files are moved first into ``<job folder>/attempt-<n>/`` (TensorBoard shows it as a run of its own,
``<job folder>/attempt-1``): the job's folder holds only its latest attempt, as results.json holds only its
latest row. A subfolder, not ``SummaryWriter(purge_step=0)``: TensorBoard reads a folder's event files in
the order of their names, which begin with the second they were made, so two sessions in one second could
purge the wrong one.

Written with ``torch.utils.tensorboard.SummaryWriter`` (needs the
``tensorboard`` package); view with ``tensorboard --logdir <run folder>/tensorboard``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.reporters import Reporter
from harness.results import job_file_stem

from ._common import epoch_scalars, final_scalars, final_step, job_facts

SCALAR_NAMES = {
    "train_loss": "loss/train", "eval_loss": "loss/eval", "train_accuracy": "accuracy/train",
    "eval_accuracy": "accuracy/eval", "lr": "lr", "seconds": "time/elapsed_seconds",
}
EVENT_FILES = "events.out.tfevents.*"


class TensorBoardReporter(Reporter):
    name = "tensorboard"

    def __init__(self, log_dir: str | Path | None = None, histograms: bool = True, **_: Any):
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.histograms = histograms
        self.root: Path | None = None
        self.writers: dict[str, Any] = {}
        self.folders: dict[str, Path] = {}
        self.steps: dict[str, int] = {}  # job id -> the last epoch it reported

    def run_started(self, run_dir: Path, config: dict[str, Any], environment: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401 - fail here, once, if it cannot work

        self.root = self.log_dir or Path(run_dir) / "tensorboard"
        self.root.mkdir(parents=True, exist_ok=True)

    def _writer(self, job_id: str) -> Any:
        if job_id not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            folder = (self.root or Path("tensorboard")) / job_file_stem(job_id)
            set_aside(folder)
            self.folders[job_id] = folder
            self.writers[job_id] = SummaryWriter(log_dir=str(folder))
        return self.writers[job_id]

    def job_started(self, job_id: str, info: dict[str, Any]) -> None:
        writer = self._writer(job_id)
        writer.add_text("job", "```\n" + json.dumps(info, indent=2, default=str) + "\n```", 0)

    def epoch_ended(self, job_id: str, record: dict[str, Any], model: Any = None) -> None:
        writer = self._writer(job_id)
        step = int(record.get("epoch") or 0)
        self.steps[job_id] = step
        for name, value in epoch_scalars(record).items():
            writer.add_scalar(SCALAR_NAMES.get(name, f"epoch/{name}"), value, step)
        if self.histograms and model is not None and hasattr(model, "named_parameters"):
            for name, param in model.named_parameters():
                if param.numel():
                    writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), step)
        writer.flush()

    def job_ended(self, job_id: str, row: dict[str, Any], run_dir: Path) -> None:
        writer = self._writer(job_id)
        step = final_step(row, self.steps.pop(job_id, None))
        for name, value in final_scalars(row).items():
            writer.add_scalar(name, value, step)
        facts = job_facts(row)
        if facts:
            writer.add_text("facts", "  \n".join(f"{k}: {v}" for k, v in facts.items()), step)
        status = f"{row.get('status')}" + (f" at {row.get('stage')}: {row.get('error')}" if row.get("error") else "")
        writer.add_text("status", status, step)
        writer.close()
        self.writers.pop(job_id, None)

    def run_ended(self, results: dict[str, Any], run_dir: Path) -> None:
        for job_id, writer in self.writers.items():  # jobs that never reported an end (the run was interrupted)
            writer.add_text("status", "interrupted", self.steps.get(job_id, 0))
            writer.close()
        self.writers.clear()
        self.steps.clear()


def set_aside(folder: Path) -> None:
    """Move an earlier attempt's event files in ``folder`` into its next free ``attempt-<n>/`` subfolder."""
    earlier = sorted(p for p in folder.glob(EVENT_FILES) if p.is_file()) if folder.is_dir() else []
    if not earlier:
        return
    n = 1
    while (folder / f"attempt-{n}").exists():
        n += 1
    aside = folder / f"attempt-{n}"
    aside.mkdir()
    for path in earlier:
        os.replace(path, aside / path.name)

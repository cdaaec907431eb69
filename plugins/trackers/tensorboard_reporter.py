"""TensorBoard reporter: one log folder per job under ``<run folder>/tensorboard/``.

Each epoch: scalars ``loss/train``, ``loss/eval``, ``accuracy/train``,
``accuracy/eval``, ``lr`` and ``time/elapsed_seconds`` (training time since its start), and a histogram of
every parameter of the model (``weights/<parameter name>``; a BatchNorm's
``weight``/``bias`` are Keras's gamma/beta, a conv or linear ``weight`` its
kernel: the histograms seed 004 shows). At the end of the job: the final
figures (``test/accuracy``, ``onnx/accuracy``, ``latency/...``) at the last
epoch's step, and the job's settings and status as text.

Written with ``torch.utils.tensorboard.SummaryWriter`` (needs the
``tensorboard`` package); view with ``tensorboard --logdir <run folder>/tensorboard``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.reporters import Reporter
from harness.results import job_file_stem

from ._common import epoch_scalars, final_scalars

SCALAR_NAMES = {
    "train_loss": "loss/train", "eval_loss": "loss/eval", "train_accuracy": "accuracy/train",
    "eval_accuracy": "accuracy/eval", "lr": "lr", "seconds": "time/elapsed_seconds",
}


class TensorBoardReporter(Reporter):
    name = "tensorboard"

    def __init__(self, log_dir: str | Path | None = None, histograms: bool = True, **_: Any):
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.histograms = histograms
        self.root: Path | None = None
        self.writers: dict[str, Any] = {}
        self.folders: dict[str, Path] = {}

    def run_started(self, run_dir: Path, config: dict[str, Any], environment: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401 - fail here, once, if it cannot work

        self.root = self.log_dir or Path(run_dir) / "tensorboard"
        self.root.mkdir(parents=True, exist_ok=True)

    def _writer(self, job_id: str) -> Any:
        if job_id not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            folder = (self.root or Path("tensorboard")) / job_file_stem(job_id)
            self.folders[job_id] = folder
            self.writers[job_id] = SummaryWriter(log_dir=str(folder))
        return self.writers[job_id]

    def job_started(self, job_id: str, info: dict[str, Any]) -> None:
        writer = self._writer(job_id)
        writer.add_text("job", "```\n" + json.dumps(info, indent=2, default=str) + "\n```", 0)

    def epoch_ended(self, job_id: str, record: dict[str, Any], model: Any = None) -> None:
        writer = self._writer(job_id)
        step = int(record.get("epoch") or 0)
        for name, value in epoch_scalars(record).items():
            writer.add_scalar(SCALAR_NAMES.get(name, f"epoch/{name}"), value, step)
        if self.histograms and model is not None and hasattr(model, "named_parameters"):
            for name, param in model.named_parameters():
                if param.numel():
                    writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), step)
        writer.flush()

    def job_ended(self, job_id: str, row: dict[str, Any], run_dir: Path) -> None:
        writer = self._writer(job_id)
        step = int((row.get("train") or {}).get("epochs") or 0)
        for name, value in final_scalars(row).items():
            writer.add_scalar(name, value, step)
        status = f"{row.get('status')}" + (f" at {row.get('stage')}: {row.get('error')}" if row.get("error") else "")
        writer.add_text("status", status, step)
        writer.close()
        self.writers.pop(job_id, None)

    def run_ended(self, results: dict[str, Any], run_dir: Path) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

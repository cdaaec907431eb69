"""Experiment trackers as reporter plugins: MLflow and TensorBoard.

Switched on by name, for now through the environment::

    HARNESS_TRACK=mlflow,tensorboard harness run ...

- ``mlflow`` (``pip install harness[mlflow]``): one MLflow run per job in
  the experiment ``harness`` (or ``$MLFLOW_EXPERIMENT_NAME``) with the
  recipe and model as params, per-epoch metrics (``step`` = epoch), final
  metrics and latency, and the ONNX file as an artifact. The store is
  ``$MLFLOW_TRACKING_URI`` when set, else a local file store
  ``<run folder>/mlruns`` (look at it with ``mlflow ui --backend-store-uri
  <run folder>/mlruns``).
- ``tensorboard`` (``pip install harness[tensorboard]``): one log folder per
  job under ``<run folder>/tensorboard/`` with per-epoch scalars and a
  histogram of every parameter each epoch (``tensorboard --logdir
  <run folder>/tensorboard``).

:func:`make_reporters` builds them by name and raises
:class:`harness.errors.HarnessError` with the ``pip install`` line when the
package is missing. This module imports neither torch nor the trackers;
they are imported when a reporter is made or starts.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

from harness import hookimpl
from harness.errors import HarnessError
from harness.reporters import Reporter

ENV_VAR = "HARNESS_TRACK"

# name -> (package that must be importable, module, class, extra to install)
TRACKERS: dict[str, tuple[str, str, str, str]] = {
    "mlflow": ("mlflow", "harness_plugins.trackers.mlflow_reporter", "MLflowReporter", "harness[mlflow]"),
    "tensorboard": ("tensorboard", "harness_plugins.trackers.tensorboard_reporter", "TensorBoardReporter",
                    "harness[tensorboard]"),
}


def parse_names(text: str | None) -> list[str]:
    """``"mlflow, TensorBoard"`` -> ``["mlflow", "tensorboard"]`` (empty items dropped, duplicates once)."""
    names = [part.strip().lower() for part in (text or "").split(",")]
    return list(dict.fromkeys(n for n in names if n))


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def make_reporters(names: list[str], **options: Any) -> list[Reporter]:
    """Reporters for ``names`` (``mlflow``, ``tensorboard``); ``options`` go to each constructor that takes them.

    Raises :class:`HarnessError` for an unknown name or a tracker whose package is not installed.
    """
    names = [n.strip().lower() for n in names]  # --track MLflow, as $HARNESS_TRACK reads it
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise HarnessError(f"unknown tracker {', '.join(map(repr, unknown))}; known: {', '.join(TRACKERS)}")
    reporters = []
    for name in dict.fromkeys(names):
        package, module, cls, extra = TRACKERS[name]
        if not _installed(package):
            raise HarnessError(f"the {name} tracker needs the {package} package: pip install '{extra}'")
        reporter_cls = getattr(importlib.import_module(module), cls)
        reporters.append(reporter_cls(**options))
    return reporters


@hookimpl
def harness_reporters() -> list[Reporter]:
    """The trackers named in ``$HARNESS_TRACK`` (comma-separated); none when it is unset."""
    return make_reporters(parse_names(os.environ.get(ENV_VAR)))

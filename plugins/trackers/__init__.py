"""Experiment trackers as reporter plugins: MLflow and TensorBoard.

Switched on by name (any case, comma-separated)::

    harness run --track mlflow,tensorboard ...
    HARNESS_TRACK=mlflow harness run ...

- ``mlflow`` (``pip install "mlflow-skinny>=2.10"``): in the experiment
  ``harness`` (or ``$MLFLOW_EXPERIMENT_NAME``), one MLflow run for the harness
  run (its options, job counts, results.json and the reports; a ``--resume``
  reopens it) and, nested under it, one per job (a job run again on resume: one
  per attempt) with the recipe, model and figure-changing run options as params,
  per-epoch metrics (``step`` = epoch), final metrics and latency with their
  stability, and the ONNX file as an artifact. The store is
  ``$MLFLOW_TRACKING_URI`` when set, else a local file store
  ``<run folder>/mlruns`` (look at it with ``mlflow ui --backend-store-uri
  <run folder>/mlruns``).
- ``tensorboard`` (``pip install "tensorboard>=2.14"``): one log folder per
  job under ``<run folder>/tensorboard/``, named after the job's file stem
  (``mnist-mlp_synthetic``), with per-epoch scalars and a histogram of every
  parameter each epoch (``tensorboard --logdir <run folder>/tensorboard``).

They are registered through ``harness_trackers`` like any third-party
tracker; the harness checks ``requires`` and says the ``pip install`` line
when a package is missing. This module imports neither torch nor the
trackers; a tracker's module is imported when a run makes it.
"""

from __future__ import annotations

from harness import TrackerSpec, hookimpl, lazy


@hookimpl
def harness_trackers() -> list[TrackerSpec]:
    return [
        TrackerSpec(
            name="mlflow",
            make=lazy("harness_plugins.trackers.mlflow_reporter:MLflowReporter"),
            requires=("mlflow",),
            install="mlflow-skinny>=2.10",
            description="One MLflow run per harness run (options, job counts, reports; reopened on --resume) "
                        "with one nested per job: params, per-epoch metrics, latency, the ONNX file "
                        "($MLFLOW_TRACKING_URI, else <run folder>/mlruns).",
        ),
        TrackerSpec(
            name="tensorboard",
            make=lazy("harness_plugins.trackers.tensorboard_reporter:TensorBoardReporter"),
            requires=("tensorboard",),
            install="tensorboard>=2.14",
            description="Per-epoch scalars and parameter histograms under <run folder>/tensorboard/<job file stem>/.",
        ),
    ]

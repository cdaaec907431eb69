"""MLflow reporter: one MLflow run per harness run, with a nested run per job.

The harness run's own MLflow run (named after the run folder, tag ``harness.kind=run``) holds the run
options as params (``run.*``), the job counts as metrics (``jobs/ok``, ``jobs/failed``...) and, as
artifacts, ``results.json`` and the reports (``report/``: results.csv, report.md, report.html and the
plots); it ends FINISHED, FAILED when a job failed, or KILLED when the run was interrupted. Each job's
run is nested under it (``mlflow.parentRunId``):

Params: model, dataset, parameter count, the training recipe (``recipe.*``)
and sweep settings (``point.*``). Metrics: every history record each epoch
(``train_loss``, ``train_accuracy``, ``eval_loss``, ``eval_accuracy``,
``lr``, ``seconds``; ``step`` = epoch), then the job's final figures
(``test/accuracy``, ``onnx/accuracy``, ``onnx/bytes``, ``latency/...``).
Artifacts: the exported ONNX file (and its external-data file
``<name>.onnx.*`` when there is one) under ``onnx/``, the variants' files
under ``onnx/variants/``. Tags: ``harness.run``,
``harness.job``, status, failed stage and error.

Store: ``tracking_uri`` given to the constructor, else
``$MLFLOW_TRACKING_URI``, else the local file store ``<run folder>/mlruns``.
MLflow 3 keeps its file store behind ``MLFLOW_ALLOW_FILE_STORE``; for a file
store (the default one, or a ``file:`` URI or plain path the user names) the
reporter sets it to ``true`` unless it is already set: naming one is the opt-in.
To read such a store back (``mlflow ui --backend-store-uri <run>/mlruns``, or
``MlflowClient``), set ``MLFLOW_ALLOW_FILE_STORE=true`` there too. The
``[mlflow]`` extra installs ``mlflow-skinny``, which has no database backends:
a ``sqlite:`` store needs the full ``mlflow`` package.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from harness.reporters import Reporter

from ._common import epoch_scalars, final_scalars, flatten, key

MAX_PARAM = 500
MAX_TAG = 5000


RUN_OPTIONS = ("seed", "max_train_samples", "max_test_samples", "device", "amp", "exporter", "compile",
               "cuda_graphs", "variants", "batch_sizes", "threads")
"""Run options that change a job's figures beside its recipe: params ``run.NAME`` of each job's MLflow run
(without them two runs of one model at other sample caps or devices read alike)."""


class MLflowReporter(Reporter):
    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, **_: Any):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client: Any = None
        self.experiment_id: str | None = None
        self.runs: dict[str, str] = {}  # harness job id -> MLflow run id
        self.run_name = ""
        self.environment: dict[str, Any] = {}
        self.options: dict[str, Any] = {}  # the run options of RUN_OPTIONS, logged as each job's params
        self.parent: str | None = None  # the harness run's own MLflow run

    # -- lifecycle ---------------------------------------------------------------------------------------

    def run_started(self, run_dir: Path, config: dict[str, Any], environment: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (Path(run_dir) / "mlruns").resolve().as_uri()
        if is_file_store(uri):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.tracking_uri = uri
        _check_reachable(uri)
        self.client = MlflowClient(tracking_uri=uri)
        name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "harness"
        found = self.client.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        self.run_name = Path(run_dir).name
        self.environment = environment or {}
        self.options = {name: (config or {}).get(name) for name in RUN_OPTIONS}
        from mlflow.entities import Param

        parent = self.client.create_run(self.experiment_id, run_name=self.run_name,
                                        tags={**self._tags(), "harness.kind": "run"})
        self.parent = parent.info.run_id
        values = [Param(key(f"run.{k}"), _param_text(v)) for k, v in self.options.items() if v is not None]
        if values:
            self.client.log_batch(self.parent, params=values)

    def job_started(self, job_id: str, info: dict[str, Any]) -> None:
        params = {"model": info.get("model"), "dataset": info.get("dataset"), "params": info.get("params"),
                  "flops": info.get("flops")}
        params.update(flatten(info.get("recipe") or {}, "recipe."))
        params.update(flatten(info.get("point") or {}, "point."))
        self._start(job_id, params)

    def epoch_ended(self, job_id: str, record: dict[str, Any], model: Any = None) -> None:
        run_id = self.runs.get(job_id)
        if run_id is None:
            return
        from mlflow.entities import Metric

        step = int(record.get("epoch") or 0)
        now = int(time.time() * 1000)
        metrics = [Metric(key(k), v, now, step) for k, v in epoch_scalars(record).items()]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def job_ended(self, job_id: str, row: dict[str, Any], run_dir: Path) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self.runs.get(job_id)
        if run_id is None:  # failed before the model was built: a run that says so
            run_id = self._start(job_id, {"model": row.get("model"), "dataset": row.get("dataset")})
        step = int((row.get("train") or {}).get("epochs") or 0)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in final_scalars(row).items()]
        tags = [RunTag("harness.status", str(row.get("status")))]
        if row.get("stage"):
            tags.append(RunTag("harness.stage", str(row.get("stage"))))
        if row.get("error"):
            tags.append(RunTag("harness.error", str(row.get("error"))[:MAX_TAG]))
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        onnx_path = (row.get("onnx") or {}).get("path")
        if onnx_path:
            onnx_file = Path(run_dir) / onnx_path
            if onnx_file.is_file():
                self.client.log_artifact(run_id, str(onnx_file), artifact_path="onnx")
                for sibling in sorted(onnx_file.parent.glob(onnx_file.name + ".*")):  # external data
                    if sibling != onnx_file and sibling.is_file():
                        self.client.log_artifact(run_id, str(sibling), artifact_path="onnx")
        for variant in row.get("variants") or []:
            path = variant.get("path") if isinstance(variant, dict) else None
            if path and (Path(run_dir) / path).is_file():
                self.client.log_artifact(run_id, str(Path(run_dir) / path), artifact_path="onnx/variants")
        self.client.set_terminated(run_id, "FINISHED" if row.get("status") == "ok" else "FAILED")
        self.runs.pop(job_id, None)

    def run_ended(self, results: dict[str, Any], run_dir: Path) -> None:
        from mlflow.entities import Metric

        for run_id in self.runs.values():  # jobs that never reported an end (interrupted)
            self.client.set_terminated(run_id, "KILLED")
        self.runs.clear()
        if self.parent is None:
            return
        jobs = [j for j in results.get("jobs") or [] if isinstance(j, dict)]
        counts = {status: sum(1 for j in jobs if j.get("status") == status) for status in ("ok", "failed", "skipped")}
        now = int(time.time() * 1000)
        self.client.log_batch(self.parent, metrics=[Metric(f"jobs/{k}", v, now, 0) for k, v in counts.items()])
        self._log_file(Path(run_dir) / "results.json", "")  # reports_written logs it again once final
        status = "KILLED" if results.get("interrupted") else "FAILED" if counts["failed"] else "FINISHED"
        self.client.set_terminated(self.parent, status)

    def reports_written(self, run_dir: Path, paths: list[Path]) -> None:
        if self.parent is None:
            return
        for path in paths:  # results.json at the top, the reports under report/ (plots under report/plots)
            path = Path(path)
            where = "" if path.name == "results.json" else "report/plots" if path.parent.name == "plots" else "report"
            self._log_file(path, where)

    # -- helpers -----------------------------------------------------------------------------------------

    def _tags(self) -> dict[str, str]:
        """The tags every MLflow run of this harness run carries: its name, the source, the environment."""
        tags = {"harness.run": self.run_name, "mlflow.source.name": "harness"}
        for name in ("torch", "onnxruntime", "device", "cpu", "gpu"):
            if self.environment.get(name):
                tags[f"env.{name}"] = str(self.environment[name])
        return tags

    def _log_file(self, path: Path, artifact_path: str) -> None:
        if path.is_file():
            self.client.log_artifact(self.parent, str(path), artifact_path=artifact_path or None)

    def _start(self, job_id: str, params: dict[str, Any]) -> str:
        from mlflow.entities import Param, RunTag

        tags = {**self._tags(), "harness.job": job_id}
        if self.parent is not None:
            tags["mlflow.parentRunId"] = self.parent  # nested under the harness run's MLflow run
        run = self.client.create_run(self.experiment_id, run_name=job_id, tags=tags)
        run_id = run.info.run_id
        params = {**{f"run.{k}": v for k, v in self.options.items()}, **params}
        values = [Param(key(k), _param_text(v)) for k, v in params.items() if v is not None]
        if values:
            self.client.log_batch(run_id, params=values, tags=[RunTag("harness.job", job_id)])
        self.runs[job_id] = run_id
        return run_id


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM]


def is_file_store(uri: str) -> bool:
    """True for MLflow's file store: a ``file:`` URI or a plain path (no ``scheme://``, a Windows drive aside)."""
    if uri.lower().startswith("databricks"):  # "databricks" alone names the Databricks workspace
        return False
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    return scheme in ("", "file") or len(scheme) == 1  # "C:\\runs" is a path


def _check_reachable(uri: str, timeout_s: float = 3.0) -> None:
    """Raise ConnectionError when an http(s) tracking server does not accept a connection within
    ``timeout_s``: MLflow's client retries for minutes first (a run stalled some 4 minutes, printing
    urllib3's retries), and the reporter is switched off with the reason either way."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach the MLflow tracking server at {uri}: "
                              f"{exc.strerror or exc or 'timed out'}") from None

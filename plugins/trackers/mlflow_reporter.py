"""MLflow reporter: one MLflow run per harness run, with a nested run per job.

The harness run's own MLflow run (named after the run folder; tags ``harness.kind=run``, ``harness.run`` = the
folder's name and ``harness.run_dir`` = its absolute path, as a folder's name is unique only within its
``--out``) holds the run's options as params (``run.*``: the whole stored config, nested keys flattened
(``run.latency.min_runs``), the latency settings' name (``run.latency``: ``--quick``, ``default`` or ``custom``),
the sweep grid (``run.sweep``, cut at 500 characters, marked with a closing ``…``; ``run.sweep_points``)), the job counts as metrics
(``jobs/ok``, ``jobs/failed``...) and, as artifacts, ``results.json`` and the reports (``report/``: results.csv,
report.md, report.html and the plots); it ends FINISHED, FAILED when a job failed, or KILLED when the run was
interrupted (tag ``harness.status``: ok, failed or interrupted).

``--resume`` reopens that MLflow run (found by ``harness.kind``, ``harness.run`` and ``harness.run_dir``; a
moved run folder, or one tracked before the tag existed, gets a new one; a new run in a folder of the same
path, as CI's ``rm -rf`` and the same ``--run-id`` make, is not a resume and gets its own) instead of adding another: it is
RUNNING again, tag ``harness.sessions`` counts the sessions (the job counts are logged at step = session),
and it ends with the whole run's status. MLflow params cannot change, so the params stay the options the
run started with; an option a resume changed (a bigger sweep grid) is a tag ``harness.changed.run.<name>``
with its new value, and each job's own ``run.*`` params say what it ran with. A job run an earlier session
left RUNNING (that process was killed before ``run_ended``) is ended KILLED, ``harness.status=interrupted``.

The reports arrive after ``run_ended`` (``reports_written``): ``run_ended`` ends the run, so it is ended
also when no reports are written (``harness.api.run(reports=False)``, an interrupted run), and
``reports_written`` attaches them and ends it again with the same status, which moves its end time past
them.

Each job's run is nested under it (``mlflow.parentRunId``) and named after the job. A job that fails
before its model is built gets no ``job_started``: its run is made in ``job_ended``, with its model,
dataset, status and error. A job that runs again (a failed or interrupted job on ``--resume``) gets a new
run beside the earlier one: tag ``harness.attempt`` (1, 2...) tells them apart, ``harness.session`` says
which session ran it.

Params: model, dataset, parameter count, the training recipe (``recipe.*``),
sweep settings (``point.*``), the run options that change figures
(:data:`RUN_OPTIONS` as ``run.*``, the latency settings' name ``run.latency`` and ``run.latency.cold_runs``), and
from the finished row: ``evaluated_on`` (the split ``eval_*`` scored: ``val`` or ``test``), ``onnx.exporter``,
``onnx.opset`` and ``ort_vs_eager.stability``. Metrics: every history record each epoch
(``train_loss``, ``train_accuracy``, ``eval_loss``, ``eval_accuracy``,
``lr``, ``seconds``; ``step`` = epoch), then the job's final figures at the last epoch's step (a job that failed
mid-training: the last epoch it reported) (``test/accuracy``, ``onnx/accuracy``, ``onnx/bytes``,
``onnx/activation_bytes``, ``latency/...`` with each row's ``stable`` (1/0) and ``drift_pct``,
``ort_vs_eager/speedup`` and its ``stable``). Artifacts: the exported ONNX file (and its external-data file
``<name>.onnx.*`` when there is one) under ``onnx/``, the variants' files
under ``onnx/variants/``. Tags: ``harness.run``, ``harness.run_dir``,
``harness.job``, ``harness.attempt``, ``harness.status`` (ok, failed, or interrupted for a job the run was
interrupted in, whose run ends KILLED), failed stage and error.

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

from ._common import epoch_scalars, final_scalars, final_step, flatten, job_facts, key

MAX_PARAM = 500
MAX_TAG = 5000
BATCH = 100  # MLflow's most params (or tags) in one log_batch


RUN_OPTIONS = ("seed", "max_train_samples", "max_test_samples", "device", "amp", "exporter", "compile",
               "cuda_graphs", "channels_last", "warmup_steps", "variants", "onnx_tolerance", "batch_sizes",
               "threads", "providers", "profile")
"""Run options that change a job's figures beside its recipe: params ``run.NAME`` of each job's MLflow run
(without them two runs of one model at other sample caps or devices read alike). The latency settings are
there too, by name (:func:`job_options`)."""

NOT_OPTIONS = ("resume", "run_id", "out")
"""Config keys that say how a session found the run, not how it trains: not among the harness run's params
(``out`` is the tag ``harness.run_dir``)."""


def job_options(config: dict[str, Any]) -> dict[str, Any]:
    """The ``run.*`` params of each job: :data:`RUN_OPTIONS`, and the latency settings as ``--quick`` or
    ``default`` (``run.latency``; ``custom`` with every setting when they are neither) and their cold starts
    (``run.latency.cold_runs``), which --quick leaves to ``--cold-runs``."""
    from harness.latency import settings_name

    options = {name: config.get(name) for name in RUN_OPTIONS}
    latency = config.get("latency")
    if isinstance(latency, dict):
        named = settings_name(latency)
        options["latency"] = named or "custom"
        if named:
            options["latency.cold_runs"] = latency.get("cold_runs")
        else:
            options.update(flatten(latency, "latency."))
    return options


def run_params(config: dict[str, Any]) -> dict[str, Any]:
    """The harness run's params (``run.`` left off): its whole stored config, flattened, less
    :data:`NOT_OPTIONS`, with the latency settings' name and the sweep grid's size."""
    from harness.latency import settings_name

    config = {k: v for k, v in config.items() if k not in NOT_OPTIONS}
    params = dict(flatten(config))
    if isinstance(config.get("latency"), dict):
        params["latency"] = settings_name(config["latency"]) or "custom"
    if isinstance(config.get("sweep"), list):
        params["sweep_points"] = len(config["sweep"])
    return params


BOUNDED_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
"""MLflow's HTTP retry settings for a tracking server, unless the environment sets them: its defaults (7 retries,
backoff factor 2, 120 s per request) held a run some 4 minutes per call when the server went away mid-run,
printing urllib3's retries, and a job under --job-timeout failed for a tracker's sake. Bounded, a call fails
within about a minute and the reporter is switched off with one warning, as a tracker failure should be."""


class MLflowReporter(Reporter):
    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, **_: Any):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client: Any = None
        self.experiment_id: str | None = None
        self.runs: dict[str, str] = {}  # harness job id -> MLflow run id
        self.steps: dict[str, int] = {}  # harness job id -> the last epoch it reported
        self.attempts: dict[str, int] = {}  # harness job id -> its MLflow runs under this parent so far
        self.run_name = ""
        self.run_dir = ""
        self.session = 1
        self.environment: dict[str, Any] = {}
        self.options: dict[str, Any] = {}  # job_options: logged as each job's params
        self.parent: str | None = None  # the harness run's own MLflow run
        self.parent_status: str | None = None  # as run_ended ended it

    # -- lifecycle ---------------------------------------------------------------------------------------

    def run_started(self, run_dir: Path, config: dict[str, Any], environment: dict[str, Any]) -> None:
        from mlflow.entities import RunTag
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (Path(run_dir) / "mlruns").resolve().as_uri()
        if is_file_store(uri):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.tracking_uri = uri
        if uri.lower().startswith(("http://", "https://")):
            for name, value in BOUNDED_HTTP.items():  # a user's own setting stands
                os.environ.setdefault(name, value)
        _check_reachable(uri)
        self.client = MlflowClient(tracking_uri=uri)
        name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "harness"
        found = self.client.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        self.run_name = Path(run_dir).name
        self.run_dir = str(Path(run_dir).resolve())
        self.environment = environment or {}
        config = config or {}
        self.options = job_options(config)

        # only a resume continues an MLflow run: a new run in a folder of the same path (CI's rm -rf, then the
        # same --run-id) is a new harness run, and gets its own
        earlier = self._find_parent() if _resumed(Path(run_dir)) else None
        if earlier is None:
            parent = self.client.create_run(self.experiment_id, run_name=self.run_name,
                                            tags={**self._tags(), "harness.kind": "run", "harness.sessions": "1"})
            self.parent, self.session, logged, tagged = parent.info.run_id, 1, {}, {}
        else:  # a resumed run: its MLflow run again, not a second one of the same name
            self.parent = earlier.info.run_id
            self.session = _int(earlier.data.tags.get("harness.sessions"), 1) + 1
            logged, tagged = earlier.data.params, earlier.data.tags
            self.client.update_run(self.parent, status="RUNNING")
            self.client.set_tag(self.parent, "harness.sessions", str(self.session))
            for child in self._search(f"tags.\"mlflow.parentRunId\" = '{self.parent}'"):
                job = child.data.tags.get("harness.job")
                if job:
                    attempt = _int(child.data.tags.get("harness.attempt"), 1)
                    self.attempts[job] = max(self.attempts.get(job, 0), attempt)
                if child.info.status == "RUNNING":  # its session was killed before run_ended could end it
                    self.client.set_tag(child.info.run_id, "harness.status", "interrupted")
                    self.client.set_terminated(child.info.run_id, "KILLED")
        params = {key(f"run.{k}"): _param_text(v) for k, v in run_params(config).items() if v is not None}
        # MLflow refuses to change a param: an option a session changed is a tag with its latest value
        changed = [RunTag(f"harness.changed.{k}", v[:MAX_TAG]) for k, v in params.items()
                   if k in logged and (logged[k] != v or f"harness.changed.{k}" in tagged)]
        self._log_params(self.parent, {k: v for k, v in params.items() if k not in logged}, changed)

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
        self.steps[job_id] = step
        now = int(time.time() * 1000)
        metrics = [Metric(key(k), v, now, step) for k, v in epoch_scalars(record).items()]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def job_ended(self, job_id: str, row: dict[str, Any], run_dir: Path) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self.runs.get(job_id)
        if run_id is None:  # failed before the model was built (no job_started): a run that says so
            run_id = self._start(job_id, {"model": row.get("model"), "dataset": row.get("dataset")})
        step = final_step(row, self.steps.pop(job_id, None))
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in final_scalars(row).items()]
        tags = [RunTag("harness.status", str(row.get("status")))]
        if row.get("stage"):
            tags.append(RunTag("harness.stage", str(row.get("stage"))))
        if row.get("error"):
            tags.append(RunTag("harness.error", str(row.get("error"))[:MAX_TAG]))
        for start in range(0, len(metrics), 1000):  # MLflow's most metrics in one log_batch
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000])
        self._log_params(run_id, {key(k): _param_text(v) for k, v in job_facts(row).items()}, tags)
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

        for run_id in self.runs.values():  # jobs that never reported an end (the run was interrupted)
            self.client.set_tag(run_id, "harness.status", "interrupted")
            self.client.set_terminated(run_id, "KILLED")
        self.runs.clear()
        self.steps.clear()
        if self.parent is None:
            return
        jobs = [j for j in results.get("jobs") or [] if isinstance(j, dict)]
        counts = {status: sum(1 for j in jobs if j.get("status") == status) for status in ("ok", "failed", "skipped")}
        now = int(time.time() * 1000)
        self.client.log_batch(self.parent,
                              metrics=[Metric(f"jobs/{k}", v, now, self.session) for k, v in counts.items()])
        self._log_file(Path(run_dir) / "results.json", "")  # reports_written logs it again once final
        interrupted, failed = bool(results.get("interrupted")), bool(counts["failed"])
        self.client.set_tag(self.parent, "harness.status",
                            "interrupted" if interrupted else "failed" if failed else "ok")
        # ended here, also when no reports follow (harness.api.run(reports=False), an interrupted run)
        self.parent_status = "KILLED" if interrupted else "FAILED" if failed else "FINISHED"
        self.client.set_terminated(self.parent, self.parent_status)

    def reports_written(self, run_dir: Path, paths: list[Path]) -> None:
        if self.parent is None:
            return
        for path in paths:  # results.json at the top, the reports under report/ (plots under report/plots)
            path = Path(path)
            where = "" if path.name == "results.json" else "report/plots" if path.parent.name == "plots" else "report"
            self._log_file(path, where)
        if self.parent_status is not None:  # ended again, as it was: its end time after its last artifacts
            self.client.set_terminated(self.parent, self.parent_status)

    # -- helpers -----------------------------------------------------------------------------------------

    def _tags(self) -> dict[str, str]:
        """The tags every MLflow run of this harness run carries: its name and folder, the source, the
        environment."""
        tags = {"harness.run": self.run_name, "harness.run_dir": self.run_dir[:MAX_TAG],
                "mlflow.source.name": "harness"}
        for name in ("torch", "onnxruntime", "device", "cpu", "gpu"):
            if self.environment.get(name):
                tags[f"env.{name}"] = str(self.environment[name])
        return tags

    def _search(self, filter_string: str) -> list[Any]:
        """Every active run of the experiment that ``filter_string`` selects, oldest first (all pages)."""
        found, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string, max_results=1000,
                                           order_by=["attributes.start_time ASC"], page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found

    def _find_parent(self) -> Any:
        """The MLflow run an earlier session of this harness run made (the oldest, should there be two), or
        None. Matched on the run folder's absolute path: a folder name is unique only within its --out."""
        quoted = any(c in self.run_name for c in "'\"\\")  # then matched below only: no quoting to get wrong
        by_name = "" if quoted else f" and tags.\"harness.run\" = '{self.run_name}'"
        for run in self._search(f"tags.\"harness.kind\" = 'run'{by_name}"):
            if run.data.tags.get("harness.run_dir") == self.run_dir[:MAX_TAG]:
                return run
        return None

    def _log_params(self, run_id: str, params: dict[str, str], tags: list[Any] = ()) -> None:
        """``params`` (names and text ready) and ``tags``, in batches MLflow accepts."""
        from mlflow.entities import Param

        values, tags = [Param(k, v) for k, v in params.items()], list(tags)
        while values or tags:
            self.client.log_batch(run_id, params=values[:BATCH], tags=tags[:BATCH])
            values, tags = values[BATCH:], tags[BATCH:]

    def _log_file(self, path: Path, artifact_path: str) -> None:
        if path.is_file():
            self.client.log_artifact(self.parent, str(path), artifact_path=artifact_path or None)

    def _start(self, job_id: str, params: dict[str, Any]) -> str:
        attempt = self.attempts.get(job_id, 0) + 1  # a failed or interrupted job a resume runs again: 2, 3...
        self.attempts[job_id] = attempt
        tags = {**self._tags(), "harness.job": job_id, "harness.attempt": str(attempt),
                "harness.session": str(self.session)}
        if self.parent is not None:
            tags["mlflow.parentRunId"] = self.parent  # nested under the harness run's MLflow run
        run = self.client.create_run(self.experiment_id, run_name=job_id, tags=tags)
        run_id = run.info.run_id
        params = {**{f"run.{k}": v for k, v in self.options.items()}, **params}
        self._log_params(run_id, {key(k): _param_text(v) for k, v in params.items() if v is not None})
        self.runs[job_id] = run_id
        return run_id


def _int(text: Any, default: int) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def _resumed(run_dir: Path) -> bool:
    """Whether this session resumes the run in ``run_dir``: its results.json lists the resumes
    (``resumed``), the harness writing it before the reporters hear of the run."""
    try:
        data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("resumed"))


def _param_text(value: Any) -> str:
    """A param's text within MLflow's oldest servers' 500 characters; a cut one ends in "…" (a sweep's JSON
    cut without a mark read as whole, and failed to parse; results.json, an artifact, has it whole)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM else text[:MAX_PARAM - 1] + "…"


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
        from harness.text import redact_credentials

        raise ConnectionError(f"cannot reach the MLflow tracking server at {redact_credentials(uri)}: "
                              f"{exc.strerror or exc or 'timed out'}") from None

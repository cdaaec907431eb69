"""Run the job matrix on Ray: one job per Ray task, rows and artifacts merged into one run folder.

``RayExecutor`` is the ``--executor ray`` side of the executor seam in
:mod:`harness.executors`. Ray is an optional extra (``pip install
'ray>=2.9'``): it is imported only when a ``RayExecutor`` is made, which
raises :class:`~harness.errors.HarnessError` saying what to install when it is
missing (so importing this module never needs Ray).

Where things happen
-------------------
* The **driver** (the ``harness run`` process) plans the jobs, submits one
  Ray task per job and collects them in completion order (a ``ray.wait``
  loop). For each finished task it writes the task's artifacts into the run
  folder and then calls ``on_done(job, row)``, which rewrites
  ``results.json`` atomically, exactly as the local executor does; so
  ``--resume`` works unchanged (the runner only hands over unfinished jobs).
* A **task** runs in a Ray worker process, possibly on another machine. It
  rebuilds the plugin registry there (plugins must be installed on every
  node), looks the job's model, dataset and metrics up by name, runs
  :func:`harness.runner.run_job` into a worker-local temporary folder, and
  returns ``(row, {relative path: bytes})`` for every file the job wrote
  (the ``.onnx`` files and their external data, the weights, the variants).
  Nothing assumes a shared filesystem. The driver refuses artifact paths that
  are absolute or climb out of the run folder.
* While a task runs, its job's stages and epochs reach the driver's progress
  display live (a ``ray.util.queue.Queue`` actor made by the driver, drained at
  every poll of the loop; see :class:`_LiveFeed`), so a long job shows
  ``training``, ``epoch 3/10 ...``, ``export``... as a local run does; its
  done line comes after them, when the task returns. Batches are not sent.
* A task that dies (worker crash, out-of-memory kill, lost node, a plugin that
  cannot be imported on the worker) becomes a ``failed`` row with stage
  ``executor`` and a one-line error; the driver never crashes for it.
* Each task asks Ray for ``num_cpus=1`` (plus ``num_gpus=1`` when training on
  CUDA). Every row records where it ran: ``node`` (host name) and
  ``ray_node_id``.

Latency honesty: an exclusive per-host lock
-------------------------------------------
Several tasks run at once on one machine, so a latency measurement could share
cores, caches and memory bandwidth with another job's training. Each task
therefore holds a *host-wide reader-writer lock* (``flock`` on a file in the
machine's temporary folder, see :class:`HostBenchLock`):

* from its start until its benchmark it holds the lock **shared**, so any
  number of jobs load data, train, export and evaluate in parallel;
* when it reaches the ``latency`` stage it swaps to the lock **exclusive**,
  which it gets only once no other harness job on that machine is doing
  anything at all, and keeps it through the ``variants`` stage (which also
  measures) until the job ends. Waiting writers go first (a turnstile file),
  so benchmarks are not starved by a stream of new training jobs.

So every latency figure is measured with no other harness job running on that
host, whatever ``--threads`` asks for. The row says so:
``latency_isolation: "exclusive-host-lock"``, with ``latency_lock_wait_s``
(seconds spent waiting for the lock) and ``latency_window`` (Unix start and end
of the exclusive hold). The lock is per *host*, not per Ray node, so several
Ray nodes started on one machine share it; the kernel releases it when a
worker dies, so a crash cannot wedge the host. It does not keep out processes
that are not harness Ray tasks (Ray's own daemons, other users' work). Where
``fcntl`` does not exist (Windows) no lock is taken and the row says
``latency_isolation: "none"``.

Costs of that choice: training runs with Ray's default of one intra-op thread
per task (``OMP_NUM_THREADS=1``), so ``train.seconds`` is not comparable with a
local run. Time spent waiting for the lock does not count towards ``--job-timeout``
(:func:`_job_clock_paused`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from harness.errors import HarnessError
from harness.progress import Progress
from harness.text import squeeze

if TYPE_CHECKING:  # pragma: no cover
    from harness.executors import OnDone
    from harness.runner import Job, RunContext

log = logging.getLogger(__name__)

ISOLATION = "exclusive-host-lock"
BENCH_STAGES = ("latency", "variants")  # stages that measure time: run alone on the host
_WAIT_POLL_S = 0.5  # ray.wait timeout, so Ctrl-C is seen promptly
_JOB_LOG = logging.getLogger("harness.runner")  # a job's warnings, on the logger a local run says them on
_UNWIND_S = 5.0  # how long a stopped run waits for its cancelled tasks to remove their temporary folders
_TMP_PREFIX = "harness-ray-"


# -- the host-wide benchmark lock ------------------------------------------------------------------------


class HostBenchLock:
    """A reader-writer lock shared by every harness job on this machine (``flock``, writer-preferring).

    ``shared()`` while working, ``exclusive()`` while measuring, ``release()``
    at the end. Two files in ``folder`` (default: the temporary folder): the
    *room* (shared or exclusive) and a *turnstile* that a waiting writer holds
    so no new reader slips in ahead of it. Locks belong to open file
    descriptions, so two instances in one process exclude each other too.
    """

    def __init__(self, folder: Path | str | None = None, name: str | None = None):
        import fcntl  # noqa: F401 - ImportError (Windows) is handled by the caller

        from harness.results import safe_name

        folder = Path(folder or tempfile.gettempdir())
        name = name or f"harness-bench-{safe_name(socket.gethostname())}"
        self._room = self._open(folder / f"{name}.lock")
        self._gate = self._open(folder / f"{name}.gate")
        self.mode: str | None = None

    @staticmethod
    def _open(path: Path) -> int:
        # Read-only is enough for flock, and works on a file another user created. Not through a link:
        # the folder is the shared temporary one, where anyone may plant one to make us create a file. Not
        # waiting on a FIFO planted there either (open() blocked forever), and nothing but a plain file.
        import stat

        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{path} is not a plain file (planted there?)")
        os.set_blocking(fd, True)
        return fd

    def shared(self) -> None:
        import fcntl

        fcntl.flock(self._gate, fcntl.LOCK_EX)  # wait behind any writer already queued
        fcntl.flock(self._gate, fcntl.LOCK_UN)
        fcntl.flock(self._room, fcntl.LOCK_SH)
        self.mode = "shared"

    def exclusive(self) -> None:
        import fcntl

        if self.mode is not None:
            fcntl.flock(self._room, fcntl.LOCK_UN)  # never wait while holding the room
            self.mode = None
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._room, fcntl.LOCK_EX)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        self.mode = "exclusive"

    def release(self) -> None:
        import fcntl

        if self.mode is not None:
            fcntl.flock(self._room, fcntl.LOCK_UN)
            self.mode = None

    def close(self) -> None:
        for fd in (self._room, self._gate):
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass
        self.mode = None


class _NoLock:
    """Stands in for :class:`HostBenchLock` where ``fcntl`` is missing."""

    mode: str | None = None

    def shared(self) -> None: ...
    def exclusive(self) -> None: ...
    def release(self) -> None: ...
    def close(self) -> None: ...


class _Forwarder:
    """Hands progress events to ``sink.put_nowait`` in order, from a thread of its own.

    Not from the job's thread: a Ray task blocked in ``ray.get`` (which a
    ``ray.util.queue.Queue`` put is) lends its CPU back to Ray, which then
    starts one more task than ``--jobs`` allows, and the job would wait for a
    round trip at every stage. A put that fails (the driver and its queue gone)
    ends the forwarding, never the job.
    """

    _STOP = object()

    def __init__(self, sink: Any):
        self.sink = sink
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._send, name="harness-progress", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        self._items.put(item)

    def _send(self) -> None:
        while (item := self._items.get()) is not self._STOP:
            if self.sink is None:
                continue
            try:
                self.sink.put_nowait(item)
            except Exception as exc:  # noqa: BLE001 - only the display loses: the job goes on
                log.debug("stopped forwarding progress to the driver: %s", exc)
                self.sink = None

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait (``timeout_s`` at most) until every event is handed over: the job's done line follows them."""
        self._items.put(self._STOP)
        self._thread.join(timeout_s)


@contextlib.contextmanager
def _job_clock_paused() -> Iterator[None]:
    """Stop --job-timeout's timer (:func:`harness.runner.time_limit`, a real-time itimer) while this runs, and
    start it again with what was left: a small job waiting for the host's benchmark lock while a big one
    trained failed with "the job ran longer than --job-timeout", for the other job's time."""
    import signal

    from harness.runner import timer_usable

    if not timer_usable():
        yield
        return
    left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, left)


class _BenchGate(Progress):
    """The job's progress on a worker: takes the host lock exclusively when the job reaches a measuring
    stage, and forwards each stage and epoch (not the batches: too chatty) to the driver's display.

    ``events`` is anything with ``put_nowait(item)`` (the driver's ``ray.util.queue.Queue``), or None.
    An item is small: ``("stage", job_id, stage, host)`` or ``("epoch", job_id, record, epochs)``; they
    are sent by a :class:`_Forwarder` until :meth:`close`. The host lets the driver name the node of a job
    whose worker dies.
    """

    def __init__(self, lock: HostBenchLock | _NoLock, events: Any = None, host: str | None = None):
        self.lock = lock
        self.host = host
        self.forwarder = _Forwarder(events) if events is not None else None
        self.waited_s: float | None = None
        self.window: list[float] | None = None

    def _forward(self, *event: Any) -> None:
        if self.forwarder is not None:
            self.forwarder.put(event)

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()

    def stage(self, job_id: str, stage: str) -> None:
        if stage in BENCH_STAGES and self.window is None:
            started = time.perf_counter()
            with _job_clock_paused():  # another job's benchmark is not this job's time (--job-timeout)
                self.lock.exclusive()
            self.waited_s = round(time.perf_counter() - started, 3)
            self.window = [time.time(), time.time()]
        # said once the lock is held: a "latency" line means measuring, not waiting for the host
        self._forward("stage", job_id, stage, self.host)

    def epoch(self, job_id: str, record: dict[str, Any], epochs: int) -> None:
        self._forward("epoch", job_id, dict(record), epochs)


class _RecordingReporters:
    """Stands in for the run's reporters on a worker: records each call so the driver can replay it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any], dict[str, Any]]] = []
        self.errors: list[str] = []

    def __bool__(self) -> bool:
        return True

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if method == "epoch_ended":  # (job_id, record, model): the torch model stays on the worker
            args, kwargs = args[:2], {k: v for k, v in kwargs.items() if k != "model"}
        self.events.append((method, list(args), kwargs))


WARNING_EVENT = "_warning"
"""The recorded event that carries a warning the job logged on its worker (not a reporter method)."""


class _WarningsKept(logging.Handler):
    """Records the job's warnings (a failing metric, an exporter's fallback) as events for the driver."""

    def __init__(self, reporters: _RecordingReporters) -> None:
        super().__init__(logging.WARNING)
        self.reporters = reporters

    def emit(self, record: logging.LogRecord) -> None:  # with what makes it the same warning, when it says
        self.reporters.events.append((WARNING_EVENT, [record.getMessage(), getattr(record, "once", None)], {}))


# -- the task (runs in a Ray worker) ----------------------------------------------------------------------

_REGISTRY: Any = None  # one registry per worker process: Ray reuses workers across tasks of a run


def _worker_registry() -> Any:
    global _REGISTRY
    if _REGISTRY is None:
        from harness.registry import build_registry

        _REGISTRY = build_registry()
    return _REGISTRY


def _load_errors(registry: Any, lead: str = "") -> str:
    """`` its plugins' load errors there: ...`` (after ``lead``) for a worker whose registry has them (a plugin
    that imports on the driver but not on this node: its reason was lost, and the message sent the user to the
    driver's ``harness plugins``, where it loads), else ""."""
    errors = [str(e) for e in getattr(registry, "errors", None) or []]
    return f"{lead} its plugins' load errors there: {squeeze('; '.join(errors), 400)}" if errors else ""


def _node_id() -> str | None:
    try:
        import ray

        if not ray.is_initialized():  # not in a Ray worker: asking would start Ray in this process
            return None
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - only informative
        return None


def failed_row(model: str, dataset: str, point: dict[str, Any] | None, error: str,
               stage: str = "executor") -> dict[str, Any]:
    """A row in :func:`harness.runner.run_job`'s shape for a job that never produced one."""
    from harness.results import job_id

    return {
        "id": job_id(model, dataset, point), "model": model, "dataset": dataset, "point": point or None,
        "status": "failed", "stage": stage, "error": squeeze(error), "params": None,
        "reference": None, "train": None, "metrics": None, "onnx": None, "latency": [], "seconds": None,
    }


Events = list[tuple[str, list[Any], dict[str, Any]]]


def run_on_worker(model: str, dataset: str, point: dict[str, Any], config: dict[str, Any], device: str,
                  metric_names: list[str], progress_events: Any = None
                  ) -> tuple[dict[str, Any], dict[str, bytes], Events]:
    """One job, in this (worker) process: ``(row, {path relative to the run folder: bytes}, reporter events)``.

    Plain Python with nothing of Ray in its signature; the reporter events
    (``job_started``, ``epoch_ended`` without the model) are replayed by the
    driver to the run's reporters when the job's result arrives.
    ``progress_events``, when given, is told each stage and epoch as it happens
    (see :class:`_BenchGate`): the driver's live display.
    """
    from harness.manager import one_line
    from harness.results import RunFolder
    from harness.runner import DatasetCache, Job, RunContext, RunOptions, default_providers, run_job

    host = socket.gethostname()
    where = {"node": host, "ray_node_id": _node_id()}
    options = RunOptions.from_config(config)
    registry = None
    try:
        registry = _worker_registry()
        model_spec = registry.get("models", model)
        dataset_spec = registry.get("datasets", dataset)
    except Exception as exc:  # noqa: BLE001 - recorded as the job's failure
        message = (f"{one_line(exc)} (on node {host}: is the plugin that registers it installed there?"
                   f"{_load_errors(registry)})")
        return {**failed_row(model, dataset, point, message), **where}, {}, []
    # a metric no plugin registers here: null, with its reason, as a failing one (the job's model is fine)
    known = registry.specs["metrics"]
    metrics = [known[name] for name in metric_names if name in known]
    missing = [name for name in metric_names if name not in known]

    try:
        lock: HostBenchLock | _NoLock = HostBenchLock()
        isolation = ISOLATION
    except (ImportError, OSError) as exc:  # no fcntl (Windows), or no usable temporary folder
        log.warning("latency is measured without the host lock: %s", exc)
        lock, isolation = _NoLock(), "none"
    gate = _BenchGate(lock, progress_events, host)
    reporters = _RecordingReporters()
    said = _WarningsKept(reporters)  # the driver says them: a worker's log does not reach it
    from harness import runner

    # said once per process there: a worker lives on across jobs and runs, and the driver says each once a run
    runner._METRIC_FAILURES_SAID.clear()
    runner._EXPORT_NOTES_SAID.clear()
    logging.getLogger("harness").addHandler(said)
    try:
        lock.shared()
        _remove_stale_folders()
        with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-") as tmp:
            folder = RunFolder(Path(tmp), {"jobs": []})
            ctx = RunContext(
                options=options, registry=registry, folder=folder,
                cache=DatasetCache(options.data_dir, options.seed), metrics=metrics, device=device,
                progress=gate, reporters=reporters,  # type: ignore[arg-type]
                providers=list(options.providers or default_providers(device)),
            )
            row = run_job(Job(model_spec, dataset_spec, dict(point)), ctx)
            if gate.window is not None:
                gate.window[1] = time.time()
            files = _collect_files(Path(tmp))
    finally:
        logging.getLogger("harness").removeHandler(said)
        lock.release()
        lock.close()
        gate.close()
    if missing:
        why = f"not registered on node {host}{_load_errors(registry, ';')}"
        row["metric_errors"] = {**{name: why for name in missing}, **(row.get("metric_errors") or {})}
        reporters.call(WARNING_EVENT, f"metric(s) {', '.join(missing)} {why}: their values are null",
                       f"missing-metrics:{','.join(missing)}")
    row.update(where)
    row["latency_isolation"] = isolation if gate.window is not None else None
    row["latency_lock_wait_s"] = gate.waited_s
    row["latency_window"] = [round(t, 3) for t in gate.window] if gate.window else None
    return row, files, reporters.events


def _remove_stale_folders() -> None:
    """Remove the job folders (``harness-ray-<pid>-*`` in the temporary folder) of worker processes that are
    gone: a worker killed mid-job (out of memory, a stopped run's shutdown) left its job's ONNX file and
    weights there on every node, a model's size per interruption. POSIX only (a pid is asked with signal 0)."""
    import shutil

    if os.name != "posix":
        return
    for folder in Path(tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*-*"):
        pid = folder.name[len(_TMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or another user's: not ours to judge)
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _collect_files(root: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != "results.json":
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


# -- the driver -------------------------------------------------------------------------------------------


def safe_relative(path: str) -> PurePosixPath:
    """``path`` as a relative POSIX path inside the run folder; ``ValueError`` for absolute or ``..`` paths."""
    text = str(path)
    if not text or "\x00" in text:
        raise ValueError(f"refused artifact path {path!r}")
    posix, windows = PurePosixPath(text.replace("\\", "/")), PureWindowsPath(text)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or text.startswith(("/", "\\")):
        raise ValueError(f"refused absolute artifact path {path!r}")
    parts = [p for p in posix.parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ValueError(f"refused artifact path {path!r}")
    return PurePosixPath(*parts)


def write_artifacts(run_dir: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative path -> bytes) below ``run_dir``, each one atomically."""
    from harness.results import temp_file_beside

    root = Path(run_dir).resolve()
    for rel, data in files.items():
        target = root.joinpath(*safe_relative(rel).parts)
        if root not in target.resolve().parents:  # a symlinked sub-folder pointing elsewhere
            raise ValueError(f"refused artifact path {rel!r}: it leaves the run folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_file_beside(target)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _shows_steps(progress: Progress) -> bool:
    """Does ``progress`` show stages or epochs (not the silent base class, as with ``--no-progress``)?"""
    kind = type(progress)
    return kind.stage is not Progress.stage or kind.epoch is not Progress.epoch


class _LiveFeed:
    """The driver's end of the tasks' stage and epoch events: a ``ray.util.queue.Queue`` (a small actor).

    Made only when the run's progress shows stages; without it (or when the
    actor cannot be made) the tasks get None and the display shows each job
    when it finishes, as before. Every use is best effort: the display never
    stops the run.
    """

    def __init__(self, progress: Progress):
        self.progress = progress
        self.queue: Any = None
        self.seen: dict[str, tuple[str, str | None]] = {}  # job id -> (its last stage, its node), as told
        if not _shows_steps(progress):
            return
        try:
            from ray.util.queue import Queue

            # no CPU held: the queue must never keep a job from a slot (an actor's default is 0 CPUs to run
            # but 1 to be placed, which a head node started with --num-cpus 0 does not have)
            self.queue = Queue(actor_options={"num_cpus": 0})
        except Exception as exc:  # noqa: BLE001 - live progress is a nicety
            log.debug("no live progress from the Ray tasks: %s", exc)

    def drain(self, finishing: "set[str] | frozenset[str]" = frozenset()) -> list[Any]:
        """Show the events queued so far of the jobs in ``finishing`` (those whose done lines come next), in
        order (a non-blocking batch read), and return the others' for :meth:`show` after those lines: the next
        job's "latency", sent the moment the finished one let the host lock go, was shown before the finished
        job's done line, as if the two measured at once."""
        if self.queue is None:
            return []
        try:
            count = self.queue.qsize()
            events = self.queue.get_nowait_batch(count) if count else []
        except Exception as exc:  # noqa: BLE001 - the actor died: no more live lines, the run goes on
            log.debug("live progress from the Ray tasks stopped: %s", exc)
            self.close()
            return []
        now, later = [], []
        for event in events:
            (now if isinstance(event, (tuple, list)) and len(event) > 1 and str(event[1]) in finishing
             else later).append(event)
        self.show(now)
        return later

    def show(self, events: list[Any]) -> None:
        """Show ``events`` (stage and epoch lines) in order."""
        for event in events:
            try:
                if event[0] == "stage":
                    self.seen[str(event[1])] = (str(event[2]), str(event[3]) if len(event) > 3 else None)
                    self.progress.stage(str(event[1]), str(event[2]))
                elif event[0] == "epoch":
                    self.progress.epoch(str(event[1]), dict(event[2]), int(event[3]))
            except Exception as exc:  # noqa: BLE001 - a malformed event (another harness version on a node)
                log.debug("ignored a progress event from a Ray task: %s", exc)

    def close(self) -> None:
        actor_queue, self.queue = self.queue, None
        if actor_queue is not None:
            try:
                actor_queue.shutdown(force=True)  # ray.kill: no grace period to wait for on Ctrl-C
            except Exception as exc:  # noqa: BLE001 - best effort: the actor dies with the driver anyway
                log.debug("could not stop the progress queue: %s", exc)


def _extra_sys_path() -> list[str]:
    """Entries of this process's ``sys.path`` that a fresh interpreter would not have (tests, ``-m`` cwd)."""
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    extra = []
    for entry in sys.path:
        if entry and os.path.exists(entry) and not os.path.abspath(entry).startswith(prefixes):
            extra.append(os.path.abspath(entry))
    return list(dict.fromkeys(extra))


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """``HarnessError`` when ``[ray://]host:port`` does not accept a TCP connection (``auto`` is not checked)."""
    scheme, _, rest = address.rpartition("://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():  # no port: Ray Client's, or the head's GCS port (ray.init's defaults)
        host, port = rest, ("10001" if scheme == "ray" else "6379")
    if not host or scheme not in ("", "ray") or host in ("auto", "local"):
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise HarnessError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _stop_handlers() -> dict[int, Any]:
    """The SIGTERM handler in place (harness run's, which stops a run resumably with 143), on the main thread:
    ``ray.init`` puts its own there, and a SIGTERM then ended a Ray run with exit 1, no reports, no
    ``interrupted`` mark."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signal.SIGTERM: signal.getsignal(signal.SIGTERM)}


def _restore_stop_handlers(handlers: dict[int, Any]) -> None:
    import signal

    for signum, handler in handlers.items():
        if handler is not None:  # None: a handler not installed from Python, which cannot be put back
            signal.signal(signum, handler)


class RayExecutor:
    """Every job a Ray task; see the module docstring.

    ``address``: a Ray cluster (``ray://host:10001``, ``host:6379`` or
    ``auto``); without it ``RAY_ADDRESS`` is used when set, else a fresh
    local instance is started with ``num_cpus`` CPUs (default: all) and this
    process's import path. ``max_retries``: Ray's retries of a task whose worker
    died (default 0: a crash becomes a failed row at once). Other keyword
    arguments go to ``ray.init`` (e.g. ``runtime_env``).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 0,
                 **init_kwargs: Any):
        try:
            import ray
        except ImportError as exc:  # the same message as make_executor's, whoever constructs us
            raise HarnessError(f'--executor ray needs Ray: pip install "ray>=2.9" ({exc})') from None
        self._ray = ray
        self.address = address or None
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.init_kwargs = init_kwargs
        self._started = False
        self.warned: set[str] = set()  # the jobs' warnings said, once per run (see _collect)

    # -- connection ---------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join (or start) Ray unless this process already did; ``HarnessError`` when that fails."""
        ray = self._ray
        if ray.is_initialized():
            return
        from harness.manager import one_line

        kwargs: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False,
                                  "log_to_driver": False, "logging_level": logging.ERROR}
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address:
            kwargs["address"] = address
            if self.num_cpus is not None:
                log.warning("--jobs/num_cpus is ignored when joining the Ray cluster at %s", address)
        else:
            kwargs["address"] = "local"
            if self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
                from harness.latency import usable_cores

                cores = usable_cores()
                if self.num_cpus > cores:  # accepted, and the header then says "8 CPU(s)" on a 2-core machine
                    log.warning("--jobs %d is more than this machine's %d cores: training runs oversubscribed "
                                "(latency is still measured one job at a time)", self.num_cpus, cores)
            runtime_env = dict(self.init_kwargs.get("runtime_env") or {})
            env_vars = dict(runtime_env.get("env_vars") or {})
            paths = [env_vars.get("PYTHONPATH", ""), *_extra_sys_path(), os.environ.get("PYTHONPATH", "")]
            env_vars["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
            runtime_env["env_vars"] = env_vars
            kwargs["runtime_env"] = runtime_env
        kwargs.update({k: v for k, v in self.init_kwargs.items() if k != "runtime_env" or address})
        if address:
            _check_reachable(address)  # ray.init retries an unreachable address for minutes
        handlers = _stop_handlers()
        try:
            with warnings.catch_warnings():  # Ray Client's own retries warn with a file path and a source line
                warnings.simplefilter("ignore", UserWarning)
                ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - shown as one line, exit 2
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            hint = ("; it answered but took no driver: if it uses token authentication (Ray's default where "
                    "~/.ray/auth_token exists), set RAY_AUTH_MODE=token, or use --ray-address auto on its head node"
                    if address and address != "auto" and not os.environ.get("RAY_AUTH_MODE") else "")
            raise HarnessError(f"could not connect to {where}: {one_line(exc)}{hint}") from None
        finally:
            _restore_stop_handlers(handlers)
        self._started = True

    def close(self) -> None:
        """Disconnect (and stop a local instance) if :meth:`connect` started it."""
        if self._started:
            self._started = False
            self._ray.shutdown()

    def resolve_device(self, requested: str) -> str:
        """The training device for jobs on the cluster (not on this driver): ``auto`` is ``cuda``
        when the cluster has a GPU; ``cuda`` is taken as asked even if the driver has none, but not for a
        local instance, which has this machine's GPUs: with none, no GPU could ever join and the CUDA
        tasks waited for one forever."""
        if requested != "auto":
            if requested.startswith("cuda") and not (self.address or os.environ.get("RAY_ADDRESS")):
                from harness.train import resolve_device

                return resolve_device(requested)
            return requested
        self.connect()
        return "cuda" if self._ray.cluster_resources().get("GPU") else "cpu"

    def describe(self) -> str:
        ray = self._ray
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            resources = ray.cluster_resources()
        except Exception:  # noqa: BLE001 - only informative
            return "Ray"
        return (f"Ray: {len(nodes)} node(s), {resources.get('CPU', 0):g} CPU(s), "
                f"{resources.get('GPU', 0):g} GPU(s)")

    # -- the run -------------------------------------------------------------------------------------------
    def run(self, jobs: Sequence["Job"], ctx: "RunContext", on_done: "OnDone") -> None:
        try:
            if jobs:  # a resume with nothing left connected only to resolve the device: closed all the same
                self.connect()
                self._run(self._ray, jobs, ctx, on_done)
        finally:
            self.close()

    def _run(self, ray: Any, jobs: Sequence["Job"], ctx: "RunContext", on_done: "OnDone") -> None:
        gpu = ctx.device.startswith("cuda")
        resources: dict[str, Any] = {"num_cpus": 1, "num_gpus": 1} if gpu else {"num_cpus": 1}
        ctx.progress.note(f"{self.describe()}; {len(jobs)} job(s), each a task with "
                          f"{', '.join(f'{k}={v}' for k, v in resources.items())}")
        if gpu and not ray.cluster_resources().get("GPU"):
            ctx.progress.note("warning: the Ray cluster has no GPU now; CUDA jobs wait until one joins")
        task = ray.remote(run_on_worker).options(max_retries=self.max_retries, **resources)
        config = ctx.options.to_config()
        metric_names = [m.name for m in ctx.metrics]
        pending: dict[Any, "Job"] = {}
        feed = _LiveFeed(ctx.progress)
        try:
            for job in jobs:
                ref = task.remote(job.model.name, job.dataset.name, dict(job.point), config, ctx.device,
                                  metric_names, feed.queue)
                pending[ref] = job
            finished = 0
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=_WAIT_POLL_S)
                # the stages so far of every job; a task puts each event (and waits for the queue to take
                # it) before it returns, so a finished job's lines all come before its done line, and the
                # others' after it
                later = feed.drain({pending[ref].id for ref in ready})
                for ref in ready:
                    job = pending.pop(ref)
                    row = self._collect(ray, ref, job, ctx, feed.seen.get(job.id))
                    finished += 1
                    ctx.progress.job(finished, len(jobs), job.id)
                    on_done(job, row)
                feed.show(later)
        except BaseException as exc:  # Ctrl-C (or a driver-side error): stop what is still queued or running
            try:  # not the tasks that have just finished: cancelling one as it completes aborted Ray's
                # driver once in four Ctrl-Cs (task_manager "Tried to complete task that was not pending")
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0) if pending else ([], [])
            except BaseException:  # noqa: BLE001 - best effort (a second Ctrl-C too): the first is re-raised below
                done = []
            cancelled = [r for r in pending if r not in set(done)]
            if isinstance(exc, KeyboardInterrupt):  # the finished ones are kept, not run again by --resume
                self._keep_finished([r for r in done if r in pending], pending, ctx, on_done, feed)
            for ref in cancelled:
                try:
                    ray.cancel(ref, force=False)
                except Exception as exc:  # noqa: BLE001 - best effort: the run is stopping anyway
                    log.debug("could not cancel a Ray task: %s", exc)
            try:  # their KeyboardInterrupt unwinds the job's temporary folder, if Ray is not shut down first
                if cancelled:
                    ray.wait(cancelled, num_returns=len(cancelled), timeout=_UNWIND_S)
            except BaseException:  # noqa: BLE001 - best effort (a second Ctrl-C too): the first is re-raised below
                pass
            raise
        finally:
            feed.close()

    def _keep_finished(self, refs: list[Any], pending: dict[Any, "Job"], ctx: "RunContext", on_done: "OnDone",
                       feed: "_LiveFeed") -> None:
        """Record the jobs of ``refs``, tasks that finished as the run was stopped, as the loop would have; a
        second Ctrl-C or a refused write leaves the rest to --resume."""
        try:
            for ref in refs:
                job = pending.pop(ref)
                on_done(job, self._collect(self._ray, ref, job, ctx, feed.seen.get(job.id)))
        except BaseException as exc:  # noqa: BLE001 - best effort: the run is stopping anyway
            log.debug("stopped keeping the jobs that had finished: %s", exc)

    def _collect(self, ray: Any, ref: Any, job: "Job", ctx: "RunContext",
                 seen: tuple[str, str | None] | None = None) -> dict[str, Any]:
        """The job's row from its finished task; ``seen``: its last stage and node as the live feed told them,
        kept in the row of a job whose worker died (it read stage executor, node null)."""
        from harness.manager import one_line

        try:
            row, files, events = ray.get(ref)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a dead worker or a task error fails this job only
            cause = getattr(exc, "cause", None)
            error = one_line(cause if isinstance(cause, BaseException) else exc)
            stage, node = seen or ("executor", None)
            row = failed_row(job.model.name, job.dataset.name, job.point, f"Ray task failed: {error}"
                             + (f" (on node {node}, in its {stage} stage)" if seen else ""), stage=stage)
            row.update(reference=dict(job.model.reference) or None, node=node, ray_node_id=None,
                       latency_isolation=None)
            return row
        for method, args, kwargs in events:  # the reporters' job_started / epoch_ended, late but complete
            if method == WARNING_EVENT:  # said once per run, as a local run says them, not once per worker
                key = args[1] if len(args) > 1 and args[1] else args[0] if args else None
                if key is not None and key not in self.warned:
                    self.warned.add(key)
                    _JOB_LOG.warning("%s", args[0])
                continue
            ctx.reporters.call(method, *args, **kwargs)
        try:
            write_artifacts(ctx.folder.path, files)
        except Exception as exc:  # noqa: BLE001 - e.g. disk full, a refused path
            from harness.errors import StorageError, storage_failure

            refused = storage_failure(exc)
            if refused is not None:  # as in a local run: stop with exit 74 and the --resume command
                from harness.runner import storage_stop

                raise storage_stop(StorageError(f"cannot write in {ctx.folder.path}: {refused.strerror or refused}"),
                                   ctx.folder.path) from None
            row.update(status="failed", stage="executor",
                       error=f"could not store the job's files in the run folder: {one_line(exc)}")
        return row

"""--executor ray: a real local Ray instance runs the matrix; rows and files match a local run's.

The Ray tests share one local instance (``ray.init(num_cpus=2)``) per module.
Workers are separate processes, so the fake third-party plugins are put on
their import path through ``runtime_env`` (the driver sees them on sys.path).
The lock and path helpers are tested without Ray.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import re
import socket
import sys
from pathlib import Path

import pytest
from conftest import THIRDPARTY, SitePackages

from harness.errors import HarnessError
from harness.latency import QUICK
from harness.progress import LineProgress, Progress
from harness.ray_executor import HostBenchLock, _BenchGate, _NoLock, safe_relative, write_artifacts
from harness.registry import build_registry
from harness.reporters import Reporter
from harness.runner import RunOptions, execute

MATRIX = ["mnist-mlp", "mnist-lightweight-attention", "fault-build"]

CRASH_PLUGIN = '''\
"""A model whose build kills the process it runs in (a worker crash under Ray)."""
import os

from harness import ModelSpec, hookimpl


def build_crash(num_classes, input_shape, **kwargs):
    os._exit(3)


@hookimpl
def harness_models():
    return [ModelSpec("ray-crash", build_crash, "kills its worker")]
'''


# -- without Ray ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x.onnx", "onnx/../../x", "", "C:\\x.onnx", "\\\\srv\\x", ".."])
def test_unsafe_artifact_paths_are_refused(bad, tmp_path):
    with pytest.raises(ValueError):
        safe_relative(bad)
    with pytest.raises(ValueError):
        write_artifacts(tmp_path / "run", {bad: b"x"})
    assert not (tmp_path / "x.onnx").exists()


def test_artifacts_are_written_below_the_run_folder(tmp_path):
    write_artifacts(tmp_path, {"onnx/a.onnx": b"1", "./weights/b.pt": b"2"})
    assert (tmp_path / "onnx" / "a.onnx").read_bytes() == b"1"
    assert (tmp_path / "weights" / "b.pt").read_bytes() == b"2"


def _free(path: Path, exclusive: bool) -> bool:
    """Could a third party take ``path`` now (exclusively, or shared)?"""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_host_lock_shares_work_and_excludes_benchmarks(tmp_path):
    pytest.importorskip("fcntl", reason="flock is POSIX")
    room = tmp_path / "t.lock"
    a, b = HostBenchLock(tmp_path, "t"), HostBenchLock(tmp_path, "t")
    try:
        a.shared()
        b.shared()  # two jobs train side by side
        assert not _free(room, exclusive=True) and _free(room, exclusive=False)
        b.release()
        a.exclusive()  # a benchmark: nobody else, not even a training job
        assert not _free(room, exclusive=False)
        a.release()
        assert _free(room, exclusive=True)
    finally:
        a.close()
        b.close()


def test_missing_ray_is_a_clear_harness_error(monkeypatch):
    from harness.executors import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(HarnessError, match=r'pip install "ray>=2\.9"'):
        make_executor("ray")


def test_an_unreachable_cluster_is_a_clear_harness_error():
    pytest.importorskip("ray", reason='Ray is an optional extra: pip install "ray>=2.9"')
    from harness.ray_executor import RayExecutor

    with pytest.raises(HarnessError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        RayExecutor(address="127.0.0.1:1").connect()


def test_an_address_without_a_port_is_checked_at_rays_default_port(monkeypatch):
    """ray://host (no port) skipped the check: ray.init retried for 35 s and printed Ray Client's warning."""
    pytest.importorskip("ray", reason='Ray is an optional extra: pip install "ray>=2.9"')
    from harness import ray_executor

    asked = []

    def connection(where, timeout):
        asked.append(where)
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(ray_executor.socket, "create_connection", connection)
    for address, where in (("ray://head", ("head", 10001)), ("head", ("head", 6379)),
                           ("ray://head:10002", ("head", 10002)), ("[::1]:6380", ("::1", 6380))):
        with pytest.raises(HarnessError, match=f"cannot reach the Ray cluster at {re.escape(address)}: "):
            ray_executor._check_reachable(address)
        assert asked.pop() == where
    for address in ("auto", "local", "http://head:8265"):  # Ray's own to resolve
        ray_executor._check_reachable(address)
    assert asked == []


@pytest.mark.skipif(os.name != "posix", reason="a worker's pid is asked with signal 0")
def test_a_dead_workers_job_folder_is_removed_by_the_next_job_on_its_node(tmp_path, monkeypatch):
    """A worker killed mid-job (a stopped run's shutdown, out of memory) left its job's ONNX file and weights
    in the node's temporary folder, a model's size per interruption, forever."""
    import subprocess
    import tempfile

    from harness import ray_executor

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead, alive, mine = (tmp_path / f"harness-ray-{pid}-abc" for pid in (gone.pid, os.getppid(), os.getpid()))
    for folder in (dead, alive, mine):
        (folder / "onnx").mkdir(parents=True)
        (folder / "onnx" / "m.onnx").write_bytes(b"x" * 100)
    other = tmp_path / "harness-ray-notapid"
    other.mkdir()
    ray_executor._remove_stale_folders()
    assert not dead.exists() and alive.exists() and mine.exists() and other.exists()


def test_a_plugin_that_fails_on_a_worker_says_why_there_and_spares_other_jobs(tmp_path, monkeypatch):
    """A plugin importable on the driver but not on a worker: the worker's ImportError was nowhere, the message
    sent the user to the driver's `harness plugins` (where it loads), and every built-in model's job failed too,
    for the plugin's metric in the run's metric set. Run in this process: run_on_worker is plain Python."""
    from harness import ray_executor
    from harness.manager import LoadError

    registry = build_registry()
    registry.errors.append(LoadError("walkplug", "walkplug", "failed to import walkplug: ImportError: no libwalk.so"))
    monkeypatch.setattr(ray_executor, "_REGISTRY", registry)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    config = _options(tmp_path, "ray", ["mnist-mlp"], max_test_samples=64).to_config()
    row, _, _ = ray_executor.run_on_worker("walk-slow", "synthetic", {}, config, "cpu", ["accuracy"])
    assert row["status"] == "failed" and "load errors there: plugin 'walkplug' (from walkplug): failed to import " \
        "walkplug: ImportError: no libwalk.so" in row["error"]
    row, files, events = ray_executor.run_on_worker("mnist-mlp", "synthetic", {}, config, "cpu",
                                                     ["accuracy", "walk-bad"])
    assert row["status"] == "ok" and row["metrics"]["accuracy"] is not None and files
    assert row["metric_errors"]["walk-bad"].startswith("not registered on node ")
    assert "no libwalk.so" in row["metric_errors"]["walk-bad"]
    said = [args[0] for method, args, _ in events if method == ray_executor.WARNING_EVENT]
    assert any(line.startswith("metric(s) walk-bad not registered on node ") for line in said), said


def test_cuda_on_a_local_ray_instance_without_a_gpu_is_refused_at_once(monkeypatch):
    """No GPU can join the instance a run starts on this machine: its CUDA tasks waited forever."""
    pytest.importorskip("ray", reason='Ray is an optional extra: pip install "ray>=2.9"')
    import torch

    from harness.ray_executor import RayExecutor

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: a local instance can run CUDA tasks")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(HarnessError, match="torch sees no CUDA device"):
        RayExecutor().resolve_device("cuda")
    assert RayExecutor(address="10.0.0.1:6379").resolve_device("cuda") == "cuda"  # a cluster's GPUs may join


FRESH_PROCESS = """
import logging, signal, sys
from pathlib import Path
import ray
from harness import runner
from harness.errors import HarnessError
from harness.latency import QUICK
from harness.progress import Progress
from harness.ray_executor import RayExecutor
from harness.registry import build_registry

def stop(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
executor = RayExecutor(num_cpus=1)
executor.connect()
print("sigterm kept", signal.getsignal(signal.SIGTERM) is stop)
executor.close()

def refused(*args, **kwargs):  # a usage error found after the device was resolved (Ray started)
    raise HarnessError("refused")
runner.open_run_folder = refused
options = runner.RunOptions(models=["mnist-mlp"], datasets=["synthetic"], epochs=1, max_train_samples=64,
                            latency=QUICK, out=Path(sys.argv[1]), executor="ray", device="auto")
try:
    runner.execute(build_registry(), options, Progress(), executor_options={"num_cpus": 1})
except HarnessError as exc:
    print("raised", exc)
print("ray left running", ray.is_initialized())
"""


def test_ray_keeps_the_runs_sigterm_handler_and_is_stopped_after_a_usage_error(tmp_path):
    """ray.init put its own SIGTERM handler in place of harness run's: a SIGTERM ended a Ray run with exit 1,
    no reports and no interrupted mark (143 locally). A usage error found after Ray started left it running in
    the process: the next api.run joined it and its jobs= were ignored."""
    pytest.importorskip("ray", reason='Ray is an optional extra: pip install "ray>=2.9"')
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env={**env, "HARNESS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["sigterm kept True", "raised refused", "ray left running False"], done.stdout


# -- with a local Ray instance -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install "ray>=2.9"')
    root = tmp_path_factory.mktemp("ray")
    site = SitePackages(root / "site")
    site.install("harness-faulty", {"faulty": "faulty_plugin"})
    (site.root / "raycrash_plugin.py").write_text(CRASH_PLUGIN)
    site.install("harness-raycrash", {"raycrash": "raycrash_plugin"})
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(site.root), os.environ.get("PYTHONPATH")) if p),
           "HARNESS_OFFLINE": "1", "HARNESS_CACHE_DIR": str(root / "cache")}
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site.root))
        for key, value in env.items():
            mp.setenv(key, value)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": env})
        try:
            yield build_registry()
        finally:
            ray.shutdown()
            for name in [m for m in sys.modules if m in {p.stem for p in THIRDPARTY.glob("*.py")} | {"raycrash_plugin"}]:
                del sys.modules[name]


def _options(out: Path, executor: str, models: list[str], **extra) -> RunOptions:
    return RunOptions(models=models, datasets=["synthetic"], metrics=["accuracy"], epochs=1, device="cpu",
                      max_train_samples=128, batch_sizes=[1], latency=QUICK, torch_latency=False,
                      exporter="torchscript", out=out, run_id=executor, executor=executor, **extra)


class Recorder(Reporter):
    def __init__(self):
        self.calls = []

    def job_started(self, job_id, info):
        self.calls.append(("job_started", job_id, info["params"]))

    def epoch_ended(self, job_id, record, model=None):
        self.calls.append(("epoch_ended", job_id, record["epoch"]))

    def job_ended(self, job_id, row, run_dir):
        self.calls.append(("job_ended", job_id, row["status"]))


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    local_seen, ray_seen = Recorder(), Recorder()
    shown = LineProgress(io.StringIO(), heartbeat_s=3600)
    local = execute(cluster, _options(out, "local", MATRIX), Progress(), reporters=[local_seen])
    remote = execute(cluster, _options(out, "ray", MATRIX), shown, reporters=[ray_seen])
    local.seen, remote.seen = local_seen.calls, ray_seen.calls
    remote.lines = shown.stream.getvalue().splitlines()
    return local, remote


def _by_id(folder) -> dict[str, dict]:
    return {job["id"]: job for job in json.loads(folder.results_path.read_text())["jobs"]}


def test_ray_run_has_the_local_runs_jobs(runs):
    local, remote = _by_id(runs[0]), _by_id(runs[1])
    assert sorted(remote) == sorted(local) == sorted(f"{m}@synthetic" for m in MATRIX)
    for job_id, row in local.items():
        other = remote[job_id]
        for key in ("model", "dataset", "status", "stage", "error", "params"):
            assert other[key] == row[key], (job_id, key)
        assert (other["onnx"] or {}).get("path") == (row["onnx"] or {}).get("path")
        assert len(other["latency"]) == len(row["latency"])
    assert local["fault-build@synthetic"]["status"] == "failed"  # a failing job on a worker: as locally
    assert remote["fault-build@synthetic"]["stage"] == "build"
    assert "ValueError: cannot build this network" in remote["fault-build@synthetic"]["error"]


def test_a_ray_run_shows_each_jobs_stages_and_epochs_before_its_done_line(runs):
    """Under Ray the display said nothing about a job until it finished, however many minutes it ran."""
    lines = runs[1].lines
    for model in MATRIX:
        job = f"{model}@synthetic"
        (done,) = [i for i, line in enumerate(lines) if re.fullmatch(rf"\[\d/3\] {re.escape(job)}", line)]
        assert lines[done + 1].startswith(f"{lines[done]}: "), lines  # its done line, right after
        running = [line for line in lines if line.startswith(f"[running] {job}: ")]
        assert [line for line in lines if job in line][:len(running)] == running, lines  # all before the done line
        said = [line.removeprefix(f"[running] {job}: ") for line in running]
        if model == "fault-build":
            assert said == ["loading data", "build"], lines
            assert "FAILED at build" in lines[done + 1]
        else:
            assert said[:3] == ["loading data", "build", "train"], lines  # then its epoch, during training
            assert said[3].startswith("epoch 1/1 loss ") and " test acc " in said[3], lines
            assert {"export", "latency"} <= set(said[4:]), lines


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="--job-timeout's timer is POSIX")
def test_waiting_for_the_host_lock_does_not_count_against_job_timeout():
    """A small job waiting for the benchmark lock while a big one trained failed with "the job ran longer than
    --job-timeout 5 s", for the other job's time. The clock stops while it waits, and goes on after."""
    import signal
    import time

    from harness.runner import time_limit

    class Busy(_NoLock):
        def exclusive(self):
            time.sleep(0.6)  # another job's benchmark

    gate = _BenchGate(Busy())
    with time_limit(0.4):
        gate.stage("m@d", "latency")  # a JobTimeout here, before
        left, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < left <= 0.4 and gate.waited_s >= 0.6
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_a_ray_task_forwards_stages_and_epochs_and_a_failing_queue_never_fails_it():
    import queue

    events = queue.Queue()
    gate = _BenchGate(_NoLock(), events, "node-7")
    gate.stage("m@d", "train")
    gate.epoch("m@d", {"epoch": 1, "train_loss": 0.5}, 2)
    gate.batch("m@d", 1, 4)  # too chatty to send
    gate.stage("m@d", "latency")
    gate.close()  # as the task ends: every event handed over
    assert [events.get_nowait() for _ in range(events.qsize())] == [
        ("stage", "m@d", "train", "node-7"),
        ("epoch", "m@d", {"epoch": 1, "train_loss": 0.5}, 2),
        ("stage", "m@d", "latency", "node-7"),
    ]
    assert gate.window is not None  # the lock is still taken at a measuring stage

    class Gone:
        calls = 0

        def put_nowait(self, item):
            Gone.calls += 1
            raise RuntimeError("the queue's actor died")

    gate = _BenchGate(_NoLock(), Gone())
    gate.stage("m@d", "train")
    gate.stage("m@d", "latency")
    gate.close()
    assert Gone.calls == 1 and gate.window is not None  # given up after the first failure, the job goes on


def test_reporters_hear_the_same_events(runs):
    local, remote = runs
    assert sorted(remote.seen) == sorted(local.seen)
    assert ("epoch_ended", "mnist-mlp@synthetic", 1) in remote.seen


def test_ray_artifacts_land_in_the_run_folder_and_load(runs):
    import onnx

    folder = runs[1]
    for row in _by_id(folder).values():
        if row["status"] != "ok":
            continue
        path = folder.path / row["onnx"]["path"]
        assert path.is_file() and path.stat().st_size == row["onnx"]["bytes"]
        onnx.checker.check_model(onnx.load(str(path)))
        assert (folder.path / row["train"]["weights"]).is_file()
        assert 0.0 <= row["onnx"]["metrics"]["accuracy"] <= 1.0
    assert not list(folder.path.glob("**/*.tmp"))


def test_rows_say_where_and_how_latency_was_measured(runs):
    rows = [row for row in _by_id(runs[1]).values() if row["status"] == "ok"]
    assert rows
    for row in rows:
        assert row["node"] == socket.gethostname() and row["ray_node_id"]
        assert row["latency_isolation"] == "exclusive-host-lock"
        assert row["latency_lock_wait_s"] >= 0
    windows = sorted(row["latency_window"] for row in rows)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end <= start, "two latency stages overlapped on one host"


def test_resume_on_ray_reruns_only_unfinished_jobs(cluster, runs):
    folder = runs[1]
    before = _by_id(folder)
    resumed = execute(cluster, _options(folder.path.parent, "ray", MATRIX, resume=True), Progress())
    after = _by_id(resumed)
    assert sorted(after) == sorted(before)
    for job_id, row in before.items():
        if row["status"] == "ok":
            assert after[job_id] == row  # not run again
    assert after["fault-build@synthetic"]["status"] == "failed"
    assert len(resumed.data["resumed"]) == 1


def test_a_worker_crash_is_a_failed_row(cluster, tmp_path):
    folder = execute(cluster, _options(tmp_path, "ray", ["ray-crash"]), Progress())
    (row,) = _by_id(folder).values()
    assert row["id"] == "ray-crash@synthetic"
    assert row["status"] == "failed" and row["stage"] == "executor"
    assert "Ray task failed" in row["error"] and "\n" not in row["error"]
    assert row["onnx"] is None and row["latency"] == []


def test_the_next_jobs_stage_comes_after_the_finished_jobs_done_line():
    """The next job's "latency", sent the moment the finished one let the host lock go, was shown before the
    finished job's done line: the two read as measuring at once (their windows never overlapped)."""
    from harness.ray_executor import _LiveFeed

    class Queue:
        items = [("stage", "a@d", "latency", "n"), ("stage", "b@d", "latency", "n"), ("epoch", "c@d", {}, 1)]

        def qsize(self):
            return len(self.items)

        def get_nowait_batch(self, count):
            taken, self.items = self.items[:count], self.items[count:]
            return taken

    class Said(Progress):
        lines: list = []

        def stage(self, job_id, stage):
            self.lines.append(f"{job_id}: {stage}")

        def epoch(self, job_id, record, epochs):
            self.lines.append(f"{job_id}: epoch")

    feed = _LiveFeed(Progress())
    feed.progress, feed.queue = Said(), Queue()
    later = feed.drain({"a@d"})
    assert Said.lines == ["a@d: latency"]  # the finishing job's, before its done line
    Said.lines.append("a@d: done")
    feed.show(later)
    assert Said.lines == ["a@d: latency", "a@d: done", "b@d: latency", "c@d: epoch"]
    assert feed.seen == {"a@d": ("latency", "n"), "b@d": ("latency", "n")}


def test_a_job_whose_worker_died_keeps_the_stage_and_node_the_live_feed_told(tmp_path):
    """A worker killed mid-training: the row said stage executor, node null, though the driver had just shown
    the job training on that node."""
    pytest.importorskip("ray", reason='Ray is an optional extra: pip install "ray>=2.9"')
    from types import SimpleNamespace

    from harness.ray_executor import RayExecutor, _LiveFeed

    class Died:
        @staticmethod
        def get(ref):
            raise RuntimeError("The worker died unexpectedly while executing this task.")

    registry = build_registry()
    job = SimpleNamespace(id="mnist-mlp@synthetic", point={}, model=registry.get("models", "mnist-mlp"),
                          dataset=registry.get("datasets", "synthetic"))
    feed = _LiveFeed(Progress())  # shows no steps: no queue, told here as drain() would be
    feed.seen[job.id] = ("train", "gpu-node-3")
    executor = RayExecutor()
    row = executor._collect(Died, None, job, SimpleNamespace(), feed.seen.get(job.id))
    assert (row["status"], row["stage"], row["node"]) == ("failed", "train", "gpu-node-3")
    assert row["error"].endswith("(on node gpu-node-3, in its train stage)")
    row = executor._collect(Died, None, job, SimpleNamespace())  # nothing told (--no-progress): as before
    assert (row["stage"], row["node"]) == ("executor", None)


def test_ctrl_c_keeps_the_jobs_whose_tasks_had_just_finished(tmp_path):
    """A task that finished in the same poll as the Ctrl-C was neither cancelled nor recorded: its work was
    thrown away and --resume ran it again. Ray stands in here (its wait, get and cancel), the loop is real."""
    pytest.importorskip("ray", reason='Ray is an optional extra: pip install "ray>=2.9"')
    from types import SimpleNamespace

    from harness.ray_executor import RayExecutor, failed_row

    class FakeRay:
        cancelled: list = []
        waits = 0

        @staticmethod
        def remote(fn):
            return SimpleNamespace(options=lambda **kw: SimpleNamespace(remote=lambda model, *a: model))

        @staticmethod
        def cluster_resources():
            return {"CPU": 2}

        @classmethod
        def wait(cls, refs, num_returns, timeout):
            cls.waits += 1
            if cls.waits == 1:
                return ["a"], []
            if cls.waits == 2:
                raise KeyboardInterrupt  # Ctrl-C while "b" finished and "c" still ran
            return [r for r in refs if r == "b"], [r for r in refs if r != "b"]

        @staticmethod
        def get(ref):
            return {**failed_row(ref, "synthetic", None, "x"), "status": "ok", "error": None}, {}, []

        @classmethod
        def cancel(cls, ref, force):
            cls.cancelled.append(ref)

    executor = RayExecutor()
    executor._ray = FakeRay
    jobs = [SimpleNamespace(id=f"{m}@synthetic", point={}, model=SimpleNamespace(name=m, reference={}),
                            dataset=SimpleNamespace(name="synthetic")) for m in "abc"]
    ctx = SimpleNamespace(device="cpu", progress=Progress(), metrics=[], reporters=SimpleNamespace(call=print),
                          options=SimpleNamespace(to_config=dict), folder=SimpleNamespace(path=tmp_path))
    recorded = []
    with pytest.raises(KeyboardInterrupt):
        executor._run(FakeRay, jobs, ctx, lambda job, row: recorded.append(job.id))
    assert recorded == ["a@synthetic", "b@synthetic"] and FakeRay.cancelled == ["c"]


def test_a_full_run_folder_stops_a_ray_run_as_it_stops_a_local_one(cluster, tmp_path, monkeypatch):
    """The driver's disk refusing a job's files was a failed job (exit 1, "a broken model") under Ray,
    and exit 74 with the --resume command in a local run."""
    import errno

    from harness import ray_executor
    from harness.errors import StorageError

    def full(run_dir, files):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ray_executor, "write_artifacts", full)
    with pytest.raises(StorageError, match="No space left on device.*harness run --resume --run-id ray"):
        execute(cluster, _options(tmp_path, "ray", ["mnist-mlp"]), Progress())
    assert json.loads((tmp_path / "ray" / "results.json").read_text())["jobs"] == []  # resume reruns it


def test_ctrl_c_leaves_a_task_that_has_just_finished_uncancelled(cluster, tmp_path, monkeypatch):
    """Cancelling a task as it completed aborted Ray's driver (task_manager: "Tried to complete task that
    was not pending") once in four Ctrl-Cs, leaving results.json empty and no resume line."""
    import ray

    cancelled, asked = [], []

    def wait(refs, num_returns=1, timeout=None):
        asked.append(timeout)
        if len(asked) == 1:
            raise KeyboardInterrupt  # in the loop
        return refs[:1], refs[1:]  # the cleanup's look: the first one is done

    monkeypatch.setattr(ray, "wait", wait)
    monkeypatch.setattr(ray, "cancel", lambda ref, **kwargs: cancelled.append(ref))
    with pytest.raises(KeyboardInterrupt):
        execute(cluster, _options(tmp_path, "ray", ["mnist-mlp", "fault-build"]), Progress())
    assert asked[1] == 0 and len(cancelled) == 1


def test_ctrl_c_cancels_pending_tasks_and_reraises(cluster, tmp_path, monkeypatch):
    import ray

    cancelled = []
    real_cancel = ray.cancel

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    def spy(ref, **kwargs):
        cancelled.append(ref)
        return real_cancel(ref, **kwargs)

    monkeypatch.setattr(ray, "wait", interrupt)
    monkeypatch.setattr(ray, "cancel", spy)
    with pytest.raises(KeyboardInterrupt) as info:
        execute(cluster, _options(tmp_path, "ray", ["mnist-mlp", "fault-build"]), Progress())
    assert len(cancelled) == 2
    folder = info.value.run_folder
    assert json.loads(folder.results_path.read_text())["jobs"] == []


def test_ctrl_c_stops_the_progress_queue(cluster, tmp_path, monkeypatch):
    """The live progress's queue actor is stopped with the run, Ctrl-C or not (never waited for)."""
    import ray
    import ray.util.queue

    made = []

    class Queue:  # stands in for the actor (no extra worker process to start): it is only made and stopped
        def __init__(self, maxsize=0, actor_options=None):
            self.options, self.stopped = actor_options, None
            made.append(self)

        def shutdown(self, force=False, grace_period_s=5):
            self.stopped = "force" if force else "graceful"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ray.util.queue, "Queue", Queue)
    monkeypatch.setattr(ray, "wait", interrupt)
    with pytest.raises(KeyboardInterrupt):
        execute(cluster, _options(tmp_path, "ray", ["fault-build"]), LineProgress(io.StringIO()))
    (queue,) = made
    assert queue.stopped == "force" and queue.options == {"num_cpus": 0}


def test_a_jobs_warnings_on_a_worker_are_said_by_the_driver_once(cluster, tmp_path, caplog):
    """With log_to_driver off, a failing metric said nothing under Ray: its value was just null."""
    options = _options(tmp_path, "ray", ["mnist-mlp", "fault-ok"])
    options.metrics = ["accuracy", "fault-metric"]
    with caplog.at_level(logging.WARNING, logger="harness"):
        folder = execute(cluster, options, Progress())
    jobs = json.loads(folder.results_path.read_text())["jobs"]
    assert len(jobs) == 2 and all(job["metrics"]["fault-metric"] is None for job in jobs)
    said = [r.getMessage() for r in caplog.records if "metric fault-metric (plugin 'faulty') failed" in r.getMessage()]
    assert len(said) == 1, said  # each worker says it once per process; the driver once per run (either job's)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="a FIFO as POSIX makes it")
def test_a_fifo_planted_at_the_host_locks_path_is_refused_not_waited_on(tmp_path):
    """The host lock lives in the shared temporary folder: a FIFO another user made at its name blocked every
    harness job's open() for ever (the caller then measures without the lock, saying so)."""
    os.mkfifo(tmp_path / "bench.lock")
    with pytest.raises(OSError, match="is not a plain file"):
        HostBenchLock(tmp_path, "bench")
    lock = HostBenchLock(tmp_path, "other")  # a plain one still works
    lock.exclusive()
    lock.release()
    lock.close()

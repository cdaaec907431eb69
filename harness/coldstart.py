"""Cold start: what loading a model and its first answer cost in a new process.

An app that loads a model on demand, or a device that wakes to answer,
pays this before any warmed-up percentile applies. It cannot be timed inside
the harness's own process: there the file has been loaded before, and the
heap is already grown. On a 2-core CPU, mwnn-medium's session took 23 ms in
a new process every time, 18 ms the first time in a long-lived one and 8 ms
each time after that; a median of reloads would understate it threefold.

So each sample is a new Python process (running :func:`main`, with the
working directory off its path: see :func:`_bootstrap`) that

1. imports ONNX Runtime and numpy and runs a one-node model on the
   provider: the once-per-process costs (libraries, kernel registries; on a
   GPU, the CUDA context), recorded apart as ``runtime_ms``, since every
   model a process loads shares them;
2. creates a session of the model (``session_ms``: read the file, from the OS
   page cache, as it was just written or read; optimise the graph; set up
   the provider);
3. runs it once on generated inputs of the batch size (``first_call_ms``:
   memory planning; on a GPU, kernel and algorithm selection);
4. reads how much resident memory (RSS) the model added at its peak, from
   before its session to after its first answer (``rss_bytes``): what the
   device needs to load it, which includes a passing copy of the file's
   weights while the session is made (for a model of large weights, about
   the file's size again), the weights as ONNX Runtime holds them (parsed,
   and prepacked for its kernels), its memory arena and the first call's
   tensors; and, on Linux, what it still holds after that first answer
   (``rss_held_bytes``, the steady cost: a 33.7 MB Gemm model peaked at
   67.5 MB and held 35 MB).
   On Linux the peak is reset before the load (``/proc/self/clear_refs``) and
   read from ``VmHWM``; elsewhere it is the growth of ``ru_maxrss``, which
   misses what stays under an earlier peak; on Windows there is none. Host
   memory only: a GPU provider's device memory is not in it.

:func:`measure_cold_start` takes ``runs`` samples, one process after
another, and records the medians; ``ms`` is the median of ``session_ms +
first_call_ms``, from loading the model to its first answer. Processes
start in a session of their own, so a Ctrl-C meant for the harness does not
kill one half-way; each has a time limit, and leaves by itself when the
harness is gone.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from harness import rss
from harness.text import size_text, squeeze

PROBE_TIMEOUT_S = 300.0
"""The longest one probe process may take (a TensorRT engine build can take minutes)."""


def measure_cold_start(path: str | Path, provider: str = "CPUExecutionProvider", threads: int = 1,
                       batch_size: int | None = None, runs: int = 3, opt_level: str = "all",
                       dims: dict[str, int] | None = None, max_time_s: float = 10.0,
                       timeout_s: float = PROBE_TIMEOUT_S, batch_dim: str | None = None) -> dict[str, Any]:
    """The cold start of ``path``: ``runs`` new processes, one after another, fewer once they have taken
    ``max_time_s`` together (at least one). Returns the setting, the medians (``ms``, ``session_ms``,
    ``first_call_ms``, ``runtime_ms``, ``rss_bytes``), ``runs`` and ``samples_ms`` (each process's load
    plus first answer), or with ``error`` (and no figures) when no process got that far (a file that is not
    an ONNX model too).

    ``batch_size``: None for the batch the graph fixes, else 1. ``dims`` and ``batch_dim`` as for
    ``harness bench``; a ``dims`` name no open dimension has is a ValueError, not a size left at 1."""
    if dims or batch_dim or batch_size is None:
        from harness.export import read_onnx
        from harness.shapes import checked_dims, graph_shapes, plan_inputs

        try:
            graph = read_onnx(path).graph
        except (ValueError, OSError) as exc:  # not an ONNX file, or none: as a probe that cannot load it says
            return {"provider": provider, "threads": threads, "batch_size": batch_size or 1, "opt_level": opt_level,
                    "error": squeeze(f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else exc, 300)}
        dims = checked_dims(graph, dims, batch_dim) if dims or batch_dim else dims
        if batch_size is None:
            batch_size = plan_inputs(graph_shapes(graph), dims).fixed_batch or 1
    return _measure(path, provider, threads, batch_size, runs, opt_level, dims, max_time_s, timeout_s)


def _measure(path: str | Path, provider: str, threads: int, batch_size: int, runs: int, opt_level: str,
             dims: dict[str, Any] | None, max_time_s: float, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """:func:`measure_cold_start` at a setting already checked (the run's and bench's own: their ``dims`` were
    checked against the graph, with the batch marked)."""
    record: dict[str, Any] = {"provider": provider, "threads": threads, "batch_size": batch_size,
                              "opt_level": opt_level}
    samples: list[dict[str, float]] = []
    started = time.perf_counter()
    for _ in range(max(1, runs)):
        try:
            samples.append(_probe(Path(path), provider, threads, batch_size, opt_level, dims, timeout_s))
        except ColdStartError as exc:
            if not samples:
                return {**record, "error": str(exc)}
            break
        if time.perf_counter() - started >= max_time_s:
            break
    return {**record, **summarise(samples)}


def cold_start_for(path: str | Path, rows: Sequence[dict[str, Any]], runs: int, max_time_s: float = 10.0,
                   dims: dict[str, int] | None = None,
                   on_skip: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The cold start of ``path`` at a setting its latency ``rows`` measured: on the CPU provider when it
    has rows (the edge table's), else on the first row's provider, at the fewest threads and the smallest
    batch size measured there. None when ``runs`` is 0 or no ONNX Runtime row was measured. A record
    with an ``error`` is also said through ``on_skip``, as :func:`harness.latency.measure_onnx` says
    what it left out."""
    ort_rows = [r for r in rows if r.get("runtime") == "onnxruntime"]
    if runs < 1 or not ort_rows:
        return None
    providers = [r["provider"] for r in ort_rows]
    provider = "CPUExecutionProvider" if "CPUExecutionProvider" in providers else providers[0]
    on_it = [r for r in ort_rows if r["provider"] == provider]
    record = _measure(path, provider, min(r["threads"] for r in on_it), min(r["batch_size"] for r in on_it), runs,
                      on_it[0].get("opt_level", "all"), dims, max_time_s)
    if record.get("error") and on_skip is not None:  # the figures stand without it; the reports say why
        on_skip(f"cold start not measured: {record['error']}")
    return record


def summarise(samples: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The medians of probe samples, how many there were, and each one's load plus first answer."""
    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 6)

    totals = [round(s["session_ms"] + s["first_call_ms"], 6) for s in samples]
    rss = [s["rss_bytes"] for s in samples if s.get("rss_bytes") is not None]
    held = [s["rss_held_bytes"] for s in samples if s.get("rss_held_bytes") is not None]
    return {"ms": round(statistics.median(totals), 6), "session_ms": median("session_ms"),
            "first_call_ms": median("first_call_ms"), "runtime_ms": median("runtime_ms"),
            "rss_bytes": int(statistics.median(rss)) if rss else None,
            "rss_held_bytes": int(statistics.median(held)) if held else None,
            "runs": len(samples), "samples_ms": totals}


def cold_start_text(record: dict[str, Any]) -> str:
    """``cold start (new process, CPU, batch 1, 1 thread): 28.4 ms = session 26.5 ms + first call 1.93 ms,
    adding 18.5 MiB of resident memory, median of 3; starting ONNX Runtime itself: 78 ms``, or why there
    is none."""
    threads = record.get("threads")
    where = (f"new process, {str(record.get('provider')).replace('ExecutionProvider', '')}, "
             f"batch {record.get('batch_size')}, {threads} thread{'' if threads == 1 else 's'}")
    if record.get("error"):
        return f"cold start ({where}): not measured: {record['error']}"
    runs = record.get("runs")
    held = "" if record.get("rss_held_bytes") is None else f" ({size_text(record['rss_held_bytes'])} held after it)"
    memory = "" if record.get("rss_bytes") is None else \
        f", adding {size_text(record['rss_bytes'])} of resident memory at its peak{held}"
    return (f"cold start ({where}): {record['ms']:.1f} ms = session {record['session_ms']:.1f} ms + first call "
            f"{record['first_call_ms']:.3g} ms{memory}, {'one run' if runs == 1 else f'median of {runs}'}; "
            f"starting ONNX Runtime itself: {record['runtime_ms']:.0f} ms")


class ColdStartError(RuntimeError):
    """A probe process failed or took too long."""


def _probe(path: Path, provider: str, threads: int, batch_size: int, opt_level: str,
           dims: dict[str, int] | None, timeout_s: float) -> dict[str, float]:
    """One new process's figures (milliseconds)."""
    from harness.ort import tiny_model_bytes  # built here: the probe need not import onnx

    request = json.dumps({"tiny": base64.b64encode(tiny_model_bytes()).decode("ascii"),
                          "path": str(path.resolve()), "provider": provider, "threads": threads,
                          "batch_size": batch_size, "opt_level": opt_level, "dims": dims or {},
                          "parent": os.getpid(), "deadline_s": timeout_s})
    try:
        done = subprocess.run([sys.executable, "-c", _bootstrap(), request], capture_output=True, text=True,
                              timeout=timeout_s, start_new_session=True, check=False)
    except subprocess.TimeoutExpired:
        raise ColdStartError(f"the probe process took longer than {timeout_s:g} s") from None
    except OSError as exc:
        raise ColdStartError(f"could not start a probe process: {exc}") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        said = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ColdStartError(squeeze(said[-1] if said else f"the probe process exited with {done.returncode}", 300))
    try:
        figures = json.loads(lines[-1])
        out: dict[str, Any] = {key: float(figures[key]) for key in ("runtime_ms", "session_ms", "first_call_ms")}
        for key in ("rss_bytes", "rss_held_bytes"):
            out[key] = None if figures.get(key) is None else int(figures[key])
        return out
    except (ValueError, KeyError, TypeError):
        raise ColdStartError(f"the probe process printed no figures: {squeeze(lines[-1], 200)}") from None


def _bootstrap() -> str:
    """The probe process's ``-c`` code: drop the working directory from its path, then run :func:`main`.

    ``python -m harness.coldstart`` put the working directory first on the path, ahead of the installed
    packages: an ``onnxruntime.py`` or a ``harness/`` folder in whatever folder the user ran from was
    imported instead of the real ones (code run from an untrusted folder). ``-c`` puts it there too, as
    ``''``, before any code runs; the bootstrap removes it (``-P`` would leave it out only from Python 3.11,
    and ``-I`` also ignores ``PYTHONPATH`` and the user's site-packages, where ONNX Runtime may be). The
    folder this harness was imported from goes first instead (unless already on the path, as
    site-packages is), so the probe runs this harness wherever it is installed, editable or not."""
    here = str(Path(__file__).resolve().parent.parent)
    return ("import sys\n"
            "if not getattr(sys.flags, 'safe_path', False):\n"
            "    del sys.path[0]  # the '' that -c puts first: the working directory\n"
            f"if {here!r} not in sys.path:\n"
            f"    sys.path.insert(0, {here!r})\n"
            "from harness.coldstart import main\n"
            "sys.exit(main(sys.argv[1:]))\n")


class _Memory:
    """The process's resident memory: :meth:`start` marks the baseline (and on Linux resets the peak),
    :meth:`added` the peak's growth since, in bytes (None where it cannot be read)."""

    def __init__(self) -> None:
        self.base: int | None = None
        self.linux = False

    def start(self) -> None:
        self.base = rss.reset_peak()  # VmHWM back to the current RSS, where Linux offers it
        self.linux = self.base is not None
        if not self.linux:
            self.base = rss.process_peak_bytes()

    def added(self) -> int | None:
        peak = rss.status_bytes("VmHWM") if self.linux else rss.process_peak_bytes()
        return None if peak is None or self.base is None else max(0, peak - self.base)

    def held(self) -> int | None:
        """The growth of the resident memory now, since :meth:`start` (Linux only; None elsewhere)."""
        now = rss.status_bytes("VmRSS") if self.linux else None
        return None if now is None or self.base is None else max(0, now - self.base)


def _watch(parent: int, deadline_s: float) -> None:
    """In the probe process: leave when the harness that started it is gone or the deadline has passed.

    The probe runs in a session of its own (a Ctrl-C meant for the harness does not kill it half-way),
    so a harness killed outright (SIGKILL to its group) cannot end it: this does, within a second. On
    Windows the deadline alone: a venv's python.exe starts the interpreter as its own child, so the parent
    is never the harness (every probe left at once), and a dead parent's id is not told apart there.
    """
    import threading

    end = time.monotonic() + deadline_s
    parent_known = os.name != "nt"

    def watch() -> None:
        while time.monotonic() < end and (not parent_known or os.getppid() == parent):
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _run_probe(request: dict[str, Any]) -> dict[str, Any]:
    """In the probe process: pay the runtime's own costs, then time the model's load and first call and
    read the memory they added."""
    t0 = time.perf_counter_ns()
    import numpy as np

    import harness.shapes  # noqa: F401 - input_feeds imports it: before the memory baseline, not inside it
    from harness.ort import input_feeds, make_session

    tiny = make_session(base64.b64decode(request["tiny"]), request["provider"], threads=1)
    tiny.run(None, {"x": np.zeros((1, 4), dtype=np.float32)})
    np.random.default_rng(0).standard_normal(4)  # numpy's random module, which input_feeds uses
    memory = _Memory()
    memory.start()
    t1 = time.perf_counter_ns()
    session = make_session(request["path"], request["provider"], threads=request["threads"],
                           opt_level=request["opt_level"])
    t2 = time.perf_counter_ns()
    feeds = input_feeds(session, request["batch_size"], dims=request.get("dims") or None)
    t3 = time.perf_counter_ns()
    session.run(None, feeds)
    t4 = time.perf_counter_ns()
    return {"runtime_ms": (t1 - t0) / 1e6, "session_ms": (t2 - t1) / 1e6, "first_call_ms": (t4 - t3) / 1e6,
            "rss_bytes": memory.added(), "rss_held_bytes": memory.held()}


def main(argv: Sequence[str]) -> int:
    try:
        request = json.loads(argv[0])
        if request.get("parent"):
            _watch(int(request["parent"]), float(request.get("deadline_s") or PROBE_TIMEOUT_S))
        figures = _run_probe(request)
    except Exception as exc:  # noqa: BLE001 - one line for the parent's record
        print(f"{type(exc).__name__}: {squeeze(exc, 300)}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":  # pragma: no cover - by hand; the probes start through _bootstrap
    sys.exit(main(sys.argv[1:]))

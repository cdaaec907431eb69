"""Stage: latency and throughput of one inference call.

The loop is the one benchmarking tools agree on: pre-allocated inputs, a
warm-up, then timed calls until both a minimum number of runs and a minimum
duration are reached (bounded by a maximum duration), each call timed on its
own with ``time.perf_counter_ns`` so percentiles are real percentiles, not
averages of batches. Percentiles use linear interpolation between order
statistics (numpy's default, Hyndman & Fan type 7), which behaves sensibly
for small samples; the number of runs is always recorded next to them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatencyConfig:
    """How long to measure. Defaults suit sub-millisecond models: 0.5 s and 50 runs at least."""

    warmup_runs: int = 10
    min_runs: int = 50
    min_time_s: float = 0.5
    max_time_s: float = 10.0
    max_runs: int = 1_000_000

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.warmup_runs < 0:
            raise ValueError("min_runs must be >= 1 and warmup_runs >= 0")
        if self.min_time_s < 0 or self.max_time_s <= 0:
            raise ValueError("min_time_s must be >= 0 and max_time_s > 0")


QUICK = LatencyConfig(warmup_runs=3, min_runs=10, min_time_s=0.05, max_time_s=2.0)
"""A short measurement for tests and smoke runs (figures are noisier; runs is recorded)."""


@dataclass
class LatencyStats:
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int]) -> "LatencyStats":
        import numpy as np

        if not len(samples_ns):
            raise ValueError("no latency samples")
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(
            runs=int(ms.size),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            mean_ms=float(ms.mean()),
            std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
        )

    def row(self, batch_size: int) -> dict[str, Any]:
        """The contract's latency fields; throughput is samples per second at the mean latency."""
        data = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        data["throughput_per_s"] = round(batch_size * 1000.0 / self.mean_ms, 3) if self.mean_ms > 0 else None
        return data


def time_calls(fn: Callable[[], Any], config: LatencyConfig = LatencyConfig()) -> list[int]:
    """Per-call durations in nanoseconds of ``fn()``, after ``config.warmup_runs`` untimed calls."""
    for _ in range(config.warmup_runs):
        fn()
    clock = time.perf_counter_ns
    samples: list[int] = []
    min_ns, max_ns = config.min_time_s * 1e9, config.max_time_s * 1e9
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - start
        if len(samples) >= config.max_runs or elapsed >= max_ns:
            break
        if len(samples) >= config.min_runs and elapsed >= min_ns:
            break
    return samples


def timer_overhead_ns(samples: int = 1000) -> float:
    """Median cost of one ``perf_counter_ns`` pair, to show it is negligible next to what is measured."""
    import statistics

    clock = time.perf_counter_ns
    deltas = []
    for _ in range(samples):
        t0 = clock()
        deltas.append(clock() - t0)
    return float(statistics.median(deltas))


# -- ONNX Runtime ---------------------------------------------------------------------------------------


def onnx_call(session: Any, feeds: dict[str, "np.ndarray"], provider: str, iobinding: bool = True) -> Callable[[], Any]:
    """A zero-argument call running ``session`` on pre-allocated ``feeds``.

    With IOBinding the inputs are bound once (copied to the device once for
    CUDA) and outputs stay where the provider produced them, so the timed call
    is the inference itself; the CUDA provider synchronises its stream at the
    end of each run.
    """
    import onnxruntime as ort

    if not iobinding:
        return lambda: session.run(None, feeds)
    device = "cuda" if provider == "CUDAExecutionProvider" else "cpu"
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
    for output in session.get_outputs():
        binding.bind_output(output.name, device)

    def call() -> None:
        session.run_with_iobinding(binding)

    return call


def measure_onnx(
    path: Path,
    batch_sizes: Sequence[int],
    threads: Sequence[int] = (1,),
    providers: Sequence[str] = ("CPUExecutionProvider",),
    config: LatencyConfig = LatencyConfig(),
    sample: "np.ndarray | None" = None,
    opt_level: str = "all",
    iobinding: bool = True,
    on_skip: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Latency rows of an ONNX file for every provider x thread count x batch size.

    ``sample`` (real inputs, ``(N, ...)``) is tiled to each batch size; without
    it, inputs are generated from the graph's declared shapes and types. A
    batch size the graph's static input shape cannot take, or a provider
    that cannot run here, is skipped and reported through ``on_skip``.
    """
    import numpy as np

    from harness.ort import input_feeds, make_session, provider_name

    rows = []
    for provider in map(provider_name, providers):
        for n_threads in threads:
            try:
                session = make_session(path, provider, threads=n_threads, opt_level=opt_level)
            except Exception as exc:  # noqa: BLE001
                _skip(on_skip, f"{provider} with {n_threads} thread(s): {' '.join(str(exc).split())[:200]}")
                continue
            for batch_size in batch_sizes:
                try:
                    feeds = input_feeds(session, batch_size)
                except ValueError as exc:
                    _skip(on_skip, f"batch size {batch_size}: {exc}")
                    continue
                if sample is not None and len(feeds) == 1:
                    name = next(iter(feeds))
                    reps = math.ceil(batch_size / len(sample))
                    tiled = np.concatenate([sample] * reps)[:batch_size]
                    feeds[name] = np.ascontiguousarray(tiled.astype(feeds[name].dtype))
                call = onnx_call(session, feeds, provider, iobinding)
                stats = LatencyStats.from_ns(time_calls(call, config))
                rows.append(
                    {
                        "runtime": "onnxruntime",
                        "provider": provider,
                        "batch_size": batch_size,
                        "threads": n_threads,
                        **stats.row(batch_size),
                        "opt_level": opt_level,
                        "iobinding": iobinding,
                    }
                )
    return rows


def _skip(on_skip: Callable[[str], None] | None, message: str) -> None:
    if on_skip is not None:
        on_skip(message)
    else:
        log.warning("skipped %s", message)


# -- PyTorch eager ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_torch(
    model: "torch.nn.Module",
    sample: "torch.Tensor",
    batch_sizes: Sequence[int],
    threads: Sequence[int] = (1,),
    device: str = "cpu",
    config: LatencyConfig = LatencyConfig(),
) -> list[dict[str, Any]]:
    """Eager PyTorch latency rows of ``model`` measured exactly like :func:`measure_onnx`.

    On CUDA each timed call ends with ``torch.cuda.synchronize()`` so the
    kernel time is inside the measurement.
    """
    import torch

    model = model.eval().to(device)
    rows = []
    for n_threads in threads:
        with torch_threads(n_threads), torch.inference_mode():
            for batch_size in batch_sizes:
                reps = math.ceil(batch_size / len(sample))
                x = sample.repeat(reps, *([1] * (sample.dim() - 1)))[:batch_size].contiguous().to(device)
                if device.startswith("cuda"):

                    def call(x: "torch.Tensor" = x) -> None:
                        model(x)
                        torch.cuda.synchronize()

                else:

                    def call(x: "torch.Tensor" = x) -> None:
                        model(x)

                stats = LatencyStats.from_ns(time_calls(call, config))
                rows.append(
                    {
                        "runtime": "torch",
                        "provider": "cuda" if device.startswith("cuda") else "cpu",
                        "batch_size": batch_size,
                        "threads": n_threads,
                        **stats.row(batch_size),
                    }
                )
    return rows


def default_thread_counts() -> list[int]:
    """1 thread (edge-like) and every core, without duplicates."""
    cores = os.cpu_count() or 1
    return sorted({1, cores})

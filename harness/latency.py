"""Stage: latency and throughput of one inference call, and fair comparisons of two calls.

The loop is the one benchmarking tools agree on (ONNX Runtime's perf_test,
MLPerf SingleStream, pyperf, pytest-benchmark): pre-allocated inputs, a
warm-up, then timed calls until both a minimum number of runs and a minimum
duration are reached (bounded by a maximum duration), each call timed on its
own with ``time.perf_counter_ns`` so percentiles are real percentiles, not
averages of batches. The garbage collector is paused while timing.

Percentiles use linear interpolation between order statistics (numpy's
default, Hyndman & Fan type 7): one sample gives that sample for every
percentile, two samples ``[a, b]`` give ``a + q (b - a)``. With fewer than
100 runs p99 is an interpolation between the two slowest calls, so the
number of runs is always recorded next to it.

Every row also says how far it can be trusted:

- ``timer_overhead_pct``: the cost of one ``perf_counter_ns`` pair as a
  percentage of the p50 (a warning is logged above
  :data:`TIMER_OVERHEAD_WARN_PCT`, 5 %);
- ``cv``: standard deviation over mean;
- ``drift_pct``: the relative difference between the medians of the first
  and second half of the samples, i.e. how much the machine moved while
  measuring;
- ``stable``: neither of two signs of a busy machine. Drift: ``drift_pct``
  above :data:`STABLE_DRIFT_PCT` (5): the p50 moved. Spread: the mean above
  :data:`STABLE_MEAN_OVER_P50` (1.25) times the p50: a few calls far slower
  than the rest pull up the mean, hence samples/s, and the p99, as steady
  interference (another process's periodic bursts) does while leaving both
  halves alike (p99 some 20x the quiet value, samples/s halved, the mean 2x
  the p50 in one such run; the same row measured quietly: 1.08-1.12x). Not
  the ``cv``: among thousands of microsecond calls one long preemption makes
  it 4 while the mean moves 2 %. :func:`unstable_reasons` says which of the
  two a row shows.

Cold costs in this process, one sample each, beside the warmed-up
percentiles (a model's first load in a new process, the cold start that
deployments pay, is :mod:`harness.coldstart`'s):

- ``session_ms`` (ONNX Runtime rows): creating the session: reading the
  file (from the OS page cache: the file was just written or read), graph
  optimisation at ``opt_level`` and the provider's set-up. Rows of one
  provider and thread count share one session, hence one figure;
- ``first_call_ms``: the first call at the row's batch size in that session,
  before the warm-up. PyTorch has no session: its rows at the first thread
  count carry it, later thread counts' rows (warm by then) have None.

Shared machines drift (the same loop's median moves by up to 40 % between
time windows on a busy 2-core box), so two figures measured one after the
other are not comparable. :func:`compare_alternating` (calls) and
:func:`compare_measurements` (whole measurements) alternate the two sides in
several short rounds and compare floors and best medians instead.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from harness.text import squeeze

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

log = logging.getLogger(__name__)

STABLE_DRIFT_PCT = 5.0
"""A row whose first-half and second-half medians differ by more than this (percent) is marked unstable."""
STABLE_MEAN_OVER_P50 = 1.25
"""A row whose mean is more than this times its p50 is marked unstable: a few calls far slower than the rest
(other work on the machine) pull up its mean, hence its samples/s, and its p99."""
TIMER_OVERHEAD_WARN_PCT = 5.0
"""Timer overhead above this share of the p50 is logged as a warning: the call is too short to time alone
(every row records its ``timer_overhead_pct``; at 1-5 % the figure is still good to that margin)."""
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


@dataclass(frozen=True)
class LatencyConfig:
    """How long to measure. Defaults suit sub-millisecond models: 0.5 s and 50 runs at least.

    Warm-up is ``warmup_runs`` calls and at least ``warmup_time_s`` seconds
    (bounded by a quarter of ``max_time_s``); measurement stops once both
    ``min_runs`` and ``min_time_s`` are reached, or at ``max_time_s`` or
    ``max_runs`` whichever comes first (at least one timed call always).
    """

    warmup_runs: int = 10
    min_runs: int = 50
    min_time_s: float = 0.5
    max_time_s: float = 10.0
    max_runs: int = 1_000_000
    warmup_time_s: float = 0.1
    disable_gc: bool = True
    cold_runs: int = 3
    """New processes that time the model's cold start (:mod:`harness.coldstart`); 0: none."""
    spinning: bool = True
    """ONNX Runtime's intra-op threads spin-wait for work between calls (its default); False: they sleep
    (``--no-spin``), as a deployment on a busy or battery-powered device may set them."""
    iobinding: bool = True
    """Inputs bound to the session once (IOBinding); False: ``session.run`` on numpy arrays each call
    (``--no-iobinding``), as most Python applications call it (a few microseconds more per call)."""

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.warmup_runs < 0 or self.max_runs < 1 or self.cold_runs < 0:
            raise ValueError("min_runs and max_runs must be >= 1, warmup_runs and cold_runs >= 0")
        if self.min_time_s < 0 or self.max_time_s <= 0 or self.warmup_time_s < 0:
            raise ValueError("min_time_s and warmup_time_s must be >= 0 and max_time_s > 0")


FLAG_FIELDS = {"cold_runs": "cold_runs", "spin": "spinning", "iobinding": "iobinding"}
"""``harness run``'s flags (``--cold-runs``, ``--spin/--no-spin``, ``--iobinding/--no-iobinding``) -> the
:class:`LatencyConfig` field each sets on top of the run's latency settings (the CLI's and the API's alike)."""

QUICK = LatencyConfig(warmup_runs=3, min_runs=10, min_time_s=0.05, max_time_s=2.0, warmup_time_s=0.0, cold_runs=1)
"""A short measurement for tests and smoke runs (figures are noisier; runs is recorded)."""

ROUND = LatencyConfig(warmup_runs=5, min_runs=20, min_time_s=0.15, max_time_s=2.0, warmup_time_s=0.02)
"""One short round of an alternating comparison."""


def percentiles(samples: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Percentiles ``qs`` (0-100) of ``samples`` by linear interpolation between order statistics (type 7)."""
    if not len(samples):
        raise ValueError("no samples")
    ordered = sorted(float(s) for s in samples)
    return [_sorted_percentile(ordered, q) for q in qs]


def _sorted_percentile(ordered: Sequence[float], q: float) -> float:
    """Type-7 percentile of already sorted values: rank ``h = (n - 1) q / 100``, interpolated."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    n = len(ordered)
    h = (n - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return float(ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo]))


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
    cv: float = 0.0
    drift_pct: float = 0.0

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int]) -> "LatencyStats":
        if not len(samples_ns):
            raise ValueError("no latency samples")
        import numpy as np

        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        ordered = np.sort(ms)
        p50, p90, p99 = (_sorted_percentile(ordered, q) for q in (50, 90, 99))
        mean = float(ms.mean())
        std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
        return cls(
            runs=int(ms.size),
            p50_ms=p50,
            p90_ms=p90,
            p99_ms=p99,
            mean_ms=mean,
            std_ms=std,
            min_ms=float(ordered[0]),
            max_ms=float(ordered[-1]),
            cv=std / mean if mean > 0 else 0.0,
            drift_pct=half_drift_pct(ms),
        )

    @property
    def stable(self) -> bool:
        """Whether the row shows neither drift (``drift_pct`` above :data:`STABLE_DRIFT_PCT`) nor spread (the
        mean above :data:`STABLE_MEAN_OVER_P50` times the p50); see :func:`unstable_reasons`."""
        spread = self.p50_ms > 0 and self.mean_ms > STABLE_MEAN_OVER_P50 * self.p50_ms
        return self.drift_pct <= STABLE_DRIFT_PCT and not spread

    def row(self, batch_size: int) -> dict[str, Any]:
        """The contract's latency fields plus ``min_ms``/``max_ms``, ``cv``, ``drift_pct``, ``stable`` and
        ``timer_overhead_pct``; throughput is samples per second at the mean latency."""
        data: dict[str, Any] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        data["throughput_per_s"] = round(batch_size * 1000.0 / self.mean_ms, 3) if self.mean_ms > 0 else None
        data["stable"] = self.stable
        overhead = timer_overhead_ns()
        data["timer_overhead_pct"] = round(100.0 * overhead / (self.p50_ms * 1e6), 4) if self.p50_ms > 0 else None
        if data["timer_overhead_pct"] is not None and data["timer_overhead_pct"] > TIMER_OVERHEAD_WARN_PCT:
            log.warning("timer overhead (%.0f ns) is %.1f%% of the measured p50 (%.4f ms): the call is too short "
                        "to time one at a time", overhead, data["timer_overhead_pct"], self.p50_ms)
        return data


UNSTABLE_MARK = "*"
"""What follows a p50 whose row is marked unstable, in every table that shows one."""


def unstable_mark(row: dict[str, Any]) -> str:
    """:data:`UNSTABLE_MARK` for a latency row (or a row made from one) marked unstable that has a p50, else ""."""
    return UNSTABLE_MARK if row.get("stable") is False and row.get("p50_ms") is not None else ""


RUN_REMEDY = "at a quieter moment, and without --quick if the run used it"
"""How to measure an unstable row again with ``harness run``, which has no timing flag but ``--quick``."""


def run_remedy(results: dict[str, Any]) -> str:
    """:data:`RUN_REMEDY` for a run's results: it says to drop ``--quick`` only when the run's latency
    settings (``config.latency``) are --quick's, and not at all when they are the default ones."""
    name = settings_name((results.get("config") or {}).get("latency")) if isinstance(results, dict) else None
    return {"--quick": "at a quieter moment, and without --quick", "default": "at a quieter moment"}.get(
        name or "", RUN_REMEDY)


def mean_over_p50(row: dict[str, Any]) -> float | None:
    """A latency row's mean over its p50 (None without both figures): how far slow calls pull up its mean."""
    mean, p50 = (row.get(k) for k in ("mean_ms", "p50_ms"))
    if isinstance(mean, bool) or isinstance(p50, bool) or not isinstance(mean, (int, float)) \
            or not isinstance(p50, (int, float)) or p50 <= 0:
        return None
    return float(mean) / float(p50)


def unstable_reasons(row: dict[str, Any]) -> list[str]:
    """Why a latency row (a results.json dict) is marked unstable: ``"drift"`` (``drift_pct`` above
    :data:`STABLE_DRIFT_PCT`: its p50 moved between the halves of its runs) and/or ``"spread"`` (its mean above
    :data:`STABLE_MEAN_OVER_P50` times its p50: a few calls far slower than the rest pull up its mean and p99);
    [] for a row not marked unstable. A row marked unstable that records neither figure beyond its limit (a
    run from before the spread was judged, or one whose figures were left out) is ``["drift"]``, the only
    criterion there was before."""
    if not isinstance(row, dict) or row.get("stable") is not False:
        return []
    drift = row.get("drift_pct") if isinstance(row.get("drift_pct"), (int, float)) else None
    pulled = mean_over_p50(row)
    reasons = [name for name, value, limit in (("drift", drift, STABLE_DRIFT_PCT),
                                               ("spread", pulled, STABLE_MEAN_OVER_P50))
               if value is not None and value > limit]
    return reasons or ["drift"]


def unstable_note(rows: Sequence[dict[str, Any]], remedy: str = RUN_REMEDY) -> str | None:
    """The footnote for :data:`UNSTABLE_MARK` under a table of latency ``rows`` (None when none is unstable);
    ``remedy`` says how to measure again with the command whose output it is under. It says why the starred
    rows are unstable (:func:`unstable_reasons`: drift, spread or both, each with its worst figure) and which
    of their figures do not repeat."""
    unstable = [r for r in rows if isinstance(r, dict) and r.get("stable") is False]
    if not unstable:
        return None
    found: dict[str, list[float]] = {}
    both = all(len(unstable_reasons(row)) == 2 for row in unstable)  # else "or": a row shows one, or both
    for row in unstable:
        for reason in unstable_reasons(row):
            value = row.get("drift_pct") if reason == "drift" else mean_over_p50(row)
            found.setdefault(reason, []).extend([float(value)] if isinstance(value, (int, float)) else [])
    said = []
    if "drift" in found:
        worst = f" (drift_pct up to {max(found['drift']):.1f} %)" if found["drift"] else ""
        said.append(f"the second half of the runs' median moved more than {STABLE_DRIFT_PCT:g} % from the "
                    f"first{worst}")
    if "spread" in found:
        worst = f"; up to {max(found['spread']):.1f}x" if found["spread"] else ""
        said.append(f"a few calls far slower than the rest pull the mean more than "
                    f"{(STABLE_MEAN_OVER_P50 - 1) * 100:g} % above the p50{f' ({worst[2:]})' if worst else ''}")
    which = {("drift",): "its p50 and p99 do not repeat", ("spread",): "its p99 and samples/s do not repeat",
             }.get(tuple(found), "its p50, p99 and samples/s do not repeat")
    return (f"{UNSTABLE_MARK} unstable: {(', and ' if both else ', or ').join(said)}: a busy machine; {which} "
            f"(measure again {remedy})")


def half_drift_pct(samples: Sequence[float]) -> float:
    """``100 * |p50(second half) - p50(first half)| / p50(all)``; 0 for fewer than 4 samples."""
    import numpy as np

    values = np.asarray(samples, dtype=np.float64)
    n = values.size
    if n < 4:
        return 0.0
    first = float(np.median(values[: n // 2]))
    second = float(np.median(values[n // 2:]))
    whole = float(np.median(values))
    return round(100.0 * abs(second - first) / whole, 3) if whole > 0 else 0.0


@contextlib.contextmanager
def _gc_paused(pause: bool) -> Iterator[None]:
    enabled = gc.isenabled()
    if pause and enabled:
        # No gc.collect() first: with torch loaded a full collection takes ~0.1-0.3 s, longer than a
        # short measurement; timeit and pyperf likewise just disable the collector.
        gc.disable()
    try:
        yield
    finally:
        if pause and enabled:
            gc.enable()


SETTINGS_KEYS = ("warmup_runs", "min_runs", "min_time_s")
"""The fields that tell ``--quick`` latency settings from the default ones."""


def settings_differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """How two stored latency settings differ: by name when each has one and they are not the same
    (``[("", "default", "--quick")]``), else each sub-setting both recorded that differs
    (``[(".cold_runs", 1, 2)]``); a sub-setting only one recorded (an older run's) is no difference. Beside
    a change of name, a sub-setting the name does not imply is said too (``--quick --cold-runs 0`` after a
    plain run: ``[("", "default", "--quick"), (".cold_runs", 3, 0)]``)."""
    names = (settings_name(old), settings_name(new))
    both = sorted(set(old) & set(new))
    if None not in names and names[0] != names[1]:
        presets = {"--quick": QUICK, "default": LatencyConfig()}
        implied = [presets[str(names[0])], presets[str(names[1])]]
        return [("", *names)] + [(f".{key}", old[key], new[key]) for key in both if key not in SETTINGS_KEYS
                                 and old[key] != new[key] and (old[key], new[key]) != tuple(
                                     getattr(config, key, None) for config in implied)]
    return [(f".{key}", old[key], new[key]) for key in both if old[key] != new[key]]


CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where the cgroup file systems are mounted (v2 directly, or v1's controllers as ``cpu``, ``cpu,cpuacct``...)."""
PROC_CGROUP = Path("/proc/self/cgroup")
"""This process's cgroup membership: which directory below :data:`CGROUP_ROOT` holds its limits."""
_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity (a container's cpuset, ``taskset``), else the machine's
    count, and no more than its CPU quota allows (:func:`cgroup_cpu_limit`: ``docker --cpus=2``, a Kubernetes
    CPU limit): "all cores" beyond them would time threads waiting for a core."""
    try:
        cores = len(os.sched_getaffinity(0)) or os.cpu_count() or 1
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    return min(cores, quota) if quota is not None else cores


def cgroup_cpu_limit() -> int | None:
    """The whole cores this process's CPU quota pays for, ``ceil(quota / period)`` (1.5 CPUs: 2), the tightest
    over its cgroup and the cgroups above it: cgroup v2's ``cpu.max`` (``"200000 100000"``; ``"max ..."``: no
    quota) or v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: no quota). None when no quota is set or
    none can be read (not Linux, no cgroup file system). A few small reads: cheap enough for every run's start."""
    limits = []
    for directory in _cgroup_dirs():
        parts = _read_words(directory / "cpu.max")
        if parts:  # v2: "QUOTA PERIOD" or "max PERIOD"
            quota, period = parts[0], parts[1] if len(parts) > 1 else "100000"
        else:
            quota_words, period_words = (_read_words(directory / f"cpu.cfs_{k}_us") for k in ("quota", "period"))
            if not quota_words or not period_words:
                continue
            quota, period = quota_words[0], period_words[0]
        try:
            q, p = int(quota), int(period)
        except ValueError:  # "max", or a file not as expected
            continue
        if q > 0 and p > 0:
            limits.append(max(1, math.ceil(q / p)))
    return min(limits) if limits else None


def _read_words(path: Path) -> list[str]:
    """The words of a small file, [] when it is missing or unreadable."""
    try:
        return path.read_text().split()
    except (OSError, UnicodeDecodeError):
        return []


def _cgroup_dirs() -> list[Path]:
    """The cgroup directories whose CPU quota binds this process: its own (from :data:`PROC_CGROUP`) and each
    above it, up to the mount point, in cgroup v2 and in v1's ``cpu`` hierarchy; only the mount points when
    its membership cannot be read. In a container the mount point is the container's own cgroup."""
    roots = {"v2": [CGROUP_ROOT, CGROUP_ROOT / "unified"], "v1": [CGROUP_ROOT / m for m in _V1_CPU_MOUNTS]}
    own: dict[str, str] = {}
    try:
        for line in PROC_CGROUP.read_text().splitlines():
            number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
            if number == "0" and controllers == "":
                own["v2"] = path
            elif "cpu" in controllers.split(","):
                own["v1"] = path
    except (OSError, UnicodeDecodeError):
        pass
    dirs: list[Path] = []
    for kind, mounts in roots.items():
        relative = Path(own.get(kind, "/").lstrip("/"))
        for mount in mounts:
            for part in [relative, *relative.parents]:  # its own cgroup, then each above it (the last: ".")
                directory = mount / part
                if directory not in dirs:
                    dirs.append(directory)
    return dirs


def threads_over_cores(threads: Sequence[int]) -> str | None:
    """A warning for thread counts above the cores this process may use (their rows time contention), else None."""
    cores = usable_cores()
    over = [t for t in threads if cores and t > cores]
    if not over:
        return None
    return (f"--threads {','.join(map(str, over))}: more threads than the {cores} cores this process may use; "
            "those latency rows measure contention")


def settings_name(settings: Any) -> str | None:
    """``--quick`` or ``default`` for stored latency settings (``config.latency`` in results.json) that
    match those on :data:`SETTINGS_KEYS`, else None."""
    if not isinstance(settings, dict):
        return None
    for name, config in (("--quick", QUICK), ("default", LatencyConfig())):
        if all(settings.get(key) == getattr(config, key) for key in SETTINGS_KEYS):
            return name
    return None


def time_calls(fn: Callable[[], Any], config: LatencyConfig = LatencyConfig(),
               clock: Callable[[], int] = time.perf_counter_ns) -> list[int]:
    """Per-call durations in nanoseconds of ``fn()``, after the warm-up described by ``config``.

    ``clock`` (nanoseconds) is injectable for tests of the stopping rule.
    """
    max_ns = config.max_time_s * 1e9
    warmup_limit_ns = max_ns / 4
    start = clock()
    done = 0
    while done < config.warmup_runs or (clock() - start) < config.warmup_time_s * 1e9:
        fn()
        done += 1
        if clock() - start >= warmup_limit_ns:
            break
    samples: list[int] = []
    append = samples.append
    min_ns = config.min_time_s * 1e9
    min_runs, max_runs = config.min_runs, config.max_runs
    with _gc_paused(config.disable_gc):
        start = clock()
        while True:
            t0 = clock()
            fn()
            t1 = clock()
            append(t1 - t0)
            elapsed = t1 - start
            count = len(samples)
            if count >= max_runs or elapsed >= max_ns:
                break
            if count >= min_runs and elapsed >= min_ns:
                break
    return samples


def first_call_ms(fn: Callable[[], Any], clock: Callable[[], int] = time.perf_counter_ns) -> float:
    """Milliseconds of one call of ``fn()``: the cold call, timed before any warm-up.

    One sample, not a distribution: what a process pays the first time it
    runs a model at a shape (memory planning, kernel selection, a GPU's
    algorithm search), which the warmed-up percentiles leave out.
    """
    t0 = clock()
    fn()
    return round((clock() - t0) / 1e6, 6)


def measure_call(fn: Callable[[], Any], config: LatencyConfig = LatencyConfig(), batch_size: int = 1) -> dict[str, Any]:
    """A latency row (without runtime/provider fields) of ``fn()``."""
    return LatencyStats.from_ns(time_calls(fn, config)).row(batch_size)


_TIMER_OVERHEAD: float | None = None


def timer_overhead_ns(samples: int = 1000, refresh: bool = False) -> float:
    """Median cost of one ``perf_counter_ns`` pair (cached per process), to show it is negligible."""
    global _TIMER_OVERHEAD
    if _TIMER_OVERHEAD is not None and not refresh and samples == 1000:
        return _TIMER_OVERHEAD
    clock = time.perf_counter_ns
    deltas = []
    for _ in range(samples):
        t0 = clock()
        deltas.append(clock() - t0)
    value = float(statistics.median(deltas))
    if samples == 1000:
        _TIMER_OVERHEAD = value
    return value


# -- alternating comparisons --------------------------------------------------------------------------------


def compare_measurements(
    measure_a: Callable[[], dict[str, Any]],
    measure_b: Callable[[], dict[str, Any]],
    rounds: int = 5,
    names: tuple[str, str] = ("a", "b"),
    max_spread_pct: float = 10.0,
) -> dict[str, Any]:
    """Compare two measurements taken alternately in ``rounds`` short rounds (ABBA order).

    ``measure_x()`` returns a latency row (``p50_ms`` and ``min_ms`` at
    least). Figures compared: floors (lowest ``min_ms`` of each side), best
    medians (lowest round ``p50_ms`` of each side) and the median of the
    per-round p50 ratios (each round's two sides ran back to back, so slow
    drift cancels). ``ratio`` is the best-median ratio ``a / b`` (> 1: a is
    slower). ``stable`` is true when the per-round ratios spread by at most
    ``max_spread_pct`` and the two median estimates (best medians, paired
    rounds) agree within 5 % (``estimate_agreement_pct``); ``note`` says so
    in words. The floors' ratio is reported (``ratio_min``, ``floor_gap_pct``
    from the paired one) but does not decide: two models' fastest calls may
    scale differently from their typical ones (a 1000x larger matrix product
    was 22.5x slower in every round's median and 24.2x on floors), which is no
    sign that the machine moved, and said so it sent users to re-measure a
    ratio whose rounds agreed within 1 %.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    a_rows: list[dict[str, Any]] = []
    b_rows: list[dict[str, Any]] = []
    for index in range(rounds):
        # ABBA: a first in even rounds, b first in odd ones, so neither side always runs on a warmer machine.
        if index % 2 == 0:
            a_rows.append(measure_a())
            b_rows.append(measure_b())
        else:
            b_rows.append(measure_b())
            a_rows.append(measure_a())
    a_p50 = [float(r["p50_ms"]) for r in a_rows]
    b_p50 = [float(r["p50_ms"]) for r in b_rows]
    a_min = min(float(r.get("min_ms", r["p50_ms"])) for r in a_rows)
    b_min = min(float(r.get("min_ms", r["p50_ms"])) for r in b_rows)
    per_round = [a / b if b > 0 else math.inf for a, b in zip(a_p50, b_p50)]
    ratio = min(a_p50) / min(b_p50) if min(b_p50) > 0 else math.inf
    ratio_min = a_min / b_min if b_min > 0 else math.inf
    paired = statistics.median(per_round)
    spread = 100.0 * (max(per_round) - min(per_round)) / paired if paired > 0 and math.isfinite(paired) else math.inf
    estimates = [ratio, paired]
    agreement = (100.0 * (max(estimates) - min(estimates)) / statistics.median(estimates)
                 if all(math.isfinite(e) and e > 0 for e in estimates) else math.inf)
    floor_gap = (100.0 * abs(ratio_min - paired) / paired
                 if math.isfinite(ratio_min) and math.isfinite(paired) and paired > 0 else math.inf)
    consistent = agreement <= 5.0
    stable = consistent and spread <= max_spread_pct
    stability = "stable" if stable else ("noisy but consistent" if consistent else "unstable")

    def drift(values: list[float]) -> float:
        return round(100.0 * (max(values) - min(values)) / min(values), 2) if min(values) > 0 else math.inf

    a_name, b_name = names
    over = " / " if "/" in a_name + b_name else "/"  # paths: a/m.onnx / b/m.onnx, not a/m.onnx/b/m.onnx
    note = (f"{a_name}{over}{b_name} = {ratio:.3f} on best medians ({min(a_p50):.4f} vs {min(b_p50):.4f} ms), "
            f"{ratio_min:.3f} on floors, per-round {min(per_round):.3f}-{max(per_round):.3f} over {rounds} "
            f"alternating rounds: {_STABILITY_WORDS[stability]}")
    return {
        "a": a_name,
        "b": b_name,
        "rounds": rounds,
        "a_p50_ms": round(min(a_p50), 6),
        "b_p50_ms": round(min(b_p50), 6),
        "a_min_ms": round(a_min, 6),
        "b_min_ms": round(b_min, 6),
        "a_round_p50_ms": [round(v, 6) for v in a_p50],
        "b_round_p50_ms": [round(v, 6) for v in b_p50],
        "ratio": round(ratio, 4),
        "ratio_min": round(ratio_min, 4),
        "ratio_paired_median": round(paired, 4),
        "ratio_rounds": [round(r, 4) for r in per_round],
        "ratio_spread_pct": round(spread, 2),
        "estimate_agreement_pct": round(agreement, 2),
        "floor_gap_pct": round(floor_gap, 2),
        "a_drift_pct": drift(a_p50),
        "b_drift_pct": drift(b_p50),
        "stable": stable,
        "consistent": consistent,
        "stability": stability,
        "note": note,
    }


_STABILITY_WORDS = {
    "stable": "stable",
    "noisy but consistent": "noisy machine (rounds spread widely) but best medians and paired rounds agree",
    "unstable": "UNSTABLE: best medians and paired rounds disagree by more than 5 %, repeat on a quieter machine",
}


def compare_alternating(
    call_a: Callable[[], Any],
    call_b: Callable[[], Any],
    rounds: int = 5,
    config: LatencyConfig = ROUND,
    names: tuple[str, str] = ("a", "b"),
) -> dict[str, Any]:
    """Latency of ``call_a`` against ``call_b``, alternating in short rounds; see :func:`compare_measurements`.

    Never compare two long measurements taken one after the other: on a
    shared machine the second can run in a different time window.
    """
    return compare_measurements(lambda: measure_call(call_a, config), lambda: measure_call(call_b, config),
                                rounds=rounds, names=names)


# -- ONNX Runtime ---------------------------------------------------------------------------------------


def onnx_call(session: Any, feeds: dict[str, "np.ndarray"], provider: str, iobinding: bool = True) -> Callable[[], Any]:
    """A zero-argument call running ``session`` on pre-allocated ``feeds``.

    With IOBinding the inputs are bound once as OrtValues on the provider's
    device (copied to the GPU once for CUDA/TensorRT) and outputs are bound
    on that device, so the timed call is the inference itself, without
    numpy conversions (on CPU this saves a few microseconds a call). For GPU
    providers the call waits for the outputs (``synchronize_outputs``), so
    the kernel time is inside the measurement.
    """
    import onnxruntime as ort

    if not iobinding or any(array.dtype == object for array in feeds.values()):  # strings cannot be bound
        return lambda: session.run(None, feeds)
    on_gpu = provider in GPU_PROVIDERS
    device = "cuda" if on_gpu else "cpu"
    binding = session.io_binding()
    keep = []  # the OrtValues must outlive the binding
    for name, array in feeds.items():
        value = ort.OrtValue.ortvalue_from_numpy(array, device, 0)
        keep.append(value)
        binding.bind_ortvalue_input(name, value)
    for output in session.get_outputs():
        binding.bind_output(output.name, device)
    run = session.run_with_iobinding

    if on_gpu:
        def call() -> None:
            run(binding)
            binding.synchronize_outputs()
    else:
        def call() -> None:
            run(binding)

    call.inputs = keep  # type: ignore[attr-defined]
    call.binding = binding  # type: ignore[attr-defined]
    return call


def provider_skip_reason(provider: str) -> str | None:
    """Why ``provider`` cannot run here (None when it can); CPU is always usable."""
    from harness.ort import provider_name, usable_providers

    provider = provider_name(provider)
    if provider == "CPUExecutionProvider":
        return None
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return f"{provider} is not in this onnxruntime build"
    usable, reasons = usable_providers()
    if provider in usable:
        return None
    reason = reasons.get(provider, "unknown reason")
    return reason if reason.startswith(provider) else f"{provider} is not usable here: {reason}"


_WARMED_PROVIDERS: set[tuple[str, int | None]] = set()


def _warm_provider(provider: str, threads: int | None = 1) -> None:
    """Pay ONNX Runtime's once-per-process costs for ``provider`` (kernel registries, a CUDA context) and for
    a pool of ``threads`` on a one-node model, so that a row's ``session_ms`` is its own model's and not
    whichever was timed first (the first 2-thread session took twice as long as the next)."""
    if (provider, threads) in _WARMED_PROVIDERS:
        return
    from harness.ort import make_session, tiny_model_bytes

    with contextlib.suppress(Exception):  # a provider that fails here fails, with its reason, on the real model
        make_session(tiny_model_bytes(), provider, threads=threads)
    _WARMED_PROVIDERS.add((provider, threads))


def provider_thread_counts(provider: str, threads: Sequence[int]) -> list[int]:
    """The intra-op thread counts to time ``provider`` at: each of ``threads`` on the CPU; on a GPU provider
    only the first, since the threads run only what ONNX Runtime leaves on the CPU (a shape op or two) and
    each count would time the same kernels again, rows that differ only by noise."""
    return list(threads[:1]) if provider in GPU_PROVIDERS else list(threads)


def measure_onnx(
    path: Path,
    batch_sizes: Sequence[int],
    threads: Sequence[int] = (1,),
    providers: Sequence[str] = ("CPUExecutionProvider",),
    config: LatencyConfig = LatencyConfig(),
    sample: "np.ndarray | None" = None,
    opt_level: str = "all",
    iobinding: bool | None = None,
    on_skip: Callable[[str], None] | None = None,
    dims: dict[str, int] | None = None,
    spinning: bool | None = None,
) -> list[dict[str, Any]]:
    """Latency rows of an ONNX file for every provider x thread count x batch size (a GPU provider at the
    first thread count only: :func:`provider_thread_counts`).

    ``sample`` (real inputs, ``(N, ...)``) is tiled to each batch size; without
    it, inputs are generated from the graph's declared shapes and types. A
    batch size the graph's static input shape cannot take, or a provider
    that cannot run here, is skipped and reported through ``on_skip`` (one
    line naming it and why). ``dims`` sets named symbolic dimensions other
    than the batch (default 1). Each row records the graph optimisation
    level (``opt_level``), whether IOBinding was used and whether the intra-op
    threads spin-waited (``allow_spinning``; ``spinning=False`` turns it off). ``iobinding`` and
    ``spinning`` left None take ``config``'s (``harness run --no-iobinding/--no-spin``).
    """

    from harness.ort import input_feeds, make_session, provider_name

    iobinding = config.iobinding if iobinding is None else iobinding
    spinning = config.spinning if spinning is None else spinning
    rows = []
    for provider in dict.fromkeys(map(provider_name, providers)):
        reason = provider_skip_reason(provider)
        if reason is not None:
            _skip(on_skip, f"provider {reason}")
            continue
        for n_threads in provider_thread_counts(provider, threads):
            _warm_provider(provider, n_threads)
            try:
                t0 = time.perf_counter_ns()
                session = make_session(path, provider, threads=n_threads, opt_level=opt_level, spinning=spinning)
                session_ms = round((time.perf_counter_ns() - t0) / 1e6, 6)
            except Exception as exc:  # noqa: BLE001
                _skip(on_skip, f"{provider} with {n_threads} thread(s): {squeeze(exc, 200)}")
                continue
            for batch_size in batch_sizes:
                try:
                    feeds = input_feeds(session, batch_size, dims=dims, sample=sample)
                except (ValueError, MemoryError) as exc:  # a static shape that refuses it; inputs too large
                    _skip(on_skip, f"batch size {batch_size}: {squeeze(exc, 200)}")
                    continue
                try:
                    call = onnx_call(session, feeds, provider, iobinding)
                    first_ms = first_call_ms(call)
                    samples = time_calls(call, config)
                except Exception as exc:  # noqa: BLE001 - e.g. a graph whose shapes do not fit the batch
                    _skip(on_skip, f"batch size {batch_size} on {provider} with {n_threads} thread(s): "
                                   f"{squeeze(exc, 200)}")
                    continue
                stats = LatencyStats.from_ns(samples)
                rows.append(
                    {
                        "runtime": "onnxruntime",
                        "provider": provider,
                        "batch_size": batch_size,
                        "threads": n_threads,
                        **stats.row(batch_size),
                        "opt_level": opt_level,
                        "iobinding": iobinding,
                        "allow_spinning": spinning,
                        "session_ms": session_ms,
                        "first_call_ms": first_ms,
                    }
                )
    return rows


def compare_onnx(
    path_a: Path,
    path_b: Path,
    batch_size: int = 1,
    threads: int = 1,
    provider: str = "CPUExecutionProvider",
    rounds: int = 5,
    config: LatencyConfig = ROUND,
    opt_level: str = "all",
    iobinding: bool = True,
    dims: dict[str, int] | None = None,
    spinning: bool = True,
    dims_b: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Two ONNX files (e.g. int8 vs fp32, or before vs after a change) timed alternately on the same inputs.

    Both get the same generated inputs when their input signatures match; ``dims_b``, when given, sizes
    ``path_b``'s open dimensions instead of ``dims``. ``ratio`` > 1 means ``path_a`` is slower; see
    :func:`compare_measurements`. The two are named by file name, or by path when their names are the same.
    """
    from harness.ort import input_feeds, make_session, provider_name

    provider = provider_name(provider)
    reason = provider_skip_reason(provider)
    if reason is not None:
        raise RuntimeError(reason)
    sessions = [make_session(p, provider, threads=threads, opt_level=opt_level, spinning=spinning)
                for p in (path_a, path_b)]
    feeds = [input_feeds(sessions[0], batch_size, dims=dims),
             input_feeds(sessions[1], batch_size, dims=dims if dims_b is None else dims_b)]
    if {k: (v.shape, v.dtype) for k, v in feeds[0].items()} == {k: (v.shape, v.dtype) for k, v in feeds[1].items()}:
        feeds[1] = feeds[0]
    calls = [onnx_call(s, f, provider, iobinding) for s, f in zip(sessions, feeds)]
    names = (Path(path_a).name, Path(path_b).name)
    if names[0] == names[1]:  # a/model.onnx against b/model.onnx
        names = (str(path_a), str(path_b))
    result = compare_alternating(calls[0], calls[1], rounds=rounds, config=config, names=names)
    result.update(provider=provider, batch_size=batch_size, threads=threads, opt_level=opt_level)
    return result


def benchmark_percentiles(benchmark: Any) -> dict[str, Any]:
    """p50/p90/p99 (ms) of a finished pytest-benchmark run, for ``benchmark.extra_info``.

    pytest-benchmark reports no percentiles; with ``benchmark.pedantic(...,
    iterations=1)`` each round is one call, so these are per-call latencies.
    Empty when benchmarks are disabled (``--benchmark-disable``).
    """
    stats = getattr(benchmark, "stats", None)
    data = list(getattr(getattr(stats, "stats", None), "data", None) or [])
    if not data:
        return {}
    p50, p90, p99 = percentiles([d * 1000.0 for d in data], (50, 90, 99))
    return {"p50_ms": round(p50, 6), "p90_ms": round(p90, 6), "p99_ms": round(p99, 6), "rounds": len(data)}


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


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool = True) -> Iterator[None]:
    """cuDNN's per-shape autotuning (``torch.backends.cudnn.benchmark``) set for a block, then put back.

    Training turns it on; eager CUDA latency rows are measured with it on, as ONNX Runtime's CUDA
    provider autotunes its convolutions by default (``cudnn_conv_algo_search=EXHAUSTIVE``): so a
    shape's ``first_call_ms`` includes its autotuning, on both runtimes.
    """
    import torch

    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def measure_torch(
    model: "torch.nn.Module",
    sample: "torch.Tensor",
    batch_sizes: Sequence[int],
    threads: Sequence[int] = (1,),
    device: str = "cpu",
    config: LatencyConfig = LatencyConfig(),
) -> list[dict[str, Any]]:
    """Eager PyTorch latency rows of ``model`` measured exactly like :func:`measure_onnx`.

    ``model`` itself is switched to eval mode and moved to ``device`` (in place, as ``nn.Module.to`` does).

    On CUDA each timed call ends with ``torch.cuda.synchronize()`` so the
    kernel time is inside the measurement, and cuDNN autotunes each shape
    (:func:`cudnn_benchmark`; the rows say ``cudnn_benchmark: true``).
    """
    import torch

    model = model.eval().to(device)
    on_cuda = device.startswith("cuda")
    rows = []
    cold = set(batch_sizes)  # a shape's first call is cold once per process, not once per thread count
    for n_threads in threads:
        with torch_threads(n_threads), torch.inference_mode(), \
                cudnn_benchmark(True) if on_cuda else contextlib.nullcontext():
            for batch_size in batch_sizes:
                x = _batch_of(sample, batch_size).to(device)
                if device.startswith("cuda"):

                    def call(x: "torch.Tensor" = x) -> None:
                        model(x)
                        torch.cuda.synchronize()

                else:

                    def call(x: "torch.Tensor" = x) -> None:
                        model(x)

                first_ms = first_call_ms(call) if batch_size in cold else None
                cold.discard(batch_size)
                stats = LatencyStats.from_ns(time_calls(call, config))
                rows.append(
                    {
                        "runtime": "torch",
                        "provider": "cuda" if device.startswith("cuda") else "cpu",
                        "batch_size": batch_size,
                        "threads": n_threads,
                        **stats.row(batch_size),
                        "first_call_ms": first_ms,
                        **({"cudnn_benchmark": True} if on_cuda else {}),
                    }
                )
    return rows


def _batch_of(sample: "torch.Tensor", batch_size: int) -> "torch.Tensor":
    """``sample`` repeated to ``batch_size`` rows, contiguous (what :func:`harness.ort.input_feeds` feeds ONNX
    Runtime from the same sample)."""
    reps = math.ceil(batch_size / len(sample))
    return sample.repeat(reps, *([1] * (sample.dim() - 1)))[:batch_size].contiguous()


def robust_ratio(vs: dict[str, Any]) -> tuple[float | None, str]:
    """The first side's time over the second's from an alternating comparison (a variant's ``vs_fp32``), and
    the basis.

    Where the comparison's own estimates disagree (``stability`` "unstable": the machine drifted
    during a round), the median of the per-round ratios, which one drifting round cannot carry.
    """
    def positive(value: Any) -> float | None:
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        return float(number) if number is not None and number > 0 else None

    if vs.get("stability") == "unstable":
        return positive(vs.get("ratio_paired_median")), "alternating, unstable"
    return positive(vs.get("ratio")), "alternating"


def at_setting(result: dict[str, Any], provider: str, batch_size: int, threads: int) -> dict[str, Any]:
    """An alternating comparison's ``result`` (:func:`compare_alternating`) with where it was made and its
    ``speedup``: how many times faster the first side is, ``1 / ratio``, or where the comparison's estimates
    disagree ``1 / ratio_paired_median`` (:func:`robust_ratio`), as the reports and the edge table rank it
    (results.json said 0.96x where the report said 1.05x); ``speedup_basis`` names which."""
    paired, how = robust_ratio(result)
    unstable = paired is not None and how != "alternating"
    basis = paired if unstable else result["ratio"]
    result.update(provider=provider, batch_size=batch_size, threads=threads,
                  speedup=round(1.0 / basis, 4) if basis else None,
                  speedup_basis="ratio_paired_median" if unstable else "ratio")
    return result


def round_config(config: LatencyConfig) -> tuple[LatencyConfig, int]:
    """The rounds of an alternating comparison made under ``config``: :data:`ROUND` five times, or shorter
    ones three times for a ``--quick`` run."""
    if config.min_time_s < ROUND.min_time_s:
        return LatencyConfig(warmup_runs=3, min_runs=10, min_time_s=0.03, max_time_s=1.0, warmup_time_s=0.0), 3
    return ROUND, 5


def compare_onnx_with_eager(onnx_path: Path, model: "torch.nn.Module", sample: "torch.Tensor", batch_size: int,
                            threads: int, config: LatencyConfig = LatencyConfig()) -> dict[str, Any]:
    """ONNX Runtime (CPU provider) against eager PyTorch (CPU) at one batch size and thread count, in
    alternating rounds (:func:`compare_alternating`, three of them): the "ORT vs eager" ratio. Their own
    latency rows are measured one after another, so a ratio of those carries the machine's drift between
    the two windows.

    Returns the comparison (``ratio`` = ONNX Runtime / eager, < 1: ONNX Runtime faster; ``stable``) with
    ``speedup`` (eager / ONNX Runtime), ``provider``, ``batch_size`` and ``threads``. ``model`` must be in
    eval mode on the CPU; its inputs and the session's are ``sample`` repeated to ``batch_size`` rows.
    """
    import torch

    from harness.ort import input_feeds, make_session

    provider = "CPUExecutionProvider"
    session = make_session(onnx_path, provider, threads=threads, spinning=config.spinning)
    ort_call = onnx_call(session, input_feeds(session, batch_size, sample=sample.numpy()), provider,
                         config.iobinding)
    x = _batch_of(sample, batch_size)

    def eager_call() -> None:
        model(x)

    config, rounds = round_config(config)
    rounds = min(rounds, 3)  # a table column, not a deployment choice: three rounds, half the time of five
    with torch_threads(threads), torch.inference_mode():
        result = compare_alternating(ort_call, eager_call, rounds=rounds, config=config, names=("onnxruntime", "torch"))
    return at_setting(result, provider, batch_size, threads)


def default_thread_counts() -> list[int]:
    """1 thread (edge-like) and every core this process may use, without duplicates."""
    cores = usable_cores()
    return sorted({1, cores})

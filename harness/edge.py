"""Edge-deployment table: per model, the fastest variant that is accurate enough, and whether it fits a budget.

Input is a results document (``results.json`` as a dict). For each job (one
model on one dataset, plus sweep settings) the candidates are the float32
export (``onnx`` and the job's ``latency`` rows) and every variant that did
not fail (``variants``). A candidate qualifies when it has an ONNX Runtime
latency row at the requested batch size, thread count and provider, and its
accuracy (ONNX Runtime, on the test split or its ``--max-test-samples`` subset) is at least ``accuracy_floor`` and,
if given, no more than ``max_accuracy_drop`` below float32. The fastest by
one wins. ``fits_budget`` says whether it is within every budget given
(:class:`Budget`; null without one), ``cold_ms`` what its cold start took
(its load and first answer in a new process, at the table's provider and
batch size, and the fewest threads measured) and ``rss_bytes`` the resident
memory that added (see :mod:`harness.coldstart`).
A job with no qualifying candidate still gets a row, with
``variant: null`` and a ``note`` saying why.

"Fastest" is judged relative to float32, because the latency rows of
different variants come from separate measurements and a shared machine
drifts between them: a variant's alternating comparison with float32
(``vs_fp32``, recorded by :mod:`harness.variants` at the smallest batch size
and first thread count) is used where it matches the setting, else the ratio
of the two p50s. Candidates within :data:`TIE_PCT` of the fastest are equally
fast; among them the smaller accuracy drop, then the smaller file, wins. The
row reports ``vs_fp32_ratio`` (< 1: faster than float32) and its basis
(``alternating`` or ``sequential``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Sequence

from harness.latency import (default_thread_counts, mean_over_p50, robust_ratio, run_remedy, settings_name,
                             unstable_mark, unstable_note, unstable_reasons, usable_cores)
from harness.text import first_five, mflops, points, size_text, squeeze

TIE_PCT = 3.0
"""Candidates within this many percent of the fastest count as equally fast (smaller drop, then file, wins)."""
THREADS_MAX = "max"
"""``threads=THREADS_MAX`` picks, per job, the largest thread count measured (all cores in the edge profile)."""


@dataclass(frozen=True)
class Budget:
    """What a deployment target allows; None is no limit.

    ``latency_ms`` bounds the p50 latency at the table's batch size and thread count; ``size_bytes`` the
    model on disk (the ``.onnx`` file and its external data: flash); ``activation_bytes`` the peak
    activation memory at batch 1, the static estimate of :mod:`harness.onnx_cost` (the working RAM a
    runtime needs beside the weights); ``cold_ms`` the cold start: the model's load and first answer
    in a new process (:mod:`harness.coldstart`), what a model loaded on demand costs before its first
    answer; ``memory_bytes`` the resident memory the model adds to that process at its peak (weights as
    ONNX Runtime holds them, its arena, the first call's tensors: measured, where ``activation_bytes``
    is an estimate of the tensors alone).
    """

    latency_ms: float | None = None
    size_bytes: int | None = None
    activation_bytes: int | None = None
    cold_ms: float | None = None
    memory_bytes: int | None = None

    KEYS: ClassVar[tuple[str, ...]] = ("latency_budget_ms", "size_budget_bytes", "activation_budget_bytes",
                                       "cold_budget_ms", "memory_budget_bytes")
    """The run options (and results.json ``config`` keys) that hold a budget."""

    @classmethod
    def from_config(cls, config: Any) -> "Budget":
        """The budget a run asked for, from its options (``results.json``'s ``config``)."""
        config = config if isinstance(config, dict) else {}
        return cls(_number(config.get("latency_budget_ms")), _int(config.get("size_budget_bytes")),
                   _int(config.get("activation_budget_bytes")), _number(config.get("cold_budget_ms")),
                   _int(config.get("memory_budget_bytes")))

    def __bool__(self) -> bool:
        return any(value is not None for value in (self.latency_ms, self.size_bytes, self.activation_bytes,
                                                   self.cold_ms, self.memory_bytes))

    def over(self, p50_ms: float | None, size: int | None, activations: int | None,
             cold_ms: float | None = None, memory: int | None = None) -> list[str]:
        """The budgets a candidate does not meet: ``latency``, ``size``, ``activations``, ``cold start``,
        ``memory``; or, where the figure was not recorded (an older run, a graph whose shapes are
        unknown), ``size unknown`` and so on: nothing says it fits."""
        out = []
        for name, value, limit in (("latency", p50_ms, self.latency_ms), ("size", size, self.size_bytes),
                                   ("activations", activations, self.activation_bytes),
                                   ("cold start", cold_ms, self.cold_ms), ("memory", memory, self.memory_bytes)):
            if limit is not None and value is None:
                out.append(f"{name} unknown")
            elif limit is not None and value > limit:
                out.append(name)
        return out

    def text(self) -> str:
        """``p50 <= 1 ms, size <= 256.0 KiB, activations <= 64.0 KiB`` (the budgets given)."""
        parts = []
        if self.latency_ms is not None:
            parts.append(f"p50 <= {self.latency_ms:g} ms")
        if self.size_bytes is not None:
            parts.append(f"size <= {size_text(self.size_bytes)}")
        if self.activation_bytes is not None:
            parts.append(f"activations <= {size_text(self.activation_bytes)}")
        if self.cold_ms is not None:
            parts.append(f"cold start <= {self.cold_ms:g} ms")
        if self.memory_bytes is not None:
            parts.append(f"memory <= {size_text(self.memory_bytes)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Question:
    """What a run asks of its models (its options, ``results.json``'s ``config``): an accuracy floor (a
    fraction; above 1, a percentage), the largest accuracy drop below float32 a variant may have, in
    percentage points, and a :class:`Budget`."""

    accuracy_floor: float | None = None
    max_accuracy_drop: float | None = None
    budget: Budget = Budget()

    KEYS: ClassVar[tuple[str, ...]] = ("accuracy_floor", "max_accuracy_drop", *Budget.KEYS)
    """The run options (and ``config`` keys) that make up the question; they judge every job, finished or not."""

    @classmethod
    def from_config(cls, config: Any) -> "Question":
        config = config if isinstance(config, dict) else {}
        return cls(_number(config.get("accuracy_floor")), _number(config.get("max_accuracy_drop")),
                   Budget.from_config(config))

    def __bool__(self) -> bool:
        return self.accuracy_floor is not None or self.max_accuracy_drop is not None or bool(self.budget)

    def table(self, results: dict[str, Any], batch_size: int = 1, threads: int | str | None = 1,
              provider: str | None = "CPUExecutionProvider") -> list[dict[str, Any]]:
        """:func:`deployment_table` asked this question."""
        drop = None if self.max_accuracy_drop is None else self.max_accuracy_drop / 100
        return deployment_table(results, self.accuracy_floor, self.budget.latency_ms, batch_size, threads,
                                provider=provider, max_accuracy_drop=drop, size_budget_bytes=self.budget.size_bytes,
                                activation_budget_bytes=self.budget.activation_bytes,
                                cold_budget_ms=self.budget.cold_ms, memory_budget_bytes=self.budget.memory_bytes)

    def criteria_text(self) -> str:
        """``accuracy >= 0.99, drop <= 0.5 points`` (the accuracy criteria given)."""
        parts = []
        if self.accuracy_floor is not None:
            parts.append(f"accuracy >= {as_fraction(self.accuracy_floor):g}")
        if self.max_accuracy_drop is not None:
            parts.append(f"drop <= {self.max_accuracy_drop:g} point{'' if self.max_accuracy_drop == 1 else 's'}")
        return ", ".join(parts)

    def text(self) -> str:
        """``accuracy >= 0.99, drop <= 0.5 points, p50 <= 1 ms, size <= 256.0 KiB`` (what was asked)."""
        return ", ".join(x for x in (self.criteria_text(), self.budget.text()) if x)


def asked_groups(results: dict[str, Any]) -> tuple[list[tuple[dict[str, Any], Question]], bool]:
    """What to judge with which question: ``([(document, question), ...], per_run)``.

    The whole results with its own question; but a joined report (``harness report A B``) whose runs
    asked differently is judged run by run, each with that run's question (its jobs' ``run_config``),
    and ``per_run`` is True.
    """
    jobs = _dicts(results.get("jobs"))
    runs: dict[Any, list[dict[str, Any]]] = {}
    for job in jobs:
        runs.setdefault(job.get("run_id"), []).append(job)
    if len([r for r in runs if r]) > 1 and len({Question.from_config(j.get("run_config")) for j in jobs}) > 1:
        return [({"jobs": run_jobs, "joined_runs": results.get("joined_runs")},
                 Question.from_config(run_jobs[0].get("run_config"))) for run_jobs in runs.values()], True
    return [(results, Question.from_config(results.get("config")))], False


def deployment_table(
    results: dict[str, Any],
    accuracy_floor: float | None = None,
    latency_budget_ms: float | None = None,
    batch_size: int = 1,
    threads: int | str | None = 1,
    *,
    provider: str | None = "CPUExecutionProvider",
    max_accuracy_drop: float | None = None,
    metric: str = "accuracy",
    size_budget_bytes: int | None = None,
    activation_budget_bytes: int | None = None,
    cold_budget_ms: float | None = None,
    memory_budget_bytes: int | None = None,
) -> list[dict[str, Any]]:
    """One row per job: the fastest qualifying variant (fp32 included) at ``batch_size`` / ``threads``.

    ``accuracy_floor`` is a fraction (a value above 1 is read as a percentage); ``max_accuracy_drop``
    a fraction too (0.005 is half a percentage point; :class:`Question` takes points). ``threads``: a
    count, :data:`THREADS_MAX`, or None for any. ``provider``:
    a full provider name, or None for any (the row says which). The budgets (see :class:`Budget`) do
    not disqualify: a variant within every budget beats a relatively faster one that is not, and where
    none is, the row shows one over the fewest, with ``fits_budget`` false and ``over_budget`` naming
    them.
    """
    floor = as_fraction(accuracy_floor)
    budget = Budget(latency_budget_ms, size_budget_bytes, activation_budget_bytes, cold_budget_ms,
                    memory_budget_bytes)
    rows = []
    # THREADS_MAX stops at the cores the run could use: a count beyond them timed threads waiting for a core
    environment = results.get("environment") if isinstance(results, dict) else None
    cores = _int(environment.get("usable_cores")) if isinstance(environment, dict) else None
    for job in _dicts(results.get("jobs") if isinstance(results, dict) else None):
        if job.get("status") == "skipped":
            continue
        rows.append(_job_row(job, floor, budget, batch_size, threads, provider, max_accuracy_drop, metric, cores))
    return rows


ACCURACY_SLACK = 1e-6
"""How far an accuracy may sit on the wrong side of the floor, or a drop above the largest allowed, and still
meet it: older runs' accuracies (and a plugin metric's) are float32 means (exactly 90 % is 0.899999976), a
drop is a difference of floats (0.742 - 0.741 is 0.00100000000000011), and the question is asked in
decimals. A millionth is far below one test sample's worth."""


def _job_row(job: dict[str, Any], floor: float | None, budget: Budget, batch_size: int,
             threads: int | str | None, provider: str | None, max_drop: float | None, metric: str,
             cores: int | None = None) -> dict[str, Any]:
    base_accuracy = _fp32_accuracy(job, metric)
    wanted_threads = threads
    capped = False
    if threads == THREADS_MAX:  # the most measured within the run's cores (the fewest when all are beyond)
        measured = [r["threads"] for r in _ort_rows(job.get("latency")) if _int(r.get("threads")) is not None]
        within = [t for t in measured if cores is None or t <= cores]
        capped = len(within) < len(measured)
        wanted_threads = max(within) if within else min(measured, default=None)
    row: dict[str, Any] = {
        "model": job.get("model"),
        "dataset": job.get("dataset"),
        "job": job.get("id"),
        "point": job.get("point") or None,
        "run_id": job.get("run_id"),
        # on how many test samples the accuracy stands, where --max-test-samples cut the split
        "test_samples": _int(job.get("test_samples")),
        "test_samples_available": _int(job.get("test_samples_available")),
        "variant": None,
        "provider": provider,
        "batch_size": batch_size,
        "threads": wanted_threads,
        # the run's usable cores, where THREADS_MAX passed over a count timed beyond them (said in its title)
        **({"threads_capped_at": cores} if capped else {}),
        "p50_ms": None,
        "p99_ms": None,
        "min_ms": None,
        "mean_ms": None,  # beside the p50, what tells a spread (a few slow calls) from a drift
        "stable": None,
        "drift_pct": None,
        "cold_ms": None,
        "rss_bytes": None,
        "bytes": None,
        "activation_bytes": None,
        "path": None,
        "params": _int(job.get("params")),
        "flops": _int(job.get("flops")),
        metric: None,
        "accuracy_drop": None,
        "fits_budget": None,
        "over_budget": None,
        "vs_fp32_ratio": None,
        "vs_fp32_basis": None,
        "candidates": 0,
        "variants_tried": 0,
        "best_" + metric: None,
        "accuracy_floor": floor,
        "max_accuracy_drop": max_drop,
        "latency_budget_ms": budget.latency_ms,
        "size_budget_bytes": budget.size_bytes,
        "activation_budget_bytes": budget.activation_bytes,
        "cold_budget_ms": budget.cold_ms,
        "memory_budget_bytes": budget.memory_bytes,
        "note": None,
        "status": job.get("status"),
        "stage": job.get("stage"),
    }
    if job.get("status") not in (None, "ok"):
        row["note"] = f"job {job.get('status')}: {job.get('error') or 'no error recorded'}"
        return row
    candidates = _candidates(job, metric)
    row["candidates"] = len(candidates)
    row["variants_tried"] = len(_dicts(job.get("variants")))  # failed ones too
    timed, reasons = [], []
    for cand in candidates:
        lat = _pick(cand["latency"], batch_size, wanted_threads, provider)
        if lat is not None and cand["accuracy"] is not None:  # the most accurate of those timed here
            best = row.get("best_" + metric)
            row["best_" + metric] = cand["accuracy"] if best is None else max(best, cand["accuracy"])
        if lat is None:
            skipped = [x for x in cand.get("latency_skipped") or () if provider is None or provider in x]
            why = (f" (left out on purpose: {skipped[0].split(': ', 1)[-1].split(':')[0]})" if skipped else "")
            reasons.append(f"{cand['variant']}: no latency at batch {batch_size}, "
                           f"{_threads_text(wanted_threads)}{'' if provider is None else ' on ' + provider}{why}")
            continue
        accuracy = cand["accuracy"]
        drop = None if accuracy is None or base_accuracy is None else base_accuracy - accuracy
        if floor is not None and (accuracy is None or accuracy < floor - ACCURACY_SLACK):
            reasons.append(f"{cand['variant']}: {metric} {_num(accuracy)} below the floor {floor:g}")
            continue
        if max_drop is not None and (drop is None or drop > max_drop + ACCURACY_SLACK):
            reasons.append(f"{cand['variant']}: {metric} drop "
                           f"{'n/a' if drop is None else format(drop * 100, '.2f')} points above {max_drop * 100:g}")
            continue
        timed.append((lat, cand, drop))
    if not timed:
        row["note"] = "no variant qualifies: " + ("; ".join(reasons) if reasons else "no ONNX model recorded")
        return row
    if budget:  # a variant within every budget beats a relatively faster one that is not; else the fewest over
        over = [len(budget.over(float(lat["p50_ms"]), cand["bytes"], cand["activation_bytes"],
                                *_cold(cand, lat))) for lat, cand, _ in timed]
        timed = [entry for entry, n in zip(timed, over) if n == min(over)]
    fp32 = next((c for c in candidates if c["variant"] == "fp32"), None)
    fp32_lat = _pick(fp32["latency"], batch_size, wanted_threads, provider) if fp32 else None
    scored = [(*_speed(lat, cand, fp32_lat, batch_size), lat, cand, drop) for lat, cand, drop in timed]
    # A ratio its own rounds call unstable does not outrank another variant's steady one when that variant is
    # also faster on its own p50: each ratio comes from its own window of alternating rounds, and on a
    # drifting machine an unstable one read 0.76x for a variant slower than another's steady 0.82x. (Against
    # float32 alone, the unstable ratio's per-round median stands: it is the one comparison measured.)
    steady = [e for e in scored if e[1] == "alternating" and e[3]["variant"] != "fp32"]
    doubted = [e for e in scored if e[1] == "alternating, unstable"
               and any(float(o[2]["p50_ms"]) < float(e[2]["p50_ms"]) for o in steady)]
    if doubted and len(doubted) < len(scored):
        scored = [e for e in scored if e not in doubted]
        row["note"] = (f"not ranked by an unstable ratio to fp32: {', '.join(e[3]['variant'] for e in doubted)} "
                       f"(slower on its own p50 than a variant measured steadily)")
    best = min(score for score, *_ in scored)
    # Within TIE_PCT of the fastest is a tie (the figures' own noise): prefer the smaller accuracy drop,
    # then the smaller file.
    ties = [entry for entry in scored if entry[0] <= best * (1 + TIE_PCT / 100)]
    score, basis, lat, cand, drop = min(
        ties, key=lambda e: (e[4] if e[4] is not None else 0.0, e[3]["bytes"] if e[3]["bytes"] is not None
                             else float("inf"), e[0]))
    cold_ms, rss_bytes = _cold(cand, lat)
    row.update(
        variant=cand["variant"],
        provider=lat.get("provider"),
        threads=lat.get("threads"),
        p50_ms=_number(lat.get("p50_ms")),
        p99_ms=_number(lat.get("p99_ms")),
        stable=lat.get("stable"),
        drift_pct=_number(lat.get("drift_pct")),
        min_ms=_number(lat.get("min_ms")),
        mean_ms=_number(lat.get("mean_ms")),
        cold_ms=cold_ms,
        rss_bytes=rss_bytes,
        bytes=cand["bytes"],
        activation_bytes=cand["activation_bytes"],
        path=cand.get("path"),
        accuracy_drop=None if drop is None else round(drop, 6),
        vs_fp32_ratio=round(score, 4) if basis != "p50" else None,
        vs_fp32_basis=basis if basis != "p50" else None,
    )
    row[metric] = cand["accuracy"]
    if budget:
        row["over_budget"] = budget.over(float(lat["p50_ms"]), cand["bytes"], cand["activation_bytes"],
                                         cold_ms, rss_bytes)
        row["fits_budget"] = not row["over_budget"]
    return row


def _cold(cand: dict[str, Any], lat: dict[str, Any]) -> tuple[float | None, int | None]:
    """A candidate's cold start milliseconds and the resident memory it added (``cold_start``, see
    :mod:`harness.coldstart`), where measured at the latency row's provider and batch size; None where
    not (a run from before them, a failed probe, another provider or batch size). The in-process ``session_ms`` of latency rows is no
    stand-in: a model loads several times faster in a process that has loaded it before."""
    record = cand.get("cold_start")
    if not isinstance(record, dict) or any(record.get(key) != lat.get(key) for key in ("provider", "batch_size")):
        return None, None  # threads may differ: the all-cores table shows the one measured (the fewest)
    return _number(record.get("ms")), _int(record.get("rss_bytes"))


def _speed(lat: dict[str, Any], cand: dict[str, Any], fp32_lat: dict[str, Any] | None,
           batch_size: int) -> tuple[float, str]:
    """(ranking score, basis): latency relative to float32 where float32 was measured at this setting.

    ``alternating``: the variant's own alternating comparison with float32 at
    this very setting (drift-free); ``sequential``: its p50 over float32's
    p50 from separate measurements; ``p50``: absolute p50 (no float32 figure).
    """
    p50 = float(lat["p50_ms"])
    if cand["variant"] == "fp32":
        return (1.0, "alternating") if fp32_lat is not None else (p50, "p50")
    vs = cand.get("vs_fp32")
    if fp32_lat is not None and vs and _number(vs.get("ratio")) and vs["ratio"] > 0:
        setting = {"provider": lat.get("provider"), "batch_size": batch_size, "threads": lat.get("threads")}
        if all(vs.get(key) in (None, value) for key, value in setting.items()):
            ratio, basis = robust_ratio(vs)
            if ratio is not None and basis == "alternating, unstable" and _straddles_one(vs):
                # its estimates disagree on which side is faster: level with fp32, and the tie-break (the
                # smaller drop, then the smaller file) decides, not a per-round median of 0.88x beside a best-
                # medians 1.00x and floors 1.02x (a slim file was picked over a faster-on-its-p50 fp32)
                return 1.0, LEVEL
            if ratio is not None:
                return ratio, basis
    fp32_p50 = _number(fp32_lat.get("p50_ms")) if fp32_lat is not None else None
    if fp32_p50:
        return p50 / fp32_p50, "sequential"
    return p50, "p50"


LEVEL = "alternating, unstable, level"
"""The basis of a variant ranked level with float32: its comparison's estimates fall on both sides of 1."""


def _straddles_one(vs: dict[str, Any]) -> bool:
    """Whether an alternating comparison's estimates (best medians, floors, per-round median) fall on both
    sides of 1: it cannot say which model is faster."""
    estimates = [r for r in (_number(vs.get(k)) for k in ("ratio", "ratio_min", "ratio_paired_median"))
                 if r is not None and r > 0]
    return bool(estimates) and min(estimates) < 1.0 < max(estimates)



def _candidates(job: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    out = []
    onnx = job.get("onnx")
    if isinstance(onnx, dict) and onnx:
        out.append({"variant": "fp32", "bytes": _int(onnx.get("bytes")), "path": onnx.get("path"),
                    "activation_bytes": _int(onnx.get("activation_bytes")), "accuracy": _fp32_accuracy(job, metric),
                    "latency": _ort_rows(job.get("latency")), "cold_start": onnx.get("cold_start")})
    for variant in _dicts(job.get("variants")):
        name = variant.get("variant")
        if variant.get("error") or not isinstance(name, str) or name == "fp32":
            continue
        vs = variant.get("vs_fp32") if isinstance(variant.get("vs_fp32"), dict) else None
        skipped = variant.get("latency_skipped")
        out.append({"variant": name, "bytes": _int(variant.get("bytes")), "path": variant.get("path"),
                    "activation_bytes": _int(variant.get("activation_bytes")),
                    "latency_skipped": [str(x) for x in skipped] if isinstance(skipped, list) else [],
                    "accuracy": _metric(variant.get("metrics"), metric),
                    "latency": _ort_rows(variant.get("latency")), "vs_fp32": vs,
                    "cold_start": variant.get("cold_start")})
    return out


def _fp32_accuracy(job: dict[str, Any], metric: str) -> float | None:
    """The float32 model's accuracy in ONNX Runtime, else in PyTorch."""
    onnx = job.get("onnx")
    value = _metric(onnx.get("metrics") if isinstance(onnx, dict) else None, metric)
    return value if value is not None else _metric(job.get("metrics"), metric)


def _metric(metrics: Any, name: str) -> float | None:
    return _number(metrics.get(name)) if isinstance(metrics, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dicts(values: Any) -> list[dict[str, Any]]:
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _ort_rows(rows: Any) -> list[dict[str, Any]]:
    return [r for r in _dicts(rows)
            if r.get("runtime", "onnxruntime") == "onnxruntime" and _number(r.get("p50_ms")) is not None]


def _pick(rows: list[dict[str, Any]], batch_size: int, threads: int | None, provider: str | None) -> dict | None:
    matching = [r for r in rows
                if r.get("batch_size") == batch_size
                and (threads is None or r.get("threads") == threads)
                and (provider is None or r.get("provider") == provider)]
    return min(matching, key=lambda r: float(r["p50_ms"]), default=None)


def as_fraction(value: float | None) -> float | None:
    """An accuracy floor as a fraction: 0.99 stays, 99 (a percentage) becomes 0.99."""
    if value is None:
        return None
    value = float(value)
    return value / 100.0 if value > 1.0 else value


def floor_warning(value: float | None) -> str | None:
    """What to warn of an accuracy floor that may not say what was meant: between 1 and 50 it is read as a
    percentage (5 is 5 %), seldom what a floor that low means; exactly 1 is read as a fraction (100 %)."""
    if value == 1:
        return "--accuracy-floor 1 is read as a fraction: 100 %, every test sample right (1 % is 0.01)"
    if value is None or not 1 < value < 50:
        return None
    return f"--accuracy-floor {value:g} is read as a percentage: {value:g} % (a fraction is 0..1, a percentage 1..100)"


def _threads_text(threads: int | None) -> str:
    return "any thread count" if threads is None else f"{threads} thread(s)"


def _num(value: Any, spec: str = ".4f") -> str:
    return "n/a" if _number(value) is None else format(float(value), spec)


def ratio_text(row: dict[str, Any]) -> str:
    """A deployment row's time over float32's (``0.82x (alternating)``), and the basis where rounds measured it."""
    ratio = _number(row.get("vs_fp32_ratio"))
    if ratio is None or row.get("variant") in (None, "fp32"):
        return "-"
    basis = row.get("vs_fp32_basis")
    if basis == LEVEL:  # the comparison could not tell which is faster: shown as such, not as 1.00x
        return "~1x (alternating, unstable: either side)"
    return f"{ratio:.2f}x" + (f" ({basis})" if basis in ("alternating", "alternating, unstable") else "")


def _over_text(row: dict[str, Any], budget: Budget) -> str:
    """``over its budget: size 234.4 KiB > 64.0 KiB``, ``with no activations figure recorded``, or both."""
    over = row.get("over_budget") or []
    amounts = {"latency": (f"p50 {_num(row.get('p50_ms'))} ms", f"{budget.latency_ms:g} ms"
                           if budget.latency_ms is not None else "-"),
               "size": (f"size {size_text(row.get('bytes'))}", size_text(budget.size_bytes)),
               "activations": (f"activations {size_text(row.get('activation_bytes'))}",
                               size_text(budget.activation_bytes)),
               "cold start": (f"cold start {_num(row.get('cold_ms'), '.1f')} ms",
                              f"{budget.cold_ms:g} ms" if budget.cold_ms is not None else "-"),
               "memory": (f"memory {size_text(row.get('rss_bytes'))}", size_text(budget.memory_bytes))}
    known = [f"{amounts[x][0]} > {amounts[x][1]}" for x in over if x in amounts]
    unknown = [x.removesuffix(" unknown") for x in over if x.endswith(" unknown")]
    parts = []
    if known:
        parts.append(f"over its budget: {' and '.join(known)}")
    if unknown:
        parts.append(f"with no {' or '.join(unknown)} figure recorded")
    return " and ".join(parts)


def fits_text(row: dict[str, Any]) -> str:
    """A row's "fits budget" cell: ``yes``, ``no (size, activations)`` (what it is over), or ``-``."""
    if row.get("fits_budget") is None:
        return "-"
    over = row.get("over_budget")
    return "yes" if row["fits_budget"] else "no" + (f" ({', '.join(over)})" if over else "")


def to_markdown(rows: Sequence[dict[str, Any]], metric: str = "accuracy") -> str:
    """A Markdown table of :func:`deployment_table` rows, with a caption line and notes under it."""
    if not rows:
        return "_No job to report._\n"
    first = rows[0]
    same_threads = all(r.get("threads") == first.get("threads") for r in rows)
    caption = [f"batch {first.get('batch_size')}", _threads_text(first.get("threads")) if same_threads
               else "thread count per row"]
    providers = {r.get("provider") for r in rows}
    if len(providers) == 1 and None not in providers:
        caption.append(str(next(iter(providers))))
    if _number(first.get("accuracy_floor")) is not None:
        caption.append(f"{metric} floor {first['accuracy_floor']:g}")
    if _number(first.get("max_accuracy_drop")) is not None:
        caption.append(f"drop at most {first['max_accuracy_drop'] * 100:g} points")
    budget = Budget.from_config(first)
    if budget:
        caption.append(f"budget {budget.text()}")
    intro = (f"Fastest qualifying variant per model: {', '.join(caption)}. \"time vs fp32\" is the variant's "
             "latency over float32's (below 1: faster), from alternating rounds where recorded.")
    lines = [intro, ""]
    headers = ["model", "dataset", "variant", metric, "drop vs fp32 (points)", "size", "activations", "p50 ms",
               "p99 ms", "cold ms", "RAM",
               "time vs fp32", "params", "MFLOPs"]
    if not same_threads:
        headers.insert(7, "threads")
    if budget:
        headers.append("fits budget")
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    notes = []
    for r in rows:
        cells = [
            str(r.get("model")), str(r.get("dataset")), r.get("variant") or "none",
            _num(r.get(metric)), points(r.get("accuracy_drop")), size_text(r.get("bytes")),
            size_text(r.get("activation_bytes")), _num(r.get("p50_ms")) + unstable_mark(r),
            _num(r.get("p99_ms")), _num(r.get("cold_ms"), ".1f"), size_text(r.get("rss_bytes")),
            ratio_text(r),
            f"{r['params']:,}" if isinstance(r.get("params"), int) else "-",
            mflops(r.get("flops")),
        ]
        if not same_threads:
            cells.insert(7, str(r.get("threads") if r.get("threads") is not None else "-"))
        if budget:
            cells.append(fits_text(r))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if r.get("note"):
            notes.append(squeeze(f"- {r.get('model')} on {r.get('dataset')}: {r['note']}"))
    unstable = unstable_note(rows)
    if unstable:
        notes.append(f"- {unstable}")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def edge_markdown(results: dict[str, Any], accuracy_floor: float | None = None,
                  latency_budget_ms: float | None = None, provider: str | None = "CPUExecutionProvider",
                  max_accuracy_drop: float | None = None, size_budget_bytes: int | None = None,
                  activation_budget_bytes: int | None = None, cold_budget_ms: float | None = None,
                  memory_budget_bytes: int | None = None) -> str:
    """The edge section of a report: batch 1 on 1 thread, then on every core measured (``max_accuracy_drop``
    is a fraction, as in :func:`deployment_table`)."""
    parts = []
    for threads in (1, THREADS_MAX):
        rows = deployment_table(results, accuracy_floor, latency_budget_ms, 1, threads, provider=provider,
                                max_accuracy_drop=max_accuracy_drop, size_budget_bytes=size_budget_bytes,
                                activation_budget_bytes=activation_budget_bytes, cold_budget_ms=cold_budget_ms,
                                memory_budget_bytes=memory_budget_bytes)
        if threads == THREADS_MAX and all(r["threads"] in (None, 1) for r in rows):
            continue  # nothing beyond 1 thread was measured
        parts.append(f"### Edge deployment, batch 1, {threads_title(rows, threads)}\n\n{to_markdown(rows)}")
    return "\n".join(parts)


def threads_title(rows: Sequence[dict[str, Any]], threads: int | str | None) -> str:
    """How a table's thread count reads: ``1 thread``, or for :data:`THREADS_MAX` the count its rows were
    measured at (``4 threads, the most threads measured``), which need not be the machine's core count, but
    is never above it when another count was measured (``2 threads, the most threads measured within the
    run's 2 usable cores``: 4 was timed too, on threads waiting for a core)."""
    if threads != THREADS_MAX:
        return f"{threads} thread" + ("" if threads == 1 else "s")
    counts = sorted({r["threads"] for r in rows if isinstance(r.get("threads"), int)})
    capped = next((r["threads_capped_at"] for r in rows if r.get("threads_capped_at")), None)
    within = "" if capped is None else f" within the run's {capped} usable cores"
    if len(counts) == 1:
        return f"{counts[0]} thread{'' if counts[0] == 1 else 's'}, the most threads measured{within}"
    return f"the most threads measured{within} for each job"


SEE_TABLE = " (see the report's Edge deployment table for why)"
"""Where the terminal's answer points for the reasons; the report's own header, above that table, leaves it out."""


def edge_answer(results: dict[str, Any], accuracy_floor: float | None, latency_budget_ms: float | None,
                provider: str | None = "CPUExecutionProvider", *, size_budget_bytes: int | None = None,
                activation_budget_bytes: int | None = None, max_drop_points: float | None = None,
                run_dir: "str | os.PathLike[str] | None" = None, cold_budget_ms: float | None = None,
                memory_budget_bytes: int | None = None) -> str | None:
    """The edge question answered on one line for the terminal (None when nothing was asked).

    "Which model meets the budget at batch 1 on 1 thread with at least the floor?": the jobs whose
    pick qualifies (and fits every budget given), fastest first, or the nearest miss.
    ``max_drop_points`` is in percentage points (``deployment_table``'s ``max_accuracy_drop`` is a
    fraction). ``run_dir``: the run folder (or a joined report's), to name the fastest file by a path
    that opens; without it the path is the run folder's own (``onnx/...``), or a joined report's.
    """
    question = Question(accuracy_floor, max_drop_points,
                        Budget(latency_budget_ms, size_budget_bytes, activation_budget_bytes, cold_budget_ms,
                               memory_budget_bytes))
    return _answer(results, question, provider, run_dir)


def _answer(results: dict[str, Any], question: "Question", provider: str | None,
            run_dir: "str | os.PathLike[str] | None", rows: list[dict[str, Any]] | None = None) -> str | None:
    """:func:`edge_answer` for ``question``; ``rows``: its table at batch 1 on 1 thread, when already made."""
    if not question:
        return None
    rows = question.table(results, 1, 1, provider) if rows is None else rows
    asked = question.text()
    where = "batch 1, 1 thread" + ("" if provider is None else f", {provider.replace('ExecutionProvider', '')}")

    from harness.report import job_label  # a row has the job's model, point and run_id

    several_runs = len({r.get("run_id") for r in rows if r.get("run_id")}) > 1  # a joined report's jobs

    def name(r: dict[str, Any]) -> str:
        variant = f" {r['variant']}" if r.get("variant") else ""
        return f"{job_label(r, run=several_runs)}{variant} on {r.get('dataset')}"

    fits = _fastest_first(rows)
    budget = question.budget

    def figures(r: dict[str, Any]) -> str:  # what the question asked about, besides latency and accuracy
        sizes = [f"{size_text(r.get('bytes'))} file" if budget.size_bytes is not None else "",
                 f"{size_text(r.get('activation_bytes'))} activations" if budget.activation_bytes is not None else "",
                 f"cold start {_num(r.get('cold_ms'), '.1f')} ms" if budget.cold_ms is not None else "",
                 f"{size_text(r.get('rss_bytes'))} memory" if budget.memory_bytes is not None else ""]
        return "".join(f", {x}" for x in sizes if x)

    broken = [r for r in rows if r.get("status") == "failed"]
    failed = ("; not judged, failed: " + first_five(
        [f"{job_label(r, run=several_runs)}" + (f" ({r['stage']})" if r.get("stage") else "") for r in broken])
        ) if broken else ""
    recorded = {job.get("id") for job in _dicts(results.get("jobs"))}
    never = [str(i) for i in results.get("planned_jobs") or [] if i not in recorded]  # an interrupted run's
    failed += ("; not judged, not run yet: " + first_five(never)) if never else ""
    only_fp32 = ""
    measured = [r for r in rows if r.get("candidates")]
    if (budget.size_bytes is not None or budget.activation_bytes is not None
            or budget.memory_bytes is not None) and measured and all(
            r.get("candidates") == 1 and not r.get("variants_tried") for r in measured):
        only_fp32 = ("; only float32 exports were measured: a run with --profile edge (or --variants "
                     "int8-static,int8-dynamic) measures smaller ones")
    if fits:
        shown = first_five([f"{name(r)} {_num(r['p50_ms'])}{unstable_mark(r)} ms, accuracy {_num(r.get('accuracy'))}"
                             f"{_on_samples(r)}{figures(r)}" for r in fits], "; ")
        path = _file_text(results, fits[0], run_dir)
        return (f"edge ({where}; {asked}): {len(fits)} of {len(rows) - len(broken)} job(s) qualify, fastest first: "
                f"{shown}{failed}{path}{_doubts(results, fits[0], budget)}")
    near = sorted((r for r in rows if r.get("p50_ms") is not None),
                  key=lambda r: (len(r.get("over_budget") or ()), r["p50_ms"]))
    notes = " ".join(str(r.get("note") or "") for r in rows)
    if near:
        over = near[0].get("over_budget") or []
        if [x for x in over if x != "latency"]:  # another budget: the one over the fewest, then the fastest
            hint = f"; the closest is {name(near[0])} at {_num(near[0]['p50_ms'])} ms, {_over_text(near[0], budget)}"
        else:
            hint = f"; the fastest accurate enough is {name(near[0])} at {_num(near[0]['p50_ms'])} ms"
    elif "below the floor" in notes or "points above" in notes:
        best = max((r["best_accuracy"] for r in rows if _number(r.get("best_accuracy")) is not None), default=None)
        untimed = " among those timed at batch 1 on 1 thread" if "no latency at batch" in notes else ""
        hint = ("; none is accurate enough" + (f": the most accurate{untimed} reaches {best:.4f}" if best is not None
                                              else "") + SEE_TABLE)
    elif "no latency at batch" in notes:
        hint = ("; nothing was timed at batch 1 on 1 thread on this provider (run with --batch-sizes 1 --threads 1, "
                "or --profile edge)")
    else:
        hint = SEE_TABLE
    return f"edge ({where}; {asked}): no job qualifies{hint}{only_fp32}{failed}"


def _doubts(results: dict[str, Any], row: dict[str, Any], budget: Budget) -> str:
    """What makes the fastest pick's latency less sure than its figure reads, said after the answer: a row
    marked unstable (a busy machine: its p50 drifted, or a few slow calls pull up its mean and p99; it does
    not repeat), a p99 over the latency budget (a deadline is missed now and then), timing with --quick (few
    runs)."""
    doubts = []
    reasons = unstable_reasons(row)
    if reasons:
        drift, pulled = _number(row.get("drift_pct")), mean_over_p50(row)
        why = ([f"drifted {drift:.1f} %" if drift is not None else ""] if "drift" in reasons else []) + (
            [f"a few slow calls pull its mean to {pulled:.1f}x its p50"] if "spread" in reasons and pulled is not None
            else [])
        said = "; ".join(w for w in why if w)
        what = "p50" if "drift" in reasons else "timing"  # a spread leaves the p50, ruins the p99 and mean
        doubts.append(f"its {what} is unstable{f' ({said})' if said else ''}: "
                      f"measure again {run_remedy(results)} before relying on it")
    p99 = _number(row.get("p99_ms"))
    if budget.latency_ms is not None and p99 is not None and p99 > budget.latency_ms:
        doubts.append(f"its p99, {_num(p99)} ms, is over the {budget.latency_ms:g} ms budget")
    if settings_name((results.get("config") or {}).get("latency")) == "--quick":
        doubts.append("timed with --quick (short measurements)")
    return "".join(f"; {d}" for d in doubts)


def _on_samples(row: dict[str, Any]) -> str:
    """`` on 128 test samples`` where --max-test-samples cut the job's test split (127 of 128 right is 99.2 %,
    give or take a point and a half), else nothing."""
    used, available = row.get("test_samples"), row.get("test_samples_available")
    return f" on {used:,} test samples" if used is not None and available is not None and used < available else ""


def _file_text(results: dict[str, Any], row: dict[str, Any], run_dir: "str | os.PathLike[str] | None") -> str:
    """The answer's "; fastest file: ..." for ``row``, by a path that opens from where it is read.

    A single run's file is named under ``run_dir`` (the run folder as the user gave it), or as the run
    folder's own path. A joined report's jobs sit in their runs' folders, which ``joined_runs`` records
    relative to the joined report's folder: the path is then under ``run_dir`` (that folder as given),
    or relative to it when the line is read inside the report."""
    file = row.get("path")
    if not file:
        return ""
    folder = next((r.get("folder") for r in _dicts(results.get("joined_runs"))
                   if r.get("run_id") == row.get("run_id") and isinstance(r.get("folder"), str)), None)
    if folder is None:
        if results.get("joined_runs"):
            return ""  # joined without the runs' folders: no path that opens
        return (f"; fastest file: {os.path.join(run_dir, file)}" if run_dir is not None
                else f"; fastest file: {file} (in the run folder)")
    if run_dir is not None:
        return f"; fastest file: {os.path.normpath(os.path.join(run_dir, folder, file))}"
    return f"; fastest file: {os.path.normpath(os.path.join(folder, file))} (from this report's folder)"


def qualifies(row: dict[str, Any]) -> bool:
    """Whether a :func:`deployment_table` row answers the question: a variant met the floor, within every
    budget given."""
    return row.get("variant") is not None and row.get("fits_budget") is not False


def _fastest_first(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that answer the question, fastest first."""
    return sorted(filter(qualifies, rows), key=lambda r: r["p50_ms"] if r.get("p50_ms") is not None else math.inf)


def answered(results: dict[str, Any], provider: str | None = "CPUExecutionProvider") -> bool | None:
    """Whether some job answers the edge question the results ask (each run's own, in a joined report whose
    runs asked differently), at batch 1 on 1 thread; None when no question was asked."""
    groups = [(document, question) for document, question in asked_groups(results)[0] if question]
    if not groups:
        return None
    return any(_fastest_first(question.table(document, 1, 1, provider)) for document, question in groups)


def edge_record(results: dict[str, Any], provider: str | None = "CPUExecutionProvider",
                run_dir: "str | os.PathLike[str] | None" = None) -> dict[str, Any] | None:
    """The run's own edge question answered for machines (``edge`` in results.json; None when it asked
    none): ``question``, ``accuracy_floor`` as a fraction (``config`` keeps it as given: 99 or 0.99), where
    it was judged (batch 1, 1 thread, ``provider``), ``jobs`` judged,
    ``qualifying`` (fastest first: job, model, dataset, variant, threads, p50_ms, p99_ms, stable, accuracy,
    bytes, path), the terminal's ``answer`` line, so CI can read the choice without parsing text, and
    ``most_threads`` (its ``qualifying`` at the most threads each job was timed at; None when that is one)."""
    question = Question.from_config(results.get("config"))
    if not question:
        return None
    rows = question.table(results, 1, 1, provider)
    most = question.table(results, 1, THREADS_MAX, provider)
    budget = question.budget
    return {
        "question": question.text(), "accuracy_floor": as_fraction(question.accuracy_floor),  # config's as typed
        # each budget asked (None: not asked), so a script need not parse the question
        "max_accuracy_drop": None if question.max_accuracy_drop is None else question.max_accuracy_drop / 100,
        "latency_budget_ms": budget.latency_ms, "size_budget_bytes": budget.size_bytes,
        "activation_budget_bytes": budget.activation_bytes, "cold_budget_ms": budget.cold_ms,
        "memory_budget_bytes": budget.memory_bytes,
        "batch_size": 1, "threads": 1, "provider": provider, "jobs": len(rows),
        "latency_settings": settings_name((results.get("config") or {}).get("latency")),
        # stable False: the p50 drifted between the halves of its runs, or a few slow calls pull up its mean
        # and p99 (it does not repeat, see latency.unstable_reasons); p99 beside it, for a deadline the p50
        # budget alone does not judge
        "qualifying": _qualifying(rows),
        "answer": _answer(results, question, provider, run_dir, rows),
        # the same question at the most threads each job was timed at (--profile edge times all cores), when
        # that is more than one: a device that gives the model every core
        "most_threads": ({"qualifying": _qualifying(most)}
                         if any((_int(r.get("threads")) or 1) > 1 for r in most) else None),
    }


def _qualifying(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """results.json's ``edge`` entries for the rows that answer the question, fastest first."""
    return [{"job": r.get("job"), "model": r.get("model"), "dataset": r.get("dataset"), "variant": r.get("variant"),
             "threads": r.get("threads"), "p50_ms": r.get("p50_ms"), "p99_ms": r.get("p99_ms"),
             "stable": r.get("stable"), "drift_pct": r.get("drift_pct"), "mean_ms": r.get("mean_ms"),
             "accuracy": r.get("accuracy"),
             "bytes": r.get("bytes"), "path": r.get("path")} for r in _fastest_first(rows)]


def edge_answers(results: dict[str, Any], provider: str | None = "CPUExecutionProvider",
                 run_dir: "str | os.PathLike[str] | None" = None) -> list[str]:
    """:func:`edge_answer` for the question the results asked (``config``): one line, or for a joined
    report whose runs asked differently one per run (``run NAME: edge (...)``), as its tables judge.
    ``run_dir``: the run's folder, or a joined report's, as the user gave it (the fastest file is then
    named by a path that opens from where the user is)."""
    groups, per_run = asked_groups(results)
    lines = []
    for document, question in groups:
        answer = _answer(document, question, provider, run_dir)
        if answer:
            run = next((j.get("run_id") for j in _dicts(document.get("jobs")) if j.get("run_id")), None)
            lines.append(f"run {run}: {answer}" if per_run and run else answer)
    return lines


def edge_profile() -> dict[str, Any]:
    """``RunOptions`` overrides for ``--profile edge``: batch 1; 1 thread and all cores; every variant.

    ``slim`` is included only when onnxslim is installed; fp16 rows get no CPU
    latency (see :mod:`harness.variants`), so on a CPU-only machine they show
    accuracy and size only.
    """
    from harness.variants import slim_available

    variants = ["fp32", "int8-dynamic", "int8-static", "fp16", "ort-opt"] + (["slim"] if slim_available() else [])
    return {"batch_sizes": [1], "threads": default_thread_counts(), "variants": variants}


def apply_edge_profile(fields: dict[str, Any], given: Iterable[str]) -> None:
    """``--profile edge`` on ``fields`` (:class:`RunOptions` fields): its settings where ``given`` names no
    value of the user's; batch sizes and thread counts given are timed too, beside the question's batch 1,
    1 thread."""
    given = set(given)
    for name, value in edge_profile().items():
        if name not in given:
            fields[name] = value
        elif name in ("batch_sizes", "threads"):
            fields[name] = sorted({1, *fields[name]})


def all_cores() -> int:
    """The thread count the edge profile uses for "all cores"."""
    return usable_cores()

"""``harness compare BASE NEW``: per job and measure, what changed, and whether it regressed.

Jobs are matched by id (``model@dataset`` plus sweep settings); latency rows
by runtime, provider, batch size and thread count; variants by name. For
every job in both runs the comparison lists each metric (PyTorch and ONNX
Runtime), every p50 latency, the ONNX size, FLOPs and activation memory, and
each variant's accuracy, latency, size and activation memory, with the
absolute and the relative change (sizes and counts are shown, never gated).

With a threshold ``PCT`` (``--fail-on-regression PCT``) a regression is

- an ONNX Runtime p50 latency (any provider, batch size, thread count; the
  fp32 model or a variant) that grew by more than ``PCT`` percent (and, with
  ``--min-change-ms MS``, by more than ``MS`` milliseconds);
- an accuracy (or macro-F1), PyTorch or ONNX Runtime, fp32 or variant, that
  dropped by more than ``PCT`` percentage points (0.99 -> 0.97 is 2 points), or by more than
  ``POINTS`` when ``--max-accuracy-drop POINTS`` sets that bound on its own (a latency gate of
  10 % is a loose accuracy gate of 10 points); ``--max-accuracy-drop`` alone gates accuracy,
  lost jobs and lost rows, not latency;
- a job that was ``ok`` and now is not (a regression without a threshold too);
- a lost measurement: a job that was ``ok`` in base and is missing from new,
  or an ONNX Runtime latency row (fp32 or a variant, including every row of
  a variant missing from new) measured in base and not in new.

A latency row either run marked unstable (``stable`` false, see :mod:`harness.latency`) has a p50 that does
not repeat, so it gates on its floor: a regression when even new's fastest call (``min_ms``) is slower than
base's p50 by more than ``PCT`` percent (and ``MS``). Other work on the machine only adds time, so noise in
new trips that test only by slowing every one of its calls; a slowdown smaller than the noise passes, and the
verdict counts such rows.

Sweeps with repeated seeds: jobs that differ only in ``seed`` (two or more found in both runs) gate as
one, on each metric's mean and each ONNX Runtime row's median p50 over the seeds both runs have (rows
either run marked unstable left out; a row unstable in every seed gates on its floor, the median of new's
fastest calls against base's median p50). One seed's accuracy moves by chance more than a change of code
does, so each seed's own accuracy and latency rows are shown, not gated; ``per_seed=True``
(``--per-seed``) gates every seed's job on its own instead. A seed that stopped working or lost a
measurement is still a regression of its own.

Eager PyTorch latency rows are shown but never gate: they are the
reference the ONNX model is measured against, not what ships. Jobs, latency
rows and variants found only in new, and anything found only in base when
there is no threshold, are listed, never an error. Two runs with no job in
common are a :class:`~harness.errors.HarnessError` (nothing to compare). The
CLI exits 1 when there is a regression.

CI recipe (``README``-ready)::

    # keep a baseline run (e.g. from main) as an artifact, then on each change:
    harness run --models mnist-cnn --datasets synthetic --run-id new --out reports
    harness compare reports/base reports/new --fail-on-regression 10   # exit 1: p50 +10% or accuracy -10 points

Latency on shared CI machines is noisy: pin ``--threads 1``, give the
benchmark time (no ``--quick``) and pick a threshold above the run-to-run
spread you observe (10-20% is typical for sub-millisecond models).
"""

from __future__ import annotations

import logging
import math
import numbers
import statistics
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.errors import HarnessError
from harness.latency import STABLE_DRIFT_PCT, STABLE_MEAN_OVER_P50, settings_differences
from harness.text import plain, seeds_text, squeeze

GATED_METRICS = ("accuracy", "macro-f1")
GATED_RUNTIME = "onnxruntime"

log = logging.getLogger(__name__)

# The gate's settings as ``harness compare`` spells them (its flags) and as :func:`harness.api.compare` does (its
# keywords): what a refusal names. Keys are :func:`compare_runs`'s parameters.
CLI_OPTIONS = {"threshold": "--fail-on-regression", "accuracy_points": "--max-accuracy-drop", "threads": "--threads",
               "batch_sizes": "--batch-sizes", "min_change_ms": "--min-change-ms", "per_seed": "--per-seed"}
API_OPTIONS = {"threshold": "threshold", "accuracy_points": "max_accuracy_drop", "threads": "threads",
               "batch_sizes": "batch_sizes", "min_change_ms": "min_change_ms", "per_seed": "per_seed"}


def _latency_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row.get("runtime"), row.get("provider"), row.get("batch_size"), row.get("threads"))


def _num(value: Any) -> float | int | None:
    """A number as it was recorded (a count stays an int), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if isinstance(value, int) else float(value)


def _change(old: Any, new: Any) -> dict[str, Any]:
    old, new = _num(old), _num(new)
    if old is None or new is None:
        return {"base": old, "new": new, "abs": None, "pct": None}
    pct = (new - old) / abs(old) * 100 if old else None
    return {"base": old, "new": new, "abs": new - old, "pct": pct}


def _latency_name(key: tuple[Any, ...]) -> str:
    return f"{key[0]}/{key[1]} batch {key[2]} threads {key[3]}"


def metric_directions(*runs: dict[str, Any]) -> dict[str, bool]:
    """Metric name -> whether higher is better, from the runs' ``metric_specs`` (the later run's word wins),
    the built-in metrics' own for a run from before them."""
    from harness.report import BUILTIN_METRIC_SPECS

    directions = {"accuracy": True, **{n: s["higher_is_better"] for n, s in BUILTIN_METRIC_SPECS.items()}}
    return {**directions, **_recorded(runs, "higher_is_better")}


def _recorded(runs: Sequence[dict[str, Any]], key: str) -> dict[str, bool]:
    """Metric name -> the yes/no ``key`` the runs' ``metric_specs`` record for it (the later run's word wins)."""
    said: dict[str, bool] = {}
    for run in runs:
        specs = run.get("metric_specs") if isinstance(run.get("metric_specs"), dict) else {}
        for name, spec in specs.items():
            if isinstance(spec, dict) and isinstance(spec.get(key), bool):
                said[name] = spec[key]
    return said


def metric_gates(*runs: dict[str, Any]) -> set[str]:
    """The metrics ``--fail-on-regression`` judges: accuracy and macro-F1, and those whose plugin asked for
    it (``MetricSpec.gate``, kept in the runs' ``metric_specs``; the later run's word wins)."""
    said = {**dict.fromkeys(GATED_METRICS, True), **_recorded(runs, "gate")}
    return {name for name, gated in said.items() if gated}


class _Gate:
    """Collects regressions against ``threshold`` (None: report only) and flags the changes it judged.

    ``threads`` / ``batch_sizes``: gate only the latency rows measured at these (None: all); the other rows
    are shown as not gated, and a lost one is no regression. A row either run marked unstable (``stable``
    false: its halves drifted apart, or a few slow calls pull up its mean, see :mod:`harness.latency`) has a p50
    that does not repeat, so it gates on its floor instead (:func:`_floor_change`): a regression when even
    NEW's fastest call is slower than BASE's p50 by more than the threshold. Interference only ever adds
    time, so noise in NEW trips it only by slowing every call (a slowdown smaller than the noise passes).
    ``floors`` counts those rows; ``unstable`` the unstable ones that cannot be judged so (NEW recorded no
    ``min_ms``): shown, not gated.
    """

    def __init__(self, threshold: float | None, accuracy_points: float | None = None,
                 threads: set[int] | None = None, batch_sizes: set[int] | None = None, min_change_ms: float = 0.0):
        self.threshold = threshold
        self.min_change_ms = min_change_ms  # a p50 must also grow by more than this to regress
        self.accuracy_points = threshold if accuracy_points is None else accuracy_points
        self.threads, self.batch_sizes = threads, batch_sizes
        self.details: list[dict[str, Any]] = []  # each regression as a dict (kind, job, ...), its line as "text"
        self.unstable = 0  # rows either run marked unstable, not gated: no fastest call to judge
        self.floors = 0  # rows either run marked unstable, gated on NEW's fastest call
        self.grouped: set[Any] = set()  # job ids that gate through their seed group's mean (see _seed_groups)
        self.higher_is_better: dict[str, bool] = {}  # metric name -> its direction, where a run recorded it
        self.gated_metrics: set[str] = set(GATED_METRICS)  # the fractions the threshold judges (metric_gates)

    def why_not_gated(self, key: tuple[Any, ...], rows: Sequence[dict[str, Any]] = (),
                      job_id: Any = None) -> str | None:
        """Why a latency row (``rows``: base's and new's) is shown but not gated (``eager``, ``threads``,
        ``batch``, ``seeds``: its seed group gates, ``unstable``: either run marked it unstable and its floor
        cannot be judged, see :func:`_floor_change`), or None."""
        if key[0] != GATED_RUNTIME:
            return "eager"
        if self.threads is not None and key[3] not in self.threads:
            return "threads"
        if self.batch_sizes is not None and key[2] not in self.batch_sizes:
            return "batch"
        if job_id is not None and job_id in self.grouped:
            return "seeds"
        if _unstable(rows) and (len(rows) != 2 or _floor_change(*rows) is None):
            return "unstable"
        return None

    def found(self, text: str, kind: str, job_id: Any, **detail: Any) -> None:
        """A regression, as a dict in ``details``; its line is in :attr:`regressions`."""
        self.details.append({"kind": kind, "job": job_id, **detail, "text": text})

    @property
    def regressions(self) -> list[str]:
        """A line per regression, in order: each of ``details``' ``text``."""
        return [detail["text"] for detail in self.details]

    def metric(self, job_id: str, label: str, name: str, change: dict[str, Any], prefix: str = "") -> None:
        """Judge a metric's ``change``; ``prefix`` says whose (``""`` PyTorch's, ``"onnx "`` the fp32 export's,
        ``"int8-dynamic "`` a variant's), named in a regression's dict as ``runtime`` and ``variant``."""
        change["regression"] = False
        change["gated"] = gated = name in self.gated_metrics
        higher = self.higher_is_better.get(name)
        if higher is not None and change["abs"] and not gated:  # never gated (nll, a plugin's ece): which way
            change["worse"] = (change["abs"] < 0) == higher  # it moved, as the gate would say
        if change["abs"] is None or not gated:
            return
        if job_id in self.grouped:  # said with or without a gate, as a seed's latency rows say it
            change["not_gated"] = "seeds"
            return
        if self.accuracy_points is None:
            return
        worse_points = (change["abs"] if higher is False else -change["abs"]) * 100  # a gated error rate: a rise
        if _over(worse_points, self.accuracy_points):
            change["regression"] = True
            self.found(f"{job_id}: {label} {'rose' if higher is False else 'dropped'} "
                       f"{worse_points:.2f} points ({change['base']:.4f} -> {change['new']:.4f})",
                       "metric", job_id, measure=label, metric=name, base=change["base"], new=change["new"],
                       points=worse_points, **_metric_model(prefix))

    def latency(self, job_id: str, label: str, key: tuple[Any, ...], change: dict[str, Any],
                not_gated: str | None = None, variant: str | None = None,
                floor: dict[str, Any] | None = None) -> None:
        """Judge a p50 ``change``; with ``floor`` (an unstable pair's :func:`_floor_change`) judge that instead:
        NEW's fastest call against BASE's p50. A floor regression's line and dict say so (``gated_on``)."""
        change["regression"] = False
        if floor is not None:
            floor["regression"] = False
        if self.threshold is None or change["pct"] is None or not_gated is not None:
            return
        judged = change if floor is None else floor
        if judged["pct"] is None or not (_over(judged["pct"], self.threshold) and (
                judged["abs"] is None or _over(judged["abs"], self.min_change_ms))):
            return
        change["regression"] = judged["regression"] = True
        text = (f"{job_id}: {label}p50 {_latency_name(key)} grew {change['pct']:.1f}% "
                f"({change['base']:.4f} -> {change['new']:.4f} ms)")
        if floor is not None:  # a seed group's: the medians over its seeds
            what = ("its fastest call", "base's p50") if "n" not in floor else (
                f"the median of {floor['n']} seeds' fastest calls", "their median p50 in base")
            text += (f"; unstable, so gated on {what[0]}: {floor['new']:.4f} ms, {floor['pct']:.1f}% over "
                     f"{what[1]}")
        self.found(text, "latency", job_id, **_row_detail(key, variant), base=change["base"], new=change["new"],
                   pct=change["pct"], abs_ms=change["abs"], gated_on="p50" if floor is None else "min",
                   min_ms=None if floor is None else floor["new"], min_pct=None if floor is None else floor["pct"])

    def missing(self, job_id: str, what: str, key: tuple[Any, ...] | None = None, variant: str | None = None) -> None:
        """A measurement in base and not in new (the job, a variant, or a latency row ``key``): with a
        threshold, a regression."""
        if self.threshold is not None or self.accuracy_points is not None:
            if key is None and variant is not None:
                self.found(f"{job_id}: {what}", "lost_variant", job_id, variant=variant)
            elif key is None:
                self.found(f"{job_id}: {what}", "lost_job", job_id)
            else:
                self.found(f"{job_id}: {what}", "lost_row", job_id, **_row_detail(key, variant))


def _over(value: float, limit: float) -> bool:
    """``value`` more than ``limit``, as the options promise, by more than float arithmetic's error: 0.9912 ->
    0.9862 is 0.5000000000000004 points, which failed --max-accuracy-drop 0.5 while the line said "0.50"."""
    return value - limit > 1e-9 * max(1.0, abs(limit))


def _variant_ok(variant: dict[str, Any]) -> bool:
    """Whether a run measured the variant: no error, and its metrics (an fp16 on a CPU has no latency rows)."""
    return variant.get("error") is None and bool(variant.get("metrics"))


def _unstable(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether either of a latency row's records (base's, new's) is marked unstable."""
    return any(isinstance(row, dict) and row.get("stable") is False for row in rows)


def _floor_change(base_row: dict[str, Any], new_row: dict[str, Any]) -> dict[str, Any] | None:
    """The noise-proof test of a pair either run marked unstable, as a change: BASE's p50 -> NEW's fastest call
    (``min_ms``). Other work on the machine only ever adds time to a call, so NEW's fastest call above BASE's
    median by more than the threshold is the code's doing unless the machine slowed every one of NEW's calls
    (a row of long calls on oversubscribed cores). None when either figure is
    missing (a row without ``min_ms``): such a row cannot be judged."""
    if _num(base_row.get("p50_ms")) is None or _num(new_row.get("min_ms")) is None:
        return None
    return _change(base_row.get("p50_ms"), new_row.get("min_ms"))


def _metric_model(prefix: str) -> dict[str, Any]:
    """Whose metric a label's ``prefix`` names, as a latency regression's dict names its model: ``runtime``
    ``torch`` (PyTorch's, prefix "") or ``onnxruntime``, and ``variant`` (None: the fp32 export)."""
    if not prefix:
        return {"runtime": "torch", "variant": None}
    return {"runtime": "onnxruntime", "variant": None if prefix == "onnx " else prefix.strip()}


def _row_detail(key: tuple[Any, ...], variant: str | None) -> dict[str, Any]:
    """A latency row's settings as a regression's dict names them (``variant`` None: the fp32 export)."""
    return {"variant": variant, "runtime": key[0], "provider": key[1], "batch_size": key[2], "threads": key[3]}


def _metric_changes(job_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None, prefix: str,
                    gate: _Gate) -> dict[str, dict[str, Any]]:
    changes = {}
    for name in sorted(set(old or {}) & set(new or {})):
        label = f"{prefix}{name}"
        change = _change(old[name], new[name])  # type: ignore[index]
        gate.metric(job_id, label, name, change, prefix)
        changes[label] = change
    return changes


def _latency_changes(job_id: str, old_rows: list[dict[str, Any]], new_rows: list[dict[str, Any]], prefix: str,
                     gate: _Gate, gate_missing: bool = True
                     ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Changes of the rows in both; ONNX Runtime rows only in base are regressions when ``gate_missing``."""
    old = {_latency_key(r): r for r in old_rows or []}
    new = {_latency_key(r): r for r in new_rows or []}
    changes = []
    for key in [k for k in new if k in old]:
        change = _change(old[key].get("p50_ms"), new[key].get("p50_ms"))
        why = gate.why_not_gated(key, (old[key], new[key]), job_id)
        floor = _floor_change(old[key], new[key]) if why is None and _unstable((old[key], new[key])) else None
        gate.unstable += why == "unstable"
        gate.floors += floor is not None
        gate.latency(job_id, prefix, key, change, why, prefix.strip() or None, floor)
        changes.append({"runtime": key[0], "provider": key[1], "batch_size": key[2], "threads": key[3],
                        "p50_ms": change, "gated": why is None, **({"not_gated": why} if why else {}),
                        **({"gated_on": "min", "floor": floor} if floor is not None else {})})
    only_base = [_latency_name(k) for k in old if k not in new]
    for key in [k for k in old if k not in new and gate.why_not_gated(k) is None and gate_missing]:
        if _one_thread_count_now(key, new):  # not lost: this version times a GPU provider once, not per count
            continue
        gate.missing(job_id, f"{prefix}p50 {_latency_name(key)} missing in new", key, prefix.strip() or None)
    only_new = [_latency_name(k) for k in new if k not in old]
    return changes, only_base, only_new


def _one_thread_count_now(key: tuple[Any, ...], new: dict[tuple[Any, ...], Any]) -> bool:
    """Whether ``key``, a base row NEW lacks, is a GPU provider's row at another thread count than the one NEW
    timed it at: harness times GPU providers at the first thread count only (the threads run what ONNX
    Runtime leaves on the CPU), where a run of an older version timed every count. Not a lost measurement."""
    from harness.latency import GPU_PROVIDERS

    runtime, provider, batch, _ = key
    return provider in GPU_PROVIDERS and any(k[:3] == (runtime, provider, batch) for k in new)


def _jobs_by_id(document: dict[str, Any], side: str) -> dict[str, dict[str, Any]]:
    """A run's jobs by id, as compare matches them. A job without one (a results.json written to the contract's
    job fields alone) gets the id the harness gives it, ``model@dataset`` and its sweep point; two jobs with
    one id (a file edited or joined by hand) are a :class:`HarnessError`: the last would stand for both."""
    from harness.results import job_id

    jobs: dict[str, dict[str, Any]] = {}
    for job in document.get("jobs") or []:
        if not isinstance(job, dict):
            continue
        key = job.get("id")
        if not isinstance(key, str) or not key:
            model, dataset, point = job.get("model"), job.get("dataset"), job.get("point")
            if not isinstance(model, str) or not isinstance(dataset, str):
                raise HarnessError(f"{side} run {document.get('run_id')}: a job has no id, nor a model and a "
                                   "dataset to name it by: compare cannot match it")
            key = job_id(model, dataset, point if isinstance(point, dict) else None)
            job = {**job, "id": key}
        if key in jobs:
            raise HarnessError(f"{side} run {document.get('run_id')}: two jobs have the id {key!r} (results.json "
                               "edited or joined by hand?): compare matches jobs by id, one per job")
        jobs[key] = job
    return jobs


def _seed_groups(base_jobs: dict[Any, dict[str, Any]], new_jobs: dict[Any, dict[str, Any]]
                 ) -> dict[str, list[Any]]:
    """Jobs found in both runs that differ only in their sweep point's ``seed``, two or more to a group:
    ``{group id: [job ids]}`` in first-seen order, the group id being the job id without the seed."""
    from harness.report import seedless_point
    from harness.results import job_id

    groups: dict[str, list[Any]] = {}
    for jid, job in base_jobs.items():
        point = job.get("point")
        if jid not in new_jobs or not isinstance(point, dict) or "seed" not in point:
            continue
        group = job_id(str(job.get("model")), str(job.get("dataset")), seedless_point(job))
        groups.setdefault(group, []).append(jid)
    return {group: ids for group, ids in groups.items() if len(ids) > 1}


def _group_label(group: str, seeds: Sequence[Any]) -> str:
    """A seed group as its rows and regressions name it: ``m@d#lr=0.1 [seeds 0,1,2]`` (``[seeds 0-99]`` for a
    hundred: :func:`harness.text.seeds_text`)."""
    return f"{group} [seeds {seeds_text(seeds)}]"


def _seed_values(pairs: Sequence[tuple[Any, Any]], get: Any) -> tuple[list[float], list[float]]:
    """``get(side)``'s numbers in base and in new over the seeds where both runs have one (like with like)."""
    old, new = [], []
    for a, b in pairs:
        x, y = _num(get(a)), _num(get(b))
        if x is not None and y is not None:
            old.append(x)
            new.append(y)
    return old, new


def _seed_group_entry(group: str, ids: list[Any], base_jobs: dict[Any, dict[str, Any]],
                      new_jobs: dict[Any, dict[str, Any]], gate: _Gate) -> dict[str, Any]:
    """One seed group's comparison: each metric's mean over the seeds (with the standard deviations) and
    each latency row's median p50, gated as one job would be; only seeds ``ok`` in both runs count."""
    def parts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """prefix -> record: the fp32 model's PyTorch metrics and latency, its ONNX metrics, each variant's."""
        variants = {f"{v.get('variant')} ": v for v in job.get("variants") or [] if isinstance(v, dict)}
        return {"": {"metrics": job.get("metrics"), "latency": job.get("latency")},
                "onnx ": {"metrics": (job.get("onnx") or {}).get("metrics")}, **variants}

    # each seed finished in both runs, as (base's parts, new's parts)
    pairs = [(parts(base_jobs[i]), parts(new_jobs[i])) for i in ids
             if base_jobs[i].get("status") == "ok" and new_jobs[i].get("status") == "ok"]
    seeds = [base_jobs[i]["point"]["seed"] for i in ids]
    label = _group_label(group, seeds)
    entry: dict[str, Any] = {"id": group, "jobs": ids, "seeds": seeds, "n_ok": len(pairs), "metrics": {},
                             "latency": []}
    names: dict[str, tuple[str, str]] = {}  # label -> (prefix, metric name), in the order first met
    rows: dict[tuple[str, tuple[Any, ...]], None] = {}
    for old, _ in pairs:
        for prefix, record in old.items():
            for name in record.get("metrics") or {}:
                names.setdefault(f"{prefix}{name}", (prefix, name))
            for row in record.get("latency") or []:
                if isinstance(row, dict):
                    rows.setdefault((prefix, _latency_key(row)), None)

    for metric_label, (prefix, name) in names.items():
        old_values, new_values = _seed_values(pairs, lambda p: ((p.get(prefix) or {}).get("metrics") or {}).get(name))
        if not old_values:
            continue
        change = _change(statistics.fmean(old_values), statistics.fmean(new_values))
        change.update(n=len(old_values), std=[statistics.stdev(v) if len(v) > 1 else None
                                              for v in (old_values, new_values)])
        gate.metric(label, f"{metric_label} (mean of {len(old_values)} seeds)", name, change, prefix)
        entry["metrics"][metric_label] = change
    for prefix, key in rows:
        def find(side: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
            return next((r for r in (side.get(prefix) or {}).get("latency") or []
                         if isinstance(r, dict) and _latency_key(r) == key), None)

        def p50(side: dict[str, dict[str, Any]], stable_only: bool) -> Any:
            row = find(side)
            return None if row is None or (stable_only and row.get("stable") is False) else row.get("p50_ms")

        old_values, new_values = _seed_values(pairs, lambda p: p50(p, True))  # rows either run found unstable: out
        why, floor = gate.why_not_gated(key), None
        if not old_values:  # no seed stable in both runs: the p50s are shown, the floor gates (_floor_change)
            old_values, new_values = _seed_values(pairs, lambda p: p50(p, False))
            if not old_values:
                continue
            floors = [f for f in (_floor_change(find(a) or {}, find(b) or {}) for a, b in pairs) if f is not None]
            if why is None and floors:
                floor = _change(statistics.median(f["base"] for f in floors),
                                statistics.median(f["new"] for f in floors))
                floor["n"] = len(floors)
                gate.floors += 1
            elif why is None:
                why = "unstable"
                gate.unstable += 1
        change = _change(statistics.median(old_values), statistics.median(new_values))
        change["n"] = len(old_values)
        gate.latency(label, f"{prefix}median of {_of_seeds(len(old_values), len(pairs))} ", key, change, why,
                     prefix.strip() or None, floor)
        entry["latency"].append({"prefix": prefix.strip(), "runtime": key[0], "provider": key[1],
                                 "batch_size": key[2], "threads": key[3], "p50_ms": change, "gated": why is None,
                                 **({"not_gated": why} if why else {}),
                                 **({"gated_on": "min", "floor": floor} if floor is not None else {})})
    return entry


def _of_seeds(used: int, finished: int) -> str:
    """``2 of 3 seeds'`` (the seeds a median took, of those both runs finished), ``3 seeds'``, ``1 seed's``."""
    if used == finished:
        return "1 seed's" if used == 1 else f"{used} seeds'"
    return f"{used} of {finished} seeds'"


def compare_runs(base: dict[str, Any], new: dict[str, Any], threshold: float | None = None,
                 accuracy_points: float | None = None, threads: Sequence[int] | None = None,
                 batch_sizes: Sequence[int] | None = None, per_seed: bool = False,
                 min_change_ms: float = 0.0, *, names: Mapping[str, str] = CLI_OPTIONS) -> dict[str, Any]:
    """The comparison document.

    ``{"base", "new", "threshold_pct", "jobs": [...], "only_in_base", "only_in_new", "regressions",
    "regression_details", "settings_differ"}`` (see :func:`setting_differences`);
    each job entry has ``status`` ([base, new]), ``metrics`` (label -> change), ``latency`` (rows with a
    ``p50_ms`` change), ``bytes`` (change), ``variants`` (name -> metrics/latency/bytes), and the latency
    rows and variants found in one run only. A change is ``{"base", "new", "abs", "pct"}`` (``pct``
    relative to base; None when base is 0 or either side is missing: an accuracy's ``pct`` is relative too,
    where the gate judges its ``abs`` in percentage points, ``abs`` * 100) plus ``regression`` where judged.
    ``regressions`` is a line per regression; ``regression_details`` the same regressions, in the same order,
    as dicts: ``kind`` (``latency``, ``metric``, ``status``: a job that was ok and is not, ``variant_failed``:
    a variant that was measured and failed in new, ``lost_job``, ``lost_row``, ``lost_variant``), ``job`` (the id, or a seed group's label), ``text`` (the line), and by kind the latency
    row (``variant``: None for the fp32 export, ``runtime``, ``provider``, ``batch_size``, ``threads``) with
    ``base``, ``new``, ``pct`` and ``abs_ms``; the metric (``measure`` as the line names it, ``metric``,
    ``base``, ``new`` and ``points``, how far it moved the worse way); or ``status``, ``stage``, ``error``.
    Raises :class:`HarnessError` when the runs have no job in common. ``threads`` / ``batch_sizes`` limit
    the latency rows that gate (see :class:`_Gate`); ``min_change_ms``: a p50 regresses only when it also
    grew by more than this many milliseconds (a 10 us model's p50 moves by 40 % on a busy machine);
    ``floor_rows`` counts the rows either run marked unstable, gated on NEW's fastest call instead of the p50
    (their latency entry has ``gated_on: "min"`` and ``floor``, BASE's p50 -> NEW's ``min_ms`` as a change with
    its ``regression``; a seed group's, the medians over its seeds, with ``n``), and a latency regression's
    dict says which it was judged on (``gated_on``: ``p50`` or ``min``, with ``min_ms`` and ``min_pct``: NEW's
    fastest call and how far it is over BASE's p50; None for ``p50``); ``unstable_rows`` counts the unstable
    rows left ungated (NEW recorded no ``min_ms``). ``names``: how a refusal names the options
    (:data:`CLI_OPTIONS`, :data:`API_OPTIONS`). ``seed_groups`` holds the sweep points whose seeds gate as one (none with ``per_seed``): each
    ``{"id", "jobs", "seeds", "n_ok", "metrics", "latency"}``, a metric change being the seeds' means
    (with ``n`` and ``std``: base's and new's), a latency row's their median p50.
    """
    gate = _Gate(threshold, accuracy_points, None if threads is None else set(threads),
                 None if batch_sizes is None else set(batch_sizes), min_change_ms)
    gate.higher_is_better = metric_directions(base, new)
    gate.gated_metrics = metric_gates(base, new)
    _check_gated_rows(base, threads, batch_sizes, names)
    base_jobs, new_jobs = _jobs_by_id(base, "base"), _jobs_by_id(new, "new")
    # NEW planned BASE's jobs and stopped before finishing one (killed in its first job): they are lost, a
    # regression as for a run that finished some, not two unrelated runs (exit 2)
    planned = {str(j) for j in new.get("planned_jobs") or [] if isinstance(j, (str, int))}
    if not set(base_jobs) & set(new_jobs) and not planned & {str(j) for j in base_jobs}:
        examples = (f" (jobs match by id, sweep point and seed included: {next(iter(base_jobs))} vs "
                    f"{next(iter(new_jobs))})" if base_jobs and new_jobs else "")
        same = base.get("run_id") == new.get("run_id")  # two runs named "base": told apart by when they began

        def named(document: dict[str, Any], count: int) -> str:
            created = f"created {document.get('created')}, " if same and document.get("created") else ""
            return f"{document.get('run_id')} ({created}{count} job(s))"

        raise HarnessError(f"runs {named(base, len(base_jobs))} and {named(new, len(new_jobs))} have no job in "
                           f"common: nothing to compare{examples}")
    groups = {} if per_seed else _seed_groups(base_jobs, new_jobs)
    gate.grouped = {jid for ids in groups.values() for jid in ids}
    for job_id in [j for j in base_jobs if j not in new_jobs and base_jobs[j].get("status") == "ok"]:
        gate.missing(job_id, "job missing in new (was ok in base)")
    jobs = []
    for job_id in [j for j in base_jobs if j in new_jobs]:
        old, cur = base_jobs[job_id], new_jobs[job_id]
        entry: dict[str, Any] = {"id": job_id, "status": [old.get("status"), cur.get("status")]}
        stopped = old.get("status") == "ok" and cur.get("status") != "ok"
        if stopped:  # already a regression: its lost rows are not counted again
            stage = f" at {cur.get('stage')}" if cur.get("stage") else ""
            gate.found(f"{job_id}: was ok, now {cur.get('status')}{stage} ({cur.get('error')})", "status", job_id,
                       status=cur.get("status"), stage=cur.get("stage"), error=cur.get("error"))
        entry["metrics"] = {
            **_metric_changes(job_id, old.get("metrics"), cur.get("metrics"), "", gate),
            **_metric_changes(job_id, (old.get("onnx") or {}).get("metrics"), (cur.get("onnx") or {}).get("metrics"),
                              "onnx ", gate),
        }
        entry["latency"], entry["latency_only_in_base"], entry["latency_only_in_new"] = _latency_changes(
            job_id, old.get("latency") or [], cur.get("latency") or [], "", gate, not stopped)
        entry["bytes"] = _change((old.get("onnx") or {}).get("bytes"), (cur.get("onnx") or {}).get("bytes"))
        entry["flops"] = _change(old.get("flops"), cur.get("flops"))
        entry["activation_bytes"] = _change((old.get("onnx") or {}).get("activation_bytes"),
                                            (cur.get("onnx") or {}).get("activation_bytes"))
        entry["cold_start_ms"] = _cold_change(old.get("onnx"), cur.get("onnx"), "ms")
        entry["cold_start_rss_bytes"] = _cold_change(old.get("onnx"), cur.get("onnx"), "rss_bytes")
        old_variants = {v.get("variant"): v for v in old.get("variants") or [] if isinstance(v, dict)}
        new_variants = {v.get("variant"): v for v in cur.get("variants") or [] if isinstance(v, dict)}
        entry["variants"] = {}
        for name in [n for n in old_variants if n not in new_variants]:
            said = len(gate.details)
            _latency_changes(job_id, old_variants[name].get("latency") or [], [], f"{name} ", gate,
                             not stopped)
            if not stopped and _variant_ok(old_variants[name]) and len(gate.details) == said:
                # no lost row said it (an fp16 on a CPU has none to lose): the variant itself is lost
                gate.missing(job_id, f"{name} missing in new (measured in base)", variant=name)
        for name in [n for n in new_variants if n in old_variants]:
            ov, nv = old_variants[name], new_variants[name]
            if not stopped and _variant_ok(ov) and nv.get("error"):  # as a job that was ok and is not
                gate.found(f"{job_id}: {name} was ok, now failed ({squeeze(nv['error'], 300)})", "variant_failed",
                           job_id, variant=name, error=nv["error"])
            latency, _, _ = _latency_changes(job_id, ov.get("latency") or [], nv.get("latency") or [],
                                             f"{name} ", gate, not stopped)
            entry["variants"][name] = {
                "metrics": _metric_changes(job_id, ov.get("metrics"), nv.get("metrics"), f"{name} ", gate),
                "latency": latency,
                "bytes": _change(ov.get("bytes"), nv.get("bytes")),
                "activation_bytes": _change(ov.get("activation_bytes"), nv.get("activation_bytes")),
                "activation_basis": _basis_change(ov, nv),
                "cold_start_ms": _cold_change(ov, nv, "ms"),
                "cold_start_rss_bytes": _cold_change(ov, nv, "rss_bytes"),
            }
        entry["variants_only_in_base"] = [n for n in old_variants if n not in new_variants]
        entry["variants_only_in_new"] = [n for n in new_variants if n not in old_variants]
        jobs.append(entry)
    seed_groups = [_seed_group_entry(group, ids, base_jobs, new_jobs, gate) for group, ids in groups.items()]
    return {
        "base": base.get("run_id"),
        "new": new.get("run_id"),
        "threshold_pct": threshold,
        "min_change_ms": min_change_ms,
        "accuracy_points": gate.accuracy_points,
        "gated_metrics": sorted(gate.gated_metrics),
        "jobs": jobs,
        "only_in_base": sorted(set(base_jobs) - set(new_jobs), key=str),
        "only_in_new": sorted(set(new_jobs) - set(base_jobs), key=str),
        "regressions": gate.regressions,
        "regression_details": gate.details,
        "unstable_rows": gate.unstable,
        "floor_rows": gate.floors,
        "seed_groups": seed_groups,
        "per_seed": per_seed,
        "gated_threads": None if threads is None else sorted(set(threads)),
        "gated_batch_sizes": None if batch_sizes is None else sorted(set(batch_sizes)),
        "settings_differ": setting_differences(base, new, [(base_jobs[j["id"]], new_jobs[j["id"]]) for j in jobs]),
    }


def _check_gated_rows(base: dict[str, Any], threads: Sequence[int] | None, batch_sizes: Sequence[int] | None,
                      names: Mapping[str, str] = CLI_OPTIONS) -> None:
    """Refuse ``--threads`` / ``--batch-sizes`` values that no ONNX Runtime row of ``base`` was measured at: a
    typo would gate no latency at all and pass every time."""
    rows = [r for job in base.get("jobs", []) for part in [job, *(v for v in job.get("variants") or []
                                                                 if isinstance(v, dict))]
            for r in part.get("latency") or [] if isinstance(r, dict) and r.get("runtime") == GATED_RUNTIME]
    for option, wanted, key in ((names["threads"], threads, "threads"),
                                (names["batch_sizes"], batch_sizes, "batch_size")):
        measured = sorted({r.get(key) for r in rows if isinstance(r.get(key), int)})
        unknown = [n for n in wanted or [] if n not in measured]
        if unknown:
            what = "batch size" if key == "batch_size" else "threads"
            spelled = f"{option}{' ' if option.startswith('-') else '='}{','.join(map(str, unknown))}"
            raise HarnessError(f"compare {spelled}: BASE has no ONNX Runtime latency row "
                               f"at {what} {','.join(map(str, unknown))}, so the gate would judge none (its rows: "
                               f"{what} {', '.join(map(str, measured)) or 'none'})")


def gate_options(threshold: Any = None, accuracy_points: Any = None, threads: Any = None, batch_sizes: Any = None,
                 min_change_ms: Any = 0.0, per_seed: Any = False, *,
                 names: Mapping[str, str] = CLI_OPTIONS) -> dict[str, Any]:
    """:func:`compare_runs`'s gate settings, checked: ``TypeError`` for a value of the wrong type,
    :class:`HarnessError` for one out of range, each naming the option as ``names`` spells it (the CLI's flag,
    or the API's keyword). ``threads`` / ``batch_sizes`` may be one count, a list or ``"1,32"``."""
    checked = {"threshold": _finite(names["threshold"], threshold, 0, None),
               "accuracy_points": _finite(names["accuracy_points"], accuracy_points, 0, 100),
               "threads": counts(names["threads"], threads),
               "batch_sizes": counts(names["batch_sizes"], batch_sizes),
               "min_change_ms": _finite(names["min_change_ms"], min_change_ms, 0, None),
               "per_seed": per_seed}
    if checked["min_change_ms"] is None:
        raise TypeError(f"{names['min_change_ms']} takes a number of milliseconds, not None")
    if not isinstance(per_seed, bool):
        raise TypeError(f"{names['per_seed']} takes True or False, not {per_seed!r}")
    return checked


def _finite(name: str, value: Any, least: float, most: float | None) -> float | None:
    """A number option (None: unset) as a float within [least, most]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} takes a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise HarnessError(f"{name} must be a finite number, not {value!r}")
    if number < least or (most is not None and number > most):
        raise HarnessError(f"{name} must be >= {least:g}" if most is None else
                           f"{name} must be between {least:g} and {most:g}, not {value!r}")
    return number


def counts(name: str, value: Any) -> list[int] | None:
    """Thread counts or batch sizes (None: all) as a list of whole numbers of at least 1, from one, a list or
    ``"1,32"``; ``TypeError`` for another type, :class:`HarnessError` (naming ``name``) for a bad value."""
    if value is None:
        return None
    items: Any = value
    if isinstance(value, str):
        try:
            items = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise HarnessError(f"{name}: {value!r} is not a comma-separated list of whole numbers") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = list(value)
    if not isinstance(items, list) or any(isinstance(n, bool) or not isinstance(n, int) for n in items):
        raise TypeError(f"{name} takes a whole number, a list of them or 'N,N', not {value!r}")
    if not items:  # gating no row at all would pass every time
        raise HarnessError(f"{name} is empty: give the counts to gate, or None for every row")
    small = [n for n in items if n < 1]
    if small:
        raise HarnessError(f"{name} must be at least 1 (got {small[0]})")
    return list(items)


def incomplete_state(run_dir: Path, results: dict[str, Any]) -> str | None:
    """Why a run compared is not a whole run: still being written by a harness run, or it stopped before some
    of its planned jobs (interrupted); None for a finished run."""
    from harness.report import not_run, resume_command
    from harness.results import RunFolder

    holder = RunFolder.holder(run_dir)
    if holder:
        return f"is still being written by a harness run (pid {holder}): its jobs to come count as missing"
    missing = not_run(results)
    if missing:
        why = "was interrupted" if results.get("interrupted") else "stopped"
        return f"{why} before {len(missing)} of its planned jobs: they count as missing ({resume_command(results, run_dir)} " \
               "finishes it)"
    return None


def run_labels(run_dirs: Sequence[Path], documents: Sequence[dict[str, Any]]) -> list[str]:
    """A name per run for joined reports and comparisons: its run id, or where two runs share an id
    (the same ``--run-id`` under two ``--out`` folders) its folder as given, so rows stay apart."""
    ids = [str(d.get("run_id") or Path(p).name) for p, d in zip(run_dirs, documents)]
    if len(set(ids)) == len(ids):
        return ids
    paths = [str(Path(p)) for p in run_dirs]
    return [path if ids.count(run_id) > 1 else run_id for path, run_id in zip(paths, ids)]


def compare_folders(base_dir: Path, new_dir: Path, base: dict[str, Any] | None = None,
                    new: dict[str, Any] | None = None, *, names: Mapping[str, str] = CLI_OPTIONS,
                    warn: Callable[[str], None] = log.warning, **gates: Any) -> dict[str, Any]:
    """``harness compare BASE NEW``'s document, for the CLI and :func:`harness.api.compare` alike: the gate
    settings (``gates``: :func:`compare_runs`'s) checked by :func:`gate_options`, the runs read from their
    folders (unless ``base`` / ``new`` hold their results already), :func:`compare_runs`'s document with the
    runs' labels as ``base`` / ``new``, ``verdict`` (``fail``: regressions; ``pass``: a gate judged and found
    none; ``no_gate``: nothing was judged) with the CLI's ``exit_status`` (1 or 0), ``incomplete`` (``{"base"|"new": why}`` for a run that stopped
    before some of its planned jobs or is still being written) and ``not_run`` (``{"base"|"new": [ids]}``,
    the planned jobs a run has no row for). ``warn`` is given each warning's line
    (BASE and NEW are the same run; a run is incomplete)."""
    from harness.results import load_results

    checked = gate_options(**gates, names=names)
    base_dir, new_dir = Path(base_dir), Path(new_dir)
    if base_dir.resolve() == new_dir.resolve():
        warn(f"BASE and NEW are the same run ({base_dir}): every change is 0")
    if base is None and not base_dir.exists():  # the CI recipe's first stumble: where a baseline comes from
        raise HarnessError(f"{base_dir}: no such run folder; BASE is an earlier run to compare against: make it once "
                           f"with harness run ... --out {base_dir.parent} --run-id {base_dir.name} (on main), or "
                           "restore it from that build's artifacts")
    documents = [load_results(base_dir) if base is None else base, load_results(new_dir) if new is None else new]
    states = {name: (path, incomplete_state(path, document))
              for name, path, document in (("BASE", base_dir, documents[0]), ("NEW", new_dir, documents[1]))}
    try:
        comparison = compare_runs(*documents, **checked, names=names)
    except HarnessError as exc:  # no job in common: a run still at its first job says why
        why = "; ".join(f"{name} ({path}) {state}" for name, (path, state) in states.items() if state)
        raise HarnessError(f"{exc}; {why}" if why else str(exc)) from None
    comparison["base"], comparison["new"] = run_labels([base_dir, new_dir], documents)
    from harness.report import not_run

    # the planned jobs a run has no row for, as data: "incomplete" says why in words
    comparison["not_run"] = {name: ids for name, ids in (("base", not_run(documents[0])),
                                                          ("new", not_run(documents[1]))) if ids}
    comparison["incomplete"] = {}
    for name, (path, state) in states.items():
        if state:  # its missing jobs are missing because of this, not the change under test
            comparison["incomplete"][name.lower()] = state
            warn(f"{name} ({path}) {state}")
    # for a bot: what the CLI's exit status says, without re-deriving it from the lists
    judged = comparison["threshold_pct"] is not None or comparison.get("accuracy_points") is not None
    comparison["verdict"] = "fail" if comparison["regressions"] else ("pass" if judged else "no_gate")
    comparison["exit_status"] = 1 if comparison["regressions"] else 0
    return comparison


def _cold_change(old: Any, new: Any, key: str) -> dict[str, Any]:
    """The change in a cold-start figure (``cold_start``, see :mod:`harness.coldstart`) of an ONNX block or
    a variant, ``ms`` or ``rss_bytes``; no change where either run lacks it or the two were measured at
    different settings (provider, threads, batch size)."""
    records = [r.get("cold_start") if isinstance(r, dict) else None for r in (old, new)]
    both = [r for r in records if isinstance(r, dict)]
    if len(both) == 2 and any(both[0].get(k) != both[1].get(k) for k in ("provider", "threads", "batch_size")):
        return _change(None, None)
    # One side without the figure (a failed job, an older run) still shows the other's, as bytes does.
    return _change(*(r.get(key) if isinstance(r, dict) else None for r in records))


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10_000 or (isinstance(value, int) and abs(value) >= 1_000):  # counts with separators
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _row(job_id: str, measure: str, change: dict[str, Any] | None, unit: str = "", points: bool = False) -> list[str]:
    """``[job, measure, base, new, change, change %, flag]``; accuracy changes also in points."""
    if not change:
        return [job_id, measure, "-", "-", "-", "-", ""]
    absolute = change.get("abs")
    if absolute is None:
        delta = "-"
    elif points:
        delta = f"{absolute * 100:+.2f} pts"
    else:
        delta = (f"{absolute:+,.0f}" if abs(absolute) >= 10_000 else f"{absolute:+.4g}") + unit
    pct = "-" if change.get("pct") is None else f"{change['pct']:+.1f}%"
    flag = "REGRESSION" if change.get("regression") else "worse" if change.get("worse") else ""
    return [job_id, measure, _fmt(change.get("base")), _fmt(change.get("new")), delta, pct, flag]


def _shown(key: str, change: dict[str, Any]) -> bool:
    """Whether a not-gated measure gets a row: when both runs recorded it, and for the model's own figures
    (size, FLOPs, activations) also when NEW lost one BASE had (an export whose shapes could not be
    followed). BASE without it (a run from before it was counted) or a cold start one run did not time
    (``--cold-runs 0``) is no row."""
    if change.get("abs") is not None:
        return True
    return key in ("bytes", "flops", "activation_bytes") and change.get("base") is not None and change.get("new") is None


def _is_gated(label: str, change: dict[str, Any]) -> bool:
    """Whether the gate judges the metric of this change (a fraction, shown in points); a change the gate
    did not see (a document from before ``gated``) by the built-in names."""
    gated = change.get("gated")
    return gated if isinstance(gated, bool) else label.split(" ")[-1] in GATED_METRICS


def _metric_row(job_id: str, label: str, change: dict[str, Any]) -> list[str]:
    """A metric's row; one the gate does not judge (nll, a plugin's metric) says so, as sizes do, and so
    does one whose seed group's mean gates instead."""
    gated = _is_gated(label, change)
    if change.get("not_gated") == "seeds":
        return _row(job_id, f"{label} (not gated: seed mean)", change, points=True)
    return _row(job_id, label if gated else f"{label} (not gated)", change, points=gated)


def _spread(change: dict[str, Any], row: list[str]) -> list[str]:
    """A seed group's row with each mean's standard deviation beside it (``0.9812 ± 0.0011``)."""
    for column, std in zip((2, 3), change.get("std") or ()):
        if std is not None and row[column] != "-":
            row[column] += f" ± {std:.2g}"
    return row


def seed_group_rows(comparison: dict[str, Any]) -> list[list[str]]:
    """The rows of the sweep points whose seeds gate as one: metric means (± standard deviation) and
    median p50s over the seeds both runs have."""
    rows = []
    for group in comparison.get("seed_groups") or []:
        label = _group_label(group["id"], group["seeds"])
        for name, change in group["metrics"].items():
            gated = _is_gated(name, change)
            measure = f"{name}, mean of {change.get('n')}" + ("" if gated else " (not gated)")
            rows.append(_spread(change, _row(label, measure, change, points=gated)))
        for lat in group["latency"]:
            prefix = f"{lat['prefix']} " if lat.get("prefix") else ""
            rows.append(_row(label, f"{prefix}median p50 {lat['runtime']}/{lat['provider']} b{lat['batch_size']} "
                             f"t{lat['threads']} of {lat['p50_ms'].get('n')}" + _not_gated_text(lat), lat["p50_ms"],
                             " ms"))
    return rows


def _not_gated_text(lat: dict[str, Any]) -> str:
    """A latency row's label suffix when the gate does not judge it (older comparisons: ``gated`` only), or
    judges it on NEW's fastest call only (an unstable row: ``floor``)."""
    floor = lat.get("floor")
    if lat.get("gated", True) and isinstance(floor, dict) and _num(floor.get("new")) is not None:
        what = "its fastest call" if floor.get("n") is None else "its seeds' median fastest call"
        return f" (unstable: gated on {what}, {floor['new']:.4g} ms)"
    if lat.get("gated", True):
        return ""
    why = {"unstable": "unstable", "threads": "other threads", "batch": "other batch size",
           "seeds": "seed median"}.get(lat.get("not_gated") or "")
    return f" (not gated: {why})" if why else " (not gated)"


def comparison_rows(comparison: dict[str, Any]) -> list[list[str]]:
    """The table :func:`format_comparison` prints: one row per job and measure."""
    rows = []
    for job in comparison["jobs"]:
        job_id = str(job["id"])
        status = job.get("status") or [None, None]
        if status[0] != status[1]:
            flag = "REGRESSION" if status[0] == "ok" else ""
            rows.append([job_id, "status", str(status[0]), str(status[1]), "-", "-", flag])
        for name, change in job["metrics"].items():
            rows.append(_metric_row(job_id, name, change))
        for lat in job["latency"]:
            rows.append(_row(job_id, f"p50 {lat['runtime']}/{lat['provider']} b{lat['batch_size']} t{lat['threads']}"
                             + _not_gated_text(lat), lat["p50_ms"], " ms"))
        # Sizes and counts: shown, never gated (a design change, not a regression); nor is the cold start,
        # one process per sample, a few samples
        for key, label in (("bytes", "onnx bytes"), ("flops", "MFLOPs"), ("activation_bytes", "activation bytes"),
                           ("cold_start_ms", "cold start ms"), ("cold_start_rss_bytes", "cold start RAM bytes")):
            change = job.get(key) or {}
            if _shown(key, change):
                if key == "flops":
                    change = {k: (v / 1e6 if k in ("base", "new", "abs") and v is not None else v)
                              for k, v in change.items()}
                rows.append(_row(job_id, f"{label} (not gated)", change))
        for name, variant in (job.get("variants") or {}).items():
            for label, change in variant["metrics"].items():
                rows.append(_metric_row(job_id, label, change))
            for lat in variant["latency"]:
                rows.append(_row(job_id, f"{name} p50 {lat['runtime']}/{lat['provider']} b{lat['batch_size']} "
                                 f"t{lat['threads']}" + _not_gated_text(lat), lat["p50_ms"], " ms"))
            for key, label in (("bytes", "bytes"), ("activation_bytes", "activation bytes"),
                               ("cold_start_ms", "cold start ms"), ("cold_start_rss_bytes", "cold start RAM bytes")):
                if _shown(key, variant.get(key) or {}):
                    basis = variant.get("activation_basis") if key == "activation_bytes" else None
                    label += f", counted {basis[0]} -> {basis[1]}" if basis else ""
                    rows.append(_row(job_id, f"{name} {label} (not gated)", variant[key]))
    return rows + seed_group_rows(comparison)


MEASURING_OPTIONS = ("epochs", "batch_size", "lr", "seed", "max_train_samples", "max_test_samples", "amp",
                     "channels_last", "compile", "cuda_graphs", "exporter", "variants", "batch_sizes", "threads",
                     "providers", "latency")
"""Run options that move accuracy or latency, or decide which latency rows and variants a run has, when
they differ (``config`` in results.json)."""
MACHINE_FACTS = ("hostname", "cpu", "cpu_count", "usable_cores", "gpu", "device", "torch_threads", "python",
                 "torch", "onnx", "onnxscript", "onnxruntime", "numpy", "harness", "harness_commit")
"""Environment facts that move latency, or what is trained and written, when they differ (the hostname only
beside another: alone, with the CPU recorded alike, it is another runner of one kind; ``device`` is the
one training used: ``--device auto`` and ``cpu`` on a machine without a GPU are the same; the libraries that
train, export and run the model; the harness's own code, by version and commit)."""


def setting_differences(base: dict[str, Any], new: dict[str, Any],
                        pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]] = ()) -> list[dict[str, Any]]:
    """Options and machine facts the two runs recorded differently, ``{"what", "base", "new"}`` each.

    A change in these explains a change in the figures as well as the code does (another seed, fewer
    test samples, ``--quick`` latency, another machine), so the comparison names them. A fact only one
    run recorded (an older run, a joined report) is not a difference. With ``pairs`` (the compared
    jobs, base's and new's) each job is judged by the options it ran with: a resume that changed them
    left ``trained_with`` on the jobs finished before. A difference that holds for some of the pairs
    only lists their ids in ``jobs``.
    """
    out: list[dict[str, Any]] = []
    if pairs:
        from harness.report import job_options

        seen: dict[str, tuple[dict[str, Any], list[Any]]] = {}
        for old_job, new_job in pairs:
            for difference in (_option_differences(job_options(old_job, base), job_options(new_job, new))
                               + _data_difference(old_job, new_job)):
                key = repr(sorted(difference.items()))
                seen.setdefault(key, (difference, []))[1].append(new_job.get("id"))
        for difference, ids in seen.values():
            out.append(difference if len(ids) == len(pairs) else {**difference, "jobs": ids})
    else:
        out += _option_differences(base.get("config"), new.get("config"))
    old, cur = base.get("environment"), new.get("environment")
    if isinstance(old, dict) and isinstance(cur, dict):
        facts = [key for key in MACHINE_FACTS if key in old and key in cur and old[key] != cur[key]]
        if facts == ["hostname"] and "cpu" in old and "cpu" in cur:  # the same kind of machine, another host:
            facts = []  # a CI service's runners are named anew for every job, and the note was always on
        out += [{"what": key, "base": old[key], "new": cur[key]} for key in facts]
    return out


def _data_difference(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The splits whose digests (``data_sha256``) the two jobs recorded differently, as ``data``: the same
    dataset name and options over other samples, or the same ones in another order (a subset is drawn by
    position) moves accuracy as a code change would. None when either job has no digests (an older run)."""
    a, b = old.get("data_sha256"), new.get("data_sha256")
    if not isinstance(a, dict) or not isinstance(b, dict) or a == b:
        return []
    splits = [name for name in ("train", "val", "test") if a.get(name) != b.get(name)]

    def text(digests: dict[str, Any]) -> str:
        return ", ".join(f"{name} sha256 {str(digests[name])[:12]}" if digests.get(name) else f"no {name}"
                         for name in splits)

    return [{"what": "data", "base": text(a), "new": text(b)}]


def _option_differences(old: Any, cur: Any) -> list[dict[str, Any]]:
    """The :data:`MEASURING_OPTIONS` two run configs recorded differently (none when either is missing)."""
    if not isinstance(old, dict) or not isinstance(cur, dict):
        return []
    out = []
    for key in MEASURING_OPTIONS:
        if key not in old or key not in cur or old[key] == cur[key]:
            continue
        a, b = old[key], cur[key]
        if isinstance(a, dict) and isinstance(b, dict):  # the latency settings: by name, else the parts that differ
            out += [{"what": key + sub, "base": old_value, "new": new_value}
                    for sub, old_value, new_value in settings_differences(a, b)]
            continue
        out.append({"what": key, "base": a, "new": b})
    return out


def _jobs_text(ids: list[Any] | None, total: int) -> str:
    """`` (2 of 5 jobs: a, b)`` for a difference that holds for some compared jobs only, else nothing."""
    if not ids:
        return ""
    shown = ", ".join(map(str, ids[:3])) + (", ..." if len(ids) > 3 else "")
    return f" ({len(ids)} of {total} jobs: {shown})"


def _setting_text(what: str, value: Any) -> str:
    """A setting as the note shows it: an unset sample cap is ``all``, no GPU ``none``, another unset option
    ``default`` (the recipe's, float32 for ``amp``, every available provider), a list as typed (``1,32``)."""
    if value is None:
        return "all" if what.startswith("max_") else "none" if what in MACHINE_FACTS else "default"
    if isinstance(value, (list, tuple)):  # --batch-sizes 1,32 as it was typed, not Python's [1, 32]
        return ",".join(map(str, value))
    return str(value)


def _basis_change(old: dict[str, Any], new: dict[str, Any]) -> list[str] | None:
    """``[old, new]`` when the two records counted activation memory differently (``graph`` vs
    ``onnxruntime-fused``, see harness.onnx_cost): the change is then the counting's, not the model's."""
    bases = [str(v.get("activation_basis") or "graph") for v in (old, new)]
    return bases if bases[0] != bases[1] else None


def _several_thread_counts(comparison: dict[str, Any]) -> bool:
    """Whether the compared ONNX Runtime rows were timed at more than one thread count (and none is gated
    alone yet): only then is ``--threads 1`` advice."""
    counts = {row.get("threads") for job in comparison["jobs"]
              for row in [*job["latency"], *(r for v in (job.get("variants") or {}).values() for r in v["latency"])]
              if row.get("runtime") == GATED_RUNTIME}
    return len(counts) > 1 and not comparison.get("gated_threads")


def _gated_names(comparison: dict[str, Any]) -> str:
    """``accuracy or macro-F1`` (or the plugin metrics gated beside them), for the verdict's rule."""
    names = [n for n in comparison.get("gated_metrics") or GATED_METRICS if isinstance(n, str)]
    shown = ["macro-F1" if n == "macro-f1" else n for n in sorted(names, key=lambda n: (n != "accuracy", n))]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _comparison_parts(comparison: dict[str, Any], flagged_only: bool
                      ) -> tuple[list[str], list[list[str]], int, list[str], str | None, list[str]]:
    """What a comparison says, for :func:`format_comparison` and :func:`comparison_markdown`: ``(headers,
    rows, hidden, notes, regressions_head, verdict)``: the change table (its flagged rows with
    ``flagged_only``; ``hidden`` counts the others), the lines between table and verdict (jobs or rows in
    one run only, how the runs differ, what was not judged), and the verdict: the heading of the regression
    lines (None without regressions) and its lines, or the one line saying none or that nothing judged."""
    # job ids, run labels and variant names come from results.json and plugins: one line each, no escapes
    rows = [[plain(cell) for cell in row] for row in comparison_rows(comparison)]
    headers = ["job", "measure", "base", "new", "change", "change %", "flag"]
    hidden = 0
    if flagged_only:
        kept = [row for row in rows if row[-1]]
        hidden, rows = len(rows) - len(kept), kept
    if not any(row[-1] for row in rows):  # the flag column, empty: tabulate would still rule it with "--"
        rows, headers = [row[:-1] for row in rows], headers[:-1]
    lines = []
    for label in ("only_in_base", "only_in_new"):
        if comparison[label]:
            lines.append(f"jobs {label.replace('_', ' ')}: {', '.join(map(str, comparison[label]))}")
    for job in comparison["jobs"]:
        for key, what in (("latency_only_in_base", "latency rows only in base"),
                          ("latency_only_in_new", "latency rows only in new"),
                          ("variants_only_in_base", "variants only in base"),
                          ("variants_only_in_new", "variants only in new")):
            if job.get(key):
                lines.append(f"{job['id']}: {what}: {', '.join(map(str, job[key]))}")
    for name, state in (comparison.get("incomplete") or {}).items():  # in the log's summary, not stderr alone
        lines.append(f"note: {name.upper()} {state}")
    differ = comparison.get("settings_differ") or []
    if differ:
        lines.append("note: the runs were made differently, which moves the figures too: " + "; ".join(
            f"{d['what']} {_setting_text(d['what'], d['base'])} -> {_setting_text(d['what'], d['new'])}"
            + _jobs_text(d.get("jobs"), len(comparison["jobs"])) for d in differ))
    groups = comparison.get("seed_groups") or []
    if groups:
        lines.append(f"note: {len(groups)} sweep point(s) with repeated seeds gate on the seeds' mean accuracy and "
                     "median p50 (the rows marked [seeds ...]); each seed's own rows are shown, not gated "
                     "(--per-seed gates each)")
    threshold, points = comparison["threshold_pct"], comparison.get("accuracy_points", comparison["threshold_pct"])
    floors, unstable = comparison.get("floor_rows") or 0, comparison.get("unstable_rows") or 0
    why_unstable = (f"their halves' medians differ by more than {STABLE_DRIFT_PCT:g} %, or a few slow calls "
                    f"pull their mean more than {(STABLE_MEAN_OVER_P50 - 1) * 100:g} % above their p50")
    remedy = ("measure on a quieter machine, without --quick"
              + (", or gate one thread count with --threads 1" if _several_thread_counts(comparison) else ""))
    if floors:
        gate_text = (f"gated on NEW's fastest call only: a regression when even that is more than {threshold:g}% "
                     "over BASE's p50 (interference only adds time: it would have to slow every call to trip this; "
                     "a smaller slowdown passes)" if threshold is not None else
                     "with --fail-on-regression they gate on NEW's fastest call against BASE's p50")
        lines.append(f"note: {floors} latency row(s) that base or new marked unstable ({why_unstable}): their p50 "
                     f"change may be the machine's; {gate_text}; {remedy}")
    if unstable:
        lines.append(f"note: {unstable} latency row(s) not gated: base or new marked them unstable "
                     f"({why_unstable}) and NEW recorded no fastest call (min_ms) to judge instead; {remedy}")
    where = "".join(f" {name} {','.join(map(str, values))}" for name, values in (
        ("threads", comparison.get("gated_threads")), ("batch", comparison.get("gated_batch_sizes"))) if values)
    floor = comparison.get("min_change_ms") or 0
    rule = ", ".join(([f"p50 +{threshold:g}%" + (f" and +{floor:g} ms" if floor else "")
                       + (f" at{where}" if where else "")] if threshold is not None else [])
                     + ([f"{_gated_names(comparison)} -{points:g} points"] if points is not None else []))
    head: str | None = None
    if comparison["regressions"]:
        head = f"REGRESSIONS ({rule}):" if rule else "REGRESSIONS:"
        verdict = list(comparison["regressions"])
    elif rule:
        # not silent on what it could not see: rows judged on their fastest call only, or not at all
        caveats = ([f"{floors} unstable latency row(s) judged on their fastest call only"]
                   if floors and threshold is not None else []) + (
            [f"{unstable} unstable latency row(s) not judged"] if unstable and threshold is not None else [])
        verdict = [f"no regression beyond the threshold ({rule})" + "".join(f"; {c}" for c in caveats)]
    else:  # the changes are shown; nothing judged them: say so rather than end on a table of +0s
        verdict = ["no gate: the changes are shown, not judged (--fail-on-regression PCT judges p50 and accuracy, "
                   "--max-accuracy-drop POINTS accuracy alone)"]
    return headers, rows, hidden, [plain(line) for line in lines], head and plain(head), [plain(v) for v in verdict]


def format_comparison(comparison: dict[str, Any], flagged_only: bool = False) -> str:
    """Human-readable comparison: the change table, jobs in one run only, and the verdict. With
    ``flagged_only``, the table keeps only its flagged rows (a regression, a metric moved the worse way)
    and a line counts the others: a sweep of a thousand jobs has some fourteen thousand rows."""
    from tabulate import tabulate

    headers, rows, hidden, notes, head, verdict = _comparison_parts(comparison, flagged_only)
    # a lost job or row is no table row: "(no flagged row)" alone above its regression read as all-clear
    empty = "(no flagged row" + ("; the lines below say what is missing)" if head or notes else ")")
    table = tabulate(rows, headers=headers, disable_numparse=True) if rows else empty
    if hidden:
        table += f"\n({hidden:,} unflagged row(s) left out by --flagged-only; --json has every one)"
    tail = [head, *(f"  {line}" for line in verdict)] if head else verdict
    return "\n".join([plain(f"compare {comparison['base']} -> {comparison['new']}"), table, *notes, *tail])


def comparison_markdown(comparison: dict[str, Any], flagged_only: bool = False) -> str:
    """The comparison as GitHub Markdown (a CI job's step summary, a pull request's comment): the verdict
    first, then the change table (``flagged_only``: its flagged rows), then the notes."""
    from harness.report import Table, _md_cell, md_table

    headers, rows, hidden, notes, head, verdict = _comparison_parts(comparison, flagged_only)
    title = f"### harness compare `{_md_cell(comparison['base'])}` → `{_md_cell(comparison['new'])}`"
    if head:
        lines = [title, "", f"**{_md_cell(head)}**", ""] + [f"- {_md_cell(line)}" for line in verdict]
    else:
        lines = [title, "", f"**{_md_cell(verdict[0])}**"]
    numeric = {i for i, h in enumerate(headers) if h in ("base", "new", "change", "change %")}
    lines += [""] + (md_table(Table(headers, rows, numeric)) if rows else ["(no flagged row)"])
    if hidden:
        lines += ["", f"{hidden:,} unflagged row(s) left out (`--flagged-only`); `--json` has every one."]
    if notes:
        lines += [""] + [f"- {_md_cell(line)}" for line in notes]
    return "\n".join(lines) + "\n"

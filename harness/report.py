"""Stage: reports built from ``results.json`` alone (terminal table, CSV, Markdown, HTML).

Everything here reads the results document, never the run's live objects,
so ``harness report RUN_DIR`` rebuilds exactly what the run wrote. A document
may join several runs (``harness report A B --out DIR``): its jobs then carry
``run_id`` and their ``id`` is prefixed with it.

The functions below turn the document into plain rows of strings (the
comparison table, seed summaries, latency, variants, published references,
failures, environment); :func:`to_markdown` and
:func:`harness.report_html.write_html` render the same rows, so both
reports always show the same figures. Every field may be null or absent
(a failed stage): rows show ``-`` there, never an invented value.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import StorageError
from harness.latency import UNSTABLE_MARK, run_remedy, unstable_mark, unstable_note
from harness.results import atomic_write_bytes, atomic_write_text
from harness.text import first_five, mflops, ms_text, plain, points, seeds_text, squeeze
from harness.train import amp_not_applied_reason

ORT = "onnxruntime"
CPU = "CPUExecutionProvider"
PROVIDER_SHORT = {"CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "CUDA",
                  "TensorrtExecutionProvider": "TensorRT", "cpu": "CPU", "cuda": "CUDA"}

CSV_FIELDS = [
    "run_id", "id", "model", "dataset", "point", "status", "stage", "error", "params", "reference_params",
    "accuracy", "onnx_accuracy", "reference_test_accuracy", "max_abs_diff", "onnx_bytes", "opset", "exporter",
    "train_seconds", "epochs", "device", "time_to_target_s", "peak_memory_bytes",
    "runtime", "provider", "batch_size", "threads", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
    "std_ms", "min_ms", "throughput_per_s",
    # appended (existing consumers read the columns above by name and order): which ONNX model a row
    # measured, and a variant's own check against the fp32 export
    "variant", "max_abs_diff_vs_fp32", "variant_error",
    # appended: the job's FLOPs per sample (see harness.train.count_flops) and the ONNX model's peak
    # activation memory at batch 1 (see harness.onnx_cost)
    "flops", "activation_bytes",
    # appended: cold costs of the row in the harness's process, one sample each (see harness.latency)
    "session_ms", "first_call_ms",
    # appended: the ONNX model's cold start, its load and first answer in a new process (the median of
    # its runs; see harness.coldstart), the same on each of its rows
    "cold_start_ms", "cold_start_rss_bytes",
    # appended: whether the row's median held from its first half of runs to its second and no few slow calls
    # pull its mean above 1.25x its p50, and the drift (see harness.latency)
    "stable", "drift_pct",
    # appended: how far training grew the process above its size when the job began (CPU): the peak above
    # includes the interpreter, the data and what earlier jobs left, so it depends on the order of the jobs
    "memory_growth_bytes",
    # appended: how spread the row's calls were and how it was timed (see harness.latency and harness bench):
    # the graph optimisation level, inputs bound once (IOBinding) or fed per call, threads spinning or not
    "max_ms", "cv", "opt_level", "iobinding", "allow_spinning",
    # appended: the seed the job trained with (its sweep point's, else its run's), as a number: `point` is text
    "seed",
    # appended: what the job's data were (one sample's shape, 3x32x32, and the classes) and how its exported
    # graph adapts them for a model of other channels ("3 -> 1 channels (RGB averaged to gray)"; blank: as is)
    "input_shape", "num_classes", "input_adapted",
    # appended: on a variant's rows, what choosing it costs and gains against the fp32 export: its ONNX accuracy
    # below fp32's (a fraction), its alternating comparison's speed-up and stability, and why a row is missing
    # (fp16 is timed on GPU providers only: blank latency, not a lost one)
    "accuracy_drop", "vs_fp32_speedup", "vs_fp32_stability", "latency_skipped",
]


def _get(data: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def pick_latency(job: dict[str, Any], runtime: str = "onnxruntime", provider: str = "CPUExecutionProvider",
                 batch_size: int | None = None, threads: int | None = None) -> dict[str, Any] | None:
    """The first latency row matching; ``batch_size=None`` picks the smallest, ``threads=None`` the fewest."""
    rows = [
        r for r in job.get("latency") or []
        if r.get("runtime") == runtime and r.get("provider") == provider
        and (batch_size is None or r.get("batch_size") == batch_size)
        and (threads is None or r.get("threads") == threads)
    ]
    return min(rows, key=lambda r: (r.get("batch_size") or 0, r.get("threads") or 0), default=None)


def largest_batch(job: dict[str, Any]) -> int | None:
    sizes = [r.get("batch_size") for r in job.get("latency") or []
             if r.get("runtime") == "onnxruntime" and isinstance(r.get("batch_size"), int)]
    return max(sizes, default=None)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def seconds_text(seconds: Any) -> str:
    """A wall time in seconds: two decimals below one second (a tenth would show a fast job as 0.0), else one."""
    return _fmt(seconds, _seconds_spec(seconds))


def _seconds_spec(seconds: Any) -> str:
    return ".2f" if isinstance(seconds, (int, float)) and seconds < 1 else ".1f"


def _times(ratio: float | None) -> str:
    """A ratio as ``0.26x`` (``-`` for None), as the table's other ratios read."""
    return "-" if ratio is None else f"{ratio:.2f}x"


def _text(value: Any, missing: str = "-") -> str:
    """``value`` as display text, on one line without control characters (:func:`harness.text.plain`: names
    come from plugins and results.json); ``missing`` where it is null or absent (never the word ``None``)."""
    return missing if value is None else plain(value)


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per job with the figures people compare (used by the table and Markdown)."""
    rows = []
    for job in results.get("jobs", []):
        small = pick_latency(job, threads=1) or pick_latency(job)
        threads = small.get("threads") if small else 1  # 1 where measured, else the fewest: both columns alike
        big_bs = largest_batch(job)
        big = pick_latency(job, batch_size=big_bs, threads=threads) if big_bs else None
        eager = pick_latency(job, runtime="torch", provider="cpu", batch_size=small.get("batch_size") if small else None,
                             threads=small.get("threads") if small else None)
        speedup, speedup_unstable = None, False
        paired = job.get("ort_vs_eager")
        if small and isinstance(paired, dict) and _number(paired.get("speedup")) and all(
                paired.get(k) == small.get(k) for k in ("provider", "batch_size", "threads")):
            speedup, speedup_unstable = paired["speedup"], paired.get("stable") is False  # alternating rounds
        elif small and eager and small.get("p50_ms"):  # a run from before the paired ratio: its rows' ratio
            speedup = eager["p50_ms"] / small["p50_ms"]
            speedup_unstable = small.get("stable") is False or eager.get("stable") is False
        rows.append({
            "model": job.get("model"),
            "dataset": job.get("dataset"),
            "point": job.get("point"),
            "status": _status(job),
            "params": job.get("params"),
            "flops": job.get("flops"),
            "accuracy": _get(job, "metrics", "accuracy"),
            "onnx_accuracy": _get(job, "onnx", "metrics", "accuracy"),
            "max_abs_diff": _get(job, "onnx", "max_abs_diff"),
            "onnx_kb": (_get(job, "onnx", "bytes") or 0) / 1024 if _get(job, "onnx", "bytes") else None,
            "activation_bytes": _get(job, "onnx", "activation_bytes"),
            "p50_small": small.get("p50_ms") if small else None,
            "p99_small": small.get("p99_ms") if small else None,
            "small_unstable": bool(small) and small.get("stable") is False,
            "small_bs": small.get("batch_size") if small else None,
            "threads": threads if small else None,
            "p50_big": big.get("p50_ms") if big else None,
            "big_unstable": bool(big) and big.get("stable") is False,
            "big_bs": big_bs,
            "throughput_big": big.get("throughput_per_s") if big else None,
            "ort_speedup": speedup,
            "ort_speedup_unstable": speedup_unstable and speedup is not None,
            "train_seconds": _get(job, "train", "seconds"),
            "error": job.get("error"),
        })
    return rows


# Left out first when the table must fit a terminal (``comparison_table(width=...)``), in this order.
# "dataset" only when every job has the same one.
NARROW_DROPS = ("max|diff|", "act KiB", "samples/s", "MFLOPs", "ORT vs eager", "p99 ms", "params", "onnx KiB",
                "dataset")


TERMINAL_ROWS = 50
"""The most jobs the table shows in a terminal (a sweep's hundreds scroll the answer away); a log or a pipe
gets every job."""


def _most_accurate(results: dict[str, Any], rows: int) -> tuple[dict[str, Any], str | None]:
    """``results`` with only its ``rows`` most accurate finished jobs (their ONNX accuracy, else PyTorch's),
    in run order, and the line that says so; ``results`` itself when it has no more jobs than that."""
    jobs = results.get("jobs") or []
    if len(jobs) <= rows:
        return results, None
    return {**results, "jobs": most_accurate(jobs, rows)}, (f"(the {rows} most accurate of {len(jobs):,} jobs; "
                                                            "report.md and results.csv list every one; harness "
                                                            "report RUN --sort KEY --top N ranks them otherwise)")


def most_accurate(jobs: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The ``count`` most accurate of ``jobs`` (:func:`accuracy_of`; the earlier on a tie, a job without an
    accuracy last), in their own order."""
    keep = set(_best_first([accuracy_of(job) for job in jobs], higher_is_better=True)[:count])
    return [job for n, job in enumerate(jobs) if n in keep]


def _best_first(values: Sequence[float | None], higher_is_better: bool) -> list[int]:
    """The indices of ``values``, best first; None last; a tie in their own order."""
    return sorted(range(len(values)), key=lambda n: (values[n] is None,
                                                     -(values[n] or 0) if higher_is_better else (values[n] or 0), n))


def _table_batches(summary: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The batch sizes the comparison table's latency columns read (small, large) for :func:`summary_rows`:
    the first job's timed ones (a joined run's other jobs may have others, shown as '-')."""
    return (next((r["small_bs"] for r in summary if r["small_bs"]), 1),
            next((r["big_bs"] for r in summary if r["big_bs"]), None))


# The orders the comparison table can be sorted in (``harness report --sort``): which jobs come first, in
# words, and whether a higher figure is better. A job without the figure goes last.
SORT_KEYS: dict[str, tuple[str, bool]] = {
    "accuracy": ("most accurate (ONNX Runtime's accuracy, else PyTorch's)", True),
    "p50": ("lowest p50 latency at batch {small}", False),
    "p99": ("lowest p99 latency at batch {small}", False),
    "throughput": ("highest throughput at batch {big}", True),
    "size": ("smallest ONNX file", False),
    "activation": ("least peak activation memory", False),
    "params": ("fewest parameters", False),
    "flops": ("fewest FLOPs", False),
    "train": ("quickest to train", False),
}


SORT_COLUMNS = {"p99": "p99 ms", "throughput": "samples/s", "size": "onnx KiB", "activation": "act KiB",
                "params": "params", "flops": "MFLOPs"}
"""The column (by its header's start, as :data:`NARROW_DROPS` has it) a sort key ranks by, kept in a narrow table."""


def _sort_value(key: str, job: dict[str, Any], row: dict[str, Any], small_bs: Any, big_bs: Any) -> float | None:
    """The figure ``key`` (of :data:`SORT_KEYS`) ranks ``job`` by, as its table row shows it (a latency at
    another batch size than the column's, as a joined run's, counts as none)."""
    if key == "accuracy":
        return accuracy_of(job)
    if key in ("p50", "p99"):
        return _number(row[f"{key}_small"]) if row["small_bs"] == small_bs else None
    if key == "throughput":
        return _number(row["throughput_big"]) if row["big_bs"] == big_bs else None
    field_of = {"size": "onnx_kb", "activation": "activation_bytes", "params": "params", "flops": "flops",
                "train": "train_seconds"}
    return _number(row[field_of[key]])


def ranked(results: dict[str, Any], key: str) -> tuple[list[dict[str, Any]], str]:
    """The jobs of ``results`` best first by ``key`` (:data:`SORT_KEYS`), those without the figure last, a
    tie in run order; and the figure in words (with the batch size the table's column reads)."""
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; one of {', '.join(SORT_KEYS)}")
    jobs = list(results.get("jobs") or [])
    summary = summary_rows(results)
    small_bs, big_bs = _table_batches(summary)
    values = [_sort_value(key, job, row, small_bs, big_bs) for job, row in zip(jobs, summary)]
    order = _best_first(values, higher_is_better=SORT_KEYS[key][1])
    return [jobs[n] for n in order], SORT_KEYS[key][0].format(small=small_bs, big=big_bs or "(none above 1)")


def _sorted_cut(results: dict[str, Any], key: str, rows: int | None) -> tuple[dict[str, Any], str]:
    """``results`` with its jobs in the order ``key`` ranks them (its first ``rows`` only, when given), and
    the line that says so."""
    jobs, words = ranked(results, key)
    if rows is None or rows >= len(jobs):
        return {**results, "jobs": jobs}, f"(sorted: {words} first)"
    return {**results, "jobs": jobs[:rows]}, (f"(the first {rows} of {len(jobs):,} jobs, sorted: {words} first; "
                                              "report.md and results.csv list every one)")


def comparison_table(results: dict[str, Any], tablefmt: str = "simple", width: int | None = None,
                     max_rows: int | None = None, sort: str | None = None, top: int | None = None) -> str:
    """The comparison table printed at the end of a run. With ``width`` (a terminal's), columns of
    :data:`NARROW_DROPS` are left out until it fits, and a last line names them. With ``max_rows``, a run
    of more jobs shows its most accurate ones (in run order), and a line says so. With ``sort`` (a key of
    :data:`SORT_KEYS`) or ``top``, the rows are ranked, best first, by that key (accuracy when only ``top``
    is given), and only the first ``top`` (else ``max_rows``) are shown."""
    from tabulate import tabulate

    if top is not None and (isinstance(top, bool) or not isinstance(top, int)):
        raise TypeError(f"top takes a whole number, not {top!r}")
    if top is not None and top < 1:  # -1 showed all but the last job; 0 every one
        raise ValueError(f"top must be at least 1, not {top}")
    whole = results  # what report.md shows: the line naming what only the reports have speaks of every job
    if sort is not None or top is not None:
        results, cut = _sorted_cut(results, sort or "accuracy", top or max_rows)
    else:
        results, cut = _most_accurate(results, max_rows) if max_rows else (results, None)
    headers, table, elsewhere_timed = _comparison_rows(results)
    text = tabulate(table, headers=headers, tablefmt=tablefmt, disable_numparse=True)
    dropped: list[str] = []
    one_dataset = len({job.get("dataset") for job in results.get("jobs", [])}) <= 1
    for prefix in NARROW_DROPS:
        if width is None or max(map(len, text.splitlines()), default=0) <= width:
            break
        if (prefix == "dataset" and not one_dataset) or prefix == SORT_COLUMNS.get(sort or ""):
            continue  # a table ranked by a figure it no longer showed
        keep = [i for i, h in enumerate(headers) if not h.startswith(prefix)]
        if len(keep) == len(headers):
            continue
        dropped += [h for i, h in enumerate(headers) if i not in keep]
        headers, table = [headers[i] for i in keep], [[row[i] for i in keep] for row in table]
        text = tabulate(table, headers=headers, tablefmt=tablefmt, disable_numparse=True)
    lines = [f"({len(dropped)} column(s) left out to fit {width} characters: {', '.join(dropped)}; "
             "report.md has them all)"] if dropped else []
    if cut:
        lines.append(cut)
    if elsewhere_timed:  # a joined run's other --batch-sizes: blank here, and last in a latency ranking
        lines.append(f"{elsewhere_timed} job(s) timed at other batch sizes than these columns' show '-' in them "
                     "(their runs' --batch-sizes differ; report.md's latency table has every batch size)")
    p50_columns = [i for i, header in enumerate(headers) if header.startswith("p50 ms")]
    if any(UNSTABLE_MARK in row[i] for row in table for i in p50_columns):  # a star shown, not one in a name
        lines.append(unstable_note(_shown_latency(results), run_remedy(results)) or "")
    # what the figures above do not show: near-chance jobs, data adapted in the graph, variants far below fp32,
    # and the models no dataset fits (the run's start said so too, but not with --no-progress)
    left_out = unmatched_note(results)
    lines += [note for note in (near_chance(results), adapted_note(results), variant_loss_note(results),
                                left_out and squeeze(left_out, 400)) if note]
    if "ORT vs eager" in headers and any(row[headers.index("ORT vs eager")] != "-" for row in table):
        lines.append("ORT vs eager: eager PyTorch's time over the exported model's in ONNX Runtime (above 1x the "
                     "export is faster)")
    if "ORT vs eager" in headers and any(UNSTABLE_MARK in row[headers.index("ORT vs eager")] for row in table):
        lines.append(RATIO_UNSTABLE_NOTE)
    stand_ins = {dataset: text for dataset, (text, stand_in) in _sources(results).items() if stand_in}
    if stand_ins:  # the table's "mnist3d" is voxelised Fashion-MNIST: said where the figures are pasted from
        lines.append(f"note: {', '.join(stand_ins)} here is a stand-in: {'; '.join(stand_ins.values())} "
                     "(pass --data-dir with MNIST)")
    note = shortened_note(results)
    if note:
        lines.append(note)
    elsewhere = _only_in_the_reports(whole)
    if elsewhere:
        lines.append(elsewhere)
    if width:  # wrapped to the terminal, as the table is fitted to it (never narrower than 60)
        import textwrap

        lines = ["\n".join(textwrap.wrap(line, max(width, 60), subsequent_indent="  ")) for line in lines]
    return "\n".join([text, *lines])


RATIO_UNSTABLE_NOTE = (f"{UNSTABLE_MARK} on ORT vs eager: ONNX Runtime against eager PyTorch at the p50 column's "
                       "batch size and threads, timed in alternating rounds whose ratios spread by more than 10 % "
                       "or whose estimates disagreed (or, in an older run, a ratio of two rows of which one is "
                       "unstable): it does not repeat")


def _shown_latency(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every latency row of the fp32 exports (what the results and latency tables show)."""
    return [r for job in results.get("jobs", []) for r in job.get("latency") or [] if isinstance(r, dict)]


def _only_in_the_reports(results: dict[str, Any]) -> str | None:
    """A line under the terminal's table naming what a run measured that only the reports show (the seeds'
    mean and spread, the variants), or None: the table has one row per job and fp32 exports only."""
    parts = []
    groups = seed_summary(results)
    if groups:
        parts.append(f"Seeds (mean ± std over {len(groups)} group(s) of seeds)")
    kinds = list(dict.fromkeys(str(v.get("variant")) for job in results.get("jobs", [])
                               for v in job.get("variants") or [] if isinstance(v, dict)
                               and v.get("variant") not in (None, "fp32")))
    if kinds:
        parts.append(f"Variants ({', '.join(kinds)})")
    return f"in report.md and report.html: {'; '.join(parts)}" if parts else None


def _comparison_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]], int]:
    """The comparison table's headers and rows (see :func:`comparison_table`), and how many timed jobs
    have no figure under its latency columns (timed at other batch sizes, as a joined run's may be)."""
    summary = summary_rows(results)
    small_bs, big_bs = _table_batches(summary)
    joined = is_joined(results)
    # The thread count the latency columns read at: 1 unless a job was timed without it. One count for every
    # job goes in the headers (t1 is left unsaid); jobs that differ each say theirs in the cell.
    counts = {r["threads"] for r in summary if r["threads"] is not None}
    common = counts.pop() if len(counts) == 1 else None
    timed = (results.get("config") or {}).get("threads")
    several = isinstance(timed, list) and len(timed) > 1  # --threads 1,4: say which one the columns show
    t = f" t{common}" if common is not None and (common != 1 or several) else ""
    headers = ["model", "dataset"] + (["run"] if joined else []) + [
        "status", "params", "MFLOPs", "acc", "onnx acc", "max|diff|", "onnx KiB", "act KiB",
        f"p50 ms b{small_bs}{t}", f"p99 ms b{small_bs}{t}"]
    if big_bs and big_bs != small_bs:
        headers += [f"p50 ms b{big_bs}{t}", f"samples/s b{big_bs}{t} (batch / mean)"]
    headers += ["ORT vs eager", "train s"]
    table, elsewhere = [], 0
    for r, job in zip(summary, results.get("jobs", [])):
        name = _text(r["model"]) + ("" if not r["point"] else " " + point_text(r["point"]))
        line = [name, _text(r["dataset"])] + ([job.get("run_id") or "-"] if joined else []) + [
                r["status"], _fmt(r["params"], ","), mflops(r["flops"]), _fmt(r["accuracy"], ".4f"),
                _fmt(r["onnx_accuracy"], ".4f"), _fmt(r["max_abs_diff"], ".1e"), _fmt(r["onnx_kb"], ".1f"),
                _kib(r["activation_bytes"])]
        # a job timed at other batch sizes (a joined run's) shows '-' under a header that is not its own
        small = r["small_bs"] == small_bs
        own = f" t{r['threads']}" if common is None and r["threads"] not in (None, 1) else ""

        def cell(value: Any, spec: str | None = None, unstable: bool = False) -> str:  # no spec: a latency
            mark = UNSTABLE_MARK if unstable and value is not None else ""
            return (ms_text(value) if spec is None else _fmt(value, spec)) + mark + (own if value is not None else "")

        line += [cell(r["p50_small"] if small else None, unstable=r["small_unstable"]),
                 cell(r["p99_small"] if small else None)]
        big = True
        if big_bs and big_bs != small_bs:
            big = r["big_bs"] == big_bs
            line += [cell(r["p50_big"] if big else None, unstable=r["big_unstable"]),
                     cell(r["throughput_big"] if big else None, ",.0f")]
        if r["small_bs"] is not None and not (small and big):
            elsewhere += 1
        line += [_speedup_text(r) if small else "-",  # the ratio is at the job's own small batch
                 seconds_text(r["train_seconds"])]
        table.append(line)
    return headers, table, elsewhere


def failures(results: dict[str, Any], status: str = "failed") -> list[str]:
    """A line per job of ``status`` (failed; or skipped, whose stage is ``plan``): its id, stage and why."""
    return [f"{_text(j.get('id'))}: {_text(j.get('stage'))}: {_text(j.get('error'))}"
            for j in results.get("jobs", []) if j.get("status") == status]


ONNX_ONLY = ("variant", "onnx_accuracy", "max_abs_diff", "onnx_bytes", "opset", "exporter", "activation_bytes",
             "cold_start_ms", "cold_start_rss_bytes")
"""results.csv's columns about an ONNX model, blank on an eager PyTorch row (with the onnx_metric: ones): a
plot of size against latency over every row put eager latencies at the export's size."""


def _shape_text(shape: Any) -> str | None:
    """A recorded sample shape as ``3x32x32``; None for none (or a malformed one)."""
    if not isinstance(shape, list) or not shape or not all(isinstance(n, int) for n in shape):
        return None
    return "x".join(map(str, shape))


def csv_rows(results: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Long format: one row per job and latency measurement (a job without latency gets one row), then one
    per variant and latency measurement (a variant without latency gets one row).

    ``variant`` says which ONNX model a row is about: ``fp32`` for the job's plain export, the variant's
    name (``int8-dynamic``, ``ort-opt``...) for a variant; it is blank on eager PyTorch (``runtime`` torch)
    rows, which time no ONNX model (so are the other :data:`ONNX_ONLY` columns and ``onnx_metric:``), and on
    the row of a job that has no export. A variant row carries the
    variant's ``onnx_bytes`` and ``onnx_accuracy``, its ``max_abs_diff_vs_fp32`` (logits against the fp32
    export's) and ``variant_error``; its ``max_abs_diff`` (the fp32 export against PyTorch) is blank.
    """
    for job in results.get("jobs", []):
        base = {
            "run_id": job.get("run_id") or results.get("run_id"),
            "id": job.get("id"),
            "model": job.get("model"),
            "dataset": job.get("dataset"),
            "point": point_text(job.get("point")) or None,
            "status": job.get("status"),
            "stage": job.get("stage"),
            "error": job.get("error"),
            "params": job.get("params"),
            "reference_params": _get(job, "reference", "params"),
            "accuracy": _get(job, "metrics", "accuracy"),
            "onnx_accuracy": _get(job, "onnx", "metrics", "accuracy"),
            "reference_test_accuracy": _get(job, "reference", "test_accuracy"),
            "max_abs_diff": _get(job, "onnx", "max_abs_diff"),
            "onnx_bytes": _get(job, "onnx", "bytes"),
            "opset": _get(job, "onnx", "opset"),
            "exporter": _get(job, "onnx", "exporter"),
            "train_seconds": _get(job, "train", "seconds"),
            "epochs": _get(job, "train", "epochs"),
            "device": _get(job, "train", "device"),
            "time_to_target_s": _get(job, "train", "time_to_target_s"),
            "peak_memory_bytes": _get(job, "train", "peak_memory_bytes"),
            "memory_growth_bytes": memory_growth(job["train"]) if isinstance(job.get("train"), dict) else None,
            "flops": job.get("flops"),
            "activation_bytes": _get(job, "onnx", "activation_bytes"),
            "seed": _job_seed(job, results),
            "input_shape": _shape_text(job.get("input_shape")),
            "num_classes": job.get("num_classes"),
            "input_adapted": job.get("input_adapted"),
        }
        base.update(_beyond_accuracy(_get(job, "metrics"), "metric:"))
        fp32 = {**base, **_beyond_accuracy(_get(job, "onnx", "metrics"), "onnx_metric:"),
                "cold_start_ms": _get(job, "onnx", "cold_start", "ms"),
                "cold_start_rss_bytes": _get(job, "onnx", "cold_start", "rss_bytes")}
        exported = "fp32" if isinstance(job.get("onnx"), dict) else None
        latency = [r for r in job.get("latency") or [] if isinstance(r, dict)]
        if not latency:
            yield {**fp32, "variant": exported}
        for row in latency:
            if row.get("runtime") == "torch":  # times no ONNX model: none of the export's own figures
                yield {**base, **{k: row.get(k) for k in CSV_FIELDS if k in row}, **dict.fromkeys(ONNX_ONLY)}
            else:
                yield {**fp32, **{k: row.get(k) for k in CSV_FIELDS if k in row}, "variant": exported}
        for variant in job.get("variants") or []:
            if not isinstance(variant, dict) or variant.get("variant") in (None, "fp32"):
                continue
            own = {**base, **_beyond_accuracy(variant.get("metrics"), "onnx_metric:"),
                   "variant": variant.get("variant"), "onnx_bytes": variant.get("bytes"),
                   "activation_bytes": variant.get("activation_bytes"),
                   "onnx_accuracy": _get(variant, "metrics", "accuracy"), "max_abs_diff": None,
                   "max_abs_diff_vs_fp32": variant.get("max_abs_diff"), "variant_error": variant.get("error"),
                   "cold_start_ms": _get(variant, "cold_start", "ms"),
                   "cold_start_rss_bytes": _get(variant, "cold_start", "rss_bytes"),
                   "accuracy_drop": _drop(_get(job, "onnx", "metrics", "accuracy"),
                                          _get(variant, "metrics", "accuracy")),
                   "vs_fp32_speedup": vs_fp32_speedup(variant.get("vs_fp32")),
                   "vs_fp32_stability": _get(variant, "vs_fp32", "stability"),
                   "latency_skipped": "; ".join(map(str, variant.get("latency_skipped") or [])) or None}
            rows = [r for r in variant.get("latency") or [] if isinstance(r, dict)]
            if not rows:
                yield own
            for row in rows:
                yield {**own, **{k: row.get(k) for k in CSV_FIELDS if k in row}}


def _drop(fp32: Any, variant: Any) -> float | None:
    """fp32's accuracy minus a variant's (a fraction, rounded to 6 places), or None without both."""
    a, b = _number(fp32), _number(variant)
    return None if a is None or b is None else round(a - b, 6)


def _job_seed(job: dict[str, Any], results: dict[str, Any]) -> Any:
    """The seed a job trained with: its sweep point's, else the options it ran with (None when unrecorded)."""
    point = job.get("point")
    if isinstance(point, dict) and "seed" in point:
        return point["seed"]
    options = job_options(job, results)
    return options.get("seed") if isinstance(options, dict) else None


def _beyond_accuracy(metrics: Any, prefix: str = "") -> dict[str, Any]:
    """The metrics other than accuracy in a ``metrics`` dict (a job's, its export's, a variant's), keys prefixed."""
    if not isinstance(metrics, dict):
        return {}
    return {f"{prefix}{name}": value for name, value in metrics.items() if name != "accuracy"}


def extra_metric_names(results: dict[str, Any]) -> list[str]:
    """Metrics other than accuracy that some job recorded (nll, macro-f1, a plugin's), in order of appearance."""
    names: dict[str, None] = {}
    for job in results.get("jobs", []):
        for source in (_get(job, "metrics"), _get(job, "onnx", "metrics")):
            names.update((str(k), None) for k in _beyond_accuracy(source))
    return list(names)


def to_csv(results: dict[str, Any]) -> str:
    """``CSV_FIELDS``, then for each metric beyond accuracy ``metric:NAME`` (PyTorch) and ``onnx_metric:NAME``
    (ONNX Runtime: the fp32 export on a job's rows, the variant on a variant's rows)."""
    extra = extra_metric_names(results)
    fields = CSV_FIELDS + [f"{kind}:{name}" for name in extra for kind in ("metric", "onnx_metric")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(results):
        writer.writerow(row)
    return buffer.getvalue()


# -- shared building blocks of report.md and report.html ---------------------------------------------------


def is_joined(results: dict[str, Any]) -> bool:
    """True when the document joins several runs (its jobs carry two or more different ``run_id``)."""
    return len({job.get("run_id") for job in results.get("jobs", []) if job.get("run_id")}) > 1


def point_text(point: dict[str, Any] | None, skip: Iterable[str] = ()) -> str:
    """Sweep settings as ``k=v, k=v`` (sorted by key); empty without settings."""
    if not isinstance(point, dict):
        return ""
    skip = set(skip)
    return plain(", ".join(f"{k}={point[k]}" for k in sorted(point) if k not in skip))


def job_label(job: dict[str, Any], dataset: bool = False, run: bool = False) -> str:
    """``model [settings]`` (optionally ``@dataset`` and ``run:`` prefix) for legends and headings."""
    label = _text(job.get("model"))
    if dataset:
        label += f"@{_text(job.get('dataset'))}"
    settings = point_text(job.get("point"))
    if settings:
        label += f" [{settings}]"
    if run and job.get("run_id"):
        label = f"{job['run_id']}: {label}"
    return label


def provider_short(provider: Any) -> str:
    if provider is None:
        return "-"
    return PROVIDER_SHORT.get(str(provider), str(provider).replace("ExecutionProvider", ""))


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None (nulls, strings, NaN from a hand-edited file)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def accuracy_of(job: dict[str, Any]) -> float | None:
    """The accuracy a deployment gets: the ONNX model's in ONNX Runtime, else PyTorch's."""
    onnx_acc = _number(_get(job, "onnx", "metrics", "accuracy"))
    return onnx_acc if onnx_acc is not None else _number(_get(job, "metrics", "accuracy"))


def headline_latency(job: dict[str, Any]) -> dict[str, Any] | None:
    """The latency row plots use: ONNX Runtime CPU, batch 1 (else the smallest), 1 thread (else the fewest)."""
    return (pick_latency(job, batch_size=1, threads=1) or pick_latency(job, threads=1) or pick_latency(job))


def latency_keys(results: dict[str, Any], runtime: str = ORT) -> list[tuple[str, int, int]]:
    """Every (provider, batch size, threads) measured for ``runtime`` in the document, CPU first."""
    keys = {(r.get("provider"), r.get("batch_size"), r.get("threads"))
            for job in results.get("jobs", []) for r in job.get("latency") or [] if r.get("runtime") == runtime}
    return sorted(keys, key=lambda k: (k[0] != CPU, str(k[0]), k[1] or 0, k[2] or 0))


def memory_growth(train: dict[str, Any]) -> int | None:
    """How far training grew the process above its size when the job began (CPU, ``job_peak_rss``); None
    where the job has no start figure (on a GPU, or without the kernel's peak reset)."""
    peak, at_start = _number(train.get("peak_memory_bytes")), _number(train.get("memory_at_start_bytes"))
    return None if peak is None or at_start is None else int(peak - at_start)


def _mib(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number / 2**20:,.0f}"


def _kib(value: Any, digits: int = 1) -> str:
    number = _number(value)
    return "-" if number is None else f"{number / 1024:,.{digits}f}"


def _status(job: dict[str, Any]) -> str:
    status = _text(job.get("status"), "unknown")
    return status if status == "ok" or not job.get("stage") else f"{status} ({job['stage']})"


@dataclass
class Table:
    """A titled table of display strings, rendered by both the Markdown and the HTML report."""

    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # column indexes to right-align
    classes: list[str] = field(default_factory=list)  # per-row CSS class (HTML only), e.g. the status
    footnote: str | None = None  # a line under the table, where its renderer shows one

    def __bool__(self) -> bool:
        return bool(self.rows)


def _speedup_text(summed: dict[str, Any]) -> str:
    """A :func:`summary_rows` row's ONNX Runtime speed-up over eager PyTorch: ``1.95x``, starred when it does
    not repeat, ``-`` when there is none."""
    return (_fmt(summed["ort_speedup"], ".2f") + ("x" if summed["ort_speedup"] else "")
            + (UNSTABLE_MARK if summed["ort_speedup_unstable"] else ""))


def results_table(results: dict[str, Any]) -> Table:
    """The comparison table: one row per job with accuracy, size, p50/p99 per batch and threads, training cost."""
    joined = is_joined(results)
    keys = latency_keys(results)
    providers = {k[0] for k in keys}
    headers = ["model", "dataset"] + (["run"] if joined else []) + [
        "settings", "status", "params", "MFLOPs", "accuracy PyTorch", "accuracy ORT", "max |diff|", "ONNX KiB",
        "activations KiB"]
    for provider, batch, threads in keys:
        where = "" if providers == {CPU} else f"{provider_short(provider)} "
        headers.append(f"{where}b{_text(batch, '?')} t{_text(threads, '?')} p50 / p99 ms")
    summary = summary_rows(results)
    eager = any(r["ort_speedup"] is not None for r in summary)  # a run with --no-torch-latency has no such figure
    headers += (["ORT vs eager"] if eager else []) + ["train s", "epochs", "peak memory MiB"]
    rows, classes = [], []
    for job, summed in zip(results.get("jobs", []), summary):
        row = [_text(job.get("model")), _text(job.get("dataset"))] + ([_text(job.get("run_id"))] if joined else [])
        row += [point_text(job.get("point")) or "-", _status(job), _fmt(job.get("params"), ","),
                mflops(job.get("flops")),
                _fmt(_number(_get(job, "metrics", "accuracy")), ".4f"),
                _fmt(_number(_get(job, "onnx", "metrics", "accuracy")), ".4f"),
                _fmt(_number(_get(job, "onnx", "max_abs_diff")), ".1e"), _kib(_get(job, "onnx", "bytes")),
                _kib(_get(job, "onnx", "activation_bytes"))]
        for provider, batch, threads in keys:
            hit = pick_latency(job, provider=provider, batch_size=batch, threads=threads)
            row.append("-" if hit is None else f"{p50_text(hit)} / {ms_text(_number(hit.get('p99_ms')))}")
        if eager:
            row.append(_speedup_text(summed))
        row += [seconds_text(_number(_get(job, "train", "seconds"))), _fmt(_get(job, "train", "epochs")),
                _mib(_get(job, "train", "peak_memory_bytes"))]
        rows.append(row)
        classes.append(str(job.get("status")))
    first_numeric = headers.index("params")
    numeric = set(range(first_numeric, len(headers)))
    return Table(headers, rows, numeric, classes)


def metrics_table(results: dict[str, Any]) -> Table | None:
    """Every metric beyond accuracy (nll, macro-f1, a plugin's) per job: PyTorch / ONNX Runtime; None if none."""
    names = extra_metric_names(results)
    if not names:
        return None
    joined = is_joined(results)
    shown = [job for job in results.get("jobs", []) if job.get("status") != "skipped"]
    # A failed job's figures are those it reached before it stopped: said in words, not by a row's shade alone
    status = any(job.get("status") != "ok" for job in shown)
    headers = ["model", "dataset"] + (["run"] if joined else []) + ["settings"] + (["status"] if status else [])
    headers += [f"{name} PyTorch / ORT" for name in names]
    rows, classes = [], []
    for job in shown:
        row = [_text(job.get("model")), _text(job.get("dataset"))] + ([_text(job.get("run_id"))] if joined else [])
        row.append(point_text(job.get("point")) or "-")
        row += [_status(job)] if status else []
        for name in names:
            row.append(f"{_fmt(_number(_get(job, 'metrics', name)), '.4f')} / "
                       f"{_fmt(_number(_get(job, 'onnx', 'metrics', name)), '.4f')}")
        rows.append(row)
        classes.append(str(job.get("status")))
    first = len(headers) - len(names)
    return Table(headers, rows, set(range(first, len(headers))), classes)


def metric_failures(results: dict[str, Any]) -> list[str]:
    """Why metrics are null, one line per metric and reason: ``ece failed on 2 job(s) (PyTorch and ORT):
    ValueError: ...`` (a run's own ``metric_errors``; none in a run from before them)."""
    seen: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for job in results.get("jobs", []):
        for side, errors in (("PyTorch", job.get("metric_errors")), ("ORT", _get(job, "onnx", "metric_errors"))):
            if not isinstance(errors, dict):
                continue
            for name, reason in errors.items():
                jobs, sides = seen.setdefault((str(name), str(reason)), (set(), set()))
                jobs.add(str(job.get("id")))
                sides.add(side)
    lines = []
    for (name, reason), (jobs, sides) in seen.items():
        where = " and ".join(s for s in ("PyTorch", "ORT") if s in sides)
        lines.append(f"{name} failed on {len(jobs)} job(s) ({where}), so its value is empty there: {reason}")
    return lines


BUILTIN_METRIC_SPECS = {
    "macro-f1": {"plugin": "metrics", "higher_is_better": True, "description": "F1 score averaged over classes"},
    "nll": {"plugin": "metrics", "higher_is_better": False, "description": "mean cross-entropy of the targets"},
}
"""The built-in metrics as their plugin describes them, for a results.json from before ``metric_specs``."""


def metrics_note(results: dict[str, Any]) -> str:
    """What opens the Metrics table: each metric's description and direction, as the run recorded them
    (``metric_specs``; a results.json from before it names them only)."""
    specs = results.get("metric_specs") if isinstance(results.get("metric_specs"), dict) else {}
    said = []
    for name in extra_metric_names(results):
        spec = specs.get(name) if isinstance(specs.get(name), dict) else BUILTIN_METRIC_SPECS.get(name, {})
        text = str(spec.get("description") or "").replace("(lower is better)", "").strip().rstrip(".").strip()
        about = [text] if text else []  # the direction said once, as its own part, not in parentheses within
        if spec.get("higher_is_better") is False:
            about.append("lower is better")
        plugin = spec.get("plugin")
        if plugin and plugin != "metrics":
            about.append(f"plugin {plugin}")
        said.append(f"{name} ({'; '.join(about)})" if about else name)
    return f"Metrics beyond accuracy, on the same test samples as accuracy: {', '.join(said)}."


# -- sweeps: repeated seeds as mean and standard deviation ---------------------------------------------------

SEED_MEASURES: list[tuple[str, str, str]] = [
    # (key, heading, format)
    ("accuracy", "accuracy PyTorch", ".4f"),
    ("onnx_accuracy", "accuracy ORT", ".4f"),
    ("p50_ms", "p50 ms (ORT CPU, smallest batch, 1 thread)", ".3f"),
    ("train_seconds", "train s", ".1f"),
    ("time_to_target_s", "time to target s", ".2f"),
]


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
"""Student's t at 0.975 for 1 to 30 degrees of freedom: the two-sided 95 % interval's factor."""


def t975(df: int) -> float:
    """Student's t quantile at 0.975 for ``df`` degrees of freedom (the table to 30, then the Cornish-Fisher
    expansion around the normal's 1.96, within 0.001 of the exact value there)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    """mean, sample standard deviation (n-1; null for one value), n, min and max, and ``ci95``: the half-width
    of the mean's 95 % confidence interval, t(0.975, n-1) x std / sqrt(n) (null for one value)."""
    if not values:
        return {"mean": None, "std": None, "n": 0, "min": None, "max": None, "ci95": None}
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "min": min(values),
            "max": max(values), "ci95": None if std is None else t975(len(values) - 1) * std / math.sqrt(len(values))}


SEEDS_CSV = "seeds.csv"
"""Written beside results.csv when a run repeated a sweep point over seeds: the Seeds table's figures."""


def seeds_csv(results: dict[str, Any]) -> str | None:
    """One row per group of seeds (:func:`seed_summary`): who and how many, then for each of the Seeds
    table's measures its mean, std, ci95, n, min and max (``accuracy_mean`` ...), and ``p50_ms_unstable``: the
    seeds whose latency row was marked unstable (left out of the p50's figures unless none held); None without
    a group."""
    summaries = seed_summary(results)
    if not summaries:
        return None
    stats = ("mean", "std", "ci95", "n", "min", "max")
    fields = ["run_id", "model", "dataset", "settings", "seeds", "jobs", "ok"] + [
        f"{key}_{stat}" for key, _, _ in SEED_MEASURES for stat in stats] + ["p50_ms_unstable"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        row = {"run_id": s["run_id"] or results.get("run_id"), "model": s["model"], "dataset": s["dataset"],
               "settings": point_text(s["settings"]), "seeds": ",".join(map(str, s["seeds"])), "jobs": s["n"],
               "ok": s["n_ok"]}
        for key, _, _ in SEED_MEASURES:
            row.update({f"{key}_{stat}": s["measures"][key].get(stat) for stat in stats})
        row["p50_ms_unstable"] = s["p50_unstable"]
        writer.writerow(row)
    return buffer.getvalue()


SEED_GROUP_OPTIONS = ("epochs", "batch_size", "lr", "max_train_samples", "max_test_samples", "amp", "device",
                      "compile", "cuda_graphs", "seed")
"""Run options that change what a job trains on or how (with its model and sweep point, its recipe): the
seeds averaged together share them. A resume with other ``--epochs`` leaves them on the jobs before it."""


def _trained_as(job: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """The options of :data:`SEED_GROUP_OPTIONS` a job ran with (known for a failed job too), for grouping."""
    options = job_options(job, results)
    if not isinstance(options, dict):
        return {}
    return {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
            for k, v in options.items() if k in SEED_GROUP_OPTIONS}


def seedless_point(job: dict[str, Any]) -> dict[str, Any]:
    """A job's sweep point without its ``seed``: what the seeds of one sweep point share."""
    return {k: v for k, v in (job.get("point") or {}).items() if k != "seed"}


def seed_group(job: dict[str, Any]) -> tuple[Any, ...]:
    """What a job shares with the other seeds of its sweep point: run, model, dataset and the point's rest."""
    rest = tuple(sorted((k, repr(v)) for k, v in seedless_point(job).items()))
    return job.get("run_id"), job.get("model"), job.get("dataset"), rest


def seed_summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Sweep jobs that differ only in ``seed``, summarised as mean and standard deviation.

    Jobs are grouped by run, model, dataset and their sweep ``point`` without
    ``seed``; groups of two or more seeds are returned, in first-seen order,
    as ``{"run_id", "model", "dataset", "settings", "seeds", "n", "n_ok",
    "has_target", "measures": {key: {"mean", "std", "n", "min", "max"}},
    "p50_unstable", "p50_all_unstable"}`` over the jobs that finished
    (``status: ok``). ``std`` is the sample standard deviation; ``has_target``
    is whether their recipe had a target accuracy (so a missing time to
    target means it was not reached). The p50 leaves out the seeds whose
    latency row is marked unstable (``p50_unstable`` counts them), as
    compare's median does, unless none is stable (``p50_all_unstable``: the
    mean of them all).
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    trained: dict[tuple[Any, ...], dict[str, Any]] = {}
    for job in results.get("jobs", []):
        point = job.get("point")
        if not isinstance(point, dict) or "seed" not in point:
            continue
        how = _trained_as(job, results)  # a resume with other epochs: its seeds are not the same experiment's
        key = (*seed_group(job), repr(sorted(how.items())))
        groups.setdefault(key, []).append(job)
        trained[key] = how
    summaries = []
    for key, jobs in groups.items():
        run_id, model, dataset, _, _ = key
        if len(jobs) < 2:
            continue
        # what sets this group apart from others of the same sweep point, said beside its settings
        others = [trained[k] for k in groups if k[:4] == key[:4] and k != key]
        apart = {name: value for name, value in trained[key].items()
                 if any(other.get(name) != value for other in others)}
        ok = [j for j in jobs if j.get("status") == "ok"]
        values: dict[str, list[float]] = {key: [] for key, _, _ in SEED_MEASURES}
        unstable_p50: list[float] = []  # p50s of rows marked unstable: out of the mean while any seed's is stable
        for job in ok:
            latency = headline_latency(job)
            figures = {
                "accuracy": _get(job, "metrics", "accuracy"),
                "onnx_accuracy": _get(job, "onnx", "metrics", "accuracy"),
                "p50_ms": latency.get("p50_ms") if latency else None,
                "train_seconds": _get(job, "train", "seconds"),
                "time_to_target_s": _get(job, "train", "time_to_target_s"),
            }
            for key, value in figures.items():
                if _number(value) is not None:
                    kept = unstable_p50 if key == "p50_ms" and latency.get("stable") is False else values[key]
                    kept.append(float(value))
        all_unstable = bool(unstable_p50) and not values["p50_ms"]
        if all_unstable:  # no seed's row held: the mean of them all, starred
            values["p50_ms"] = unstable_p50
        summaries.append({
            "run_id": run_id, "model": model, "dataset": dataset,
            "settings": {**seedless_point(jobs[0]), **apart},
            "seeds": [j["point"]["seed"] for j in jobs], "n": len(jobs), "n_ok": len(ok),
            "has_target": any(_number(_get(j, "train", "target_accuracy")) is not None for j in ok),
            "measures": {key: _mean_std(vals) for key, vals in values.items()},
            "p50_unstable": len(unstable_p50), "p50_all_unstable": all_unstable,
        })
    return summaries


def format_mean_std(stat: dict[str, Any], spec: str) -> str:
    if stat.get("mean") is None:
        return "-"
    if stat.get("std") is None:
        return f"{format(stat['mean'], spec)} (n=1)"
    return f"{format(stat['mean'], spec)} ± {format(stat['std'], spec)}"


def _seed_cell(summary: dict[str, Any], key: str, spec: str) -> str:
    """mean ± std of one measure, saying how many jobs had it when some finished jobs lack it
    (a target some seeds did not reach), and 'not reached' when a targeted recipe's seeds never did."""
    stat, n_ok = summary["measures"][key], summary["n_ok"]
    if key == "time_to_target_s" and summary["has_target"] and not stat["n"]:
        return "not reached"
    if key == "train_seconds":  # a fast recipe's 0.04 s is not 0.0
        spec = _seconds_spec(stat.get("mean"))
    text = format_mean_std(stat, spec)
    if stat.get("n") and 1 < n_ok != stat["n"] and stat.get("std") is not None:
        text += f" (n={stat['n']} of {n_ok})"
    if key == "p50_ms" and summary.get("p50_all_unstable") and stat.get("mean") is not None:
        text += UNSTABLE_MARK
    return text


def seed_table(results: dict[str, Any]) -> Table:
    summaries = seed_summary(results)
    joined = is_joined(results)
    headers = ["model", "dataset"] + (["run"] if joined else []) + ["settings", "seeds", "ok"] + [
        heading for _, heading, _ in SEED_MEASURES]
    rows = []
    for s in summaries:
        rows.append([_text(s["model"]), _text(s["dataset"])] + ([_text(s["run_id"])] if joined else []) + [
            point_text(s["settings"]) or "-", seeds_text(s["seeds"], sep=", "), f"{s['n_ok']}/{s['n']}"]
            + [_seed_cell(s, key, spec) for key, _, spec in SEED_MEASURES])
    start = headers.index("ok")
    return Table(headers, rows, set(range(start, len(headers))))


# -- accuracy against cost ------------------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indexes of the points no other point beats: lower cost (x) and higher value (y).

    A point is on the front when every point with a cost at most its own has
    a lower value; of identical points the first is kept. Sorted by cost.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def candidates(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every deployable model (each finished job's fp32 ONNX and each of its variants) with its figures.

    Each is ``{"job", "label", "run", "dataset", "kind", "accuracy", "p50_ms", "batch_size", "threads",
    "bytes", "flops", "pareto"}``; ``run`` is the job's run in a joined report (else None); ``flops`` is the job's per sample (a variant does the same
    arithmetic in its own precision); ``pareto`` marks the accuracy/latency front within the dataset
    (accuracy is only comparable on one dataset). Figures that were not measured are None.
    """
    joined = is_joined(results)
    found = []
    for job in results.get("jobs", []):
        if job.get("status") != "ok":
            continue
        latency = headline_latency(job)
        found.append({
            "job": job.get("id"), "label": job_label(job, run=joined), "run": job.get("run_id") if joined else None,
            "dataset": job.get("dataset"), "kind": "fp32",
            "accuracy": accuracy_of(job), "p50_ms": _number(latency.get("p50_ms")) if latency else None,
            "batch_size": latency.get("batch_size") if latency else None,
            "threads": latency.get("threads") if latency else None, "bytes": _number(_get(job, "onnx", "bytes")),
            "flops": _number(job.get("flops")),
        })
        for variant in job.get("variants") or []:
            if not isinstance(variant, dict) or variant.get("variant") in (None, "fp32"):
                continue
            if _variant_failed(variant):
                continue
            vlat = headline_latency(variant)
            found.append({
                "job": job.get("id"), "label": f"{job_label(job, run=joined)} {variant.get('variant')}",
                "run": job.get("run_id") if joined else None, "dataset": job.get("dataset"),
                "kind": str(variant.get("variant")),
                "accuracy": _number(_get(variant, "metrics", "accuracy")),
                "p50_ms": _number(vlat.get("p50_ms")) if vlat else None,
                "batch_size": vlat.get("batch_size") if vlat else None,
                "threads": vlat.get("threads") if vlat else None, "bytes": _number(variant.get("bytes")),
                "flops": _number(job.get("flops")),
            })
    mark_pareto(found, "p50_ms")
    return found


def mark_pareto(cands: list[dict[str, Any]], cost: str) -> None:
    """Set each candidate's ``pareto``: on the front of lower ``cost`` (a key: ``p50_ms``, ``mflops``...)
    and higher accuracy among the candidates of its dataset that have both figures."""
    for c in cands:
        c["pareto"] = False
    for dataset in dict.fromkeys(c["dataset"] for c in cands):
        measured = [c for c in cands if c["dataset"] == dataset and c["accuracy"] is not None
                    and c[cost] is not None]
        for i in pareto_front([(c[cost], c["accuracy"]) for c in measured]):
            measured[i]["pareto"] = True


def pareto_table(results: dict[str, Any]) -> Table:
    rows = [[_text(c["dataset"]), c["label"], _fmt(c["accuracy"], ".4f"), ms_text(c["p50_ms"]),
             f"b{_text(c['batch_size'], '?')} t{_text(c['threads'], '?')}", _kib(c["bytes"])]
            for c in sorted((c for c in candidates(results) if c["pareto"]),
                            key=lambda c: (str(c["dataset"]), c["p50_ms"]))]
    return Table(["dataset", "model", "accuracy", "p50 ms", "measured at", "ONNX KiB"], rows, {2, 3, 5})


COMPUTE_FRONT_NOTE = ("Accuracy/compute front (no other model of the same dataset is both more accurate and "
                      "fewer FLOPs per sample)")


def compute_candidates(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each finished job's fp32 export with its MFLOPs per sample (``mflops``) and its place on the
    accuracy/compute front per dataset (``pareto``); variants do the same arithmetic as their job."""
    cands = [{**c, "mflops": c["flops"] / 1e6 if c["flops"] else None}
             for c in candidates(results) if c["kind"] == "fp32"]
    mark_pareto(cands, "mflops")
    return cands


def compute_front_table(results: dict[str, Any]) -> Table:
    """The accuracy/compute front that the compute plot rings, in words: per dataset, the models no other
    model of it beats on both accuracy and FLOPs, fewest FLOPs first."""
    rows = [[_text(c["dataset"]), c["label"], _fmt(c["accuracy"], ".4f"), mflops(c["flops"]), _kib(c["bytes"])]
            for c in sorted((c for c in compute_candidates(results) if c["pareto"]),
                            key=lambda c: (str(c["dataset"]), c["mflops"]))]
    return Table(["dataset", "model", "accuracy", "MFLOPs", "ONNX KiB"], rows, {2, 3, 4})


# -- detail tables -------------------------------------------------------------------------------------------


def latency_table(results: dict[str, Any]) -> Table:
    """Every latency row of every job (ONNX Runtime and eager PyTorch)."""
    joined = is_joined(results)  # once: per row, it scanned every job again
    rows = []
    for job in results.get("jobs", []):
        for r in job.get("latency") or []:
            rows.append([job_label(job, run=joined), _text(job.get("dataset")),
                         _text(r.get("runtime")),
                         provider_short(r.get("provider")), _fmt(r.get("batch_size")), _fmt(r.get("threads")),
                         _fmt(r.get("runs")), p50_text(r, ".4f"),
                         _fmt(_number(r.get("p90_ms")), ".4f"), _fmt(_number(r.get("p99_ms")), ".4f"),
                         _fmt(_number(r.get("throughput_per_s")), ",.0f"),
                         _fmt(_number(r.get("session_ms")), ".1f"), _fmt(_number(r.get("first_call_ms")), ".3f")])
    headers = ["model", "dataset", "runtime", "provider", "batch", "threads", "runs", "p50 ms", "p90 ms", "p99 ms",
               "samples/s (batch / mean)", "session ms", "first call ms"]
    return Table(headers, rows, set(range(4, len(headers))))


def latency_notes(results: dict[str, Any]) -> list[str]:
    """Batch sizes a job's graph could not take (``latency_skipped``), and what a p50 marked unstable means."""
    notes = [f"{job_label(job, dataset=True)}: {note}" for job in results.get("jobs", [])
             for note in job.get("latency_skipped") or []]
    unstable = unstable_note(_shown_latency(results), run_remedy(results))
    return notes + ([unstable] if unstable else [])


def p50_text(row: dict[str, Any], spec: str | None = None) -> str:
    """A latency row's p50 (``ms_text``, or ``spec``), followed by :data:`UNSTABLE_MARK` when the row is
    marked unstable: its figures did not hold from the first half of its runs to the second, or a few slow
    calls pull up its mean (:func:`harness.latency.unstable_reasons`)."""
    value = _number(row.get("p50_ms"))
    text = ms_text(value) if spec is None else _fmt(value, spec)
    return text + (unstable_mark(row) if value is not None else "")


def _variant_failed(variant: dict[str, Any]) -> bool:
    return bool(variant.get("error")) or variant.get("status") not in (None, "ok")


def variants_table(results: dict[str, Any]) -> Table:
    """Each job's ONNX variants (int8, fp16...) next to its fp32 export.

    Latency is the variant's ONNX Runtime CPU row at the smallest batch and
    fewest threads, else its first ONNX Runtime row (fp16 is timed on GPU
    providers only); the speed-up is the variant runner's alternating A/B
    comparison (``vs_fp32``) when recorded, else fp32 p50 / variant p50 at
    the same setting. Accuracy drop is fp32 ONNX accuracy minus the variant's.
    """
    joined = is_joined(results)  # once: per row, it scanned every job again
    rows = []
    for job in results.get("jobs", []):
        variants = [v for v in job.get("variants") or [] if isinstance(v, dict)]
        if not variants:
            continue
        base_bytes = _number(_get(job, "onnx", "bytes"))
        fp32_acc = _number(_get(job, "onnx", "metrics", "accuracy"))
        for v in variants:
            lat = headline_latency(v) or next(
                (r for r in v.get("latency") or [] if r.get("runtime") == ORT), None)
            p50 = _number(lat.get("p50_ms")) if lat else None
            speedup = vs_fp32_speedup(v.get("vs_fp32"))
            unstable = _get(v, "vs_fp32", "stability") == "unstable"
            if speedup is None and lat is not None and p50:
                base = pick_latency(job, provider=lat.get("provider"), batch_size=lat.get("batch_size"),
                                    threads=lat.get("threads"))
                base_p50 = _number(base.get("p50_ms")) if base else None
                speedup = base_p50 / p50 if base_p50 else None
            size = _number(v.get("bytes"))
            v_acc = _number(_get(v, "metrics", "accuracy"))
            drop = fp32_acc - v_acc if fp32_acc is not None and v_acc is not None else _number(v.get("accuracy_drop"))
            status = v.get("status") or ("failed" if v.get("error") else "ok")
            notes = [str(v["error"])] if v.get("error") else [str(n) for n in (v.get("notes") or [])] + [
                str(n) for n in (v.get("latency_skipped") or [])]
            disagree = _sequential_disagrees(job, v, lat, p50, speedup)
            if disagree:
                notes.append(disagree)
            rows.append([
                job_label(job, run=joined), _text(job.get("dataset")), _text(v.get("variant")),
                str(status),
                _kib(size), _times(size / base_bytes if size and base_bytes else None),
                _kib(v.get("activation_bytes")), _fmt(v_acc, ".4f"),
                points(drop), ms_text(p50),
                "-" if lat is None else f"{provider_short(lat.get('provider'))} "
                                        f"b{_text(lat.get('batch_size'), '?')} t{_text(lat.get('threads'), '?')}",
                _times(speedup) + (" (unstable)" if unstable and speedup is not None else ""),
                _fmt(_number(_get(v, "cold_start", "ms")), ".1f"), _kib(_get(v, "cold_start", "rss_bytes"), 0),  # whole KiB
                squeeze("; ".join(notes)) or "-",
            ])
    headers = ["model", "dataset", "variant", "status", "ONNX KiB", "size vs fp32", "activations KiB",
               "accuracy ORT", "accuracy drop vs fp32 (points)", "p50 ms", "measured at", "speed-up vs fp32",
               "cold start ms", "RAM KiB", "note"]
    return Table(headers, rows, {4, 5, 6, 7, 8, 9, 11, 12, 13})


def _sequential_disagrees(job: dict[str, Any], variant: dict[str, Any], lat: dict[str, Any] | None,
                          p50: float | None, speedup: float | None) -> str | None:
    """A note when the variant's own p50, beside fp32's from a separate measurement, tells another story
    than the alternating rounds the speed-up comes from (by more than a quarter): the machine drifted
    between the two measurements, and the rounds' own p50s are the ones to read."""
    vs = variant.get("vs_fp32") if isinstance(variant.get("vs_fp32"), dict) else None
    if not vs or lat is None or not p50 or not speedup:
        return None
    if any(vs.get(key) not in (None, lat.get(key)) for key in ("provider", "batch_size", "threads")):
        return None  # the rounds ran at another setting: nothing to contradict
    base = pick_latency(job, provider=lat.get("provider"), batch_size=lat.get("batch_size"), threads=lat.get("threads"))
    base_p50 = _number(base.get("p50_ms")) if base else None
    a_p50, b_p50 = _number(vs.get("a_p50_ms")), _number(vs.get("b_p50_ms"))
    if not base_p50 or a_p50 is None or b_p50 is None or abs(base_p50 / p50 / speedup - 1) <= 0.25:
        return None
    if vs.get("stability") == "unstable":  # the speed-up is then the rounds' per-round median, not their p50s
        return (f"separate p50s {p50:.3f} vs fp32 {base_p50:.3f} ms disagree with the speed-up, the median of "
                f"the alternating rounds' per-round ratios (the rounds' own p50s, {a_p50:.3f} vs {b_p50:.3f} ms, "
                f"moved between rounds)")
    return (f"separate p50s {p50:.3f} vs fp32 {base_p50:.3f} ms disagree with the alternating rounds "
            f"({a_p50:.3f} vs {b_p50:.3f} ms), which the speed-up comes from")


REFERENCE_ACCURACY_KEYS = ("test_accuracy", "val_accuracy", "train_accuracy")
REFERENCE_OWN_COLUMNS = ("source", "params", "dataset", "train_minutes")


def _shown_reference(job: dict[str, Any]) -> dict[str, Any] | None:
    """The job's published figures when the reference table shows them (parameters or another figure)."""
    ref = job.get("reference")
    if not isinstance(ref, dict) or ("params" not in ref and not set(ref) - set(REFERENCE_OWN_COLUMNS)):
        return None
    return ref


def training_comparison(job: dict[str, Any], config: Any) -> tuple[float | None, str | None]:
    """The published training time over ours, and why it is not comparable (None when it is).

    Comparable only when the job trained on the dataset the seed published on, for the seed's epoch
    count (``reference["epochs"]``; without one, the recipe's own, not ``--epochs`` or a sweep's), with
    the recipe's batch size, on the whole training split (no ``--max-train-samples``). ``config`` is
    the options the job ran with (:func:`job_options`);
    without them (a hand-made document) the budget is unknown, and so not comparable. Returns
    ``(None, None)`` when either time is missing.
    """
    ref = job.get("reference") if isinstance(job.get("reference"), dict) else {}
    ours_s, their_min = _number(_get(job, "train", "seconds")), _number(ref.get("train_minutes"))
    if not ours_s or not their_min:
        return None, None
    reasons = budget_differences(job, config)
    if reasons:
        return None, "not comparable: " + ", ".join(reasons)
    return their_min * 60 / ours_s, None


def budget_differences(job: dict[str, Any], config: Any) -> list[str]:
    """How a job's training differs from the published run's (see :func:`training_comparison`), e.g.
    ``["1 of 20 epochs", "256 training samples", "synthetic"]``; empty when it matches."""
    ref = job.get("reference") if isinstance(job.get("reference"), dict) else {}
    reasons = []
    epochs, published = _get(job, "train", "epochs"), ref.get("epochs")
    point = job.get("point") or {}
    # What the job's options and sweep point changed in its model's recipe (runs since it was recorded);
    # an older run's record says only which options were given.
    changes = _get(job, "train", "recipe_changes")
    changes = changes if isinstance(changes, dict) else None
    if not isinstance(config, dict):
        reasons.append("run options not recorded")
    if isinstance(published, int):
        if epochs != published:
            reasons.append(f"{_text(epochs, '?')} of {published} epochs")
    elif changes is not None:
        if "epochs" in changes:
            reasons.append(f"{_epochs_text(epochs)}, not the recipe's {changes['epochs'][0]}")
    elif isinstance(config, dict) and (config.get("epochs") is not None or "epochs" in point):
        reasons.append(f"{_epochs_text(epochs)}, not the recipe's")
    if changes is not None:
        for key, (own, used) in changes.items():  # another batch size is another number of steps, etc.
            if key not in ("epochs", "target_accuracy"):  # the epochs above; a target only times training
                reasons.append(_change_text(key, own, used))
    else:
        batch = point.get("batch_size", config.get("batch_size") if isinstance(config, dict) else None)
        if batch is not None:
            reasons.append(f"batch size {batch}, not the recipe's")
        lr = point.get("lr", config.get("lr") if isinstance(config, dict) else None)
        if lr is not None:
            reasons.append(f"lr {lr:g}, not the recipe's" if isinstance(lr, (int, float)) else f"lr {lr}")
    recipe_fields = set(_get(job, "train", "recipe") or {}) | {"epochs", "batch_size", "lr", "schedule"}
    for key in sorted(set(point) - recipe_fields - {"seed"}):  # a build argument: another model
        reasons.append(f"{key}={point[key]} (a build argument)")
    cut = _cap_cut(config, "max_train_samples", _get(job, "train", "train_samples"),
                   _get(job, "train", "train_samples_available"), "training samples")
    if cut:
        reasons.append(cut)
    if ref.get("dataset") is None:
        reasons.append(DATASET_NOT_RECORDED)
    elif ref.get("dataset") != job.get("dataset"):
        reasons.append(f"{_text(job.get('dataset'))}, not {ref['dataset']}")
        other = _other_classes(job)
        if other:
            reasons.append(other)
    return reasons


def _epochs_text(epochs: Any) -> str:
    return "1 epoch" if epochs == 1 else f"{_text(epochs, '?')} epochs"


PUBLISHED_CLASSES = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10, "mnist3d": 10}
"""The classes of the datasets the built-in models' figures were published on."""


def _other_classes(job: dict[str, Any]) -> str | None:
    """``100 classes, not 10`` when the job's data have another number of classes than the dataset its model
    was published on (its output layer, and so its parameter count, differ with them); else None."""
    published = PUBLISHED_CLASSES.get(str(_get(job, "reference", "dataset")))
    classes = job.get("num_classes")
    if published is None or not isinstance(classes, int) or classes == published:
        return None
    return f"{classes} classes, not {published}"


DATASET_NOT_RECORDED = "published dataset not recorded"


def _change_text(key: str, own: Any, used: Any) -> str:
    """One recipe change as a reason: ``batch size 128, not the recipe's 32``, ``constant schedule, not the
    recipe's piecewise``."""
    if key == "schedule" and isinstance(own, dict) and isinstance(used, dict):
        if own.get("kind") != used.get("kind"):
            return f"{used.get('kind')} schedule, not the recipe's {own.get('kind')}"
        return "the schedule's rates scaled with the lr"
    def shown(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else "none" if value is None else str(value)
    return f"{key.replace('_', ' ')} {shown(used)}, not the recipe's {shown(own)}"


def comparability(job: dict[str, Any], config: Any) -> list[str]:
    """Why a job's figures, accuracy included, do not compare with its published ones: the training budget
    (:func:`budget_differences`) and a ``--max-test-samples`` cap; empty when they compare."""
    # the published dataset unrecorded makes a training time uncheckable; the accuracy is still the seed's
    reasons = [r for r in budget_differences(job, config) if r != DATASET_NOT_RECORDED]
    cut = _cap_cut(config, "max_test_samples", job.get("test_samples"), job.get("test_samples_available"),
                   "test samples")
    if cut:
        reasons.append(cut)
    return reasons


def _cap_cut(config: Any, option: str, used: Any, available: Any, what: str) -> str | None:
    """What a ``--max-*-samples`` cap left, as a reason (``256 of the dataset's 2,048 training samples``), or None when no
    cap was given or it cut nothing (at or above the split's size). An older record, without the split's
    size, is judged by the cap."""
    cap = config.get(option) if isinstance(config, dict) else None
    if cap is None:
        return None
    if isinstance(used, int) and isinstance(available, int):
        # "of the dataset's": the split's size here, not the published run's (a synthetic split read as such)
        return None if used >= available else f"{used:,} of the dataset's {available:,} {what}"
    return f"{_fmt(cap, ',')} {what}"


def _figure_text(value: Any) -> str:
    """A published figure: a float as published (up to 6 significant digits: 24.3, not 24.3000); a range the
    same whether a plugin's tuple or results.json's list (``[0.5, 0.6]``), so a rebuilt report matches the
    run's own."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_figure_text(v) for v in value) + "]"
    return _fmt(value, ".6g") if isinstance(value, float) else str(value)


def reference_table(results: dict[str, Any]) -> Table:
    """The seeds' published figures (``job["reference"]``) next to what this run measured."""
    joined = is_joined(results)  # once: per row, it scanned every job again
    rows = []
    for job in results.get("jobs", []):
        ref = _shown_reference(job)
        if ref is None:
            continue
        figures = {k: v for k, v in ref.items() if k not in REFERENCE_OWN_COLUMNS}
        ours_params = job.get("params")
        ref_params = ref.get("params")
        params_match = ("-" if not isinstance(ref_params, int) or not isinstance(ours_params, int)
                        else ("yes" if ref_params == ours_params else f"{ours_params - ref_params:+,}"))
        other_classes = _other_classes(job)
        if other_classes and params_match not in ("-", "yes"):  # another output layer, not another model
            params_match += f" ({other_classes})"
        published = ", ".join(f"{k}={_figure_text(v)}{_ours_beside(k, job)}" for k, v in figures.items())
        ours_s, their_min = _number(_get(job, "train", "seconds")), _number(ref.get("train_minutes"))
        speedup, _ = training_comparison(job, job_options(job, results))
        rows.append([
            job_label(job, run=joined), _text(job.get("dataset")), str(ref.get("dataset") or "-"),
            _fmt(ours_params, ","), _fmt(ref_params, ","), params_match,
            _fmt(_number(_get(job, "metrics", "accuracy")), ".4f"), _fmt(accuracy_of(job), ".4f"),
            seconds_text(ours_s), _fmt(their_min, "g"), "-" if speedup is None else f"{speedup:.1f}x",
            published or "-", str(ref.get("source") or "-"),
        ])
    headers = ["model", "our dataset", "published on", "params (ours)", "params (published)", "params match",
               "accuracy PyTorch", "accuracy ORT", "train s (ours)", "train min (published)",
               "training speed-up", "published figures", "source"]
    return Table(headers, rows, {3, 4, 6, 7, 8, 9, 10})


def _ours_beside(figure: str, job: dict[str, Any]) -> str:
    """Our own figure beside a published one that has no column: ``model_size_mb`` (the seeds' size of the
    float32 weights in MiB for two models, something larger for the third) next to our weights' size."""
    params = job.get("params")
    if figure == "model_size_mb" and isinstance(params, int) and not isinstance(params, bool):
        return f" (our float32 weights: {params * 4 / 2**20:.4g} MiB)"
    return ""


def job_options(job: dict[str, Any], results: dict[str, Any]) -> Any:
    """The run options a job ran with: ``trained_with`` when a resume changed them after it finished, else its
    run's (``run_config`` in a joined document, else ``config``)."""
    return job.get("trained_with") or job.get("run_config", results.get("config"))


def reference_notes(results: dict[str, Any]) -> list[str]:
    """Why a job's figures do not compare with its published ones (:func:`comparability`): its accuracy, and
    its training speed-up, shown as ``-``."""
    joined = is_joined(results)  # once: per row, it scanned every job again
    notes = []
    for job in results.get("jobs", []):
        if _shown_reference(job) is None:
            continue
        why = comparability(job, job_options(job, results))
        if why:
            notes.append(f"{job_label(job, dataset=True, run=joined)}: not comparable with the "
                         f"published figures: {', '.join(why)}")
    return notes


def shortened_note(results: dict[str, Any]) -> str | None:
    """One line under the terminal table when jobs with published figures ran differently from the published
    run: their accuracy is not the seed's to compare with (report.md lists each job's reasons)."""
    short = []  # each such job's reasons
    for job in results.get("jobs", []):
        if job.get("status") == "ok" and _shown_reference(job):
            why = comparability(job, job_options(job, results))
            if why:
                short.append(why)
    if not short:
        return None
    return (f"note: {len(short)} job(s) with published figures ran differently from the published run "
            f"({', '.join(short[0])}{' ...' if len(short) > 1 else ''}): their accuracy does not compare "
            "with the published one (report.md, 'Published reference figures')")


def failed_table(results: dict[str, Any]) -> Table:
    """Failed and skipped jobs with the stage and the one-line error."""
    joined = is_joined(results)  # once: per row, it scanned every job again
    rows = [[job_label(job, run=joined), _text(job.get("dataset")),
             _text(job.get("status"), "unknown"),
             str(job.get("stage") or "-"), squeeze(job.get("error") or "-")]
            for job in results.get("jobs", []) if job.get("status") != "ok"]
    return Table(["model", "dataset", "status", "stage", "error"], rows,
                 classes=[r[2] for r in rows])


def vs_fp32_speedup(vs: Any) -> float | None:
    """How many times faster a variant is than its fp32 export, from its alternating comparison ``vs`` (its
    ``vs_fp32``), by today's rule: where the rounds disagreed (``unstable``), 1 / their median ratio, the
    figure the edge table ranks by. A results.json from before that rule recorded 1 / ratio there, which
    results.csv copied while report.md recomputed."""
    if not isinstance(vs, dict):
        return None
    if vs.get("stability") == "unstable":
        from harness.latency import robust_ratio

        ratio, _ = robust_ratio(vs)
        return round(1.0 / ratio, 4) if ratio else None
    return _number(vs.get("speedup"))


def failed_heading(failed: Table) -> str:
    """The title of :func:`failed_table`'s section, for what it holds: a run whose only unfinished jobs were
    skipped (no dataset fits a model) has no failed job to show."""
    kinds = set(failed.classes)
    if "skipped" in kinds:
        return "Failed and skipped jobs" if kinds - {"skipped"} else "Skipped jobs"
    return "Failed jobs"


def _train_settings(train: dict[str, Any]) -> str:
    """The training-speed options a job ran with, e.g. ``bf16, CUDA graph``."""
    parts = []
    if train.get("amp"):
        parts.append(str(train["amp"]))
    elif train.get("amp_requested"):
        parts.append(amp_not_applied_reason(str(train["amp_requested"]), str(train.get("device") or "")))
    if train.get("channels_last"):
        parts.append("channels-last")
    if train.get("compile"):
        parts.append("compiled")
    elif train.get("compile_fallback"):
        parts.append(f"not compiled ({squeeze(train['compile_fallback'], 120)})")
    graphs = train.get("cuda_graphs")
    if isinstance(graphs, dict):
        parts.append("CUDA graph" if graphs.get("used") else f"no CUDA graph ({graphs.get('reason') or 'not used'})")
    return ", ".join(parts) or "eager"


def _eval_text(history: list[dict[str, Any]], split: Any) -> str:
    """The last epoch's evaluation accuracy and the split it scored: ``0.0762 val`` (a seed-003 model's
    validation split) is not the test accuracy of the results table."""
    value = _number(history[-1].get("eval_accuracy")) if history else None
    return "-" if value is None else f"{value:.4f}" + (f" {split}" if split in ("val", "test") else "")


def _best_text(history: list[dict[str, Any]]) -> str:
    """The best epoch's eval accuracy and its number (``0.9958 (14)``), what the seeds' sweep tables give;
    the first such epoch on a tie."""
    scored = [(value, r.get("epoch")) for r in history if (value := _number(r.get("eval_accuracy"))) is not None]
    if not scored:
        return "-"
    value, epoch = max(scored, key=lambda pair: pair[0])  # max keeps the first of equals
    return f"{value:.4f}" + (f" ({epoch})" if epoch is not None else "")


def training_table(results: dict[str, Any]) -> Table:
    """Training cost per job: device, speed options, time, time to the recipe's target accuracy."""
    joined = is_joined(results)
    headers = ["model", "dataset"] + (["run"] if joined else []) + [
        "settings", "device", "training options", "epochs", "train s", "s / epoch", "target", "time to target s",
        "final eval accuracy (split)", "best (epoch)", "peak memory MiB", "above start MiB", "job s"]
    rows = []
    for job in results.get("jobs", []):
        train = job.get("train")
        if not isinstance(train, dict):
            continue
        seconds, epochs = _number(train.get("seconds")), _number(train.get("epochs"))
        history = [r for r in train.get("history") or [] if isinstance(r, dict)]
        target = _number(train.get("target_accuracy"))
        reached = _number(train.get("time_to_target_s"))
        rows.append([_text(job.get("model")), _text(job.get("dataset"))]
                    + ([_text(job.get("run_id"))] if joined else [])
                    + [point_text(job.get("point")) or "-", str(train.get("device") or "-"), _train_settings(train),
                       _fmt(train.get("epochs")), _fmt(seconds, ".2f"),
                       _fmt(seconds / epochs if seconds is not None and epochs else None, ".2f"),
                       _fmt(target, ".4f"),  # a fraction, as every accuracy in the reports
                       _fmt(reached, ".2f") if reached is not None else ("not reached" if target is not None else "-"),
                       _eval_text(history, train.get("evaluated_on")), _best_text(history),
                       _mib(train.get("peak_memory_bytes")), _mib(memory_growth(train)),
                       _fmt(_number(job.get("seconds")), ".1f")])
    first = headers.index("epochs")
    return Table(headers, rows, set(range(first, len(headers))))


SEEDS_NOTE = ("Sweep jobs that differ only in seed; sample standard deviation over the seeds (n-1), "
              "finished jobs only. The p50 leaves out seeds whose latency row was marked unstable (n= says how "
              f"many remain); where none held, it is the mean of them all, marked {UNSTABLE_MARK}. seeds.csv has "
              "these figures with each mean's 95 % confidence interval.")
REFERENCE_NOTE = ("What the seed projects published for these models, next to this run: comparable only for a "
                  "job that trained on the published dataset for the published epochs at the recipe's batch size "
                  "on the whole training split and was tested on the whole test split; a note below names what "
                  "differs for each other job. Training speed-up: the published training time over ours, shown "
                  "only when comparable, otherwise '-'. The published figures keep the seed's own names: a "
                  "val_accuracy or train_accuracy is not our test accuracy beside it.")
LATENCY_NOTE = ("p50, p90 and p99 ms: the median, 90th and 99th percentile of the timed calls' latency, per batch. "
                "samples/s is the throughput at the mean latency (batch size / mean), not at the p50 next to it; "
                "results.json and results.csv have mean_ms. Session ms (ONNX Runtime) is the time to create the "
                "session: load the file from the OS cache, optimise the graph, set up the provider; first call ms "
                "is the first call at that batch size, before the warm-up (eager PyTorch: at the first thread count "
                "only). Both are one sample each, in the harness's own process, where a model loads faster than "
                "in a new one: the cold start a deployment pays is the edge table's 'cold ms' (cold_start in "
                "results.json).")
_TRAINING_REST = ("Time to target: training seconds at the end of the first epoch whose evaluation accuracy "
                  "reached the recipe's target. Above start: on a CPU, how far the process's resident set grew "
                  "above its size when the job began training (what the model, its activations, gradients and "
                  "optimizer state took). Job s: the whole job (data, training, export, checks, ONNX evaluation, "
                  "latency); results.json has it per stage in stage_seconds.")
TRAINING_NOTE = f"Training time excludes the per-epoch evaluation. {_TRAINING_REST}"


def training_note(results: dict[str, Any]) -> str:
    """:data:`TRAINING_NOTE`, saying also what was left out of the training time as warm-up when any job had one."""
    steps = sorted({int(n) for job in results.get("jobs", []) if isinstance(job.get("train"), dict)
                    for n in [_number(job["train"].get("warmup_steps"))] if n})
    if not steps:
        return TRAINING_NOTE
    return (f"Training time excludes the per-epoch evaluation and the warm-up: {' or '.join(map(str, steps))} "
            "untimed step(s) per batch size on a copy of the model (--warmup-steps; 2 by default on CUDA, none on "
            "the CPU), so one-time GPU costs such as cuDNN's autotuning do not land in whichever job runs first; "
            f"results.json has their time in train.warmup_s. {_TRAINING_REST}")


def history_table(job: dict[str, Any]) -> Table:
    """One job's training history, one row per epoch."""
    rows = []
    for rec in _get(job, "train", "history") or []:
        if not isinstance(rec, dict):
            continue
        rows.append([_fmt(rec.get("epoch")), _fmt(_number(rec.get("lr")), ".3g"),
                     _fmt(_number(rec.get("train_loss")), ".4f"), _fmt(_number(rec.get("train_accuracy")), ".4f"),
                     _fmt(_number(rec.get("eval_loss")), ".4f"), _fmt(_number(rec.get("eval_accuracy")), ".4f"),
                     _fmt(_number(rec.get("seconds")), ".1f")])
    evaluated = _get(job, "train", "evaluated_on") or "eval"
    return Table(["epoch", "learning rate", "train loss", "train accuracy", f"{evaluated} loss", f"{evaluated} accuracy",
                  "seconds"], rows, set(range(7)))


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_text(v) for v in value) or "-"
    return "-" if value is None else str(value)


ENV_VALUE_CHARS = 240
"""The most characters of one environment value the reports show: a provider's load error (a missing CUDA
library, on a machine without a GPU) runs to a paragraph; results.json keeps it whole."""


def environment_table(results: dict[str, Any]) -> Table:
    env = results.get("environment") or {}

    def shown(value: Any) -> str:
        text = _value_text(value)
        return text if len(text) <= ENV_VALUE_CHARS else squeeze(text, ENV_VALUE_CHARS) + " (whole in results.json)"

    rows = [[str(k), shown(v)] for k, v in env.items()] if isinstance(env, dict) else []
    return Table(["key", "value"], rows)


CONFIG_KEYS = ("epochs", "batch_size", "lr", "device", "max_train_samples", "max_test_samples", "batch_sizes",
               "threads", "providers", "seed", "variants", "exporter", "amp", "executor", "profile")


def config_table(results: dict[str, Any]) -> Table:
    """The options the run was started with (from ``results["config"]``), sweep grid size included."""
    config = results.get("config")
    if not isinstance(config, dict):
        return Table(["option", "value"], [])
    # what the run selected ("all" where no name narrowed it), so the command can be told from the report
    rows = [[k, "all" if config.get(k) is None else _value_text(config[k])] for k in ("plugins", "models", "datasets")
            if k in config]
    rows += [[k, _value_text(config[k])] for k in CONFIG_KEYS if config.get(k) is not None]
    from harness.edge import Question
    from harness.latency import settings_name

    if settings_name(config.get("latency")) == "--quick":
        rows.append(["latency", "--quick: short measurements for smoke tests (noisier figures)"])
    question = Question.from_config(config)
    reasked = isinstance(results.get("edge_reasked"), str)  # by harness report's options, not the run's
    if question:
        rows.append(["edge question (asked by harness report)" if reasked else "edge question", question.text()])
    if reasked:
        rows.append(["edge question (the run's own)", results["edge_reasked"] or "none"])
    sweep = config.get("sweep")
    if isinstance(sweep, list) and any(sweep):
        keys = sorted({k for p in sweep if isinstance(p, dict) for k in p})
        rows.append(["sweep", f"{len(sweep)} points over {', '.join(keys)}"])
    rows += [["resumed with changes", text] for text in resume_changes(results)]
    return Table(["option", "value"], rows)


def resume_changes(results: dict[str, Any]) -> list[str]:
    """For each resume that changed the run's options: ``max_train_samples 2000 -> 1000 (11 job(s) before
    it ran with the earlier options)``. The options shown above are the last ones."""
    befores = [r["config_before"] for r in results.get("resumed") or []
               if isinstance(r, dict) and isinstance(r.get("config_before"), dict)]
    if not befores or not isinstance(results.get("config"), dict):
        return []
    def shown(key: str, value: Any) -> str:
        return "all" if value is None and key in ("models", "datasets", "plugins") else _value_text(value)

    texts = []
    for before, after in zip(befores, [*befores[1:], results["config"]]):
        keys = [k for k in (*CONFIG_KEYS, "models", "datasets", "plugins", "sweep")
                if before.get(k) != after.get(k)]
        if not keys:
            continue
        changes = "; ".join(
            f"{k} {shown(k, before.get(k))} -> {shown(k, after.get(k))}" if k != "sweep"
            else f"sweep {len(before.get(k) or [])} -> {len(after.get(k) or [])} points" for k in keys)
        earlier = sum(1 for job in results.get("jobs", []) if job.get("trained_with") == before)
        texts.append(f"{changes} ({earlier} job(s) ran with the earlier options)")
    return texts


ENVIRONMENT_FACTS = ("cpu", "cpu_count", "gpu", "torch", "onnxruntime", "onnx")
"""The environment keys a report's first line names (a joined report says which of them its runs differ in)."""


def header_facts(results: dict[str, Any], run_dir: "str | Path | None" = None) -> list[str]:
    """Short sentences for the top of a report: what ran where, and how many jobs finished (and, when the
    run set out to run jobs that have no row, which: ``planned_jobs``, ``interrupted``, with the command
    that finishes them: see :func:`resume_command` for ``run_dir``)."""
    env = results.get("environment") or {}
    jobs = results.get("jobs", [])
    counts = {s: sum(1 for j in jobs if j.get("status") == s) for s in ("ok", "failed", "skipped")}
    unknown = len(jobs) - sum(counts.values())
    parts = [r for r in results.get("joined_runs") or [] if isinstance(r, dict)]
    created = sorted(str(r["created"]) for r in parts if r.get("created"))
    when = (f"Runs created {created[0]} to {created[-1]}" if len(set(created)) > 1
            else f"Created {_text(results.get('created'), 'unknown')}")
    facts = [
        f"{when} on {_text(env.get('cpu'), '?')} "
        f"({_text(env.get('cpu_count'), '?')} cores)"
        + (f", GPU {env['gpu']}" if env.get("gpu") else "")
        + f"; torch {_text(env.get('torch'), '?')}, onnxruntime {_text(env.get('onnxruntime'), '?')}, "
        f"onnx {_text(env.get('onnx'), '?')}.",
        f"{len(jobs)} job(s): {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped"
        + (f", {unknown} unknown" if unknown else "") + ".",
    ]
    missing = not_run(results)
    if missing:
        facts[-1] = facts[-1][:-1] + "; " + not_run_text(results, missing, run_dir)
    sources = data_sources(results)
    if sources:
        facts.append("Data: " + "; ".join(sources) + ".")
    if isinstance(results.get("edge_reasked"), str):
        facts.append(f"The Edge deployment tables answer the question given to harness report; the run itself "
                     f"asked: {results['edge_reasked'] or 'nothing'}.")
    from harness.edge import SEE_TABLE, edge_answers

    # the answer a deployer opens the report for, at the top as well as in its section further down
    facts += [f"{answer.replace(SEE_TABLE, '')} (Edge deployment below)." for answer in edge_answers(results)]
    runs = list(dict.fromkeys(j.get("run_id") for j in jobs if j.get("run_id")))
    if len(runs) > 1:
        differ = [key for key in ENVIRONMENT_FACTS
                  if len({str((r.get("environment") or {}).get(key)) for r in parts}) > 1]
        facts.append(f"Joins {len(runs)} runs: {', '.join(map(str, runs))} (the environment shown is the first "
                     f"run's{'; the runs differ in ' + ', '.join(differ) if differ else ''}).")
    return facts


def data_sources(results: dict[str, Any]) -> list[str]:
    """Where each dataset's samples came from (the jobs' ``data``: folder, download, or a stand-in)."""
    return [text for text, _ in _sources(results).values()]


def _sources(results: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """dataset -> (what its samples were and where they came from, whether that is a stand-in for the data
    named): one sample's shape and the classes (``input_shape``, ``num_classes``), then the first job's
    ``data`` that says where, else the plugin that registered the dataset (``plugins``: a third party's
    dataset whose ``Splits.info`` names no ``source`` was left out). Datasets of results.json files from
    before any of these were recorded are not listed."""
    sizes: dict[str, str] = {}
    wheres: dict[str, tuple[str, bool]] = {}
    owners: dict[str, str] = {}
    for job in results.get("jobs", []):
        name = str(job.get("dataset"))
        shape, classes = _shape_text(job.get("input_shape")), job.get("num_classes")
        if name not in sizes and shape:
            sizes[name] = f"{shape}, {classes} classes" if isinstance(classes, int) else shape
        data = job.get("data")
        if name not in wheres and isinstance(data, dict) and data.get("source"):
            source = str(data["source"])
            # a folder or a dataset it came from; a made-up one says how ("generated in memory")
            text = f" {'' if source.startswith('generated') else 'from '}{_text(source)}"
            if data.get("origin"):
                text += f" ({data['origin']})"
            if data.get("mnist_unavailable"):  # mnist3d voxelised Fashion-MNIST: say it loudly
                text += " INSTEAD OF MNIST, which was not found"
            wheres[name] = (text, bool(data.get("mnist_unavailable")))
        owner = _get(job, "plugins", "dataset")
        if (name not in owners and isinstance(owner, dict) and owner.get("plugin")
                and owner.get("distribution") != "harness"):  # a built-in one says where from in its data
            made = " ".join(_text(owner[k]) for k in ("distribution", "version") if owner.get(k))
            owners[name] = f" from the {_text(owner['plugin'])} plugin" + (f" ({made})" if made else "")
    found = {}
    for name in dict.fromkeys(str(job.get("dataset")) for job in results.get("jobs", [])):  # as the jobs came
        if name not in wheres and name not in sizes and name not in owners:
            continue
        where, stand_in = wheres.get(name) or (owners.get(name, ""), False)
        found[name] = (_text(name) + (f" ({sizes[name]})" if name in sizes else "") + where, stand_in)
    return found


NOT_RUN_LISTED = 20  # ids named in the summary line; the rest are counted


def not_run(results: dict[str, Any]) -> list[str]:
    """The ids in ``planned_jobs`` that have no row in ``jobs`` (an interrupted run); empty without the key."""
    planned = results.get("planned_jobs")
    if not isinstance(planned, list):
        return []
    ran = {job.get("id") for job in results.get("jobs", [])}
    return [str(job_id) for job_id in dict.fromkeys(planned) if job_id not in ran]


def resume_command(results: dict[str, Any], run_dir: "str | Path | None" = None) -> str:
    """``harness run --resume --run-id ID --out OUT``: what finishes the run ``results`` holds. ``run_dir``:
    the run's folder where it is now, whose name and place the command takes (a folder moved or copied,
    a CI artifact downloaded, is not where its results.json says it was written); else the recorded ones."""
    if results.get("snapshot_of"):  # a report of one run written elsewhere (harness report RUN --out DIR)
        run_dir = results["snapshot_of"]
    elif results.get("joined_runs"):
        run_dir = None
    if run_dir is not None:
        return f"harness run --resume --run-id {Path(run_dir).name} --out {Path(run_dir).parent}"
    config = results.get("config") if isinstance(results.get("config"), dict) else {}
    command = f"harness run --resume --run-id {_text(results.get('run_id'), 'RUN_ID')}"
    return command + (f" --out {config['out']}" if config.get("out") else "")


def not_run_text(results: dict[str, Any], missing: list[str], run_dir: "str | Path | None" = None) -> str:
    """``2 of 3 planned not run (interrupted; continue with ...): a, b.``"""
    planned = len(dict.fromkeys(results.get("planned_jobs") or []))
    listed = ", ".join(missing[:NOT_RUN_LISTED])
    if len(missing) > NOT_RUN_LISTED:
        listed += f" and {len(missing) - NOT_RUN_LISTED} more (planned_jobs in results.json)"
    if results.get("running_pid"):  # a snapshot of a run still going: nothing to resume
        return (f"{len(missing)} of {planned} planned not run yet (the run was still running, pid "
                f"{results['running_pid']}, when this report was made): {listed}.")
    command = resume_command(results, run_dir)
    why = "interrupted" if results.get("interrupted") else (
        "left out when the run was resumed, or it stopped before them" if results.get("resumed")
        else "the run stopped before them")
    return f"{len(missing)} of {planned} planned not run ({why}; continue with {command}): {listed}."


NEAR_CHANCE = 0.1
"""A job is near chance when its accuracy is within this fraction of the way from chance (1 / classes) to
1: 0.19 of 10 classes, 0.55 of 2."""


def near_chance(results: dict[str, Any]) -> str | None:
    """A line naming the finished jobs whose exported model scores near chance (an untrained model: a smoke
    run's 1 epoch on 512 samples), whose accuracy then says nothing of the model, or None. Jobs of runs
    from before ``num_classes`` was recorded are not judged."""
    joined = is_joined(results)  # once: per row, it scanned every job again
    low = []
    for job in results.get("jobs", []):
        classes = job.get("num_classes")
        accuracy = _number(_get(job, "onnx", "metrics", "accuracy"))
        if job.get("status") != "ok" or not isinstance(classes, int) or classes < 2 or accuracy is None:
            continue
        chance = 1 / classes
        if accuracy < chance + NEAR_CHANCE * (1 - chance):
            low.append(job_label(job, dataset=True, run=joined))
    if not low:
        return None
    shown = first_five(low)
    return (f"{len(low)} job(s) score near chance (1 / the number of classes), so their accuracy says nothing "
            f"of the model yet (too little training: --epochs, --max-train-samples); their latency and size "
            f"stand: {shown}")


def adapted_note(results: dict[str, Any]) -> str | None:
    """A line per kind of channel adaptation naming the finished jobs whose exported graph adapts the dataset's
    inputs (``input_adapted``: a gray model on RGB data sees the colours averaged to gray), or None: the
    terminal table put such a job beside models that saw the colours without a word (report.md listed them)."""
    joined = is_joined(results)
    kinds: dict[str, list[str]] = {}
    for job in results.get("jobs", []):
        if job.get("status") == "ok" and isinstance(job.get("input_adapted"), str):
            kinds.setdefault(job["input_adapted"], []).append(job_label(job, dataset=True, run=joined))
    if not kinds:
        return None
    return "; ".join(f"{len(labels)} job(s) see the data adapted inside the exported graph, {how}: "
                     + first_five(labels) for how, labels in kinds.items())


def results_note(results: dict[str, Any]) -> str:
    """The note under the reports' results table: :data:`TABLE_NOTE`, and what a starred speed-up means
    when one is starred."""
    starred = any(r["ort_speedup_unstable"] for r in summary_rows(results))
    # the p50 cells' stars, explained here too: the latency section's note comes far below
    unstable = unstable_note(_shown_latency(results), run_remedy(results))
    low = near_chance(results)
    return (TABLE_NOTE + (f" {unstable}." if unstable else "") + (f" {RATIO_UNSTABLE_NOTE}." if starred else "")
            + (f" {low}." if low else ""))


TABLE_NOTE = (
    "Accuracy is on the test split (PyTorch: the trained model; ORT: the exported ONNX model in ONNX Runtime). "
    "Latency is per batch in ONNX Runtime (b: batch size, t: intra-op threads; CPU provider unless named), "
    "median (p50) and 99th percentile. ORT vs eager: the speed-up of the export, eager PyTorch's time over ONNX Runtime's on the CPU at "
    "the smallest batch size timed, on 1 thread where timed (above 1x, the exported model is faster), from "
    "alternating rounds of its own where recorded, so it need not equal the ratio of the latency rows, which "
    "were timed one after the other. MFLOPs: millions of floating-point operations of one forward pass per "
    "sample, counting convolutions, matrix products, attention and recurrent layers (2 per multiply-add; element-wise work, "
    "normalisation and pooling not counted). Activations: the ONNX model's peak activation memory at batch 1, "
    "estimated from the graph (the most bytes of intermediate tensors alive at once when its nodes run in "
    "order, each freed after its last reader; weights are the file size). Peak memory is training's: CUDA max "
    "allocated on a GPU; on a CPU the peak resident set size of the process while this job trained (Linux; "
    "elsewhere the process's peak so far), which includes the Python process and the loaded data."
)

VARIANTS_NOTE = (
    "Each job's ONNX variants next to its fp32 export. Speed-up: the alternating A/B timing against fp32 "
    "when the variant stage recorded one, else fp32 p50 / variant p50 at the same setting; accuracy drop: "
    "fp32 ONNX accuracy minus the variant's, in percentage points. Activations: each variant's own; for "
    "int8-static (a QDQ graph), where its record says activation_basis onnxruntime-fused, as ONNX Runtime "
    "runs it, each quantise-operator-dequantise group fused into one integer operator, so only operators "
    "without an integer kernel hold float tensors (else as stored, float tensors between the pairs)."
)

PLOT_TITLES = {
    "accuracy_vs_latency": "Accuracy vs latency",
    "accuracy_vs_size": "Accuracy vs ONNX size",
    "accuracy_vs_flops": "Accuracy vs compute",
    "latency_vs_batch": "Latency per batch size",
}


# -- Markdown -------------------------------------------------------------------------------------------------


def _md_cell(text: Any) -> str:
    """A Markdown table cell: one line, pipes and markup characters escaped (names come from plugins)."""
    text = squeeze(text)
    for char in ("\\", "|", "<", ">", "`", "*", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text


def md_table(table: Table) -> list[str]:
    align = ["---:" if i in table.numeric else "---" for i in range(len(table.headers))]
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return lines


EDGE_NOTE = ("Which model to ship: per model, the fastest variant (fp32, int8, ...) that meets the accuracy floor "
             "where one was asked, fastest qualifying model first, at batch 1 in ONNX Runtime on the CPU provider, ranked against float32 with alternating rounds where "
             "recorded. 'cold ms' is its cold start, its load and first answer in a new process (the median of a few, at "
             "the fewest threads measured), and 'RAM KiB' the resident memory that added at its peak (weights as "
             "ONNX Runtime holds them, its arena, the tensors; measured, where activations are an estimate). With "
             "budgets (p50 latency, size on disk, activation memory, cold start, memory), one within every budget "
             "comes "
             "first, and 'fits budget' names what a row is over. 'none' means no variant qualified; the note says "
             "why. Ask again with other figures: harness report RUN --accuracy-floor ... --size-budget ...")


NO_QUESTION = ("No accuracy floor or budget was asked, so every model's fastest variant is listed; ask with "
               "--accuracy-floor, --latency-budget-ms, --size-budget ... (harness run, or harness report on this run).")


def edge_lines(results: dict[str, Any]) -> list[str]:
    """What opens the edge section under its note: the terminal's one-line answer(s), or that nothing was
    asked."""
    from harness.edge import edge_answers

    return edge_answers(results) or [NO_QUESTION]


def deployment_tables(results: dict[str, Any]) -> list[tuple[str, Table]]:
    """The edge-deployment question as tables: batch 1 on 1 thread, and on all cores when measured.

    The accuracy floor and the budgets come from the run's options (``--accuracy-floor``,
    ``--latency-budget-ms``, ``--size-budget``, ``--activation-budget``).
    """
    from harness.edge import THREADS_MAX, Question, asked_groups, fits_text, qualifies, ratio_text, threads_title

    question = Question.from_config(results.get("config"))
    joined = is_joined(results)
    groups, per_run = asked_groups(results)
    tables = []
    for threads in (1, THREADS_MAX):
        judged = [(r, asked) for document, asked in groups for r in asked.table(document, 1, threads)
                  if r.get("candidates") or r.get("status") == "failed"]  # a failed job: said, not judged
        judged.sort(key=lambda pair: (not qualifies(pair[0]), pair[0].get("p50_ms") is None,
                                      pair[0].get("p50_ms") or 0.0))  # what to ship first; ties in job order
        rows = [r for r, _ in judged]
        per_run_settings = per_run and any(asked for _, asked in judged)
        if not any(r.get("candidates") for r in rows) or (
                threads == THREADS_MAX and all(r.get("threads") in (None, 1) for r in rows)):
            continue
        with_notes = any(r.get("note") for r in rows)
        settings = any(r.get("point") for r in rows)  # a sweep: which of its jobs each row is
        headers = ["model", "dataset"] + (["run"] if joined else []) + (["settings"] if settings else []) + [
            "variant", "accuracy", "drop vs fp32 (points)", "ONNX KiB", "activations KiB", "threads", "p50 ms",
            "p99 ms", "time vs fp32", "cold ms", "RAM KiB",
            "params", "MFLOPs"]
        first = len(headers) - 13
        if per_run_settings:
            headers += ["run asked", "fits"]
        elif question.budget:
            headers.append("fits budget")
        if with_notes:
            headers.append("note")
        table = Table(headers, [], numeric={first + i for i in range(1, 13)})
        for r, asked in judged:
            line = [_text(r.get("model")), _text(r.get("dataset"))] + ([_text(r.get("run_id"))] if joined else []) + (
                [point_text(r.get("point")) or "-"] if settings else []) + [
                    r.get("variant") or _failed_text(r) or "none",
                    _fmt(r.get("accuracy"), ".4f"), points(r.get("accuracy_drop")), _kib(r.get("bytes")),
                    _kib(r.get("activation_bytes")),
                    _fmt(r.get("threads")), p50_text(r, ".4f"), _fmt(r.get("p99_ms"), ".4f"), ratio_text(r),
                    _fmt(r.get("cold_ms"), ".1f"), _kib(r.get("rss_bytes"), 0), _fmt(r.get("params"), ","),
                    mflops(r.get("flops"))]
            if per_run_settings:
                line.append(asked.text() or "-")
            if per_run_settings or question.budget:
                line.append(fits_text(r))
            if with_notes:
                line.append(r.get("note") or "")
            table.rows.append(line)
            # measured but not what was asked ("miss"), or a job that failed and was not measured
            table.classes.append("ok" if qualifies(r) else "failed" if r.get("status") == "failed" else "miss")
        # The floor as a fraction, as the notes and the edge module read it (--accuracy-floor 99 means 0.99).
        caption = f"batch 1, {threads_title(rows, threads)}"
        if per_run_settings:
            caption += ", each run's own accuracy floor and budget"
        elif question:
            caption += f", {question.text()}"
        table.footnote = unstable_note([r for r in rows if r.get("p50_ms") is not None], run_remedy(results))
        tables.append((caption, table))
    return tables


def _failed_text(row: dict[str, Any]) -> str | None:
    """An edge row's variant cell for a job that failed: ``failed (onnx-eval)``; None for any other row."""
    if row.get("status") != "failed":
        return None
    return "failed" + (f" ({row['stage']})" if row.get("stage") else "")


def export_notes(results: dict[str, Any]) -> list[str]:
    """A line per job whose ONNX file is a TorchScript trace because the dynamo exporter failed, or whose
    trace the tracer doubted (``onnx.fallback_reason``, ``onnx.trace_warnings``), whose graph adapts the
    dataset's channels (``input_adapted``), or whose model gave the same logits for every test input
    (``constant_output``): the terminal said so once, the report keeps it beside the figures."""
    joined = is_joined(results)  # once: per row, it scanned every job again
    notes = []
    for job in results.get("jobs", []):
        onnx = job.get("onnx") if isinstance(job.get("onnx"), dict) else {}
        label = job_label(job, dataset=True, run=joined)
        if onnx.get("fallback_reason"):
            notes.append(f"{label}: the ONNX file is a TorchScript trace; the dynamo exporter failed: "
                         f"{squeeze(onnx['fallback_reason'], 300)}")
        if job.get("input_adapted"):
            notes.append(f"{label}: the ONNX graph takes the dataset's inputs and adapts them first: "
                         f"{job['input_adapted']}")
        if job.get("constant_output"):
            from harness.runner import CONSTANT_OUTPUT_TEXT

            notes.append(f"{label}: {CONSTANT_OUTPUT_TEXT}")
        warned = [w for w in onnx.get("trace_warnings") or [] if isinstance(w, str)]
        if warned:
            notes.append(f"{label}: the tracer warned ({len(warned)}): {squeeze(warned[0], 200)}"
                         + (" ..." if len(warned) > 1 else ""))
    left_out = unmatched_note(results)
    if left_out:
        notes.append(left_out)
    return notes


VARIANT_LOSS_POINTS = 2.0
"""A variant whose ONNX accuracy is this many points (or more) below its fp32 export's is named under the
terminal table: an int8 file that lost 23 points was only in the reports' Variants table."""


def variant_loss_note(results: dict[str, Any]) -> str | None:
    """A line naming the variants that lost :data:`VARIANT_LOSS_POINTS` points of accuracy or more against their
    fp32 export, worst first, or None."""
    joined = is_joined(results)
    lost = []
    for job in results.get("jobs", []):
        if job.get("status") != "ok":
            continue
        for variant in job.get("variants") or []:
            if not isinstance(variant, dict) or variant.get("variant") in (None, "fp32"):
                continue
            drop = _drop(_get(job, "onnx", "metrics", "accuracy"), _get(variant, "metrics", "accuracy"))
            if drop is not None and drop * 100 >= VARIANT_LOSS_POINTS:
                lost.append((drop, f"{job_label(job, dataset=True, run=joined)} {variant['variant']} "
                                   f"-{drop * 100:.1f} points"))
    if not lost:
        return None
    lost.sort(key=lambda entry: -entry[0])
    shown = first_five([text for _, text in lost])
    return (f"{len(lost)} variant(s) lose {VARIANT_LOSS_POINTS:g} points of accuracy or more against their fp32 "
            f"export: {shown}")


def unmatched_note(results: dict[str, Any]) -> str | None:
    """The models no chosen dataset fits (``unmatched_models``), each with what it takes, or None."""
    left_out = results.get("unmatched_models")
    if not isinstance(left_out, dict) or not left_out:
        return None
    return (f"{len(left_out)} model(s) fit none of the datasets chosen and were left out: "
            + "; ".join(f"{model} (takes {takes})" for model, takes in left_out.items()))


def _md_numbered(numbered: Sequence[tuple[int, str]] | None) -> list[str]:
    """A crowded plot's numbered points, whole, under its image (its key shortens them)."""
    if not numbered:
        return []
    return ["", f"The plot's {len(numbered)} numbered points:", "", "```"] + \
        [f"{n:>4}  {label}" for n, label in numbered] + ["```", ""]


def to_markdown(results: dict[str, Any], plots: dict[str, str] | None = None,
                numbered: dict[str, Sequence[tuple[int, str]]] | None = None,
                run_dir: "str | Path | None" = None) -> str:
    """report.md: the same sections as report.html, as text (``run_dir``: the folder it goes in, which an
    unfinished run's resume command names).

    ``plots`` maps plot keys (``accuracy_vs_latency``, ``accuracy_vs_size``, ``accuracy_vs_flops``,
    ``latency_vs_batch``, ``curves:<job id>``) to image paths relative to the
    report; they are linked where given. ``numbered`` maps a plot key to the plot's numbered points,
    listed under the image.
    """
    joined = is_joined(results)  # once: per row, it scanned every job again
    plots, numbered = plots or {}, numbered or {}
    lines = [f"# harness run `{_md_cell(_text(results.get('run_id')))}`", ""]
    lines += [" ".join(_md_cell(f) for f in header_facts(results, run_dir)), ""]
    lines += ["## Results", ""] + md_table(results_table(results)) + ["", _md_cell(results_note(results))]
    exported = export_notes(results)
    if exported:
        lines += [""] + [f"- {_md_cell(n)}" for n in exported]
    metrics = metrics_table(results)
    if metrics is not None:
        # the note quotes the metric plugins' names and descriptions: escaped as a table cell is
        lines += ["", "## Metrics", "", _md_cell(metrics_note(results)), ""] + md_table(metrics)
        failures = metric_failures(results)
        if failures:
            lines += [""] + [f"- {_md_cell(line)}" for line in failures]
    seeds = seed_table(results)
    if seeds:
        lines += ["", "## Seeds (mean ± standard deviation)", "", SEEDS_NOTE, ""] + md_table(seeds)
    lines += ["", "## Accuracy vs latency", ""]
    if plots.get("accuracy_vs_latency"):
        lines += [f"![accuracy vs latency]({plots['accuracy_vs_latency']})", ""]
        lines += _md_numbered(numbered.get("accuracy_vs_latency"))
    front = pareto_table(results)
    if front:
        lines += ["Pareto front (no other model of the same dataset is both faster and more accurate; "
                  "ONNX Runtime CPU, batch 1, 1 thread where measured):", ""] + md_table(front)
    else:
        lines += ["No finished job with both accuracy and latency."]
    if plots.get("accuracy_vs_size"):
        lines += ["", "## Accuracy vs ONNX size", "", f"![accuracy vs ONNX size]({plots['accuracy_vs_size']})"]
        lines += _md_numbered(numbered.get("accuracy_vs_size"))
    if plots.get("accuracy_vs_flops"):
        lines += ["", "## Accuracy vs compute", "", f"![accuracy vs compute]({plots['accuracy_vs_flops']})"]
        lines += _md_numbered(numbered.get("accuracy_vs_flops"))
        front = compute_front_table(results)
        if front:
            lines += ["", f"{COMPUTE_FRONT_NOTE}:", ""] + md_table(front)
    training = training_table(results)
    if training:
        lines += ["", "## Training", "", training_note(results), ""] + md_table(training)
    lines += ["", "## Training curves"]
    with_history = [(job, history) for job in results.get("jobs", []) for history in [history_table(job)] if history]
    drawn = sum(1 for job, _ in with_history if plots.get(f"curves:{job.get('id')}"))
    if plots and 0 < drawn < len(with_history):  # a sweep's curves: the most accurate jobs' are drawn
        lines += ["", f"Curves drawn for the {drawn} most accurate of the {len(with_history)} jobs trained for more "
                      "than one epoch; every job's per-epoch table follows."]
    for job, history in with_history:
        lines += ["", f"### {_md_cell(job_label(job, dataset=True, run=joined))}", ""]
        if plots.get(f"curves:{job.get('id')}"):
            lines += [f"![training curves]({plots['curves:' + str(job.get('id'))]})", ""]
        lines += md_table(history)
    latency = latency_table(results)
    if latency:
        lines += ["", "## Latency", ""]
        if plots.get("latency_vs_batch"):
            lines += [f"![latency per batch size]({plots['latency_vs_batch']})", ""]
        lines += md_table(latency) + ["", LATENCY_NOTE]
        notes = latency_notes(results)
        if notes:
            lines += [""] + [f"- {_md_cell(n)}" for n in notes]
    deployment = deployment_tables(results)
    if deployment:
        lines += ["", "## Edge deployment", "", EDGE_NOTE]
        lines += [""] + [f"**{_md_cell(line)}**" for line in edge_lines(results)]  # the terminal's answer
        for caption, table in deployment:
            lines += ["", f"### {caption}", ""] + md_table(table) + (["", _md_cell(table.footnote)] if table.footnote else [])
    variants = variants_table(results)
    if variants:
        lines += ["", "## Variants", "", VARIANTS_NOTE, ""] + md_table(variants)
    reference = reference_table(results)
    if reference:
        lines += ["", "## Published reference figures", "", REFERENCE_NOTE, ""] + md_table(reference)
        notes = reference_notes(results)
        if notes:
            lines += [""] + [f"- {_md_cell(n)}" for n in notes]
    failed = failed_table(results)
    if failed:
        lines += ["", f"## {failed_heading(failed)}", ""] + md_table(failed)
    if results.get("reporter_errors"):
        lines += ["", "## Reporter errors", ""] + [f"- {_md_cell(e)}" for e in results["reporter_errors"]]
    lines += ["", "## Environment", ""] + md_table(environment_table(results))
    config = config_table(results)
    if config:
        lines += ["", "### Run options", ""] + md_table(config)
    return "\n".join(lines) + "\n"


def write_reports(run_dir: Path, results: dict[str, Any]) -> list[Path]:
    """Write results.csv, report.md (with its plots in ``plots/``) and report.html into ``run_dir``.

    Returns the paths written. The plots are drawn once and used by both
    reports; a plot that cannot be drawn is left out and named in the HTML.
    A folder that refuses the files (read-only, full) is a :class:`HarnessError` naming the cause.
    """
    try:
        return _write_reports(Path(run_dir), results)
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise StorageError(f"cannot write the reports in {run_dir}: {exc.strerror or exc}{where}; results.json "
                           f"holds the figures: 'harness report {run_dir}' rebuilds them when the folder takes "
                           f"files again, 'harness report {run_dir} --out DIR' elsewhere now") from None


def _write_reports(run_dir: Path, results: dict[str, Any]) -> list[Path]:
    written = []
    atomic_write_text(run_dir / "results.csv", to_csv(results))
    written.append(run_dir / "results.csv")
    seeds = seeds_csv(results)
    if seeds is not None:
        atomic_write_text(run_dir / SEEDS_CSV, seeds)
        written.append(run_dir / SEEDS_CSV)
    elif (run_dir / SEEDS_CSV).is_file() and not (run_dir / SEEDS_CSV).is_symlink():
        (run_dir / SEEDS_CSV).unlink()  # an earlier build's, of seeds this document no longer holds
    from harness.report_html import render_plots, write_html

    plots = render_plots(results)
    links = {}
    for plot in plots:
        if plot.png is None:
            continue
        path = run_dir / "plots" / plot.file_name
        atomic_write_bytes(path, plot.png)
        links[plot.key] = f"plots/{plot.file_name}"
        written.append(path)
    # a plot an earlier build drew and this one does not (one batch size now, or a job gone): nothing links it.
    # Only in the run's own plots/ folder: one linked elsewhere (to a shared folder of pictures) keeps its files.
    own = run_dir / "plots"
    for stale in sorted(own.glob("*.png")) if own.is_dir() and not own.is_symlink() else []:
        if stale not in written and (stale.is_symlink() or stale.is_file()):
            stale.unlink()  # a link itself, never what it points to
    numbered = {plot.key: plot.numbered for plot in plots if plot.numbered}
    atomic_write_text(run_dir / "report.md", to_markdown(results, plots=links, numbered=numbered, run_dir=run_dir))
    written.append(run_dir / "report.md")
    written.append(write_html(run_dir, results, plots=plots))
    return written

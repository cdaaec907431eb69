"""Stage: reports built from ``results.json`` alone (terminal table, CSV, Markdown, HTML).

Everything here reads the results document, never the run's live objects,
so ``harness report RUN_DIR`` rebuilds exactly what the run wrote.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from harness.results import atomic_write_text

CSV_FIELDS = [
    "run_id", "id", "model", "dataset", "status", "stage", "error", "params", "reference_params",
    "accuracy", "onnx_accuracy", "reference_test_accuracy", "max_abs_diff", "onnx_bytes", "opset", "exporter",
    "train_seconds", "epochs", "device", "time_to_target_s", "peak_memory_bytes",
    "runtime", "provider", "batch_size", "threads", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
    "std_ms", "min_ms", "throughput_per_s",
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
    return min(rows, key=lambda r: (r.get("batch_size", 0), r.get("threads", 0)), default=None)


def largest_batch(job: dict[str, Any]) -> int | None:
    sizes = [r.get("batch_size") for r in job.get("latency") or [] if r.get("runtime") == "onnxruntime"]
    return max(sizes, default=None)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per job with the figures people compare (used by the table and Markdown)."""
    rows = []
    for job in results.get("jobs", []):
        small = pick_latency(job, threads=1) or pick_latency(job)
        big_bs = largest_batch(job)
        big = pick_latency(job, batch_size=big_bs, threads=1) if big_bs else None
        eager = pick_latency(job, runtime="torch", provider="cpu", batch_size=small.get("batch_size") if small else None,
                             threads=small.get("threads") if small else None)
        speedup = None
        if small and eager and small.get("p50_ms"):
            speedup = eager["p50_ms"] / small["p50_ms"]
        rows.append({
            "model": job.get("model"),
            "dataset": job.get("dataset"),
            "point": job.get("point"),
            "status": job.get("status") if job.get("status") == "ok" else f"{job.get('status')} ({job.get('stage')})",
            "params": job.get("params"),
            "accuracy": _get(job, "metrics", "accuracy"),
            "onnx_accuracy": _get(job, "onnx", "metrics", "accuracy"),
            "max_abs_diff": _get(job, "onnx", "max_abs_diff"),
            "onnx_kb": (_get(job, "onnx", "bytes") or 0) / 1024 if _get(job, "onnx", "bytes") else None,
            "p50_small": small.get("p50_ms") if small else None,
            "p99_small": small.get("p99_ms") if small else None,
            "small_bs": small.get("batch_size") if small else None,
            "p50_big": big.get("p50_ms") if big else None,
            "big_bs": big_bs,
            "throughput_big": big.get("throughput_per_s") if big else None,
            "ort_speedup": speedup,
            "train_seconds": _get(job, "train", "seconds"),
            "error": job.get("error"),
        })
    return rows


def comparison_table(results: dict[str, Any], tablefmt: str = "simple") -> str:
    """The comparison table printed at the end of a run."""
    from tabulate import tabulate

    summary = summary_rows(results)
    small_bs = next((r["small_bs"] for r in summary if r["small_bs"]), 1)
    big_bs = next((r["big_bs"] for r in summary if r["big_bs"]), None)
    headers = ["model", "dataset", "status", "params", "acc", "onnx acc", "max|diff|", "onnx KB",
               f"p50 ms b{small_bs}", f"p99 ms b{small_bs}"]
    if big_bs and big_bs != small_bs:
        headers += [f"p50 ms b{big_bs}", f"samples/s b{big_bs}"]
    headers += ["ORT vs eager", "train s"]
    table = []
    for r in summary:
        name = r["model"] + ("" if not r["point"] else " " + ",".join(f"{k}={v}" for k, v in r["point"].items()))
        line = [name, r["dataset"], r["status"], _fmt(r["params"], ","), _fmt(r["accuracy"], ".4f"),
                _fmt(r["onnx_accuracy"], ".4f"), _fmt(r["max_abs_diff"], ".1e"), _fmt(r["onnx_kb"], ".1f"),
                _fmt(r["p50_small"], ".3f"), _fmt(r["p99_small"], ".3f")]
        if big_bs and big_bs != small_bs:
            line += [_fmt(r["p50_big"], ".3f"), _fmt(r["throughput_big"], ",.0f")]
        line += [_fmt(r["ort_speedup"], ".2f") + ("x" if r["ort_speedup"] else ""), _fmt(r["train_seconds"], ".1f")]
        table.append(line)
    return tabulate(table, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def failures(results: dict[str, Any]) -> list[str]:
    return [f"{j.get('id')}: {j.get('stage')}: {j.get('error')}" for j in results.get("jobs", [])
            if j.get("status") == "failed"]


def csv_rows(results: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Long format: one row per job and latency measurement (a job without latency gets one row)."""
    for job in results.get("jobs", []):
        base = {
            "run_id": results.get("run_id"),
            "id": job.get("id"),
            "model": job.get("model"),
            "dataset": job.get("dataset"),
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
        }
        latency = job.get("latency") or []
        if not latency:
            yield base
        for row in latency:
            yield {**base, **{k: row.get(k) for k in CSV_FIELDS if k in row}}


def to_csv(results: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(results):
        writer.writerow(row)
    return buffer.getvalue()


def to_markdown(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    lines = [
        f"# harness run `{results.get('run_id')}`",
        "",
        f"Created {results.get('created')} on {env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores)"
        + (f", GPU {env['gpu']}" if env.get("gpu") else "")
        + f"; torch {env.get('torch', '?')}, onnxruntime {env.get('onnxruntime', '?')}, onnx {env.get('onnx', '?')}.",
        "",
        comparison_table(results, tablefmt="github"),
        "",
        "Accuracy is on the test split (`acc`: PyTorch, `onnx acc`: the exported model in ONNX Runtime). "
        "Latency is ONNX Runtime on the CPU provider with one intra-op thread unless stated; "
        "`ORT vs eager` is eager PyTorch p50 divided by ONNX Runtime p50 at the same batch size and threads.",
    ]
    failed = failures(results)
    if failed:
        lines += ["", "## Failed jobs", ""] + [f"- `{f}`" for f in failed]
    latency_lines = []
    for job in results.get("jobs", []):
        for r in job.get("latency") or []:
            latency_lines.append(
                f"| {job.get('model')} | {job.get('dataset')} | {r.get('runtime')} | {r.get('provider')} | "
                f"{r.get('batch_size')} | {r.get('threads')} | {r.get('runs')} | {_fmt(r.get('p50_ms'), '.4f')} | "
                f"{_fmt(r.get('p90_ms'), '.4f')} | {_fmt(r.get('p99_ms'), '.4f')} | "
                f"{_fmt(r.get('throughput_per_s'), ',.0f')} |"
            )
    if latency_lines:
        lines += ["", "## Latency", "",
                  "| model | dataset | runtime | provider | batch | threads | runs | p50 ms | p90 ms | p99 ms | samples/s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"] + latency_lines
    env_lines = [f"| {k} | {v} |" for k, v in env.items() if not isinstance(v, (dict, list))]
    if env_lines:
        lines += ["", "## Environment", "", "| key | value |", "|---|---|"] + env_lines
    return "\n".join(lines) + "\n"


def write_reports(run_dir: Path, results: dict[str, Any]) -> list[Path]:
    """Write results.csv, report.md and report.html into ``run_dir``; returns the paths written."""
    run_dir = Path(run_dir)
    written = []
    for name, text in (("results.csv", to_csv(results)), ("report.md", to_markdown(results))):
        atomic_write_text(run_dir / name, text)
        written.append(run_dir / name)
    try:
        from harness.report_html import write_html
    except ImportError:  # the HTML page is optional until its module exists
        return written
    written.append(write_html(run_dir, results))
    return written

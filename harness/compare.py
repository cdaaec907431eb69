"""``harness compare BASE NEW``: per job and metric, what changed, and whether it regressed.

Jobs are matched by id (``model@dataset`` plus sweep settings); latency rows
by runtime, provider, batch size and thread count. With a threshold ``PCT``,
a regression is a p50 latency that grew by more than ``PCT`` percent or an
accuracy (or other higher-is-better metric) that dropped by more than ``PCT``
percentage points; a job that was ``ok`` and now failed is a regression too.
Jobs present in only one run are listed, never an error.
"""

from __future__ import annotations

from typing import Any


def _latency_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row.get("runtime"), row.get("provider"), row.get("batch_size"), row.get("threads"))


def _change(old: float | None, new: float | None) -> dict[str, Any]:
    if old is None or new is None:
        return {"base": old, "new": new, "abs": None, "pct": None}
    pct = (new - old) / abs(old) * 100 if old else None
    return {"base": old, "new": new, "abs": new - old, "pct": pct}


def compare_runs(base: dict[str, Any], new: dict[str, Any], threshold: float | None = None) -> dict[str, Any]:
    """The comparison document (``jobs``, ``only_in_base``, ``only_in_new``, ``regressions``)."""
    base_jobs = {j.get("id"): j for j in base.get("jobs", [])}
    new_jobs = {j.get("id"): j for j in new.get("jobs", [])}
    jobs, regressions = [], []
    for job_id in [j for j in base_jobs if j in new_jobs]:
        old, cur = base_jobs[job_id], new_jobs[job_id]
        entry: dict[str, Any] = {"id": job_id, "status": [old.get("status"), cur.get("status")], "metrics": {},
                                 "latency": [], "bytes": None}
        if old.get("status") == "ok" and cur.get("status") != "ok":
            regressions.append(f"{job_id}: was ok, now {cur.get('status')} ({cur.get('error')})")
        for source in ("metrics", "onnx_metrics"):
            old_m = (old.get("onnx") or {}).get("metrics") if source == "onnx_metrics" else old.get("metrics")
            new_m = (cur.get("onnx") or {}).get("metrics") if source == "onnx_metrics" else cur.get("metrics")
            for name in sorted(set(old_m or {}) & set(new_m or {})):
                change = _change(old_m[name], new_m[name])
                label = name if source == "metrics" else f"onnx {name}"
                entry["metrics"][label] = change
                higher_better = name != "nll"
                if threshold is not None and change["abs"] is not None:
                    drop_points = (-change["abs"] if higher_better else change["abs"]) * 100
                    if name in ("accuracy", "macro-f1") and drop_points > threshold:
                        regressions.append(f"{job_id}: {label} dropped {drop_points:.2f} points "
                                           f"({change['base']:.4f} -> {change['new']:.4f})")
        old_rows = {_latency_key(r): r for r in old.get("latency") or []}
        for row in cur.get("latency") or []:
            key = _latency_key(row)
            if key not in old_rows:
                continue
            change = _change(old_rows[key].get("p50_ms"), row.get("p50_ms"))
            entry["latency"].append({"runtime": key[0], "provider": key[1], "batch_size": key[2], "threads": key[3],
                                     "p50_ms": change})
            if threshold is not None and change["pct"] is not None and change["pct"] > threshold:
                regressions.append(f"{job_id}: {key[0]}/{key[1]} batch {key[2]} threads {key[3]} p50 grew "
                                   f"{change['pct']:.1f}% ({change['base']:.4f} -> {change['new']:.4f} ms)")
        entry["bytes"] = _change((old.get("onnx") or {}).get("bytes"), (cur.get("onnx") or {}).get("bytes"))
        jobs.append(entry)
    return {
        "base": base.get("run_id"),
        "new": new.get("run_id"),
        "threshold_pct": threshold,
        "jobs": jobs,
        "only_in_base": sorted(set(base_jobs) - set(new_jobs)),
        "only_in_new": sorted(set(new_jobs) - set(base_jobs)),
        "regressions": regressions,
    }


def _pct(change: dict[str, Any]) -> str:
    if change is None or change.get("abs") is None:
        return "-"
    pct = f" ({change['pct']:+.1f}%)" if change.get("pct") is not None else ""
    return f"{change['base']:.4g} -> {change['new']:.4g}{pct}"


def format_comparison(comparison: dict[str, Any]) -> str:
    from tabulate import tabulate

    rows = []
    for job in comparison["jobs"]:
        for name, change in job["metrics"].items():
            rows.append([job["id"], name, _pct(change)])
        for lat in job["latency"]:
            rows.append([job["id"], f"p50 ms {lat['runtime']}/{lat['provider']} b{lat['batch_size']} t{lat['threads']}",
                         _pct(lat["p50_ms"])])
        if job["bytes"] and job["bytes"]["abs"] is not None:
            rows.append([job["id"], "onnx bytes", _pct(job["bytes"])])
    lines = [f"compare {comparison['base']} -> {comparison['new']}",
             tabulate(rows, headers=["job", "measure", "base -> new"], disable_numparse=True)]
    for label in ("only_in_base", "only_in_new"):
        if comparison[label]:
            lines.append(f"{label.replace('_', ' ')}: {', '.join(comparison[label])}")
    if comparison["regressions"]:
        lines.append(f"REGRESSIONS (threshold {comparison['threshold_pct']}):")
        lines += [f"  {r}" for r in comparison["regressions"]]
    elif comparison["threshold_pct"] is not None:
        lines.append(f"no regression beyond {comparison['threshold_pct']}")
    return "\n".join(lines)

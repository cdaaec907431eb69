"""Helpers shared by the tracker reporters (no third-party imports)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

PROVIDER_SHORT = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "trt"}
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]+")


def key(text: Any) -> str:
    """A metric or param name MLflow and TensorBoard accept (letters, digits, ``_-. /``)."""
    return _KEY_UNSAFE.sub("_", str(text)).strip() or "_"


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested dicts as ``(a.b.c, value)`` pairs; lists kept as values."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from flatten(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), data


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """A history record's numbers (``train_loss``, ``eval_accuracy``, ``lr``, ``seconds``...), without ``epoch``."""
    return {k: v for k, v in ((k, number(v)) for k, v in record.items() if k != "epoch") if v is not None}


def flag(value: Any) -> float | None:
    """A yes/no figure (``stable``) as 1/0, so a tracker can chart and filter it; None when not recorded."""
    return float(value) if isinstance(value, bool) else None


def final_scalars(row: dict[str, Any]) -> dict[str, float]:
    """A finished job's figures as flat names: ``test/accuracy``, ``onnx/accuracy``, ``latency/...``.

    A latency figure comes with its reliability, as the reports show it: each row's ``stable`` (1/0: its
    two halves agree within 5 % and a few slow calls do not pull its mean above 1.25x its p50) and ``drift_pct``,
    and the paired ORT-vs-eager speed-up (``ort_vs_eager/speedup``) with its ``stable`` and the spread of
    its rounds: a p50 that does not repeat reads otherwise as firmly as one that does."""
    out: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        value = number(value)
        if value is not None:
            out[key(name)] = value

    for name, value in (row.get("metrics") or {}).items():
        put(f"test/{name}", value)
    onnx = row.get("onnx") or {}
    for name, value in (onnx.get("metrics") or {}).items():
        put(f"onnx/{name}", value)
    put("onnx/max_abs_diff", onnx.get("max_abs_diff"))
    put("onnx/bytes", onnx.get("bytes"))
    put("onnx/activation_bytes", onnx.get("activation_bytes"))
    train = row.get("train") or {}
    put("train/seconds", train.get("seconds"))
    put("train/peak_memory_bytes", train.get("peak_memory_bytes"))
    put("train/time_to_target_s", train.get("time_to_target_s"))
    put("params", row.get("params"))
    put("flops", row.get("flops"))
    for r in row.get("latency") or []:
        where = f"{r.get('runtime')}_{PROVIDER_SHORT.get(r.get('provider'), r.get('provider'))}"
        at = f"latency/{where}/b{r.get('batch_size')}_t{r.get('threads')}"
        for stat in ("p50_ms", "p99_ms", "throughput_per_s", "drift_pct"):
            put(f"{at}/{stat}", r.get(stat))
        put(f"{at}/stable", flag(r.get("stable")))
    paired = row.get("ort_vs_eager")
    if isinstance(paired, dict):  # alternating rounds of ONNX Runtime and eager torch (harness.latency)
        put("ort_vs_eager/speedup", paired.get("speedup"))
        put("ort_vs_eager/stable", flag(paired.get("stable")))
        put("ort_vs_eager/spread_pct", paired.get("ratio_spread_pct"))
    for v in row.get("variants") or []:
        if not isinstance(v, dict):
            continue
        name = v.get("variant")
        for metric, value in (v.get("metrics") or {}).items():
            put(f"variant/{name}/{metric}", value)
        put(f"variant/{name}/bytes", v.get("bytes"))
        for r in v.get("latency") or []:
            if r.get("runtime") == "onnxruntime":
                put(f"variant/{name}/b{r.get('batch_size')}_t{r.get('threads')}/p50_ms", r.get("p50_ms"))
    return out


def job_facts(row: dict[str, Any]) -> dict[str, str]:
    """What a job's figures were measured with and that only its row knows (text, not numbers):
    ``evaluated_on`` (the split the per-epoch ``eval_*`` figures scored: ``val`` or ``test``),
    ``onnx.exporter`` and ``onnx.opset`` (as exported: ``--exporter auto`` picks one), and
    ``ort_vs_eager.stability`` (``stable``, ``noisy but consistent`` or ``unstable``)."""
    train = row.get("train") or {}
    onnx = row.get("onnx") or {}
    paired = row.get("ort_vs_eager") or {}
    facts = {"evaluated_on": train.get("evaluated_on") if isinstance(train, dict) else None,
             "onnx.exporter": onnx.get("exporter") if isinstance(onnx, dict) else None,
             "onnx.opset": onnx.get("opset") if isinstance(onnx, dict) else None,
             "ort_vs_eager.stability": paired.get("stability") if isinstance(paired, dict) else None}
    return {k: str(v) for k, v in facts.items() if v is not None}


def final_step(row: dict[str, Any], last_epoch: int | None) -> int:
    """The step a job's final figures go at: its last epoch; for a job that failed mid-training (no
    ``train.epochs`` in its row) the last epoch the tracker saw, so they sit beside that epoch, not at 0."""
    train = row.get("train")
    epochs = train.get("epochs") if isinstance(train, dict) else None
    if isinstance(epochs, int) and not isinstance(epochs, bool):
        return epochs
    return int(last_epoch or 0)

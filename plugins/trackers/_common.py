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


def final_scalars(row: dict[str, Any]) -> dict[str, float]:
    """A finished job's figures as flat names: ``test/accuracy``, ``onnx/accuracy``, ``latency/...``."""
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
    train = row.get("train") or {}
    put("train/seconds", train.get("seconds"))
    put("train/peak_memory_bytes", train.get("peak_memory_bytes"))
    put("train/time_to_target_s", train.get("time_to_target_s"))
    put("params", row.get("params"))
    put("flops", row.get("flops"))
    for r in row.get("latency") or []:
        where = f"{r.get('runtime')}_{PROVIDER_SHORT.get(r.get('provider'), r.get('provider'))}"
        for stat in ("p50_ms", "p99_ms", "throughput_per_s"):
            put(f"latency/{where}/b{r.get('batch_size')}_t{r.get('threads')}/{stat}", r.get(stat))
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

"""Text on one line: what error messages, table cells and progress lines are made of."""

from __future__ import annotations

from typing import Any


def squeeze(text: Any, limit: int | None = None) -> str:
    """``str(text)`` on one line (each run of whitespace, newlines included, becomes one space),
    cut to at most ``limit`` characters with a trailing ``...`` when it was longer.

    Exception texts from torch, ONNX Runtime or urllib often span several lines; the CLI, the
    progress line and the report tables show them on one.
    """
    flat = " ".join(str(text).split())
    if limit is not None and len(flat) > limit:
        return flat[: limit - 3] + "..." if limit > 3 else flat[: max(limit, 0)]
    return flat


def mflops(flops: Any) -> str:
    """FLOPs per sample as the tables show them, in millions: two decimals below 10 (small models differ
    there), one above; ``-`` when not a number."""
    if isinstance(flops, bool) or not isinstance(flops, (int, float)):
        return "-"
    return f"{flops / 1e6:.2f}" if flops < 1e7 else f"{flops / 1e6:,.1f}"

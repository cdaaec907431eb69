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


_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024 ** 2, "mib": 1024 ** 2, "mb": 1000 ** 2,
          "g": 1024 ** 3, "gib": 1024 ** 3, "gb": 1000 ** 3}


def parse_bytes(text: Any) -> int:
    """A size as a user writes it, in bytes: ``65536``, ``64KiB``, ``64 k`` (binary), ``1.5MB`` (decimal).

    KiB/MiB/GiB and a bare K/M/G are powers of 1024, kB/MB/GB of 1000; case is ignored. Raises
    ValueError for anything else, or a size below one byte.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size")
    if isinstance(text, int):
        number, unit = float(text), ""
    else:
        flat = str(text).strip().lower().replace(" ", "").replace("_", "")
        digits = len(flat) - len(flat.lstrip("0123456789."))
        number_text, unit = flat[:digits], flat[digits:]
        try:
            number = float(number_text)
        except ValueError:
            raise ValueError(f"{text!r} is not a size (e.g. 65536, 64KiB, 1.5MB)") from None
    if unit not in _UNITS:
        raise ValueError(f"{text!r}: unknown unit {unit!r} (B, KiB, MiB, GiB, kB, MB, GB)")
    size = round(number * _UNITS[unit])
    if size < 1:
        raise ValueError(f"{text!r} is not a size of at least one byte")
    return size


def size_text(n: Any) -> str:
    """Bytes as the tables show them: ``512 B``, ``61.2 KiB``, ``24.30 MiB``; ``-`` when not an int."""
    if isinstance(n, bool) or not isinstance(n, int):
        return "-"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.2f} MiB"

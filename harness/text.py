"""Text on one line: what error messages, table cells and progress lines are made of."""

from __future__ import annotations

import decimal
import math
import re
from typing import Any, Sequence

ANSI_ESCAPE = re.compile(
    r"(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC: window title, hyperlink (to BEL or ST)
    r"|(?:\x1b[P_^X]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC strings (to ST)
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI: colour, cursor, erase
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?")  # the rest: ESC c (reset), ESC ( 0 (line drawing), ESC 7 ...
"""Terminal escape sequences: colour and cursor codes, which torch's exporter messages carry, and the
strings a terminal acts on (a window title, a hyperlink, device controls), whole; an unterminated string
runs to the end of the text, as a terminal would swallow it. Both the 7-bit (ESC) and 8-bit (C1) forms."""

CONTROL_SPACE = re.compile(r"[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]")
"""Control characters that break or move a line (tab, newline, carriage return, separators): a space in
one-line text."""
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
"""The other C0 and C1 control characters and DEL, which a terminal acts on or shows as nothing."""


ORT_NODE = re.compile(r"Non-zero status code returned while running (\S+) node\. Name:'([^']*)' Status Message: ")
"""ONNX Runtime's preamble to a node's failure, which :func:`squeeze` shortens to ``Reshape node '/Reshape': ``."""
ORT_CHECK = re.compile(r"(?<![\w.])[\w.\[\]()>:-]+ (?:==|!=|<=|>=|<|>) [\w.\[\]()>:-]+ was false\. ")
"""The condition an ONNX Runtime check failed on (``input_shape_size == requested_shape_size was false.``),
before the sentence that says it in words; together they pushed the shapes in question past a cut."""


CI_COMMAND = re.compile(r"^(\s*):(?=:)|#(?=#(?:vso)?\[)")
"""What a CI runner takes for a command in its log: ``::error ...::`` at a line's start (GitHub Actions:
annotations, ``::add-mask::``, ``::stop-commands::``), ``##vso[`` and ``##[`` anywhere (Azure Pipelines: set a
variable, prepend PATH). A model name or job id from another job's results.json begins a table row."""

ZERO_WIDTH = "\u200b"


def plain(text: Any) -> str:
    """``str(text)`` safe to print on one line of a terminal or a table cell: terminal escape sequences and
    control characters are dropped, and tabs, line breaks and carriage returns become spaces (a model name
    with a newline would otherwise split a table's row); a CI log command (:data:`CI_COMMAND`) gets a zero-width
    space inside it, so that it reads the same and does nothing. Unlike :func:`squeeze`, spaces are kept."""
    flat = CONTROL.sub("", CONTROL_SPACE.sub(" ", ANSI_ESCAPE.sub("", str(text))))
    return CI_COMMAND.sub(lambda m: m.group(0) + ZERO_WIDTH, flat) if (":" in flat or "#" in flat) else flat


ORT_NOISE = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : "
                       r"|(?:(?<![A-Za-z])[A-Za-z]:)?[\\/]\S*?(?:onnxruntime_src[\\/]|onnxruntime[\\/](?:\S*?[\\/])?core[\\/])\S+:\d+ "
                       r"(?:[\w:~<>,*&\[\] ]*\([^()]*\) )?")
"""What ONNX Runtime's errors put before their reason: the status code, and the C++ source line and function
(``/onnxruntime_src/.../model.cc:256 onnxruntime::Model::Model(...)``; the Windows wheel's
``C:\\__w\\1\\s\\onnxruntime\\onnxruntime\\core\\graph\\model.cc:180 ...``, the macOS wheel's
``/Users/runner/work/1/s/onnxruntime/core/...``), which a cut message kept instead."""


def squeeze(text: Any, limit: int | None = None) -> str:
    """``str(text)`` on one line (each run of whitespace, newlines included, becomes one space; terminal
    escape sequences and other control characters are dropped, see :func:`plain`), cut to at most ``limit``
    characters with a trailing ``...`` when longer.

    Exception texts from torch, ONNX Runtime or urllib often span several lines; the CLI, the
    progress line and the report tables show them on one.
    """
    flat = " ".join(ORT_NOISE.sub(" ", plain(text)).split())
    flat = ORT_CHECK.sub("", ORT_NODE.sub(r"\1 node '\2': ", flat))
    if limit is not None and len(flat) > limit:
        return flat[: limit - 3] + "..." if limit > 3 else flat[: max(limit, 0)]
    return flat


URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][\w+.-]*://)[^\s/@]+@")
URL_SECRET = re.compile(r"([?&](?:token|access_token|api_key|apikey|key|password|secret|sig)=)[^&\s]+", re.IGNORECASE)


def redact_credentials(text: Any) -> str:
    """``text`` with a URL's user and password (``https://user:TOKEN@host``) and its secret-looking query values
    (``?token=...``) replaced by ``***``: an unreachable MLflow server's URL went, token and all, into
    results.json and the reports, which CI publishes as artifacts."""
    return URL_SECRET.sub(r"\1***", URL_CREDENTIALS.sub(r"\1***@", str(text)))


def mflops(flops: Any) -> str:
    """FLOPs per sample as the tables show them, in millions: two decimals below 10 (small models differ
    there), one above; below 0.01 million two significant digits (``0.0014`` for 1,408 FLOPs), so a tiny
    counted model never shows as ``0.00`` (that is 0 exactly) beside an uncounted one's ``-``, which is
    also what a value that is not a number gives."""
    if isinstance(flops, bool) or not isinstance(flops, (int, float)):
        return "-"
    if 0 < flops < 9_950:  # two decimals would say 0.00 or 0.01 (from 9,950 on: 0.01 to two digits as well)
        return format(decimal.Decimal(f"{flops / 1e6:#.2g}"), "f")  # 1 FLOP: 0.0000010, not 1.0e-06
    return f"{flops / 1e6:.2f}" if flops < 1e7 else f"{flops / 1e6:,.1f}"


def points(drop: Any) -> str:
    """An accuracy drop (a fraction) in percentage points, as every table shows it: ``0.12``, ``-0.26`` (a
    gain); ``-`` when not a number."""
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not math.isfinite(drop):
        return "-"
    return f"{drop * 100:.2f}".replace("-0.00", "0.00")


_UNITS = {"": 0, "b": 0, "k": 1, "kb": 1, "kib": 1, "m": 2, "mb": 2, "mib": 2, "g": 3, "gb": 3, "gib": 3}
SIZE_UNITS = frozenset(unit for unit in _UNITS if unit)
"""The unit names :func:`parse_bytes` reads (lower case)."""
MAX_BYTES = 1 << 60  # an exbibyte: a budget beyond it is a typo


def parse_bytes(text: Any) -> int:
    """A size as a user writes it, in bytes: ``65536``, ``64KiB``, ``64 k``, ``1.5MB``, ``1e6``.

    Every unit is a power of 1024 (K, KB and KiB alike; M, MB, MiB; G, GB, GiB), as memory and
    flash datasheets count; case is ignored. A count of bytes must be whole (``1.5`` is refused,
    ``1.5KiB`` is 1,536; a fraction of a byte left by a unit is dropped). Raises ValueError for
    anything else, a size below one byte or above :data:`MAX_BYTES`.
    """
    from decimal import Decimal, InvalidOperation

    shown = squeeze(repr(text), 40)
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise ValueError(f"{shown} is not a size")
    flat = str(text).strip().lower().replace(" ", "").replace("_", "")
    unit = flat.lstrip("0123456789.e+-")
    # an exponent's "e" belongs to the number only when digits follow it ("1e3"), not in "1.5mb"
    digits = len(flat) - len(unit)
    while digits and flat[digits - 1] in "e+-" and not flat[digits:digits + 1].isdigit():
        digits -= 1
    number_text, unit = flat[:digits], flat[digits:]
    try:
        number = Decimal(number_text)
    except InvalidOperation:
        raise ValueError(f"{shown} is not a size (e.g. 65536, 64KiB, 1.5MB)") from None
    if unit not in _UNITS:
        raise ValueError(f"{shown}: unknown unit {unit!r} (B, K/KB/KiB, M/MB/MiB, G/GB/GiB)")
    if not number.is_finite() or number > MAX_BYTES:
        raise ValueError(f"{shown} is not a size up to {MAX_BYTES:,} bytes")
    if _UNITS[unit] == 0 and number != number.to_integral_value():
        raise ValueError(f"{shown} is not a whole number of bytes")
    size = int(number * 1024 ** _UNITS[unit])
    if size < 1:
        raise ValueError(f"{shown} is not a size of at least one byte")
    if size > MAX_BYTES:
        raise ValueError(f"{shown} is not a size up to {MAX_BYTES:,} bytes")
    return size


def size_text(n: Any) -> str:
    """Bytes as the tables show them: ``512 B``, ``61.2 KiB``, ``24.30 MiB``, ``1.50 GiB``; ``-`` when not
    an int."""
    if isinstance(n, bool) or not isinstance(n, int):
        return "-"
    if n < 1024:
        return f"{n} B"
    if n < 1024 ** 2:
        return f"{n / 1024:.1f} KiB"
    if n < 1024 ** 3:
        return f"{n / 1024 ** 2:.2f} MiB"
    return f"{n / 1024 ** 3:.2f} GiB"


def ms_text(value: Any) -> str:
    """A latency in milliseconds for a table: three decimals, or three significant digits below 0.1 ms, where
    three decimals would leave one (0.009 for 9.34 microseconds); ``-`` for None."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    return f"{value:.3f}" if abs(value) >= 0.1 or value == 0 else f"{value:#.3g}"


def first_five(items: Sequence[str], separator: str = ", ") -> str:
    """The first five of ``items`` joined, and how many more there are: a line naming jobs stays readable."""
    more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
    return separator.join(items[:5]) + more


def seeds_text(seeds: Any, listed: int = 6, sep: str = ",") -> str:
    """A group's seeds as a label shows them: all of a few (``0,1,2``), a run of consecutive ones as a
    range (``0-99``), else the first and last few with the count (``0,3,7,...,90,97 (40 seeds)``): a label
    that listed 1,000 seeds on every row of a comparison made its output grow with the square of the sweep."""
    seeds = list(seeds)
    if len(seeds) <= listed:
        return sep.join(map(str, seeds))
    ints = all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if ints and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    half = listed // 2
    return f"{sep.join(map(str, seeds[:half]))}{sep}...{sep}{sep.join(map(str, seeds[-half:]))} ({len(seeds)} seeds)"

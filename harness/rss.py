"""This process's resident memory: now, its peak, and (on Linux) a reset of the peak.

Read from ``/proc/self/status`` where there is one; elsewhere the peak is ``ru_maxrss`` (kilobytes on
Linux and the BSDs, bytes on macOS) and the rest is None. Imports nothing heavy: the cold-start probe
process reads it too.
"""

from __future__ import annotations

import sys


def status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None when unreadable."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak() -> int | None:
    """Reset the peak resident set size to the current one (Linux); that size in bytes.

    None where the kernel does not offer the reset (not Linux, or /proc read-only): the peak is then
    the whole process's so far."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # 5: reset the peak RSS ("high water mark"), see proc(5)
    except OSError:
        return None
    return status_bytes("VmRSS")


def process_peak_bytes() -> int | None:
    """The peak resident set size of the whole process so far (``ru_maxrss``), in bytes; None on Windows."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    try:
        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except OSError:  # pragma: no cover
        return None
    return peak if sys.platform == "darwin" else peak * 1024

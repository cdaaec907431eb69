#!/usr/bin/env python
"""Render a harness ``report.html`` to PNG in headless Chromium, to look at it as a browser shows it.

    python scripts/screenshot_report.py reports/<run-id>/report.html [-o shot.png] [--width 1400] [--height 3000]

Needs a Chromium or Chrome binary (Debian: ``apt-get install chromium``; or
``--chromium PATH`` / ``$CHROMIUM``). The browser runs with a throw-away
profile and its background networking off; the report itself loads nothing
from the network. Prints the PNG's path; exit 2 when no browser is found or
it wrote no image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium(explicit: str | None = None) -> str | None:
    """The browser binary: ``explicit``, ``$CHROMIUM``, or the first of :data:`BROWSERS` on PATH."""
    for candidate in (explicit, os.environ.get("CHROMIUM"), *BROWSERS):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 3000, chromium: str | None = None,
               timeout: float = 90) -> Path:
    """Render ``html`` into ``png`` (``width`` x ``height`` CSS pixels); raises RuntimeError when that fails."""
    binary = find_chromium(chromium)
    if binary is None:
        raise RuntimeError(f"no Chromium found (tried {', '.join(BROWSERS)}); apt-get install chromium")
    html = Path(html).resolve()
    if not html.is_file():
        raise RuntimeError(f"{html} is not a file")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    with tempfile.TemporaryDirectory(prefix="harness-chromium-") as profile:
        command = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
            f"--window-size={width},{height}", html.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "HOME": profile})
    if not png.is_file() or png.stat().st_size == 0:
        tail = " ".join((result.stderr or "").split())[-800:]
        raise RuntimeError(f"chromium wrote no screenshot (exit {result.returncode}): {tail}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the report.html to render")
    parser.add_argument("-o", "--out", type=Path, help="PNG to write (default: next to the report, report.png)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--chromium", help="browser binary (default: $CHROMIUM or chromium on PATH)")
    args = parser.parse_args(argv)
    out = args.out or args.html.with_suffix(".png")
    try:
        path = screenshot(args.html, out, args.width, args.height, args.chromium)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"screenshot_report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

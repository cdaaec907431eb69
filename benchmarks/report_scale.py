"""How does report generation scale with the number of jobs? ``write_reports`` at N=50 and N=400 jobs.

One process. The jobs are generated, not trained: copies of the finished jobs of the test fixture
``tests/fixtures/report_run/results.json`` under new ids and sweep points, with their accuracy, latency,
size and FLOPs figures jittered (a fixed random seed), so each plot has N points or more spread out as a
sweep's are. Each size is written into a fresh temporary folder (results.csv, report.md, the plots and
report.html), ``--rounds`` times; printed: each size's best time, the ratio large/small and the ratio
of the job counts (what a linear cost would give), and the process's peak resident memory.

Before the label limit (``harness.report_html.LABEL_LIMIT``) a 400-job report took about 20 times as long
as a 100-job one, because every point of each scatter was labelled and each label's placement looked at
every other label and marker.

Usage::

    python benchmarks/report_scale.py [--small 50] [--large 400] [--rounds 1] [--no-curves]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "report_run" / "results.json"
SCALED = ("p50_ms", "p90_ms", "mean_ms", "min_ms", "bytes", "flops")


def _jitter(value: Any, rng: random.Random) -> Any:
    """``value`` with each latency, size and FLOPs figure scaled by its own factor and each accuracy moved."""
    if isinstance(value, list):
        return [_jitter(v, rng) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key in SCALED and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = type(v)(v * rng.uniform(0.4, 2.5))
        elif key == "accuracy" and isinstance(v, float):
            out[key] = min(1.0, max(0.0, v * rng.uniform(0.5, 1.0)))
        else:
            out[key] = _jitter(v, rng)
    if isinstance(out.get("p50_ms"), float) and out.get("batch_size"):
        out["throughput_per_s"] = 1000 * out["batch_size"] / out["p50_ms"]
    return out


def generated_run(n: int, curves: bool = True, seed: int = 0) -> dict[str, Any]:
    """A results document of ``n`` finished jobs copied from the fixture's (see the module's docstring)."""
    rng = random.Random(seed)
    results = json.loads(FIXTURE.read_text(encoding="utf-8"))
    finished = [j for j in results["jobs"] if j.get("status") == "ok"]
    jobs = []
    for i in range(n):
        job = _jitter(copy.deepcopy(finished[i % len(finished)]), rng)
        job["point"] = {"width": i}
        job["id"] = f"{job['model']}@{job['dataset']}#width={i}"
        if not curves and isinstance(job.get("train"), dict):
            job["train"]["history"] = (job["train"].get("history") or [])[:1]
        jobs.append(job)
    results["jobs"] = jobs
    return results


def time_reports(n: int, rounds: int, curves: bool) -> float:
    """The best of ``rounds`` timings of ``write_reports`` for ``n`` generated jobs, in seconds."""
    from harness.report import write_reports

    results = generated_run(n, curves)
    best = float("inf")
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix=f"report-scale-{n}-") as folder:
            start = time.perf_counter()
            write_reports(Path(folder), copy.deepcopy(results))
            best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=50, help="jobs in the small run (default 50)")
    parser.add_argument("--large", type=int, default=400, help="jobs in the large run (default 400)")
    parser.add_argument("--rounds", type=int, default=1, help="timings of each size; the best is kept")
    parser.add_argument("--no-curves", dest="curves", action="store_false",
                        help="one epoch per job: no training-curve figures")
    args = parser.parse_args(argv)
    if not 0 < args.small < args.large:
        parser.error("--small must be at least 1 and less than --large")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    import matplotlib  # noqa: F401 - imported before timing: the first figure of a process pays for it

    from harness.report_html import _figure

    _figure(1, 1)
    times = {}
    for n in (args.small, args.large):
        times[n] = time_reports(n, args.rounds, args.curves)
        print(f"N={n:<5} write_reports {times[n]:8.2f} s", flush=True)
    ratio = times[args.large] / times[args.small]
    print(f"ratio N={args.large} / N={args.small}: {ratio:.2f}x (jobs: {args.large / args.small:.1f}x)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak resident memory of the process: {peak / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

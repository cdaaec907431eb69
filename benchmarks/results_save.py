"""What keeping results.json current costs a long sweep: a run of N jobs saves it after every job.

One process, one temporary run folder. Both sides record the same N job rows one by one, as a run does,
and write results.json after each (atomically, with fsync, as a run does):

- ``remade``: the whole document made again at every save (what the harness did before it kept each
  job's JSON; the job texts are dropped before each save);
- ``kept``: :meth:`harness.results.RunFolder.record` as it is, each job's JSON made once.

The rows are copies of the jobs in ``tests/fixtures/report_run/results.json`` with new ids. Printed: both
totals, the ratio, and that both files are the same text.

Usage::

    python benchmarks/results_save.py [--jobs 400]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

from harness.results import RunFolder

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "report_run" / "results.json"


def rows(n: int) -> list[dict]:
    jobs = json.loads(FIXTURE.read_text())["jobs"]
    out = []
    for i in range(n):
        row = copy.deepcopy(jobs[i % len(jobs)])
        row["id"] = f"{row.get('id')}#copy={i}"
        out.append(row)
    return out


def sweep(folder: RunFolder, jobs: list[dict], remade: bool) -> float:
    started = time.perf_counter()
    for row in jobs:
        if remade:
            folder._job_texts.clear()
        folder.record(row)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=400)
    args = parser.parse_args()
    jobs = rows(args.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        times, texts = {}, {}
        for side in ("remade", "kept"):
            folder = RunFolder.create(Path(tmp), side, {}, {})
            times[side] = sweep(folder, copy.deepcopy(jobs), remade=side == "remade")
            texts[side] = json.loads(folder.results_path.read_text())["jobs"]
    print(f"{args.jobs} jobs, results.json saved after each")
    print(f"  remade every save: {times['remade']:.2f} s ({times['remade'] / args.jobs * 1000:.1f} ms a job)")
    print(f"  job texts kept:    {times['kept']:.2f} s ({times['kept'] / args.jobs * 1000:.1f} ms a job)")
    print(f"  ratio: {times['remade'] / times['kept']:.1f}x; same jobs saved: {texts['remade'] == texts['kept']}")


if __name__ == "__main__":
    main()

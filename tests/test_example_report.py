"""The committed GPU example (reports/example/): it still renders with today's code, and the figures its
README and the project README quote are the ones its results.json files hold."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "reports" / "example"
SEED002 = EXAMPLE / "seed002"
FAST_RUNS = [EXAMPLE / "mnist-fast" / "fast-eager", EXAMPLE / "mnist-fast" / "fast-graphs-bf16"]


def _jobs(run: Path) -> list[dict]:
    return json.loads((run / "results.json").read_text())["jobs"]


def _table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """The first table under ``heading``: first cell (backticks dropped) -> the row's cells."""
    section = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    rows = {}
    for line in section[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize("runs", [[SEED002], FAST_RUNS], ids=["seed002", "mnist-fast-joined"])
def test_the_example_runs_still_render(runs, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["report", *map(str, runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    for run in runs:
        for job in _jobs(run):
            assert job["status"] == "ok" and job["model"] in text
    assert (out / "report.html").stat().st_size > 0


def test_the_example_readme_quotes_the_seed002_run():
    rows = _table_rows((EXAMPLE / "README.md").read_text(), "## Seed 002 on the GPU")
    for job in _jobs(SEED002):
        cells = rows[job["model"]]
        assert cells[1] == f"{job['params']:,}"
        assert cells[2] == f"{job['metrics']['accuracy']:.4f}" == f"{job['onnx']['metrics']['accuracy']:.4f}"
        assert cells[4] == f"{job['train']['seconds']:.1f}"
        assert cells[7] == f"{job['train']['time_to_target_s']:.1f} s"
    latency = _table_rows((EXAMPLE / "README.md").read_text(), "**GPU latency, eager PyTorch on CUDA**")
    names = {"rough": "mnist-rough-cnn", "cake": "mnist-cake-cnn", "ultra-light": "mnist-ultralight-cnn"}
    for short, cells in latency.items():
        job = next(j for j in _jobs(SEED002) if j["model"] == names[short])
        cuda = {r["batch_size"]: r for r in job["latency"] if r["runtime"] == "torch" and r["provider"] == "cuda"}
        assert cells[1:4] == [f"{cuda[b]['p50_ms']:.3f}" for b in (1, 32, 256)]


def test_the_example_readme_quotes_the_mnist_fast_seeds():
    rows = _table_rows((EXAMPLE / "README.md").read_text(), "## `mnist-fast`: time to 99 %")
    for run, label in zip(FAST_RUNS, ["eager", "`--cuda-graphs --amp bf16`"]):
        times = [j["train"]["time_to_target_s"] for j in sorted(_jobs(run), key=lambda j: j["point"]["seed"])]
        assert rows[label.strip("`")][1:] == [f"{t:.2f}" for t in times] + [f"{statistics.mean(times):.2f}"]
    readme = (ROOT / "README.md").read_text()
    eager = [j["train"]["time_to_target_s"] for j in _jobs(FAST_RUNS[0]) if j["point"]["seed"] != 0]
    stated = re.search(r"99 % test accuracy after ([\d.]+) to ([\d.]+) s of training \(eager\)", readme)
    assert stated and (float(stated[1]), float(stated[2])) == (round(min(eager), 2), round(max(eager), 2))

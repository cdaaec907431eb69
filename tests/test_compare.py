"""``harness compare``: per-job changes and the regression gate, on fixture runs with and without a planted regression."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_run

from harness.cli import main
from harness.compare import compare_runs, format_comparison
from harness.errors import HarnessError

RUNS = Path(__file__).parent / "fixtures" / "compare"


def load(name: str) -> dict:
    return json.loads((RUNS / name / "results.json").read_text())


def same_keeping_every_base_job() -> dict:
    """The "same" run plus the job it dropped from base: nothing lost, nothing regressed."""
    same = load("same")
    same["jobs"].append(next(j for j in load("base")["jobs"] if j["id"] == "mnist-rough-cnn@synthetic"))
    return same


def compare_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "compare", *args], capture_output=True, text=True,
                          timeout=120)


def test_no_regression_exits_zero_and_lists_jobs_in_one_run_only(tmp_path):
    result = compare_cli(str(RUNS / "base"), str(RUNS / "same"))  # no threshold: a job only in base is listed
    assert result.returncode == 0, result.stdout + result.stderr
    assert "jobs only in base: mnist-rough-cnn@synthetic" in result.stdout
    assert "REGRESSION" not in result.stdout
    assert result.stdout.rstrip().endswith("no gate: the changes are shown, not judged (--fail-on-regression PCT "
                                           "judges p50 and accuracy, --max-accuracy-drop POINTS accuracy alone)")
    new = write_run(tmp_path / "same", same_keeping_every_base_job())
    result = compare_cli(str(RUNS / "base"), str(new), "--fail-on-regression", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "jobs only in base" not in out
    assert "jobs only in new: mnist-ultralight-cnn@synthetic" in out  # informational, never gates
    assert "no regression beyond the threshold (p50 +10%, accuracy or macro-F1 -10 points)" in out
    assert "REGRESSION" not in out
    line = next(x for x in out.splitlines() if "mnist-mlp@synthetic" in x and "onnxruntime" in x and " b1 t1" in x)
    assert "+3.0%" in line and "0.0173" in line  # the change, absolute and relative
    line = next(x for x in out.splitlines() if x.startswith("mnist-cnn@synthetic") and " accuracy " in x)
    assert "-0.20 pts" in line


def test_planted_latency_regression_exits_one():
    result = compare_cli(str(RUNS / "base"), str(RUNS / "regressed"), "--fail-on-regression", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    regressions = result.stdout.split("REGRESSIONS")[1]
    assert "mnist-mlp@synthetic: p50 onnxruntime/CPUExecutionProvider batch 1 threads 1 grew 40.0%" in regressions
    assert "dropped" not in regressions  # accuracy -3 points is within 10


def test_a_latency_change_below_the_smallest_in_milliseconds_does_not_regress():
    """A tens-of-microseconds model moved 42 % between two runs of the same code on a shared machine: the README's
    CI gate failed on noise. --min-change-ms asks for an absolute growth too."""
    def run(*args):
        return CliRunner().invoke(main, ["compare", str(RUNS / "base"), str(RUNS / "regressed"),
                                         "--fail-on-regression", "10", "--max-accuracy-drop", "5", *args])

    grew = "mnist-mlp@synthetic: p50 onnxruntime/CPUExecutionProvider batch 1 threads 1 grew 40.0%"
    assert run().exit_code == 1 and grew in run().output  # 0.0173 -> 0.0242 ms: +0.0069 ms
    assert grew in run("--min-change-ms", "0.005").output
    small = run("--min-change-ms", "0.01")
    assert small.exit_code == 0 and grew not in small.output, small.output
    assert "no regression beyond the threshold (p50 +10% and +0.01 ms, accuracy or macro-F1 -5 points)" in small.output
    assert run("--min-change-ms", "-1").exit_code == 2


def test_planted_accuracy_drop_counts_in_percentage_points():
    result = CliRunner().invoke(main, ["compare", str(RUNS / "base"), str(RUNS / "regressed"),
                                       "--fail-on-regression", "2"])
    assert result.exit_code == 1, result.output
    assert "mnist-cnn@synthetic: accuracy dropped 3.00 points (0.9902 -> 0.9602)" in result.output
    assert "mnist-cnn@synthetic: onnx accuracy dropped 3.00 points" in result.output


def test_accuracy_can_be_gated_tighter_than_latency():
    def regressions(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["compare", str(RUNS / "base"), str(RUNS / "regressed"), *args])
        return result.exit_code, result.output.split("REGRESSIONS")[-1]

    code, text = regressions("--fail-on-regression", "50", "--max-accuracy-drop", "1")  # latency +40 % passes
    assert code == 1 and "accuracy dropped 3.00 points" in text and "grew" not in text
    assert "(p50 +50%, accuracy or macro-F1 -1 points)" in text
    code, text = regressions("--max-accuracy-drop", "1")  # alone: accuracy, not latency
    assert code == 1 and "accuracy dropped 3.00 points" in text and "grew" not in text
    code, text = regressions("--fail-on-regression", "10", "--max-accuracy-drop", "5")  # a looser accuracy gate
    assert code == 1 and "grew 40.0%" in text and "dropped" not in text
    assert regressions("--max-accuracy-drop", "5")[0] == 0
    assert regressions("--max-accuracy-drop", "-1")[0] == 2


def test_thresholds_may_be_written_with_a_percent_sign():
    def run(*args: str):
        return CliRunner().invoke(main, ["compare", str(RUNS / "base"), str(RUNS / "regressed"), *args])

    assert run("--fail-on-regression", "10%").output == run("--fail-on-regression", "10").output
    said = run("--fail-on-regression", "50 %", "--max-accuracy-drop", "1%").output
    assert "(p50 +50%, accuracy or macro-F1 -1 points)" in said
    for wrong in ("10%%", "%", "ten%"):
        assert run("--fail-on-regression", wrong).exit_code == 2


@pytest.mark.parametrize("args", [["--fail-on-regression", "50"], []])
def test_within_threshold_or_without_one_exits_zero(args):
    result = CliRunner().invoke(main, ["compare", str(RUNS / "base"), str(RUNS / "regressed"), *args])
    assert result.exit_code == 0, result.output
    assert "REGRESSION" not in result.output


def test_json_output_carries_every_change():
    result = CliRunner().invoke(main, ["compare", str(RUNS / "base"), str(RUNS / "regressed"), "--json",
                                       "--fail-on-regression", "10"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["only_in_base"] == [] and data["only_in_new"] == [] and len(data["regressions"]) == 1
    mlp = next(j for j in data["jobs"] if j["id"] == "mnist-mlp@synthetic")
    row = next(r for r in mlp["latency"] if r["runtime"] == "onnxruntime" and r["batch_size"] == 1
               and r["threads"] == 1)
    assert row["p50_ms"]["pct"] == pytest.approx(40.0, abs=0.01) and row["p50_ms"]["regression"] is True


def test_eager_pytorch_latency_is_shown_but_never_gates():
    comparison = compare_runs(load("base"), same_keeping_every_base_job(), threshold=10)  # torch rows +50%
    assert comparison["regressions"] == []
    mlp = next(j for j in comparison["jobs"] if j["id"] == "mnist-mlp@synthetic")
    torch_rows = [r for r in mlp["latency"] if r["runtime"] == "torch"]
    assert torch_rows and all(r["p50_ms"]["pct"] == pytest.approx(50, abs=0.01) for r in torch_rows)
    assert all(not r["gated"] for r in torch_rows)
    assert "(not gated)" in format_comparison(comparison)


def test_a_job_that_stopped_working_is_a_regression():
    new = copy.deepcopy(load("base"))
    job = new["jobs"][1]
    job.update(status="failed", stage="export", error="RuntimeError: boom", onnx=None, latency=[])
    comparison = compare_runs(load("base"), new, threshold=10)
    assert comparison["regressions"] == ["mnist-cnn@synthetic: was ok, now failed at export (RuntimeError: boom)"]
    assert "status" in format_comparison(comparison)


def test_variants_are_compared_and_gated():
    base = load("base")
    base["jobs"][0]["variants"] = [{"variant": "int8-dynamic", "bytes": 240_000, "metrics": {"accuracy": 0.99},
                                    "latency": [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider",
                                                 "batch_size": 1, "threads": 1, "p50_ms": 0.010}]}]
    new = copy.deepcopy(base)
    variant = new["jobs"][0]["variants"][0]
    variant["latency"][0]["p50_ms"] = 0.020
    variant["metrics"]["accuracy"] = 0.90
    comparison = compare_runs(base, new, threshold=5)
    assert len(comparison["regressions"]) == 2
    assert any("int8-dynamic p50" in r and "grew 100.0%" in r for r in comparison["regressions"])
    assert any("int8-dynamic accuracy dropped 9.00 points" in r for r in comparison["regressions"])


def test_a_variant_that_failed_or_went_missing_in_new_is_a_regression():
    """An fp16 variant has no latency rows on a CPU: when it failed in NEW (metrics null, an error) or was not
    in NEW at all, its accuracy row dropped out silently and compare passed (exit 0), the error never shown."""
    base = load("base")
    base["jobs"][0]["variants"] = [{"variant": "fp16", "bytes": 43_941, "metrics": {"accuracy": 0.99},
                                    "error": None, "latency": []}]
    job = base["jobs"][0]["id"]
    failed = copy.deepcopy(base)
    failed["jobs"][0]["variants"][0].update(metrics=None, bytes=None, error="RuntimeError: fp16 cast failed")
    for gates in ({}, {"threshold": 10}):  # as a job that was ok and is not: with or without a threshold
        comparison = compare_runs(base, failed, **gates)
        assert comparison["regressions"] == [f"{job}: fp16 was ok, now failed (RuntimeError: fp16 cast failed)"]
        assert comparison["regression_details"][0]["kind"] == "variant_failed"
        assert comparison["regression_details"][0]["variant"] == "fp16"
    gone = copy.deepcopy(base)
    gone["jobs"][0]["variants"] = []
    comparison = compare_runs(base, gone, threshold=10)
    assert comparison["regressions"] == [f"{job}: fp16 missing in new (measured in base)"]
    assert comparison["regression_details"][0]["kind"] == "lost_variant"
    assert compare_runs(base, gone)["regressions"] == []  # no gate: a changed --variants is shown, not judged
    assert compare_runs(failed, base, threshold=10)["regressions"] == []  # failed in base: nothing lost


def test_a_job_missing_from_new_is_a_regression_with_a_threshold():
    result = compare_cli(str(RUNS / "base"), str(RUNS / "same"), "--fail-on-regression", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "jobs only in base: mnist-rough-cnn@synthetic" in result.stdout
    regressions = result.stdout.split("REGRESSIONS")[1]
    assert "mnist-rough-cnn@synthetic: job missing in new (was ok in base)" in regressions
    assert "ultralight" not in regressions  # a job only in new is informational
    base = load("base")
    base["jobs"][2].update(status="failed", stage="train", error="boom", latency=[])  # nothing to lose
    assert compare_runs(base, load("same"), threshold=10)["regressions"] == []


def test_lost_onnxruntime_latency_rows_are_regressions_with_a_threshold():
    base = load("base")
    int8 = [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": 1, "threads": 1,
             "p50_ms": 0.010}]
    base["jobs"][0]["variants"] = [
        {"variant": "int8-dynamic", "bytes": 240_000, "metrics": {"accuracy": 0.99}, "latency": int8},
        {"variant": "fp16", "bytes": 480_000, "metrics": {"accuracy": 0.99}, "latency": copy.deepcopy(int8)}]
    new = copy.deepcopy(base)
    job = new["jobs"][0]
    job["latency"] = [r for r in job["latency"] if r["batch_size"] == 1]  # loses b32 rows: 2 ORT, 2 torch
    job["variants"][0]["latency"] = []  # int8-dynamic loses its only row
    del job["variants"][1]  # fp16 gone altogether
    comparison = compare_runs(base, new, threshold=10)
    assert sorted(comparison["regressions"]) == [
        f"mnist-mlp@synthetic: {what} missing in new" for what in (
            "fp16 p50 onnxruntime/CPUExecutionProvider batch 1 threads 1",
            "int8-dynamic p50 onnxruntime/CPUExecutionProvider batch 1 threads 1",
            "p50 onnxruntime/CPUExecutionProvider batch 32 threads 1",
            "p50 onnxruntime/CPUExecutionProvider batch 32 threads 2")
    ]  # the lost torch rows never gate
    assert len(comparison["jobs"][0]["latency_only_in_base"]) == 4
    assert comparison["jobs"][0]["variants_only_in_base"] == ["fp16"]
    text = format_comparison(comparison)
    assert "latency rows only in base" in text and "variants only in base: fp16" in text
    assert compare_runs(base, new)["regressions"] == []  # without a threshold: listed only
    assert compare_runs(new, base, threshold=10)["regressions"] == []  # rows only in new are informational


def test_a_latency_row_either_run_marked_unstable_gates_on_its_fastest_call_only():
    # two identical --profile edge runs failed CI on an all-core row the harness had marked unstable: its p50
    # change is noise, so it is not judged; but NEW's fastest call cannot be slowed by noise-free code
    base, new = load("base"), load("regressed")
    (row,) = [r for r in new["jobs"][0]["latency"] if (r["runtime"], r["batch_size"], r["threads"]) ==
              ("onnxruntime", 1, 1)]
    assert any("grew 40.0%" in r for r in compare_runs(base, new, threshold=10)["regressions"])
    row["stable"] = False  # p50 0.0173 -> 0.02422 (+40 %), fastest call 0.016435: below base's p50
    comparison = compare_runs(base, new, threshold=10)
    assert not any("batch 1 threads 1 grew" in r for r in comparison["regressions"] if r.startswith("mnist-mlp"))
    assert (comparison["floor_rows"], comparison["unstable_rows"]) == (1, 0)
    (entry,) = [r for r in comparison["jobs"][0]["latency"] if (r["runtime"], r["batch_size"], r["threads"]) ==
                ("onnxruntime", 1, 1)]
    assert entry["gated"] is True and entry["gated_on"] == "min" and "not_gated" not in entry
    assert (entry["floor"]["base"], entry["floor"]["new"], entry["floor"]["regression"]) == (0.0173, 0.016435, False)
    text = format_comparison(comparison)
    assert "p50 onnxruntime/CPUExecutionProvider b1 t1 (unstable: gated on its fastest call, 0.01644 ms)" in text
    note = next(line for line in text.splitlines() if line.startswith("note: 1 latency row(s) that base or new"))
    assert "gated on NEW's fastest call only: a regression when even that is more than 10% over BASE's p50" in note
    assert note.endswith("or gate one thread count with --threads 1")
    # advice only where there is another thread count to leave out
    assert "--threads 1" not in format_comparison(compare_runs(base, new, threshold=10, threads=[1]))
    # the verdict does not claim "no regression" silently: it says what was judged on the floor only
    noisy = load("base")  # the same code, one row's p50 40 % up by noise and marked unstable
    next(r for r in noisy["jobs"][0]["latency"] if _same_row(r, row)).update(stable=False, p50_ms=0.02422)
    verdict = format_comparison(compare_runs(base, noisy, threshold=10)).splitlines()[-1]
    assert verdict == ("no regression beyond the threshold (p50 +10%, accuracy or macro-F1 -10 points); "
                       "1 unstable latency row(s) judged on their fastest call only")


def _same_row(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in ("runtime", "provider", "batch_size", "threads"))


def test_an_unstable_row_three_times_slower_is_still_a_regression(tmp_path):
    """A review made every ORT row of NEW 3x slower and marked it unstable (drift_pct 6): exit 0, "no regression".
    NEW's fastest call, 3x base's, is over base's p50 by far more than any noise explains."""
    base, new = load("base"), load("base")
    new["run_id"] = "new"
    for job in new["jobs"]:
        for r in job.get("latency") or []:
            if r["runtime"] == "onnxruntime":
                r.update({k: r[k] * 3 for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms") if k in r},
                         stable=False, drift_pct=6.0)
    comparison = compare_runs(base, new, threshold=10)
    latency = [d for d in comparison["regression_details"] if d["kind"] == "latency"]
    assert latency and len(latency) == comparison["floor_rows"] and comparison["unstable_rows"] == 0
    first = latency[0]
    assert first["gated_on"] == "min" and first["pct"] == pytest.approx(200.0)
    assert first["min_ms"] == pytest.approx(3 * 0.016435) and first["min_pct"] == pytest.approx(
        100 * (3 * 0.016435 / 0.0173 - 1))
    assert first["text"].startswith("mnist-mlp@synthetic: p50 onnxruntime/CPUExecutionProvider batch 1 threads 1 "
                                    "grew 200.0% (0.0173 -> 0.0519 ms); unstable, so gated on its fastest call: "
                                    "0.0493 ms, 185.0% over base's p50")
    stable_base = compare_runs(load("base"), load("regressed"), threshold=10)["regression_details"][0]
    assert (stable_base["gated_on"], stable_base["min_ms"], stable_base["min_pct"]) == ("p50", None, None)
    # --min-change-ms binds the floor too: 0.033 ms over base's p50 is under a 0.05 ms floor
    assert not [d for d in compare_runs(base, new, threshold=10, min_change_ms=0.05)["regression_details"]
                if d["kind"] == "latency" and d["text"] == first["text"]]
    # the CLI exits 1, and --json carries the same dicts
    folders = write_run(tmp_path / "base", base), write_run(tmp_path / "new", new)
    result = compare_cli(*map(str, folders), "--fail-on-regression", "10", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["floor_rows"] == comparison["floor_rows"] and data["regression_details"][0]["gated_on"] == "min"
    # and the API, which shares compare_folders with the CLI
    from harness.api import compare

    assert compare(*folders, threshold=10)["regression_details"] == data["regression_details"]


def test_an_unstable_row_without_a_fastest_call_is_shown_not_gated():
    """A row from a run that recorded no ``min_ms`` (an older or hand-made results.json) cannot be judged on
    its floor: shown, not gated, counted, and the verdict says so."""
    base, new = load("base"), load("regressed")
    (row,) = [r for r in new["jobs"][0]["latency"] if (r["runtime"], r["batch_size"], r["threads"]) ==
              ("onnxruntime", 1, 1)]
    row["stable"] = False
    del row["min_ms"]
    comparison = compare_runs(base, new, threshold=10)
    assert (comparison["floor_rows"], comparison["unstable_rows"]) == (0, 1)
    assert not any("batch 1 threads 1 grew" in r for r in comparison["regressions"] if r.startswith("mnist-mlp"))
    text = format_comparison(comparison)
    assert "p50 onnxruntime/CPUExecutionProvider b1 t1 (not gated: unstable)" in text
    assert "note: 1 latency row(s) not gated: base or new marked them unstable" in text


def test_compare_can_gate_one_thread_count_and_batch_size_only(tmp_path):
    base, new = load("base"), load("regressed")
    for job in new["jobs"]:  # every ORT row 40 % slower, except batch 1 on 1 thread
        for row in job["latency"]:
            if row["runtime"] == "onnxruntime" and (row["batch_size"], row["threads"]) != (1, 1):
                row["p50_ms"] *= 1.4
    gated = compare_runs(base, new, threshold=10, threads=[1], batch_sizes=[32])
    assert all("batch 32 threads 1" in r for r in gated["regressions"] if " p50 " in r), gated["regressions"]
    lost = copy.deepcopy(new)
    lost["jobs"][0]["latency"] = [r for r in lost["jobs"][0]["latency"] if r["threads"] == 1]
    assert not any("threads 2 missing" in r for r in compare_runs(base, lost, threshold=10, threads=[1])["regressions"])
    result = CliRunner().invoke(main, ["compare", str(write_run(tmp_path / "b", base)), str(write_run(tmp_path / "n", new)),
                                       "--fail-on-regression", "10", "--threads", "1", "--batch-sizes", "32"])
    assert "t2 (not gated: other threads)" in result.output and "REGRESSIONS (p50 +10% at threads 1 batch 32" in result.output
    # a count BASE never measured would gate nothing and pass every time: refused
    typo = CliRunner().invoke(main, ["compare", str(tmp_path / "b"), str(tmp_path / "n"), "--fail-on-regression", "10",
                                     "--threads", "4"])
    assert typo.exit_code == 2 and "compare --threads 4: BASE has no ONNX Runtime latency row at threads 4, so the " \
        "gate would judge none (its rows: threads 1, 2)" in typo.output, typo.output


@pytest.mark.parametrize("threshold", [10, None])
def test_runs_with_no_job_in_common_are_an_error(threshold):
    run3d = load("base")
    run3d["run_id"] = "run3d"
    run3d["jobs"] = [{**run3d["jobs"][0], "id": "cnn3d-sequential@synthetic3d"}]
    with pytest.raises(HarnessError, match=r"base \(3 job\(s\)\) and run3d \(1 job\(s\)\) have no job in ") as raised:
        compare_runs(load("base"), run3d, threshold)
    first = load("base")["jobs"][0]["id"]  # a sweep against a plain run: ids that differ in the seed
    assert str(raised.value).endswith(f"(jobs match by id, sweep point and seed included: {first} vs "
                                      f"cnn3d-sequential@synthetic3d)")
    with pytest.raises(HarnessError, match=r"\(3 job\(s\)\) and empty \(0 job\(s\)\)"):
        compare_runs(load("base"), {"run_id": "empty", "jobs": []}, threshold)
    # two runs both called base (the CI recipe's and the API example's): "runs base and base" said nothing
    run3d.update(run_id="base", created="2026-12-03T17:40:00")
    with pytest.raises(HarnessError, match=rf"runs base \(created {re.escape(load('base')['created'])}, 3 job\(s\)\) and "
                                           r"base \(created 2026-12-03T17:40:00, 1 job\(s\)\) have no job"):
        compare_runs(load("base"), run3d, threshold)


def test_no_job_in_common_exits_two_with_one_line(tmp_path):
    run3d = load("base")
    run3d["run_id"] = "run3d"
    run3d["jobs"] = [{**j, "id": f"cnn3d-{i}@synthetic3d"} for i, j in enumerate(run3d["jobs"][:2])]
    new = write_run(tmp_path / "run3d", run3d)
    result = compare_cli(str(RUNS / "base"), str(new), "--fail-on-regression", "10")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no regression" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "(3 job(s))" in lines[0] and "(2 job(s))" in lines[0]


def test_table_has_no_empty_flag_column():
    table = format_comparison(compare_runs(load("base"), load("same"))).splitlines()
    header, rule = table[1], table[2]
    assert header.split()[-2:] == ["change", "%"] and len(rule.split()) == 6  # no nameless "--" column
    flagged = format_comparison(compare_runs(load("base"), load("regressed"), threshold=10)).splitlines()
    assert len(flagged[2].split()) == 7  # a flagged row: the column is back, with something in it
    assert any(line.startswith("mnist-mlp@synthetic") and line.endswith("REGRESSION") for line in flagged)


def test_flops_and_activation_memory_changes_are_shown_and_never_gate():
    from harness.compare import comparison_rows

    base = load("base")
    job = base["jobs"][0]
    job["flops"], job["onnx"]["activation_bytes"] = 3_000_000, 100_000
    job["variants"] = [{"variant": "int8-dynamic", "bytes": 240_000, "activation_bytes": 50_000,
                        "metrics": {"accuracy": 0.99}, "latency": []}]
    new = copy.deepcopy(base)
    new["jobs"][0]["flops"], new["jobs"][0]["onnx"]["activation_bytes"] = 6_000_000, 200_000
    new["jobs"][0]["variants"][0]["activation_bytes"] = 25_000
    comparison = compare_runs(base, new, threshold=5)
    assert comparison["regressions"] == []  # twice the compute is a design change, not a regression
    rows = {(r[0], r[1]): r for r in comparison_rows(comparison)}
    assert rows[(job["id"], "MFLOPs (not gated)")][2:6] == ["3", "6", "+3", "+100.0%"]
    assert rows[(job["id"], "activation bytes (not gated)")][5] == "+100.0%"
    assert rows[(job["id"], "int8-dynamic activation bytes (not gated)")][5] == "-50.0%"
    assert comparison["jobs"][0]["flops"]["base"] == 3_000_000 and isinstance(comparison["jobs"][0]["flops"]["new"], int)
    # counted another way (a QDQ graph walked as ONNX Runtime fuses it): the row says so
    new["jobs"][0]["variants"][0]["activation_basis"] = "onnxruntime-fused"
    rows = {(r[0], r[1]): r for r in comparison_rows(compare_runs(base, new, threshold=5))}
    assert (job["id"], "int8-dynamic activation bytes, counted graph -> onnxruntime-fused (not gated)") in rows
    old = load("base")  # recorded before FLOPs were counted: no row rather than a change from nothing
    assert not any(r[1].startswith("MFLOPs") for r in comparison_rows(compare_runs(old, new)))
    lost = copy.deepcopy(new)  # NEW's export could not be followed: the figure it lost is said, not dropped
    lost["jobs"][0]["onnx"]["activation_bytes"] = None
    rows = {(r[0], r[1]): r for r in comparison_rows(compare_runs(base, lost))}
    assert rows[(job["id"], "activation bytes (not gated)")][2:4] == ["100,000", "-"]


def test_cold_start_changes_are_shown_and_never_gate():
    from harness.compare import comparison_rows

    base = load("base")
    job = base["jobs"][0]
    job["onnx"]["cold_start"] = {"ms": 4.0, "runs": 3, "rss_bytes": 2_000_000}
    job["variants"] = [{"variant": "int8-static", "bytes": 240_000, "metrics": {"accuracy": 0.99}, "latency": [],
                        "cold_start": {"ms": 5.0, "runs": 3}}]
    new = copy.deepcopy(base)
    new["jobs"][0]["onnx"]["cold_start"].update(ms=8.0, rss_bytes=1_000_000)
    new["jobs"][0]["variants"][0]["cold_start"] = {"error": "the probe process took longer than 300 s"}
    comparison = compare_runs(base, new, threshold=5)
    assert comparison["regressions"] == [] and comparison["jobs"][0]["cold_start_ms"]["pct"] == 100.0
    rows = {(r[0], r[1]): r for r in comparison_rows(comparison)}
    assert rows[(job["id"], "cold start ms (not gated)")][2:6] == ["4", "8", "+4", "+100.0%"]
    assert rows[(job["id"], "cold start RAM bytes (not gated)")][5] == "-50.0%"
    assert not any("int8-static cold start" in r[1] for r in comparison_rows(comparison))  # not in new: no row
    assert comparison["jobs"][0]["variants"]["int8-static"]["cold_start_ms"] == \
        {"base": 5.0, "new": None, "abs": None, "pct": None}
    failed = copy.deepcopy(new)
    failed["jobs"][0].update(status="failed", onnx=None)  # no export: the base's figure still shows, as bytes'
    assert compare_runs(base, failed)["jobs"][0]["cold_start_ms"] == {"base": 4.0, "new": None, "abs": None,
                                                                       "pct": None}
    new["jobs"][0]["onnx"]["cold_start"]["provider"] = "CUDAExecutionProvider"  # measured elsewhere: no change
    assert not any(r[1].startswith("cold start") for r in comparison_rows(compare_runs(base, new)))


def test_metrics_the_gate_does_not_judge_are_marked_not_gated():
    from harness.compare import comparison_rows

    new = load("base")
    for job in new["jobs"]:
        if job.get("metrics"):
            job["metrics"]["nll"] = job["metrics"]["nll"] * 3  # three times worse: shown, not gated
    comparison = compare_runs(load("base"), new, threshold=10)
    assert comparison["regressions"] == []
    labels = {r[1] for r in comparison_rows(comparison)}
    assert "nll (not gated)" in labels and "nll" not in labels
    assert "accuracy" in labels and "accuracy (not gated)" not in labels
    # which way a never-gated metric moved, by its recorded direction (nll: lower is better)
    flags = {r[-1] for r in comparison_rows(comparison) if r[1] == "nll (not gated)"}
    assert flags == {"worse"}
    better = load("base")
    for job in better["jobs"]:
        if job.get("metrics"):
            job["metrics"]["nll"] = job["metrics"]["nll"] / 3
    better["metric_specs"] = {"nll": {"higher_is_better": True}}  # a plugin's word for its metric wins
    flags = {r[-1] for r in comparison_rows(compare_runs(load("base"), better)) if r[1] == "nll (not gated)"}
    assert flags == {"worse"}
    assert {r[-1] for r in comparison_rows(compare_runs(load("base"), better))
            if r[1].startswith("accuracy")} <= {""}  # gated metrics say REGRESSION or nothing


def test_runs_made_differently_are_named_beside_the_figures():
    base, new = load("base"), load("base")
    assert compare_runs(base, new)["settings_differ"] == []
    new["config"] = {**new["config"], "seed": 3, "max_train_samples": 64,
                     "latency": {**(new["config"].get("latency") or {}), "min_time_s": 0.05}}
    new["environment"] = {**new["environment"], "hostname": "laptop", "cpu": "Intel Core"}
    base["config"] = {**base["config"], "latency": {"min_time_s": 0.5}}
    comparison = compare_runs(base, new)
    differ = {d["what"]: (d["base"], d["new"]) for d in comparison["settings_differ"]}
    assert differ == {"seed": (0, 3), "max_train_samples": (512, 64), "latency.min_time_s": (0.5, 0.05),
                      "hostname": ("ci", "laptop"), "cpu": ("AMD EPYC", "Intel Core")}
    text = format_comparison(comparison)
    assert "note: the runs were made differently" in text and "seed 0 -> 3" in text and "hostname ci -> laptop" in text
    # another runner of the same kind (a CI service names each anew): the note was on for every comparison
    runner = load("base")
    runner["environment"] = {**runner["environment"], "hostname": "fv-az771-123"}
    assert compare_runs(load("base"), runner)["settings_differ"] == []
    new["config"]["max_test_samples"], base["config"]["max_test_samples"] = 500, None
    assert "max_test_samples all -> 500" in format_comparison(compare_runs(base, new))  # not Python's None
    # options that decide which latency rows a run has: named, so "rows only in base" has its reason beside it
    new["config"]["batch_sizes"], base["config"]["batch_sizes"] = [1], [1, 32]
    new["config"]["threads"], base["config"]["threads"] = [1, 4], [1]
    new["config"]["providers"], base["config"]["providers"] = ["CPUExecutionProvider"], None
    text = format_comparison(compare_runs(base, new))
    assert "batch_sizes 1,32 -> 1" in text and "threads 1 -> 1,4" in text
    assert "providers default -> CPUExecutionProvider" in text
    from dataclasses import asdict

    from harness.latency import QUICK, LatencyConfig

    quick, full = load("base"), load("base")
    quick["config"] = {**quick["config"], "latency": asdict(QUICK)}
    full["config"] = {**full["config"], "latency": asdict(LatencyConfig())}
    assert compare_runs(quick, full)["settings_differ"] == [{"what": "latency", "base": "--quick", "new": "default"}]
    older = load("base")  # recorded before cold_runs existed: not a difference from a run that has it
    older["config"] = {**older["config"], "latency": {k: v for k, v in asdict(LatencyConfig()).items()
                                                      if k != "cold_runs"}}
    assert compare_runs(older, full)["settings_differ"] == []
    same_device = load("base")
    same_device["config"] = {**same_device["config"], "device": "auto"}  # auto resolved to the cpu both ran on
    assert compare_runs(load("base"), same_device)["settings_differ"] == []
    del new["config"]  # a joined report or an old run: nothing to compare against, nothing said
    assert "hostname" in {d["what"] for d in compare_runs(base, new)["settings_differ"]}
    assert "seed" not in {d["what"] for d in compare_runs(base, new)["settings_differ"]}


def test_a_resumed_run_is_judged_job_by_job_by_the_options_each_ran_with():
    # NEW was resumed with --max-train-samples 64 after its first job had finished with base's 512: the
    # run's config says 64, that job's trained_with says 512. Only the other jobs were made differently.
    base, new = load("base"), load("base")
    first, *others = [job["id"] for job in new["jobs"] if job["id"] in {j["id"] for j in base["jobs"]}]
    assert others
    new["config"] = {**new["config"], "max_train_samples": 64}
    for job in new["jobs"]:
        if job["id"] == first:
            job["trained_with"] = base["config"]
    comparison = compare_runs(base, new)
    assert comparison["settings_differ"] == [{"what": "max_train_samples", "base": 512, "new": 64, "jobs": others}]
    total = len(comparison["jobs"])
    assert f"max_train_samples 512 -> 64 ({len(others)} of {total} jobs: " in format_comparison(comparison)
    for job in new["jobs"]:  # every job resumed alike: the plain note, no list of jobs
        job.pop("trained_with", None)
    assert compare_runs(base, new)["settings_differ"] == [{"what": "max_train_samples", "base": 512, "new": 64}]


def test_a_run_that_stopped_before_some_jobs_or_is_still_being_written_is_said(tmp_path):
    from harness.results import RunFolder

    base = write_run(tmp_path / "base", load("base"))
    cut = load("same")
    cut.update(planned_jobs=[j["id"] for j in load("base")["jobs"]], interrupted=True)
    cut["config"] = {**(cut.get("config") or {}), "out": "ci/reports"}
    new = write_run(tmp_path / "new", cut)
    result = compare_cli(str(base), str(new), "--fail-on-regression", "10")
    assert result.returncode == 1 and "job missing in new" in result.stdout  # still a regression: nothing ran
    # the folder where it is now (a CI artifact downloaded elsewhere), not the id and --out it was written with
    assert (f"harness: warning: NEW ({new}) was interrupted before 1 of its planned jobs: they count as missing "
            f"(harness run --resume --run-id new --out {tmp_path} finishes it)") in result.stderr
    held = RunFolder(new, {}).lock()
    try:
        result = compare_cli(str(base), str(new), "--json")
    finally:
        held.unlock()
    assert f"NEW ({new}) is still being written by a harness run (pid" in result.stderr
    assert "still being written" in json.loads(result.stdout)["incomplete"]["new"]
    assert "BASE" not in result.stderr
    assert not (base / ".lock").exists()  # looking leaves no lock file in a run folder (a CI artifact)
    # a run still at its first job has no job in common yet: the error says it is still being written
    starting = write_run(tmp_path / "starting", {**load("same"), "jobs": []})
    held = RunFolder(starting, {}).lock()
    try:
        result = compare_cli(str(starting), str(base))
    finally:
        held.unlock()
    assert result.returncode == 2 and "have no job in common" in result.stderr
    assert f"; BASE ({starting}) is still being written by a harness run (pid" in result.stderr


def test_a_missing_base_says_where_a_baseline_comes_from(tmp_path):
    result = compare_cli(str(tmp_path / "reports" / "base"), str(RUNS / "same"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"no such run folder; BASE is an earlier run to compare against: make it once with harness run ... "
            f"--out {tmp_path / 'reports'} --run-id base") in result.stderr


# -- sweeps with repeated seeds: a sweep point's seeds gate as one ---------------------------------------------

SWEEP_RUN = Path(__file__).parent / "fixtures" / "report_run" / "results.json"
POINT = "mnist-enhanced-20k@synthetic#dropout=0.1"  # seeds 0, 1 and 2, all ok, in the fixture


def sweep_pair() -> tuple[dict, dict]:
    base = json.loads(SWEEP_RUN.read_text())
    return base, copy.deepcopy(base)


def seed_job(run: dict, seed: int) -> dict:
    return next(j for j in run["jobs"] if j["id"] == f"{POINT},seed={seed}")


def ort_row(job: dict, batch: int = 1, threads: int = 1) -> dict:
    return next(r for r in job["latency"] if (r["runtime"], r["batch_size"], r["threads"]) == ("onnxruntime", batch, threads))


def test_one_seed_moving_by_chance_does_not_gate_a_sweep_point_but_its_mean_does():
    base, new = sweep_pair()
    seed_job(new, 0)["metrics"]["accuracy"] -= 0.01  # one seed 1 point down, another 1 point up: mean unchanged
    seed_job(new, 1)["metrics"]["accuracy"] += 0.01
    comparison = compare_runs(base, new, threshold=10, accuracy_points=0.5)
    assert comparison["regressions"] == []
    (group,) = [g for g in comparison["seed_groups"] if g["id"] == POINT]
    assert group["seeds"] == [0, 1, 2] and group["n_ok"] == 3
    assert group["metrics"]["accuracy"]["abs"] == pytest.approx(0) and group["metrics"]["accuracy"]["n"] == 3
    text = format_comparison(comparison)
    assert f"{POINT},seed=0" in text and "accuracy (not gated: seed mean)" in text
    # without a gate, a seed's own accuracy row says the same (its latency rows did; the accuracy row did not)
    assert "accuracy (not gated: seed mean)" in format_comparison(compare_runs(base, new))
    assert f"{POINT} [seeds 0,1,2]" in text and "note: 2 sweep point(s) with repeated seeds" in text
    # --per-seed: the old judgement, seed by seed
    per_seed = compare_runs(base, new, threshold=10, accuracy_points=0.5, per_seed=True)
    assert per_seed["seed_groups"] == []
    assert [r.split(":")[0] for r in per_seed["regressions"]] == [f"{POINT},seed=0"]

    for seed in (0, 1, 2):  # every seed down 0.6 points: the mean is
        seed_job(new, seed)["metrics"]["accuracy"] = seed_job(base, seed)["metrics"]["accuracy"] - 0.006
    comparison = compare_runs(base, new, threshold=10, accuracy_points=0.5)
    (regression,) = comparison["regressions"]
    assert regression.startswith(f"{POINT} [seeds 0,1,2]: accuracy (mean of 3 seeds) dropped 0.60 points")
    row = next(line for line in format_comparison(comparison).splitlines()
               if line.startswith(f"{POINT} [seeds") and "accuracy, mean of 3" in line and "onnx" not in line)
    assert "REGRESSION" in row and "±" in row and "-0.60 pts" in row


def test_a_sweep_point_gates_on_the_median_p50_over_its_seeds():
    base, new = sweep_pair()
    ort_row(seed_job(new, 2))["p50_ms"] *= 1.5  # one seed's row 50 % slower: noise, the median holds
    comparison = compare_runs(base, new, threshold=10)
    assert comparison["regressions"] == []
    assert "(not gated: seed median)" in format_comparison(comparison)
    assert compare_runs(base, new, threshold=10, per_seed=True)["regressions"]
    for seed in (0, 1):  # two of three slower: the median is
        ort_row(seed_job(new, seed))["p50_ms"] *= 1.3
    (regression,) = compare_runs(base, new, threshold=10)["regressions"]
    assert regression.startswith(f"{POINT} [seeds 0,1,2]: median of 3 seeds' p50 onnxruntime/CPUExecutionProvider "
                                 "batch 1 threads 1 grew")
    # a row either run marked unstable sits out, and the line says of how many seeds the median is
    ort_row(seed_job(new, 2))["stable"] = False
    (regression,) = compare_runs(base, new, threshold=10)["regressions"]
    assert regression.startswith(f"{POINT} [seeds 0,1,2]: median of 2 of 3 seeds' p50 ")
    ort_row(seed_job(new, 1))["stable"] = False
    (regression,) = compare_runs(base, new, threshold=10)["regressions"]
    assert regression.startswith(f"{POINT} [seeds 0,1,2]: median of 1 of 3 seeds' p50 ")
    # with every seed's unstable the p50s are noise: the row gates on the median of NEW's fastest calls against
    # BASE's median p50 (0.051 ms), which the slower p50s alone do not cross
    for seed in (0, 1, 2):
        ort_row(seed_job(new, seed))["stable"] = False
    comparison = compare_runs(base, new, threshold=10)
    assert comparison["regressions"] == [] and (comparison["floor_rows"], comparison["unstable_rows"]) == (1, 0)
    (lat,) = [r for g in comparison["seed_groups"] if g["id"] == POINT for r in g["latency"]
              if (r["runtime"], r["batch_size"], r["threads"]) == ("onnxruntime", 1, 1)]
    assert lat["gated"] and lat["gated_on"] == "min" and lat["floor"]["n"] == 3
    assert (lat["floor"]["base"], lat["floor"]["new"]) == (0.051, 0.04845)
    assert "t1 of 3 (unstable: gated on its seeds' median fastest call, 0.04845 ms)" in format_comparison(comparison)
    for seed in (0, 1):  # two of three seeds' fastest calls 30 % over base's median p50: the median is
        ort_row(seed_job(new, seed))["min_ms"] = 0.051 * 1.3
    (detail,) = compare_runs(base, new, threshold=10)["regression_details"]
    assert detail["gated_on"] == "min" and detail["min_pct"] == pytest.approx(30.0)
    assert detail["text"].startswith(f"{POINT} [seeds 0,1,2]: median of 3 seeds' p50 ")
    assert detail["text"].endswith("; unstable, so gated on the median of 3 seeds' fastest calls: 0.0663 ms, "
                                   "30.0% over their median p50 in base")
    for seed in (0, 1, 2):  # no fastest call recorded: not gated at all, and counted
        del ort_row(seed_job(new, seed))["min_ms"]
    comparison = compare_runs(base, new, threshold=10)
    assert comparison["regressions"] == [] and (comparison["floor_rows"], comparison["unstable_rows"]) == (0, 1)


def test_a_seed_that_failed_or_lost_a_row_is_still_a_regression_of_its_own():
    base, new = sweep_pair()
    failed = seed_job(new, 1)
    failed.update(status="failed", stage="export", error="boom")
    regressions = compare_runs(base, new, threshold=10)["regressions"]
    assert regressions == [f"{POINT},seed=1: was ok, now failed at export (boom)"]
    base, new = sweep_pair()
    seed_job(new, 2)["latency"].remove(ort_row(seed_job(new, 2), batch=32, threads=2))
    regressions = compare_runs(base, new, threshold=10)["regressions"]
    assert regressions == [f"{POINT},seed=2: p50 onnxruntime/CPUExecutionProvider batch 32 threads 2 missing in new"]


def test_a_sweep_point_compares_the_seeds_both_runs_have(tmp_path):
    base, new = sweep_pair()
    new["jobs"].remove(seed_job(new, 2))  # NEW ran seeds 0 and 1 only
    seed_job(base, 2)["metrics"]["accuracy"] = 0.5  # base's seed 2, an outlier NEW has no counterpart for
    comparison = compare_runs(base, new)
    (group,) = [g for g in comparison["seed_groups"] if g["id"] == POINT]
    assert group["seeds"] == [0, 1] and group["metrics"]["accuracy"]["abs"] == pytest.approx(0)
    # with a gate, the seed NEW lacks is a lost job
    assert compare_runs(base, new, accuracy_points=1)["regressions"] == [
        f"{POINT},seed=2: job missing in new (was ok in base)"]


def test_compare_per_seed_option(tmp_path):
    base, new = sweep_pair()
    seed_job(new, 0)["metrics"]["accuracy"] -= 0.02
    seed_job(new, 1)["metrics"]["accuracy"] += 0.02
    paths = [write_run(tmp_path / name, run) for name, run in (("base", base), ("new", new))]
    keep = ["--max-accuracy-drop", "1"]
    assert compare_cli(*map(str, paths), *keep).returncode == 0
    assert compare_cli(*map(str, paths), *keep, "--per-seed").returncode == 1


def test_a_plugin_metric_that_asks_for_the_gate_is_judged_as_accuracy_is_either_way_it_points():
    from harness.compare import comparison_rows

    base, new = load("base"), load("base")
    for run, top5, error in ((base, 0.99, 0.01), (new, 0.95, 0.04)):  # 4 and 3 points worse
        for job in run["jobs"]:
            if job.get("metrics"):
                job["metrics"].update({"top5": top5, "error-rate": error})
    specs = {"top5": {"higher_is_better": True, "gate": True}, "error-rate": {"higher_is_better": False, "gate": True}}
    new["metric_specs"] = specs
    comparison = compare_runs(base, new, threshold=2)
    jobs = [j["id"] for j in new["jobs"] if j.get("metrics")]
    assert {f"{j}: top5 dropped 4.00 points (0.9900 -> 0.9500)" for j in jobs} <= set(comparison["regressions"])
    assert {f"{j}: error-rate rose 3.00 points (0.0100 -> 0.0400)" for j in jobs} <= set(comparison["regressions"])
    labels = {r[1] for r in comparison_rows(comparison)}
    assert {"top5", "error-rate"} <= labels  # gated: no "(not gated)" mark, shown in points
    assert compare_runs(base, new, threshold=5)["regressions"] == []  # within the threshold
    # without the plugin's word (a run from before gate, or gate=False) they are shown and not gated
    new["metric_specs"] = {name: {**spec, "gate": False} for name, spec in specs.items()}
    comparison = compare_runs(base, new, threshold=2)
    assert comparison["regressions"] == []
    assert {"top5 (not gated)", "error-rate (not gated)"} <= {r[1] for r in comparison_rows(comparison)}
    del new["metric_specs"]
    assert compare_runs(base, new, threshold=2)["regressions"] == []


def test_metric_specs_record_whether_compare_gates_each_metric():
    from harness import MetricSpec
    from harness.registry import build_registry
    from harness.runner import metric_specs
    from harness.specs import spec_problem

    registry = build_registry()
    specs = metric_specs(registry, list(registry.metrics.values()))
    assert (specs["accuracy"]["gate"], specs["macro-f1"]["gate"], specs["nll"]["gate"]) == (True, True, False)
    assert "gate" in (spec_problem(MetricSpec("m", len, gate="yes")) or "")


def test_flagged_only_keeps_the_flagged_rows_and_counts_the_rest(tmp_path):
    from harness.compare import comparison_rows

    comparison = compare_runs(load("base"), load("regressed"), threshold=10)
    flagged = [r for r in comparison_rows(comparison) if r[-1]]
    assert flagged and len(flagged) < len(comparison_rows(comparison))
    text = format_comparison(comparison, flagged_only=True)
    assert f"({len(comparison_rows(comparison)) - len(flagged):,} unflagged row(s) left out by --flagged-only" in text
    assert text.count("REGRESSION") == len([r for r in flagged if r[-1] == "REGRESSION"]) + 1  # rows + verdict
    assert "REGRESSIONS (p50 +10%, accuracy or macro-F1 -10 points):" in text
    result = compare_cli(str(RUNS / "base"), str(RUNS / "same"), "--flagged-only")
    assert result.returncode == 0 and "(no flagged row; the lines below say what is missing)" in result.stdout
    # a plugin's gated metric is named in the rule
    new = load("regressed")
    new["metric_specs"] = {"top5": {"higher_is_better": True, "gate": True}}
    assert "accuracy, macro-F1 or top5 -10 points" in format_comparison(compare_runs(load("base"), new, threshold=10))


def test_a_gpu_providers_rows_at_other_thread_counts_an_older_run_timed_are_not_lost():
    """GPU providers are timed at one thread count now; a baseline from before has a row per count, which the
    gate read as lost measurements: the README's CI gate failed on unchanged code."""
    import copy

    from harness.compare import compare_runs

    base, new = load("base"), copy.deepcopy(load("base"))
    job = base["jobs"][0]
    cuda = {**job["latency"][0], "provider": "CUDAExecutionProvider", "batch_size": 1}
    job["latency"] += [{**cuda, "threads": 1}, {**cuda, "threads": 4}]
    new["jobs"][0]["latency"] += [{**cuda, "threads": 1}]
    assert compare_runs(base, new, 10.0)["regressions"] == []
    new["jobs"][0]["latency"] = [r for r in new["jobs"][0]["latency"] if r["provider"] != "CUDAExecutionProvider"]
    lost = compare_runs(base, new, 10.0)["regressions"]  # no CUDA row at all: both lost, as before
    assert len(lost) == 2 and all("CUDAExecutionProvider batch 1 threads" in line for line in lost), lost


def test_each_regression_is_also_a_dict_a_script_can_filter():
    """``regressions`` is prose: a script that wants only the latency regressions (or the accuracy drop in the
    points the gate judged, where a change's ``pct`` is relative) reads ``regression_details``, one dict per line."""
    base, new = load("base"), load("regressed")  # mnist-mlp b1 t1 p50 +40 %, mnist-cnn accuracy -3 points
    mlp, cnn, rough = new["jobs"]
    mlp["latency"] = [r for r in mlp["latency"] if (r["runtime"], r["batch_size"], r["threads"]) != ("onnxruntime", 32, 2)]
    rough.update(status="failed", stage="export", error="boom")
    new["jobs"].append({**copy.deepcopy(rough), "id": "extra@synthetic"})  # only in new: never a regression
    base["jobs"].append({**copy.deepcopy(base["jobs"][0]), "id": "gone@synthetic"})
    comparison = compare_runs(base, new, threshold=2)
    details = comparison["regression_details"]
    assert [d["text"] for d in details] == comparison["regressions"]  # the same regressions, in the same order
    by_kind = {}
    for detail in details:
        by_kind.setdefault(detail["kind"], []).append(detail)
    assert set(by_kind) == {"latency", "metric", "status", "lost_job", "lost_row"}
    (latency,) = by_kind["latency"]
    assert {k: latency[k] for k in ("job", "variant", "runtime", "provider", "batch_size", "threads")} == {
        "job": "mnist-mlp@synthetic", "variant": None, "runtime": "onnxruntime", "provider": "CPUExecutionProvider",
        "batch_size": 1, "threads": 1}
    assert latency["pct"] == pytest.approx(40.0, abs=0.01) and latency["abs_ms"] == pytest.approx(0.0069, abs=1e-4)
    accuracy = next(d for d in by_kind["metric"] if d["measure"] == "accuracy")
    assert (accuracy["job"], accuracy["metric"]) == ("mnist-cnn@synthetic", "accuracy")
    # whose accuracy, as a latency regression names its model (it was only in the measure's label)
    assert (accuracy["runtime"], accuracy["variant"]) == ("torch", None)
    from harness.compare import _metric_model

    assert _metric_model("onnx ") == {"runtime": "onnxruntime", "variant": None}
    assert _metric_model("int8-dynamic ") == {"runtime": "onnxruntime", "variant": "int8-dynamic"}
    assert accuracy["points"] == pytest.approx(3.0) and (accuracy["base"], accuracy["new"]) == (0.9902, 0.9602)
    assert [(d["job"], d["status"], d["stage"], d["error"]) for d in by_kind["status"]] == [
        ("mnist-rough-cnn@synthetic", "failed", "export", "boom")]
    assert [d["job"] for d in by_kind["lost_job"]] == ["gone@synthetic"]
    (row,) = by_kind["lost_row"]
    assert (row["job"], row["runtime"], row["batch_size"], row["threads"]) == ("mnist-mlp@synthetic", "onnxruntime", 32, 2)
    assert compare_runs(base, new)["regression_details"] == [by_kind["status"][0]]  # no threshold: a failed job only


def test_the_json_output_lists_each_regression_as_a_dict_too(tmp_path):
    result = CliRunner().invoke(main, ["compare", str(RUNS / "base"), str(RUNS / "regressed"), "--json",
                                       "--fail-on-regression", "10"])
    data = json.loads(result.output)
    assert [d["text"] for d in data["regression_details"]] == data["regressions"] and data["regressions"]
    assert data["regression_details"][0]["kind"] == "latency"


def test_a_variants_and_a_seed_groups_regressions_name_the_variant():
    base = load("base")
    base["jobs"][0]["variants"] = [{"variant": "int8-dynamic", "metrics": {"accuracy": 0.99},
                                    "latency": [dict(ort_row(base["jobs"][0]))]}]
    new = copy.deepcopy(base)
    new["jobs"][0]["variants"][0]["latency"][0]["p50_ms"] *= 2
    (detail,) = compare_runs(base, new, threshold=10)["regression_details"]
    assert (detail["kind"], detail["variant"], detail["batch_size"]) == ("latency", "int8-dynamic", 1)
    new["jobs"][0]["variants"][0]["latency"] = []
    (detail,) = compare_runs(base, new, threshold=10)["regression_details"]
    assert (detail["kind"], detail["variant"], detail["threads"]) == ("lost_row", "int8-dynamic", 1)
    base, new = sweep_pair()
    for seed in (0, 1, 2):
        ort_row(seed_job(new, seed))["p50_ms"] *= 2
    details = compare_runs(base, new, threshold=10)["regression_details"]
    assert details and all(d["kind"] == "latency" and d["job"].startswith(f"{POINT} [seeds ") for d in details)



def test_jobs_without_an_id_are_matched_by_model_dataset_and_point_and_two_with_one_id_are_refused():
    """A results.json written to the contract's job fields alone (no id): compare merged every job into one,
    'None', and lost the rest without a word."""
    base, new = load("base"), load("base")
    for document in (base, new):
        for job in document["jobs"]:
            del job["id"]
    comparison = compare_runs(base, new)
    expected = {j["id"] for j in load("base")["jobs"]}  # the ids the harness gives them
    assert {job["id"] for job in comparison["jobs"]} == expected and len(expected) == len(base["jobs"])
    twice = load("base")
    twice["jobs"].append(copy.deepcopy(twice["jobs"][0]))
    with pytest.raises(HarnessError, match="two jobs have the id"):
        compare_runs(load("base"), twice)


def test_a_group_of_many_seeds_is_labelled_by_its_range():
    from harness.compare import _group_label

    assert _group_label("m@d#lr=0.1", list(range(100))) == "m@d#lr=0.1 [seeds 0-99]"


def _at_boundary(base_accuracy: float, new_accuracy: float, base_p50: float, new_p50: float) -> tuple[dict, dict]:
    """BASE and NEW alike but for every job's accuracy and every stable ONNX Runtime row's p50."""
    runs = []
    for accuracy, p50 in ((base_accuracy, base_p50), (new_accuracy, new_p50)):
        run = load("base")
        for job in run["jobs"]:
            job["metrics"] = {"accuracy": accuracy}
            job["onnx"] = {**(job.get("onnx") or {}), "metrics": {"accuracy": accuracy}}
            job["latency"] = [dict(r, p50_ms=p50, min_ms=p50, stable=True) for r in job.get("latency") or []
                              if r.get("runtime") == "onnxruntime"]
        runs.append(run)
    return runs[0], runs[1]


@pytest.mark.parametrize("base_acc, new_acc, points, failed", [
    (0.9912, 0.9862, 0.5, False), (0.99, 0.98, 1.0, False), (0.9912, 0.9861, 0.5, True)])
def test_a_change_of_exactly_the_threshold_passes_as_more_than_says(base_acc, new_acc, points, failed):
    """0.9912 -> 0.9862 is 0.5000000000000004 points in floats: --max-accuracy-drop 0.5 failed it, printing
    "dropped 0.50 points"; p50 1.0 -> 1.1 ms failed --fail-on-regression 10 as 10.000000000000009 %."""
    base, new = _at_boundary(base_acc, new_acc, 1.0, 1.0)
    assert bool(compare_runs(base, new, accuracy_points=points)["regressions"]) is failed
    base, new = _at_boundary(0.99, 0.99, 1.0, 1.1)
    assert compare_runs(base, new, threshold=10)["regressions"] == []
    base, new = _at_boundary(0.99, 0.99, 1.0, 1.1001)
    assert compare_runs(base, new, threshold=10)["regressions"]


def test_a_new_run_stopped_before_its_first_job_loses_every_job_not_a_usage_error(tmp_path):
    """A PR run killed in its first job (an OOM, a timeout) has no job row: compare said "no job in common"
    and exited 2, which a workflow reads as "the gate could not run", though its jobs were planned and lost."""
    new = load("base")
    new.update(run_id="killed", planned_jobs=[j["id"] for j in new["jobs"]], jobs=[], interrupted=True)
    comparison = compare_runs(load("base"), new, threshold=10)
    assert {d["kind"] for d in comparison["regression_details"]} == {"lost_job"}
    assert len(comparison["regressions"]) == sum(j["status"] == "ok" for j in load("base")["jobs"])
    folder = write_run(tmp_path / "killed", new)
    result = compare_cli(str(RUNS / "base"), str(folder), "--fail-on-regression", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "note: NEW was interrupted before" in result.stdout  # in the log's summary, not on stderr alone
    assert "(no flagged row; the lines below say what is missing)" in result.stdout
    unrelated = {**new, "planned_jobs": ["cnn3d-sequential@synthetic3d"]}
    with pytest.raises(HarnessError, match="have no job in common"):  # not BASE's jobs: still unrelated runs
        compare_runs(load("base"), unrelated, threshold=10)


def test_the_comparison_says_its_verdict_for_a_bot_and_in_markdown_for_a_step_summary():
    from harness.compare import compare_folders

    def verdict(new: str, **gates):
        comparison = compare_folders(RUNS / "base", RUNS / new, warn=lambda line: None, **gates)
        return comparison["verdict"], comparison["exit_status"]

    assert verdict("regressed", threshold=10) == ("fail", 1)
    assert verdict("same", threshold=10, per_seed=False) == ("fail", 1)  # a job of base is missing
    assert verdict("regressed") == ("no_gate", 0)
    assert verdict("regressed", threshold=50, accuracy_points=50) == ("pass", 0)
    result = compare_cli(str(RUNS / "base"), str(RUNS / "regressed"), "--fail-on-regression", "2", "--markdown",
                         "--flagged-only")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "### harness compare `base` → `regressed`"
    assert lines[2] == "**REGRESSIONS (p50 +2%, accuracy or macro-F1 -2 points):**"
    assert "- mnist-cnn@synthetic: accuracy dropped 3.00 points (0.9902 -\\> 0.9602)" in lines
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| job | measure | base | new | change | change % | flag |" and len(table) > 2
    assert all(line.endswith("| REGRESSION |") or line.endswith("|  |") or "flag" in line or "---" in line
               for line in table)
    both = compare_cli(str(RUNS / "base"), str(RUNS / "same"), "--json", "--markdown")
    assert both.returncode == 2 and "choose one" in both.stderr

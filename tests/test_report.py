"""Reports (CSV, Markdown, the shared tables, seed summaries) built from a stored results.json fixture."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import re
from pathlib import Path

import pytest
from conftest import write_run
from fixtures.shared import rendered_report_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import report, report_html
from harness.report import (
    candidates,
    pareto_front,
    results_table,
    seed_summary,
    summary_rows,
    to_csv,
    to_markdown,
    write_reports,
)

FIXTURES = Path(__file__).parent / "fixtures"
SCRIPT_NAME = '<script>alert("pwned")</script>'


@pytest.fixture
def results() -> dict:
    return json.loads((FIXTURES / "report_run" / "results.json").read_text())


def joined(*documents: dict) -> dict:
    """The document ``harness report A B --out DIR`` builds (see cli.report_command)."""
    return {"schema_version": 1, "run_id": "+".join(d["run_id"] for d in documents),
            "created": max(d["created"] for d in documents), "environment": documents[0]["environment"],
            "jobs": [{**job, "id": f"{d['run_id']}:{job.get('id')}", "run_id": d["run_id"],
                      "run_config": d.get("config")} for d in documents for job in d["jobs"]]}


# -- seeds -------------------------------------------------------------------------------------------------


def test_seed_summary_gives_mean_and_sample_std_over_seeds(results):
    groups = {s["settings"]["dropout"]: s for s in seed_summary(results)}
    assert set(groups) == {0.1, 0.05}
    full = groups[0.1]
    assert (full["model"], full["dataset"], full["seeds"], full["n"], full["n_ok"]) == (
        "mnist-enhanced-20k", "synthetic", [0, 1, 2], 3, 3)
    assert full["measures"]["accuracy"]["mean"] == pytest.approx(0.96)
    assert full["measures"]["accuracy"]["std"] == pytest.approx(0.01)  # sample std (n-1)
    assert full["measures"]["train_seconds"]["mean"] == pytest.approx(5.0)
    partial = groups[0.05]  # seed 2 failed: summarised over the two that finished
    assert (partial["n"], partial["n_ok"]) == (3, 2)
    assert partial["measures"]["onnx_accuracy"]["mean"] == pytest.approx(0.95)
    assert partial["measures"]["onnx_accuracy"]["std"] == pytest.approx(math.sqrt(2) * 0.01)


def test_seeds_csv_holds_the_seed_tables_figures_with_a_confidence_interval(results, tmp_path):
    """A paper's table cites mean ± a 95 % interval: it was in report.md only, as text, without the interval."""
    rows = list(csv.DictReader(io.StringIO(report.seeds_csv(results))))
    groups = {r["settings"]: r for r in rows}
    assert set(groups) == {"dropout=0.1", "dropout=0.05"}
    full = groups["dropout=0.1"]
    assert (full["model"], full["seeds"], full["jobs"], full["ok"]) == ("mnist-enhanced-20k", "0,1,2", "3", "3")
    assert {r["run_id"] for r in rows} == {results["run_id"]}  # a run's own jobs carry no run_id: the run's
    assert float(full["accuracy_mean"]) == pytest.approx(0.96) and float(full["accuracy_std"]) == pytest.approx(0.01)
    assert float(full["accuracy_ci95"]) == pytest.approx(4.303 * 0.01 / math.sqrt(3))  # t(0.975, 2)
    assert full["accuracy_n"] == "3" and float(full["accuracy_min"]) <= 0.96 <= float(full["accuracy_max"])
    assert report.seeds_csv({**results, "jobs": [j for j in results["jobs"] if not j.get("point")]}) is None
    for df, exact in ((1, 12.7062), (2, 4.3027), (30, 2.0423), (31, 2.0395), (40, 2.0211), (100, 1.9840)):
        assert report.t975(df) == pytest.approx(exact, abs=1e-3), df
    written = write_reports(tmp_path, results)
    assert tmp_path / "seeds.csv" in written and (tmp_path / "seeds.csv").read_text() == report.seeds_csv(results)
    write_reports(tmp_path, {**results, "jobs": results["jobs"][:1]})  # a rebuild with no seeds: no stale file
    assert not (tmp_path / "seeds.csv").exists()


def test_seed_p50_leaves_out_unstable_rows_as_compares_median_does(results):
    """The Seeds p50 averaged every seed's row, a preempted one's 20x p50 too, where compare's median leaves
    rows marked unstable out: the two tools disagreed on one run's latency."""
    jobs = [j for j in results["jobs"] if (j.get("point") or {}).get("dropout") == 0.1]
    rows = [report.headline_latency(j) for j in jobs]
    assert all(r and r.get("p50_ms") is not None for r in rows)
    steady = [r["p50_ms"] for r in rows[:2]]
    rows[2].update(stable=False, p50_ms=20 * max(steady))
    (group,) = [s for s in seed_summary(results) if s["settings"].get("dropout") == 0.1]
    stat = group["measures"]["p50_ms"]
    assert (stat["n"], group["p50_unstable"], group["p50_all_unstable"]) == (2, 1, False)
    assert stat["mean"] == pytest.approx(sum(steady) / 2)
    section = to_markdown(results).split("## Seeds")[1].split("\n## ")[0]
    assert "(n=2 of 3)" in section and "marked unstable" in section
    csv_rows = {r["settings"]: r for r in csv.DictReader(io.StringIO(report.seeds_csv(results)))}
    assert csv_rows["dropout=0.1"]["p50_ms_unstable"] == "1" and csv_rows["dropout=0.1"]["p50_ms_n"] == "2"
    for row in rows:  # none held: the mean of them all, starred
        row["stable"] = False
    (group,) = [s for s in seed_summary(results) if s["settings"].get("dropout") == 0.1]
    assert group["p50_all_unstable"] and group["measures"]["p50_ms"]["n"] == 3
    assert report._seed_cell(group, "p50_ms", ".3f").endswith(report.UNSTABLE_MARK)


def test_seed_summary_leaves_out_jobs_without_replicates(results):
    results["jobs"] = [j for j in results["jobs"] if (j.get("point") or {}).get("seed") in (None, 0)]
    assert seed_summary(results) == []


def test_seed_summary_keeps_joined_runs_apart(results):
    other = copy.deepcopy(results)
    other["run_id"] = "other"
    groups = seed_summary(joined(results, other))
    assert len(groups) == 4 and {g["run_id"] for g in groups} == {"fixture-report", "other"}
    assert all(g["n"] == 3 for g in groups)


def test_seed_summary_keeps_seeds_trained_with_other_options_apart(results):
    """A seed sweep at --epochs 1, resumed with --epochs 3 and more seeds: one row had averaged them all."""
    jobs = [j for j in results["jobs"] if (j.get("point") or {}).get("dropout") == 0.1]
    earlier = {**results["config"], "epochs": 1}
    for job in jobs[:2]:
        job["trained_with"] = earlier
    results["config"] = {**results["config"], "epochs": 3}
    (row,) = [s for s in seed_summary(results) if s["settings"].get("dropout") == 0.1]  # seed 2 alone: no row
    assert (row["seeds"], row["settings"]) == ([0, 1], {"dropout": 0.1, "epochs": 1})  # said apart from seed 2's
    assert [s["n"] for s in seed_summary(results) if s["settings"].get("dropout") == 0.05] == [3]  # untouched


def test_the_terminal_table_says_what_only_the_reports_show(results):
    last = report.comparison_table(results).splitlines()[-1]
    assert last.startswith("in report.md and report.html: Seeds (mean ± std over 2 group(s) of seeds); Variants (")
    plain = {**results, "jobs": [{**j, "variants": [], "point": None} for j in results["jobs"]]}
    assert "in report.md and report.html" not in report.comparison_table(plain)


def test_markdown_shows_the_seed_summary(results):
    markdown = to_markdown(results)
    section = markdown.split("## Seeds")[1].split("\n## ")[0]
    assert "0.9600 ± 0.0100" in section and "0.9500 ± 0.0141" in section and "2/3" in section


# -- training cost ----------------------------------------------------------------------------------------


def test_the_last_epochs_accuracy_names_the_split_it_scored(results):
    job = next(j for j in results["jobs"] if isinstance(j.get("train"), dict))
    job["train"].update(history=[{"epoch": 1, "eval_accuracy": 0.0762}], evaluated_on="val")
    table = report.training_table({**results, "jobs": [job]})
    assert table.rows[0][table.headers.index("final eval accuracy (split)")] == "0.0762 val"
    # and the best epoch's, which the seeds' sweep tables report (the first of equals)
    job["train"]["history"] = [{"epoch": e, "eval_accuracy": a} for e, a in ((1, 0.9), (2, 0.95), (3, 0.95), (4, 0.93))]
    table = report.training_table({**results, "jobs": [job]})
    assert table.rows[0][table.headers.index("best (epoch)")] == "0.9500 (2)"


def test_training_table_shows_speed_options_and_time_to_target(results):
    jobs = [j for j in results["jobs"] if isinstance(j.get("train"), dict)]
    fast, slow = copy.deepcopy(jobs[0]), copy.deepcopy(jobs[0])
    fast["train"].update(device="cuda", amp="bf16", epochs=4, seconds=0.8, target_accuracy=0.99,
                         time_to_target_s=0.6, cuda_graphs={"used": True, "reason": None, "graphs": {"512": 10}})
    slow["train"].update(device="cpu", amp=None, channels_last=True, epochs=2, seconds=30.0, target_accuracy=0.99,
                         time_to_target_s=None, peak_memory_kind="job_peak_rss",
                         peak_memory_bytes=900 * 2**20, memory_at_start_bytes=650 * 2**20,
                         cuda_graphs={"used": False, "reason": "CUDA graphs need a CUDA device"})
    table = report.training_table({**results, "jobs": [fast, slow]})
    col = {name: i for i, name in enumerate(table.headers)}
    first, second = table.rows
    assert first[col["device"]] == "cuda" and first[col["training options"]] == "bf16, CUDA graph"
    assert first[col["time to target s"]] == "0.60" and first[col["target"]] == "0.9900"  # a fraction, as elsewhere
    assert second[col["training options"]] == "channels-last, no CUDA graph (CUDA graphs need a CUDA device)"
    assert second[col["time to target s"]] == "not reached" and second[col["s / epoch"]] == "15.00"
    assert (second[col["peak memory MiB"]], second[col["above start MiB"]]) == ("900", "250")
    fast["train"].pop("memory_at_start_bytes", None)  # CUDA: no resident-set baseline
    assert report.training_table({**results, "jobs": [fast]}).rows[0][col["above start MiB"]] == "-"
    markdown = to_markdown({**results, "jobs": [fast, slow]})
    assert "## Training\n" in markdown and "bf16, CUDA graph" in markdown


def test_seed_summary_averages_time_to_target(results):
    base = next(j for j in results["jobs"] if isinstance(j.get("train"), dict))
    jobs = []
    for seed, reached in ((0, 0.5), (1, 0.7), (2, None)):
        job = copy.deepcopy(base)
        job.update(status="ok", point={"seed": seed}, id=f"fast-{seed}")
        job["train"]["time_to_target_s"] = reached
        jobs.append(job)
    (summary,) = seed_summary({**results, "jobs": jobs})
    stat = summary["measures"]["time_to_target_s"]
    assert stat["n"] == 2 and stat["mean"] == pytest.approx(0.6)  # the seed that never reached it is not averaged
    assert "0.60 ± 0.14 (n=2 of 3)" in to_markdown({**results, "jobs": jobs})
    for job in jobs:
        job["train"].update(time_to_target_s=None, target_accuracy=0.99)
    seeds = to_markdown({**results, "jobs": jobs}).split("## Seeds")[1].split("\n## ")[0]
    assert "| not reached |" in seeds
    for job in jobs:  # a recipe without a target has nothing to reach
        job["train"]["target_accuracy"] = None
    seeds = to_markdown({**results, "jobs": jobs}).split("## Seeds")[1].split("\n## ")[0]
    assert "not reached" not in seeds


# -- Pareto front ---------------------------------------------------------------------------------------------


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 0.90), (2.0, 0.95), (1.5, 0.89), (3.0, 0.95), (0.5, 0.80), (2.5, 0.97), (1.0, 0.90)]
    assert pareto_front(points) == [4, 0, 1, 5]


def test_candidates_mark_the_front_per_dataset_variants_included(results):
    front = {(c["dataset"], c["label"]) for c in candidates(results) if c["pareto"]}
    assert front == {("synthetic", "mnist-mlp"), ("synthetic", "mnist-mlp int8-dynamic"),
                     ("demo-blobs", SCRIPT_NAME)}


# -- tables and Markdown ----------------------------------------------------------------------------------------


def test_results_table_has_every_job_and_latency_per_batch_and_threads(results):
    table = results_table(results)
    assert len(table.rows) == len(results["jobs"])
    for heading in ("b1 t1 p50 / p99 ms", "b32 t1 p50 / p99 ms", "b1 t2 p50 / p99 ms", "b32 t2 p50 / p99 ms",
                    "accuracy PyTorch", "accuracy ORT", "ONNX KiB", "train s", "peak memory MiB"):
        assert heading in table.headers
    rows = {(r[0], r[1], r[2]): dict(zip(table.headers, r)) for r in table.rows}
    mlp = rows[("mnist-mlp", "synthetic", "-")]
    assert mlp["b1 t1 p50 / p99 ms"] == "0.0173 / 0.0329" and mlp["accuracy ORT"] == "0.9922"
    failed = rows[("cnn3d-resnet", "synthetic3d", "-")]
    assert failed["status"] == "failed (export)" and failed["accuracy ORT"] == "-" and failed["ONNX KiB"] == "-"
    skipped = rows[("mnist-cnn", "synthetic3d", "-")]
    assert skipped["status"] == "skipped (plan)" and skipped["params"] == "-"


def test_markdown_has_every_section_and_escapes_plugin_names(results):
    markdown = to_markdown(results)
    for heading in ("## Results", "## Seeds", "## Accuracy vs latency", "## Training curves", "## Latency",
                    "## Variants", "## Published reference figures", "## Failed and skipped jobs", "## Environment"):
        assert heading in markdown, heading
    assert "| mnist-mlp |" in markdown
    assert "<script>" not in markdown and r"\<script\>" in markdown
    assert "quantize_static: no calibration data" in markdown  # failed variant's note
    assert "RuntimeError: torch.onnx.export failed" in markdown  # failed job's error
    reference = markdown.split("## Published reference figures")[1].split("\n## ")[0]
    assert "| mnist-baseline-20k | synthetic | mnist | 19,664 | 19,664 | yes |" in reference
    assert "test_accuracy=0.9931" in reference


def test_reference_table_compares_training_time_with_the_published_one(results):
    job = copy.deepcopy(next(j for j in results["jobs"] if isinstance(j.get("train"), dict)))
    job["reference"] = {"params": job["params"], "test_accuracy": 0.9919, "train_minutes": 5, "source": "seed 002",
                        "dataset": job["dataset"], "epochs": job["train"]["epochs"]}
    job["train"]["seconds"] = 12.5
    config = {**results["config"], "max_train_samples": None}  # the published budget: whole split, all epochs
    table = report.reference_table({**results, "config": config, "jobs": [job]})
    col = {name: i for i, name in enumerate(table.headers)}
    (row,) = table.rows
    assert row[col["train s (ours)"]] == "12.5" and row[col["train min (published)"]] == "5"
    assert row[col["training speed-up"]] == "24.0x"  # 300 s / 12.5 s
    assert "train_minutes" not in row[col["published figures"]]


def test_a_training_time_under_a_second_keeps_two_decimals_in_every_table(results):
    """0.041 s showed as 0.04 in the terminal but 0.0 in report.md's and report.html's tables."""
    doc = copy.deepcopy(results)
    trained = [j for j in doc["jobs"] if isinstance(j.get("train"), dict)]
    for job in trained:
        job["train"]["seconds"] = 0.041
        job["reference"] = {"params": job["params"], "train_minutes": 5, "source": "seed 002"}
    tables = {"results": results_table(doc), "reference": report.reference_table(doc),
              "seeds": report.seed_table(doc)}
    for name, table in tables.items():
        column = next(i for i, h in enumerate(table.headers) if h.startswith("train s"))
        cells = {row[column] for row in table.rows} - {"-"}
        assert cells and all(cell.startswith("0.04") for cell in cells), (name, cells)
    assert "0.04 s" in report_html.to_html(doc) and "0.0 s" not in report_html.to_html(doc)
    plain = {**doc, "jobs": trained[:1]}
    assert " 0.04" in report.comparison_table(plain)


def test_a_hundred_class_jobs_params_differ_by_its_output_layer_and_say_so(results):
    """On a 100-class dataset "params match +1,890" read as a wrong reconstruction: the difference is the
    100-way output layer. And a recipe's epochs overridden to one read "1 epochs"."""
    job = _published_job(results)
    job.update(num_classes=100, params=job["params"] + 1_890)
    document = {**results, "jobs": [job]}
    (row,) = report.reference_table(document).rows
    assert row[report.reference_table(document).headers.index("params match")] == "+1,890 (100 classes, not 10)"
    assert report.reference_notes(document)[0].endswith("synthetic, not mnist, 100 classes, not 10")
    job["num_classes"] = 10  # the published dataset's classes: nothing to add
    (row,) = report.reference_table(document).rows
    assert row[report.reference_table(document).headers.index("params match")] == "+1,890"
    job["reference"].pop("epochs")
    job["train"]["recipe_changes"] = {"epochs": [10, 1]}
    assert "1 epoch, not the recipe's 10" in report.reference_notes(document)[0]


def test_a_published_model_size_has_our_weights_size_beside_it(results):
    # seed 002 gives 24.3 MB for 6,379,786 params (their float32 weights in MiB) but 0.45 MB for 6,008
    job = copy.deepcopy(next(j for j in results["jobs"] if isinstance(j.get("train"), dict)))
    job.update(params=6_379_786, reference={"params": 6_379_786, "model_size_mb": 24.3, "source": "seed 002"})
    table = report.reference_table({**results, "jobs": [job]})
    (row,) = table.rows
    assert "model_size_mb=24.3 (our float32 weights: 24.34 MiB)" in row[table.headers.index("published figures")]


def _published_job(results: dict) -> dict:
    """A trained job with a seed's published training time (7 min, 20 epochs, on MNIST)."""
    job = copy.deepcopy(next(j for j in results["jobs"] if isinstance(j.get("train"), dict)))
    job["reference"] = {"params": job["params"], "test_accuracy": 0.9919, "train_minutes": 7, "epochs": 20,
                        "dataset": "mnist", "source": "seed 003"}
    job["train"].update(seconds=5.1, epochs=1)
    return job


def test_training_speed_up_is_shown_only_for_the_published_budget(results):
    job = _published_job(results)  # 1 of 20 epochs on 256 synthetic samples: 82.4x would compare nothing
    document = {**results, "config": {**results["config"], "max_train_samples": 256}, "jobs": [job]}
    table = report.reference_table(document)
    assert table.rows[0][table.headers.index("training speed-up")] == "-"
    why = "not comparable with the published figures: 1 of 20 epochs, 256 training samples, synthetic, not mnist"
    assert report.reference_notes(document) == [f"mnist-mlp@synthetic: {why}"]
    reference = to_markdown(document).split("## Published reference figures")[1].split("\n## ")[0]
    assert f"- mnist-mlp@synthetic: {why}" in reference and "82." not in reference
    (terminal,) = [line for line in report.comparison_table(document).splitlines() if line.startswith("note: ")]
    # the accuracy too, where a run looks first
    assert terminal.startswith("note: 1 job(s) with published figures ran differently from the published run "
                               "(1 of 20 epochs, 256 training samples, synthetic, not mnist)"), terminal
    untimed = {**job, "reference": {k: v for k, v in job["reference"].items() if k != "train_minutes"}}
    assert report.reference_notes({**document, "jobs": [untimed]}) == [f"mnist-mlp@synthetic: {why}"]
    tested_on_less = {**document, "config": {**document["config"], "max_test_samples": 500}}
    assert report.reference_notes(tested_on_less)[0].endswith("synthetic, not mnist, 500 test samples")
    # a cap at or above a split's size cut nothing: the samples used, not the cap, decide and are said
    counted = copy.deepcopy(job)
    counted["train"].update(train_samples=2048, train_samples_available=2048)
    counted.update(test_samples=512, test_samples_available=512)
    huge = {**document, "config": {**document["config"], "max_train_samples": 10_000_000, "max_test_samples": 10**7},
            "jobs": [counted]}
    assert report.reference_notes(huge) == ["mnist-mlp@synthetic: not comparable with the published figures: "
                                            "1 of 20 epochs, synthetic, not mnist"]
    counted["train"]["train_samples"], counted["test_samples"] = 256, 100
    assert report.reference_notes(huge)[0].endswith(
        "1 of 20 epochs, 256 of the dataset's 2,048 training samples, synthetic, not mnist, 100 of the dataset's 512 "
        "test samples")
    full = {**results, "config": {**results["config"], "max_train_samples": None}}  # the seed's budget
    job.update(dataset="mnist")
    job["train"]["epochs"] = 20
    (row,) = report.reference_table({**full, "jobs": [job]}).rows
    assert row[table.headers.index("training speed-up")] == "82.4x" and not report.reference_notes(
        {**full, "jobs": [job]})
    (row,) = report.reference_table({"jobs": [job]}).rows  # no run options (a joined report): budget unknown
    assert row[table.headers.index("training speed-up")] == "-"
    assert report.reference_notes({"jobs": [job]}) == [
        "mnist-mlp@mnist: not comparable with the published figures: run options not recorded"]
    assert "note:" not in report.comparison_table({**full, "jobs": [job]})  # the published budget: no note
    without = {k: v for k, v in job["reference"].items() if k != "epochs"}  # the recipe's own count
    overridden = report.training_comparison({**job, "reference": without}, full["config"])  # config epochs: 3
    assert overridden == (None, "not comparable: 20 epochs, not the recipe's")
    other_batch = {**full["config"], "batch_size": 256}  # --batch-size 256: another number of steps
    assert report.training_comparison(job, other_batch) == (None, "not comparable: batch size 256, not the recipe's")
    swept = {**job, "point": {"batch_size": 128}}
    assert report.training_comparison(swept, full["config"])[1] == "not comparable: batch size 128, not the recipe's"


def test_what_a_job_changed_in_its_recipe_decides_whether_it_compares(results):
    """Judged by the recipe fields the job's options and sweep point changed (train.recipe_changes), not by
    which options were given: --batch-size 32 on a batch-32 recipe changes nothing."""
    job = _published_job(results)
    job.update(dataset="mnist")
    job["train"].update(epochs=20, recipe_changes={})
    full = {**results, "config": {**results["config"], "max_train_samples": None, "max_test_samples": None,
                                  "batch_size": 32}}
    assert report.comparability(job, full["config"]) == []
    assert report.training_comparison(job, full["config"])[0] == pytest.approx(7 * 60 / 5.1)
    piecewise = {"kind": "piecewise", "milestones": [[0, 0.003], [5, 0.001]]}
    job["train"]["recipe_changes"] = {"lr": [0.003, 0.001], "schedule": [piecewise, {"kind": "constant"}],
                                      "batch_size": [32, 64], "target_accuracy": [0.994, 0.99]}
    job["point"] = {"lr": 0.001, "schedule": "constant", "dropout": 0.01, "seed": 2}
    assert report.comparability(job, full["config"]) == [
        "lr 0.001, not the recipe's 0.003", "constant schedule, not the recipe's piecewise",
        "batch size 64, not the recipe's 32", "dropout=0.01 (a build argument)"]
    assert report.training_comparison(job, full["config"])[0] is None
    unrecorded = {**job, "point": None, "train": {**job["train"], "recipe_changes": {}},
                  "reference": {k: v for k, v in job["reference"].items() if k != "dataset"}}
    assert report.comparability(unrecorded, full["config"]) == []  # the accuracy is still the seed's to read
    assert report.training_comparison(unrecorded, full["config"]) == (
        None, "not comparable: published dataset not recorded")


def test_the_terminal_table_names_the_thread_count_when_a_run_did_not_time_one_thread():
    def job(name, threads):
        rows = [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": b, "threads": t,
                 "p50_ms": 0.01 * b * t, "p99_ms": 0.02 * b * t, "throughput_per_s": 100.0 / t}
                for b in (1, 32) for t in threads]
        return {"id": f"{name}@d", "model": name, "dataset": "d", "status": "ok", "latency": rows}

    # --threads 2: the b1 figures were the 2-thread ones under an unlabelled header, and b32 read '-'
    headers, rows, _ = report._comparison_rows({"jobs": [job("m", [2])]})
    assert {"p50 ms b1 t2", "p50 ms b32 t2", "samples/s b32 t2 (batch / mean)"} <= set(headers)
    line = dict(zip(headers, rows[0]))
    assert (line["p50 ms b1 t2"], line["p50 ms b32 t2"]) == ("0.0200", "0.640")
    # jobs timed at different counts each say theirs; 1 thread is left unsaid
    headers, rows, _ = report._comparison_rows({"jobs": [job("m", [2, 4]), job("n", [1, 2])]})
    cells = [dict(zip(headers, row))["p50 ms b32"] for row in rows]
    assert cells == ["0.640 t2", "0.320"]
    # --threads 1,4 (--profile edge's 1 and all cores): the columns show the 1-thread figures, and say so
    headers, _, _ = report._comparison_rows({"config": {"threads": [1, 4]}, "jobs": [job("m", [1, 4])]})
    assert "p50 ms b1 t1" in headers
    headers, _, _ = report._comparison_rows({"config": {"threads": [1]}, "jobs": [job("m", [1])]})
    assert "p50 ms b1" in headers


def test_throughput_columns_say_they_come_from_the_mean_latency(results):
    assert "samples/s (batch / mean)" in report.latency_table(results).headers
    assert "samples/s b32 t1 (batch / mean)" in report.comparison_table(results)  # the fixture timed 1 and 2 threads
    latency = to_markdown(results).split("## Latency")[1].split("\n## ")[0]
    assert "| samples/s (batch / mean) |" in latency and report.LATENCY_NOTE in latency


def test_latency_table_shows_the_cold_costs_and_a_dash_where_none_was_recorded(results):
    table = report.latency_table(results)
    session, first = table.headers.index("session ms"), table.headers.index("first call ms")
    runtime = table.headers.index("runtime")
    ort_rows = [r for r in table.rows if r[runtime] == "onnxruntime"]
    torch_rows = [r for r in table.rows if r[runtime] == "torch"]
    assert ort_rows and all(float(r[session]) > 0 and float(r[first]) > 0 for r in ort_rows)
    assert torch_rows and all(r[session] == "-" and float(r[first]) > 0 for r in torch_rows)
    old = copy.deepcopy(results)  # a results.json from before the cold costs were recorded
    for job in old["jobs"]:
        for row in job.get("latency") or []:
            row.pop("session_ms", None), row.pop("first_call_ms", None)
    assert {(r[session], r[first]) for r in report.latency_table(old).rows} == {("-", "-")}
    assert {"session_ms", "first_call_ms"} <= set(report.CSV_FIELDS)


def test_missing_job_fields_show_a_dash_not_none():
    document = {"schema_version": 1, "run_id": "bare", "jobs": [
        {"model": "m", "dataset": "d"}, {"id": "x", "status": "failed", "reference": {"params": 10},
                                         "latency": [{"runtime": "onnxruntime", "p50_ms": 1.0}]}]}
    assert results_table(document).rows[0][3] == "unknown" and summary_rows(document)[0]["status"] == "unknown"
    markdown = to_markdown(document)
    assert "None" not in markdown
    assert "| m | d | - | unknown |" in markdown and "| - | - | - | failed |" in markdown
    assert "None" not in report.comparison_table(document)
    assert report.failures(document) == ["x: -: -"]


def test_summary_line_names_the_planned_jobs_an_interrupted_run_never_ran(results):
    before = to_markdown(results)
    ids = [j["id"] for j in results["jobs"]]
    assert "onnx 1.23.2. 12 job(s): 9 ok, 2 failed, 1 skipped.\n" in before  # no planned_jobs: as it always read
    assert to_markdown({**results, "planned_jobs": ids}) == before  # every planned job ran
    stopped = {**results, "planned_jobs": ["mnist-mlp@synthetic", "late@a", "later@b"], "interrupted": True,
               "jobs": results["jobs"][:1], "config": {**results["config"], "out": "reports"}}
    facts = report.header_facts(stopped)
    assert facts[1] == ("1 job(s): 1 ok, 0 failed, 0 skipped; 2 of 3 planned not run (interrupted; continue with "
                        "harness run --resume --run-id fixture-report --out reports): late@a, later@b.")
    assert "2 of 3 planned not run (interrupted;" in to_markdown(stopped)
    del stopped["interrupted"]  # killed without the chance to say so: still named
    assert "2 of 3 planned not run (the run stopped before them;" in report.header_facts(stopped)[1]


def test_write_reports_writes_every_file_and_links_existing_plots(results):
    tmp_path, paths = rendered_report_run()
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    assert {"results.csv", "report.md", "report.html", "plots/accuracy_vs_latency.png",
            "plots/accuracy_vs_size.png", "plots/latency_vs_batch.png"} <= names
    curves = [n for n in names if n.startswith("plots/curves_")]
    assert len(curves) == sum(1 for j in results["jobs"] if (j.get("train") or {}).get("history"))
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (tmp_path / "report.md").read_text()):
        assert (tmp_path / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link


def test_a_rebuild_removes_the_plots_it_no_longer_draws(results, tmp_path):
    from harness.report import write_reports

    write_reports(tmp_path, results)
    assert (tmp_path / "plots" / "latency_vs_batch.png").is_file()
    for job in results["jobs"]:  # batch 1 only now: no latency-per-batch figure to draw
        job["latency"] = [r for r in job.get("latency") or [] if r.get("batch_size") == 1]
    written = write_reports(tmp_path, results)
    assert not (tmp_path / "plots" / "latency_vs_batch.png").exists()
    assert sorted((tmp_path / "plots").glob("*.png")) == sorted(p for p in written if p.parent.name == "plots")


def test_csv_has_a_row_per_latency_measurement_and_the_sweep_settings(results):
    rows = list(csv.DictReader(io.StringIO(to_csv(results))))
    expected = sum(max(1, len(j.get("latency") or [])) for j in results["jobs"]) + sum(
        max(1, len(v.get("latency") or [])) for j in results["jobs"] for v in j.get("variants") or [])
    assert len(rows) == expected
    assert {r["point"] for r in rows if r["model"] == "mnist-enhanced-20k"} == {
        f"dropout={d}, seed={s}" for d in (0.1, 0.05) for s in range(3)}
    # an eager PyTorch row times no ONNX model: the export's size, accuracy... are not its figures
    eager = [r for r in rows if r["runtime"] == "torch"]
    assert eager and all(r[k] == "" for r in eager for k in (*report.ONNX_ONLY, "onnx_metric:nll"))
    assert all(r["accuracy"] and r["params"] for r in eager if r["status"] == "ok")
    assert all(r["onnx_bytes"] for r in rows if r["runtime"] == "onnxruntime" and r["status"] == "ok")
    # the seed as a column of its own (point is text): the sweep's, else the run's
    assert {(r["point"], r["seed"]) for r in rows if r["model"] == "mnist-enhanced-20k"} == {
        (f"dropout={d}, seed={s}", str(s)) for d in (0.1, 0.05) for s in range(3)}
    assert {r["seed"] for r in rows if not r["point"]} == {str(results["config"]["seed"])}
    # a job's own memory growth beside the process's peak (which depends on the jobs before it)
    job = results["jobs"][0]
    job["train"]["memory_at_start_bytes"] = job["train"]["peak_memory_bytes"] - 5 * 2**20
    rows = list(csv.DictReader(io.StringIO(to_csv(results))))
    assert {r["memory_growth_bytes"] for r in rows if r["id"] == job["id"]} == {str(5 * 2**20)}
    assert {r["memory_growth_bytes"] for r in rows if r["id"] == results["jobs"][1]["id"]} == {""}  # no start figure
    # how each row was timed and how spread it was, as results.json's rows say (a CSV reader could not tell)
    how = {"max_ms": 4.5, "cv": 1.7, "opt_level": "all", "iobinding": True, "allow_spinning": False}
    for row in job["latency"]:
        row.update(how)
    rows = [r for r in csv.DictReader(io.StringIO(to_csv(results))) if r["id"] == job["id"] and r["variant"] in ("", "fp32")]
    assert len(rows) == len(job["latency"]) and all({k: r[k] for k in how} == {
        k: str(v) for k, v in how.items()} for r in rows)


OLD_CSV_COLUMNS = [
    "run_id", "id", "model", "dataset", "point", "status", "stage", "error", "params", "reference_params",
    "accuracy", "onnx_accuracy", "reference_test_accuracy", "max_abs_diff", "onnx_bytes", "opset", "exporter",
    "train_seconds", "epochs", "device", "time_to_target_s", "peak_memory_bytes",
    "runtime", "provider", "batch_size", "threads", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
    "std_ms", "min_ms", "throughput_per_s",
]


def test_csv_has_a_row_per_variant_measurement_with_the_variants_own_figures(results):
    text = to_csv(results)
    header = text.splitlines()[0].split(",")
    assert header[: len(OLD_CSV_COLUMNS)] == OLD_CSV_COLUMNS  # new columns only at the end
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["id"] == "mnist-mlp@synthetic"]
    by_variant: dict[str, list[dict]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    assert set(by_variant) == {"fp32", "", "int8-dynamic", "fp16", "int8-static"}
    assert {r["runtime"] for r in by_variant["fp32"]} == {"onnxruntime"}
    assert {r["runtime"] for r in by_variant[""]} == {"torch"}  # eager PyTorch times no ONNX model
    assert {r["onnx_bytes"] for r in by_variant["fp32"]} == {"952780"}
    assert {r["onnx_bytes"] for r in by_variant[""]} == {""}  # the export's size is not the eager row's
    int8 = by_variant["int8-dynamic"]
    assert [(r["batch_size"], r["threads"]) for r in int8] == [("1", "1"), ("32", "1")]
    assert all(float(r["p50_ms"]) > 0 for r in int8)
    assert {(r["onnx_bytes"], r["onnx_accuracy"], r["max_abs_diff"], r["max_abs_diff_vs_fp32"]) for r in int8} == {
        ("241500", "0.9902", "", "0.012")}
    assert int8[0]["accuracy"] == by_variant["fp32"][0]["accuracy"]  # PyTorch's accuracy stays the job's
    (fp16,) = by_variant["fp16"]  # no CPU latency: one row, so its size and accuracy are still there
    assert (fp16["runtime"], fp16["onnx_bytes"], fp16["onnx_accuracy"]) == ("", "477100", "0.9922")
    (static,) = by_variant["int8-static"]
    assert static["variant_error"].startswith("quantize_static") and static["onnx_bytes"] == ""


def test_joined_documents_show_the_run_of_each_job(results):
    other = copy.deepcopy(results)
    other["run_id"] = "other"
    document = joined(results, other)
    table = results_table(document)
    assert table.headers[:3] == ["model", "dataset", "run"]
    assert {r[2] for r in table.rows} == {"fixture-report", "other"}
    markdown = to_markdown(document)
    assert "Joins 2 runs: fixture-report, other" in markdown
    rows = list(csv.DictReader(io.StringIO(to_csv(document))))
    assert {r["run_id"] for r in rows} == {"fixture-report", "other"}
    assert len(summary_rows(document)) == 2 * len(results["jobs"])
    # a run timed at batch 1 only: its b1 figures are not shown under the other run's batch-32 header
    for job in other["jobs"]:
        job["latency"] = [row for row in job.get("latency") or [] if row.get("batch_size") == 1]
    headers, rows, elsewhere = report._comparison_rows(joined(results, other))
    big, run = headers.index("p50 ms b32"), headers.index("run")
    shown = {(row[run], row[big]) for row in rows if row[headers.index("status")] == "ok"}
    assert {b for r, b in shown if r == "other"} == {"-"} and {b for r, b in shown if r != "other"} - {"-"}
    timed = [job for job in other["jobs"] if job["latency"]]
    assert elsewhere == len(timed) > 0  # and said so under the table
    assert (f"{len(timed)} job(s) timed at other batch sizes than these columns' show '-' in them"
            in report.comparison_table(joined(results, other)))
    # a run timed at batch 2 only: nothing under b1 either, its ORT-vs-eager ratio (at batch 2) not shown
    for job in other["jobs"]:
        job["latency"] = [{**row, "batch_size": 2} for row in job.get("latency") or []]
        if isinstance(job.get("ort_vs_eager"), dict):
            job["ort_vs_eager"] = {**job["ort_vs_eager"], "batch_size": 2}
    headers, rows, elsewhere = report._comparison_rows(joined(results, other))
    ratio = headers.index("ORT vs eager")
    assert elsewhere == len(timed) and {row[ratio] for row in rows if row[run] == "other"} == {"-"}
    assert {row[ratio] for row in rows if row[run] != "other"} - {"-"}


def test_harness_report_joins_runs_from_the_command_line(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    for name, created, torch in (("a", "2026-11-01T10:00:00", "2.5.1"), ("b", "2026-11-30T09:00:00", "2.13.0")):
        data = copy.deepcopy(results)
        data.update(run_id=name, created=created, environment={**data["environment"], "torch": torch})
        for job in data["jobs"]:  # fewer plots to draw: the join is what is tested here
            job["train"] = None
        write_run(tmp_path / name, data)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "a"), str(tmp_path / "b"),
                                       "--out", str(tmp_path / "joined")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "joined" / "report.html").read_text()
    assert "Joins 2 runs: a, b" in html and html.count('src="data:image/png;base64,') >= 3
    # not the latest run's date and the first run's versions as if they were all of it
    assert "Runs created 2026-11-01T10:00:00 to 2026-11-30T09:00:00 on" in html
    assert "the environment shown is the first run&#x27;s; the runs differ in torch)" in html
    # The default folder, beside the first run; a run folder there is never overwritten.
    again = CliRunner().invoke(main, ["report", str(tmp_path / "a"), str(tmp_path / "b")])
    assert again.exit_code == 0 and (tmp_path / "joined" / "report.md").exists(), again.output
    mine = tmp_path / "joined" / "results.json"
    mine.write_text(json.dumps(results))
    before = (tmp_path / "joined" / "report.md").read_text()
    refused = CliRunner().invoke(main, ["report", str(tmp_path / "a"), str(tmp_path / "b")])
    assert refused.exit_code == 2 and "is a run folder" in refused.output
    assert "for the joined report" in refused.output
    assert (tmp_path / "joined" / "report.md").read_text() == before
    one = CliRunner().invoke(main, ["report", str(tmp_path / "a"), "--out", str(tmp_path / "b")])  # nothing joined
    assert one.exit_code == 2 and "pass --out with another folder for this run's report" in one.output


def test_a_report_of_a_run_still_being_written_says_it_holds_the_jobs_finished_so_far(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main
    from harness.results import RunFolder

    run = write_run(tmp_path / "run", {**results, "jobs": results["jobs"][:2]})
    held = RunFolder(run, {}).lock()
    try:
        result = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "copy")])
    finally:
        held.unlock()
    assert result.exit_code == 0, result.output
    assert f"is still being written by a harness run (pid {os.getpid()}): this report holds the 2 job(s) finished " \
           "so far" in result.output
    quiet = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "copy")])
    assert quiet.exit_code == 0 and "still being written" not in quiet.output


def test_a_joined_report_keeps_each_runs_options_and_their_shared_edge_settings(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    for name, floor in (("a", 0.9), ("b", 0.9)):
        data = copy.deepcopy(results)
        data["run_id"] = name
        data["config"]["accuracy_floor"] = floor
        for job in data["jobs"]:
            job["train"] = None
            if job.get("reference"):  # a training time to compare with the published one
                job["train"] = {"seconds": 10.0, "epochs": 3}
                job["reference"] = {**job["reference"], "train_minutes": 5, "dataset": job["dataset"], "epochs": 3}
        if name == "b":
            data["config"]["max_train_samples"] = None  # b trained on the whole split
        write_run(tmp_path / name, data)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "j")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "j" / "report.md").read_text()
    assert "accuracy >= 0.9" in md  # both runs asked for it: the joined edge table keeps it
    assert "run options not recorded" not in md and "512 training samples" in md  # a's own options
    assert "30.0x" in md  # b's jobs: 5 published minutes over 10 s
    document = {"jobs": [{**job, "run_config": {"epochs": 3, "max_train_samples": 512}} for job in results["jobs"]]}
    for job in document["jobs"]:
        if job.get("reference"):
            job["train"] = {"seconds": 10.0, "epochs": 3}
            job["reference"] = {**job["reference"], "train_minutes": 5, "dataset": job["dataset"], "epochs": 3}
    notes = report.reference_notes(document)
    assert notes and all("512 training samples" in note for note in notes)  # each job judged by its own run's options


def test_reports_survive_documents_with_nothing_in_them(tmp_path):
    minimal = {"schema_version": 1, "run_id": "empty", "jobs": [
        {"id": "m@d", "model": "m", "dataset": "d", "status": "failed", "stage": "load", "error": "no data"},
        {"id": "n@d", "model": "n", "dataset": "d", "status": "ok", "train": {"history": []}, "metrics": None,
         "onnx": None, "latency": None, "variants": [None, {"variant": "int8-dynamic"}], "reference": {}}]}
    paths = write_reports(tmp_path, minimal)
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
    assert "no data" in (tmp_path / "report.md").read_text()
    assert all(p.exists() for p in paths)


def _partial_job() -> st.SearchStrategy:
    number = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False), st.integers(0, 10**9))
    text = st.one_of(st.none(), st.text(max_size=12))
    row = st.fixed_dictionaries({}, optional={"runtime": st.sampled_from(["onnxruntime", "torch", None]),
                                              "provider": st.sampled_from(["CPUExecutionProvider", "cpu", None]),
                                              "batch_size": st.one_of(st.none(), st.integers(1, 64)),
                                              "threads": st.one_of(st.none(), st.integers(1, 4)),
                                              "p50_ms": number, "p99_ms": number, "throughput_per_s": number})
    return st.fixed_dictionaries(
        {"id": st.text(max_size=8), "model": text, "dataset": text,
         "status": st.sampled_from(["ok", "failed", "skipped", None])},
        optional={"params": number, "metrics": st.one_of(st.none(), st.fixed_dictionaries({"accuracy": number})),
                  "onnx": st.one_of(st.none(), st.fixed_dictionaries({"bytes": number, "metrics": st.none()})),
                  "latency": st.one_of(st.none(), st.lists(row, max_size=3)),
                  "point": st.one_of(st.none(), st.fixed_dictionaries({"seed": st.integers(0, 2)})),
                  "train": st.one_of(st.none(), st.fixed_dictionaries(
                      {"history": st.lists(st.fixed_dictionaries({"epoch": st.integers(1, 3)},
                                                                 optional={"train_loss": number}), max_size=2)})),
                  "variants": st.one_of(st.none(), st.lists(st.fixed_dictionaries(
                      {"variant": text}, optional={"bytes": number, "latency": st.lists(row, max_size=2)}),
                      max_size=2))})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=st.lists(_partial_job(), max_size=5))
def test_markdown_and_html_never_crash_on_partial_jobs(jobs):
    from harness.report_html import to_html

    document = {"schema_version": 1, "run_id": "x", "jobs": jobs}
    assert "## Results" in to_markdown(document)
    assert "<table>" in to_html(document, plots=[])
    report.seed_summary(document)
    report.candidates(document)


def test_report_rebuilds_a_run_folder_in_place(results, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    results["jobs"] = results["jobs"][:3]
    for job in results["jobs"]:
        job["train"] = None
    (run / "results.json").write_text(json.dumps(results))
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report.html").is_file() and (run / "plots" / "accuracy_vs_latency.png").is_file()


def test_variants_table_reads_the_variant_stage_rows(results):
    for variant in (v for j in results["jobs"] for v in j.get("variants") or []):
        if variant.get("variant") == "int8-dynamic":
            variant["activation_bytes"] = 2048
    table = report.variants_table(results)
    rows = {r[2]: dict(zip(table.headers, r)) for r in table.rows}
    assert set(rows) == {"int8-dynamic", "fp16", "int8-static"}
    int8 = rows["int8-dynamic"]
    assert int8["activations KiB"] == "2.0" and rows["fp16"]["activations KiB"] == "-"  # fp16: not recorded
    assert (int8["status"], int8["size vs fp32"], int8["accuracy drop vs fp32 (points)"]) == ("ok", "0.25x", "0.20")
    assert int8["speed-up vs fp32"] == "1.43x" and int8["measured at"] == "CPU b1 t1"  # the A/B figure wins
    fp16 = rows["fp16"]
    assert fp16["p50 ms"] == "-" and "timed on GPU providers only" in fp16["note"]
    static = rows["int8-static"]
    assert static["status"] == "failed" and static["note"].startswith("quantize_static")
    kinds = {c["kind"] for c in candidates(results)}
    assert "int8-static" not in kinds and {"fp32", "int8-dynamic", "fp16"} <= kinds


def test_an_unstable_variant_speed_up_is_the_per_round_median_and_says_so(results):
    (int8,) = [v for j in results["jobs"] for v in j.get("variants") or [] if v.get("variant") == "int8-dynamic"]
    int8["vs_fp32"].update(stability="unstable", ratio_paired_median=0.8)
    rows = {r[2]: dict(zip(report.variants_table(results).headers, r)) for r in report.variants_table(results).rows}
    assert rows["int8-dynamic"]["speed-up vs fp32"] == "1.25x (unstable)"


def test_deployment_table_names_each_sweep_job_and_reads_the_floor_as_a_fraction():
    def job(seed, accuracy):
        return {"id": f"m@d[seed={seed}]", "model": "m", "dataset": "d", "point": {"seed": seed}, "status": "ok",
                "params": 10, "onnx": {"path": "onnx/m.onnx", "bytes": 2048, "metrics": {"accuracy": accuracy}},
                "latency": [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": 1,
                             "threads": 1, "p50_ms": 0.1, "p99_ms": 0.2}]}

    document = {"run_id": "r", "config": {"accuracy_floor": 50, "latency_budget_ms": 1.0},
                "jobs": [job(0, 0.6), job(1, 0.4)]}
    ((caption, table),) = report.deployment_tables(document)
    assert "accuracy >= 0.5," in caption  # as the notes say it, not "50"
    rows = [dict(zip(table.headers, row)) for row in table.rows]
    assert [(r["settings"], r["variant"]) for r in rows] == [("seed=0", "fp32"), ("seed=1", "none")]
    assert rows[0]["accuracy"] == "0.6000" and rows[0]["fits budget"] == "yes"
    assert caption.endswith("accuracy >= 0.5, p50 <= 1 ms")


def test_the_report_says_where_each_datasets_samples_came_from():
    document = {"run_id": "r", "jobs": [
        {"id": "a@mnist3d", "model": "a", "dataset": "mnist3d", "status": "ok",
         "data": {"source": "fashion-mnist", "mnist_unavailable": "mnist: no MNIST IDX files under /x"}},
        {"id": "b@mnist3d", "model": "b", "dataset": "mnist3d", "status": "ok", "data": {"source": "fashion-mnist"}},
        {"id": "a@fashion-mnist", "model": "a", "dataset": "fashion-mnist", "status": "ok",
         "data": {"source": "/usr/share/datasets/fashion-mnist", "origin": "system"}},
        {"id": "c@old", "model": "c", "dataset": "old", "status": "ok"},  # results.json of an older version
        {"id": "a@synthetic", "model": "a", "dataset": "synthetic", "status": "ok",
         "data": {"source": "generated in memory"}},
    ]}
    (line,) = [fact for fact in report.header_facts(document) if fact.startswith("Data:")]
    assert line == ("Data: mnist3d from fashion-mnist INSTEAD OF MNIST, which was not found; "
                    "fashion-mnist from /usr/share/datasets/fashion-mnist (system); synthetic generated in memory.")
    # the terminal's table, what people paste, says it under the rows labelled mnist3d
    assert ("note: mnist3d here is a stand-in: mnist3d from fashion-mnist INSTEAD OF MNIST, which was not found "
            "(pass --data-dir with MNIST)") in report.comparison_table(document)
    document["jobs"][0]["data"].pop("mnist_unavailable")
    assert "stand-in" not in report.comparison_table(document)
    # what the samples were, and a third party's dataset whose info names no source (it was left out)
    document["jobs"][4].update(input_shape=[1, 28, 28], num_classes=10)
    document["jobs"].append({"id": "a@rgb64", "model": "a", "dataset": "rgb64", "status": "ok",
                             "input_shape": [3, 64, 64], "num_classes": 100, "plugins": {
                                 "dataset": {"plugin": "rgbplug", "distribution": "rgb-plugins", "version": "0.1"}}})
    (line,) = [fact for fact in report.header_facts(document) if fact.startswith("Data:")]
    assert line.endswith("; synthetic (1x28x28, 10 classes) generated in memory; "
                         "rgb64 (3x64x64, 100 classes) from the rgbplug plugin (rgb-plugins 0.1).")


def test_metrics_beyond_accuracy_reach_every_report(results, tmp_path):
    from harness.report import write_reports

    job = results["jobs"][0]
    job["metrics"]["plugin-top2"] = 0.8
    job["onnx"]["metrics"]["plugin-top2"] = 0.81
    variant = next(v for v in job["variants"] if v.get("metrics"))
    variant["metrics"]["plugin-top2"] = 0.79
    text = to_csv(results)
    header = text.splitlines()[0].split(",")
    assert header[: len(OLD_CSV_COLUMNS)] == OLD_CSV_COLUMNS
    assert header[-6:] == [f"{kind}:{name}" for name in ("macro-f1", "nll", "plugin-top2")
                           for kind in ("metric", "onnx_metric")]
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["id"] == job["id"]]
    fp32 = next(r for r in rows if r["variant"] == "fp32")
    assert (fp32["metric:plugin-top2"], fp32["onnx_metric:plugin-top2"]) == ("0.8", "0.81")
    own = next(r for r in rows if r["variant"] == variant["variant"])
    assert own["onnx_metric:plugin-top2"] == "0.79" and own["metric:nll"] == str(job["metrics"]["nll"])

    write_reports(tmp_path, results)
    md = (tmp_path / "report.md").read_text()
    section = md.split("## Metrics")[1].split("\n## ")[0]
    assert "plugin-top2 PyTorch / ORT" in section and "0.8000 / 0.8100" in section
    assert "nll PyTorch / ORT" in section and "macro-f1 PyTorch / ORT" in section
    page = (tmp_path / "report.html").read_text()
    assert '<section id="metrics">' in page and "0.8000 / 0.8100" in page.split('<section id="metrics">')[1]


def test_the_metrics_note_says_what_each_computed_metric_is_and_its_direction(results):
    from harness.report import metrics_note

    job = results["jobs"][0]
    job["metrics"] = {"accuracy": 0.9, "error-rate": 0.1}  # --metrics error-rate: no nll, no macro-f1
    job["onnx"]["metrics"] = {"accuracy": 0.9, "error-rate": 0.1}
    for other in results["jobs"][1:]:
        other["metrics"] = other["onnx"] = None
    results["metric_specs"] = {"accuracy": {"plugin": "metrics", "higher_is_better": True, "description": "top-1"},
                               "error-rate": {"plugin": "stripes", "higher_is_better": False,
                                              "description": "1 - accuracy."}}
    assert metrics_note(results) == ("Metrics beyond accuracy, on the same test samples as accuracy: "
                                     "error-rate (1 - accuracy; lower is better; plugin stripes).")
    del results["metric_specs"]  # a results.json from before they were recorded: the names only
    assert metrics_note(results).endswith("as accuracy: error-rate.")
    job["metrics"]["nll"] = 0.3  # ... but the built-in ones are known
    assert metrics_note(results).endswith("as accuracy: error-rate, nll (mean cross-entropy of the targets; "
                                          "lower is better).")


def test_runs_that_share_a_run_id_are_told_apart_by_their_folders(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    folders = []
    for out in ("base", "int8"):
        data = copy.deepcopy(results)
        data["run_id"] = "r1"  # the same --run-id under two --out folders
        data["jobs"] = [job for job in data["jobs"] if job["id"] == "mnist-mlp@synthetic"]
        data["jobs"][0]["train"] = None
        folder = tmp_path / out / "r1"
        write_run(folder, data)
        folders.append(str(folder))
    joined = CliRunner().invoke(main, ["report", *folders, "--out", str(tmp_path / "joined")])
    assert joined.exit_code == 0, joined.output
    rows = [line for line in joined.output.splitlines() if line.startswith("mnist-mlp")]
    assert len(rows) == 2 and folders[0] in rows[0] and folders[1] in rows[1]  # the printed table
    table = (tmp_path / "joined" / "report.md").read_text().split("## Results")[1].split("\n\n")[1]
    assert "| model | dataset | run |" in table
    assert f"| mnist-mlp | synthetic | {folders[0]} |" in table and f"| mnist-mlp | synthetic | {folders[1]} |" in table
    compared = CliRunner().invoke(main, ["compare", *folders])
    assert compared.exit_code == 0, compared.output
    assert compared.output.splitlines()[0] == f"compare {folders[0]} -> {folders[1]}"


def test_a_joined_report_of_runs_with_different_floors_judges_each_run_by_its_own(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    job = next(j for j in results["jobs"] if j["id"] == "mnist-mlp@synthetic")
    accuracy = job["onnx"]["metrics"]["accuracy"]  # 0.9922
    for name, floor in (("lax", 0.5), ("strict", 0.9999)):
        data = copy.deepcopy(results)
        data["run_id"] = name
        data["config"]["accuracy_floor"] = floor
        data["jobs"] = [{**copy.deepcopy(job), "train": None, "variants": []}]
        write_run(tmp_path / name, data)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "lax"), str(tmp_path / "strict"),
                                       "--out", str(tmp_path / "j")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "j" / "report.md").read_text()
    edge = md.split("batch 1, 1 thread, each run's own accuracy floor and budget")[1].split("\n\n")[1]
    lax = next(line for line in edge.splitlines() if "| lax |" in line)
    strict = next(line for line in edge.splitlines() if "| strict |" in line)
    assert f"| fp32 | {accuracy:.4f} |" in lax and "| accuracy \\>= 0.5 |" in lax  # meets its run's floor
    assert "| none |" in strict and "| accuracy \\>= 0.9999 |" in strict and "below the floor 0.9999" in strict
    # the terminal answers as the tables judge: run by run, each with its own floor
    answers = result.output.splitlines()[-2:]
    assert answers[0].startswith("run lax: edge (batch 1, 1 thread, CPU; accuracy >= 0.5): 1 of 1 job(s) qualify")
    assert answers[1].startswith("run strict: edge (batch 1, 1 thread, CPU; accuracy >= 0.9999): no job qualifies")
    # the qualifying file is named in its own run's folder, by a path that opens from where the user is
    onnx = job["onnx"]["path"]
    assert answers[0].endswith(f"; fastest file: {tmp_path / 'lax' / onnx}")
    # inside the joined report the path is from its folder
    assert f"fastest file: ../lax/{onnx} (from this report's folder)" in md
    # one run's report written elsewhere: the path still opens from where the user is
    elsewhere = CliRunner().invoke(main, ["report", str(tmp_path / "lax"), "--out", str(tmp_path / "a" / "b" / "copy")])
    assert elsewhere.exit_code == 0, elsewhere.output
    assert elsewhere.output.splitlines()[-1].endswith(f"; fastest file: {tmp_path / 'lax' / onnx}"), elsewhere.output
    # one question shared by both runs: the fastest file is still named in its run's folder
    shared = CliRunner().invoke(main, ["report", str(tmp_path / "lax"), str(tmp_path / "strict"), "--out",
                                       str(tmp_path / "j2"), "--accuracy-floor", "0.5"])
    assert shared.exit_code == 0, shared.output
    line = shared.output.splitlines()[-1]
    assert line.startswith("edge (batch 1, 1 thread, CPU; accuracy >= 0.5): 2 of 2 job(s) qualify"), line
    assert line.endswith(f"; fastest file: {tmp_path / 'lax' / onnx}") or line.endswith(
        f"; fastest file: {tmp_path / 'strict' / onnx}"), line


def test_cold_starts_reach_the_edge_table_the_csv_and_a_re_asked_budget(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    for job in results["jobs"]:
        if isinstance(job.get("onnx"), dict):
            job["onnx"]["cold_start"] = {"provider": "CPUExecutionProvider", "threads": 1, "batch_size": 1,
                                         "ms": 2.0 if job["model"] == "mnist-mlp" else 7.25, "runs": 3,
                                         "rss_bytes": 3 * 1024 ** 2 if job["model"] == "mnist-mlp" else 512_000}
    run = write_run(tmp_path / "r", results)
    cold = CliRunner().invoke(main, ["report", str(run), "--cold-budget-ms", "4"])
    assert cold.exit_code == 0, cold.output
    answer = cold.output.splitlines()[-1]
    assert answer.startswith("edge (batch 1, 1 thread, CPU; cold start <= 4 ms): 1 of 9 job(s) qualify")  # 2 failed: not judged
    assert "mnist-mlp fp32 on synthetic" in answer and "cold start 2.0 ms" in answer  # no variant has a figure
    edge = (run / "report.md").read_text().split("## Edge deployment")[1].split("\n## ")[0]
    assert "| cold ms | RAM KiB |" in edge
    assert "| 7.2 | 500 |" in next(x for x in edge.splitlines() if x.startswith("| mnist-cnn"))  # whole pages, no .0
    memory = CliRunner().invoke(main, ["report", str(run), "--memory-budget", "1MiB"])
    assert memory.exit_code == 0, memory.output
    answer = memory.output.splitlines()[-1]  # mnist-mlp adds 3 MiB: not it, but the rest with a figure
    assert answer.startswith("edge (batch 1, 1 thread, CPU; memory <= 1.00 MiB): ") and "500.0 KiB memory" in answer
    assert "mnist-mlp" not in answer.split("qualify")[1]
    variants = report.variants_table({"jobs": [{**results["jobs"][0], "variants": [
        {**v, "cold_start": {"ms": 3.5}} for v in results["jobs"][0]["variants"]]}]})
    assert {row[variants.headers.index("cold start ms")] for row in variants.rows} == {"3.5"}
    rows = list(csv.DictReader((run / "results.csv").open()))
    mlp = [r for r in rows if r["model"] == "mnist-mlp"]
    assert {r["cold_start_ms"] for r in mlp if r["variant"] == "fp32"} == {"2.0"}
    assert {r["cold_start_rss_bytes"] for r in mlp if r["variant"] == "fp32"} == {str(3 * 1024 ** 2)}
    assert {r["cold_start_ms"] for r in mlp if r["runtime"] == "torch" or r["variant"] != "fp32"} == {""}


def test_report_drops_a_budget_the_run_asked_when_given_none(results, tmp_path):
    """A budget the run asked still applied to every re-ask, and none, 0 or "0 ms" were refused: to ask without
    the run's 100 KiB size budget a user passed a huge one."""
    from click.testing import CliRunner

    from harness.cli import main

    run = write_run(tmp_path / "r", {**results, "config": {**results["config"], "accuracy_floor": 0.0,
                                                          "size_budget_bytes": 100 * 1024}})
    own = CliRunner().invoke(main, ["report", str(run)])
    assert own.exit_code == 0 and "size <= 100.0 KiB" in own.output.splitlines()[-1]
    dropped = CliRunner().invoke(main, ["report", str(run), "--size-budget", "none"])
    assert dropped.exit_code == 0, dropped.output
    answer = dropped.output.splitlines()[-1]
    assert answer.startswith("edge (batch 1, 1 thread, CPU; accuracy >= 0): ") and "mnist-mlp" in answer, answer
    nothing = CliRunner().invoke(main, ["report", str(run), "--size-budget", "off", "--accuracy-floor", "none",
                                        "--edge-gate"])
    assert nothing.exit_code == 2 and "--edge-gate needs an edge question" in nothing.output


def test_report_re_asks_the_edge_question_with_new_budgets_and_leaves_results_json_alone(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    run = write_run(tmp_path / "r", results)
    before = (run / "results.json").read_bytes()
    asked = CliRunner().invoke(main, ["report", str(run), "--size-budget", "100KiB", "--accuracy-floor", "0"])
    assert asked.exit_code == 0, asked.output
    answer = asked.output.splitlines()[-1]
    assert answer.startswith("edge (batch 1, 1 thread, CPU; accuracy >= 0, size <= 100.0 KiB): ")
    # 81,200 and 82,000 bytes fit, 6,100 too; the MLP (952,780; int8 241,500) and the CNN do not
    assert "mnist-baseline-20k fp32 on synthetic" in answer and "mnist-mlp" not in answer.split("qualify")[1]
    md = (run / "report.md").read_text()
    assert "### batch 1, 1 thread, accuracy >= 0, size <= 100.0 KiB" in md
    assert "the question given to harness report; the run itself asked: nothing." in md
    # the run options table: which question is whose
    assert "| edge question (asked by harness report) | accuracy \\>= 0, size \\<= 100.0 KiB |" in md
    assert "| edge question (the run's own) | none |" in md
    mlp = next(line for line in md.split("### batch 1, 1 thread")[1].splitlines() if line.startswith("| mnist-mlp"))
    assert "| int8-dynamic |" in mlp and "| no (size) |" in mlp  # both over the size budget: the faster
    assert (run / "results.json").read_bytes() == before
    again = CliRunner().invoke(main, ["report", str(run)])  # without them: the run's own settings (none)
    assert again.exit_code == 0 and "edge (" not in again.output
    assert "budget size" not in (run / "report.md").read_text()
    bad = CliRunner().invoke(main, ["report", str(run), "--latency-budget-ms", "0"])
    assert bad.exit_code == 2 and "--latency-budget-ms" in bad.output
    twice = CliRunner().invoke(main, ["report", str(run), str(run / "results.json")])  # the same run, as its file
    assert twice.exit_code == 2 and "is given twice" in twice.output
    as_file = CliRunner().invoke(main, ["report", str(run / "results.json")])  # reports beside it, no traceback
    assert as_file.exit_code == 0 and f"in {run}" in as_file.output.splitlines()[0]
    unknown = CliRunner().invoke(main, ["report", str(run), "--cold-budget-ms", "4"])
    assert unknown.exit_code == 0 and "no job qualifies" in unknown.output  # this fixture has no cold starts
    assert "with no cold start figure recorded" in unknown.output
    lossless = CliRunner().invoke(main, ["report", str(run), "--max-accuracy-drop", "0"])
    assert lossless.exit_code == 0 and "edge (batch 1, 1 thread, CPU; drop <= 0 points): " in lossless.output
    assert "| int8-dynamic |" not in (run / "report.md").read_text().split("## Edge deployment")[1].split("##")[0]
    low = CliRunner().invoke(main, ["report", str(run), "--accuracy-floor", "5"])  # as harness run warns of it
    assert low.exit_code == 0 and "--accuracy-floor 5 is read as a percentage: 5 %" in low.output


def test_a_joined_report_of_runs_with_different_size_budgets_shows_each_runs_budget(results):
    mlp = next(j for j in results["jobs"] if j["id"] == "mnist-mlp@synthetic")  # fp32 952,780 B, int8 241,500
    runs = []
    for name, budget in (("small", 300_000), ("tiny", 1000)):
        data = copy.deepcopy(results)
        data["run_id"], data["jobs"] = name, [copy.deepcopy(mlp)]
        data["config"]["size_budget_bytes"] = budget
        runs.append(data)
    tables = report.deployment_tables(joined(*runs))
    caption, table = tables[0]
    assert caption.endswith("each run's own accuracy floor and budget")
    rows = {r[2]: dict(zip(table.headers, r)) for r in table.rows}
    assert rows["small"]["run asked"] == "size <= 293.0 KiB" and rows["small"]["fits"] == "yes"
    assert rows["small"]["variant"] == "int8-dynamic"
    assert rows["tiny"]["run asked"] == "size <= 1000 B" and rows["tiny"]["fits"] == "no (size)"


def test_the_edge_answer_of_runs_asked_alike_names_each_jobs_run(results):
    from harness.edge import edge_answers

    mlp = next(j for j in results["jobs"] if j["id"] == "mnist-mlp@synthetic")
    runs = []
    for name in ("a", "b"):
        data = copy.deepcopy(results)
        data["run_id"], data["jobs"] = name, [copy.deepcopy(mlp)]
        data["config"]["accuracy_floor"] = 0.5
        runs.append(data)
    document = {**joined(*runs), "config": {"accuracy_floor": 0.5}}  # as the CLI carries a shared setting
    (answer,) = edge_answers(document)
    assert "2 of 2 job(s) qualify" in answer and "a: mnist-mlp" in answer and "b: mnist-mlp" in answer


def test_a_variant_whose_separate_p50_disagrees_with_its_alternating_rounds_says_so(results):
    (int8,) = [v for j in results["jobs"] for v in j.get("variants") or [] if v.get("variant") == "int8-dynamic"]
    # separate p50s: fp32 0.0173, int8 0.0121 ms (1.43x) - as the rounds say (ratio 0.7): no note
    int8["vs_fp32"].update(a_p50_ms=0.0121, b_p50_ms=0.0173)

    def note():
        table = report.variants_table(results)
        return next(dict(zip(table.headers, r)) for r in table.rows if r[2] == "int8-dynamic")["note"]

    assert "disagree" not in note()
    int8["latency"][0]["p50_ms"] = 0.0346  # measured while the machine was busy: 0.5x against fp32's 0.0173
    assert ("separate p50s 0.035 vs fp32 0.017 ms disagree with the alternating rounds (0.012 vs 0.017 ms)"
            in note())
    # rounds that drifted: the speed-up is their per-round median, and the note does not credit their p50s
    int8["vs_fp32"].update(stability="unstable", ratio_paired_median=1.0, a_p50_ms=0.0121, b_p50_ms=0.0176)
    assert ("separate p50s 0.035 vs fp32 0.017 ms disagree with the speed-up, the median of the alternating "
            "rounds' per-round ratios (the rounds' own p50s, 0.012 vs 0.018 ms, moved between rounds)") in note()
    int8["vs_fp32"]["threads"] = 2  # rounds at another setting than the row shown: nothing to contradict
    assert "disagree" not in note()


def test_harness_report_warns_of_model_files_missing_from_the_run_folder(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    for job in results["jobs"]:
        job["train"] = None  # fewer plots to draw
    folder = write_run(tmp_path / "run", results)
    listed = [job["onnx"]["path"] for job in results["jobs"] if job.get("onnx")]
    listed += [v["path"] for job in results["jobs"] for v in job.get("variants") or [] if v.get("path")]
    assert listed
    result = CliRunner().invoke(main, ["report", str(folder)])  # output: stdout and stderr
    assert result.exit_code == 0 and f"{len(listed)} ONNX file(s) results.json lists are not in" in result.output
    for path in listed:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(b"")
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 0 and "ONNX file(s)" not in result.output


def test_config_table_says_when_latency_was_measured_with_quick(results):
    from dataclasses import asdict

    from harness.latency import QUICK, LatencyConfig

    def latency_row(settings):
        config = {**results["config"], "latency": settings}
        return [r for r in report.config_table({**results, "config": config}).rows if r[0] == "latency"]

    assert latency_row(asdict(QUICK)) == [["latency", "--quick: short measurements for smoke tests (noisier figures)"]]
    assert latency_row(asdict(LatencyConfig())) == [] and latency_row(None) == []


def test_a_published_range_reads_the_same_from_a_plugin_tuple_and_from_results_json():
    from harness.report import reference_table

    def published(value):
        job = {"id": "m@d", "model": "m", "dataset": "d", "status": "ok", "params": 10,
               "reference": {"params": 10, "dataset": "d", "val_accuracy_range": value}}
        table = reference_table({"jobs": [job]})
        return next(cell for cell in table.rows[0] if "val_accuracy_range" in str(cell))

    assert published((0.5, 0.6)) == published([0.5, 0.6])
    assert "0.5" in published((0.5, 0.6)) and "(" not in published((0.5, 0.6))


def test_the_terminal_table_fits_the_width_given_and_says_what_it_left_out(results):
    def table(width=None):  # the table and its left-out line, without the note on training budgets below
        text, _, note = report.comparison_table(results, width=width).partition("\nnote: ")
        note = note.partition("\nin report.md")[0]  # and the line naming what only the reports show
        assert note and all(len(line) <= max(width or 0, 60) for line in note.splitlines()[1:]), note
        return text

    full = table()
    assert "max|diff|" in full and "left out" not in full
    # the columns that always stay: as narrow as it gets (a long model name can still make it wider)
    body, _, left_out = table(width=1).partition("\n(")
    least = body.splitlines()
    assert least[0].split()[:1] == ["model"] and " acc " in least[0] and "p50 ms b1" in least[0]
    assert "max|diff|" in left_out and "report.md" in left_out  # wrapped at 60, the narrowest it wraps to
    assert all(len(line) <= 60 for line in left_out.splitlines()), left_out
    widest = max(len(line) for line in full.splitlines())
    width = (max(len(line) for line in least) + widest) // 2
    narrow, _, left_out = table(width=width).partition("\n(")
    assert all(len(line) <= width for line in narrow.splitlines()) and left_out, (width, narrow)
    assert len(narrow.splitlines()[0].split()) > len(least[0].split())  # only as many left out as it takes
    assert table(width=1000) == full


def test_the_report_keeps_why_an_onnx_file_is_a_trace_beside_the_figures(results):
    from harness.report_html import to_html

    job = copy.deepcopy(next(j for j in results["jobs"] if j.get("onnx")))
    job["onnx"].update(exporter="torchscript", fallback_reason="TorchExportError (GuardOnDataDependentSymNode): x",
                       trace_warnings=["net.py:12: Converting a tensor to a Python boolean might cause the trace "
                                       "to be incorrect"])
    document = {**results, "jobs": [job]}
    notes = report.export_notes(document)
    assert notes == [f"{job['model']}@{job['dataset']}: the ONNX file is a TorchScript trace; the dynamo exporter "
                     "failed: TorchExportError (GuardOnDataDependentSymNode): x",
                     f"{job['model']}@{job['dataset']}: the tracer warned (1): net.py:12: Converting a tensor to a "
                     "Python boolean might cause the trace to be incorrect"]
    results_section = to_markdown(document).split("## Results")[1].split("\n## ")[0]
    assert f"- {notes[0]}" in results_section
    assert "the ONNX file is a TorchScript trace" in to_html(document, plots=[])
    assert report.export_notes(results) == []  # dynamo exports: nothing to say


def test_the_training_note_speaks_of_a_warm_up_only_when_a_job_had_one(results):
    from harness.report_html import to_html

    assert "warm-up" not in report.training_note(results)  # made before warm-ups, or with none: not claimed
    assert report.training_note(results) == report.TRAINING_NOTE
    warmed = copy.deepcopy(results)
    for job in warmed["jobs"]:
        if isinstance(job.get("train"), dict):
            job["train"].update(warmup_steps=2, warmup_s=0.25)
    note = report.training_note(warmed)
    assert "per-epoch evaluation and the warm-up: 2 untimed step(s) per batch size" in note
    assert note.endswith(report.TRAINING_NOTE.split("per-epoch evaluation.", 1)[1])
    assert "warm-up: 2 untimed" in to_markdown(warmed, plots={}) and "warm-up: 2 untimed" in to_html(warmed, plots=[])
    assert "untimed step" not in to_markdown(results, plots={})


def test_a_p50_marked_unstable_is_starred_in_every_table_that_shows_it(results, tmp_path):
    """A row whose median moved between the halves of its runs was said only by `harness bench`: the run's
    tables, the edge table and the CSV showed its p50 as if it were as good as any other."""
    from harness.edge import edge_markdown
    from harness.report import comparison_table, to_csv, write_reports

    job = next(j for j in results["jobs"] if j["id"] == "mnist-cnn@synthetic")
    row = next(r for r in job["latency"] if (r["runtime"], r["batch_size"], r["threads"]) == ("onnxruntime", 1, 1))
    row.update(stable=False, drift_pct=12.34)
    for other in (j for j in results["jobs"] if j is not job):  # the mark and its note are this row's alone
        for r in other.get("latency") or []:
            r.update(stable=True, drift_pct=0.5)
    results["config"]["accuracy_floor"] = 0.0
    p50 = f"{row['p50_ms']:.4f}*"
    note = "* unstable: the second half of the runs' median moved more than 5 % from the first (drift_pct up to 12.3 %)"

    terminal = comparison_table(results)
    line = next(x for x in terminal.splitlines() if x.startswith("mnist-cnn "))
    # the p50 and, this run being older than the paired ratio, ORT vs eager made from that row
    ratio_note = report.RATIO_UNSTABLE_NOTE
    assert line.count("*") == 2 and note in terminal and ratio_note in terminal
    assert terminal.count("*") == 2 + note.count("*") + ratio_note.count("*")
    # the advice names flags `harness run` has (--min-time is `harness bench`'s)
    import re

    from harness.cli import main

    run_flags = {opt for p in main.commands["run"].params for opt in p.opts}
    advice = terminal.split(note, 1)[1].split("\n", 1)[0]
    assert set(re.findall(r"--[a-z-]+", advice)) <= run_flags and "--quick" in advice
    write_reports(tmp_path, results)
    md = (tmp_path / "report.md").read_text()
    latency = md.split("## Latency")[1].split("## ")[0]
    md_p50, md_note = p50.replace("*", "\\*"), note.replace("*", "\\*")  # Markdown's escapes
    assert latency.count(md_p50) == 1 and md_note in latency
    edge = md.split("## Edge deployment")[1].split("\n## ")[0]
    cnn = next(x for x in edge.splitlines() if x.startswith("| mnist-cnn | synthetic |"))
    assert f"| {md_p50} |" in cnn and (note in edge or md_note in edge)
    api = edge_markdown(results, 0.0)  # the edge module's own Markdown, for other programs
    assert p50 in api and note in api
    html = (tmp_path / "report.html").read_text()
    assert html.count(__import__("html").escape(note)) >= 2  # under the latency table and the edge table
    csv_rows = list(csv.DictReader(io.StringIO(to_csv(results))))
    flagged = [r for r in csv_rows if r["stable"] == "False"]
    assert [(r["id"], r["batch_size"], r["threads"], r["drift_pct"]) for r in flagged] == [
        ("mnist-cnn@synthetic", "1", "1", "12.34")]


def test_a_model_whose_logits_never_vary_is_said_under_the_results(results):
    job = next(j for j in results["jobs"] if j["id"] == "mnist-cnn@synthetic")
    job["constant_output"] = True
    md = to_markdown(results)
    notes = md.split("## Results")[1].split("\n## ")[0]
    assert "- mnist-cnn@synthetic: the model gives the same logits for every test input" in notes
    job["input_adapted"] = "1 -> 3 channels (gray duplicated to RGB)"
    assert ("mnist-cnn@synthetic: the ONNX graph takes the dataset's inputs and adapts them first: 1 -> 3 "
            "channels (gray duplicated to RGB)") in report.export_notes(results)
    assert "adapts them first" in to_markdown(results).split("## Results")[1].split("\n## ")[0]



def test_a_jobs_adapted_input_is_said_under_the_terminal_table_and_in_results_csv(results):
    """A gray model on cifar10 sees the colours averaged to gray: the terminal table put it beside models that
    saw them without a word, and results.csv had no column for the data's shape, classes or adaptation."""
    job = next(j for j in results["jobs"] if j["id"] == "mnist-cnn@synthetic")
    assert "see the data adapted" not in report.comparison_table(results)
    job.update(input_adapted="3 -> 1 channels (RGB averaged to gray)", input_shape=[3, 32, 32], num_classes=10)
    table = report.comparison_table(results)
    assert ("1 job(s) see the data adapted inside the exported graph, 3 -> 1 channels (RGB averaged to gray): "
            "mnist-cnn@synthetic") in table
    rows = [r for r in csv.DictReader(io.StringIO(report.to_csv(results))) if r["id"] == "mnist-cnn@synthetic"]
    assert rows and all((r["input_shape"], r["num_classes"], r["input_adapted"]) == (
        "3x32x32", "10", "3 -> 1 channels (RGB averaged to gray)") for r in rows)
    job["status"] = "failed"  # a failed job's figures are not in the table: no line for it
    assert "see the data adapted" not in report.comparison_table(results)


def test_models_no_dataset_fits_are_said_under_the_terminal_table(results):
    """With --no-progress (CI logs) the run's note that 7 models fit none of the datasets was never printed:
    the table showed 11 models with no hint of the others."""
    assert "fit none of the datasets" not in report.comparison_table(results)
    results["unmatched_models"] = {"mnist-cnn3d-small": "1x16x16x16 volumes", "mnist-mlp": "1x28x28 images"}
    assert ("2 model(s) fit none of the datasets chosen and were left out: mnist-cnn3d-small (takes 1x16x16x16 "
            "volumes); mnist-mlp (takes 1x28x28 images)") in report.comparison_table(results)


def test_ort_vs_eager_is_the_alternating_rounds_ratio_and_starred_when_it_does_not_repeat():
    results = json.loads((FIXTURES / "report_run" / "results.json").read_text())
    results["jobs"] = [j for j in results["jobs"] if j["id"] == "mnist-cnn@synthetic"]
    job = results["jobs"][0]
    rows = {r["runtime"]: r for r in job["latency"] if r["batch_size"] == 1 and r["threads"] == 1}
    sequential = rows["torch"]["p50_ms"] / rows["onnxruntime"]["p50_ms"]  # 3.00x: two windows, one after the other
    (row,) = report.summary_rows(results)
    assert row["ort_speedup"] == pytest.approx(sequential) and not row["ort_speedup_unstable"]
    rows["torch"]["stable"] = False  # a ratio of an unstable row is starred too
    assert report.summary_rows(results)[0]["ort_speedup_unstable"]
    rows["torch"]["stable"] = True
    job["ort_vs_eager"] = {"provider": "CPUExecutionProvider", "batch_size": 1, "threads": 1, "ratio": 0.5,
                           "speedup": 2.0, "stable": True}
    (row,) = report.summary_rows(results)
    assert row["ort_speedup"] == 2.0 and not row["ort_speedup_unstable"]  # the paired figure wins
    assert "2.00x" in report.comparison_table(results) and report.RATIO_UNSTABLE_NOTE not in report.comparison_table(results)
    job["ort_vs_eager"]["stable"] = False
    text = report.comparison_table(results)
    assert f"2.00x{report.UNSTABLE_MARK}" in text and report.RATIO_UNSTABLE_NOTE in text
    job["ort_vs_eager"]["threads"] = 2  # measured at another setting than the p50 column: not this column's ratio
    assert report.summary_rows(results)[0]["ort_speedup"] == pytest.approx(sequential)


def test_the_metrics_note_in_report_md_escapes_what_plugins_wrote(results):
    """A metric plugin's description reached report.md's paragraph above the Metrics table unescaped: its
    HTML and links rendered."""
    job = results["jobs"][0]
    job["metrics"]["x<b>top</b>"] = job["onnx"]["metrics"]["x<b>top</b>"] = 0.5
    results["metric_specs"] = {"x<b>top</b>": {"plugin": "evil", "higher_is_better": True, "description":
                                               '<img src=x onerror=alert(1)> see [here](http://evil) *now*\n\n# Heading'}}
    markdown = to_markdown(results)
    note = markdown.split("## Metrics\n\n")[1].split("\n")[0]
    assert note.startswith("Metrics beyond accuracy") and "# Heading" in note  # one paragraph, no heading
    assert not re.search(r"(?<!\\)[<>\[\]*]", note)  # every tag, link and emphasis escaped
    assert r"\<img src=x onerror=alert(1)\> see \[here\](http://evil) \*now\*" in note
    assert "\n# Heading" not in markdown


def test_a_terminal_table_of_a_long_sweep_shows_its_most_accurate_jobs_and_says_so(results):
    from harness.report import comparison_table

    jobs = [job for job in results["jobs"] if job.get("status") == "ok"]
    assert len(jobs) >= 3
    full = comparison_table(results)
    assert "most accurate" not in full  # no cut without max_rows, nor when the run is small enough
    assert comparison_table(results, max_rows=len(results["jobs"])) == full
    cut = comparison_table(results, max_rows=2)
    best = sorted(jobs, key=lambda j: -(j.get("onnx") or {}).get("metrics", {}).get("accuracy", -1))[:2]
    lines = cut.splitlines()
    shown = [line.split()[0] for line in lines[2:lines.index(next(x for x in lines if x.startswith("(")))]]
    assert shown == [j["model"] for j in best] == ["mnist-mlp", "mnist-cnn"]  # in run order
    assert (f"(the 2 most accurate of {len(results['jobs'])} jobs; report.md and results.csv list every one; "
            "harness report RUN --sort KEY --top N ranks them otherwise)") in cut


@pytest.mark.parametrize("key", list(report.SORT_KEYS))
def test_a_sorted_table_ranks_its_jobs_best_first_by_the_figure_its_column_shows(results, key):
    jobs, words = report.ranked(results, key)
    assert sorted(map(id, jobs)) == sorted(map(id, results["jobs"]))  # every job, once
    rows = {id(job): row for job, row in zip(results["jobs"], report.summary_rows(results))}
    small_bs = next(r["small_bs"] for r in rows.values() if r["small_bs"])
    figure = {"accuracy": lambda job, r: report.accuracy_of(job), "p50": lambda job, r: r["p50_small"],
              "p99": lambda job, r: r["p99_small"], "throughput": lambda job, r: r["throughput_big"],
              "size": lambda job, r: r["onnx_kb"], "activation": lambda job, r: r["activation_bytes"],
              "params": lambda job, r: r["params"], "flops": lambda job, r: r["flops"],
              "train": lambda job, r: r["train_seconds"]}[key]
    values = [figure(job, rows[id(job)]) for job in jobs]
    known = [v for v in values if v is not None]
    assert values[:len(known)] == known  # those without the figure last
    assert known == sorted(known, reverse=report.SORT_KEYS[key][1])  # best first
    ties = [n for n, job in enumerate(results["jobs"]) if figure(job, rows[id(job)]) is None]
    assert [results["jobs"].index(job) for job in jobs[len(known):]] == ties  # the rest in run order
    assert str(small_bs) in words if key in ("p50", "p99") else "{" not in words


def test_the_printed_table_can_be_sorted_and_cut_to_its_top_jobs(results):
    from harness.report import comparison_table

    def models(text: str) -> list[str]:
        lines = text.splitlines()
        return [line.split()[0] for line in lines[2:lines.index(next(x for x in lines if x.startswith("(")))]]

    by_p50 = [j for j in results["jobs"] if (report.pick_latency(j, threads=1) or {}).get("p50_ms") is not None]
    fastest = sorted(by_p50, key=lambda j: report.pick_latency(j, threads=1)["p50_ms"])[:3]
    cut = comparison_table(results, sort="p50", top=3)
    assert models(cut) == [job["model"] for job in fastest] != [job["model"] for job in by_p50[:3]]
    assert (f"(the first 3 of {len(results['jobs'])} jobs, sorted: lowest p50 latency at batch 1 first; "
            "report.md and results.csv list every one)") in cut
    whole = comparison_table(results, sort="params")
    assert "(sorted: fewest parameters first)" in whole and len(models(whole)) == len(results["jobs"])
    # --top alone ranks by accuracy; a terminal's cut (max_rows) takes the first rows of the order asked
    best = [job["model"] for job in report.ranked(results, "accuracy")[0][:2]]
    assert models(comparison_table(results, top=2)) == best
    assert len(models(comparison_table(results, top=5, max_rows=2))) == 5  # asked for: more than a terminal's cut
    assert models(comparison_table(results, sort="accuracy", max_rows=2)) == best
    # what only the reports hold is counted over every job, not the rows shown
    groups = len(report.seed_summary(results))
    assert groups > 1 and all(f"Seeds (mean ± std over {groups} group(s) of seeds)" in comparison_table(results, **cut)
                              for cut in ({"top": 1}, {"sort": "p50", "top": 1}, {"max_rows": 1}))
    with pytest.raises(ValueError, match="unknown sort key 'speed'"):
        report.ranked(results, "speed")


@pytest.mark.parametrize("key", sorted(report.SORT_COLUMNS))
def test_a_narrow_sorted_table_keeps_the_column_it_is_ranked_by(results, key):
    """At 80-120 characters the size, params, MFLOPs, p99 and samples/s columns were left out even when the
    table was ranked by them: a ranking by a figure the reader could not see."""
    from harness.report import comparison_table

    column = report.SORT_COLUMNS[key]
    assert column in report.NARROW_DROPS

    def table_and_left_out(sort: str) -> tuple[str, str]:
        text = comparison_table(results, width=80, sort=sort, top=3).replace("\n  ", " ")  # notes wrap at 80
        return text.splitlines()[0], next(line for line in text.splitlines() if "left out to fit 80" in line)

    header, left_out = table_and_left_out(key)
    assert column in header and column not in left_out, (header, left_out)
    assert column in table_and_left_out("accuracy")[1]  # left out where the table is not ranked by it


def test_top_is_a_whole_number_of_at_least_one():
    """top=-1 showed every job but the last, top=0 every one, top="3" raised from inside the sort."""
    from harness.report import comparison_table

    data = {"jobs": []}
    for top, error in ((-1, ValueError), (0, ValueError), ("3", TypeError), (True, TypeError), (2.0, TypeError)):
        with pytest.raises(error, match="top"):
            comparison_table(data, top=top)


def test_the_cli_sort_choices_are_the_reports_sort_keys():
    from harness.cli import SORT_CHOICES

    assert list(SORT_CHOICES) == list(report.SORT_KEYS)


def test_harness_report_prints_the_ranked_table_and_keeps_the_files_in_run_order(results, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results))
    result = CliRunner().invoke(main, ["report", str(run), "--sort", "size", "--top", "2"])
    assert result.exit_code == 0, result.output
    smallest = sorted((j for j in results["jobs"] if (j.get("onnx") or {}).get("bytes")),
                      key=lambda j: j["onnx"]["bytes"])[:2]
    table = result.output.split("\nmodel ")[1].splitlines()
    assert [line.split()[0] for line in table[2:4]] == [job["model"] for job in smallest]
    assert table[4].startswith("(the first 2 of")
    ids = [row["id"] for row in csv.DictReader(io.StringIO((run / "results.csv").read_text()))]
    assert list(dict.fromkeys(ids)) == [job["id"] for job in results["jobs"]]


def test_report_md_says_when_only_the_most_accurate_jobs_curves_were_drawn(results):
    from harness.report import history_table, to_markdown

    trained = [job["id"] for job in results["jobs"] if history_table(job)]
    every = {f"curves:{i}": f"plots/c{n}.png" for n, i in enumerate(trained)}
    assert "Curves drawn for the" not in to_markdown(results, plots=every)
    some = dict(list(every.items())[:3])
    md = to_markdown(results, plots=some)
    assert f"Curves drawn for the 3 most accurate of the {len(trained)} jobs trained for more than one epoch" in md
    assert md.count("![training curves]") == 3 and md.count("### ") >= len(trained)  # every job's table stays


def test_the_results_table_explains_its_stars_and_the_advice_fits_the_runs_settings(results, tmp_path):
    """A p50 star in report.md's results table sat above a note whose only star was ORT vs eager's, and the
    advice said "without --quick if the run used it" of a run whose results.json says it did not."""
    import dataclasses

    from harness.latency import QUICK, LatencyConfig, run_remedy
    from harness.report import results_note, write_reports

    assert run_remedy({"config": {"latency": dataclasses.asdict(QUICK)}}) == "at a quieter moment, and without --quick"
    assert run_remedy({"config": {"latency": dataclasses.asdict(LatencyConfig())}}) == "at a quieter moment"
    assert "if the run used it" in run_remedy({})  # settings not recorded (an older run): both ways said
    assert "unstable" not in results_note(results)
    job = next(j for j in results["jobs"] if j["id"] == "mnist-cnn@synthetic")
    job["latency"][0].update(stable=False, drift_pct=12.3)
    results["config"]["latency"] = dataclasses.asdict(LatencyConfig())
    note = results_note(results)
    assert "* unstable: the second half of the runs' median moved" in note
    assert "(measure again at a quieter moment)." in note and "--quick" not in note
    write_reports(tmp_path, results)
    section = (tmp_path / "report.md").read_text().split("## Results")[1].split("\n## ")[0]
    assert "\\* unstable: the second half" in section  # under the table whose cells carry the stars
    terminal = report.comparison_table(results)
    assert "ORT vs eager: eager PyTorch's time over the exported model's in ONNX Runtime (above 1x" in terminal


def test_jobs_near_chance_are_named_under_the_table_and_in_the_reports(results, tmp_path):
    """A smoke run's barely trained models were ranked beside trained ones with nothing said: an accuracy at
    chance says nothing of the model."""
    from harness.report import near_chance, results_note

    assert near_chance(results) is None  # no num_classes recorded (an older run): nothing judged
    for job in results["jobs"]:
        job["num_classes"] = 10
    ok = [j for j in results["jobs"] if j.get("status") == "ok"]
    ok[0]["onnx"]["metrics"]["accuracy"] = 0.11   # chance is 0.1: near it
    ok[1]["onnx"]["metrics"]["accuracy"] = 0.189  # still within a tenth of the way from chance to 1
    for job in ok[2:]:
        job["onnx"]["metrics"]["accuracy"] = 0.191
    line = near_chance(results)
    assert line.startswith("2 job(s) score near chance (1 / the number of classes)"), line
    assert report.job_label(ok[0], dataset=True) in line and report.job_label(ok[2], dataset=True) not in line
    assert line in report.comparison_table(results) and line in results_note(results)
    both = near_chance(joined(results, {**results, "run_id": "other"}))  # the same job twice: which run's
    assert both.startswith("4 job(s)") and f"other: {report.job_label(ok[0], dataset=True)}" in both
    assert f"fixture-report: {report.job_label(ok[0], dataset=True)}" in both


def test_the_run_options_say_what_was_selected_and_a_long_environment_value_is_cut():
    """report.html's run options left out the models, datasets and plugins (the command could not be told
    from it), and a CUDA provider's load error on a CPU machine filled a screen of the environment table."""
    from harness.report import ENV_VALUE_CHARS, config_table, environment_table

    config = {"plugins": None, "models": ["mnist-mlp", "mnist-cnn"], "datasets": ["synthetic"], "epochs": 1}
    rows = {k: v for k, v in config_table({"config": config}).rows}
    assert (rows["plugins"], rows["models"], rows["datasets"]) == ("all", "mnist-mlp, mnist-cnn", "synthetic")
    error = "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: " * 20
    env = {"onnxruntime_unusable_providers": {"CUDAExecutionProvider": error}, "torch": "2.13.0"}
    shown = dict(environment_table({"environment": env}).rows)
    assert shown["torch"] == "2.13.0"
    cut = shown["onnxruntime_unusable_providers"]
    assert cut.endswith("... (whole in results.json)") and len(cut) < ENV_VALUE_CHARS + 40


def test_a_variants_csv_rows_say_what_choosing_it_costs_and_gains(results):
    """results.csv's variant rows had no accuracy drop, no speed-up against fp32, and an fp16 row's blank
    latency read as lost where results.json said fp16 is timed on GPU providers only."""
    job = next(j for j in results["jobs"] if any(isinstance(v, dict) and v.get("metrics") for v in j.get("variants") or []))
    variant = next(v for v in job["variants"] if isinstance(v, dict) and v.get("metrics"))
    variant["metrics"]["accuracy"] = job["onnx"]["metrics"]["accuracy"] - 0.0125
    variant["vs_fp32"] = {"speedup": 1.42, "stability": "stable"}
    variant["latency_skipped"] = ["provider CPUExecutionProvider: fp16 latency is measured on GPU providers only"]
    rows = [r for r in csv.DictReader(io.StringIO(report.to_csv(results)))
            if r["id"] == job["id"] and r["variant"] == variant["variant"]]
    assert rows and all(float(r["accuracy_drop"]) == pytest.approx(0.0125) for r in rows)
    assert {(r["vs_fp32_speedup"], r["vs_fp32_stability"]) for r in rows} == {("1.42", "stable")}
    assert all("measured on GPU providers only" in r["latency_skipped"] for r in rows)
    fp32 = [r for r in csv.DictReader(io.StringIO(report.to_csv(results))) if r["id"] == job["id"] and r["variant"] == "fp32"]
    assert fp32 and all(r["accuracy_drop"] == "" for r in fp32)


def test_a_variant_that_lost_much_accuracy_is_said_under_the_terminal_table(results):
    """An int8 file that lost 23 points against fp32 was only in the reports' Variants table."""
    job = next(j for j in results["jobs"] if any(isinstance(v, dict) and v.get("metrics") for v in j.get("variants") or []))
    variant = next(v for v in job["variants"] if isinstance(v, dict) and v.get("metrics"))
    fp32 = job["onnx"]["metrics"]["accuracy"]
    variant["metrics"]["accuracy"] = fp32 - 0.005  # half a point: noise, not said
    assert "points of accuracy or more" not in report.comparison_table(results)
    variant["metrics"]["accuracy"] = fp32 - 0.23
    assert (f"1 variant(s) lose 2 points of accuracy or more against their fp32 export: {job['id']} "
            f"{variant['variant']} -23.0 points") in report.comparison_table(results)


def test_a_failed_jobs_metrics_say_so_in_words_not_only_by_the_rows_shade(results):
    """The Metrics table showed a failed job's scores with nothing but a pale row (lost in print, in forced
    colours, and in report.md) to tell them from a finished job's."""
    from harness.report import metrics_table

    table = metrics_table(results)
    status = table.headers.index("status")
    failed = [row for row, cls in zip(table.rows, table.classes) if cls == "failed"]
    assert failed and all(row[status].startswith("failed (") for row in failed)
    assert "| failed (" in to_markdown(results).split("## Metrics")[1].split("\n## ")[0]
    finished = {**results, "jobs": [job for job in results["jobs"] if job["status"] == "ok"]}
    assert "status" not in metrics_table(finished).headers  # every row finished: nothing to say


def test_the_failed_jobs_section_is_titled_for_what_it_holds(results):
    from harness.report import failed_heading, failed_table

    def heading(statuses):
        return failed_heading(failed_table({**results, "jobs": [j for j in results["jobs"] if j["status"] in statuses]}))

    assert heading({"failed"}) == "Failed jobs" and heading({"skipped"}) == "Skipped jobs"
    assert heading({"failed", "skipped"}) == "Failed and skipped jobs"
    only_skipped = {**results, "jobs": [j for j in results["jobs"] if j["status"] != "failed"]}
    assert "## Skipped jobs" in to_markdown(only_skipped) and "## Failed" not in to_markdown(only_skipped)


def test_an_edge_tables_footnote_keeps_its_star_in_markdown(results):
    """`* unstable: ...` at a line's start is a Markdown bullet: the star, the mark it explains, was lost."""
    from harness.report import deployment_tables

    for job in results["jobs"]:
        for row in job.get("latency") or []:
            row["stable"] = False
    (caption, table), *_ = deployment_tables(results)
    assert table.footnote and table.footnote.startswith("* unstable")
    assert "\n\\* unstable" in to_markdown(results) and "\n* unstable" not in to_markdown(results)


def test_an_older_runs_unstable_speedup_is_read_by_todays_rule_in_the_csv_as_in_the_report(results):
    """A results.json from before the rounds' median rule recorded 1 / ratio for an unstable comparison:
    report.md recomputed it, results.csv copied the stored figure (3.83x beside 4.85x)."""
    from harness.report import csv_rows, variants_table

    job = next(j for j in results["jobs"] if any(v.get("variant") == "int8-dynamic" for v in j.get("variants") or []))
    variant = next(v for v in job["variants"] if v.get("variant") == "int8-dynamic")
    variant["vs_fp32"] = {"ratio": 0.8, "speedup": 1.25, "stability": "unstable", "ratio_paired_median": 1.1}
    row = next(r for r in csv_rows(results) if r.get("variant") == "int8-dynamic")
    assert row["vs_fp32_speedup"] == round(1 / 1.1, 4)
    table = variants_table(results)
    cell = next(c for r in table.rows if "int8-dynamic" in r for c in r if "(unstable)" in str(c))
    assert cell.startswith("0.91x")

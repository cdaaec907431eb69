"""The edge-deployment table on a hand-written results document."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.edge import THREADS_MAX, deployment_table, edge_markdown, to_markdown

CPU = "CPUExecutionProvider"


def lat(p50, batch=1, threads=1, provider=CPU, runtime="onnxruntime", p99=None):
    return {"runtime": runtime, "provider": provider, "batch_size": batch, "threads": threads, "runs": 100,
            "p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p99 if p99 is not None else p50 * 1.5,
            "mean_ms": p50, "std_ms": 0.01, "min_ms": p50 * 0.9, "throughput_per_s": batch * 1000 / p50}


def variant(name, accuracy, nbytes, rows, error=None, ratio=None):
    row = {"variant": name, "path": f"onnx/x.{name}.onnx", "bytes": nbytes, "metrics": {"accuracy": accuracy},
           "activation_bytes": None if nbytes is None else nbytes // 2,
           "latency": rows, "error": error}
    if ratio is not None:
        row["vs_fp32"] = {"ratio": ratio, "provider": CPU, "batch_size": 1, "threads": 1}
    return row


RESULTS = {
    "schema_version": 1,
    "run_id": "r",
    "jobs": [
        {   # int8-static is the fastest that keeps accuracy; int8-dynamic is faster but too inaccurate
            "id": "cnn@mnist", "model": "cnn", "dataset": "mnist", "status": "ok", "error": None, "params": 20000,
            "flops": 3_514_000,
            "metrics": {"accuracy": 0.981},
            "onnx": {"path": "onnx/cnn.onnx", "bytes": 80000, "activation_bytes": 100_352, "metrics": {"accuracy": 0.98}},
            "latency": [lat(0.50), lat(0.30, threads=2), lat(2.0, batch=32), lat(0.9, runtime="torch")],
            "variants": [
                variant("int8-dynamic", 0.90, 25000, [lat(0.20), lat(0.15, threads=2)]),
                variant("int8-static", 0.975, 26000, [lat(0.35), lat(0.40, threads=2)], ratio=0.7),
                variant("fp16", 0.98, 40000, [lat(0.05, provider="CUDAExecutionProvider")]),
                variant("ort-opt", None, None, [], error="RuntimeError: boom"),
            ],
        },
        {   # only fp32; slow
            "id": "big@mnist", "model": "big", "dataset": "mnist", "status": "ok", "error": None, "params": 900000,
            "metrics": {"accuracy": 0.99},
            "onnx": {"path": "onnx/big.onnx", "bytes": 3_600_000, "metrics": {"accuracy": 0.99}},
            "latency": [lat(2.5, p99=4.0)],
            # as fast as fp32 within noise (alternating ratio 0.99) but less accurate: fp32 wins the tie
            "variants": [variant("int8-static", 0.985, 1_000_000, [lat(2.0)], ratio=0.99)],
        },
        {"id": "bad@mnist", "model": "bad", "dataset": "mnist", "status": "failed", "error": "train: NaN loss",
         "params": 10, "metrics": None, "onnx": None, "latency": []},
        {"id": "x@cifar", "model": "x", "dataset": "cifar", "status": "skipped", "error": "incompatible"},
    ],
}


def by_model(rows):
    return {r["model"]: r for r in rows}


def test_without_floor_the_fastest_variant_wins():
    rows = deployment_table(RESULTS)
    assert [r["model"] for r in rows] == ["cnn", "big", "bad"]  # skipped jobs are left out
    cnn = by_model(rows)["cnn"]
    assert cnn["variant"] == "int8-dynamic" and cnn["p50_ms"] == 0.20 and cnn["bytes"] == 25000
    assert cnn["provider"] == CPU and cnn["threads"] == 1 and cnn["batch_size"] == 1
    assert cnn["accuracy"] == 0.90 and cnn["accuracy_drop"] == pytest.approx(0.08)
    assert cnn["params"] == 20000 and cnn["flops"] == 3_514_000 and cnn["fits_budget"] is None
    assert cnn["activation_bytes"] == 25000 // 2  # the chosen variant's own
    assert by_model(rows)["big"]["flops"] is None  # a job recorded before FLOPs were counted
    assert cnn["vs_fp32_ratio"] == pytest.approx(0.4) and cnn["vs_fp32_basis"] == "sequential"


def test_accuracy_floor_picks_the_fastest_accurate_variant():
    rows = by_model(deployment_table(RESULTS, accuracy_floor=0.97))
    cnn = rows["cnn"]
    assert cnn["variant"] == "int8-static" and cnn["p50_ms"] == 0.35 and cnn["p99_ms"] == pytest.approx(0.525)
    assert cnn["vs_fp32_ratio"] == 0.7 and cnn["vs_fp32_basis"] == "alternating"
    assert rows["big"]["variant"] == "fp32" and rows["big"]["p99_ms"] == 4.0
    # a floor in percent means the same
    assert by_model(deployment_table(RESULTS, accuracy_floor=97))["cnn"]["variant"] == "int8-static"


def test_alternating_ratio_beats_sequential_p50s_and_near_ties_go_to_the_more_accurate():
    big = by_model(deployment_table(RESULTS))["big"]
    # int8-static's own p50 (2.0) is lower than fp32's (2.5, another time window), but the alternating
    # comparison says 0.99: a tie, and fp32 has no accuracy drop.
    assert big["variant"] == "fp32" and big["p50_ms"] == 2.5
    faster = copy.deepcopy(RESULTS)
    faster["jobs"][1]["variants"][0]["vs_fp32"]["ratio"] = 0.8
    assert by_model(deployment_table(faster))["big"]["variant"] == "int8-static"
    # without an alternating figure, the p50 ratio decides (2.0 / 2.5 = 0.8)
    del faster["jobs"][1]["variants"][0]["vs_fp32"]
    row = by_model(deployment_table(faster))["big"]
    assert row["variant"] == "int8-static" and row["vs_fp32_basis"] == "sequential"
    assert row["vs_fp32_ratio"] == pytest.approx(0.8)


def test_max_accuracy_drop_is_relative_to_fp32():
    cnn = by_model(deployment_table(RESULTS, max_accuracy_drop=0.001))["cnn"]
    assert cnn["variant"] == "fp32" and cnn["p50_ms"] == 0.50


def test_floor_nobody_meets_gives_a_row_with_the_reason():
    rows = by_model(deployment_table(RESULTS, accuracy_floor=0.995))
    assert rows["cnn"]["variant"] is None and rows["cnn"]["p50_ms"] is None
    assert "below the floor 0.995" in rows["cnn"]["note"]
    assert rows["bad"]["variant"] is None and "NaN loss" in rows["bad"]["note"]


def test_latency_budget_marks_what_fits():
    rows = by_model(deployment_table(RESULTS, accuracy_floor=0.97, latency_budget_ms=1.0))
    assert rows["cnn"]["fits_budget"] is True
    assert rows["big"]["fits_budget"] is False
    assert rows["bad"]["fits_budget"] is None


def test_threads_and_provider_select_the_rows():
    cnn = by_model(deployment_table(RESULTS, threads=2))["cnn"]
    assert cnn["variant"] == "int8-dynamic" and cnn["p50_ms"] == 0.15 and cnn["threads"] == 2
    cnn = by_model(deployment_table(RESULTS, accuracy_floor=0.97, threads=THREADS_MAX))["cnn"]
    assert cnn["variant"] == "fp32" and cnn["p50_ms"] == 0.30 and cnn["threads"] == 2
    gpu = by_model(deployment_table(RESULTS, provider=None))["cnn"]
    assert gpu["variant"] == "fp16" and gpu["provider"] == "CUDAExecutionProvider"
    big = by_model(deployment_table(RESULTS, batch_size=32))["big"]
    assert big["variant"] is None and "no latency at batch 32" in big["note"]


def test_the_table_does_not_change_its_input():
    before = copy.deepcopy(RESULTS)
    deployment_table(RESULTS, accuracy_floor=0.9, latency_budget_ms=1)
    assert RESULTS == before


def test_size_and_activation_budgets_pick_the_variant_that_fits_and_name_what_does_not():
    # cnn: fp32 80,000 B (activations 100,352), int8-static 26,000 B (13,000), int8-dynamic too inaccurate
    rows = by_model(deployment_table(RESULTS, accuracy_floor=0.97, size_budget_bytes=30_000))
    assert rows["cnn"]["variant"] == "int8-static" and rows["cnn"]["fits_budget"] is True
    assert rows["cnn"]["over_budget"] == [] and rows["cnn"]["size_budget_bytes"] == 30_000
    # big: nothing fits 30 kB; the row still shows its pick, over the size budget
    assert rows["big"]["fits_budget"] is False and rows["big"]["over_budget"] == ["size"]
    # within the budgets a slower variant beats a faster one that is not: fp32 is faster than int8-static
    # for big only relatively (0.99, a tie), so take cnn with fp32 made the fastest
    faster = copy.deepcopy(RESULTS)
    faster["jobs"][0]["variants"][1]["vs_fp32"]["ratio"] = 1.5
    assert by_model(deployment_table(faster, accuracy_floor=0.97))["cnn"]["variant"] == "fp32"
    fit = by_model(deployment_table(faster, accuracy_floor=0.97, activation_budget_bytes=64 * 1024))["cnn"]
    assert fit["variant"] == "int8-static" and fit["fits_budget"] is True
    # the fewest budgets missed wins: int8-static misses only the latency budget, fp32 both
    both = by_model(deployment_table(faster, accuracy_floor=0.97, latency_budget_ms=0.1,
                                     activation_budget_bytes=64 * 1024))["cnn"]
    assert both["variant"] == "int8-static" and both["over_budget"] == ["latency"]
    # an activation figure that was not recorded does not fit (big's fp32 has none)
    big = by_model(deployment_table(RESULTS, activation_budget_bytes=10 ** 9))["big"]
    assert big["variant"] == "int8-static" and big["fits_budget"] is True
    big = by_model(deployment_table(RESULTS, accuracy_floor=0.99, activation_budget_bytes=10 ** 9))["big"]
    assert big["variant"] == "fp32" and big["over_budget"] == ["activations unknown"]
    assert "| no (activations unknown) |" in to_markdown([big])
    text = to_markdown(list(rows.values()))
    assert "budget size <= 29.3 KiB" in text.splitlines()[0]
    assert "| no (size) |" in next(line for line in text.splitlines() if line.startswith("| big"))


def test_edge_answer_with_a_size_budget_names_what_the_closest_is_over():
    from harness.edge import edge_answer

    yes = edge_answer(RESULTS, 0.97, None, size_budget_bytes=30_000)
    assert "size <= 29.3 KiB): 1 of 2 job(s) qualify" in yes and "cnn int8-static" in yes
    assert edge_answer(RESULTS, None, None, activation_budget_bytes=1) is not None  # a budget alone asks
    miss = edge_answer(RESULTS, 0.97, None, size_budget_bytes=1000)
    assert ("no job qualifies; the closest is cnn int8-static on mnist at 0.3500 ms, over its budget: "
            "size 25.4 KiB > 1000 B") in miss
    # big's fp32 export has no activation figure (an older run): not "over" a budget, but unknown
    only_big = {"jobs": [RESULTS["jobs"][1]]}
    unknown = edge_answer(only_big, 0.99, None, activation_budget_bytes=10 ** 9)
    assert unknown.endswith("the closest is big fp32 on mnist at 2.5000 ms, with no activations figure recorded")
    both = edge_answer(only_big, 0.99, None, size_budget_bytes=1000, activation_budget_bytes=10 ** 9)
    assert both.endswith("over its budget: size 3.43 MiB > 1000 B and with no activations figure recorded")


def cold_start(ms, provider=CPU, rss=1_000_000):
    return {"provider": provider, "threads": 1, "batch_size": 1, "opt_level": "all", "ms": ms,
            "session_ms": ms - 0.5, "first_call_ms": 0.5, "runtime_ms": 100.0, "rss_bytes": rss, "runs": 3,
            "samples_ms": [ms] * 3}


def test_a_cold_start_budget_picks_the_variant_that_starts_in_time_and_names_what_does_not():
    from harness.edge import edge_answer

    # cnn at floor 0.97: int8-static (0.7x fp32) wins on speed; a cold budget only it misses turns to fp32
    results = copy.deepcopy(RESULTS)
    cnn, big = results["jobs"][0], results["jobs"][1]
    cnn["onnx"]["cold_start"] = cold_start(4.0)
    cnn["variants"][1]["cold_start"] = cold_start(9.0)
    big["onnx"]["cold_start"] = cold_start(30.0)
    big["variants"][0]["cold_start"] = {**cold_start(0), "ms": None, "error": "RuntimeError: boom"}
    assert by_model(deployment_table(results, accuracy_floor=0.97))["cnn"]["variant"] == "int8-static"
    rows = by_model(deployment_table(results, accuracy_floor=0.97, cold_budget_ms=5))
    assert rows["cnn"]["variant"] == "fp32" and rows["cnn"]["cold_ms"] == 4.0 and rows["cnn"]["fits_budget"]
    assert rows["cnn"]["cold_budget_ms"] == 5
    assert rows["big"]["cold_ms"] == 30.0 and rows["big"]["over_budget"] == ["cold start"]
    # a failed probe, a run from before cold starts, one measured on another provider: unknown, not a fit
    big_rows = by_model(deployment_table(results, cold_budget_ms=50, accuracy_floor=0.98))["big"]
    assert big_rows["variant"] == "fp32"  # int8-static's cold start is unknown
    assert by_model(deployment_table(RESULTS, cold_budget_ms=5))["big"]["over_budget"] == ["cold start unknown"]
    cnn["onnx"]["cold_start"] = cold_start(4.0, provider="CUDAExecutionProvider")
    on_cpu = by_model(deployment_table(results, max_accuracy_drop=0, cold_budget_ms=5))["cnn"]  # fp32 only
    assert on_cpu["variant"] == "fp32" and on_cpu["cold_ms"] is None
    assert on_cpu["over_budget"] == ["cold start unknown"]
    at_32 = by_model(deployment_table(results, batch_size=32, cold_budget_ms=5))["cnn"]  # measured at batch 1
    assert at_32["variant"] == "fp32" and at_32["cold_ms"] is None
    text = to_markdown(list(rows.values()))
    assert "budget cold start <= 5 ms" in text.splitlines()[0] and "| cold ms |" in text
    assert "| no (cold start) |" in next(line for line in text.splitlines() if line.startswith("| big"))
    cnn["onnx"]["cold_start"] = cold_start(4.0)
    answer = edge_answer(results, 0.97, None, cold_budget_ms=5)
    assert "cold start <= 5 ms): 1 of 2 job(s) qualify" in answer and "cnn fp32 on mnist 0.5000 ms, accuracy 0.9800, " \
        "cold start 4.0 ms" in answer
    miss = edge_answer({"jobs": [results["jobs"][1]]}, 0.99, None, cold_budget_ms=5)
    assert miss.endswith("the closest is big fp32 on mnist at 2.5000 ms, over its budget: cold start 30.0 ms > 5 ms")


def test_a_memory_budget_judges_the_resident_memory_each_model_adds():
    from harness.edge import edge_answer

    results = copy.deepcopy(RESULTS)
    cnn, big = results["jobs"][0], results["jobs"][1]
    cnn["onnx"]["cold_start"] = cold_start(4.0, rss=3_000_000)
    cnn["variants"][1]["cold_start"] = cold_start(9.0, rss=900_000)  # int8-static: a third of fp32's
    big["onnx"]["cold_start"] = cold_start(30.0, rss=40_000_000)
    rows = by_model(deployment_table(results, accuracy_floor=0.97, memory_budget_bytes=1024 ** 2))
    assert rows["cnn"]["variant"] == "int8-static" and rows["cnn"]["rss_bytes"] == 900_000
    assert rows["cnn"]["fits_budget"] and rows["cnn"]["memory_budget_bytes"] == 1024 ** 2
    assert rows["big"]["variant"] == "fp32" and rows["big"]["over_budget"] == ["memory"]
    unknown = by_model(deployment_table(RESULTS, accuracy_floor=0.97, memory_budget_bytes=1024 ** 2))["cnn"]
    assert unknown["rss_bytes"] is None and unknown["over_budget"] == ["memory unknown"]  # no cold starts run
    big_fp32 = by_model(deployment_table(results, accuracy_floor=0.99, memory_budget_bytes=1024 ** 2))["big"]
    assert big_fp32["variant"] == "fp32" and big_fp32["over_budget"] == ["memory"]
    text = to_markdown([rows["cnn"], big_fp32])
    assert "memory <= 1.00 MiB" in text.splitlines()[0] and "| RAM |" in text and "| 878.9 KiB |" in text
    answer = edge_answer(results, 0.97, None, memory_budget_bytes=1024 ** 2)
    assert "memory <= 1.00 MiB): 1 of 2 job(s) qualify" in answer and "878.9 KiB memory" in answer
    miss = edge_answer({"jobs": [big]}, 0.99, None, memory_budget_bytes=1024 ** 2)
    assert miss.endswith("over its budget: memory 38.15 MiB > 1.00 MiB")


def test_markdown_table():
    text = to_markdown(deployment_table(RESULTS, accuracy_floor=0.97, latency_budget_ms=1.0))
    lines = text.splitlines()
    assert "batch 1" in lines[0] and "accuracy floor 0.97" in lines[0] and "budget p50 <= 1 ms" in lines[0]
    header = next(line for line in lines if line.startswith("| model"))
    assert "fits budget" in header and "p99 ms" in header and "params" in header
    cnn = next(line for line in lines if line.startswith("| cnn"))
    assert "int8-static" in cnn and "0.3500" in cnn and "25.4 KiB" in cnn and "| yes |" in cnn
    assert "| 0.9750 | 0.50 |" in cnn and "drop vs fp32 (points)" in header  # 0.98 - 0.975, in points as elsewhere
    assert "| 20,000 | 3.51 |" in cnn and "MFLOPs" in header
    assert "| 25.4 KiB | 12.7 KiB |" in cnn and "activations" in header  # int8-static: 26000 bytes, half of it
    big = next(line for line in lines if line.startswith("| big"))
    assert "| no (latency) |" in big and "3.43 MiB" in big and "900,000" in big
    assert any(line.startswith("- bad on mnist: job failed") for line in lines)
    assert to_markdown([]).startswith("_No job")


def test_edge_markdown_has_one_and_all_thread_sections():
    text = edge_markdown(RESULTS, accuracy_floor=0.97)
    # cnn was timed on 2 threads at most, big on 1: the second table names no count of its own
    assert "batch 1, 1 thread\n" in text and "batch 1, the most threads measured for each job" in text
    single = {"jobs": [RESULTS["jobs"][1]]}
    assert "most" not in edge_markdown(single)
    only_cnn = edge_markdown({"jobs": [RESULTS["jobs"][0]]})
    assert "batch 1, 2 threads, the most threads measured" in only_cnn  # the count it ran at, not "all cores"


def test_edge_profile_is_batch_1_all_variants_one_and_all_threads():
    import os

    from harness.edge import edge_profile
    from harness.variants import VARIANTS

    profile = edge_profile()
    assert profile["batch_sizes"] == [1]
    assert profile["threads"] == sorted({1, os.cpu_count() or 1})
    assert {"fp32", "int8-dynamic", "int8-static", "fp16", "ort-opt"} <= set(profile["variants"]) <= set(VARIANTS)


def test_threads_column_appears_when_rows_differ():
    rows = deployment_table(RESULTS, threads=THREADS_MAX)
    assert {r["threads"] for r in rows} == {1, 2, None}
    text = to_markdown(rows)
    assert "thread count per row" in text and "| threads |" in text


_scalar = st.one_of(st.none(), st.integers(-2, 64), st.floats(allow_nan=True), st.text(max_size=3), st.booleans())
_latency_row = st.dictionaries(
    st.sampled_from(["runtime", "provider", "batch_size", "threads", "p50_ms", "p99_ms", "min_ms"]),
    st.one_of(_scalar, st.sampled_from(["onnxruntime", "torch", CPU])), max_size=7)
_variant = st.dictionaries(
    st.sampled_from(["variant", "bytes", "metrics", "latency", "error", "vs_fp32"]),
    st.one_of(_scalar, st.sampled_from(["int8-static", "fp32"]), st.lists(_latency_row, max_size=3),
              st.dictionaries(st.just("accuracy"), _scalar), st.dictionaries(st.just("ratio"), _scalar)), max_size=6)
_job = st.dictionaries(
    st.sampled_from(["id", "model", "dataset", "status", "error", "params", "metrics", "onnx", "latency", "variants"]),
    st.one_of(_scalar, st.sampled_from(["ok", "failed", "skipped"]), st.lists(_latency_row, max_size=3),
              st.lists(_variant, max_size=3), st.dictionaries(st.sampled_from(["bytes", "metrics"]),
                                                              st.one_of(_scalar, st.dictionaries(st.just("accuracy"),
                                                                                                 _scalar)))),
    max_size=10)


@settings(max_examples=150, deadline=None)
@given(jobs=st.lists(st.one_of(_job, _scalar), max_size=4), floor=st.one_of(st.none(), st.floats(0, 100)),
       budget=st.one_of(st.none(), st.floats(0, 10)), threads=st.sampled_from([1, 2, None, THREADS_MAX]))
def test_partial_documents_never_crash(jobs, floor, budget, threads):
    rows = deployment_table({"jobs": jobs}, accuracy_floor=floor, latency_budget_ms=budget, threads=threads,
                            provider=None)
    text = to_markdown(rows)
    assert isinstance(text, str)
    for row in rows:
        assert row["variant"] is None or row["p50_ms"] is not None
    edge_markdown({"jobs": jobs}, accuracy_floor=floor)


def _one_job(fp32_p50, variants):
    return {"jobs": [{"id": "m@d", "model": "m", "dataset": "d", "status": "ok", "params": 1,
                      "onnx": {"path": "onnx/m.onnx", "bytes": 1000, "metrics": {"accuracy": 0.99}},
                      "latency": [lat(fp32_p50)], "variants": variants}]}


def test_a_variant_within_the_budget_wins_over_a_relatively_faster_one_outside_it():
    # ort-opt is 'faster' by its alternating ratio (drift between rounds), yet its own p50 misses the
    # budget that fp32 meets: the table must not say the model does not fit.
    results = _one_job(0.0742, [variant("ort-opt", 0.99, 900, [lat(0.0746)], ratio=0.669)])
    (row,) = deployment_table(results, accuracy_floor=0.1, latency_budget_ms=0.0745)
    assert row["variant"] == "fp32" and row["fits_budget"] is True
    (row,) = deployment_table(results, accuracy_floor=0.1, latency_budget_ms=0.07)  # nothing fits
    assert row["variant"] == "ort-opt" and row["fits_budget"] is False


def test_an_unstable_alternating_comparison_ranks_by_its_per_round_median():
    unstable = variant("ort-opt", 0.99, 1100, [lat(0.0746)], ratio=0.669)
    unstable["vs_fp32"].update(stability="unstable", ratio_paired_median=0.99)  # rounds: 0.67, 0.99, 0.97
    (row,) = deployment_table(_one_job(0.0742, [unstable]))
    # 0.99 is within the tie margin of fp32: the tie goes to the smaller drop (equal), then the smaller file
    assert row["variant"] == "fp32"
    stable = variant("ort-opt", 0.99, 1100, [lat(0.0746)], ratio=0.669)
    (row,) = deployment_table(_one_job(0.0742, [stable]))
    assert row["variant"] == "ort-opt" and row["vs_fp32_basis"] == "alternating"
    unstable["vs_fp32"]["ratio_paired_median"] = 0.8
    (row,) = deployment_table(_one_job(0.0742, [unstable]))
    assert row["variant"] == "ort-opt" and row["vs_fp32_ratio"] == 0.8
    assert "(alternating, unstable)" in to_markdown([row])


def test_an_unstable_comparison_that_cannot_tell_the_faster_side_ranks_level_with_fp32():
    """lightweight-attention: slim's per-round median read 0.88x, its best medians 1.00x and floors 1.02x, and
    fp32's own p50 was lower (0.0329 ms against 0.0389): the answer told the user to ship slim."""
    from harness.edge import ratio_text

    slim = variant("slim", 0.99, 101_665, [lat(0.0389)], ratio=1.001)
    slim["vs_fp32"].update(stability="unstable", ratio_min=1.021, ratio_paired_median=0.884)
    (row,) = deployment_table(_one_job(0.0329, [slim]))
    assert row["variant"] == "fp32"  # level: the same drop, then the smaller file (1,000 bytes)
    slim["bytes"] = 900  # the smaller file now: level with fp32, it wins the tie-break, and says why
    (row,) = deployment_table(_one_job(0.0329, [slim]))
    assert row["variant"] == "slim" and ratio_text(row) == "~1x (alternating, unstable: either side)"
    slim["vs_fp32"].update(ratio=0.9, ratio_min=0.95)  # every estimate below 1: its median ranks it
    (row,) = deployment_table(_one_job(0.0329, [slim]))
    assert row["variant"] == "slim" and row["vs_fp32_ratio"] == 0.884


def test_an_unstable_ratio_does_not_outrank_a_steady_variant_that_is_faster_on_its_own_p50():
    """mobilenet-v3-small: ort-opt read 0.76x fp32 in unstable rounds, int8-static a steady 0.82x, and the
    edge table picked ort-opt, slower (0.361 ms against 0.288) and three times the size."""
    ort_opt = variant("ort-opt", 0.99, 6000, [lat(0.361)], ratio=0.9)
    ort_opt["vs_fp32"].update(stability="unstable", ratio_paired_median=0.76)
    int8 = variant("int8-static", 0.99, 1800, [lat(0.288)], ratio=0.82)
    (row,) = deployment_table(_one_job(0.40, [ort_opt, int8]))
    assert row["variant"] == "int8-static" and row["vs_fp32_basis"] == "alternating"
    assert "not ranked by an unstable ratio to fp32: ort-opt" in row["note"]
    # where the unstable one is also faster on its own p50, nothing contradicts its ratio
    ort_opt["latency"] = [lat(0.25)]
    (row,) = deployment_table(_one_job(0.40, [ort_opt, int8]))
    assert row["variant"] == "ort-opt" and not row["note"]


def test_edge_answer_names_what_qualifies_fastest_first_or_the_nearest_miss():
    from harness.edge import edge_answer

    assert edge_answer(RESULTS, None, None) is None  # no question asked
    yes = edge_answer(RESULTS, 97, 1.0)  # a percentage floor, as on the command line
    assert yes.startswith("edge (batch 1, 1 thread, CPU; accuracy >= 0.97, p50 <= 1 ms): 1 of 2 job(s) qualify")
    assert "cnn int8-static on mnist 0.3500 ms, accuracy 0.9750" in yes and "big" not in yes
    both = edge_answer(RESULTS, 0.97, None)  # without a budget both accurate picks qualify, fastest first
    assert both.index("cnn int8-static") < both.index("big fp32 on mnist 2.5000 ms")
    miss = edge_answer(RESULTS, 0.97, 0.1)
    assert "no job qualifies; the fastest accurate enough is cnn int8-static on mnist at 0.3500 ms" in miss
    none = edge_answer(RESULTS, 0.999, None)
    assert "no job qualifies; none is accurate enough" in none


def test_edge_answer_says_when_nothing_was_timed_at_batch_1_on_1_thread():
    from harness.edge import edge_answer

    document = copy.deepcopy(RESULTS)
    for job in document["jobs"]:
        job["latency"] = [row for row in job.get("latency") or [] if row["batch_size"] != 1]
        job["variants"] = []
    answer = edge_answer(document, 0.5, None)
    assert "no job qualifies; nothing was timed at batch 1 on 1 thread" in answer and "accurate" not in answer


def test_a_largest_accuracy_drop_in_points_keeps_lossy_variants_out():
    from harness.edge import Question, edge_answer

    # cnn: fp32 0.98; int8-static 0.975 is 0.5 points below, int8-dynamic 0.90 is 8 points below
    exactly = by_model(Question(max_accuracy_drop=0.5).table(RESULTS))["cnn"]
    assert exactly["variant"] == "int8-static"  # 0.5 points is within 0.5 (no float rounding against it)
    strict = by_model(Question(max_accuracy_drop=0.4).table(RESULTS))["cnn"]
    assert strict["variant"] == "fp32"  # the slower float32 export: both int8 variants lose too much
    only_int8 = copy.deepcopy(RESULTS)
    only_int8["jobs"][0]["onnx"]["metrics"]["accuracy"] = 0.99  # int8-static now 1.5 points below
    none = by_model(Question(max_accuracy_drop=1.0).table({"jobs": [only_int8["jobs"][0]]}))["cnn"]
    assert none["variant"] == "fp32"
    only_int8["jobs"][0]["latency"] = []  # float32 untimed: only the variants could qualify
    dropped = by_model(Question(max_accuracy_drop=1.0).table(only_int8))["cnn"]
    assert dropped["variant"] is None and "int8-static: accuracy drop 1.50 points above 1" in dropped["note"]
    assert "drop at most 0.4 points" in to_markdown([strict]).splitlines()[0]
    answer = edge_answer(RESULTS, 0.97, None, max_drop_points=0.4)
    assert answer.startswith("edge (batch 1, 1 thread, CPU; accuracy >= 0.97, drop <= 0.4 points): ")
    assert "cnn fp32 on mnist 0.5000 ms" in answer
    assert Question(max_accuracy_drop=0.0) and not Question()  # a drop of 0 is a question too


def test_an_accuracy_exactly_at_the_floor_or_the_largest_drop_meets_it_in_float32():
    """Accuracies are float32 means: exactly 90 % is stored as 0.899999976, under a 0.9 floor, and one sample
    in 1,000 below float32 read as a drop of 0.100005 points, over a 0.1-point limit."""
    import numpy as np

    from harness.edge import Question

    def f32(x):
        return float(np.float32(x))

    document = copy.deepcopy(RESULTS)
    cnn = document["jobs"][0]
    cnn["onnx"]["metrics"]["accuracy"] = f32(0.808)
    cnn["variants"][1]["metrics"]["accuracy"] = f32(0.807)  # int8-static: one sample of 1,000 below
    cnn["variants"][0]["metrics"]["accuracy"] = f32(0.5)  # int8-dynamic, faster, out of the question
    assert f32(0.9) < 0.9 and f32(0.808) - f32(0.807) > 0.001  # what went wrong before
    picked = by_model(Question(max_accuracy_drop=0.1).table({"jobs": [cnn]}))["cnn"]
    assert picked["variant"] == "int8-static", picked["note"]
    assert by_model(Question(max_accuracy_drop=0.09).table({"jobs": [cnn]}))["cnn"]["variant"] == "fp32"
    cnn["variants"][1]["metrics"]["accuracy"] = f32(0.9)
    assert by_model(Question(accuracy_floor=0.9).table({"jobs": [cnn]}))["cnn"]["variant"] == "int8-static"
    assert by_model(Question(accuracy_floor=0.901).table({"jobs": [cnn]}))["cnn"]["variant"] is None


def test_the_answer_and_results_json_say_what_makes_the_picks_latency_less_sure():
    """A pick on an unstable p50, or whose p99 misses the budget, or timed with --quick, read as sure as any;
    results.json's edge block had no stable flag, no p99 and the budgets only inside the question's text."""
    import dataclasses

    from harness.edge import edge_answer, edge_record
    from harness.latency import QUICK

    document = copy.deepcopy(RESULTS)
    row = document["jobs"][0]["variants"][1]["latency"][0]  # cnn int8-static at batch 1, 1 thread: the pick
    row.update(stable=False, drift_pct=12.34, p99_ms=1.5)
    answer = edge_answer(document, 0.97, 1.0)
    assert "cnn int8-static on mnist 0.3500* ms" in answer
    assert answer.endswith("; its p50 is unstable (drifted 12.3 %): measure again at a quieter moment, and without "
                           "--quick if the run used it before relying on it; its p99, 1.5000 ms, is over the 1 ms budget")
    assert "unstable" not in edge_answer(RESULTS, 0.97, 1.0) and "p99" not in edge_answer(RESULTS, 0.97, 1.0)
    document["config"] = {"accuracy_floor": 0.97, "latency_budget_ms": 1.0, "size_budget_bytes": 30_000,
                          "latency": dataclasses.asdict(QUICK)}
    record = edge_record(document)
    assert record["answer"].endswith("; timed with --quick (short measurements)")
    assert (record["latency_budget_ms"], record["size_budget_bytes"], record["cold_budget_ms"]) == (1.0, 30_000, None)
    assert record["latency_settings"] == "--quick" and record["max_accuracy_drop"] is None
    (pick,) = record["qualifying"]
    assert (pick["variant"], pick["stable"], pick["drift_pct"], pick["p99_ms"]) == ("int8-static", False, 12.34, 1.5)
    assert pick["threads"] == 1
    # the question at the most threads each job was timed at: cnn's 2-thread rows (int8-static 0.40 ms)
    most = record["most_threads"]["qualifying"]
    assert [(q["model"], q["variant"], q["threads"]) for q in most] == [("cnn", "int8-static", 2)], most
    one_thread = copy.deepcopy(document)
    for job in one_thread["jobs"]:
        for holder in [job, *(job.get("variants") or [])]:
            holder["latency"] = [r for r in holder.get("latency") or [] if r["threads"] == 1]
    assert edge_record(one_thread)["most_threads"] is None
    # a row unstable for a few slow calls, its p50 steady: not "drifted 0.1 %" (the answer read only drift)
    row.update(drift_pct=0.137, p99_ms=0.9, mean_ms=0.35 * 1.65)
    answer = edge_answer(document, 0.97, 1.0)
    assert "its timing is unstable (a few slow calls pull its mean to 1.6x its p50)" in answer, answer
    assert "drifted" not in answer and edge_record(document)["qualifying"][0]["mean_ms"] == 0.35 * 1.65


def test_an_accuracy_on_a_capped_test_split_says_on_how_many_samples():
    """127 of 128 right passes a 99 % floor give or take a point and a half: the answer names the 128."""
    from harness.edge import edge_answer

    capped = copy.deepcopy(RESULTS)
    capped["jobs"][0].update(test_samples=128, test_samples_available=10_000)
    assert "accuracy 0.9750 on 128 test samples" in edge_answer(capped, 0.97, None)
    whole = copy.deepcopy(RESULTS)
    whole["jobs"][0].update(test_samples=10_000, test_samples_available=10_000)
    assert "test samples" not in edge_answer(whole, 0.97, None)


def test_the_answer_gives_the_figures_asked_about_the_file_and_what_was_not_measured():
    from harness.edge import edge_answer

    yes = edge_answer(RESULTS, 0.97, None, size_budget_bytes=30_000, activation_budget_bytes=64 * 1024)
    assert "cnn int8-static on mnist 0.3500 ms, accuracy 0.9750, 25.4 KiB file, 12.7 KiB activations" in yes
    assert yes.endswith("; fastest file: onnx/x.int8-static.onnx (in the run folder)")
    assert edge_answer(RESULTS, 0.97, None, size_budget_bytes=30_000, run_dir="runs/r").endswith(
        "; fastest file: runs/r/onnx/x.int8-static.onnx")
    # a size budget asked of float32 exports alone: say that smaller variants were never measured
    plain = {"jobs": [{**copy.deepcopy(RESULTS["jobs"][0]), "variants": []}]}
    miss = edge_answer(plain, None, None, size_budget_bytes=1000)
    assert miss.endswith("only float32 exports were measured: a run with --profile edge (or --variants "
                         "int8-static,int8-dynamic) measures smaller ones")
    assert "only float32" not in edge_answer(RESULTS, None, None, size_budget_bytes=1000)
    tried = {"jobs": [{**plain["jobs"][0], "variants": [{"variant": "int8-static", "error": "RuntimeError: x"}]}]}
    assert "only float32" not in edge_answer(tried, None, None, size_budget_bytes=1000)  # asked for, and failed
    assert "only float32" not in edge_answer({"jobs": []}, None, None, size_budget_bytes=1000)
    assert "drop <= 1 point," in edge_answer(RESULTS, None, None, size_budget_bytes=1000, max_drop_points=1)
    # none accurate enough: how close the best came
    assert ("none is accurate enough: the most accurate among those timed at batch 1 on 1 thread reaches 0.9900 (see"
            in edge_answer(RESULTS, 0.999, None))  # cnn's fp16 was timed on CUDA only


def test_a_variant_left_untimed_on_purpose_says_why():
    document = copy.deepcopy(RESULTS)
    fp16 = document["jobs"][0]["variants"][2]
    fp16["latency_skipped"] = ["provider CPUExecutionProvider: fp16 latency is measured on GPU providers only "
                               "(CUDA/TensorRT): ONNX Runtime's CPU float16 kernels are not representative"]
    document["jobs"][0]["latency"], document["jobs"][0]["variants"] = [], [fp16]
    (row,) = [r for r in deployment_table(document) if r["model"] == "cnn"]
    assert row["variant"] is None and ("fp16: no latency at batch 1, 1 thread(s) on CPUExecutionProvider (left out on "
                                       "purpose: fp16 latency is measured on GPU providers only (CUDA/TensorRT))") \
        in row["note"]


def test_the_reports_edge_section_opens_with_the_answer_the_terminal_gives():
    from harness.edge import edge_answers
    from harness.report import to_markdown as report_markdown
    from harness.report_html import to_html

    asked = {**RESULTS, "schema_version": 1, "run_id": "r", "created": "", "environment": {},
             "config": {**(RESULTS.get("config") or {}), "accuracy_floor": 0.97, "latency_budget_ms": 1.0}}
    (answer,) = edge_answers(asked)
    assert "job(s) qualify" in answer
    markdown = report_markdown(asked)
    section = markdown.split("## Edge deployment")[1].split("\n## ")[0]
    assert section.split("\n\n")[2].startswith("**edge (batch 1, 1 thread, CPU; accuracy \\>= 0.97")
    top = markdown.split("## Results")[0]  # and at the top, where a deployer looks first
    assert "edge (batch 1, 1 thread, CPU; accuracy \\>= 0.97" in top and "(Edge deployment below)." in top
    assert "<p><strong>edge (batch 1, 1 thread, CPU; accuracy &gt;= 0.97" in to_html(asked, plots=[])


def test_the_reports_edge_tables_put_what_qualifies_first_fastest_first_and_mark_the_rest_as_misses():
    from harness.report import deployment_tables
    from harness.report_html import to_html

    def job(name, p50, accuracy):
        return {"id": f"{name}@d", "model": name, "dataset": "d", "status": "ok", "params": 10,
                "onnx": {"path": f"onnx/{name}.onnx", "bytes": 2048, "metrics": {"accuracy": accuracy}},
                "latency": [lat(p50)]}

    document = {"schema_version": 1, "run_id": "r", "created": "", "environment": {},
                "config": {"accuracy_floor": 0.9},
                "jobs": [job("slow", 0.9, 0.95), job("inaccurate", 0.1, 0.5), job("fast", 0.2, 0.97)]}
    ((_, table),) = deployment_tables(document)
    assert [row[0] for row in table.rows] == ["fast", "slow", "inaccurate"]
    assert table.classes == ["ok", "ok", "miss"]  # measured but below the floor: not a failed job's pink
    page = to_html(document, plots=[])
    assert '<tr class="miss"><th scope="row">inaccurate</th>' in page and 'class="failed"' not in page


def test_with_nothing_asked_the_edge_section_says_so_instead_of_naming_a_floor():
    from harness.report import NO_QUESTION
    from harness.report import to_markdown as report_markdown

    section = report_markdown(copy.deepcopy(RESULTS)).split("## Edge deployment")[1].split("\n## ")[0]
    assert f"**{NO_QUESTION}**" in section.replace("\\", "")
    tables = section.split("### ")[1:]
    # nothing asked, so every measured job qualifies with its fastest variant: cnn's int8 (0.20 ms) before big
    assert [line.split(" | ")[0] for line in tables[0].splitlines() if line.startswith("| ")][1:] == [
        "| cnn", "| big", "| bad"]  # the failed job last, said so rather than left out
    assert "| bad | mnist | failed |" in tables[0]


def test_a_failed_job_is_named_in_the_edge_answer_not_left_out():
    from harness.edge import edge_answer

    document = copy.deepcopy(RESULTS)
    document["jobs"][2]["stage"] = "onnx-eval"
    answer = edge_answer(document, 0.97, 1.0)
    assert "1 of 2 job(s) qualify" in answer and "; not judged, failed: bad (onnx-eval); fastest file:" in answer
    assert edge_answer(document, 0.999, None).endswith("; not judged, failed: bad (onnx-eval)")


def test_an_interrupted_runs_answer_names_the_jobs_not_run_yet():
    from harness.edge import edge_answer

    document = copy.deepcopy(RESULTS)
    document["planned_jobs"] = [job["id"] for job in document["jobs"]] + ["late@synthetic", "later@synthetic"]
    answer = edge_answer(document, 0.999, None)  # "none is accurate enough" of the jobs that ran, not of the run
    assert answer.endswith("; not judged, not run yet: late@synthetic, later@synthetic"), answer
    assert "not run yet" not in edge_answer(copy.deepcopy(RESULTS), 0.999, None)


def test_the_reports_header_points_to_the_edge_section_once():
    from harness.report import header_facts

    document = {**copy.deepcopy(RESULTS), "config": {"accuracy_floor": 0.9999}}  # none is accurate enough
    (fact,) = [f for f in header_facts(document) if f.startswith("edge (")]
    assert "none is accurate enough" in fact and fact.endswith("(Edge deployment below).")
    assert "for why" not in fact  # the terminal's pointer to the table, beside the header's own


def test_the_edge_profile_times_given_batch_sizes_and_threads_beside_batch_1_on_1_thread(monkeypatch):
    from click.testing import CliRunner

    import harness.runner
    from harness.cli import main

    captured = {}

    def keep(registry, options, *args, **kwargs):  # the options the run would have run with
        captured["options"] = options
        raise SystemExit(0)

    monkeypatch.setattr(harness.runner, "execute", keep)
    CliRunner().invoke(main, ["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--profile", "edge",
                              "--threads", "2", "--batch-sizes", "32", "--accuracy-floor", "0.5", "--edge-gate"])
    options = captured["options"]
    assert (options.threads, options.batch_sizes) == ([1, 2], [1, 32])


def test_edge_gate_fails_a_run_none_of_whose_jobs_answers_and_results_json_holds_the_answer(tmp_path):
    import json

    from conftest import run_cli

    args = ["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples", "64",
            "--max-test-samples", "64", "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency",
            "--cold-runs", "0", "--exporter", "torchscript", "--no-progress", "--out", str(tmp_path)]
    refused = run_cli(*args, "--edge-gate", "--run-id", "x")
    assert refused.returncode == 2 and "--edge-gate needs an edge question" in refused.stderr
    # a gate that could never open: refused before any job, not a run that ends as if no model fitted
    for more, said in ((["--threads", "2"], "judged at batch 1 on 1 thread, which --threads 2 does not time"),
                       (["--batch-sizes", "8,32"], "which --batch-sizes 8,32 does not time"),
                       (["--cold-runs", "0", "--cold-budget-ms", "20"],
                        "--cold-budget-ms judges each model's cold start, which --cold-runs 0 does not measure")):
        never = run_cli(*args, *more, "--edge-gate", "--accuracy-floor", "0.5", "--run-id", "x")
        assert never.returncode == 2 and said in never.stderr and "Traceback" not in never.stderr, never.stderr
        assert not (tmp_path / "x").exists()
    result = run_cli(*args, "--edge-gate", "--accuracy-floor", "0.999", "--run-id", "r")
    assert result.returncode == 1 and "--edge-gate: no job answers the edge question" in result.stderr
    edge = json.loads((tmp_path / "r" / "results.json").read_text())["edge"]
    assert edge["question"] == "accuracy >= 0.999" and edge["jobs"] == 1 and edge["qualifying"] == []
    assert edge["accuracy_floor"] == 0.999
    assert edge["answer"].startswith("edge (batch 1, 1 thread, CPU; accuracy >= 0.999): no job qualifies")
    # the same run asked again with a floor it meets: the gate opens, and results.json is left as it was
    report = run_cli("report", str(tmp_path / "r"), "--accuracy-floor", "0", "--edge-gate")
    assert report.returncode == 0, report.stderr
    assert run_cli("report", str(tmp_path / "r"), "--edge-gate").returncode == 1
    again = run_cli(*args, "--accuracy-floor", "0", "--run-id", "q")
    assert again.returncode == 0
    (best,) = json.loads((tmp_path / "q" / "results.json").read_text())["edge"]["qualifying"]
    assert best["model"] == "mnist-mlp" and best["variant"] == "fp32" and best["p50_ms"] > 0
    assert (tmp_path / "q" / best["path"]).is_file()


def test_the_edge_profile_without_a_question_says_so_under_the_table(tmp_path):
    import json

    from click.testing import CliRunner
    from conftest import write_run

    from harness.cli import main

    document = {**copy.deepcopy(RESULTS), "created": "", "environment": {}, "config": {"profile": "edge"}}
    for job in document["jobs"]:
        job["train"] = None
    run = write_run(tmp_path / "r", document)
    gated = CliRunner().invoke(main, ["report", str(run), "--edge-gate"])  # nothing to judge: refused up front
    assert gated.exit_code == 2 and "--edge-gate needs an edge question" in gated.output
    assert not (run / "report.md").exists()
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert "\nedge (batch 1, 1 thread, CPU): no accuracy floor or budget was asked" in result.output
    document["config"] = {}
    (run / "results.json").write_text(json.dumps(document))
    assert "no accuracy floor" not in CliRunner().invoke(main, ["report", str(run)]).output

"""The latency engine: statistics on known samples, the stopping rule, timer overhead, alternating comparisons,
and ONNX Runtime sweeps (rows, static-batch and provider skips, IOBinding)."""

from __future__ import annotations

import gc
import math
import re

import numpy as np
import pytest
from conftest import relu_onnx, save_onnx_graph
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.latency import (
    QUICK,
    LatencyConfig,
    LatencyStats,
    compare_alternating,
    compare_measurements,
    first_call_ms,
    half_drift_pct,
    measure_onnx,
    measure_torch,
    onnx_call,
    percentiles,
    time_calls,
    timer_overhead_ns,
)

CONTRACT_FIELDS = {"runtime", "provider", "batch_size", "threads", "runs", "p50_ms", "p90_ms", "p99_ms",
                   "mean_ms", "std_ms", "throughput_per_s", "min_ms"}
TINY = LatencyConfig(warmup_runs=1, min_runs=5, min_time_s=0.005, max_time_s=1.0, warmup_time_s=0.0)


# -- statistics ---------------------------------------------------------------------------------------------


def test_percentiles_of_one_sample_are_that_sample():
    assert percentiles([5.0], [0, 50, 90, 99, 100]) == [5.0] * 5


def test_percentiles_of_two_samples_interpolate():
    p50, p90, p99 = percentiles([3.0, 1.0], [50, 90, 99])
    assert p50 == pytest.approx(2.0)
    assert p90 == pytest.approx(2.8)
    assert p99 == pytest.approx(2.98)


def test_percentiles_of_five_samples_by_hand():
    # sorted [1, 2, 3, 4, 10]; rank h = (n - 1) q / 100
    p50, p90, p99 = percentiles([10, 1, 4, 2, 3], [50, 90, 99])
    assert p50 == pytest.approx(3.0)  # h = 2
    assert p90 == pytest.approx(4 + 0.6 * 6)  # h = 3.6
    assert p99 == pytest.approx(4 + 0.96 * 6)  # h = 3.96


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=60),
       st.floats(min_value=0, max_value=100))
def test_percentiles_agree_with_numpy_linear(samples, q):
    assert percentiles(samples, [q])[0] == pytest.approx(float(np.percentile(samples, q)), rel=1e-9, abs=1e-9)


def test_stats_from_two_samples():
    stats = LatencyStats.from_ns([1_000_000, 3_000_000])
    assert stats.runs == 2
    assert (stats.p50_ms, stats.min_ms, stats.max_ms, stats.mean_ms) == (2.0, 1.0, 3.0, 2.0)
    assert stats.std_ms == pytest.approx(math.sqrt(2))  # sample standard deviation (ddof=1)
    assert stats.cv == pytest.approx(math.sqrt(2) / 2)


def test_stats_of_one_sample_has_zero_spread():
    stats = LatencyStats.from_ns([2_500_000])
    assert (stats.runs, stats.p50_ms, stats.p99_ms, stats.std_ms, stats.drift_pct) == (1, 2.5, 2.5, 0.0, 0.0)
    with pytest.raises(ValueError):
        LatencyStats.from_ns([])


def test_row_has_contract_fields_throughput_and_stability():
    row = LatencyStats.from_ns([2_000_000] * 10).row(batch_size=4)
    assert {"runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms"} <= set(row)
    assert row["throughput_per_s"] == pytest.approx(4 * 1000 / 2.0)
    assert row["stable"] is True and row["drift_pct"] == 0.0 and row["cv"] == 0.0
    assert 0 < row["timer_overhead_pct"] < 1  # ~50-1000 ns against 2 ms


def test_drift_between_halves_is_measured():
    assert half_drift_pct([1.0, 1.0, 2.0, 2.0]) == pytest.approx(100 * 1.0 / 1.5, abs=1e-3)
    assert half_drift_pct([1.0, 2.0, 1.0, 2.0]) == 0.0
    drifting = LatencyStats.from_ns([1_000_000] * 50 + [1_400_000] * 50)
    assert drifting.stable is False and drifting.row(1)["stable"] is False


# -- stopping rule (fake clock) -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def work(self, step_ns: int):
        def fn() -> None:
            self.now += step_ns
            self.calls += 1

        return fn


def _cfg(**kw) -> LatencyConfig:
    base = dict(warmup_runs=0, min_runs=1, min_time_s=0.0, max_time_s=10.0, warmup_time_s=0.0)
    base.update(kw)
    return LatencyConfig(**base)


def test_stops_at_min_runs_when_min_time_is_already_met():
    clock = FakeClock()
    samples = time_calls(clock.work(1_000_000), _cfg(min_runs=10), clock=clock)
    assert samples == [1_000_000] * 10


def test_keeps_going_until_min_time():
    clock = FakeClock()
    samples = time_calls(clock.work(1_000_000), _cfg(min_runs=3, min_time_s=0.05), clock=clock)
    assert len(samples) == 50


def test_max_time_bounds_the_measurement():
    clock = FakeClock()
    samples = time_calls(clock.work(1_000_000), _cfg(min_runs=1000, min_time_s=1.0, max_time_s=0.02), clock=clock)
    assert len(samples) == 20


def test_max_runs_bounds_the_measurement():
    clock = FakeClock()
    assert len(time_calls(clock.work(1000), _cfg(min_runs=100, max_runs=7), clock=clock)) == 7


def test_warmup_runs_and_warmup_time_are_untimed():
    clock = FakeClock()
    samples = time_calls(clock.work(1_000_000), _cfg(warmup_runs=5, min_runs=4), clock=clock)
    assert len(samples) == 4 and clock.calls == 9
    clock = FakeClock()
    samples = time_calls(clock.work(1_000_000), _cfg(warmup_runs=0, warmup_time_s=0.01, min_runs=2), clock=clock)
    assert len(samples) == 2 and clock.calls == 12


def test_a_slow_call_gets_bounded_warmup_and_at_least_one_sample():
    clock = FakeClock()
    samples = time_calls(clock.work(3_000_000_000), _cfg(warmup_runs=10, min_runs=50, max_time_s=10.0), clock=clock)
    assert clock.calls - len(samples) == 1  # warm-up stops after a quarter of max_time_s
    assert len(samples) == 4  # 3 s, 6 s, 9 s, then 12 s >= 10 s


def test_real_clock_meets_min_runs_and_min_time():
    import time

    config = LatencyConfig(warmup_runs=2, min_runs=20, min_time_s=0.03, max_time_s=2.0, warmup_time_s=0.0)
    start = time.perf_counter()
    samples = time_calls(lambda: sum(range(50)), config)
    assert len(samples) >= 20
    assert time.perf_counter() - start >= 0.03
    assert all(s > 0 for s in samples)


def test_gc_is_paused_while_timing_only():
    states = []
    time_calls(lambda: states.append(gc.isenabled()), _cfg(warmup_runs=1, min_runs=3))
    assert states[0] is True and states[1:] == [False, False, False]
    assert gc.isenabled()


def test_config_is_validated():
    with pytest.raises(ValueError):
        LatencyConfig(min_runs=0)
    with pytest.raises(ValueError):
        LatencyConfig(max_time_s=0)


# -- timer overhead ----------------------------------------------------------------------------------------


def test_timer_overhead_is_small_and_positive():
    overhead = timer_overhead_ns(samples=2000, refresh=True)
    assert 0 < overhead < 20_000  # a perf_counter_ns pair: ~20-100 ns natively, a few us on slow VMs


# -- alternating comparisons -------------------------------------------------------------------------------


def _busy(n: int):
    def call() -> int:
        total = 0
        for i in range(n):
            total += i * i
        return total

    return call


def test_alternating_comparison_sees_a_threefold_cost():
    config = LatencyConfig(warmup_runs=2, min_runs=10, min_time_s=0.02, max_time_s=1.0, warmup_time_s=0.0)
    result = compare_alternating(_busy(6000), _busy(2000), rounds=3, config=config, names=("3N", "N"))
    assert result["ratio"] > 1.5 and result["ratio_min"] > 1.5
    assert result["a"] == "3N" and result["b"] == "N" and result["rounds"] == 3
    assert len(result["ratio_rounds"]) == 3
    assert result["stability"] in ("stable", "noisy but consistent", "unstable")
    assert "3N/N" in result["note"]


def test_compare_measurements_alternates_abba_and_reports_floors_and_best_medians():
    order = []
    a_rows = iter([{"p50_ms": 2.2, "min_ms": 2.0}, {"p50_ms": 2.0, "min_ms": 1.9}, {"p50_ms": 2.4, "min_ms": 2.0},
                   {"p50_ms": 2.1, "min_ms": 1.95}])
    b_rows = iter([{"p50_ms": 1.1, "min_ms": 1.0}, {"p50_ms": 1.0, "min_ms": 0.95}, {"p50_ms": 1.2, "min_ms": 1.0},
                   {"p50_ms": 1.05, "min_ms": 0.975}])

    def a():
        order.append("a")
        return next(a_rows)

    def b():
        order.append("b")
        return next(b_rows)

    result = compare_measurements(a, b, rounds=4)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert result["a_p50_ms"] == 2.0 and result["b_p50_ms"] == 1.0
    assert result["ratio"] == pytest.approx(2.0) and result["ratio_min"] == pytest.approx(2.0)
    assert result["ratio_paired_median"] == pytest.approx(2.0)
    assert result["stable"] is True and result["stability"] == "stable"
    assert result["a_drift_pct"] == pytest.approx(20.0)


def test_compare_measurements_flags_disagreeing_estimates():
    a_rows = iter([{"p50_ms": 1.0, "min_ms": 0.5}, {"p50_ms": 3.0, "min_ms": 2.9}])
    b_rows = iter([{"p50_ms": 3.0, "min_ms": 1.0}, {"p50_ms": 1.0, "min_ms": 0.9}])
    result = compare_measurements(lambda: next(a_rows), lambda: next(b_rows), rounds=2)
    assert result["stable"] is False and result["stability"] == "unstable"
    assert "UNSTABLE" in result["note"]


def test_floors_that_scale_otherwise_than_medians_do_not_make_steady_rounds_unstable():
    """Every round 2.0x on medians, 2.5x on floors: the fastest calls scale differently, the machine did not
    move. It was 'UNSTABLE: ... repeat on a quieter machine' (floors were one of three estimates to agree)."""
    a_rows = iter([{"p50_ms": 2.0, "min_ms": 1.0}, {"p50_ms": 2.02, "min_ms": 1.0}, {"p50_ms": 2.0, "min_ms": 1.01}])
    b_rows = iter([{"p50_ms": 1.0, "min_ms": 0.4}, {"p50_ms": 1.01, "min_ms": 0.41}, {"p50_ms": 1.0, "min_ms": 0.4}])
    result = compare_measurements(lambda: next(a_rows), lambda: next(b_rows), rounds=3)
    assert result["stable"] is True and result["stability"] == "stable", result["note"]
    assert result["ratio_min"] == pytest.approx(2.5) and result["floor_gap_pct"] == pytest.approx(25.0)
    assert result["estimate_agreement_pct"] == pytest.approx(0.0)


# -- ONNX Runtime ------------------------------------------------------------------------------------------


def _linear_onnx(path, batch: int | str = "N", features: int = 16, classes: int = 4):
    """x (batch, features) @ W + b, with a static or symbolic batch dimension."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((features, classes)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(classes).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, classes])],
        [w, b],
    )
    return save_onnx_graph(graph, path)


def test_measure_onnx_sweeps_batch_sizes_and_threads(tmp_path):
    path = _linear_onnx(tmp_path / "dyn.onnx")
    rows = measure_onnx(path, [1, 4], threads=[1, 2], config=TINY, opt_level="extended")
    assert [(r["threads"], r["batch_size"]) for r in rows] == [(1, 1), (1, 4), (2, 1), (2, 4)]
    for row in rows:
        assert CONTRACT_FIELDS <= set(row)
        assert row["runtime"] == "onnxruntime" and row["provider"] == "CPUExecutionProvider"
        assert row["opt_level"] == "extended" and row["iobinding"] is True
        assert row["runs"] >= 5 and 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput_per_s"] > 0
        assert row["session_ms"] > 0 and row["first_call_ms"] > 0
    # one session per provider x thread count: its rows share its creation time
    assert rows[0]["session_ms"] == rows[1]["session_ms"] and rows[2]["session_ms"] == rows[3]["session_ms"]


def test_measure_onnx_times_as_its_settings_say_unless_told_otherwise(tmp_path):
    """`harness run --no-spin --no-iobinding` reach the rows through the run's latency settings; bench's own
    arguments still win."""
    import dataclasses

    path = _linear_onnx(tmp_path / "dyn.onnx")
    quiet = dataclasses.replace(TINY, spinning=False, iobinding=False)
    (row,) = measure_onnx(path, [1], config=quiet)
    assert (row["allow_spinning"], row["iobinding"]) == (False, False)
    (row,) = measure_onnx(path, [1], config=quiet, spinning=True, iobinding=True)
    assert (row["allow_spinning"], row["iobinding"]) == (True, True)
    (row,) = measure_onnx(path, [1], config=TINY)
    assert (row["allow_spinning"], row["iobinding"]) == (True, True)


def test_first_call_is_one_timed_call():
    calls, ticks = [], iter([1_000_000, 3_500_000])
    assert first_call_ms(lambda: calls.append(1), clock=lambda: next(ticks)) == 2.5
    assert calls == [1]


def test_once_per_process_provider_costs_are_paid_before_the_timed_session(tmp_path, monkeypatch):
    import harness.latency as latency
    import harness.ort

    made = []
    real = harness.ort.make_session

    def spy(path, *args, **kwargs):
        made.append(type(path).__name__)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(harness.ort, "make_session", spy)
    monkeypatch.setattr(latency, "_WARMED_PROVIDERS", set())
    path = _linear_onnx(tmp_path / "dyn.onnx")
    measure_onnx(path, [1], threads=[1, 2], config=TINY)
    measure_onnx(path, [1], config=TINY)
    # a warm-up session per thread count, before its first timed one; none when both were warmed
    assert made == ["bytes", "PosixPath", "bytes", "PosixPath", "PosixPath"]


def test_measure_onnx_skips_a_batch_size_the_static_shape_refuses(tmp_path):
    path = _linear_onnx(tmp_path / "static.onnx", batch=1)
    skipped = []
    rows = measure_onnx(path, [1, 4], config=TINY, on_skip=skipped.append)
    assert [r["batch_size"] for r in rows] == [1]
    assert len(skipped) == 1 and "batch size 4" in skipped[0] and "static" in skipped[0]


def test_measure_onnx_skips_unusable_providers_with_the_reason(tmp_path):
    from harness.ort import usable_providers

    path = _linear_onnx(tmp_path / "dyn.onnx")
    skipped = []
    rows = measure_onnx(path, [1], providers=["cpu", "cuda"], config=TINY, on_skip=skipped.append)
    providers = [r["provider"] for r in rows]
    assert providers[0] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" in usable_providers()[0]:
        assert providers == ["CPUExecutionProvider", "CUDAExecutionProvider"]
    else:
        assert providers == ["CPUExecutionProvider"]
        assert len(skipped) == 1 and "CUDAExecutionProvider" in skipped[0]
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():  # onnxruntime-gpu without a usable GPU:
            # why, from what its C++ logger wrote to stderr (it was "fell back to CPUExecutionProvider" alone)
            assert re.search(r"fell back to CPUExecutionProvider\): \S", skipped[0]), skipped[0]


def test_a_provider_the_build_lacks_is_refused_with_what_it_has(tmp_path):
    import onnxruntime as ort

    from harness.ort import make_session

    if "DmlExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has DirectML")
    with pytest.raises(RuntimeError, match=r"^DmlExecutionProvider is not usable here: this onnxruntime build "
                                           r"\(.*\) does not include it \(it has .*CPUExecutionProvider\)$"):
        make_session(_linear_onnx(tmp_path / "dyn.onnx"), "dml")


def test_the_fallback_reason_is_read_from_onnx_runtimes_log_and_print():
    from harness.ort import fallback_reason

    logged = ("\x1b[1;31m2026-12-02 00:59:50.096385780 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 "
              "operator()] /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 "
              "onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed "
              "to load library /venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so "
              "with error: libcublasLt.so.13: cannot open shared object file: No such file or directory\n\x1b[m\n"
              "\x1b[0;93m2026-12-02 00:59:50.096422565 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:1295 "
              "CreateExecutionProviderFactoryInstance] Failed to create CUDAExecutionProvider. Require cuDNN 9.* "
              "and CUDA 13.*. Please install all dependencies\x1b[m\n")
    assert fallback_reason("", logged) == ("Failed to load library libonnxruntime_providers_cuda.so with error: "
                                           "libcublasLt.so.13: cannot open shared object file: No such file or "
                                           "directory")
    printed = ("EP Error /onnxruntime_src/onnxruntime/python/onnxruntime_pybind_state.cc:505 void "
               "onnxruntime::python::RegisterTensorRTPluginsAsCustomOps(PySessionOptions&, const ProviderOptions&) "
               "Please install TensorRT libraries as mentioned in the GPU requirements page when using "
               "['TensorrtExecutionProvider']\nFalling back to ['CPUExecutionProvider'] and retrying.\n")
    assert fallback_reason(printed, "") == "Please install TensorRT libraries as mentioned in the GPU requirements page"
    assert fallback_reason("", "") == "" and len(fallback_reason(printed, logged * 5)) <= 240


def test_measure_onnx_tiles_a_real_sample_and_can_run_without_iobinding(tmp_path):
    path = _linear_onnx(tmp_path / "dyn.onnx")
    sample = np.ones((3, 16), dtype=np.float32)
    rows = measure_onnx(path, [5], config=TINY, sample=sample, iobinding=False)
    assert rows[0]["batch_size"] == 5 and rows[0]["iobinding"] is False


def test_iobinding_call_computes_the_same_outputs(tmp_path):
    from harness.ort import input_feeds, make_session

    session = make_session(_linear_onnx(tmp_path / "dyn.onnx"), threads=1)
    feeds = input_feeds(session, 3)
    call = onnx_call(session, feeds, "CPUExecutionProvider")
    call()
    bound = call.binding.get_outputs()[0].numpy()
    np.testing.assert_allclose(bound, session.run(None, feeds)[0], rtol=1e-6)


def test_measure_torch_rows():
    import torch

    model = torch.nn.Linear(8, 2)
    rows = measure_torch(model, torch.rand(2, 8), [1, 3], threads=[1], config=TINY)
    assert [(r["runtime"], r["provider"], r["batch_size"]) for r in rows] == [("torch", "cpu", 1), ("torch", "cpu", 3)]
    assert all(CONTRACT_FIELDS <= set(r) for r in rows)
    assert all(r["first_call_ms"] > 0 and "session_ms" not in r for r in rows)
    two = measure_torch(model, torch.rand(2, 8), [1], threads=[1, 2], config=TINY)
    assert two[0]["first_call_ms"] > 0 and two[1]["first_call_ms"] is None  # warm by the second thread count
    assert not any("cudnn_benchmark" in r for r in rows + two)  # a CUDA row's setting, not said on the CPU


def test_cudnn_benchmark_is_set_for_a_block_and_put_back_even_after_an_error():
    import torch

    from harness.latency import cudnn_benchmark

    before = torch.backends.cudnn.benchmark
    try:
        for start in (False, True):
            torch.backends.cudnn.benchmark = start
            with cudnn_benchmark(not start):
                assert torch.backends.cudnn.benchmark is (not start)
            assert torch.backends.cudnn.benchmark is start
            with pytest.raises(KeyError), cudnn_benchmark(not start):
                raise KeyError("a failing measurement")
            assert torch.backends.cudnn.benchmark is start
    finally:
        torch.backends.cudnn.benchmark = before


def test_quick_config_is_short():
    assert QUICK.min_time_s <= 0.1 and QUICK.max_time_s <= 5


def test_measure_onnx_generates_inputs_of_every_declared_type(tmp_path):
    """A foreign graph with an int64 and a float input, dynamic batch and a dynamic inner dimension."""
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(0).random((2, 8), dtype=np.float32), "table")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["emb"]),
            helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0),
            helper.make_node("Mul", ["pooled", "scale"], ["out"]),
        ],
        "typed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", "T"]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 8])],
        [table],
    )
    path = save_onnx_graph(graph, tmp_path / "typed.onnx")
    rows = measure_onnx(path, [2, 3], config=TINY)
    assert [r["batch_size"] for r in rows] == [2, 3]


def test_named_dimensions_can_be_set(tmp_path):
    from harness.ort import input_feeds, make_session

    relu_onnx(tmp_path / "relu.onnx", ["N", "F", 3])
    session = make_session(tmp_path / "relu.onnx", threads=1)
    assert input_feeds(session, 2)["x"].shape == (2, 1, 3)
    assert input_feeds(session, 2, dims={"F": 16, "N": 99})["x"].shape == (2, 16, 3)
    rows = measure_onnx(tmp_path / "relu.onnx", [2], config=TINY, dims={"F": 16})
    assert len(rows) == 1


def test_real_sample_is_repeated_to_the_batch_size_in_the_input_dtype(tmp_path):
    import numpy as np

    from harness.ort import input_feeds, make_session

    relu_onnx(tmp_path / "relu.onnx", ["N", 3])
    session = make_session(tmp_path / "relu.onnx", threads=1)
    sample = np.arange(6, dtype=np.float64).reshape(2, 3)
    x = input_feeds(session, 5, sample=sample)["x"]
    assert x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [0, 1, 2], [3, 4, 5], [0, 1, 2]]
    assert input_feeds(session, 1, sample=sample)["x"].tolist() == [[0, 1, 2]]


def test_compare_onnx_alternates_two_files(tmp_path):
    from harness.latency import compare_onnx

    small = _linear_onnx(tmp_path / "small.onnx", features=16, classes=4)
    big = _linear_onnx(tmp_path / "big.onnx", features=16, classes=4096)
    config = LatencyConfig(warmup_runs=2, min_runs=10, min_time_s=0.02, max_time_s=1.0, warmup_time_s=0.0)
    result = compare_onnx(big, small, batch_size=64, rounds=3, config=config)
    assert result["a"] == "big.onnx" and result["b"] == "small.onnx" and result["batch_size"] == 64
    assert result["ratio"] > 1.5  # 1000x the multiply-adds
    (tmp_path / "other").mkdir()
    twin = _linear_onnx(tmp_path / "other" / "small.onnx", features=16, classes=4)
    same_name = compare_onnx(small, twin, rounds=1, config=config)  # named by path, not small.onnx/small.onnx
    assert (same_name["a"], same_name["b"]) == (str(small), str(twin))
    assert same_name["note"].startswith(f"{small} / {twin} = "), same_name["note"]
    with pytest.raises(RuntimeError, match="TensorrtExecutionProvider|not"):
        from harness.ort import usable_providers

        if "TensorrtExecutionProvider" in usable_providers()[0]:
            raise RuntimeError("TensorrtExecutionProvider is usable here; nothing to refuse")
        compare_onnx(big, small, provider="tensorrt", rounds=1, config=config)


def test_benchmark_percentiles_from_pytest_benchmark_stats():
    from types import SimpleNamespace

    from harness.latency import benchmark_percentiles

    fake = SimpleNamespace(stats=SimpleNamespace(stats=SimpleNamespace(data=[0.001, 0.003])))
    info = benchmark_percentiles(fake)
    assert info == {"p50_ms": 2.0, "p90_ms": 2.8, "p99_ms": 2.98, "rounds": 2}
    assert benchmark_percentiles(SimpleNamespace(stats=None)) == {}


def test_stored_latency_settings_are_named_by_the_fields_that_set_them_apart():
    from dataclasses import asdict

    from harness.latency import settings_name

    assert settings_name(asdict(QUICK)) == "--quick" and settings_name(asdict(LatencyConfig())) == "default"
    assert settings_name({**asdict(QUICK), "max_runs": 7}) == "--quick"  # a field that does not tell them apart
    assert settings_name({**asdict(QUICK), "min_runs": 7}) is None and settings_name(None) is None


def test_a_change_of_latency_settings_names_what_the_new_name_does_not_imply():
    """A resume with --quick --cold-runs 0 after a plain run was said as 'default -> --quick' alone."""
    from dataclasses import asdict

    from harness.latency import settings_differences

    plain, quick = asdict(LatencyConfig()), asdict(QUICK)
    assert settings_differences(plain, quick) == [("", "default", "--quick")]  # its cold_runs 1 goes with it
    assert settings_differences(plain, {**quick, "cold_runs": 0}) == [("", "default", "--quick"),
                                                                      (".cold_runs", plain["cold_runs"], 0)]
    assert settings_differences(quick, {**quick, "cold_runs": 0}) == [(".cold_runs", 1, 0)]


def test_a_gpu_provider_is_timed_at_one_thread_count_only():
    """Intra-op threads run only what ONNX Runtime leaves on the CPU: on a GPU provider every count timed the
    same kernels again (rows that differ by noise, and GPU time spent on them)."""
    from harness.latency import provider_thread_counts

    assert provider_thread_counts("CPUExecutionProvider", [1, 2, 4]) == [1, 2, 4]
    assert provider_thread_counts("CUDAExecutionProvider", [1, 2, 4]) == [1]
    assert provider_thread_counts("TensorrtExecutionProvider", [4, 1]) == [4]


def test_an_unstable_comparisons_speedup_is_the_figure_the_reports_show():
    """results.json's vs_fp32.speedup came from the best medians' ratio (0.96x, slower) where report.md, the
    edge table and its pick read the rounds' median ratio (1.05x, faster) of the same unstable comparison."""
    from harness.edge import robust_ratio
    from harness.latency import at_setting

    unstable = at_setting({"ratio": 1.045, "ratio_paired_median": 0.951, "stability": "unstable"}, "CPU", 1, 1)
    assert unstable["speedup"] == round(1 / 0.951, 4) and unstable["speedup_basis"] == "ratio_paired_median"
    assert robust_ratio(unstable)[0] == 0.951
    steady = at_setting({"ratio": 1.045, "ratio_paired_median": 0.951, "stability": "stable"}, "CPU", 1, 1)
    assert steady["speedup"] == round(1 / 1.045, 4) and steady["speedup_basis"] == "ratio"

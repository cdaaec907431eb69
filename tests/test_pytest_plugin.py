"""The pytest plugin that installing harness registers: its fixtures, used as a user's CI would."""

from __future__ import annotations

from conftest import relu_onnx

pytest_plugins = ["pytester"]


def test_onnx_inference_call_benchmarks_a_file_and_refuses_bad_arguments(pytester):
    relu_onnx(pytester.path / "model.onnx", ["N", 4])
    pytester.makepyfile(test_user="""
        import pytest

        def test_latency(benchmark, onnx_inference_call):
            result = benchmark(onnx_inference_call("model.onnx", batch_size=3, threads=1))
            assert result is None or result[0].shape == (3, 4)
            assert benchmark.stats.stats.rounds >= 1

        @pytest.mark.parametrize("kwargs, error", [
            (dict(batch_size=0), ValueError), (dict(threads=0), ValueError), (dict(path="nope.onnx"), FileNotFoundError),
        ])
        def test_bad_arguments(onnx_inference_call, kwargs, error):
            path = kwargs.pop("path", "model.onnx")
            with pytest.raises(error, match="onnx_inference_call"):
                onnx_inference_call(path, **kwargs)

        def test_registry(harness_registry):
            assert "accuracy" in harness_registry.metrics
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-min-rounds=3", "--benchmark-max-time=0.05")
    result.assert_outcomes(passed=5)

"""The pytest plugin that installing harness registers: its fixtures, used as a user's CI would."""

from __future__ import annotations

# Imported before the pytester fixture snapshots sys.modules: it removes what a test imported when the
# test ends, and a later re-import of onnx's extension in this process breaks (AttributeError or abort).
import onnx  # noqa: F401
from conftest import relu_onnx

pytest_plugins = ["pytester"]


def test_onnx_inference_call_benchmarks_a_file_and_refuses_bad_arguments(pytester):
    relu_onnx(pytester.path / "model.onnx", ["N", 4])
    relu_onnx(pytester.path / "seq.onnx", ["batch", "seq"])
    relu_onnx(pytester.path / "time_major.onnx", ["seq", "N"])
    relu_onnx(pytester.path / "static8.onnx", [8, 4])
    (pytester.path / "notes.onnx").write_text("not a model")
    pytester.makepyfile(test_user="""
        import pytest

        def test_latency(benchmark, onnx_inference_call):
            result = benchmark(onnx_inference_call("model.onnx", batch_size=3, threads=1))
            assert result is None or result[0].shape == (3, 4)
            assert benchmark.stats.stats.rounds >= 1

        def test_numpy_ints_from_a_parametrize_are_fine(onnx_inference_call):
            import numpy as np

            onnx_inference_call("model.onnx", batch_size=np.int64(2), threads=np.int32(1))()

        @pytest.mark.parametrize("kwargs, error", [
            (dict(batch_size=0), ValueError), (dict(threads=0), ValueError), (dict(batch_size=True), ValueError),
            (dict(batch_size=1.5), ValueError),
            (dict(path="nope.onnx"), FileNotFoundError),  # and says where a relative path was looked for
            (dict(provider="tpu"), ValueError),  # a name ONNX Runtime lacks, not "fell back to the CPU"
            (dict(path="notes.onnx"), ValueError),  # not ONNX Runtime's raw InvalidProtobuf
        ])
        def test_bad_arguments(onnx_inference_call, kwargs, error):
            path = kwargs.pop("path", "model.onnx")
            with pytest.raises(error, match="onnx_inference_call|unknown ONNX Runtime provider 'tpu'") as raised:
                onnx_inference_call(path, **kwargs)
            if error is FileNotFoundError:
                assert "relative to the working directory" in str(raised.value)
            if path == "notes.onnx":
                assert "notes.onnx is not a model ONNX Runtime can load: " in str(raised.value)
                assert "Protobuf parsing failed" in str(raised.value)

        def test_registry(harness_registry):
            assert "accuracy" in harness_registry.metrics

        def test_dims_are_checked_against_the_graph(onnx_inference_call):
            with pytest.raises(ValueError, match="no open input dimension is called 'seqlen'.*: seq"):
                onnx_inference_call("seq.onnx", dims={"seqlen": 128})
            with pytest.warns(UserWarning, match=r"seq set to 1; give their sizes with dims=\\{'seq': N\\}"):
                onnx_inference_call("seq.onnx")
            result = onnx_inference_call("seq.onnx", batch_size=2, dims={"seq": 5})()
            assert result is None or result[0].shape == (2, 5)

        def test_batch_dim_names_a_batch_that_is_not_first(onnx_inference_call):
            result = onnx_inference_call("time_major.onnx", batch_size=2, dims={"seq": 5}, batch_dim="N")()
            assert result is None or result[0].shape == (5, 2)
            with pytest.raises(ValueError, match="no open input dimension is called 'M' to be the batch"):
                onnx_inference_call("time_major.onnx", dims={"seq": 5}, batch_dim="M")
            # without batch_dim, seq is taken for the batch and N set to 1: the warning says how to name it
            with pytest.warns(UserWarning, match=r"\\(the batch is taken to be the first dimension, seq; if another "
                                                 r"is the batch, as in a time-major input, name it with batch_dim=\\)"):
                onnx_inference_call("time_major.onnx")
            result = onnx_inference_call("time_major.onnx", batch_size=2, dims={"x[0]": 5}, batch_dim="x[1]")()
            assert result is None or result[0].shape == (5, 2)  # a named dimension by position, both ways

        def test_a_static_batch_says_the_size_to_pass(onnx_inference_call):
            with pytest.raises(ValueError, match="^onnx_inference_call: input 'x' has a static batch dimension 8: "
                                                 "the graph fixes its batch at 8, so pass batch_size=8"):
                onnx_inference_call("static8.onnx")
            result = onnx_inference_call("static8.onnx", batch_size=8)()
            assert result is None or result[0].shape == (8, 4)
    """)
    # In a subprocess: an in-process run restores sys.modules afterwards, and re-importing onnxruntime's
    # extension in this process later aborts it.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--benchmark-min-rounds=3",
                                           "--benchmark-max-time=0.05")
    result.assert_outcomes(passed=13)


def test_harness_registry_warns_of_a_plugin_that_failed_to_load(pytester, site, monkeypatch):
    """A test's lookup of a broken plugin's model failed with a bare KeyError, the cause unsaid."""
    site.install("harness-broken", {"broken": "broken_import"})
    monkeypatch.setenv("PYTHONPATH", site.env()["PYTHONPATH"])
    pytester.makepyfile(test_user="""
        import pytest

        def test_registry(harness_registry):
            with pytest.raises(KeyError, match="failed to load or register models"):
                harness_registry.get("models", "broken-net")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*UserWarning: harness_registry: 1 plugin error(s): plugin 'broken' "
                                 "(from harness-broken): *"])


def test_a_size_below_1_is_refused_when_the_call_is_made_not_when_it_is_timed():
    from harness.shapes import plan_with

    _, _, problem = plan_with({"x": ["N", "h"]}, {"h": 0})
    assert problem == ("dims", "'h' needs a whole size of at least 1, not 0")
    _, _, problem = plan_with({"x": ["N", "h"]}, {"h": 2.5})
    assert problem is not None and "not 2.5" in problem[1]
    assert plan_with({"x": ["N", "h"]}, {"h": 3})[2] is None

"""pytest-benchmark checks: ONNX Runtime inference latency of built-in small models (CPU, 1 thread).

In the default test run (``--benchmark-disable`` in the pytest options) each
benchmark body runs once: a quick check that the model exports, runs and
gives ``(batch, 10)`` finite logits.

Measure and save a baseline (JSON under ``.benchmarks/``; ``--benchmark-enable``
overrides the ``--benchmark-disable`` of the default options)::

    pytest tests/benchmarks --benchmark-enable --benchmark-only --benchmark-autosave

Gate a change against the latest saved baseline (exit status 1 when a
benchmark's fastest round got more than 10 % slower)::

    pytest tests/benchmarks --benchmark-enable --benchmark-only \\
        --benchmark-compare --benchmark-compare-fail=min:10%

Compare on the same machine. ``min`` rather than ``median``: floors move less
than medians between time windows on a shared machine. Each round times one call
(``iterations=1``), so rounds are per-call latencies, and p90/p99 (which
pytest-benchmark does not report) are stored in each benchmark's
``extra_info`` together with the model, its parameter count and file size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

# No conftest.py here on purpose: a second `conftest` module would shadow tests/conftest.py for the
# `from conftest import run_cli` imports of the other test files.

INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory) -> Callable[[str], tuple[Path, int]]:
    """``name -> (path of its ONNX export, parameter count)``; skips when the registry lacks ``name``."""
    cache: dict[str, tuple[Path, int]] = {}
    registry: list[Any] = []

    def export(name: str) -> tuple[Path, int]:
        if name in cache:
            return cache[name]
        import torch

        from harness.export import export_onnx
        from harness.registry import build_registry
        from harness.train import count_parameters

        if not registry:
            registry.append(build_registry())
        spec = registry[0].models.get(name)
        if spec is None:
            pytest.skip(f"model {name!r} is not in the registry (its plugin is not installed or failed to load)")
        shape = spec.model_input_shape(INPUT_SHAPE)
        if shape is None:
            pytest.skip(f"model {name!r} does not accept {INPUT_SHAPE} inputs")
        torch.manual_seed(0)
        model = spec.build(num_classes=NUM_CLASSES, input_shape=shape).eval()
        path = tmp_path_factory.mktemp("bench-models") / f"{name}.onnx"
        export_onnx(model, torch.rand(2, *shape), path, exporter="torchscript")
        cache[name] = (path, count_parameters(model))
        return cache[name]

    return export


MODELS = ["mnist-ultralight-cnn", "mnist-enhanced-20k", "mnist-cnn"]
ROUNDS = 300
WARMUP_ROUNDS = 30


@pytest.mark.parametrize("batch_size", [1, 32], ids=lambda b: f"b{b}")
@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_latency(benchmark, exported_model, name, batch_size):
    import onnxruntime as ort

    from harness.latency import benchmark_percentiles, onnx_call
    from harness.ort import input_feeds, make_session

    path, params = exported_model(name)
    session = make_session(path, "CPUExecutionProvider", threads=1)
    feeds = input_feeds(session, batch_size)
    call = onnx_call(session, feeds, "CPUExecutionProvider")
    benchmark.group = f"onnxruntime-cpu-b{batch_size}"
    benchmark.extra_info.update(model=name, params=params, bytes=path.stat().st_size, batch_size=batch_size,
                                threads=1, provider="CPUExecutionProvider", onnxruntime=ort.__version__)

    benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)

    benchmark.extra_info.update(benchmark_percentiles(benchmark))
    logits = call.binding.get_outputs()[0].numpy()
    assert logits.shape == (batch_size, 10)
    assert np.isfinite(logits).all()
    if "p99_ms" in benchmark.extra_info:
        info = benchmark.extra_info
        assert 0 < info["p50_ms"] <= info["p90_ms"] <= info["p99_ms"] and info["rounds"] == ROUNDS
        assert math.isclose(info["p50_ms"], benchmark.stats.stats.median * 1000.0, rel_tol=1e-6)

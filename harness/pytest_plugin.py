"""pytest plugin (``pytest11`` entry point): fixtures for latency checks of ONNX models in CI.

Use with pytest-benchmark::

    def test_model_latency(benchmark, onnx_inference_call):
        call = onnx_inference_call(Path(__file__).parent / "model.onnx", batch_size=1, threads=1)
        benchmark(call)

save a baseline once with ``pytest --benchmark-only --benchmark-autosave``, then gate changes on the
same machine with ``pytest --benchmark-only --benchmark-compare --benchmark-compare-fail=min:10%``
(the floor: medians of microsecond calls move more than 10 % on a shared machine; without a saved
baseline pytest-benchmark refuses ``--benchmark-compare-fail``). Nothing heavy is imported until a
fixture is used.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any, Callable

import pytest


@pytest.fixture
def onnx_inference_call() -> Callable[..., Callable[[], Any]]:
    """Factory: ``(path, batch_size=1, threads=1, provider="cpu", dims=None, batch_dim=None) -> call()`` with
    inputs bound once.

    The call runs one ONNX Runtime inference on pre-allocated inputs generated
    from the graph (IOBinding), so a benchmark times inference only. ``dims``
    sizes the graph's open input dimensions other than the batch, by name
    (``{"h": 224, "w": 224}``) or as ``{"x[2]": 32}`` (an unnamed one's only way); a name no open
    dimension has is a ``ValueError`` (a typo would time a far smaller input),
    and an open one left out is 1, with a ``UserWarning``. The batch is chosen
    as ``harness bench`` chooses it (:mod:`harness.shapes`); ``batch_dim``
    names it when it is neither named like one nor first (``batch_dim="N"``
    for a time-major ``(seq, N, F)`` input), as ``bench --batch-dim`` does.
    """

    def make(path: str | Path, batch_size: int = 1, threads: int = 1, provider: str = "cpu",
             dims: dict[str, int] | None = None, batch_dim: str | None = None) -> Callable[[], Any]:
        for what, value in (("batch_size", batch_size), ("threads", threads)):
            try:
                number = operator.index(value)  # ints and numpy ints (from parametrize), not floats or str
            except TypeError:
                number = 0
            if isinstance(value, bool) or number < 1:
                raise ValueError(f"onnx_inference_call: {what} must be a positive integer, got {value!r}")
        if not Path(path).is_file():
            where = "" if Path(path).is_absolute() else f" (relative to the working directory {Path.cwd()})"
            raise FileNotFoundError(f"onnx_inference_call: no ONNX file at {path}{where}; a path beside the test "
                                    "file is Path(__file__).parent / NAME")
        from harness.latency import onnx_call
        from harness.ort import input_feeds, make_session, provider_name
        from harness.shapes import plan_with

        try:
            session = make_session(Path(path), provider, threads=threads)
        except Exception as exc:
            if not type(exc).__module__.startswith("onnxruntime"):  # ours: an unknown or unusable provider
                if isinstance(exc, (ValueError, RuntimeError)):  # with the reason (a GPU library missing...)
                    raise type(exc)(f"onnx_inference_call: {exc}") from None
                raise
            from harness.text import squeeze  # ONNX Runtime's InvalidProtobuf, Fail...: not a model it loads

            raise ValueError(f"onnx_inference_call: {path} is not a model ONNX Runtime can load: "
                             f"{squeeze(exc, 300)}") from None
        sizes = dict(dims or {})
        plan, marked, problem = plan_with({arg.name: list(arg.shape) for arg in session.get_inputs()}, sizes,
                                          batch_dim)
        if problem:
            raise ValueError(f"onnx_inference_call: {problem[0]}: {problem[1]}")
        unset = plan.unset(sizes)
        if unset:
            import warnings

            hint = plan.batch_hint(batch_dim is not None, "batch_dim=")
            warnings.warn(f"onnx_inference_call: open input dimension(s) {', '.join(unset)} set to 1; give their "
                          f"sizes with dims={{{', '.join(repr(k) + ': N' for k in unset)}}}{hint}", stacklevel=2)
        try:
            feeds = input_feeds(session, batch_size, dims=marked)
        except ValueError as exc:  # a static batch of another size, or no batch at all
            fixed = plan.fixed_batch
            hint = (f": the graph fixes its batch at {fixed}, so pass batch_size={fixed} (or batch_dim=\"none\" "
                    "when that dimension is no batch)" if fixed is not None and fixed != batch_size else "")
            raise ValueError(f"onnx_inference_call: {exc}{hint}") from None
        return onnx_call(session, feeds, provider_name(provider))

    return make


@pytest.fixture
def harness_registry() -> Any:
    """The registry of every installed harness plugin (models, datasets, metrics, trackers).

    A plugin that failed to load or register is a ``UserWarning`` naming it and why (the test's own
    lookup of one of its names would fail without a cause otherwise); ``registry.errors`` holds them all."""
    from harness.registry import build_registry

    registry = build_registry()
    if registry.errors:
        import warnings

        shown = "; ".join(str(error) for error in registry.errors[:3])
        more = f" (and {len(registry.errors) - 3} more)" if len(registry.errors) > 3 else ""
        warnings.warn(f"harness_registry: {len(registry.errors)} plugin error(s): {shown}{more}", stacklevel=2)
    return registry

"""Stage: ONNX Runtime sessions, batched inference and output comparison.

``onnxruntime-gpu`` lists the CUDA and TensorRT providers as available even on
a machine without a GPU; a provider counts as usable only when a session
created with it actually runs on it (:func:`usable_providers`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import onnxruntime as ort

SHORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
OPT_LEVELS = ("disable", "basic", "extended", "all")


def provider_name(name: str) -> str:
    """``cpu``/``cuda``/``tensorrt`` or a full provider name -> the full provider name."""
    return SHORT_PROVIDERS.get(name.lower(), name)


def session_options(threads: int | None = 1, opt_level: str = "all") -> "ort.SessionOptions":
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    options.log_severity_level = 3
    return options


def make_session(
    path: Path | str | bytes,
    provider: str = "CPUExecutionProvider",
    threads: int | None = 1,
    opt_level: str = "all",
) -> "ort.InferenceSession":
    """An :class:`onnxruntime.InferenceSession` on ``provider``; raises if it would silently fall back."""
    import onnxruntime as ort

    provider = provider_name(provider)
    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    source = path if isinstance(path, bytes) else str(path)
    session = ort.InferenceSession(source, sess_options=session_options(threads, opt_level), providers=providers)
    if session.get_providers()[0] != provider:
        raise RuntimeError(f"{provider} is not usable here (session fell back to {session.get_providers()[0]})")
    return session


@functools.lru_cache(maxsize=1)
def usable_providers() -> tuple[tuple[str, ...], dict[str, str]]:
    """(providers that really run a tiny model here, {provider: why not} for the rest)."""
    import onnxruntime as ort

    # onnxruntime-gpu logs a multi-line warning per provider it cannot create; the reason is kept below.
    ort.set_default_logger_severity(4)
    model = _tiny_model_bytes()
    usable, reasons = [], {}
    for provider in ort.get_available_providers():
        try:
            make_session(model, provider, threads=1)
            usable.append(provider)
        except Exception as exc:  # noqa: BLE001
            reasons[provider] = " ".join(str(exc).split())[:200] or type(exc).__name__
    ort.set_default_logger_severity(3)
    return tuple(usable), reasons


def _tiny_model_bytes() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def run_batched(session: "ort.InferenceSession", inputs: "np.ndarray", batch_size: int = 256) -> "np.ndarray":
    """Logits for every row of ``inputs``, run ``batch_size`` rows at a time."""
    import numpy as np

    name = session.get_inputs()[0].name
    outputs = [
        session.run(None, {name: np.ascontiguousarray(inputs[i : i + batch_size])})[0]
        for i in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(outputs, axis=0)


def max_abs_diff(a: "np.ndarray", b: "np.ndarray") -> float:
    import numpy as np

    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def input_feeds(session: "ort.InferenceSession", batch_size: int, seed: int = 0) -> dict[str, "np.ndarray"]:
    """Random inputs for every graph input, dynamic dimensions set to ``batch_size`` (first) or 1.

    Raises ``ValueError`` when a static first dimension cannot take ``batch_size``.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in session.get_inputs():
        dims = list(arg.shape)
        if dims and isinstance(dims[0], int) and dims[0] > 0 and dims[0] != batch_size:
            raise ValueError(f"input {arg.name!r} has a static batch dimension {dims[0]}")
        shape = [batch_size if i == 0 else (d if isinstance(d, int) and d > 0 else 1) for i, d in enumerate(dims)]
        feeds[arg.name] = _random_array(rng, arg.type, shape)
    return feeds


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _random_array(rng: Any, ort_type: str, shape: Sequence[int]) -> "np.ndarray":
    import numpy as np

    dtype = _ORT_TYPES.get(ort_type)
    if dtype is None:
        raise ValueError(f"cannot generate inputs of type {ort_type}")
    if dtype.startswith("float"):
        return rng.random(shape, dtype=np.float32).astype(dtype)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    return rng.integers(0, 2, size=shape).astype(dtype)

"""Stage: ONNX Runtime sessions, batched inference and output comparison.

``onnxruntime-gpu`` lists the CUDA and TensorRT providers as available even on
a machine without a GPU; a provider counts as usable only when a session
created with it actually runs on it (:func:`usable_providers`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness.text import squeeze

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import onnxruntime as ort

SHORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",  # the macOS wheel's
    "dml": "DmlExecutionProvider",  # onnxruntime-directml's, on Windows
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
OPT_LEVELS = ("disable", "basic", "extended", "all")


def provider_name(name: str) -> str:
    """``cpu``/``cuda``/``tensorrt`` or a full provider name -> the full provider name."""
    return SHORT_PROVIDERS.get(name.lower(), name)


def is_cpu_provider(name: str) -> bool:
    """Whether ``name`` (short or full, any case) is ONNX Runtime's CPU provider."""
    return provider_name(str(name)).lower() == "cpuexecutionprovider"


def session_options(threads: int | None = 1, opt_level: str = "all", spinning: bool = True) -> "ort.SessionOptions":
    """ONNX Runtime's session options as the harness times with: ``threads`` intra-op threads (None: its
    default), one inter-op thread, sequential execution, ``opt_level``. ``spinning=False`` turns off the
    intra-op threads' spin-waiting (on by default in ONNX Runtime; it matters above 1 thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    options.log_severity_level = 4  # fatal only: an error raises, and the harness reports it in one line
    return options


PROVIDER_SHORT_NAMES = "cpu, cuda, tensorrt, coreml, dml, openvino"
"""The short provider names offered (of :data:`SHORT_PROVIDERS`, aliases aside), as the help and errors list them."""

PROVIDER_NAMES_HINT = f"use {PROVIDER_SHORT_NAMES} or a full name such as CUDAExecutionProvider"
"""What an unknown provider name is told (``make_session``, and ``--providers`` in the runner)."""


def make_session(
    path: Path | str | bytes,
    provider: str = "CPUExecutionProvider",
    threads: int | None = 1,
    opt_level: str = "all",
    spinning: bool = True,
) -> "ort.InferenceSession":
    """An :class:`onnxruntime.InferenceSession` on ``provider``; raises if it would silently fall back."""
    import onnxruntime as ort

    provider = provider_name(provider)
    if provider not in ort.get_all_providers():  # a name ONNX Runtime does not have, not one unusable here
        raise ValueError(f"unknown ONNX Runtime provider {provider!r}; {PROVIDER_NAMES_HINT}")
    if provider not in ort.get_available_providers():  # ONNX Runtime would only warn and fall back
        raise RuntimeError(f"{provider} is not usable here: this onnxruntime build ({ort.__version__}) does not "
                           f"include it (it has {', '.join(ort.get_available_providers())})")
    if provider == "CPUExecutionProvider":
        providers = [provider]
    elif provider == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in ort.get_available_providers():
        # TensorRT hands the nodes it cannot build an engine for to CUDA, then CPU.
        providers = [provider, "CUDAExecutionProvider", "CPUExecutionProvider"]
    else:
        providers = [provider, "CPUExecutionProvider"]
    source = path if isinstance(path, bytes) else str(path)
    if isinstance(source, str) and not utf8_path(source):
        source = Path(source).read_bytes()  # the harness's files embed their weights: the bytes are the model
    options = session_options(threads, opt_level, spinning)
    if provider == "CPUExecutionProvider":
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    else:
        # onnxruntime's Python layer print()s "EP Error ... Falling back" to stdout when a GPU provider
        # cannot start (that would corrupt `harness bench --json`), and onnxruntime-gpu's C++ logger writes
        # why a provider library did not load to the stderr file descriptor. Both are kept, not shown: the
        # reason is raised below.
        with contextlib.redirect_stdout(io.StringIO()) as printed, _native_stderr() as logged:
            session = ort.InferenceSession(source, sess_options=options, providers=providers)
        if session.get_providers()[0] != provider:
            said = fallback_reason(printed.getvalue(), "".join(logged))
            why = f": {said}" if said else ""
            raise RuntimeError(f"{provider} is not usable here (session fell back to "
                               f"{session.get_providers()[0]}){why}")
        if logged and logged[0].strip():  # it runs: what ONNX Runtime said is not a reason, so shown as it was
            import sys

            sys.stderr.write(logged[0])
    return session


def utf8_path(path: Path | str) -> bool:
    """Whether ``path`` encodes as UTF-8. Under a non-UTF-8 locale an undecodable file name is a str with
    surrogates, which ONNX Runtime's, onnx's and torch's C++ bindings refuse (Python's own file functions
    take it): those get the file's bytes instead."""
    import os

    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextlib.contextmanager
def _native_stderr() -> Any:
    """What native code writes to file descriptor 2 inside the block, as a list holding one string on exit
    (empty where the descriptor cannot be redirected)."""
    import os
    import sys
    import tempfile

    logged: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no descriptor 2 (a pythonw process)
        yield logged
        return
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        try:
            yield logged
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            logged.append(file.read().decode("utf-8", "replace"))


_LOG_LINE_PREFIX = re.compile(r"^\S+ \S+ \[\w:onnxruntime:[^\]]*\] ")  # "2026-12-02 00:59:50.09 [E:onnxruntime:...] "


def fallback_reason(printed: str, logged: str, limit: int = 240) -> str:
    """Why ONNX Runtime fell back from a provider, in one line, from what it printed to stdout ("EP Error
    ...") and what its logger wrote to stderr ("Failed to load library ... with error: libcublasLt.so.13:
    cannot open shared object file"); "" when neither says."""
    said = [line for line in printed.splitlines() if line.startswith("EP Error")]
    for line in _log_lines(logged):
        level = re.search(r"\[([EWF]):onnxruntime:", line)
        if level and level.group(1) in "EF":  # errors; the warnings repeat the install page's advice
            said.append(_LOG_LINE_PREFIX.sub("", line))
    text = squeeze(" ".join(said))
    text = re.sub(r"^EP Error\s*", "", text)
    text = re.sub(r" when using \[.*$", "", text)
    text = re.sub(r"(?:[A-Za-z]:)?[\\/]\S*[\\/]([^\\/\s]+\.(?:so|dll|dylib))\b", r"\1", text)  # the library, not its path
    return squeeze(text, limit)


def _log_lines(text: str) -> list[str]:
    """``text``'s non-empty lines, colour codes dropped (ONNX Runtime colours its log lines)."""
    from harness.text import ANSI_ESCAPE

    return [line.strip() for line in ANSI_ESCAPE.sub("", text).splitlines() if line.strip()]


def save_optimized_model(
    source: Path | str,
    target: Path | str,
    opt_level: str = "extended",
    provider: str = "CPUExecutionProvider",
) -> Path:
    """ONNX Runtime's offline-optimised copy of ``source`` (``SessionOptions.optimized_model_filepath``).

    ``extended`` fuses nodes into ONNX Runtime contrib ops for ``provider``
    (e.g. ``FusedConv`` on CPU), so the file is meant for that provider; ``basic``
    keeps standard ONNX ops. Returns ``target``.
    """
    import onnxruntime as ort

    if opt_level not in ("basic", "extended", "all"):
        raise ValueError(f"opt_level must be basic, extended or all, got {opt_level!r}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    options = session_options(threads=1, opt_level=opt_level)
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), sess_options=options, providers=[provider_name(provider)])
    if not target.is_file():
        raise RuntimeError(f"ONNX Runtime did not write the optimised model {target}")
    return target


@functools.lru_cache(maxsize=1)
def usable_providers() -> tuple[tuple[str, ...], dict[str, str]]:
    """(providers that really run a tiny model here, {provider: why not} for the rest)."""
    import onnxruntime as ort

    # onnxruntime-gpu logs why it cannot create a provider; make_session keeps that as the reason below.
    ort.set_default_logger_severity(3)
    model = tiny_model_bytes()
    usable, reasons = [], {}
    try:
        for provider in ort.get_available_providers():
            try:
                make_session(model, provider, threads=1)
                usable.append(provider)
            except Exception as exc:  # noqa: BLE001
                reasons[provider] = squeeze(exc, 400) or type(exc).__name__
    finally:  # errors only (the harness's level), also when a Ctrl-C comes during the probe
        ort.set_default_logger_severity(3)
    return tuple(usable), reasons


def tiny_model_bytes() -> bytes:
    """A one-node (Relu) model every supported ONNX Runtime loads: for probing and warming providers."""
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


SCORING_BATCH = 256
"""Rows per ONNX Runtime call when a test split is scored (:func:`run_batched`)."""


def run_batched(session: "ort.InferenceSession", inputs: "np.ndarray",
                batch_size: int = SCORING_BATCH) -> "np.ndarray":
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


def input_feeds(session: "ort.InferenceSession", batch_size: int, seed: int = 0,
                dims: dict[str, int] | None = None, sample: "np.ndarray | None" = None) -> dict[str, "np.ndarray"]:
    """Random inputs for every graph input: each input's batch axis at ``batch_size``, its other open
    dimensions from ``dims`` or 1 (the rule is :mod:`harness.shapes`'s).

    ``dims`` gives values for named open dimensions (``{"seq": 128}``) or unnamed ones as
    ``input[axis]``; the batch axis takes ``batch_size`` whatever ``dims`` says. Raises ``ValueError``
    when the graph fixes its batch at another size. With ``sample`` (real inputs, ``(N, ...)``) and a
    graph of one input, that input is ``sample`` repeated to ``batch_size`` rows instead, in the
    input's dtype.
    """
    import numpy as np

    from harness.shapes import plan_inputs

    dims_by_name = dict(dims or {})
    rng = np.random.default_rng(seed)
    args = session.get_inputs()
    shapes = {arg.name: list(arg.shape) for arg in args}
    plan = plan_inputs(shapes, dims_by_name)
    if plan.fixed_batch is not None and plan.fixed_batch != batch_size:
        batched = next(name for name, axis in plan.axes.items() if axis is not None)
        raise ValueError(f"input {batched!r} has a static batch dimension {plan.fixed_batch}")
    if not plan.batched and batch_size != 1:
        raise ValueError(f"no input has a batch dimension (timed per call, as batch 1), so not batch {batch_size}")
    feeds = {}
    for arg in args:
        feeds[arg.name] = _random_array(rng, arg.type, plan.shape(arg.name, shapes[arg.name], batch_size, dims_by_name))
    if sample is not None and len(feeds) == 1 and len(sample):
        name = next(iter(feeds))
        reps = -(-batch_size // len(sample))
        tiled = np.concatenate([sample] * reps)[:batch_size]
        feeds[name] = np.ascontiguousarray(tiled.astype(feeds[name].dtype))
    return feeds


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint64)": "uint64",
    "tensor(uint32)": "uint32",
    "tensor(uint16)": "uint16",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}
"""The numpy dtype of each ONNX Runtime input type :func:`input_feeds` can make. ``bfloat16`` and the
float8 types are left out: numpy has no such dtype ONNX Runtime's ``run`` accepts."""


def _random_array(rng: Any, ort_type: str, shape: Sequence[int]) -> "np.ndarray":
    import numpy as np

    dtype = _ORT_TYPES.get(ort_type)
    if dtype is None:
        raise ValueError(f"cannot generate inputs of type {ort_type}: numpy has no such type that ONNX Runtime "
                         "takes")
    if dtype.startswith("float"):
        return rng.random(shape, dtype=np.float32).astype(dtype)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype == "object":  # strings: short digit strings, as a text model's tokens might read
        return rng.integers(0, 10, size=shape).astype(str).astype(object)
    return rng.integers(0, 2, size=shape).astype(dtype)

"""Stage: model variants of an exported float32 ONNX file, each measured like the original.

Variants (``--variants``; ``fp32`` is the job's own export and not built here):

- ``int8-dynamic``: weights quantized to int8 ahead of time, activations
  quantized at run time (``onnxruntime.quantization.quantize_dynamic``).
- ``int8-static``: QDQ quantization with activation ranges calibrated
  (MinMax) on up to 256 training samples (``quantize_static``), per-channel
  weights; ``quant_pre_process`` (shape inference and basic fusions) first.
- ``fp16``: float16 weights and arithmetic with float32 inputs and outputs
  (``keep_io_types``), via ``onnxruntime.transformers.float16``. Accuracy is
  evaluated wherever it runs; latency only on GPU providers, since ONNX
  Runtime's CPU float16 kernels are not what a deployment would use (the row
  says why it has no CPU latency).
- ``ort-opt``: ONNX Runtime's offline-optimised graph at
  ``ORT_ENABLE_EXTENDED`` (fused contrib ops; meant for the CPU provider).
- ``slim``: ``onnxslim``'s graph simplification, when that package is installed.

Each variant is one row: ``variant``, ``path`` (relative to the run folder),
``bytes``, ``metrics`` on the test split (or its ``--max-test-samples`` subset) in ONNX Runtime,
``accuracy_drop`` (float32 accuracy minus the variant's), ``max_abs_diff``
against the float32 ONNX Runtime logits, ``latency`` rows, ``vs_fp32`` (an
alternating A/B comparison against float32 at the smallest batch size:
ratio and stability), and ``error`` (null, or one line: a failed variant
never fails the job).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from harness.coldstart import cold_start_for
from harness.latency import (GPU_PROVIDERS, LatencyConfig, at_setting, compare_alternating, measure_onnx, onnx_call,
                             round_config)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

log = logging.getLogger(__name__)

VARIANTS = ("fp32", "int8-dynamic", "int8-static", "fp16", "ort-opt", "slim")
"""Every name ``--variants`` accepts; ``fp32`` is the job's own export."""
CALIBRATION_SAMPLES = 256
CALIBRATION_BATCH = 32
SCORED_PER_SAMPLE = {"int8-dynamic": 1}
"""Variants whose answers depend on the batch they run in, scored one sample per call: dynamic
quantisation takes each call's activation range over the whole batch, so batch-mates change a sample's
logits (scored 256 at a time, an MNIST int8-dynamic export's accuracy was 0.6392; one at a time, as a
batch-1 deployment runs it, 0.6397). The rest are scored :data:`harness.ort.SCORING_BATCH` rows per call."""
FP16_CPU_NOTE = ("fp16 latency is measured on GPU providers only (CUDA/TensorRT): ONNX Runtime's CPU float16 "
                 "kernels are not representative of a deployment")


def unknown_variants(names: Sequence[str]) -> list[str]:
    """The names in ``names`` that are not variants (for the CLI to refuse with exit status 2)."""
    return [n for n in names if n not in VARIANTS]


def variant_path(fp32_path: Path, run_dir: Path, variant: str) -> Path:
    """``run_dir/onnx/<fp32 stem>.<variant>.onnx``."""
    return Path(run_dir) / "onnx" / f"{Path(fp32_path).stem}.{variant}.onnx"


def evaluate_variants(
    variants: Sequence[str],
    fp32_path: Path,
    run_dir: Path,
    calib_inputs: "torch.Tensor",
    test_x: "torch.Tensor",
    test_y: "torch.Tensor",
    metrics: Sequence[Any],
    options: Any,
    providers: Sequence[str],
    fp32_metrics: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    compare: bool = True,
) -> list[dict[str, Any]]:
    """Build, check, evaluate and time each variant of ``fp32_path``; one row per variant, never raises.

    ``options`` needs ``batch_sizes``, ``threads`` and ``latency`` (a
    :class:`~harness.latency.LatencyConfig`), as on ``harness.runner.RunOptions``.
    ``calib_inputs`` are training inputs (a seeded subset of up to
    :data:`CALIBRATION_SAMPLES` calibrates ``int8-static``). ``compare``
    adds the alternating ``vs_fp32`` comparison.
    """
    from harness.ort import make_session, provider_name, run_batched

    fp32_path, run_dir = Path(fp32_path), Path(run_dir)
    test_np = _numpy(test_x)
    fp32_logits = None
    fp32_error = None
    try:
        fp32_logits = run_batched(make_session(fp32_path, "CPUExecutionProvider", threads=None), test_np)
    except Exception as exc:  # noqa: BLE001 - every variant row will carry it
        fp32_error = _one_line(exc)
    rows = []
    for name in dict.fromkeys(variants):
        if name == "fp32":
            continue
        started = time.perf_counter()
        row: dict[str, Any] = {"variant": name, "path": None, "bytes": None, "metrics": None,
                               "accuracy_drop": None, "max_abs_diff": None, "latency": [], "error": None}
        try:
            if fp32_error is not None:
                raise RuntimeError(f"the float32 model does not run in ONNX Runtime: {fp32_error}")
            _evaluate_one(name, row, fp32_path, run_dir, calib_inputs, test_np, test_y, fp32_logits, metrics,
                          options, [provider_name(p) for p in providers], fp32_metrics, seed, compare)
        except Exception as exc:  # noqa: BLE001 - contained in this variant's row
            row["error"] = _one_line(exc)
            log.debug("variant %s failed", name, exc_info=True)
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
    return rows


def _evaluate_one(name: str, row: dict[str, Any], fp32_path: Path, run_dir: Path, calib_inputs: Any,
                  test_np: "np.ndarray", test_y: Any, fp32_logits: "np.ndarray", metrics: Sequence[Any],
                  options: Any, providers: list[str], fp32_metrics: dict[str, Any] | None, seed: int,
                  compare: bool) -> None:
    import torch

    from harness.export import onnx_bytes
    from harness.onnx_cost import count_onnx_cost
    from harness.ort import SCORING_BATCH, max_abs_diff, run_batched
    from harness.runner import record_metrics

    builder = BUILDERS.get(name)
    if builder is None:
        known = ", ".join(VARIANTS)
        raise ValueError(f"unknown variant {name!r} (known: {known})")
    target = variant_path(fp32_path, run_dir, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    calibration = None
    if name == "int8-static" and calib_inputs is not None:  # which training inputs set its ranges, drawn once
        import hashlib  # (the builder's own draw from them is the same rows), and a digest to check they were those

        chosen = calibration_inputs(calib_inputs, seed=seed)
        digest = hashlib.sha256(f"float32|{tuple(chosen.shape)}|".encode() + chosen.tobytes()).hexdigest()
        calibration = {"split": "train", "samples": len(chosen), "of": len(calib_inputs), "seed": seed,
                       "sha256": digest}
        calib_inputs = chosen
    notes = builder(fp32_path, target, calib_inputs, seed) or []
    if calibration is not None:
        row["calibration"] = calibration
    row["path"] = _relative(target, run_dir)
    row["bytes"] = onnx_bytes(target)
    # Its own activation memory (float16 or int8 tensors are smaller); the FLOPs are the fp32 export's.
    cost = count_onnx_cost(target)
    row["activation_bytes"] = cost.activation_bytes
    if cost.activation_basis != "graph":  # a QDQ graph, walked as ONNX Runtime fuses it
        row["activation_basis"] = cost.activation_basis
    if notes:
        row["notes"] = list(notes)

    order = ["CPUExecutionProvider", *providers]
    if name == "fp16":  # GPUs run float16 arithmetic; ONNX Runtime's CPU provider casts to float32 around it
        order = [p for p in providers if p in GPU_PROVIDERS] + order
    session, eval_provider = _session_anywhere(target, order)
    logits = run_batched(session, test_np, batch_size=SCORED_PER_SAMPLE.get(name, SCORING_BATCH))
    row["eval_provider"] = eval_provider
    if name in SCORED_PER_SAMPLE:
        row["eval_batch_size"] = SCORED_PER_SAMPLE[name]
    if name == "fp16" and eval_provider == "CPUExecutionProvider":  # its accuracy is not a GPU's
        row.setdefault("notes", []).append("accuracy scored on the CPU provider, which computes in float32 between float16 tensors: "
                     "it shows the rounding of weights and activations to float16, not float16 accumulation")
    record_metrics(row, metrics, torch.from_numpy(logits.astype("float32")), test_y)
    row["max_abs_diff"] = max_abs_diff(logits, fp32_logits)
    row["diff_samples"] = len(test_np)
    accuracy = (row["metrics"] or {}).get("accuracy")
    base = (fp32_metrics or {}).get("accuracy")
    if accuracy is not None and base is not None:
        row["accuracy_drop"] = round(float(base) - float(accuracy), 6)

    latency_providers, skipped = _latency_providers(name, providers)
    batch_sizes = list(options.batch_sizes)
    sample = test_np[: max(batch_sizes)]
    row["latency"] = measure_onnx(target, batch_sizes, list(options.threads), latency_providers, options.latency,
                                  sample=sample, on_skip=skipped.append)
    cold = cold_start_for(target, row["latency"], options.latency.cold_runs, options.latency.max_time_s,
                          on_skip=skipped.append)
    if cold is not None:
        row["cold_start"] = cold
    if skipped:
        row["latency_skipped"] = skipped
    if compare and row["latency"]:
        first = row["latency"][0]
        from harness.runner import paired_threads

        row["vs_fp32"] = _compare_with_fp32(fp32_path, target, first["provider"], min(batch_sizes),
                                            paired_threads(options.threads), sample, options.latency, name)


def _latency_providers(name: str, providers: list[str]) -> tuple[list[str], list[str]]:
    """Which providers time this variant, and a skip line for the ones left out."""
    skipped: list[str] = []
    if name == "fp16":
        gpu = [p for p in providers if p in GPU_PROVIDERS]
        cpu_asked = "CPUExecutionProvider" in providers
        if cpu_asked or not gpu:
            reason = FP16_CPU_NOTE if gpu else f"{FP16_CPU_NOTE}; no GPU provider is in use here"
            skipped.append(f"provider CPUExecutionProvider: {reason}")
        return gpu, skipped
    if name == "ort-opt":
        others = [p for p in providers if p != "CPUExecutionProvider"]
        for provider in others:
            skipped.append(f"provider {provider}: the ort-opt file holds CPU-specific fused operators")
        return ["CPUExecutionProvider"], skipped
    return list(providers), skipped


def _compare_with_fp32(fp32_path: Path, target: Path, provider: str, batch_size: int, threads: int,
                       sample: "np.ndarray", config: LatencyConfig, name: str) -> dict[str, Any]:
    """Variant vs fp32 at one setting, alternating short rounds (``ratio`` < 1: the variant is faster)."""

    from harness.ort import input_feeds, make_session

    calls = []
    for path in (target, fp32_path):  # timed as the run times its rows (--no-spin, --no-iobinding)
        session = make_session(path, provider, threads=threads, spinning=config.spinning)
        feeds = input_feeds(session, batch_size, sample=sample)
        calls.append(onnx_call(session, feeds, provider, config.iobinding))
    rounds_config, rounds = round_config(config)
    result = compare_alternating(calls[0], calls[1], rounds=rounds, config=rounds_config, names=(name, "fp32"))
    return at_setting(result, provider, batch_size, threads)


def _session_anywhere(path: Path, providers: Sequence[str]) -> tuple[Any, str]:
    """A session on the first provider (in order) that can run ``path``."""
    from harness.ort import make_session

    errors = []
    for provider in dict.fromkeys(providers):
        try:
            return make_session(path, provider, threads=None), provider
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{provider}: {_one_line(exc)}")
    raise RuntimeError("no provider runs this variant: " + "; ".join(errors))


# -- builders: (fp32 path, target path, calibration inputs, seed) -> notes -----------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Quantization and graph tools log advice through the root logger, warn, or print; the harness's stdout
    is its own (tables, ``--json``), so all of that is kept out of it. ONNX Runtime's quantizer logs with
    ``logging.info(...)``, which gives a root logger without handlers one (``basicConfig``): that handler
    is taken away again, else a notebook's own ``logging.basicConfig`` after a run did nothing."""
    import io

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)


@contextlib.contextmanager
def _scratch_cwd() -> Iterator[None]:
    """The working directory a temporary folder for the duration: ONNX Runtime 1.18's shape inference for
    quantization, failing, saved ``sym_shape_infer_temp.onnx`` and its weights (uuid-named files) into the
    working directory and left them there, in a user's checkout."""
    import os
    import tempfile

    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="harness-quant-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(here)


def _preprocess(source: Path, target: Path) -> tuple[Path, list[str]]:
    """``quant_pre_process`` into ``target``; on failure the graph without its value_info there, and a note."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with _quiet(), _scratch_cwd():
            quant_pre_process(str(Path(source).resolve()), str(Path(target).resolve()), skip_symbolic_shape=False)
        return target, []
    except Exception as exc:  # noqa: BLE001 - quantization still works on the raw graph
        # Without its recorded intermediate shapes (value_info): the quantizer's own shape inference
        # can disagree with those an exporter wrote (seen with the dynamo export of mnist-fast:
        # "Inferred shape and existing shape differ"), and they are optional metadata.
        import onnx

        model = onnx.load(str(source))
        del model.graph.value_info[:]
        onnx.save(model, str(target))
        return target, [f"ONNX Runtime's quantization pre-processing (shape inference) could not handle this "
                        f"graph ({_one_line(exc)}); quantized the export without it, dropping only its optional "
                        "recorded intermediate shapes"]


def _restore_shapes(source: Path, target: Path) -> None:
    """Put the export's recorded intermediate shapes (value_info) back into the quantized ``target`` for the
    tensors it kept by name, where :func:`_preprocess` had to quantize without them: ONNX's shape inference
    does not follow every exporter's shape arithmetic (torch 2.6's flattening Reshape), and without the
    record the variant's FLOPs and activation memory went uncounted. Kept only if ONNX Runtime still loads
    the file (a record the quantizer's graph disagrees with was why it was dropped)."""
    import onnx

    recorded = onnx.load(str(source), load_external_data=False).graph.value_info
    model = onnx.load(str(target))
    made = {name for node in model.graph.node for name in node.output}
    kept = [value for value in recorded if value.name in made]
    if not kept:
        return
    # the quantizer's own inference wrote these names with open dimensions (unk__0): the record replaces them
    names = {value.name for value in kept}
    others = [value for value in model.graph.value_info if value.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend([*others, *kept])
    trial = target.with_suffix(".shapes.onnx")
    onnx.save(model, str(trial))
    try:
        _runs_on_cpu(trial)
    except Exception:  # noqa: BLE001 - the variant stands as quantized, uncounted where it was
        trial.unlink(missing_ok=True)
        return
    trial.replace(target)


def _runs_on_cpu(path: Path) -> None:
    from harness.ort import make_session

    make_session(path, "CPUExecutionProvider", threads=1)


def build_int8_dynamic(source: Path, target: Path, calib_inputs: Any = None, seed: int = 0) -> list[str]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pre, notes = _preprocess(source, target.with_suffix(".pre.onnx"))
    unshaped = bool(notes)  # pre-processing failed: quantized without the export's recorded shapes
    try:
        with _quiet():
            quantize_dynamic(str(pre), str(target), weight_type=QuantType.QInt8)
        try:
            _runs_on_cpu(target)
            notes.append("weights int8 (QInt8), activations quantized at run time")
        except Exception as exc:  # noqa: BLE001 - older CPU kernels (ConvInteger) take uint8 weights only
            with _quiet():
                quantize_dynamic(str(pre), str(target), weight_type=QuantType.QUInt8)
            notes.append(f"int8 weights do not run on this CPU build ({_one_line(exc)[:120]}); used uint8 weights")
    finally:
        if pre != source:
            pre.unlink(missing_ok=True)
    if unshaped:
        _restore_shapes(source, target)
    return notes


def calibration_reader(input_name: str, inputs: "np.ndarray", batch_size: int = CALIBRATION_BATCH) -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over ``inputs`` in batches (rewindable)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = [{input_name: inputs[i: i + batch_size]} for i in range(0, len(inputs), batch_size)]
            self._iter = iter(self.batches)

        def get_next(self) -> dict[str, "np.ndarray"] | None:
            return next(self._iter, None)

        def rewind(self) -> None:
            self._iter = iter(self.batches)

        def __len__(self) -> int:
            return len(self.batches)

    return Reader()


def calibration_inputs(inputs: Any, n: int = CALIBRATION_SAMPLES, seed: int = 0) -> "np.ndarray":
    """A seeded random subset of ``n`` rows of ``inputs`` as a contiguous float32 array."""
    import numpy as np

    array = _numpy(inputs)
    if len(array) == 0:
        raise ValueError("no calibration inputs")
    if len(array) > n:
        index = np.sort(np.random.default_rng(seed).choice(len(array), size=n, replace=False))
        array = array[index]
    return np.ascontiguousarray(array, dtype=np.float32)


def build_int8_static(source: Path, target: Path, calib_inputs: Any, seed: int = 0) -> list[str]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from harness.ort import make_session

    if calib_inputs is None:
        raise ValueError("int8-static needs calibration inputs")
    data = calibration_inputs(calib_inputs, seed=seed)
    input_name = make_session(source, "CPUExecutionProvider", threads=1).get_inputs()[0].name
    reader = calibration_reader(input_name, data)
    pre, notes = _preprocess(source, target.with_suffix(".pre.onnx"))
    unshaped = bool(notes)  # pre-processing failed: quantized without the export's recorded shapes
    try:
        with _quiet():
            quantize_static(
                str(pre), str(target), reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    finally:
        if pre != source:
            pre.unlink(missing_ok=True)
    _runs_on_cpu(target)
    if unshaped:
        _restore_shapes(source, target)
    notes.append(f"QDQ, per-channel int8 weights, uint8 activations calibrated (MinMax) on {len(data)} "
                 "training samples")
    return notes


def build_fp16(source: Path, target: Path, calib_inputs: Any = None, seed: int = 0) -> list[str]:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with _quiet():
        model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))
    return ["float16 weights and arithmetic; inputs and outputs stay float32"]


def build_ort_opt(source: Path, target: Path, calib_inputs: Any = None, seed: int = 0) -> list[str]:
    from harness.ort import save_optimized_model

    save_optimized_model(source, target, opt_level="extended", provider="CPUExecutionProvider")
    return ["ONNX Runtime offline optimisation (ORT_ENABLE_EXTENDED, CPU): fused contrib ops, CPU provider only"]


def slim_available() -> bool:
    """Whether onnxslim (the ``slim`` variant, ``pip install "onnxslim>=0.1.98"``) can be imported here."""
    try:
        import onnxslim  # noqa: F401
    except ImportError:
        return False
    return True


def build_slim(source: Path, target: Path, calib_inputs: Any = None, seed: int = 0) -> list[str]:
    try:
        import onnxslim
    except ImportError:
        raise RuntimeError('the slim variant needs onnxslim (pip install "onnxslim>=0.1.98")') from None
    with _quiet():  # onnxslim prints a summary table to stdout
        onnxslim.slim(str(source), str(target))
    if not target.is_file():
        raise RuntimeError("onnxslim wrote no file")
    _runs_on_cpu(target)
    return [f"onnxslim {getattr(onnxslim, '__version__', '')} graph simplification".replace("  ", " ")]


BUILDERS: dict[str, Callable[[Path, Path, Any, int], list[str]]] = {
    "int8-dynamic": build_int8_dynamic,
    "int8-static": build_int8_static,
    "fp16": build_fp16,
    "ort-opt": build_ort_opt,
    "slim": build_slim,
}


# -- helpers ----------------------------------------------------------------------------------------------


def _numpy(values: Any) -> "np.ndarray":
    import numpy as np

    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()  # '/' on every OS
    except ValueError:
        return Path(path).as_posix()


def _one_line(exc: BaseException) -> str:
    from harness.manager import one_line

    return one_line(exc)

"""Stage: export a trained ``torch.nn.Module`` to one ONNX file and check it.

The dynamo exporter (``torch.export`` + onnxscript) is tried first; when it
fails the TorchScript exporter is used and the reason recorded. Weights are
embedded in the ``.onnx`` file (a deployable single file); ``onnx_bytes``
still counts any external-data file a model references, so sizes are honest
for files the harness did not write.

The dynamo exporter annotates every node with debugging metadata (the FX node,
module path, class hierarchy and the Python stack trace, with the exporting
machine's file paths) and the graph with the exported program's signature. It
does not run, but it made small models' files up to 1.7 times their size, and
file size is a figure this harness reports; so it is removed (:func:`strip_debug_metadata`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.text import squeeze

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")
DYNAMO_OPSET = 20
TORCHSCRIPT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass
class ExportResult:
    path: Path
    bytes: int
    opset: int
    exporter: str
    seconds: float
    fallback_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "opset": self.opset,
            "exporter": self.exporter,
            "export_seconds": round(self.seconds, 3),
            "fallback_reason": self.fallback_reason,
        }


def export_onnx(
    model: "torch.nn.Module",
    example: "torch.Tensor",
    path: Path,
    exporter: str = "auto",
    opset: int | None = None,
) -> ExportResult:
    """Write ``model`` (in eval mode, on CPU) to ``path`` with a dynamic batch dimension.

    ``example`` is a CPU batch of real inputs (two or more rows, so the batch
    dimension is not specialised to 1). ``exporter`` is ``auto`` (dynamo,
    then TorchScript on failure), ``dynamo`` or ``torchscript``.
    """
    import torch

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    if example.shape[0] < 2:
        example = example.repeat(2, *([1] * (example.dim() - 1)))
    start = time.perf_counter()
    fallback_reason = None
    if exporter in ("auto", "dynamo"):
        try:
            used_opset = _export_dynamo(model, example, path, opset or DYNAMO_OPSET)
            return ExportResult(path, onnx_bytes(path), used_opset, "dynamo", time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - any exporter failure falls back
            if exporter == "dynamo":
                raise
            fallback_reason = export_failure_text(exc)
            _remove_partial(path)
    with torch.no_grad(), warnings.catch_warnings(), _exporter_output_to_debug_log():
        warnings.simplefilter("ignore")
        used_opset = opset or TORCHSCRIPT_OPSET
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=used_opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return ExportResult(
        path, onnx_bytes(path), used_opset, "torchscript", time.perf_counter() - start, fallback_reason
    )


def export_failure_text(exc: BaseException, limit: int = 300) -> str:
    """Why an export failed, on one line: the underlying error's first paragraph.

    torch.onnx wraps the real cause (``exc.__cause__``) in a message that
    starts with the same advice every time ("This is step 1/3 ...").
    """
    cause = exc.__cause__ or exc
    first = str(cause).strip().split("\n\n")[0]
    kind = type(exc).__name__ if cause is exc else f"{type(exc).__name__} ({type(cause).__name__})"
    return squeeze(f"{kind}: {first}", limit)


@contextlib.contextmanager
def _exporter_output_to_debug_log() -> Any:
    """Keep what the exporters print (torch.export dumps whole FX graphs to stderr when it gives up) out of
    the terminal and the progress line; it goes to the debug log (``harness --debug``) instead. The
    reason for a fallback is recorded on its own (``fallback_reason``)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            yield
    finally:
        if printed.getvalue().strip():
            log.debug("the ONNX exporter printed:\n%s", printed.getvalue().rstrip())


def _export_dynamo(model: "torch.nn.Module", example: "torch.Tensor", path: Path, opset: int) -> int:
    import torch

    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), _exporter_output_to_debug_log():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    # external_data=False embeds the weights: one deployable file (fine far below protobuf's 2 GB).
    program.save(str(path), external_data=False)
    import onnx

    model_proto = onnx.load(str(path))
    if strip_debug_metadata(model_proto):
        onnx.save(model_proto, str(path))
    return next((o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")), opset)


DEBUG_METADATA_PREFIXES = ("pkg.torch.", "pkg.onnxscript.")
DEBUG_METADATA_KEYS = ("namespace",)


def strip_debug_metadata(model: Any) -> int:
    """Remove the exporters' debugging metadata from ``model`` (an ``onnx.ModelProto``) in place: the
    ``pkg.torch.*``, ``pkg.onnxscript.*`` and ``namespace`` entries of the model, its graphs (subgraphs
    and functions included), their inputs, outputs, value annotations, weights and nodes. Other
    metadata stays. Returns how many entries went."""
    from harness.onnx_cost import subgraphs

    def debug(entry: Any) -> bool:
        return entry.key in DEBUG_METADATA_KEYS or entry.key.startswith(DEBUG_METADATA_PREFIXES)

    def strip(owner: Any) -> int:
        props = getattr(owner, "metadata_props", None)  # graphs, nodes and functions have it from onnx 1.16
        if props is None:
            return 0
        doomed = [i for i, entry in enumerate(props) if debug(entry)]
        for i in reversed(doomed):
            del props[i]
        return len(doomed)

    def graph_entries(graph: Any) -> int:
        # the graph, its inputs, outputs, shape annotations and weights, and its nodes
        owners = [graph, *graph.input, *graph.output, *graph.value_info, *graph.initializer]
        return sum(strip(owner) for owner in owners) + nodes(graph.node)

    def nodes(node_list: Any) -> int:
        removed = 0
        for node in node_list:
            removed += strip(node)
            for graph in subgraphs(node):
                removed += graph_entries(graph)
        return removed

    removed = strip(model) + graph_entries(model.graph)
    for function in model.functions:
        removed += strip(function) + nodes(function.node)
    return removed


def _remove_partial(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".data")):
        if candidate.exists():
            candidate.unlink()


def onnx_bytes(path: Path) -> int:
    """Size of an ONNX model on disk: the file plus every external-data file it references."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    path = Path(path)
    total = path.stat().st_size
    model = onnx.load(str(path), load_external_data=False)
    seen: set[str] = set()
    for tensor in _all_initializers(model.graph):
        if uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), None)
            if location and location not in seen:
                seen.add(location)
                data_file = path.parent / location
                if data_file.exists():
                    total += data_file.stat().st_size
    return total


def _all_initializers(graph: Any):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.g is not None and attr.g.ByteSize():
                yield from _all_initializers(attr.g)
            for sub in attr.graphs:
                yield from _all_initializers(sub)


def check_onnx(path: Path) -> None:
    """Run ``onnx.checker`` with shape inference (``full_check``) on the file; raises on failure, and on a
    graph that takes no input (a trace that turned the input into a constant)."""
    import onnx

    onnx.checker.check_model(os.fspath(path), full_check=True)
    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    if not [i for i in graph.input if i.name not in weights]:
        raise ValueError("the exported graph takes no input: the exporter turned the input into a constant "
                         "(a forward that leaves torch, e.g. through .item(), .tolist() or numpy, cannot be "
                         "traced)")

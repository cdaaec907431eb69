"""Stage: export a trained ``torch.nn.Module`` to one ONNX file and check it.

The dynamo exporter (``torch.export`` + onnxscript) is tried first; when it
fails, or its graph fixes the batch size, the TorchScript exporter is used and
the reason recorded. Weights are embedded in the ``.onnx`` file (a deployable
single file); ``onnx_bytes`` still counts any external-data file a model
references, so sizes are honest for files the harness did not write.

A trace freezes whatever Python made of tensor values (an ``if`` on them,
``int()``, ``len()``): the tracer warns, and its warnings are kept
(``trace_warnings``). Under ``auto`` such a trace fails the export, since the
agreement check after it cannot see a branch that no test input takes;
``torchscript``, asked for by name, keeps it with a warning. A trace is also run
on a batch of another size: it declares the batch open whatever it recorded.

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
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import StageError
from harness.text import squeeze

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    import torch

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")
DYNAMO_OPSET = 20
TORCHSCRIPT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class ExportError(StageError):
    """The export failed; the message says why on one line (under ``auto``: ``dynamo: ...; torchscript: ...``)."""

    def __init__(self, message: str):
        super().__init__("export", message)


@dataclass
class ExportResult:
    path: Path
    bytes: int
    opset: int
    exporter: str
    seconds: float
    fallback_reason: str | None = None
    trace_warnings: list[str] | None = None
    """What the TorchScript tracer warned, one distinct line each (``file.py:LINE: message``); None for dynamo."""
    notes: list[str] = field(default_factory=list)
    """One-line warnings for the user: a fallback to TorchScript and why, a trace that may hold one branch only."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "opset": self.opset,
            "exporter": self.exporter,
            "export_seconds": round(self.seconds, 3),
            "fallback_reason": self.fallback_reason,
            "trace_warnings": self.trace_warnings,
        }


def export_onnx(
    model: "torch.nn.Module",
    example: "torch.Tensor",
    path: Path,
    exporter: str = "auto",
    opset: int | None = None,
) -> ExportResult:
    """Write ``model`` (in eval mode, on CPU) to ``path`` with a dynamic batch dimension.

    ``model`` itself is switched to eval mode and moved to the CPU (``nn.Module.eval``/``cpu`` work in
    place): a caller that goes on with it on a GPU moves it back.

    ``example`` is a CPU batch of real inputs (two or more rows, so the batch
    dimension is not specialised to 1). ``exporter`` is ``auto`` (dynamo,
    then TorchScript on failure), ``dynamo`` or ``torchscript``. Raises
    :class:`ExportError` with the reason (each exporter's, under ``auto``).
    """
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
            used_opset, proto = _export_dynamo(model, example, path, opset or DYNAMO_OPSET)
            fixed = fixed_batch_text(proto)
        except Exception as exc:  # noqa: BLE001 - any exporter failure falls back
            _remove_partial(path)
            _raise_if_storage(exc, path)  # a full disk: the other exporter would fail alike, and no model is at fault
            if exporter == "dynamo":
                raise ExportError(export_failure_text(exc)) from exc
            fallback_reason = export_failure_text(exc)
        else:
            rejected = _checker_rejects(path) if fixed is None and exporter == "auto" else None
            if fixed is None and rejected is None:
                return ExportResult(path, onnx_bytes(path), used_opset, "dynamo", time.perf_counter() - start)
            _remove_partial(path)
            if exporter == "dynamo":
                raise ExportError(fixed)
            # a trace may record x.size(0) where torch.export specialised; a graph onnx.checker refuses (torch
            # 2.6's LSTM export, "Inferred shape and existing shape differ") is the trace's to make: run below
            fallback_reason = fixed or rejected

    def failed(reason: str) -> ExportError:
        _remove_partial(path)
        return ExportError(f"dynamo: {fallback_reason}; torchscript: {reason}" if fallback_reason else reason)

    used_opset = opset or TORCHSCRIPT_OPSET
    try:
        traced = _export_torchscript(model, example, path, used_opset)
        fixed = other_batch_text(path, example)
    except Exception as exc:  # noqa: BLE001 - said with the dynamo exporter's reason
        _raise_if_storage(exc, path)
        raise failed(export_failure_text(exc)) from exc
    doubts = [w for w in traced if w.split(": ", 1)[-1].startswith(UNSAFE_TRACE_WARNINGS)]
    if fixed:
        said = fallback_reason and BATCH_ADVICE in fallback_reason  # dynamo's fixed batch, said first
        raise failed(fixed + ("" if said else f": {BATCH_ADVICE}")
                     + (f"; the tracer warned: {squeeze(doubts[0], 200)}" if doubts else ""))
    if doubts and exporter == "auto":
        raise failed(f"{trace_doubt_text(doubts)} (--exporter torchscript keeps such a trace)")
    notes = []
    if fallback_reason:
        notes.append(f"the dynamo exporter failed, so the ONNX file is a TorchScript trace: {fallback_reason}")
    if doubts:
        notes.append(f"{trace_doubt_text(doubts)} (the ONNX check saw only the test split's inputs)")
    return ExportResult(path, onnx_bytes(path), used_opset, "torchscript", time.perf_counter() - start,
                        fallback_reason, traced, notes)


def _raise_if_storage(exc: BaseException, path: Path) -> None:
    """A :class:`StorageError` when ``exc`` is the file system refusing ``path`` (full, read-only)."""
    from harness.errors import StorageError, storage_failure

    refused = storage_failure(exc)
    if refused is not None:
        _remove_partial(path)
        raise StorageError(f"cannot write {path}: {refused.strerror or refused}") from exc


UNSAFE_TRACE_WARNINGS = ("Converting a tensor to a Python boolean", "Using len to get tensor shape",
                         "Iterating over a tensor")
"""How the tracer's warnings begin when the trace may hold one path of the forward: a branch on a tensor
(``if x.mean() > 0``, a Python boolean), ``len(x)``, ``for row in x``. The agreement check cannot see a
branch that no test input takes. ``int()``/``float()`` of a tensor are kept in ``trace_warnings`` but do
not doubt the trace: mostly sizes (``math.sqrt(q.size(-1))`` in attention, fixed for the model), where a
frozen batch is caught by running the trace on another batch size, and a frozen value of the input differs
from input to input, which the agreement check over many inputs sees. Others (``torch.tensor results are
registered as constants``) are kept too."""

BATCH_ADVICE = ("the model turns the batch size into a Python int (len(x), int(x.shape[0]), a loop over the "
                "batch); use x.flatten(1) or x.reshape(x.shape[0], -1)")


def trace_doubt_text(doubts: list[str]) -> str:
    """One line: the trace may hold one branch only, and the first of the tracer's ``doubts``."""
    more = f" (and {len(doubts) - 1} more in onnx.trace_warnings)" if len(doubts) > 1 else ""
    return (f"the trace may hold one branch only and be wrong for other inputs; the tracer warned: "
            f"{squeeze(doubts[0], 200)}{more}")


def fixed_batch_text(model: Any) -> str | None:
    """Why the graph cannot take another batch size, or None: its input's first dimension is a number.

    ``model`` is an ``onnx.ModelProto`` or a path. torch.export specialises the batch it was asked to
    keep dynamic, without a word, once the forward makes a Python int of it; ONNX Runtime then
    refused every other batch at evaluation with "Got invalid dimensions".
    """
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in weights:
            continue
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].dim_param or not dims[0].HasField("dim_value"):
            return None
        shape = ", ".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in dims)
        return f"the exported graph fixes the batch size at {dims[0].dim_value} (input {value.name!r}: [{shape}]): " \
               f"{BATCH_ADVICE}"
    return None


ORT_NODE_FAILED = re.compile(r"Non-zero status code returned while running (\w+) node\. Name:'([^']*)' Status Message: ")
"""How ONNX Runtime starts the error of a node that failed; said as ``Reshape node '/Reshape': ...``."""


def other_batch_text(path: Path, example: "torch.Tensor") -> str | None:
    """What goes wrong when the graph gets a batch one larger than ``example``'s, or None; run in ONNX Runtime.

    A trace declares the batch dynamic whatever it recorded: ``len(x)`` or a loop over the batch freezes
    the example's size inside (a Reshape to 8 rows; 8 rows answered to 9), which the declared shapes do
    not show. A graph that fails at the example's own size too is left to the later stages to say why.
    """
    import numpy as np

    from harness.ort import make_session

    try:
        session = make_session(path, "CPUExecutionProvider", threads=1)
    except Exception:  # noqa: BLE001 - the check stage says why
        return None
    if [i.name for i in session.get_inputs()] != [INPUT_NAME]:
        return None  # a trace that baked the input in: check_onnx says so
    rows = example.detach().cpu().numpy()
    n = len(rows) + 1
    try:
        got = session.run(None, {INPUT_NAME: np.concatenate([rows, rows[:1]])})[0]
    except Exception as exc:  # noqa: BLE001
        try:
            session.run(None, {INPUT_NAME: rows})
        except Exception:  # noqa: BLE001 - not the batch: onnx-eval says why
            return None
        said = ORT_NODE_FAILED.sub(r"\1 node '\2': ", squeeze(exc))
        return f"the exported graph fails on a batch of {n}, having been traced on {n - 1} ({squeeze(said, 120)})"
    if getattr(got, "shape", (n,))[:1] != (n,):
        return f"the exported graph answers a batch of {n} with {got.shape[0] if got.ndim else 'no'} rows, having " \
               f"been traced on {n - 1}"
    return None


GUARD_NOISE = re.compile(r"\s*\((?:unhinted|Size-like symbols):[^()]*(?:\([^()]*\)[^()]*)*\)")
"""What torch.export adds to a data-dependent guard's expression: the same expression again, "unhinted", and
its size-like symbols (``Eq(u0, 1) (unhinted: Eq(u0, 1)).  (Size-like symbols: none)``)."""


def export_failure_text(exc: BaseException, limit: int = 300) -> str:
    """Why an export failed, on one line: the underlying error's first paragraph.

    torch.onnx wraps the real cause in a message that starts with the same advice every time ("This
    is step 1/3 ..."), sometimes twice (ConversionError, then "Error when translating node ...", then
    the DispatchError that names the operator): the innermost ``__cause__`` is the one said. Where that
    is a plain Python error from inside the exporter (torch 2.5: ``TypeError: unhashable type: 'list'``),
    the torch error above it, which names the node, is said first.
    """
    if isinstance(exc, ExportError):  # already the cause, said
        return squeeze(exc, limit)
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    cause, inner = chain[-1], ""
    torch_errors = [e for e in chain[1:-1] if type(e).__module__ != "builtins"]
    if type(cause).__module__ == "builtins" and torch_errors:
        cause, inner = torch_errors[-1], f" ({type(chain[-1]).__name__}: {_first_paragraph(chain[-1])})"
    first = _first_paragraph(cause)
    names = (type(exc).__name__, type(cause).__name__)
    kind = names[0] if cause is exc or names[0] == names[1] else f"{names[0]} ({names[1]})"
    hint = ""
    if names[1] == "GuardOnDataDependentSymNode" or "data-dependent" in first:
        hint = " (the forward takes a tensor's value into Python, e.g. `if x.mean() > 0` or .item(): keep it in " \
               "tensor ops such as torch.where)"
    return squeeze(f"{kind}: {first}{inner}", max(limit - len(hint), 40)) + hint


def _first_paragraph(exc: BaseException) -> str:
    text = GUARD_NOISE.sub("", str(exc).strip().split("\n\n")[0])
    return text.replace(" See the stack trace for more information.", "").strip()


@contextlib.contextmanager
def _exporter_output_to_debug_log() -> Any:
    """Keep what the exporters print (torch.export dumps whole FX graphs to stderr when it gives up) out of
    the terminal and the progress line; it goes to the debug log (``harness --debug``) instead. The
    reason for a fallback is recorded on its own (``fallback_reason``). torch's own log handlers write to
    the stderr they were made with ("Unable to find user code corresponding to {u0}" on a data-dependent
    guard): they write here too meanwhile. So does what native code writes to the process's standard
    output: the TorchScript exporter's C++ dump of its whole graph on an unsupported operator ("Torch IR
    graph at exception: ..."), which torch prints once its exporter has switched its ONNX log on, as every
    export does (torch 2.x reads the log's on-switch function for its state)."""
    printed = io.StringIO()
    loggers = [logger for name, logger in list(logging.Logger.manager.loggerDict.items())
               if (name == "torch" or name.startswith("torch.")) and isinstance(logger, logging.Logger)]
    handlers = list({id(h): h for logger in loggers for h in logger.handlers
                     if type(h) is logging.StreamHandler}.values())  # not a FileHandler
    streams = [h.stream for h in handlers]
    for handler in handlers:  # not setStream, which flushes the old stream: a test's may be closed by now
        handler.stream = printed
    try:
        with _native_stdout_to(printed), contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            yield
    finally:
        for handler, stream in zip(handlers, streams):
            handler.stream = stream
        if printed.getvalue().strip():
            log.debug("the ONNX exporter printed:\n%s", printed.getvalue().rstrip())


@contextlib.contextmanager
def _native_stdout_to(printed: io.StringIO) -> Any:
    """Point the process's file descriptor 1 at a temporary file while the block runs, then append what
    landed there to ``printed``: C and C++ code write to it directly, past ``sys.stdout``. The terminal's
    progress display writes to standard error, and is left alone."""
    try:
        saved = os.dup(1)
    except OSError:  # no standard output at all (a service): nothing to keep clean
        yield
        return
    import tempfile

    try:
        with tempfile.TemporaryFile() as caught:
            _flush_standard_output()
            os.dup2(caught.fileno(), 1)
            try:
                yield
            finally:
                _flush_standard_output()  # C's buffer still holds what a pipe's full buffering kept back
                os.dup2(saved, 1)
                caught.seek(0)
                printed.write(caught.read().decode(errors="replace"))
    finally:
        os.close(saved)


def _flush_standard_output() -> None:
    """Flush Python's standard output and the C library's buffers, so each write lands on the file it was
    meant for when file descriptor 1 is switched."""
    for stream in (sys.__stdout__, sys.stdout):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed
            pass
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, TypeError, AttributeError):  # Windows has no CDLL(None): its C runtime's buffers stay
        pass


_TORCHLIB_REGISTRIES: dict[Any, Any] = {}


def warm_up_exporter(exporter: str = "auto") -> None:
    """Export a one-layer model once, so that the exporter's one-time costs (its imports, tracing caches,
    the op table) fall before the first job's clock rather than in its ``export_seconds``: the first job
    of a process took 1.7 s to export a model the next ones exported in 0.4 s. Best effort: a failure
    here is the job's to meet and say."""
    if exporter not in ("auto", "dynamo"):
        return
    import tempfile

    import torch

    try:
        with tempfile.TemporaryDirectory(prefix="harness-warm-") as folder, torch.random.fork_rng():
            model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)).eval()
            _export_dynamo(model, torch.zeros(2, 1, 4, 4), Path(folder) / "warm.onnx", DYNAMO_OPSET)
    except Exception:  # noqa: BLE001
        log.debug("warming the exporter up failed", exc_info=True)


@contextlib.contextmanager
def _reused_torchlib_registry() -> Any:
    """Build the dynamo exporter's ONNX op table once per process instead of once per export.

    ``torch.onnx.export(dynamo=True)`` calls ``ONNXRegistry.from_torchlib()`` on every export; it re-reads
    the source of about 500 onnxscript functions, 0.6 s a model on a laptop CPU (a third of a small
    job's wall time). The table depends only on its arguments (the opset) and the exporter adds to it
    only for a ``custom_translation_table``, which the harness never passes, so for the harness's own
    export call the first table is handed out again; the files are byte for byte the same. This is
    torch's private API: where it is not there or not as expected, every export builds its own.
    """
    try:
        from torch.onnx._internal.exporter import _registration

        registry_class = _registration.ONNXRegistry
        original = registry_class.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def from_torchlib(cls: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            key = (cls, args, tuple(sorted(kwargs.items())))
            hash(key)
        except TypeError:  # an argument that cannot key a cache (a table of its own): build afresh
            return build(cls, *args, **kwargs)
        if key not in _TORCHLIB_REGISTRIES:
            _TORCHLIB_REGISTRIES[key] = build(cls, *args, **kwargs)
        return _TORCHLIB_REGISTRIES[key]

    registry_class.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        registry_class.from_torchlib = original


def _export_dynamo(model: "torch.nn.Module", example: "torch.Tensor", path: Path, opset: int) -> tuple[int, Any]:
    """Export with torch.export; returns the opset written and the saved ``onnx.ModelProto``."""
    import torch

    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), _exporter_output_to_debug_log(), _reused_torchlib_registry():
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
    used = next((o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    return used, model_proto


def _export_torchscript(model: "torch.nn.Module", example: "torch.Tensor", path: Path, opset: int) -> list[str]:
    """Export with the TorchScript tracer; returns what it warned, one distinct ``file.py:LINE: message`` each.

    Its warnings were once silenced with the rest; a "Converting a tensor to a Python boolean" among
    them is the only sign that the file holds one branch of the forward.
    """
    import torch

    tracer_warning = getattr(torch.jit, "TracerWarning", None)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught, _exporter_output_to_debug_log():
        warnings.simplefilter("ignore")
        if tracer_warning is not None:
            warnings.filterwarnings("always", category=tracer_warning)
            # as torch does: its own modules' tracer warnings are known to be harmless
            warnings.filterwarnings("ignore", category=tracer_warning, module=r"torch\.(?!jit)")
        from harness.ort import utf8_path

        target: Any = str(path) if utf8_path(path) else io.BytesIO()  # written from Python below
        torch.onnx.export(
            model,
            (example,),
            target,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
        if isinstance(target, io.BytesIO):
            path.write_bytes(target.getvalue())
    said: dict[str, None] = {}
    for record in caught:
        if tracer_warning is not None and issubclass(record.category, tracer_warning):
            first = squeeze(record.message).split(". ")[0].rstrip(".")
            said.setdefault(f"{Path(record.filename).name}:{record.lineno}: {first}")
    return list(said)[:20]


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


def read_onnx(path: str | os.PathLike[str]) -> "onnx.ModelProto":
    """The ONNX model at ``path`` without its external data; a ValueError, saying so in one line, when the
    file is not one (protobuf's DecodeError, or an empty file, which decodes as a model with no graph)."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decode error (or an unreadable file) means a bad file
        raise ValueError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from None
    if not model.HasField("graph"):
        empty = "; the file is empty" if not path.stat().st_size else ""
        raise ValueError(f"{path} is not a readable ONNX model (it has no graph{empty})")
    return model


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


def _checker_rejects(path: Path) -> str | None:
    """Why :func:`check_onnx` refuses the file at ``path`` (``onnx.checker rejected it: ...``), or None; a
    full disk is raised, as no exporter would do better."""
    try:
        check_onnx(path)
    except Exception as exc:  # noqa: BLE001 - any refusal sends auto to the other exporter
        _raise_if_storage(exc, path)
        return f"onnx.checker rejected it: {export_failure_text(exc)}"
    return None


def check_onnx(path: Path) -> None:
    """Run ``onnx.checker`` with shape inference (``full_check``) on the file; raises on failure, and on a
    graph that takes no input (a trace that turned the input into a constant)."""
    import onnx

    from harness.ort import utf8_path

    onnx.checker.check_model(os.fspath(path) if utf8_path(path) else onnx.load(os.fspath(path)), full_check=True)
    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    if not [i for i in graph.input if i.name not in weights]:
        raise ValueError("the exported graph takes no input: the exporter turned the input into a constant "
                         "(a forward that leaves torch, e.g. through .item(), .tolist() or numpy, cannot be "
                         "traced)")

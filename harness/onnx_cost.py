"""What one inference of an ONNX graph costs: FLOPs per sample, and the memory its activations need.

FLOPs are counted as :func:`harness.train.count_flops` counts a PyTorch model.

Convolutions (``Conv``, ``ConvTranspose``, their integer and quantised forms), matrix products
(``Gemm``, ``MatMul``, their integer and quantised forms) and recurrent layers (``LSTM``, ``GRU``,
``RNN``: the gates' matrix products at every step, see :func:`_recurrent_flops`) at two operations
per multiply-add; element-wise work, normalisation and pooling are not counted. So an export counts
what the model it came from counts, and ``harness bench`` gives the same figure for any ONNX file.
In a quantised graph the multiply-adds are integer ones; they are counted all the same.

Shapes come from ONNX shape inference with the batch dimension set to 1 and other open dimensions
from ``dims`` (``harness bench --dims h=224,w=224``), else 1 and named in ``assumed``. ONNX Runtime's
fused operators (``FusedConv``, ``FusedGemm``, ``FusedMatMul``, as in an ``ort-opt`` file) are read as
the standard operator they fuse an activation or a scale into, which has the same shapes (and its int8
``DynamicQuantizeLSTM`` as an ``LSTM``); a ``Reshape`` that flattens a computed shape is read as the
``Concat`` it equals, which shape inference follows (see :func:`_flatten_reshapes_as_concat`). A compute
node whose shapes stay unknown (a blocked ``NCHWc`` layout, an operator inside a ``Loop``), and one that
does multiply-adds this module has no formula for (``Einsum``, attention operators), is listed in
``uncounted`` rather than guessed. Local functions are inlined first.

Activation memory is a static estimate at batch 1: the most bytes of tensors alive at once when the
nodes run in order and each tensor is freed after its last reader. Graph inputs and outputs count;
weights, and tensors computed from weights alone (a quantised graph's dequantised weights), do not:
they are the file's size. It is the figure to hold against a device's RAM beside the file size
against its storage. The walk is over the graph as stored, except for a QDQ graph (a static int8
export, ``DequantizeLinear`` -> operator -> ``QuantizeLinear`` around each layer): as stored, its
float tensors between the pairs would make it look no smaller than float32, but every integer
runtime fuses each group into one integer operator, and the float tensors never exist. For such a
graph the walk is over the graph ONNX Runtime makes of it (its extended optimisation level, which
does that fusion), each tensor sized from ONNX Runtime's profile of one run on zeros;
``activation_basis`` then says ``onnxruntime-fused``. A runtime that computes in place needs less;
one that keeps every buffer, more.
"""

from __future__ import annotations

import collections
import heapq
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.text import squeeze

if TYPE_CHECKING:  # pragma: no cover - typing only
    import onnx

log = logging.getLogger(__name__)

# op type -> (index of the data input, index of the weight input); outputs[0] is the result.
CONVOLUTIONS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "FusedConv": (0, 1),
                "NhwcConv": (0, 1)}
TRANSPOSED = {"ConvTranspose": (0, 1)}
MATRIX_PRODUCTS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1),
                   "FusedMatMul": (0, 1), "FusedGemm": (0, 1), "QGemm": (0, 3), "MatMulIntegerToFloat": (0, 1),
                   "DynamicQuantizeMatMul": (0, 1)}
TRANSPOSABLE = {"Gemm", "FusedGemm", "FusedMatMul", "QGemm"}  # take transA / transB
# Recurrent layers: op type -> gates (weight matrices per direction in W and R). ONNX Runtime's int8 LSTM
# (``DynamicQuantizeLSTM``, an int8-dynamic variant's) is read as an LSTM (see STANDARD_FORM).
RECURRENT = {"LSTM": 4, "GRU": 3, "RNN": 1}
COUNTED = set(CONVOLUTIONS) | set(TRANSPOSED) | set(MATRIX_PRODUCTS) | set(RECURRENT)
# Operators that do multiply-adds this module does not count: listed in ``uncounted``, never silently 0.
NOT_COUNTED = {"Einsum", "Attention", "MultiHeadAttention", "QAttention", "MatMulNBits",
               "GroupQueryAttention", "PackedAttention", "DecoderAttention", "MatMulBnb4", "QOrderedMatMul"}
# Operators outside the standard domain known to do no multiply-adds worth counting (element-wise work,
# normalisation, (de)quantisation, layout, pooling), as the standard ones this module leaves out. Any other
# operator of another domain (a custom op, a contrib op not listed) is listed in ``uncounted``: its cost is
# unknown, and a silent 0 would pass a FLOPs gate.
FREE_ELSEWHERE = {"Gelu", "FastGelu", "BiasGelu", "QuickGelu", "BiasAdd", "BiasSoftmax", "BiasDropout",
                  "BiasSplitGelu", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
                  "SimplifiedLayerNormalization", "LayerNormalization", "EmbedLayerNormalization",
                  "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearAdd", "QLinearMul",
                  "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "QLinearGlobalAveragePool",
                  "QLinearConcat", "QLinearSoftmax", "QLinearReduceMean", "NhwcMaxPool", "ReorderInput",
                  "ReorderOutput", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool", "Upsample",
                  "Transpose", "Range"}
DOMAINS = ("", "ai.onnx", "com.microsoft")  # not com.microsoft.nchwc: its blocked weights are padded
# ONNX Runtime's fused operators as the standard one with the same shapes: (op, inputs kept, attributes kept)
STANDARD_FORM = {
    "FusedConv": ("Conv", 3, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}),
    "FusedGemm": ("Gemm", 3, {"alpha", "beta", "transA", "transB"}),
    "FusedMatMul": ("MatMul", 2, set()),  # only without transposes (see _standardise)
    # int8 W and R, stored transposed ([directions, input, 4*hidden]): the same sizes, the same shapes out
    "DynamicQuantizeLSTM": ("LSTM", 8, {"activation_alpha", "activation_beta", "activations", "clip",
                                        "direction", "hidden_size", "input_forget"}),
}
# ONNX Runtime's element-wise activations (a bias, where there is one, broadcast to the input): for
# shapes, the identity of their first input.
SHAPE_PRESERVING = {"Gelu", "FastGelu", "BiasGelu", "QuickGelu"}


@dataclass
class OnnxCost:
    """``flops``: per sample (None when no compute node could be counted); ``uncounted``: the compute
    nodes left out, as ``"OpType name"`` (``flops`` is then a partial count); ``activation_bytes``:
    the peak activation memory at ``batch`` (None when a tensor's size is unknown); ``batch``: the
    batch size counted at (1 unless the graph fixes another)."""

    flops: int | None
    uncounted: list[str] = field(default_factory=list)
    activation_bytes: int | None = None
    batch: int = 1
    error: str | None = None  # why nothing could be counted (an unreadable file...)
    # "graph" (as stored) or "onnxruntime-fused" (a QDQ graph as ONNX Runtime fuses it; see the module)
    activation_basis: str = "graph"
    # Open input dimensions other than the batch that were counted at 1 for want of a value
    # (``input[name]``): the figures are then for that size, e.g. a 1x1 image.
    assumed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"flops": self.flops, "activation_bytes": self.activation_bytes}
        if self.batch != 1:
            out["activation_batch"] = self.batch
        if self.uncounted:
            out["flops_uncounted"] = self.uncounted
        if self.error:
            out["cost_error"] = self.error
        if self.assumed:
            out["assumed_dims_1"] = self.assumed
        if self.activation_basis != "graph":
            out["activation_basis"] = self.activation_basis
        return out


def count_onnx_cost(path: str | Path, dims: dict[str, int] | None = None) -> OnnxCost:
    """:func:`onnx_cost` for reports: any failure to read or count gives None figures, logged at debug
    level (they are information, not a check; the export itself is checked elsewhere)."""
    try:
        return onnx_cost(path, dims)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.debug("counting the cost of %s failed", path, exc_info=True)
        return OnnxCost(None, error=squeeze(f"{type(exc).__name__}: {exc}", 200))


def onnx_cost(model: "str | Path | onnx.ModelProto", dims: dict[str, int] | None = None,
              batch_dim: str | None = None) -> OnnxCost:
    """FLOPs per sample and peak activation bytes of one forward pass of ``model`` (a path or a loaded
    model, which is left as it is). ``dims`` sets named open input dimensions (``{"h": 224}``); any
    other open dimension but the batch is counted at 1 and named in ``assumed``. ``batch_dim`` names the
    batch as ``harness bench --batch-dim`` does (``"N"`` for a time-major input; ``"none"``: the graph has
    no batch, counted per call). A file that is not an ONNX model, or a ``dims`` name no open dimension has, or
    the batch's, is a ValueError."""
    import onnx

    from harness.export import read_onnx

    source: "str | onnx.ModelProto"  # what ONNX Runtime loads for a QDQ graph's fused form
    if isinstance(model, (str, Path)):
        path = Path(model)
        source = str(path)
        model = read_onnx(path)  # a file that is not ONNX: a ValueError that says so
        _load_small_external_data(model, path.parent)
    else:
        source = model
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        model = copy
    if not model.graph.node and not model.graph.output:  # b"" parses as an empty model
        raise ValueError(f"{source if isinstance(source, str) else 'the model'} holds no ONNX graph")
    if dims or batch_dim:
        from harness.shapes import checked_dims

        dims = checked_dims(model.graph, dims, batch_dim)
    _drop_weight_values(model.graph)
    model = _inline_functions(model)
    recorded = _shapes_with_symbols([*model.graph.input, *model.graph.value_info])
    record = list(model.graph.value_info)
    batch, assumed = _fix_input_shapes(model.graph, dict(dims or {}))
    del model.graph.value_info[:]  # shapes recorded with a symbolic batch would win over the inferred ones
    sizes_of = _symbol_sizes(recorded, model.graph.input)
    _sort_nodes(model.graph)
    # What each node reads, taken before _standardise drops a fused operator's extra inputs (FusedConv's
    # residual Z is still read there, and must stay alive until then).
    reads = _reads(model.graph)
    _standardise(model.graph)
    try:
        inferred = _infer_with_record(model, record, recorded, sizes_of)
    except Exception as exc:  # noqa: BLE001 - a graph ONNX cannot infer is still benchmarked
        nodes = [_label(n) for n in model.graph.node if n.op_type in COUNTED | NOT_COUNTED]
        return OnnxCost(None, nodes or [f"shape inference failed: {type(exc).__name__}"], None, batch,
                        assumed=assumed)
    shapes = _known_shapes(inferred.graph)
    if _flatten_reshapes_as_concat(model.graph, shapes):
        try:  # the shapes a flattened shape computation had kept unknown
            inferred = _infer_with_record(model, record, recorded, sizes_of)
            shapes = _known_shapes(inferred.graph)
        except Exception:  # noqa: BLE001 - the first inference's shapes stand
            log.debug("shape inference failed after rewriting flattening Reshapes", exc_info=True)
    _fill_from_recorded(shapes, recorded, sizes_of)
    sizes = _tensor_sizes(inferred.graph, shapes)
    activations, basis = _activation_bytes(inferred.graph, sizes, reads), "graph"
    if _is_qdq(inferred.graph):
        fused = _fused_activation_bytes(source, model.graph)
        if fused is not None:
            activations, basis = fused, "onnxruntime-fused"
    total, counted, uncounted = 0, 0, []
    for node in inferred.graph.node:
        if subgraphs(node):
            if _has_compute(node):
                uncounted.append(_label(node))
            continue
        if node.op_type in NOT_COUNTED:
            uncounted.append(_label(node))
            continue
        if node.op_type not in COUNTED:
            if node.domain not in ("", "ai.onnx") and node.op_type not in FREE_ELSEWHERE:
                uncounted.append(f"{node.domain}.{_label(node)}")
            continue
        if node.domain not in DOMAINS:
            uncounted.append(f"{node.domain}.{_label(node)}")
            continue
        flops = _node_flops(node, shapes)
        if flops is None:
            uncounted.append(_label(node))
        else:
            total += flops
            counted += 1
    flops = None if not counted and uncounted else (total + batch // 2) // batch
    return OnnxCost(flops, uncounted, activations, batch, assumed=assumed, activation_basis=basis)


def _is_qdq(graph: "onnx.GraphProto") -> bool:
    """True when an activation is quantised and dequantised in the graph (a QDQ graph), not only weights."""
    quantised = {name for node in graph.node if node.op_type == "QuantizeLinear" for name in node.output}
    return any(node.op_type == "DequantizeLinear" and node.input and node.input[0] in quantised
               for node in graph.node)


# Bytes per element of the element types ONNX Runtime's profiler names.
PROFILE_ITEM_BYTES = {"float": 4, "double": 8, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int16": 2,
                      "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1}


def _fused_activation_bytes(source: "str | onnx.ModelProto", inputs: "onnx.GraphProto") -> int | None:
    """Peak activation bytes of the graph ONNX Runtime runs for a QDQ model (see the module's docstring);
    None when ONNX Runtime cannot make or run it, or a tensor of it stays unsized. ``inputs``: the stored
    graph with its inputs' shapes fixed (batch 1, ``dims``). The fused graph has tensors of its own (a
    quantised copy moved across a MaxPool), so each tensor is sized from ONNX Runtime's profile of one
    run on zeros (a data-dependent shape, as of ``NonZero``, is then the zeros' one)."""
    import json
    import tempfile

    import numpy as np
    import onnx

    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="harness-cost-") as tmp:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(Path(tmp) / "fused.onnx")
            # weights in a file of their own beside it (else a model with external data cannot be re-read)
            options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                             "fused.bin")
            options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                             "1024")
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / "profile")
            options.intra_op_num_threads = 1
            options.log_severity_level = 4
            named = _with_node_names(source)
            loaded = named if isinstance(named, str) else named.SerializeToString()
            session = ort.InferenceSession(loaded, options, providers=["CPUExecutionProvider"])
            wanted = {i.name for i in session.get_inputs()}
            feeds = {}
            for value in inputs.input:
                if value.name in wanted:
                    tensor_type = value.type.tensor_type
                    feeds[value.name] = np.zeros([d.dim_value for d in tensor_type.shape.dim],
                                                 dtype=onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
            session.run(None, feeds)
            events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
            fused = onnx.load(options.optimized_model_filepath, load_external_data=False)
    except Exception:  # noqa: BLE001 - the stored graph's figure stands
        log.debug("could not make or profile ONNX Runtime's fused graph", exc_info=True)
        return None
    outputs: dict[str, list[Any]] = {}
    for event in events if isinstance(events, list) else []:
        name = str(event.get("name", ""))
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            shapes = (event.get("args") or {}).get("output_type_shape")
            outputs[name.removesuffix("_kernel_time")] = shapes if isinstance(shapes, list) else []
    sizes: dict[str, int | None] = {name: int(feed.nbytes) for name, feed in feeds.items()}
    names = collections.Counter(node.name for node in fused.graph.node)
    for node in fused.graph.node:
        produced = [name for name in node.output if name]
        shapes = outputs.get(node.name) if names[node.name] == 1 else None
        for index, name in enumerate(produced):
            sizes[name] = _profiled_bytes(shapes[index]) if shapes and len(shapes) == len(produced) else None
    _sort_nodes(fused.graph)
    return _activation_bytes(fused.graph, sizes, _reads(fused.graph))


def _with_node_names(source: "str | onnx.ModelProto") -> "str | onnx.ModelProto":
    """``source``, or where a node has no name or another's a copy with every node named: ONNX Runtime's
    profile tells nodes apart by name."""
    import onnx

    model = onnx.load(source, load_external_data=False) if isinstance(source, str) else source
    names = [node.name for node in model.graph.node]
    if all(names) and len(set(names)) == len(names):
        return source
    if isinstance(source, str):
        model = onnx.load(source)  # its weights too: it goes to ONNX Runtime as bytes
    else:
        model = onnx.ModelProto()
        model.CopyFrom(source)
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}_harness"
        seen.add(node.name)
    return model


def _profiled_bytes(entry: Any) -> int | None:
    """Bytes of one output in ONNX Runtime's profile (``{"uint8": [1, 32, 28, 28]}``); None for what it
    is not (a sequence, an unknown type)."""
    if not isinstance(entry, dict) or len(entry) != 1:
        return None
    ((kind, shape),) = entry.items()
    if kind not in PROFILE_ITEM_BYTES or not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
        return None
    return math.prod(shape) * PROFILE_ITEM_BYTES[kind]


SMALL_EXTERNAL = 1 << 16  # bytes: an external tensor this small or of an integer type is read (shapes live there)


def _load_small_external_data(model: "onnx.ModelProto", base_dir: Path) -> None:
    """Read the external data of integer and small tensors, which shape inference may need (a Reshape's
    target shape); the large weights stay on disk, only their dimensions are needed."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    integers = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        length = next((int(e.value) for e in tensor.external_data if e.key == "length"), None)
        if tensor.data_type in integers or (length is not None and length <= SMALL_EXTERNAL):
            try:
                load_external_data_for_tensor(tensor, str(base_dir))
                tensor.data_location = onnx.TensorProto.DEFAULT
                del tensor.external_data[:]
            except Exception:  # noqa: BLE001 - a missing file leaves that shape unknown, nothing worse
                log.debug("could not read the external data of %s", tensor.name, exc_info=True)


def _drop_weight_values(graph: "onnx.GraphProto") -> None:
    """Forget the values of large floating-point weights: shape inference needs only their dimensions, and
    it serialises the whole model (a copy of every weight) otherwise. Integer and small tensors, which
    can hold shapes, are kept."""
    import onnx

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
              onnx.TensorProto.DOUBLE}
    for tensor in graph.initializer:
        if tensor.data_type in floats and math.prod(tensor.dims) > 1024:
            for field_name in ("raw_data", "float_data", "double_data", "int32_data"):
                tensor.ClearField(field_name)


def _inline_functions(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """The model with its local functions inlined, so their convolutions and products are counted."""
    if not model.functions:
        return model
    try:
        from onnx.inliner import inline_local_functions

        return inline_local_functions(model)
    except Exception:  # noqa: BLE001 - an older onnx or a function it cannot inline: counted as a node
        log.debug("could not inline the model's local functions", exc_info=True)
        return model


def _fix_input_shapes(graph: "onnx.GraphProto", dims: dict[str, int]) -> tuple[int, list[str]]:
    """Give every graph input concrete dimensions as :mod:`harness.shapes` rules: the batch axis 1 unless
    the graph fixes it; other open ones from ``dims``, else 1. Returns the batch size counted at (the
    graph's fixed one, else 1) and the open dimensions set to 1 for want of a value, as ``input[dimension]``."""
    from harness.shapes import graph_shapes, plan_inputs

    shapes = graph_shapes(graph)
    plan = plan_inputs(shapes, dims)
    batch = plan.fixed_batch or 1
    for value in graph.input:
        if value.name in shapes:
            concrete = plan.shape(value.name, shapes[value.name], batch, dims)
            for dim, size in zip(value.type.tensor_type.shape.dim, concrete):
                dim.Clear()
                dim.dim_value = size
    return batch, plan.assumed(shapes, dims)


def _standardise(graph: "onnx.GraphProto") -> None:
    """Rewrite ONNX Runtime's fused operators and activations in place as standard ones that ONNX's shape
    inference knows (an element-wise activation or a scale changes neither a shape nor the multiply-adds)."""
    for node in graph.node:
        if node.domain != "com.microsoft":
            continue
        if node.op_type in SHAPE_PRESERVING and len(node.output) == 1:
            del node.input[1:]
            del node.attribute[:]
            node.op_type, node.domain = "Identity", ""
            continue
        form = STANDARD_FORM.get(node.op_type)
        if form is None:
            continue
        if node.op_type == "FusedMatMul" and any(
                a.i for a in node.attribute if a.name in ("transA", "transB", "transBatchA", "transBatchB")):
            continue  # transposed operands: counted as it is (see _node_flops); its output shape stays unknown
        op, inputs, attributes = form
        kept = [a for a in node.attribute if a.name in attributes]
        del node.input[inputs:]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.op_type, node.domain = op, ""


def _flatten_reshapes_as_concat(graph: "onnx.GraphProto", shapes: dict[str, list[int]]) -> bool:
    """Where a tensor's shape is still unknown, rewrite in place each ``Reshape(x, [-1])`` of a 1-D ``x`` as
    ``Concat(x)``, the same tensor; True when one was. ONNX's shape inference carries a shape's values
    through Concat but not through Reshape, and the dynamo exporter computes the shape that merges an
    ``LSTM``'s or ``GRU``'s two directions with such a Reshape, so the recurrent layer after it and the
    head's product had no shape and went uncounted."""
    import onnx
    from onnx import numpy_helper

    outputs = [name for node in graph.node for name in node.output if name]
    if all(name in shapes for name in outputs):
        return False
    flat = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT64 and list(t.dims) == [1]
            and numpy_helper.to_array(t).tolist() == [-1]}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            if tensor.data_type == onnx.TensorProto.INT64 and list(tensor.dims) == [1] \
                    and numpy_helper.to_array(tensor).tolist() == [-1]:
                flat.add(node.output[0])
    rewritten = False
    for node in graph.node:
        if (node.op_type == "Reshape" and node.domain in ("", "ai.onnx") and len(node.input) == 2
                and node.input[1] in flat and len(shapes.get(node.input[0], [])) == 1):
            del node.input[1:]
            del node.attribute[:]
            node.op_type = "Concat"
            node.attribute.append(onnx.helper.make_attribute("axis", 0))
            rewritten = True
    return rewritten


def _sort_nodes(graph: "onnx.GraphProto") -> None:
    """Put the nodes in an order where each comes after what it reads (ONNX Runtime does not need that,
    and tools that append nodes, such as the float16 converter's input casts, do not keep it; shape
    inference goes in node order). Nodes whose inputs are never produced keep their place at the end."""
    import onnx

    available = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    missing: list[int] = []
    waiting: dict[str, list[int]] = {}
    ready: list[int] = []  # a heap of indexes: of the nodes ready, the earliest stored goes first, so a
    # graph already in order keeps its order exactly (the memory walk depends on it)
    for index, node in enumerate(graph.node):
        needed = {name for name in [*node.input, *_outer_names(node)] if name not in available}
        missing.append(len(needed))
        for name in needed:
            waiting.setdefault(name, []).append(index)
        if not needed:
            heapq.heappush(ready, index)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for name in graph.node[index].output:
            for consumer in waiting.pop(name, []):
                missing[consumer] -= 1
                if missing[consumer] == 0:
                    heapq.heappush(ready, consumer)
    placed = set(order)
    order += [i for i in range(len(graph.node)) if i not in placed]
    if order == list(range(len(graph.node))):
        return
    nodes = []
    for index in order:
        node = onnx.NodeProto()
        node.CopyFrom(graph.node[index])
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _reads(graph: "onnx.GraphProto") -> list[list[str]]:
    """What each node of ``graph`` reads: its inputs, and the names its subgraphs read from outside them."""
    return [[name for name in node.input if name] + sorted(_outer_names(node)) for node in graph.node]


def _shapes_with_symbols(values: Sequence[Any]) -> dict[str, list[int | str]]:
    """Each value's shape as recorded, a named open dimension as its name (``s0``); values with a dimension
    neither known nor named are left out."""
    found: dict[str, list[int | str]] = {}
    for value in values:
        if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            continue
        dims: list[int | str] = []
        for d in value.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                break
        else:
            found[value.name] = dims
    return found


def _symbol_sizes(recorded: dict[str, list[int | str]], inputs: Sequence[Any]) -> dict[str, int]:
    """The size each named open input dimension (``s0``, the batch) was given by :func:`_fix_input_shapes`."""
    sizes: dict[str, int] = {}
    for value in inputs:
        for named, dim in zip(recorded.get(value.name, []), value.type.tensor_type.shape.dim):
            if isinstance(named, str) and dim.HasField("dim_value"):
                sizes.setdefault(named, dim.dim_value)
    return sizes


def _resolved(dims: list[int | str], sizes: dict[str, int]) -> list[int] | None:
    """``dims`` with each named dimension at its size; None when one has none."""
    if not all(isinstance(d, int) or d in sizes for d in dims):
        return None
    return [d if isinstance(d, int) else sizes[d] for d in dims]


def _infer_with_record(model: "onnx.ModelProto", record: list[Any], recorded: dict[str, list[int | str]],
                       sizes: dict[str, int]) -> "onnx.ModelProto":
    """ONNX's shape inference of ``model``, given the exporter's own record of intermediate shapes (``record``,
    its value_info) with each named dimension at the size the inputs were given: torch 2.6's exporter (the
    floor) computes a flattening Reshape's target through ops data propagation stops at, and every Gemm
    after it, and in a quantized variant every MatMulInteger, went uncounted. A record inference disagrees
    with (an exporter's shape a quantizer changed) is left out: inference runs again without it."""
    import onnx

    hinted = onnx.ModelProto()
    hinted.CopyFrom(model)
    for value in record:
        dims = _resolved(recorded.get(value.name, []), sizes) if value.name in recorded else None
        if dims is None:
            continue
        copy = hinted.graph.value_info.add()
        copy.CopyFrom(value)
        for dim, size in zip(copy.type.tensor_type.shape.dim, dims):
            dim.Clear()
            dim.dim_value = size
    if len(hinted.graph.value_info):
        try:
            return onnx.shape_inference.infer_shapes(hinted, check_type=False, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - the record disagrees with the graph: inference alone
            log.debug("shape inference with the recorded shapes failed; inferring without them", exc_info=True)
    return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)


def _fill_from_recorded(shapes: dict[str, list[int]], recorded: dict[str, list[int | str]],
                        sizes: dict[str, int]) -> None:
    """Add to ``shapes`` the recorded shapes of the tensors inference still left unknown (see
    :func:`_infer_with_record`), each named dimension at its size."""
    for name, dims in recorded.items():
        resolved = _resolved(dims, sizes) if name not in shapes else None
        if resolved is not None:
            shapes[name] = resolved


def _known_shapes(graph: "onnx.GraphProto") -> dict[str, list[int]]:
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def _activation_bytes(graph: "onnx.GraphProto", sizes: dict[str, int | None], reads: list[list[str]]) -> int | None:
    """The peak activation memory of ``graph`` run in node order (see the module's docstring); None
    when the size of a tensor that counts is unknown. ``sizes``: bytes by tensor name (see
    :func:`_tensor_sizes`); ``reads[i]``: every name node ``i`` reads, its subgraphs' reads from outside
    them included."""
    weights = {t.name for t in graph.initializer} | {""}
    weight_nodes: set[int] = set()
    last_reader: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant" or (reads[index] and all(name in weights for name in reads[index])):
            weights.update(node.output)  # computed from weights alone: folded into a weight by a runtime
            weight_nodes.add(index)
            continue
        for name in reads[index]:
            last_reader[name] = index
    outputs = {v.name for v in graph.output}
    live: dict[str, int] = {}
    for value in graph.input:
        if value.name not in weights:
            if sizes.get(value.name) is None:
                return None
            live[value.name] = sizes[value.name]
    total = peak = sum(live.values())
    for index, node in enumerate(graph.node):
        if index in weight_nodes:
            continue
        for name in node.output:
            if name and name not in live:
                if sizes.get(name) is None:
                    return None
                live[name] = sizes[name]
                total += sizes[name]
        peak = max(peak, total)
        for name in [*reads[index], *node.output]:
            if name in live and name not in outputs and last_reader.get(name, -1) <= index:
                total -= live.pop(name)
    return peak


SUB_BYTE_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}  # packed, several to a byte


def _tensor_sizes(graph: "onnx.GraphProto", shapes: dict[str, list[int]]) -> dict[str, int | None]:
    """Bytes of each tensor with a known shape and element type (None for an element type this onnx
    does not know)."""
    import onnx

    sizes: dict[str, int | None] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        shape = shapes.get(value.name)
        if shape is None or not value.type.HasField("tensor_type") or not value.type.tensor_type.elem_type:
            continue
        elem = value.type.tensor_type.elem_type
        try:
            bits = SUB_BYTE_BITS.get(onnx.TensorProto.DataType.Name(elem))
            if bits is None:
                bits = 8 * onnx.helper.tensor_dtype_to_np_dtype(elem).itemsize
        except (KeyError, ValueError, TypeError):
            sizes[value.name] = None
            continue
        sizes[value.name] = -(-math.prod(shape) * bits // 8)
    return sizes


def _outer_names(node: "onnx.NodeProto") -> set[str]:
    """Names a node's subgraphs (an ``If``'s branches, a ``Loop``'s body) read from the graph around them."""
    found: set[str] = set()
    for graph in subgraphs(node):
        own = {v.name for v in graph.input} | {t.name for t in graph.initializer}
        for inner in graph.node:
            own.update(inner.output)
        for inner in graph.node:
            found.update(name for name in [*inner.input, *_outer_names(inner)] if name and name not in own)
    return found


def _has_compute(node: "onnx.NodeProto") -> bool:
    return any(inner.op_type in COUNTED or _has_compute(inner) for graph in subgraphs(node) for inner in graph.node)


def subgraphs(node: "onnx.NodeProto") -> list["onnx.GraphProto"]:
    """The graphs a node's attributes hold (an ``If``'s branches, a ``Loop``'s or ``Scan``'s body)."""
    import onnx

    found = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            found.append(attribute.g)
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            found.extend(attribute.graphs)
    return found


def _label(node: "onnx.NodeProto") -> str:
    """How an uncounted node is named: ``OpType name``."""
    return f"{node.op_type} {node.name}".strip()


def _attribute(node: "onnx.NodeProto", name: str, default: int = 0) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return default


def _shape(node: "onnx.NodeProto", shapes: dict[str, list[int]], index: int) -> list[int] | None:
    return shapes.get(node.input[index]) if index < len(node.input) and node.input[index] else None


def _node_flops(node: "onnx.NodeProto", shapes: dict[str, list[int]]) -> int | None:
    op = node.op_type
    if op in RECURRENT:
        return _recurrent_flops(node, shapes)
    if op in CONVOLUTIONS:
        weight = _shape(node, shapes, CONVOLUTIONS[op][1])
        out = shapes.get(node.output[0])
        if weight is None or out is None:
            return None
        # Each output element (in any layout) is a dot product over (in_channels / groups) x kernel:
        # weight.shape[1:].
        return 2 * math.prod(out) * math.prod(weight[1:])
    if op in TRANSPOSED:
        data, weight = (_shape(node, shapes, i) for i in TRANSPOSED[op])
        if data is None or weight is None:
            return None
        # Each input element is scattered over (out_channels / groups) x kernel outputs.
        return 2 * math.prod(data) * math.prod(weight[1:])
    a_index, b_index = MATRIX_PRODUCTS[op]
    a, b = _shape(node, shapes, a_index), _shape(node, shapes, b_index)
    if a is None or b is None or not a or not b:
        return None
    if op in TRANSPOSABLE:
        if _attribute(node, "transA"):
            a = a[:-2] + [a[-1], a[-2]] if len(a) >= 2 else a
        if _attribute(node, "transB"):
            b = b[:-2] + [b[-1], b[-2]] if len(b) >= 2 else b
    a = [1, a[0]] if len(a) == 1 else a  # numpy's matmul: a vector is a row on the left...
    b = [b[0], 1] if len(b) == 1 else b  # ...and a column on the right
    m, k, n = a[-2], a[-1], b[-1]
    batch = _broadcast(a[:-2], b[:-2])
    if batch is None:
        return None
    return 2 * math.prod(batch) * m * k * n


def _recurrent_flops(node: "onnx.NodeProto", shapes: dict[str, list[int]]) -> int | None:
    """An ``LSTM``, ``GRU`` or ``RNN`` node: at every time step, for every sample and direction, each gate's
    input weights (``gates*hidden x input`` of W) and recurrent weights (``gates*hidden x hidden`` of R) are a
    matrix-vector product, so ``2 * seq * batch * directions * gates * hidden * (input + hidden)``, which is
    ``2 * seq * batch * (size of W + size of R)``: what ``torch.utils.flop_counter`` counts of an ``nn.GRU``
    or ``nn.RNN``'s matrix products. Gate activations, the cell's element-wise updates, biases and peepholes
    are element-wise work, not counted as elsewhere. X is ``[seq, batch, input]`` (``layout`` 0) or ``[batch,
    seq, input]`` (``layout`` 1); every step up to ``seq`` is counted, whatever ``sequence_lens`` says
    (the padded sequence, as PyTorch counts a padded batch). None when X's shape is unknown."""
    x = _shape(node, shapes, 0)
    if x is None or len(x) != 3:
        return None
    seq, batch, inputs = (x[1], x[0], x[2]) if _attribute(node, "layout") == 1 else (x[0], x[1], x[2])
    gates = RECURRENT[node.op_type]
    hidden = _attribute(node, "hidden_size")
    directions = 2 if _string_attribute(node, "direction") == "bidirectional" else 1
    weights = []
    for index, inner in ((1, inputs), (2, hidden)):  # W: [directions, gates*hidden, input]; R: [..., hidden]
        shape = _shape(node, shapes, index)
        if shape is not None and len(shape) == 3:
            weights.append(math.prod(shape))
        elif hidden > 0:  # a weight computed at run time: its size from the attributes
            weights.append(directions * gates * hidden * inner)
        else:
            return None
    return 2 * seq * batch * sum(weights)


def _string_attribute(node: "onnx.NodeProto", name: str, default: str = "") -> str:
    for attribute in node.attribute:
        if attribute.name == name:
            return attribute.s.decode("utf-8", "replace")
    return default


def _broadcast(x: list[int], y: list[int]) -> list[int] | None:
    width = max(len(x), len(y))
    x, y = [1] * (width - len(x)) + x, [1] * (width - len(y)) + y
    out = []
    for p, q in zip(x, y):
        if p != q and 1 not in (p, q):
            return None
        out.append(max(p, q))
    return out

"""The cost of an ONNX graph: FLOPs (the same count as the PyTorch model's) and peak activation memory."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import run_cli
from onnx import TensorProto, helper, numpy_helper

from harness.export import ExportError, export_onnx
from harness.onnx_cost import count_onnx_cost, onnx_cost
from harness.registry import build_registry
from harness.train import count_flops

# One of each kind of layer the built-in families use: linear layers, attention gates, 3D and
# residual convolutions, two pathways, GELU and a scaled matmul head.
MODELS = {"mnist-mlp": (1, 28, 28), "mnist-lightweight-attention": (1, 28, 28), "cnn3d-resnet": (1, 16, 16, 16),
          "mwnn-dual": (3, 28, 28), "mnist-fast": (1, 28, 28)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flops")
    models = build_registry().models
    found = {}
    for name, shape in MODELS.items():
        torch.manual_seed(0)
        model = models[name].build(num_classes=10, input_shape=shape).eval()
        example = torch.randn(4, *shape)
        export_onnx(model, example, folder / f"{name}.onnx", exporter="auto")  # as a run exports
        found[name] = (folder / f"{name}.onnx", count_flops(model, example))
    return found


@pytest.mark.parametrize("name", list(MODELS))
def test_an_export_counts_what_its_model_counts(exported, name):
    path, in_torch = exported[name]
    counted = onnx_cost(path)
    assert counted.uncounted == [] and in_torch and counted.flops == in_torch


@pytest.mark.parametrize("variant", ["ort-opt", "int8-dynamic", "int8-static", "fp16"])
@pytest.mark.parametrize("name", ["mnist-fast", "mnist-lightweight-attention", "cnn3d-resnet"])
def test_every_variant_counts_what_its_fp32_export_counts(exported, name, variant, tmp_path):
    from harness.variants import BUILDERS

    path, in_torch = exported[name]
    target = tmp_path / f"{variant}.onnx"
    BUILDERS[variant](path, target, torch.randn(32, *MODELS[name]).numpy(), 0)
    counted = onnx_cost(target)
    assert counted.uncounted == [] and counted.flops == in_torch


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _weight(name, shape):
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def test_grouped_and_transposed_convolutions_gemm_and_broadcast_matmul():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 10, 10])
    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, ["n", 3, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], group=4, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["c1", "w2"], ["c2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w3"], ["y"], transB=1),
        helper.make_node("MatMul", ["q", "w4"], ["z"]),  # (n, 3, 5, 6) @ (6, 7)
    ]
    weights = [_weight("w1", (16, 2, 3, 3)), _weight("w2", (16, 4, 2, 2)), _weight("w3", (10, 4)),
               _weight("w4", (6, 7))]
    counted = onnx_cost(_model(nodes, [x, q], [y, z], weights))
    conv = 2 * (16 * 10 * 10) * (2 * 3 * 3)  # each output: in_channels / groups x kernel multiply-adds
    transposed = 2 * (16 * 10 * 10) * (4 * 2 * 2)  # each input element: out_channels x kernel
    gemm = 2 * 4 * 10
    matmul = 2 * 3 * 5 * 6 * 7
    assert counted.uncounted == [] and counted.flops == conv + transposed + gemm + matmul


def test_onnx_runtimes_fused_operators_count_as_the_standard_ones_and_node_order_does_not_matter():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    ms = "com.microsoft"
    nodes = [  # listed backwards, as a tool that appends nodes may leave them
        helper.make_node("FusedMatMul", ["g", "w3"], ["y"], domain=ms, alpha=0.5),
        helper.make_node("FusedGemm", ["f", "w2"], ["g"], domain=ms, transB=1, activation="Relu"),
        helper.make_node("Flatten", ["a"], ["f"]),
        helper.make_node("Gelu", ["c"], ["a"], domain=ms),
        helper.make_node("FusedConv", ["x", "w1"], ["c"], domain=ms, kernel_shape=[3, 3], activation="Relu"),
    ]
    model = _model(nodes, [x], [y], [_weight("w1", (4, 2, 3, 3)), _weight("w2", (5, 64)), _weight("w3", (5, 3))])
    model.opset_import.append(helper.make_opsetid(ms, 1))
    counted = onnx_cost(model)
    conv, gemm, matmul = 2 * (4 * 4 * 4) * (2 * 3 * 3), 2 * 64 * 5, 2 * 5 * 3
    assert counted.uncounted == [] and counted.flops == conv + gemm + matmul
    assert [n.op_type for n in model.graph.node][0] == "FusedMatMul"  # the caller's model is left as it was


def test_a_static_batch_is_divided_out_and_vectors_follow_numpy():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, [6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("MatMul", ["v", "w"], ["z"])]
    counted = onnx_cost(_model(nodes, [x, v], [y, z], [_weight("w", (6, 5))]))
    assert counted.batch == 4 and counted.flops == round((2 * 4 * 6 * 5 + 2 * 6 * 5) / 4)


def test_what_cannot_be_counted_is_named_not_guessed(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    blocked = helper.make_node("Conv", ["x", "w"], ["c"], domain="com.microsoft.nchwc", name="blocked")
    unknown = helper.make_node("Mystery", ["x"], ["m"], domain="example.custom", name="mystery")
    after = helper.make_node("MatMul", ["m", "w"], ["y"], name="after")  # its input's shape is unknown
    model = _model([blocked, unknown, after], [x], [y], [_weight("w", (6, 5))])
    model.opset_import.extend([helper.make_opsetid("com.microsoft.nchwc", 1), helper.make_opsetid("example.custom", 1)])
    counted = onnx_cost(model)
    # a custom operator's cost is unknown: named, not counted as 0 (a FLOPs gate would pass it)
    assert counted.flops is None and counted.uncounted == ["com.microsoft.nchwc.Conv blocked",
                                                           "example.custom.Mystery mystery", "MatMul after"]
    (tmp_path / "empty.onnx").write_bytes(b"")  # parses as an empty model: not 0 FLOPs
    with pytest.raises(ValueError, match="it has no graph; the file is empty"):
        onnx_cost(tmp_path / "empty.onnx")
    with pytest.raises(ValueError, match="holds no ONNX graph"):
        onnx_cost(onnx.ModelProto())
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"bad.onnx is not a readable ONNX model \(DecodeError\)"):
        onnx_cost(tmp_path / "bad.onnx")  # as the README says; was protobuf's DecodeError
    assert counted.activation_bytes is None  # the custom operator's output has no known size
    assert count_onnx_cost(tmp_path / "bad.onnx").flops is None


def test_bench_reports_the_flops_per_sample(exported):
    path, in_torch = exported["mnist-mlp"]
    result = run_cli("bench", str(path), "--min-runs", "3", "--min-time", "0", "--warmup", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["flops"] == in_torch
    text = run_cli("bench", str(path), "--min-runs", "3", "--min-time", "0", "--warmup", "0")
    assert f"{in_torch / 1e6:,.2f} MFLOPs per sample" in text.stdout


def _activation_graph(batch):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 4, 4])  # 128 bytes a sample
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    half = numpy_helper.from_array(np.ones((4, 2, 1, 1), dtype=np.float16), "w16")
    nodes = [
        helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT),  # from a weight alone: a weight
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Conv", ["r", "w"], ["c"]),  # 256 bytes a sample
        helper.make_node("Concat", ["x", "c"], ["s"], axis=1),  # 384
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    return _model(nodes, [x], [y], [half])


def test_activation_memory_is_the_peak_of_the_tensors_alive_at_once():
    # x stays alive until Concat reads it: x + r + c while Conv runs (512), x + c + s while Concat runs.
    counted = onnx_cost(_activation_graph("n"))
    assert counted.activation_bytes == 128 + 256 + 384 and counted.batch == 1
    assert "activation_batch" not in counted.to_dict()
    fixed = onnx_cost(_activation_graph(3))  # a graph with a static batch is measured at that batch
    assert fixed.activation_bytes == 3 * (128 + 256 + 384) and fixed.to_dict()["activation_batch"] == 3


def test_a_tensor_a_subgraph_reads_stays_alive_until_that_node():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])  # 128 bytes
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])  # 1 byte
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    branch_out = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2, 4, 4])
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["b"])], "then", [], [branch_out])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["b"])], "else", [], [branch_out])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("If", ["cond"], ["i"], then_branch=then, else_branch=other),
             helper.make_node("Add", ["r", "i"], ["y"])]
    counted = onnx_cost(_model(nodes, [x, cond], [y]))
    # x (read inside the branches) + cond + r + the If's output, while the If runs
    assert counted.activation_bytes == 128 + 1 + 128 + 128


def test_bench_reports_activation_memory(exported):
    path, _ = exported["mnist-mlp"]
    result = run_cli("bench", str(path), "--min-runs", "3", "--min-time", "0", "--warmup", "0", "--json")
    assert result.returncode == 0, result.stderr
    # The input (784 floats) and its flattened copy are the largest pair alive at once.
    assert json.loads(result.stdout)["activation_bytes"] == 2 * 784 * 4


def test_a_graph_in_order_is_walked_in_its_own_order():
    # Two branches from x, each a large Tile then a small ReduceSum: stored branch after branch, one
    # large tensor is alive at a time; interleaved (both Tiles first), both would be.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    repeats = numpy_helper.from_array(np.array([1000, 1], dtype=np.int64), "k")
    nodes = [helper.make_node("Tile", ["x", "k"], ["a1"]), helper.make_node("ReduceSum", ["a1"], ["a2"], keepdims=0),
             helper.make_node("Tile", ["x", "k"], ["b1"]), helper.make_node("ReduceSum", ["b1"], ["b2"], keepdims=0),
             helper.make_node("Add", ["a2", "b2"], ["y"])]
    counted = onnx_cost(_model(nodes, [x], [y], [repeats], opset=13))
    tile = 1000 * 4 * 4
    assert counted.activation_bytes == 16 + tile + 4  # x, one tile and its sum


def test_a_node_with_an_omitted_first_output_still_holds_its_others():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 8])  # sequence, batch, features
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weights = [_weight("W", (1, 16, 8)), _weight("R", (1, 16, 4))]
    nodes = [helper.make_node("LSTM", ["x", "W", "R"], ["", "h"], hidden_size=4),  # Y omitted, Y_h kept
             helper.make_node("Relu", ["h"], ["y"])]
    counted = onnx_cost(_model(nodes, [x], [y], weights))
    assert counted.activation_bytes == 5 * 8 * 4 + 4 * 4  # x while the LSTM writes h
    # its multiply-adds: counted, every step of its batch of 1 (the graph's fixed first dimension, 5, is read
    # as the batch: per call, as it is, 2 * 5 steps * (W + R))
    assert counted.uncounted == [] and counted.flops * counted.batch == 2 * 5 * (16 * 8 + 16 * 4)


def test_a_fused_convolutions_residual_input_stays_alive_until_it_is_read():
    ms = "com.microsoft"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])  # 512 bytes
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Relu", ["x"], ["z"]),
             helper.make_node("Relu", ["x"], ["b"]),
             helper.make_node("FusedConv", ["b", "w", "", "z"], ["y"], domain=ms, kernel_shape=[1, 1],
                              activation="Relu")]
    model = _model(nodes, [x], [y], [_weight("w", (2, 2, 1, 1))])
    model.opset_import.append(helper.make_opsetid(ms, 1))
    # x, z and b while the second Relu runs, then z, b and y: 3 x 512. Had z been let go after its Relu
    # (the fused convolution's residual input dropped from its reads), the peak would be 2 x 512.
    assert onnx_cost(model).activation_bytes == 3 * 512


def test_einsum_and_local_functions_are_not_silently_zero():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    einsum = _model([helper.make_node("Einsum", ["x", "w"], ["y"], equation="bij,jk->bik")], [x], [y],
                    [_weight("w", (4, 5))], opset=13)
    assert onnx_cost(einsum).flops is None and onnx_cost(einsum).uncounted[0].startswith("Einsum")
    function = helper.make_function("local", "Product", ["a", "b"], ["c"], [helper.make_node("MatMul", ["a", "b"], ["c"])],
                                    [helper.make_opsetid("", 17)])
    call = _model([helper.make_node("Product", ["x", "w"], ["y"], domain="local")], [x], [y], [_weight("w", (4, 5))])
    call.opset_import.append(helper.make_opsetid("local", 1))
    call.functions.append(function)
    assert onnx_cost(call).flops == 2 * 3 * 4 * 5


def test_shape_tensors_kept_in_external_data_are_read(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    shape = numpy_helper.from_array(np.array([-1, 2, 4], dtype=np.int64), "shape")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Reshape", ["a", "shape"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    model = _model(nodes, [x], [y], [_weight("w", (4, 8)), shape, _weight("w2", (4, 3))])
    inline = onnx_cost(model)
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.bin", size_threshold=0)
    external = onnx_cost(tmp_path / "m.onnx")
    assert external.flops == inline.flops == 2 * 4 * 8 + 2 * 2 * 4 * 3 and external.uncounted == []
    assert external.activation_bytes == inline.activation_bytes is not None


def test_packed_and_unknown_element_types():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scale = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "s")
    q = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"])]
    int4_zero = helper.make_tensor("zp", TensorProto.INT4, [], [0])
    packed = onnx_cost(_model(q, [x], [y], [scale, int4_zero], opset=21))
    assert packed.activation_bytes == 24 + 3  # x and q, or q and y: six 4-bit values take 3 bytes
    unknown = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], [_weight("w", (6, 2))])
    unknown.graph.output[0].type.tensor_type.elem_type = 999  # a type from a newer onnx
    unknown.graph.output[0].type.tensor_type.shape.dim.add().dim_value = 1
    assert onnx_cost(unknown).flops == 2 * 6 * 2  # the FLOPs survive an unknown element type


def test_open_input_dimensions_take_dims_or_are_named_as_assumed():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "k"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], [_weight("w", (6, 5))])
    sized = onnx_cost(model, {"k": 6})
    assert sized.flops == 2 * 6 * 5 and sized.assumed == [] and "assumed_dims_1" not in sized.to_dict()
    unsized = onnx_cost(model)  # k = 1 cannot multiply a 6x5 matrix: nothing counted, and said why
    assert unsized.assumed == ["x[k]"] and unsized.to_dict()["assumed_dims_1"] == ["x[k]"]


def _qdq_conv_graph():
    """x -> Q -> DQ -> Conv (8 channels) -> Q -> DQ -> Conv (1 channel) -> Q -> DQ -> y, int8 weights."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])  # 256 bytes
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scale = numpy_helper.from_array(np.array(0.05, dtype=np.float32), "s")
    zero = numpy_helper.from_array(np.array(128, dtype=np.uint8), "z")
    wzero = numpy_helper.from_array(np.array(0, dtype=np.int8), "wz")
    w1 = numpy_helper.from_array(np.ones((8, 1, 3, 3), dtype=np.int8), "w1")
    w2 = numpy_helper.from_array(np.ones((1, 8, 3, 3), dtype=np.int8), "w2")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
    for i, w in ((1, "w1"), (2, "w2")):
        nodes += [helper.make_node("DequantizeLinear", [w, "s", "wz"], [f"{w}d"]),
                  helper.make_node("Conv", ["xd" if i == 1 else "c1d", f"{w}d"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("QuantizeLinear", [f"c{i}", "s", "z"], [f"c{i}q"]),
                  helper.make_node("DequantizeLinear", [f"c{i}q", "s", "z"], [f"c{i}d" if i == 1 else "y"])]
    model = _model(nodes, [x], [y], [scale, zero, wzero, w1, w2])
    model.ir_version = 8  # one every supported ONNX Runtime loads
    return model


def test_a_qdq_graph_holds_its_activations_as_integers_as_onnx_runtime_fuses_it(monkeypatch):
    from harness import onnx_cost as module

    counted = onnx_cost(_qdq_conv_graph())
    # Fused: QLinearConv reads xq (64 B) and writes 8x8x8 uint8 (512 B); the float tensors between are gone.
    assert counted.activation_bytes == 64 + 512 and counted.activation_basis == "onnxruntime-fused"
    assert counted.to_dict()["activation_basis"] == "onnxruntime-fused"
    # As stored, the first Conv's float output (2,048 B) and its quantised copy (512 B) are alive at once.
    monkeypatch.setattr(module, "_fused_activation_bytes", lambda source, sizes: None)
    stored = onnx_cost(_qdq_conv_graph())
    assert stored.activation_bytes == 2048 + 512 and stored.activation_basis == "graph"
    assert "activation_basis" not in stored.to_dict()
    assert stored.flops == counted.flops == 2 * 8 * 9 * 64 * 2  # FLOPs do not depend on the fusion


def test_a_static_int8_variant_needs_a_fraction_of_float32s_activation_memory(tmp_path):
    # Conv, ReLU, MaxPool and Gemm all have integer kernels in ONNX Runtime (mnist-fast's GELU does not:
    # its float tensors stay, and the fused walk counts them).
    from harness.variants import BUILDERS

    torch.manual_seed(0)
    model = build_registry().models["mnist-cnn"].build(num_classes=10, input_shape=(1, 28, 28)).eval()
    path, target = tmp_path / "fp32.onnx", tmp_path / "int8-static.onnx"
    export_onnx(model, torch.randn(4, 1, 28, 28), path, exporter="auto")
    BUILDERS["int8-static"](path, target, torch.randn(32, 1, 28, 28).numpy(), 0)
    fp32, int8 = onnx_cost(path), onnx_cost(target)
    assert int8.activation_basis == "onnxruntime-fused" and fp32.activation_basis == "graph"
    assert int8.activation_bytes < fp32.activation_bytes / 2, (int8.activation_bytes, fp32.activation_bytes)
    assert int8.flops == fp32.flops


def test_bench_says_when_it_counted_a_qdq_graph_as_fused(tmp_path):
    path = tmp_path / "qdq.onnx"
    onnx.save(_qdq_conv_graph(), str(path))
    result = run_cli("bench", str(path), "--min-time", "0.01")
    assert result.returncode == 0, result.stderr
    assert "0.6 KiB of activations at batch 1 with its QDQ groups fused" in result.stdout.splitlines()[0]
    as_json = run_cli("bench", str(path), "--min-time", "0.01", "--json")
    assert json.loads(as_json.stdout)["activation_basis"] == "onnxruntime-fused"


def test_a_qdq_graph_with_external_weights_is_fused_too_and_a_failed_fusion_keeps_the_flops(tmp_path):
    model = _qdq_conv_graph()
    for node in model.graph.node:  # named, as exports are: the file goes to ONNX Runtime as it is
        node.name = f"{node.op_type}_{node.output[0]}"
    path = tmp_path / "external.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
              size_threshold=0)
    counted = onnx_cost(path)
    assert (counted.activation_bytes, counted.activation_basis) == (64 + 512, "onnxruntime-fused")
    # a model ONNX Runtime cannot load (an IR version from the future): the stored walk and the FLOPs stand
    broken = _qdq_conv_graph()
    broken.ir_version = 99
    kept = onnx_cost(broken)
    assert (kept.activation_bytes, kept.activation_basis) == (2048 + 512, "graph")
    assert kept.flops == counted.flops == 2 * 8 * 9 * 64 * 2


def test_bench_warns_that_a_float16_model_on_the_cpu_is_not_what_a_gpu_would_run(exported, tmp_path):
    from harness.variants import BUILDERS

    path, _ = exported["mnist-mlp"]
    half = tmp_path / "fp16.onnx"
    BUILDERS["fp16"](path, half, None, 0)
    warned = run_cli("bench", str(half), "--min-time", "0.01")
    assert warned.returncode == 0, warned.stderr
    assert "warning: a float16 model timed on the CPU provider" in warned.stderr
    plain = run_cli("bench", str(path), "--min-time", "0.01")
    assert plain.returncode == 0 and "float16" not in plain.stderr


def test_float16_weights_are_found_in_constant_nodes_and_subgraphs_too():
    from harness.cli import _mostly_float16

    half = numpy_helper.from_array(np.zeros((64, 64), dtype=np.float16), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)
    as_initializer = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], [half])
    as_constant = _model([helper.make_node("Constant", [], ["w"], value=half),
                          helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y])
    single = numpy_helper.from_array(np.zeros((64, 64), dtype=np.float32), "w")
    as_float = _model([helper.make_node("Constant", [], ["w"], value=single),
                       helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y])
    assert _mostly_float16(as_initializer) and _mostly_float16(as_constant) and not _mostly_float16(as_float)


def test_dims_are_checked_and_the_batch_can_be_named_or_absent():
    """A time-major (seq, N, F) graph counted with dims={"seq": 20} took seq for the batch and counted
    per 'sample' of one step, 20x low, while harness bench refused the same --dims; a typo was set to 1."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", "N", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], [_weight("w", (8, 4))])
    with pytest.raises(ValueError, match="'seq' is the batch dimension"):
        onnx_cost(model, {"seq": 20})
    with pytest.raises(ValueError, match="no open input dimension is called 'sqe'"):
        onnx_cost(model, {"sqe": 20}, batch_dim="N")
    assert onnx_cost(model, {"seq": 20}, batch_dim="N").flops == 20 * 2 * 8 * 4  # per sample of 20 steps
    vector = helper.make_tensor_value_info("v", TensorProto.FLOAT, [256])  # one sample's features, no batch
    flat = _model([helper.make_node("MatMul", ["v", "w"], ["y"])], [vector], [y], [_weight("w", (256, 4))])
    assert onnx_cost(flat).flops == 2 * 256 * 4  # it was 8: 'per sample' of a batch of 256
    image = helper.make_tensor_value_info("i", TensorProto.FLOAT, [3, 8])  # an unbatched input, first dim 3
    fixed = _model([helper.make_node("MatMul", ["i", "w"], ["y"])], [image], [y], [_weight("w", (8, 4))])
    assert onnx_cost(fixed).flops == 2 * 8 * 4 and onnx_cost(fixed, batch_dim="none").flops == 3 * 2 * 8 * 4


# Recurrent layers: an LSTM was counted 0 by torch.utils.flop_counter (its CPU kernel, aten.mkldnn_rnn_layer,
# has no formula) and LSTM, GRU and RNN nodes were left uncounted in the graph, so a job's FLOPs were its
# Linear head's alone and `harness report --sort flops` ranked an LSTM model the cheapest.
GATES = {torch.nn.LSTM: 4, torch.nn.GRU: 3, torch.nn.RNN: 1}


class Recurrent(torch.nn.Module):
    """A sequence classifier as a plugin writes one: (N, C, L) in, the layer time-major or batch-first."""

    def __init__(self, layer, batch_first, bidirectional, num_layers=1, features=3, hidden=8):
        super().__init__()
        self.batch_first = batch_first
        self.rnn = layer(features, hidden, num_layers=num_layers, batch_first=batch_first,
                         bidirectional=bidirectional)
        self.head = torch.nn.Linear(hidden * (2 if bidirectional else 1), 5)

    def forward(self, x):
        out = self.rnn(x.transpose(1, 2) if self.batch_first else x.permute(2, 0, 1))[0]
        return self.head(out[:, -1] if self.batch_first else out[-1])


def recurrent_flops(layer, bidirectional, num_layers=1, seq=7, features=3, hidden=8):
    """Per sample: 2 x steps x directions x gates x hidden x (input + hidden) per layer, and the head."""
    directions = 2 if bidirectional else 1
    total, inputs = 0, features
    for _ in range(num_layers):
        total += 2 * seq * directions * GATES[layer] * hidden * (inputs + hidden)
        inputs = hidden * directions
    return total + 2 * hidden * directions * 5


RECURRENT_CASES = [(layer, batch_first, bidirectional, num_layers)
                   for layer in GATES for batch_first, bidirectional, num_layers in
                   ((False, False, 1), (True, True, 1), (False, True, 1), (True, False, 2))]


def _recurrent_params() -> list:
    """Every case with each exporter; the dynamo exports (1.5 s each) only where they take a path of their own
    by default -- a bidirectional batch-first LSTM or GRU (its direction-merging Reshape) and stacked
    layers -- the rest under -m slow."""
    params = []
    for exporter in ("dynamo", "torchscript"):
        for case in RECURRENT_CASES:
            layer, batch_first, bidirectional, num_layers = case
            name = f"{layer.__name__}-{'bf' if batch_first else 'tm'}{'-bi' if bidirectional else ''}-{num_layers}layer"
            own_path = layer is not torch.nn.RNN and ((batch_first and bidirectional) or num_layers > 1)
            marks = [pytest.mark.slow] if exporter == "dynamo" and not own_path else []
            params.append(pytest.param(*case, exporter, id=f"{name}-{exporter}", marks=marks))
    return params


@pytest.mark.parametrize("layer, batch_first, bidirectional, num_layers, exporter", _recurrent_params())
def test_a_recurrent_model_counts_its_gates_in_pytorch_and_in_its_export(layer, batch_first, bidirectional,
                                                                          num_layers, exporter, tmp_path):
    torch.manual_seed(0)
    model = Recurrent(layer, batch_first, bidirectional, num_layers).eval()
    example = torch.randn(4, 3, 7)
    expected = recurrent_flops(layer, bidirectional, num_layers)
    assert count_flops(model, example) == expected  # an LSTM: 560 (the head) before
    path = tmp_path / "rnn.onnx"
    try:
        exported = export_onnx(model, example, path, exporter=exporter)
    except ExportError as exc:  # the dynamo exporter of torch 2.6 (the floor) cannot leave an LSTM's batch open
        old = tuple(int(n) for n in torch.__version__.split("+")[0].split(".")[:2]) < (2, 7)
        if exporter == "dynamo" and old and "fixes the batch size" in str(exc):
            pytest.skip(f"torch {torch.__version__}'s dynamo exporter fixes a recurrent model's batch size (auto "
                        "falls back to TorchScript)")
        raise
    counted = onnx_cost(path)
    assert (counted.flops, counted.uncounted) == (expected, []), exported.exporter  # its node was uncounted


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_pytorch_counts_an_lstm_as_its_unfused_matrix_products():
    """The formula registered for the oneDNN kernel gives what torch.utils.flop_counter counts of the same
    LSTM run as matrix products (oneDNN off, or a GRU/RNN, whose CPU path decomposes), packed or not."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True, batch_first=True).eval()
    padded = torch.randn(4, 7, 3)

    class Output(torch.nn.Module):
        def forward(self, x):
            return lstm(x)[0]

    fused = count_flops(Output(), padded)
    with torch.backends.mkldnn.flags(enabled=False):
        unfused = count_flops(Output(), padded)
    assert fused == unfused == 7 * 2 * 2 * 4 * 8 * ((3 + 8) + (16 + 8))
    packed = pack_padded_sequence(padded, [7, 5, 3, 1], batch_first=True)
    with torch.no_grad():
        from torch.utils.flop_counter import FlopCounterMode

        from harness.train import recurrent_flop_formulas

        with FlopCounterMode(display=False, custom_mapping=recurrent_flop_formulas()) as counter:
            lstm(packed)
    assert counter.get_total_flops() == 16 * 2 * 2 * 4 * 8 * ((3 + 8) + (16 + 8))  # the 16 real steps


def test_the_gpu_kernels_formulas_read_the_arguments_their_schemas_name():
    """cuDNN (and ROCm, MPS) run every layer in one kernel, which torch.utils.flop_counter counts 0 for a GRU
    and an RNN too; no GPU here, so the formulas are checked against the kernels' schemas and by hand."""
    from harness.train import recurrent_flop_formulas

    formulas = recurrent_flop_formulas()
    aten = torch.ops.aten
    assert aten.mkldnn_rnn_layer in formulas and aten._cudnn_rnn in formulas
    names = {"mkldnn_rnn_layer": ["input", "weight0", "weight1"], "_cudnn_rnn": ["input", "weight"],
             "miopen_rnn": ["input", "weight"], "_lstm_mps": ["input", "hx", "params"]}
    for packet in formulas:
        schema = packet.default._schema
        assert [a.name for a in schema.arguments[:len(names[packet.__name__])]] == names[packet.__name__]
    # a 2-layer bidirectional GRU, hidden 8, on 3 features: [w_ih, w_hh, b_ih, b_hh] per layer and direction
    weights = [(24, 3), (24, 8), (24,), (24,)] * 2 + [(24, 16), (24, 8), (24,), (24,)] * 2
    per_step = 2 * (24 * 3 + 24 * 8) * 2 + 2 * (24 * 16 + 24 * 8) * 2
    cudnn = formulas[aten._cudnn_rnn]
    assert cudnn((7, 4, 3), weights, 4, (1000,), (4, 4, 8), None, 3, 8, 0, 2, False, 0.0, False, True, [],
                 None, out_shape=None) == 7 * 4 * per_step
    assert cudnn((20, 3), weights, 4, None, (4, 4, 8), None, 3, 8, 0, 2, False, 0.0, False, True, [7, 7, 6],
                 None, out_shape=None) == 20 * per_step  # packed: 20 steps over the batch


def _recurrent_node(op, layout, x_shape, directions=1, hidden=4, features=8, gates=None):
    gates = gates or {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weights = [_weight("W", (directions, gates * hidden, features)),
               _weight("R", (directions, gates * hidden, hidden))]
    node = helper.make_node(op, ["x", "W", "R"], ["y"], hidden_size=hidden, layout=layout,
                            direction="bidirectional" if directions == 2 else "forward")
    return _model([node], [x], [y], weights, opset=14)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_a_recurrent_nodes_sequence_and_batch_are_read_by_its_layout(op):
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    per_sample = 2 * 20 * 2 * gates * 4 * (8 + 4)  # 20 steps, both directions
    batch_first = _recurrent_node(op, 1, ["N", 20, 8], directions=2)
    time_major = _recurrent_node(op, 0, [20, "N", 8], directions=2)
    assert onnx_cost(batch_first).flops == per_sample
    assert onnx_cost(time_major, batch_dim="N").flops == per_sample
    assert onnx_cost(_recurrent_node(op, 1, [6, 20, 8], directions=2)).flops == per_sample  # batch 6 fixed
    # an open sequence: per sample at the length given
    assert onnx_cost(_recurrent_node(op, 1, ["N", "seq", 8], directions=2), {"seq": 20}).flops == per_sample
    counted = onnx_cost(_recurrent_node(op, 1, ["N", "seq", 8], directions=2))
    assert counted.assumed == ["x[seq]"] and counted.flops == per_sample // 20  # one step, and said so


def test_an_lstm_model_counts_the_same_in_its_int8_and_fp16_variants(tmp_path):
    """ONNX Runtime's dynamic quantisation makes an LSTM a com.microsoft DynamicQuantizeLSTM (int8 W and R,
    stored transposed): uncounted, and its output's shape unknown, so the head after it too."""
    from harness.variants import BUILDERS

    torch.manual_seed(0)
    model = Recurrent(torch.nn.LSTM, False, True, num_layers=2).eval()
    example = torch.randn(4, 3, 7)
    path = tmp_path / "lstm.onnx"
    export_onnx(model, example, path, exporter="torchscript")
    expected = recurrent_flops(torch.nn.LSTM, True, 2)
    for variant in ("int8-dynamic", "int8-static", "fp16", "ort-opt"):
        target = tmp_path / f"{variant}.onnx"
        BUILDERS[variant](path, target, torch.randn(32, 3, 7).numpy(), 0)
        ops = {node.op_type for node in onnx.load(target).graph.node}
        counted = onnx_cost(target)
        assert (counted.flops, counted.uncounted) == (expected, []), (variant, ops)
        if variant == "int8-dynamic":
            assert "DynamicQuantizeLSTM" in ops and counted.activation_bytes is not None


@pytest.mark.parametrize("recorded", [True, False])
def test_a_shape_inference_cannot_follow_is_taken_from_the_graphs_own_record(recorded):
    """torch 2.6's exporter (the floor) computes a flattening Reshape's target through ops ONNX's inference
    does not follow, and every Gemm after it went uncounted; the graph records that shape itself (batch
    named s0), which counts at the size the inputs are given. Without the record it stays uncounted."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from harness.onnx_cost import onnx_cost

    nodes = [helper.make_node("Shape", ["input"], ["shape"], start=0, end=1),
             helper.make_node("Concat", ["shape", "width"], ["wanted"], axis=0),
             helper.make_node("Identity", ["wanted"], ["target"]),  # where ONNX's data propagation stops
             helper.make_node("Reshape", ["input", "target"], ["flat"]),
             # what reads the recorded tensor is itself unrecorded (a quantized variant's
             # DynamicQuantizeLinear): the record has to reach inference, not only the count
             helper.make_node("Relu", ["flat"], ["act"]),
             helper.make_node("Gemm", ["act", "w", "b"], ["logits"], transB=1)]
    weights = [numpy_helper.from_array(np.array([784], np.int64), "width"),
               numpy_helper.from_array(np.zeros((10, 784), np.float32), "w"),
               numpy_helper.from_array(np.zeros(10, np.float32), "b")]
    record = [helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["s0", 784])] if recorded else []
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["s0", 1, 28, 28])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["s0", 10])], weights,
                              value_info=record)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    counted = onnx_cost(model)
    assert (counted.flops, counted.uncounted) == ((2 * 784 * 10, []) if recorded else (None, ["Gemm"]))

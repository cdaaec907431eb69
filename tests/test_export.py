"""The export stage: what ends up in the .onnx file a user ships."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from harness.export import check_onnx, export_onnx, strip_debug_metadata


def test_a_dynamo_export_carries_no_debug_metadata_or_source_paths(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    # Convolutions only: the oldest supported torch's dynamo exporter cannot export a Flatten.
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 10, 26)).eval()
    example = torch.randn(4, 1, 28, 28)
    result = export_onnx(model, example, tmp_path / "m.onnx", exporter="dynamo")
    raw = (tmp_path / "m.onnx").read_bytes()
    assert result.exporter == "dynamo" and result.bytes == len(raw)
    # The exporter wrote each node's stack trace, with this machine's paths, and FX/module annotations.
    assert b"stack_trace" not in raw and b"pkg.torch" not in raw and str(Path(__file__).parent).encode() not in raw
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert not proto.graph.metadata_props and not any(n.metadata_props for n in proto.graph.node)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
    assert np.abs(got - model(example).detach().numpy()).max() < 1e-5  # still the same model


def test_strip_debug_metadata_keeps_other_entries_and_reaches_subgraphs():
    def annotated(node, **entries):
        for key, value in entries.items():
            node.metadata_props.add(key=key, value=value)
        return node

    out = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])
    inner = annotated(helper.make_node("Identity", ["x"], ["b"]), **{"pkg.torch.onnx.stack_trace": "File /home/me"})
    branch = helper.make_graph([inner], "branch", [], [out])
    node = annotated(helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch),
                     namespace="net/layer", keep="mine")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    annotated(graph, **{"pkg.torch.export.ExportedProgram.graph_signature": "..."})
    model = annotated(helper.make_model(graph), author="me", **{"pkg.onnxscript.rewriter.rule_name": "r"})
    annotated(model.graph.input[1], **{"pkg.torch.export.graph_signature.InputSpec.kind": "USER_INPUT"})
    assert strip_debug_metadata(model) == 6  # namespace, two branch stack traces, signature, input kind, rule
    assert [e.key for e in model.metadata_props] == ["author"]
    assert [e.key for e in model.graph.node[0].metadata_props] == ["keep"]
    assert not model.graph.metadata_props and not model.graph.input[1].metadata_props
    assert all(not n.metadata_props for a in model.graph.node[0].attribute for n in a.g.node)
    assert strip_debug_metadata(model) == 0


class _LeavesTorch(torch.nn.Module):
    """A forward through .item() and numpy: torch.export refuses it, and a trace bakes the input in."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = float(x.sum().item())
        return self.fc(torch.from_numpy(np.full((x.shape[0], 4), total, dtype=np.float32)))


def test_exporters_print_nothing_on_the_terminal(tmp_path, capfd):
    # torch >= 2.9's torch.export dumps the FX graph to stderr when it refuses this forward; it goes
    # to the debug log instead (torch 2.5's exporter takes it and prints nothing anyway).
    result = export_onnx(_LeavesTorch(), torch.rand(4, 4), tmp_path / "m.onnx")
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == ""
    if result.fallback_reason is not None:  # what results.json records: the cause, without colour codes
        assert "\x1b" not in result.fallback_reason and "step 1/3" not in result.fallback_reason


def test_a_trace_that_baked_the_input_in_fails_the_check_with_the_reason(tmp_path):
    import pytest

    result = export_onnx(_LeavesTorch(), torch.rand(4, 4), tmp_path / "m.onnx", exporter="torchscript")
    with pytest.raises(ValueError, match="takes no input.*cannot be traced"):
        check_onnx(result.path)


def test_an_export_failure_is_its_underlying_cause_on_one_line():
    from harness.export import export_failure_text

    try:
        try:
            raise ValueError("Could not guard on data-dependent expression\n\nconsider using ...")
        except ValueError as cause:
            raise RuntimeError("Failed. \x1b[96mThis is step 1/3\x1b[0m of exporting the model") from cause
    except RuntimeError as exc:
        assert export_failure_text(exc) == "RuntimeError (ValueError): Could not guard on data-dependent expression"
    assert export_failure_text(KeyError("x")) == "KeyError: 'x'"  # no cause: the error itself

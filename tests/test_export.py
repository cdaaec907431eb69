"""The export stage: what ends up in the .onnx file a user ships."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from harness.export import ExportError, check_onnx, export_onnx, strip_debug_metadata


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


def test_the_dynamo_exporters_op_table_is_built_once_and_the_files_are_the_same(tmp_path, monkeypatch):
    """torch rebuilt the op table on every export (0.6 s a model); the harness hands out the first."""
    import harness.export as export

    _registration = pytest.importorskip("torch.onnx._internal.exporter._registration")
    if "from_torchlib" not in vars(_registration.ONNXRegistry):
        pytest.skip(f"torch {torch.__version__} builds no torchlib table to reuse")

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 10, 26)).eval()

    example = torch.randn(4, 1, 28, 28)
    built = []
    original = _registration.ONNXRegistry.__dict__["from_torchlib"]
    counting = classmethod(lambda cls, *a, **k: built.append(1) or original.__func__(cls, *a, **k))
    monkeypatch.setattr(_registration.ONNXRegistry, "from_torchlib", counting)
    monkeypatch.setattr(export, "_TORCHLIB_REGISTRIES", {})
    for name in ("a.onnx", "b.onnx"):
        export_onnx(net(), example, tmp_path / name, exporter="dynamo")
    assert len(built) == 1  # the second export reused the first's table
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is counting  # put back after each export
    export._TORCHLIB_REGISTRIES.clear()  # a fresh table writes the same file
    export_onnx(net(), example, tmp_path / "c.onnx", exporter="dynamo")
    assert len(built) == 2
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes() == (tmp_path / "c.onnx").read_bytes()


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
    # torch >= 2.9's torch.export dumps the FX graph to stderr when it refuses this forward, and torch's
    # own log handler a line on the data-dependent guard; they go to the debug log instead (torch 2.5's
    # exporter takes it and prints nothing anyway). The trace then warns that it froze the sum: refused.
    try:
        reason = export_onnx(_LeavesTorch(), torch.rand(4, 4), tmp_path / "m.onnx").fallback_reason
    except ExportError as exc:
        reason = str(exc)
        assert "torchscript: the trace may hold one branch only" in reason, reason
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == ""
    if reason is not None:  # what results.json records: the cause, without colour codes
        assert "\x1b" not in reason and "step 1/3" not in reason and "\n" not in reason


def test_torchs_own_log_handlers_write_to_the_debug_log_during_an_export(caplog):
    """torch's loggers have handlers of their own, on the stderr of when they were made: on a data-dependent
    guard, torch 2.13 printed "W1130 ... symbolic_shapes.py:8866] Unable to find user code corresponding to
    {u0}" above the run's table."""
    import io
    import logging

    from harness.export import _exporter_output_to_debug_log

    terminal = io.StringIO()
    handler = logging.StreamHandler(terminal)
    torch_logger = logging.getLogger("torch.harness_test_export")
    torch_logger.addHandler(handler)
    torch_logger.propagate = False  # as torch's own
    try:
        with caplog.at_level(logging.DEBUG, logger="harness.export"), _exporter_output_to_debug_log():
            torch_logger.warning("Unable to find user code corresponding to {u0}")
        assert terminal.getvalue() == "" and handler.stream is terminal  # and given back
        assert "Unable to find user code" in caplog.text
    finally:
        torch_logger.removeHandler(handler)
        torch_logger.propagate = True


def test_a_trace_that_baked_the_input_in_fails_the_check_with_the_reason(tmp_path):
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
        assert export_failure_text(exc).startswith("RuntimeError (ValueError): Could not guard on data-dependent "
                                                   "expression (the forward takes a tensor's value into Python")
    assert export_failure_text(KeyError("x")) == "KeyError: 'x'"  # no cause: the error itself


class GuardOnDataDependentSymNode(RuntimeError):
    """Named as torch's."""


def test_an_export_failure_says_the_innermost_cause_and_the_fix_for_a_branch_on_values():
    """torch 2.13 wraps an unsupported operator twice: ConversionError, "Error when translating node", and
    only then the DispatchError that names the operator and why."""
    from harness.export import export_failure_text

    class DispatchError(RuntimeError):
        pass

    def chain(*errors):
        for inner, outer in zip(errors, errors[1:]):
            outer.__cause__ = inner
        return errors[-1]

    svd = chain(DispatchError("No ONNX function found for aten._linalg_svd"),
                RuntimeError("Error when translating node %_linalg_svd. See the stack trace"),
                RuntimeError("Failed to convert. This is step 3/3 of exporting the model"))
    assert export_failure_text(svd) == "RuntimeError (DispatchError): No ONNX function found for aten._linalg_svd"
    guard = chain(GuardOnDataDependentSymNode("Could not guard on data-dependent expression Eq(u0, 1) (unhinted: "
                                              "Eq(u0, 1)).  (Size-like symbols: none)\n\nconsider using ..."),
                  RuntimeError("Failed to export the model with torch.export. This is step 1/3"))
    assert export_failure_text(guard) == (
        "RuntimeError (GuardOnDataDependentSymNode): Could not guard on data-dependent expression Eq(u0, 1). (the "
        "forward takes a tensor's value into Python, e.g. `if x.mean() > 0` or .item(): keep it in tensor ops "
        "such as torch.where)")
    assert export_failure_text(ExportError("dynamo: a; torchscript: b")) == "dynamo: a; torchscript: b"
    # torch 2.5: a plain Python error inside the exporter; the node it failed on is said first
    old = chain(TypeError("unhashable type: 'list'"),
                DispatchError("Error when translating node %view : call_function[target=aten.view.default]. See "
                              "the stack trace for more information."),
                DispatchError("Failed to convert. This is step 2/2 of exporting the model"))
    assert export_failure_text(old) == ("DispatchError: Error when translating node %view : call_function"
                                        "[target=aten.view.default]. (TypeError: unhashable type: 'list')")


class _Branchy(torch.nn.Module):
    """A Python branch on the input's values: a trace holds the branch its example took."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0.6:
            return self.a(x)
        return self.b(x)


BRANCH_WARNING = (f"test_export.py:{_Branchy.forward.__code__.co_firstlineno + 1}: Converting a tensor to a Python "
                  "boolean might cause the trace to be incorrect")


def test_auto_refuses_a_trace_that_holds_one_branch_and_says_both_exporters_reasons(tmp_path, capfd):
    """It was exported by the silent TorchScript fallback, one branch in the file, and passed the agreement
    check because no test input took the other."""
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as raised:
        export_onnx(_Branchy(), torch.rand(8, 4) * 0.5, path)
    message = str(raised.value)
    assert raised.value.stage == "export" and "\n" not in message
    assert message.startswith("dynamo: ") and "step 1/3" not in message, message
    assert message.endswith(f"; torchscript: the trace may hold one branch only and be wrong for other inputs; the "
                            f"tracer warned: {BRANCH_WARNING} (--exporter torchscript keeps such a trace)"), message
    assert not path.exists()  # no wrong file left beside the run's good ones
    assert capfd.readouterr().err == ""


def test_torchscript_by_name_keeps_a_branchy_trace_with_the_tracers_warnings(tmp_path):
    filters = list(warnings.filters)
    for attempt in range(2):  # the second time too: a warning once shown is not swallowed by the registry
        result = export_onnx(_Branchy(), torch.rand(8, 4) * 0.5, tmp_path / "m.onnx", exporter="torchscript")
        assert result.exporter == "torchscript" and result.fallback_reason is None
        assert result.trace_warnings == [BRANCH_WARNING] == result.to_dict()["trace_warnings"]
        assert result.notes == [f"the trace may hold one branch only and be wrong for other inputs; the tracer "
                                f"warned: {BRANCH_WARNING} (the ONNX check saw only the test split's inputs)"]
    assert warnings.filters == filters  # the exporter's filters do not outlive it


class _TensorConstant(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tensor([2.0, 3.0])


def test_a_traced_constant_is_recorded_without_doubting_the_trace(tmp_path):
    result = export_onnx(_TensorConstant(), torch.rand(4, 2), tmp_path / "m.onnx", exporter="torchscript")
    (said,) = result.trace_warnings
    assert "torch.tensor results are registered as constants in the trace" in said
    assert result.notes == []
    assert export_onnx(_TensorConstant(), torch.rand(4, 2), tmp_path / "d.onnx").trace_warnings is None  # dynamo


class _ScaledByItsWidth(torch.nn.Module):
    """Attention's scaling, math.sqrt of a size (a Python float in a trace), beside an operator the dynamo
    exporter cannot convert (cdist), so auto falls back to the tracer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import math

        return torch.cdist(x, x[:1].detach() * 0 + 1) / math.sqrt(x.size(-1))


def test_a_size_made_a_python_number_is_recorded_without_failing_the_fallback(tmp_path):
    # a size is fixed for the model; a frozen batch is caught by the run on another batch size
    result = export_onnx(_ScaledByItsWidth(), torch.rand(8, 4), tmp_path / "m.onnx")
    assert result.exporter == "torchscript" and result.fallback_reason
    assert any("Converting a tensor to a Python float" in w for w in result.trace_warnings), result.trace_warnings
    assert not any("one branch" in n for n in result.notes), result.notes


class _BatchAsInt(torch.nn.Module):
    """Two ways of making a Python int of the batch: torch.export fixes the batch it was asked to keep open."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how, self.fc = how, torch.nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "len":
            return self.fc(x.view(len(x), -1))
        return torch.stack([self.fc(x[i].flatten()) for i in range(x.shape[0])])


BATCH_ADVICE = ("the model turns the batch size into a Python int (len(x), int(x.shape[0]), a loop over the batch); "
                "use x.flatten(1) or x.reshape(x.shape[0], -1)")


def test_a_graph_that_fixes_the_batch_fails_the_export_with_the_fix(tmp_path):
    """It was written without a word, and ONNX Runtime refused the test split at onnx-eval ("Got invalid
    dimensions ... Got: 128 Expected: 8")."""
    with pytest.raises(ExportError) as raised:
        export_onnx(_BatchAsInt("loop"), torch.rand(8, 3, 4), tmp_path / "m.onnx", exporter="dynamo")
    assert str(raised.value) == f"the exported graph fixes the batch size at 8 (input 'input': [8, 3, 4]): {BATCH_ADVICE}"
    assert not (tmp_path / "m.onnx").exists()


def test_a_trace_that_froze_the_batch_is_refused_after_a_run_on_another_batch(tmp_path):
    """A trace declares its batch open whatever it recorded: its len(x) is a Reshape to 8 rows, its loop 8
    rows answered to any batch. Neither the declared shapes nor the test split's agreement showed it."""
    with pytest.raises(ExportError) as raised:
        export_onnx(_BatchAsInt("loop"), torch.rand(8, 3, 4), tmp_path / "m.onnx", exporter="torchscript")
    assert str(raised.value) == f"the exported graph answers a batch of 9 with 8 rows, having been traced on 8: " \
                                f"{BATCH_ADVICE}"
    with pytest.raises(ExportError) as raised:  # under auto: why each exporter failed, the advice once
        export_onnx(_BatchAsInt("len"), torch.rand(8, 3, 4), tmp_path / "m.onnx")
    message = str(raised.value)
    assert message.startswith("dynamo: ") and message.count(BATCH_ADVICE) == 1, message
    line = _BatchAsInt.forward.__code__.co_firstlineno + 2
    assert "; torchscript: the exported graph fails on a batch of 9, having been traced on 8 (" in message, message
    assert message.endswith(f"; the tracer warned: test_export.py:{line}: Using len to get tensor shape might cause "
                            "the trace to be incorrect"), message


def test_fixed_batch_text_reads_the_graphs_declared_batch():
    from harness.export import fixed_batch_text

    def graph(first):
        value = helper.make_tensor_value_info("input", TensorProto.FLOAT, [first, 1, 28, 28])
        weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
        node = helper.make_node("Mul", ["input", "w"], ["logits"])
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
        weight_input = helper.make_tensor_value_info("w", TensorProto.FLOAT, [1])  # a weight listed as an input
        return helper.make_model(helper.make_graph([node], "g", [weight_input, value], [out], [weight]))

    assert fixed_batch_text(graph(8)) == f"the exported graph fixes the batch size at 8 (input 'input': " \
                                         f"[8, 1, 28, 28]): {BATCH_ADVICE}"
    assert fixed_batch_text(graph("batch")) is None and fixed_batch_text(graph(None)) is None


def test_a_dynamo_failure_falls_back_to_a_trace_and_says_so(tmp_path, monkeypatch):
    import harness.export as export

    def refuses(model, example, path, opset):
        raise RuntimeError("No ONNX function found for aten::frobnicate")

    monkeypatch.setattr(export, "_export_dynamo", refuses)
    result = export_onnx(torch.nn.Linear(4, 3), torch.rand(8, 4), tmp_path / "m.onnx")
    assert (result.exporter, result.fallback_reason) == ("torchscript", "RuntimeError: No ONNX function found for "
                                                                        "aten::frobnicate")
    assert result.trace_warnings == [] and result.notes == [
        "the dynamo exporter failed, so the ONNX file is a TorchScript trace: RuntimeError: No ONNX function found "
        "for aten::frobnicate"]

    def fixes_the_batch(model, example, path, opset):  # as torch.export does where a trace records x.size(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch >= 2.9 calls this exporter legacy
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"])
        return 17, onnx.load(str(path))

    monkeypatch.setattr(export, "_export_dynamo", fixes_the_batch)
    result = export_onnx(torch.nn.Linear(4, 3), torch.rand(8, 4), tmp_path / "m.onnx")
    assert result.exporter == "torchscript" and result.fallback_reason.startswith(
        "the exported graph fixes the batch size at 8 (input 'input': [8, 4])")
    assert result.notes == [f"the dynamo exporter failed, so the ONNX file is a TorchScript trace: "
                            f"{result.fallback_reason}"]

    def refused_by_the_checker(model, example, path, opset):  # torch 2.6's LSTM: "existing shape differ in rank"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"],
                              dynamic_axes={"input": {0: "batch"}})
        proto = onnx.load(str(path))
        shape = proto.graph.output[0].type.tensor_type.shape
        shape.dim.add().dim_value = 5  # rank 3 where the graph computes rank 2
        onnx.save(proto, str(path))
        return 17, proto

    monkeypatch.setattr(export, "_export_dynamo", refused_by_the_checker)
    result = export_onnx(torch.nn.Linear(4, 3), torch.rand(8, 4), tmp_path / "m.onnx")
    assert result.exporter == "torchscript" and result.fallback_reason.startswith("onnx.checker rejected it: ")
    check_onnx(tmp_path / "m.onnx")  # the trace passes
    # asked for by name, the dynamo file stays: the job's check stage says why it is refused
    named = export_onnx(torch.nn.Linear(4, 3), torch.rand(8, 4), tmp_path / "d.onnx", exporter="dynamo")
    assert named.exporter == "dynamo"
    with pytest.raises(Exception, match="rank"):  # noqa: B017 - onnx's own error type
        check_onnx(tmp_path / "d.onnx")


class _Unsupported(torch.nn.Module):
    """torch.linalg.svdvals: neither exporter has it (torch 2.5 to 2.13)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y + torch.linalg.svdvals(y.reshape(y.shape[0], -1, 1).expand(-1, -1, 2)).sum(dim=1, keepdim=True) * 0


def test_when_both_exporters_fail_the_error_keeps_each_ones_cause(tmp_path, capfd, caplog):
    """Only TorchScript's error was kept, and with --exporter dynamo torch's generic "Failed to export the model
    with torch.export. This is step 1/3 ..." cut at 400 characters, before the cause. The tracer's C++ dump
    of its whole graph ("Torch IR graph at exception") went to the process's standard output, into the
    results table a script reads: it goes to the debug log."""
    import logging

    with pytest.raises(ExportError) as raised, caplog.at_level(logging.DEBUG, logger="harness.export"):
        export_onnx(_Unsupported(), torch.rand(8, 4), tmp_path / "m.onnx")
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == "", printed.out[:500]
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 11):  # 2.5 prints no dump
        assert "Torch IR graph at exception" in caplog.text
    dynamo, torchscript = str(raised.value).split("; torchscript: ")
    assert dynamo.startswith("dynamo: ") and "step " not in dynamo and "Failed to" not in dynamo, dynamo
    assert torchscript.startswith("UnsupportedOperatorError: Exporting the operator 'aten::linalg_svdvals'")
    with pytest.raises(ExportError) as raised:
        export_onnx(_Unsupported(), torch.rand(8, 4), tmp_path / "m.onnx", exporter="dynamo")
    assert f"dynamo: {raised.value}" == dynamo


def test_the_speed_run_cnn_exports_with_dynamo_and_pools_as_adaptive_max_pooling_did(tmp_path):
    # torch 2.11's dynamo exporter (the GPU machine's, and tox -e gpu-image) had no adaptive_max_pool2d
    from harness_plugins.fast.nets import FastCNN, GlobalMaxPool

    x = torch.randn(4, 8, 7, 7)
    torch.testing.assert_close(GlobalMaxPool()(x), torch.nn.AdaptiveMaxPool2d(1)(x), rtol=0, atol=0)
    torch.manual_seed(0)
    model = FastCNN().eval()
    result = export_onnx(model, torch.rand(2, 1, 28, 28), tmp_path / "fast.onnx", exporter="auto")
    assert "adaptive_max_pool2d" not in (result.fallback_reason or "")
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 11):  # 2.5 cannot write its Flatten
        assert result.exporter == "dynamo", result.fallback_reason



def test_warming_the_exporter_up_builds_its_op_table_before_any_job(monkeypatch):
    """The first job of a process exported in 1.7 s what later ones did in 0.4 s: the exporter's one-time
    costs are paid by warm_up_exporter, outside every job's clock (runner.preload_job_modules)."""
    import harness.export as export

    monkeypatch.setattr(export, "_TORCHLIB_REGISTRIES", {})
    export.warm_up_exporter("torchscript")  # the trace exporter has nothing of the kind to warm
    assert export._TORCHLIB_REGISTRIES == {}
    state = torch.random.get_rng_state()
    export.warm_up_exporter("auto")
    if "from_torchlib" in vars(getattr(torch.onnx._internal.exporter, "_registration", object)):
        assert export._TORCHLIB_REGISTRIES
    assert torch.equal(torch.random.get_rng_state(), state)  # jobs draw the same numbers with or without it

"""``harness bench`` on foreign ONNX files built here with ``onnx.helper`` (subprocess, as users run it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli, save_onnx_graph

FAST = ["--min-runs", "5", "--min-time", "0.01", "--warmup", "1"]
ROW_FIELDS = {"runtime", "provider", "batch_size", "threads", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
              "std_ms", "throughput_per_s", "min_ms"}


def _conv_onnx(path, batch="N"):
    """A foreign model: Conv -> Relu -> GlobalAveragePool -> Flatten, input (batch, 3, 8, 8)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["g"]),
            helper.make_node("Flatten", ["g"], ["scores"]),
        ],
        "foreign",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 4])],
        [w],
    )
    return save_onnx_graph(graph, path, check=True, producer_name="not-harness")


def test_bench_json_on_a_foreign_model(tmp_path):
    from harness.ort import usable_providers

    path = _conv_onnx(tmp_path / "foreign.onnx")
    result = run_cli("bench", str(path), "--batch-sizes", "1,3", "--providers", "cpu,cuda", "--json", *FAST,
                     timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # nothing but JSON on stdout, even when a GPU provider cannot start
    assert set(data) >= {"model", "bytes", "latency"}
    assert data["model"] == str(path) and data["bytes"] == path.stat().st_size
    cpu_rows = [r for r in data["latency"] if r["provider"] == "CPUExecutionProvider"]
    assert [r["batch_size"] for r in cpu_rows] == [1, 3]
    for row in data["latency"]:
        assert ROW_FIELDS <= set(row)
        assert row["runtime"] == "onnxruntime" and row["threads"] == 1 and row["runs"] >= 5
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p99_ms"]
    if "CUDAExecutionProvider" not in usable_providers()[0]:
        assert "CUDAExecutionProvider" in result.stderr and "warning" in result.stderr
        assert len(data["skipped"]) == 1 and data["skipped"][0].startswith("provider CUDAExecutionProvider")
    else:
        assert data["skipped"] == []
    cold = data["cold_start"]  # three new processes by default, at the first row's setting
    assert cold["runs"] == 3 and cold["ms"] > 0 and (cold["batch_size"], cold["threads"]) == (1, 1)


def test_bench_prints_the_cold_start_or_leaves_it_out(tmp_path):
    path = _conv_onnx(tmp_path / "foreign.onnx")
    result = run_cli("bench", str(path), "--cold-runs", "2", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("cold start (new process, CPU, batch 1, 1 thread): ") and "median of 2" in last
    result = run_cli("bench", str(path), "--cold-runs", "0", "--json", *FAST, timeout=300)
    assert result.returncode == 0 and json.loads(result.stdout)["cold_start"] is None


def test_bench_skips_a_batch_size_the_static_shape_refuses(tmp_path):
    path = _conv_onnx(tmp_path / "static.onnx", batch=1)
    result = run_cli("bench", str(path), "--batch-sizes", "1,4", "--json", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["batch_size"] for r in data["latency"]] == [1]
    warnings = [line for line in result.stderr.splitlines() if "warning: skipped" in line]
    assert len(warnings) == 1 and "batch size 4" in warnings[0]
    # the JSON says so too: a script reading only stdout saw exit 0 and a row fewer than it asked for
    assert data["skipped"] == [warnings[0].removeprefix("harness: warning: skipped ")]


def test_bench_exits_2_when_nothing_can_be_measured(tmp_path):
    path = _conv_onnx(tmp_path / "static.onnx", batch=1)
    result = run_cli("bench", str(path), "--batch-sizes", "4", "--json", *FAST, timeout=300)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout.strip() == ""
    # one line, and it says why: the reason is not a warning above a bare error
    assert result.stderr.strip().splitlines() == [
        f"harness: error: nothing could be measured for {path}: batch size 4: input 'image' has a static batch "
        "dimension 1; the graph fixes its batch at 1: --batch-sizes 1"], result.stderr


def test_bench_feeds_integer_and_string_inputs_and_refuses_bfloat16_in_one_line(tmp_path):
    from onnx import TensorProto, helper

    types = {"i16": TensorProto.INT16, "u16": TensorProto.UINT16, "u32": TensorProto.UINT32,
             "u64": TensorProto.UINT64, "text": TensorProto.STRING}
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [f"{name}_out"]) for name in types], "typed",
        [helper.make_tensor_value_info(name, t, ["N", 3]) for name, t in types.items()],
        [helper.make_tensor_value_info(f"{name}_out", t, ["N", 3]) for name, t in types.items()])
    path = save_onnx_graph(graph, tmp_path / "typed.onnx", check=True)
    result = run_cli("bench", str(path), "--batch-sizes", "1,2", "--json", "--cold-runs", "1", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["batch_size"] for r in data["latency"]] == [1, 2] and data["cold_start"]["ms"] > 0

    bf16 = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "bf16",
                             [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["N", 3])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    path = save_onnx_graph(bf16, tmp_path / "bf16.onnx", check=True)
    refused = run_cli("bench", str(path), *FAST, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"harness: error: nothing could be measured for {path}: batch size 1: cannot generate inputs of type "
        "tensor(bfloat16): numpy has no such type that ONNX Runtime takes"]


def test_bench_times_without_spinning_or_iobinding_when_asked_and_rows_say_how_they_were_timed(tmp_path):
    from harness.ort import session_options

    assert session_options(2, spinning=False).get_session_config_entry("session.intra_op.allow_spinning") == "0"
    path = _conv_onnx(tmp_path / "m.onnx")
    plain = json.loads(run_cli("bench", str(path), "--json", "--cold-runs", "0", *FAST, timeout=300).stdout)
    assert [(r["allow_spinning"], r["iobinding"]) for r in plain["latency"]] == [(True, True)]
    asked = run_cli("bench", str(path), "--threads", "1,2", "--no-spin", "--no-iobinding", "--warmup", "0", "--json",
                    "--cold-runs", "0", *FAST[:4], timeout=300)
    assert asked.returncode == 0, asked.stderr
    rows = json.loads(asked.stdout)["latency"]
    assert [(r["threads"], r["allow_spinning"], r["iobinding"]) for r in rows] == [(1, False, False), (2, False, False)]


def test_a_partial_flop_count_is_headlined_as_a_floor(tmp_path):
    """A ShuffleNet trace counted half its convolutions, and bench headlined the half as the model's FLOPs."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 5), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Einsum", ["m", "w2"], ["y"], equation="bij,jk->bik")],
        "partial", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 5])],
        [w, numpy_helper.from_array(np.ones((5, 5), dtype=np.float32), "w2")])
    path = save_onnx_graph(graph, tmp_path / "partial.onnx", check=True)
    result = run_cli("bench", str(path), "--cold-runs", "0", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"at least {2 * 3 * 4 * 5:,} FLOPs per sample" in result.stdout.splitlines()[0]
    assert "the FLOPs leave out 1 node(s) they cannot count: Einsum" in result.stderr


def test_bench_skips_a_batch_size_whose_inputs_cannot_be_allocated(tmp_path):
    path = _conv_onnx(tmp_path / "dynamic.onnx")
    # 10**12 images are petabytes: beyond any address space, so the allocation fails even with overcommit.
    result = run_cli("bench", str(path), "--batch-sizes", "1,1000000000000", "--json", *FAST, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert [r["batch_size"] for r in json.loads(result.stdout)["latency"]] == [1]
    assert any("batch size 1000000000000" in line for line in result.stderr.splitlines() if "warning" in line)


@pytest.mark.parametrize("bad", [["--min-runs", "0"], ["--cold-runs", "-1"], ["--batch-sizes", "0"], ["--dims", "h=0"], ["--dims", "h"]])
def test_bench_bad_options_exit_2(tmp_path, bad):
    path = _conv_onnx(tmp_path / "m.onnx")
    result = run_cli("bench", str(path), *bad, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def _open_size_onnx(path):
    """A foreign model with an open image size: Conv 3x3 (no padding) on (N, 3, h, w)."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["image", "w"], ["out"])], "open",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "h", "w"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w])
    return save_onnx_graph(graph, path)


def test_bench_sizes_open_dimensions_with_dims_and_warns_when_they_are_left_at_1(tmp_path):
    path = _open_size_onnx(tmp_path / "open.onnx")
    sized = run_cli("bench", str(path), "--dims", "h=32,w=16", "--json", *FAST, timeout=300)
    assert sized.returncode == 0 and "open input" not in sized.stderr, sized.stderr
    assert json.loads(sized.stdout)["flops"] == 2 * (4 * 30 * 14) * (3 * 3 * 3)  # each output: 3x3x3 multiply-adds
    unsized = run_cli("bench", str(path), *FAST, timeout=300)  # a 1x1 image: a 3x3 kernel cannot run on it
    assert unsized.returncode == 2 and "Traceback" not in unsized.stderr
    assert "open input dimension(s) h, w set to 1" in unsized.stderr and "--dims h=N,w=N" in unsized.stderr
    errors = [line for line in unsized.stderr.splitlines() if line.startswith("harness: error")]
    assert len(errors) == 1 and "nothing could be measured" in errors[0] and "--dims" in errors[0]
    assert "[E:onnxruntime" not in unsized.stderr  # ONNX Runtime's own log line does not leak out


def test_bench_times_a_static_batch_by_default(tmp_path):
    path = _conv_onnx(tmp_path / "static4.onnx", batch=4)
    result = run_cli("bench", str(path), "--json", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["batch_size"] for r in data["latency"]] == [4] and data["activation_batch"] == 4


def test_bench_times_an_unbatched_graph_per_call(tmp_path):
    """A [256] input was read as a batch of 256 scalars: 1/256 of the FLOPs 'per sample', samples/s 256x;
    an unbatched [3, 8] one is said so with --batch-dim none, and refuses batch sizes it cannot have."""
    vector = _matmul_onnx(tmp_path / "vec.onnx", ["x"], [4])
    data = json.loads(run_cli("bench", str(vector), "--json", *FAST, timeout=300).stdout)
    assert data["flops"] == 32 and [r["batch_size"] for r in data["latency"]] == [1]
    image = _matmul_onnx(tmp_path / "img.onnx", ["x"], [3, 4])
    as_batch = json.loads(run_cli("bench", str(image), "--json", *FAST, timeout=300).stdout)
    assert as_batch["flops"] == 32 and as_batch["latency"][0]["batch_size"] == 3  # the graph's fixed batch
    result = run_cli("bench", str(image), "--batch-dim", "none", *FAST, timeout=300)
    assert result.returncode == 0 and "96 FLOPs per call" in result.stdout, result.stdout + result.stderr
    refused = run_cli("bench", str(image), "--batch-dim", "none", "--batch-sizes", "8")
    assert refused.returncode == 2 and "no input has a batch dimension (--batch-dim none)" in refused.stderr
    # batch 1 among them: measured, and the others skipped with a warning naming them (CONTRACT.md's bench)
    some = run_cli("bench", str(image), "--batch-dim", "none", "--batch-sizes", "1,8", "--json", *FAST, timeout=300)
    assert some.returncode == 0 and [r["batch_size"] for r in json.loads(some.stdout)["latency"]] == [1], some.stderr
    assert "warning: batch size(s) 8 skipped: no input has a batch dimension (--batch-dim none)" in some.stderr
    assert json.loads(some.stdout)["skipped"] == [
        "batch size(s) 8: no input has a batch dimension (--batch-dim none), so the graph is timed per call, at "
        "batch size 1"]
    # per call, not per sample or at a batch: the activations and the throughput column say so
    assert "KiB of activations per call" in result.stdout and "calls/s (1 / mean)" in result.stdout
    assert "samples/s" not in result.stdout


def test_bench_on_a_folder_says_so(tmp_path):
    result = run_cli("bench", str(tmp_path))
    assert result.returncode == 2 and "is a folder" in result.stderr and "Traceback" not in result.stderr


def _matmul_onnx(path, inputs, x_shape):
    """``x @ w (+ bias)``: ``inputs`` orders ``x`` ((..., 4), shaped ``x_shape``) and, when named, a static
    ``bias`` (4,) that is no batch; 32 FLOPs per row of x."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y" if "bias" not in inputs else "m"])]
    if "bias" in inputs:
        nodes.append(helper.make_node("Add", ["m", "bias"], ["y"]))
    declared = {"x": helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
                "bias": helper.make_tensor_value_info("bias", TensorProto.FLOAT, [4])}
    graph = helper.make_graph(nodes, "mm", [declared[name] for name in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return save_onnx_graph(graph, path)


@pytest.mark.parametrize("inputs", [["x", "bias"], ["bias", "x"]])
def test_a_static_input_beside_an_open_batch_is_fed_as_declared_not_taken_for_the_batch(tmp_path, inputs):
    path = _matmul_onnx(tmp_path / "bias.onnx", inputs, ["N", 4])
    result = run_cli("bench", str(path), "--batch-sizes", "1,3", "--json", "--cold-runs", "0", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["batch_size"] for r in data["latency"]] == [1, 3] and "skipped" not in result.stderr
    assert data["flops"] == 32 and data.get("activation_batch", 1) == 1


def test_the_batch_is_the_dimension_named_so_even_when_not_first(tmp_path):
    from harness.ort import input_feeds, make_session

    path = _matmul_onnx(tmp_path / "time_major.onnx", ["x"], ["seq", "batch", 4])
    result = run_cli("bench", str(path), "--dims", "seq=5", "--batch-sizes", "1,2", "--json", "--cold-runs", "0",
                     *FAST, timeout=300)
    assert result.returncode == 0 and "open input" not in result.stderr, result.stderr
    assert json.loads(result.stdout)["flops"] == 5 * 32  # per sample: five time steps of one sequence
    session = make_session(path, threads=1)
    assert input_feeds(session, 2, dims={"seq": 5})["x"].shape == (5, 2, 4)
    assert input_feeds(session, 2, dims={"seq": np.int64(5)})["x"].shape == (5, 2, 4)  # from a parametrize


@pytest.mark.parametrize("batch_dim", ["N", "x[1]"])
def test_batch_dim_names_a_batch_that_is_neither_named_so_nor_first(tmp_path, batch_dim):
    from harness.ort import input_feeds, make_session

    path = _matmul_onnx(tmp_path / "time_major.onnx", ["x"], ["seq", "N", 4])
    guessed = run_cli("bench", str(path), "--dims", "N=1", "--json", "--cold-runs", "0", *FAST, timeout=300)
    assert guessed.returncode == 0 and json.loads(guessed.stdout)["flops"] == 32  # seq taken for the batch
    unset = run_cli("bench", str(path), "--json", "--cold-runs", "0", *FAST, timeout=300)
    assert ("open input dimension(s) N set to 1; give their sizes with --dims N=N (the batch is taken to be the "
            "first dimension, seq; if another is the batch, as in a time-major input, name it with --batch-dim)"
            in unset.stderr), unset.stderr
    result = run_cli("bench", str(path), "--batch-dim", batch_dim, "--dims", "seq=5", "--batch-sizes", "1,2",
                     "--json", "--cold-runs", "1", *FAST, timeout=300)
    assert result.returncode == 0 and "open input" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    assert data["flops"] == 5 * 32 and [r["batch_size"] for r in data["latency"]] == [1, 2]
    assert data["cold_start"]["runs"] == 1, data["cold_start"]  # the probe process shapes its inputs the same way
    session = make_session(path, threads=1)
    assert input_feeds(session, 2, dims={"seq": 5, batch_dim: "batch"})["x"].shape == (5, 2, 4)


@pytest.mark.parametrize("args, needle", [
    (["--batch-dim", "M"], "--batch-dim: no open input dimension is called 'M' to be the batch (open: seq, N)"),
    (["--batch-dim", " "], "--batch-dim needs a dimension's name, or INPUT[AXIS]"),
    (["--batch-dim", "N", "--dims", "N=4"], "--dims: 'N' is the batch dimension: its size is the batch size (--batch-sizes, batch_size=)"),
])
def test_a_batch_dim_the_graph_lacks_is_refused_in_one_line(tmp_path, args, needle):
    path = _matmul_onnx(tmp_path / "time_major.onnx", ["x"], ["seq", "N", 4])
    result = run_cli("bench", str(path), *args, *FAST, timeout=300)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"harness: error: {needle}"], result.stderr


@pytest.mark.parametrize("dims, needle", [
    ("H=3", "--dims: no open input dimension is called 'H' (open, besides the batch: seq)"),
    ("seq=3,seq=4", "--dims gives 'seq' twice"),
    ("batch=4", "--dims: 'batch' is the batch dimension: its size is the batch size (--batch-sizes, batch_size=); "
                "if another dimension is the batch (a time-major input), name it (--batch-dim, batch_dim=)"),
])
def test_dims_that_match_no_open_dimension_are_refused_in_one_line(tmp_path, dims, needle):
    path = _matmul_onnx(tmp_path / "time_major.onnx", ["x"], ["seq", "batch", 4])
    result = run_cli("bench", str(path), "--dims", dims, *FAST, timeout=300)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"harness: error: {needle}"], result.stderr


def test_an_unnamed_open_dimension_is_sized_as_input_and_axis(tmp_path):
    path = _matmul_onnx(tmp_path / "unnamed.onnx", ["x"], ["N", None, 4])
    warned = run_cli("bench", str(path), "--json", "--cold-runs", "0", *FAST, timeout=300)
    assert warned.returncode == 0 and "--dims x[1]=N" in warned.stderr, warned.stderr
    sized = run_cli("bench", str(path), "--dims", "x[1]=6", "--json", "--cold-runs", "0", *FAST, timeout=300)
    assert sized.returncode == 0 and "open input" not in sized.stderr, sized.stderr
    assert json.loads(sized.stdout)["flops"] == 6 * 32 and json.loads(warned.stdout)["flops"] == 32


def test_a_named_open_dimension_may_be_sized_by_position_and_every_input_sharing_it_follows(tmp_path):
    """``--dims x[1]=6`` was refused for a dimension named ``seq`` though ``--batch-dim x[1]`` was taken."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["z"])], "shared",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "seq"]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "seq"])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    path = save_onnx_graph(graph, tmp_path / "shared.onnx")
    sized = run_cli("bench", str(path), "--dims", "x[1]=6", "--batch-sizes", "1,2", "--json", "--cold-runs", "1",
                    *FAST, timeout=300)
    assert sized.returncode == 0 and "open input" not in sized.stderr, sized.stderr  # y's seq is 6 too, or Add fails
    data = json.loads(sized.stdout)
    assert [r["batch_size"] for r in data["latency"]] == [1, 2] and data["skipped"] == []
    assert "assumed_dims_1" not in data and "error" not in data["cold_start"], data
    by_name = json.loads(run_cli("bench", str(path), "--dims", "seq=6", "--json", "--cold-runs", "0", *FAST,
                                 timeout=300).stdout)
    assert by_name["activation_bytes"] == data["activation_bytes"]
    twice = run_cli("bench", str(path), "--dims", "seq=6,y[1]=6")
    assert twice.returncode == 2 and twice.stderr.strip().splitlines() == [
        "harness: error: --dims: 'seq' is given twice, by name and by position"], twice.stderr


@pytest.mark.parametrize("content, needle", [(b"", "it has no graph; the file is empty")])
def test_an_empty_file_is_not_a_readable_model(tmp_path, content, needle):
    path = tmp_path / "empty.onnx"
    path.write_bytes(content)
    result = run_cli("bench", str(path))
    assert result.returncode == 2 and needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_provider_name_is_refused(tmp_path):
    path = _conv_onnx(tmp_path / "m.onnx")
    result = run_cli("bench", str(path), "--providers", "cpu,foo", *FAST)
    assert result.returncode == 2 and "unknown ONNX Runtime provider(s) foo" in result.stderr


def test_more_threads_than_cores_is_said_as_run_says_it(tmp_path):
    from harness.latency import usable_cores

    over = usable_cores() + 1
    path = _conv_onnx(tmp_path / "m.onnx")
    result = run_cli("bench", str(path), "--threads", f"1,{over}", "--cold-runs", "0", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"harness: warning: --threads {over}: more threads than the {over - 1} cores this process may use" in result.stderr
    assert "samples/s (batch / mean)" in result.stdout  # the throughput is the mean's, not the p50's beside it
    header = next(line for line in result.stdout.splitlines() if line.startswith("provider"))
    assert header.index("mean ms") < header.index("samples/s")  # the mean it comes from is shown beside it


def test_the_cores_are_those_the_process_may_run_on_not_the_machines():
    """Under a container's cpuset (or taskset) os.cpu_count() is the host's: "all cores" timed oversubscribed."""
    import os
    import subprocess
    import sys

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from harness.latency import usable_cores, default_thread_counts, threads_over_cores; "
            "print(usable_cores(), default_thread_counts(), threads_over_cores([2]) is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "[1]", "True"]


def _linear_onnx(path, outputs, batch="N"):
    """``x (batch, 16) @ w (16, outputs)``: 32 x outputs FLOPs per sample."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((16, outputs), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return save_onnx_graph(graph, path)


def test_against_times_two_files_in_alternating_rounds_and_gives_the_ratio(tmp_path):
    big = _linear_onnx(tmp_path / "big.onnx", 4096)
    small = _linear_onnx(tmp_path / "small.onnx", 4)
    result = run_cli("bench", str(big), "--against", str(small), "--batch-sizes", "64", "--rounds", "3", "--json",
                     "--cold-runs", "0", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    against = json.loads(result.stdout)["against"]
    assert against["model"] == str(small) and against["flops"] == 32 * 4 and against["bytes"] > 0
    [compared] = against["comparisons"]  # one per row of MODEL: here one batch size, one thread count
    assert (compared["a"], compared["b"], compared["batch_size"], compared["threads"], compared["rounds"]) == (
        "big.onnx", "small.onnx", 64, 1, 3)
    assert compared["ratio"] > 1.5  # 1000x the multiply-adds
    assert "--against is the model itself" not in result.stderr
    itself = run_cli("bench", str(small), "--against", str(tmp_path / "." / "small.onnx"), "--batch-sizes", "64",
                     "--rounds", "1", "--json", "--cold-runs", "0", *FAST, timeout=300)
    assert itself.returncode == 0 and (f"harness: warning: --against is the model itself ({tmp_path / '.' / 'small.onnx'}"
                                       "): every ratio is about 1") in itself.stderr, itself.stderr
    text = run_cli("bench", str(small), "--against", str(big), "--batch-sizes", "64", "--rounds", "2",
                   "--cold-runs", "0", *FAST, timeout=300)
    assert text.returncode == 0, text.stderr
    line = text.stdout.strip().splitlines()[-1]
    assert line.startswith("  CPUExecutionProvider, batch 64, 1 thread(s): small.onnx is ") and (
        "x faster than big.onnx (small.onnx/big.onnx = " in line and "over 2 alternating rounds" in line), line


def test_against_skips_a_setting_the_other_file_cannot_take_and_refuses_bad_input_in_one_line(tmp_path):
    open_batch = _linear_onnx(tmp_path / "open.onnx", 4)
    static = _linear_onnx(tmp_path / "static.onnx", 4, batch=1)
    result = run_cli("bench", str(open_batch), "--against", str(static), "--batch-sizes", "1,2", "--rounds", "1",
                     "--json", "--cold-runs", "0", *FAST, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [c["batch_size"] for c in data["against"]["comparisons"]] == [1]
    assert data["skipped"] == ["--against at batch size 2 on CPUExecutionProvider with 1 thread(s): input 'x' has a "
                               "static batch dimension 1"]
    assert "warning: skipped --against at batch size 2" in result.stderr
    for args, needle in [
        (["--rounds", "2"], "--rounds needs --against: they are the rounds of that comparison"),
        (["--against", str(tmp_path / "gone.onnx")], f"--against: {tmp_path / 'gone.onnx'}: no such file"),
        # sizes MODEL's dims take that OTHER lacks: not timed at another input size in silence
        (["--against", str(_open_size_onnx(tmp_path / "image.onnx")), "--dims", "x[1]=3"],
         f"--against {tmp_path / 'image.onnx'}: --dims: no open input dimension is called 'x[1]' (open, besides "
         "the batch: h, w)"),
    ]:
        model = open_batch if "x[1]=3" not in args else _matmul_onnx(tmp_path / "seq.onnx", ["x"], ["N", None, 4])
        refused = run_cli("bench", str(model), *args, *FAST)
        assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [f"harness: error: {needle}"], (
            args, refused.stderr)

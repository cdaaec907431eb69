"""The export stage in a run: a doubtful trace, a fixed batch and a fallback, as the user sees them."""

from __future__ import annotations

import json

from conftest import THIRDPARTY, offline_cli_env, run_cli


def plugin_line(needle: str) -> str:
    """``export_doubts_plugin.py:LINE``, where the tracer warns about ``needle``'s line."""
    lines = (THIRDPARTY / "export_doubts_plugin.py").read_text().splitlines()
    return f"export_doubts_plugin.py:{next(i for i, line in enumerate(lines, 1) if needle in line)}"


def test_a_run_says_why_each_export_failed_or_fell_back(tmp_path):
    """A branch on values was exported by the silent TorchScript fallback and the job was "ok"; a len(x)
    failed later at onnx-eval with ONNX Runtime's "Got invalid dimensions"; a fallback was said only in
    results.json."""
    env = offline_cli_env(tmp_path, "harness-export-doubts", {"export-doubts": "export_doubts_plugin"})
    result = run_cli("run", "--plugins", "export-doubts,datasets", "--datasets", "synthetic", "--epochs", "1",
                     "--max-train-samples", "64", "--max-test-samples", "64", "--device", "cpu", "--batch-sizes", "1",
                     "--quick", "--no-torch-latency", "--cold-runs", "0", "--out", str(tmp_path / "out"),
                     "--run-id", "e", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    jobs = {j["model"]: j for j in json.loads((tmp_path / "out" / "e" / "results.json").read_text())["jobs"]}

    branchy = jobs["export-branchy"]
    assert (branchy["status"], branchy["stage"], branchy["onnx"]) == ("failed", "export", None)
    assert branchy["error"].startswith("dynamo: ") and "; torchscript: the trace may hold one branch only" in \
        branchy["error"] and f"{plugin_line('x.mean() >')}: Converting a tensor to a Python boolean" in branchy["error"]

    batch = jobs["export-len"]
    assert (batch["status"], batch["stage"]) == ("failed", "export"), batch["error"]
    assert "use x.flatten(1) or x.reshape(x.shape[0], -1)" in batch["error"]
    assert f"{plugin_line('len(x), -1')}: Using len to get tensor shape" in batch["error"]

    cdist = jobs["export-cdist"]
    assert cdist["status"] == "ok", cdist["error"]
    if cdist["onnx"]["exporter"] == "torchscript":  # the dynamo exporter lacks aten::_cdist_forward
        reason = cdist["onnx"]["fallback_reason"]
        assert cdist["onnx"]["trace_warnings"] == [] and reason
        said = [line for line in result.stderr.splitlines() if line.startswith("harness: warning: export-cdist")]
        assert said == [f"harness: warning: export-cdist@synthetic: the dynamo exporter failed, so the ONNX file is "
                        f"a TorchScript trace: {reason} (said once per model)"], result.stderr[-3000:]


def test_a_fallback_is_said_once_per_model_not_once_per_seed(tmp_path):
    """On an H200 (torch 2.11) five mnist-fast seeds printed five identical fallback warnings."""
    env = offline_cli_env(tmp_path, "harness-export-doubts", {"export-doubts": "export_doubts_plugin"})
    config = tmp_path / "seeds.toml"
    config.write_text("[sweep]\nseed = [0, 1]\n")
    result = run_cli("run", "--plugins", "export-doubts,datasets", "--models", "export-cdist", "--datasets",
                     "synthetic", "--epochs", "1", "--max-train-samples", "64", "--max-test-samples", "64",
                     "--device", "cpu", "--batch-sizes", "1", "--quick", "--no-torch-latency", "--cold-runs", "0",
                     "--config", str(config), "--out", str(tmp_path / "out"), "--run-id", "s", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = json.loads((tmp_path / "out" / "s" / "results.json").read_text())["jobs"]
    fell_back = [j["id"] for j in jobs if j["onnx"]["exporter"] == "torchscript"]
    said = [line for line in result.stderr.splitlines() if "the dynamo exporter failed" in line]
    assert len(said) == min(1, len(fell_back)), result.stderr[-3000:]
    if fell_back:  # both seeds fell back alike: both recorded, the first named
        assert len(fell_back) == 2 and said[0].startswith(f"harness: warning: {fell_back[0]}: ")

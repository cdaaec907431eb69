"""Bad input: exit status 2, one line on stderr naming the problem, no traceback."""

from __future__ import annotations

import pytest
from conftest import run_cli


def _assert_usage_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message_lines = [line for line in result.stderr.splitlines()
                     if line.strip() and not line.startswith(("Usage:", "Try "))]
    assert len(message_lines) == 1, result.stderr
    for needle in needles:
        assert needle in message_lines[0], message_lines[0]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["run", "--models", "mnist-cnnn", "--datasets", "synthetic"], ["unknown model 'mnist-cnnn'", "mnist-cnn"]),
        (["run", "--datasets", "synthetc"], ["unknown dataset 'synthetc'", "synthetic"]),
        (["run", "--plugins", "nosuchplugin"], ["unknown plugin 'nosuchplugin'"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "0"], ["--epochs"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "abc"], ["--epochs"]),
        (["run", "--batch-sizes", "1,-4"], ["--batch-sizes"]),
        (["run", "--models", "mnist-mlp", "--datasets", "synthetic", "--data-dir", "/no/such/dir"], ["--data-dir"]),
        (["run", "--config", "/no/such/config.toml"], ["/no/such/config.toml"]),
        (["bench", "/no/such/model.onnx"], ["no such file"]),
        (["report", "/no/such/run"], ["results.json"]),
        (["list", "widgets"], ["widgets"]),
        (["run", "--models", "cnn3d-sequential", "--datasets", "synthetic"], ["no job to run"]),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needles):
    _assert_usage_error(run_cli(*args, timeout=120), *needles)


def test_out_pointing_at_a_file_is_refused(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--out", str(target))
    _assert_usage_error(result, str(target))


def test_corrupt_onnx_file_for_bench(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    _assert_usage_error(run_cli("bench", str(bad)), "bad.onnx")


def test_malformed_config_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("epochs = [unclosed\n")
    _assert_usage_error(run_cli("run", "--config", str(config)), "malformed")


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "run", "--models", "nope", "--datasets", "synthetic")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_python_dash_m_and_version():
    result = run_cli("--version")
    assert result.returncode == 0 and "harness" in result.stdout

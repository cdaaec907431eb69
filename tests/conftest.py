"""Shared fixtures: offline data cache in tmp, and fake third-party plugins installed as real distributions."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Property tests check behaviour, not speed: on shared CI machines one example can
# stall for half a second (an fsync, a busy core), which is not a failure.
settings.register_profile("harness", deadline=None)
settings.load_profile("harness")

THIRDPARTY = Path(__file__).parent / "thirdparty"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path_factory, monkeypatch):
    """No test downloads anything, and dataset caches live in a per-session tmp folder. Under pytest-xdist
    (the README's test command) each test sees the environment a plain pytest run gives it: a worker sets
    COLUMNS=80 (the comparison table would leave columns out to fit it) and PYTEST_XDIST_WORKER (a
    pytest-benchmark run a test starts would switch itself off)."""
    cache = tmp_path_factory.getbasetemp() / "harness-cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    for name in ("COLUMNS", "LINES", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


class SitePackages:
    """A folder on ``sys.path`` holding distributions (``*.dist-info`` with entry points) written by a test."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def install(self, dist: str, plugins: dict[str, str], version: str = "1.0") -> None:
        """Install ``dist`` declaring ``harness`` entry points ``{name: module}``; modules copied from tests/thirdparty."""
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[harness]"] + [f"{name} = {module}" for name, module in plugins.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module in plugins.values():
            source = THIRDPARTY / f"{module.split(':')[0]}.py"
            if source.exists():
                shutil.copy(source, self.root / source.name)
        importlib.invalidate_caches()

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that sees these distributions."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return env


def offline_cli_env(root: Path, dist: str, plugins: dict[str, str]) -> dict[str, str]:
    """Environment for ``run_cli`` with ``dist`` installed under ``root/site``, offline, caching in ``root/cache``."""
    site = SitePackages(root / "site")
    site.install(dist, plugins)
    env = site.env()
    env.update(HARNESS_OFFLINE="1", HARNESS_CACHE_DIR=str(root / "cache"))
    return env


@pytest.fixture
def site(tmp_path, monkeypatch) -> SitePackages:
    packages = SitePackages(tmp_path / "site")
    monkeypatch.syspath_prepend(str(packages.root))
    yield packages
    for name in [m for m in sys.modules if m in {p.stem for p in THIRDPARTY.glob("*.py")}]:
        del sys.modules[name]


def cli_runner() -> Any:
    """click's CliRunner with standard error apart from standard output, on every click the project allows:
    8.1 mixes them unless told (``mix_stderr=False``, a parameter 8.2 removed), and ``result.stderr`` raised."""
    import inspect

    from click.testing import CliRunner

    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600):
    """``python -m harness ARGS`` in a subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def save_onnx_graph(graph: Any, path: Path, check: bool = False, **model_fields: Any) -> Path:
    """``graph`` (an ``onnx.GraphProto``) saved at ``path`` as a model of opset 17 and IR version 8, which
    every supported ONNX Runtime loads; ``check`` runs ``onnx.checker`` on it first."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], **model_fields)
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def relu_onnx(path: Path, shape: list) -> Path:
    """A one-node ONNX graph (Relu) with input ``x`` and output ``y`` of ``shape`` (ints or symbolic names)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    return save_onnx_graph(graph, path)


def write_run(folder: Path, data: dict) -> Path:
    """A run folder holding ``data`` as its results.json (for report and compare tests)."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(data))
    return folder

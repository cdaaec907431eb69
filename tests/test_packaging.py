"""The package list in pyproject.toml ships every package folder of the tree.

``[tool.setuptools] packages`` is explicit (plugins/ installs as
``harness_plugins``), so a new plugin folder that is not added there would be
missing from a wheel while every test run from the checkout still passes. A wheel built from a
copy of the source also has to carry py.typed, the LICENSE and the one version.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Sequence

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_listed_for_the_wheel():
    setuptools = _pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for name, folder in setuptools["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(base).parts
            found.add(".".join((name, *relative)))
    assert found, "no package folders found: package-dir is wrong"
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "these listed packages have no folder"


def test_every_builtin_plugin_module_has_an_entry_point():
    project = _pyproject()["project"]
    targets = set(project["entry-points"]["harness"].values())
    plugin_packages = {f"harness_plugins.{p.parent.name}" for p in (ROOT / "plugins").glob("*/__init__.py")}
    plugin_modules = {f"harness_plugins.{p.stem}" for p in (ROOT / "plugins").glob("*.py") if p.stem != "__init__"}
    # Every registered target exists; every plugin package is registered (helper modules need not be).
    assert targets <= plugin_packages | plugin_modules
    assert plugin_packages - targets == set(), "plugin packages without an entry point"


def _needs_the_backend() -> None:
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__}: pyproject.toml needs >=77 (PEP 639 license fields)")


def _built(tmp_path: Path, kind: str, files: Sequence[str] = ()) -> Path:
    """A ``wheel`` or ``sdist`` built by the project's own backend from a copy of the package folders, the
    project files and ``files`` (nothing written in the checkout)."""
    _needs_the_backend()
    source = tmp_path / f"{kind}-src"
    for folder in ("harness", "plugins"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE", *files):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / f"{kind}-dist"
    dist.mkdir()
    code = f"import setuptools.build_meta as b; print(b.build_{kind}({str(dist)!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = dist.iterdir()
    return built


def _built_wheel(tmp_path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(_built(tmp_path, "wheel"))


def test_the_wheel_ships_py_typed_the_license_and_the_one_version(tmp_path):
    import harness

    with _built_wheel(tmp_path) as wheel:
        names = set(wheel.namelist())
        assert "harness/py.typed" in names  # PEP 561
        (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert "MIT License" in wheel.read(license_file).decode()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = wheel.read(metadata_name).decode().split("\n\n", 1)[0].splitlines()
    assert f"Version: {harness.__version__}" in metadata  # the version is written once, in harness/__init__.py
    assert "License-Expression: MIT" in metadata
    assert 'Requires-Dist: tomli>=1.1; python_version < "3.11"' in metadata  # --config x.toml on Python 3.10
    assert not any(n.startswith("plugins/") for n in names)  # installed as harness_plugins only


def test_the_sdist_carries_the_test_suite_and_what_it_runs(tmp_path):
    """A source distribution held the package and the test modules but not conftest.py, the fixtures or the
    fake third-party plugins, so its tests could not run (MANIFEST.in grafts them)."""
    _needs_the_backend()
    tracked = subprocess.run(["git", "ls-files", "tests", "benchmarks", "docs", "tox.ini"], cwd=ROOT,
                             capture_output=True, text=True)
    if tracked.returncode != 0 or not tracked.stdout.strip():
        pytest.skip("not a git checkout: which files are the project's is not known")
    archive = _built(tmp_path, "sdist", [*tracked.stdout.split(), "MANIFEST.in", "reports/README.md"])
    import tarfile

    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = [name for name in tracked.stdout.split() if name not in names]
    assert not missing, missing
    assert "reports/README.md" in names and not any("__pycache__" in name for name in names)


def test_the_version_is_written_once():
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "harness.__version__"}
    assert (ROOT / "harness" / "py.typed").is_file() and (ROOT / "LICENSE").is_file()


def test_no_install_hint_names_the_pypi_harness():
    """`harness` on PyPI is another project: hints name the third-party package, or `-e .[extra]` from the checkout."""
    pattern = re.compile(r"pip install\s+['\"]?harness\[")
    files = [*(ROOT / "harness").rglob("*.py"), *(ROOT / "plugins").rglob("*.py"), *(ROOT / "docs").rglob("*.md"),
             ROOT / "README.md"]
    found = [f"{path.relative_to(ROOT)}:{number}" for path in files
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


@pytest.mark.parametrize("platform_system,platform_machine", [
    ("Linux", "x86_64"), ("Windows", "AMD64"), ("Darwin", "arm64"), ("Darwin", "x86_64"), ("Linux", "aarch64"),
    ("Windows", "ARM64")])
def test_tox_oldest_pins_the_onnx_runtime_each_platform_installs(platform_system, platform_machine):
    """tox -e oldest pinned onnxruntime-gpu 1.18 on Linux x86-64 only: on Windows and macOS it tested the
    newest ONNX Runtime while saying it checked the lower bound."""
    import configparser

    from packaging.requirements import Requirement

    environment = {"platform_system": platform_system, "platform_machine": platform_machine}

    def runtimes(lines):
        found = set()
        for line in lines:
            requirement = Requirement(line)
            if requirement.name.startswith("onnxruntime") and (
                    requirement.marker is None or requirement.marker.evaluate(environment)):
                found.add((requirement.name, str(requirement.specifier).lstrip("=<>~!")))
        return found

    wanted = runtimes(_pyproject()["project"]["dependencies"])
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    pinned = runtimes(line for line in tox["testenv:oldest"]["deps"].splitlines() if line.strip())
    assert len(wanted) == 1 and {name for name, _ in pinned} == {name for name, _ in wanted}
    assert all(version == dict(wanted)[name] + ".0" or version == dict(wanted)[name] for name, version in pinned)

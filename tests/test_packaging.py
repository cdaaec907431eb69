"""The package list in pyproject.toml ships every package folder of the tree.

``[tool.setuptools] packages`` is explicit (plugins/ installs as
``harness_plugins``), so a new plugin folder that is not added there would be
missing from a wheel while every test run from the checkout still passes.
"""

from __future__ import annotations

from pathlib import Path

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

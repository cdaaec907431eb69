"""Figures the README states that the code can recompute: they must not drift from the models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from harness.registry import build_registry
from harness.text import mflops
from harness.train import count_flops

README = Path(__file__).resolve().parents[1] / "README.md"


def _built_in_models_table() -> list[tuple[list[str], list[str]]]:
    """(model names, MFLOPs cells) per row of the README's built-in models table."""
    text = README.read_text()
    section = text[text.index("## Built-in models"):].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    end = next(i for i in range(start, len(section)) if not section[i].startswith("|"))
    lines = section[start:end]  # the section's first table
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    column = headers.index("MFLOPs per sample")
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append((re.findall(r"`([a-z0-9-]+)`", cells[1]), [c.strip() for c in cells[column].split("/")]))
    return rows


def test_the_readme_lists_every_built_in_model_once():
    listed = [name for names, _ in TABLE for name in names]
    registry = build_registry()
    builtin = {name for name, plugin in registry.owners["models"].items()
               if registry.host.plugins[plugin].distribution == "harness"}
    assert len(listed) == len(set(listed)) and set(listed) == builtin


TABLE = _built_in_models_table()


@pytest.mark.parametrize("names, cells", TABLE, ids=[names[0] if names else "?" for names, _ in TABLE])
def test_the_readme_mflops_are_what_the_models_count(names, cells):
    models = build_registry().models
    assert len(names) == len(cells)
    for name, cell in zip(names, cells):
        spec = models[name]
        shape = (1, 16, 16, 16) if spec.input_rank == 4 else (spec.input_channels or 1, 28, 28)
        torch.manual_seed(0)
        model = spec.build(num_classes=10, input_shape=shape)
        assert mflops(count_flops(model, torch.randn(2, *shape))) == cell, name


def _plugin_example() -> dict[str, str]:
    """The "Write a plugin" section's code blocks, by the file each names in its first line."""
    text = README.read_text()
    section = text[text.index("## Write a plugin"):]
    section = section[:section.index("\n## ", 1)]
    files = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", section, flags=re.S):
        first = block.splitlines()[0]
        name = re.match(r"# (?:your )?(\S+)", first)[1]
        files[name] = block
    return files



def test_the_readme_plugin_example_installs_and_runs(tmp_path):
    """Its model, dataset and metric, as a reader copies them: registered, paired, trained, reported."""
    import json
    import subprocess
    import sys

    from conftest import SitePackages, run_cli

    files = _plugin_example()
    assert set(files) == {"pyproject.toml", "my_package/harness_plugin.py", "my_package/nets.py",
                          "my_package/data.py", "my_package/metrics.py"}
    entry_points = dict(re.findall(r'^(\S+) = "(\S+)"$', files.pop("pyproject.toml"), flags=re.M))
    site = SitePackages(tmp_path / "site")
    site.install("my-package", entry_points)
    for name, code in files.items():
        (site.root / name).parent.mkdir(exist_ok=True)
        (site.root / name).write_text(code)
    (site.root / "my_package" / "__init__.py").write_text("")
    env = {**site.env(), "HARNESS_OFFLINE": "1", "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    listed = run_cli("plugins", "--strict", env=env)  # every lazy target imported and its signature checked
    assert listed.returncode == 0, listed.stdout + listed.stderr
    # the CI section's two lines that make the file a latency test needs, in a project folder
    text = README.read_text()
    ci = text[text.index("For your own plugin's model"):]
    commands = re.search(r"```bash\n(.*?)```", ci, flags=re.S)[1].strip().splitlines()
    assert len(commands) == 3 and commands[1].startswith("harness run --plugins myplugin ")
    (tmp_path / "tests").mkdir()
    for command in commands * 2:  # twice: a CI workspace that is kept must take the recipe again
        command = re.sub(r"^(harness|python) ", lambda m: f"{sys.executable} {'-m harness ' * (m[1] == 'harness')}",
                         command)
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert (tmp_path / "tests" / "model.onnx").stat().st_size > 0
    results = json.loads((tmp_path / "build" / "ci" / "results.json").read_text())
    (job,) = results["jobs"]
    assert (job["id"], job["status"]) == ("my-net@my-data", "ok")
    assert job["metrics"]["error-rate"] == pytest.approx(1 - job["metrics"]["accuracy"])
    assert job["onnx"]["metrics"]["error-rate"] == pytest.approx(1 - job["onnx"]["metrics"]["accuracy"])
    assert results["metric_specs"]["error-rate"]["higher_is_better"] is False

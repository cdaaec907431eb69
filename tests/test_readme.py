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

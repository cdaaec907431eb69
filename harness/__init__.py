"""harness: train, export to ONNX and benchmark small neural networks, one plugin at a time.

The public surface for plugin authors is importable from here without pulling
in torch: :data:`hookimpl`, :class:`ModelSpec`, :class:`DatasetSpec`,
:class:`MetricSpec`, :class:`TrackerSpec`, :class:`Splits`, :class:`Recipe`, :class:`Schedule` and :class:`lazy`, and
:class:`DataUnavailableError`, which a dataset's ``load`` raises when its files are not there, and
:class:`HarnessError`, what :mod:`harness.api` raises for bad input (the CLI's exit 2).
"""

from __future__ import annotations

import pluggy

from harness._names import NAME
from harness.errors import DataUnavailableError, HarnessError
from harness.specs import DatasetSpec, MetricSpec, ModelSpec, Recipe, Schedule, Splits, TrackerSpec, lazy

# The one place the version is written: pyproject.toml reads it from here ([tool.setuptools.dynamic],
# statically, without importing the package). Keep it a plain string literal.
__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker(NAME)
"""Marker for plugin hook implementations: ``@hookimpl def harness_models(): ...``."""

__all__ = [
    "DataUnavailableError",
    "DatasetSpec",
    "HarnessError",
    "MetricSpec",
    "ModelSpec",
    "NAME",
    "Recipe",
    "Schedule",
    "Splits",
    "TrackerSpec",
    "__version__",
    "hookimpl",
    "lazy",
]

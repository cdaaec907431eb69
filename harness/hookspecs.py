"""The plugin contract: every hook a ``harness`` plugin may implement.

A plugin is a module (or object) registered under the ``harness`` entry-point
group. It implements any of the hooks below with the same name, decorated with
``harness.hookimpl``::

    from harness import ModelSpec, hookimpl

    @hookimpl
    def harness_models():
        return [ModelSpec(name="my-net", build=build_my_net)]

Every ``harness_*`` hook takes no arguments and returns a list. The harness
calls each plugin's implementation on its own, so a hook that raises or
returns the wrong type is reported against that plugin alone. Names are unique
across plugins: the first plugin to register a name keeps it (built-in plugins
are loaded first), a later registration of the same name is refused and
reported as that later plugin's error.

Keep hook modules light: import torch inside ``build``/``load``/``compute``,
not at module top level, so ``harness --help`` and ``harness plugins`` stay
fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from harness._names import NAME

if TYPE_CHECKING:  # pragma: no cover
    from harness.reporters import Reporter
    from harness.specs import DatasetSpec, MetricSpec, ModelSpec, TrackerSpec

hookspec = pluggy.HookspecMarker(NAME)


@hookspec
def harness_models() -> "list[ModelSpec]":
    """Return the models this plugin offers.

    Called once when the registry is built. Each :class:`harness.ModelSpec`
    names the model, a ``build(num_classes, input_shape, **kwargs)`` callable
    returning a ``torch.nn.Module``, the input rank/channels/size it accepts,
    and its default training :class:`harness.Recipe`.

    :returns: a list of ``ModelSpec``; an empty list is fine.
    """


@hookspec
def harness_datasets() -> "list[DatasetSpec]":
    """Return the datasets this plugin offers.

    Called once when the registry is built. Each :class:`harness.DatasetSpec`
    names the dataset and a ``load(data_dir, seed, **kwargs)`` callable
    returning :class:`harness.Splits` (float32 inputs, int64 targets).
    Declare ``input_shape`` and ``num_classes`` when known so jobs can be
    planned without loading the data.

    :returns: a list of ``DatasetSpec``.
    """


@hookspec
def harness_metrics() -> "list[MetricSpec]":
    """Return the metrics this plugin offers.

    Called once when the registry is built. Each :class:`harness.MetricSpec`
    has ``compute(logits, targets) -> float`` evaluated on the test split
    (all of it, or the seeded subset ``--max-test-samples`` asks for), both
    for the PyTorch model and for the exported ONNX model.

    :returns: a list of ``MetricSpec``.
    """


@hookspec
def harness_reporters() -> "list[Reporter]":
    """Return run observers that watch every run (a CI notifier, a custom log). An experiment tracker a
    user switches on by name (``--track``, as the built-in MLflow and TensorBoard ones) is a
    :class:`harness.specs.TrackerSpec` from :func:`harness_trackers` instead.

    Called once per run. Each :class:`harness.reporters.Reporter` is told when
    a run starts, after each epoch of each job, when a job ends (with its
    result row and artifacts), when the run ends and, under ``harness run``,
    when the reports are written (``reports_written``). A reporter that raises
    is reported and switched off for the rest of the run; it never fails a job.

    :returns: a list of ``Reporter`` instances.
    """


@hookspec
def harness_trackers() -> "list[TrackerSpec]":
    """Return the experiment trackers this plugin offers, switched on by name.

    Called once when the registry is built. Each :class:`harness.TrackerSpec`
    is made (``make()`` returns a :class:`harness.reporters.Reporter`) only
    when a run names it: ``harness run --track NAME``, ``$HARNESS_TRACK`` or
    ``track`` in a config file; names match in any case. A tracker whose
    ``requires`` packages are missing stops that run before it starts, with
    the ``pip install`` line. ``harness list trackers`` shows them all.

    Use :func:`harness_reporters` instead for an observer that watches every
    run without being named.

    :returns: a list of ``TrackerSpec``.
    """

"""A plugin whose lazy targets and callables are wrong in ways only importing them shows (``--strict``).

The targets live in spec_lazy_nets (copied beside it by the test), so a test can see that a plain
``harness plugins`` never imports them.
"""

from harness import DatasetSpec, MetricSpec, ModelSpec, TrackerSpec, hookimpl, lazy


def positional_build(n, shape):
    raise AssertionError("never built")


def two_args_load(path, rng):
    raise AssertionError("never loaded")


def one_arg_metric(logits):
    return 0.0


@hookimpl
def harness_models():
    return [
        ModelSpec("lazy-good", lazy("spec_lazy_nets:good_net")),
        ModelSpec("lazy-num-classes-only", lazy("spec_lazy_nets:num_classes_only")),
        ModelSpec("lazy-typo-module", lazy("spec_lazy_nest:good_net")),
        ModelSpec("lazy-typo-name", lazy("spec_lazy_nets:godo_net")),
        ModelSpec("lazy-not-callable", lazy("spec_lazy_nets:NOT_CALLABLE")),
        ModelSpec("lazy-positional", lazy("spec_lazy_nets:positional_only")),
        ModelSpec("plain-positional", positional_build),
    ]


@hookimpl
def harness_datasets():
    return [DatasetSpec("lazy-load-ds", lazy("spec_lazy_nets:load_positional")),
            DatasetSpec("plain-load-ds", two_args_load)]


@hookimpl
def harness_metrics():
    return [MetricSpec("lazy-good-metric", lazy("spec_lazy_nets:metric")), MetricSpec("plain-one-arg", one_arg_metric)]


def tracker_with_a_key(api_key):
    raise AssertionError("never made")


@hookimpl
def harness_trackers():
    return [TrackerSpec("plain-keyed-tracker", tracker_with_a_key)]

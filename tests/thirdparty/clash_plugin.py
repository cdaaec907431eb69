"""A plugin that registers a name a built-in plugin already owns, plus one of its own."""
from harness import MetricSpec, hookimpl


@hookimpl
def harness_metrics():
    return [MetricSpec("accuracy", lambda logits, targets: 0.0), MetricSpec("clash-own", lambda l, t: 1.0)]

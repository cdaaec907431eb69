"""A plugin whose models, dataset and metric fail at chosen stages (the fault matrix).

Each model fails in one stage; ``fault-ok`` does not fail at all, so tests can
check the rest of the run is unaffected.
"""

from harness import DatasetSpec, MetricSpec, ModelSpec, Recipe, hookimpl

RECIPE = Recipe(optimizer="adam", lr=1e-3, batch_size=64, epochs=1)


def _flat_linear(num_classes, input_shape):
    import torch.nn as nn

    size = 1
    for d in input_shape:
        size *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(size, num_classes))


def build_ok(num_classes, input_shape, **kwargs):
    return _flat_linear(num_classes, input_shape)


def build_slow(num_classes, input_shape, **kwargs):
    """Sleeps $FAULT_SLOW_SECONDS (0 unless a test sets it) before building: the --job-timeout case."""
    import os
    import time

    time.sleep(float(os.environ.get("FAULT_SLOW_SECONDS", "0")))
    return _flat_linear(num_classes, input_shape)


def build_raises(num_classes, input_shape, **kwargs):
    raise ValueError("cannot build this network")


def build_not_a_module(num_classes, input_shape, **kwargs):
    return "not a module"


def build_nan(num_classes, input_shape, **kwargs):
    import torch.nn as nn

    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _flat_linear(num_classes, input_shape)

        def forward(self, x):
            return self.body(x) * float("nan")

    return NaNNet()


def build_unexportable(num_classes, input_shape, **kwargs):
    import torch
    import torch.nn as nn

    if not hasattr(build_unexportable, "op"):
        @torch.library.custom_op("harnessfault::double", mutates_args=())
        def double(x: torch.Tensor) -> torch.Tensor:
            return x * 2

        @double.register_fake
        def _(x):
            return torch.empty_like(x)

        double.register_autograd(lambda ctx, grad: grad * 2)

        build_unexportable.op = double

    op = build_unexportable.op

    class Unexportable(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _flat_linear(num_classes, input_shape)

        def forward(self, x):
            return op(self.body(x))

    return Unexportable()


def build_mismatch(num_classes, input_shape, **kwargs):
    import torch
    import torch.nn as nn

    class Noisy(nn.Module):
        """Adds fresh noise at every call, so ONNX Runtime cannot match PyTorch."""

        def __init__(self):
            super().__init__()
            self.body = _flat_linear(num_classes, input_shape)

        def forward(self, x):
            return self.body(x) + torch.rand_like(self.body(x))

    return Noisy()


def load_fails(data_dir, seed, **kwargs):
    raise OSError("the fault-data files are corrupt")


def metric_raises(logits, targets):
    raise ZeroDivisionError("bad metric")


def metric_mutates(logits, targets):
    logits.neg_()  # a plugin's in-place slip: the metrics after it must not see it
    targets.zero_()
    return 0.0


def metric_accuracy_again(logits, targets):
    return (logits.argmax(1) == targets).float().mean().item()


def _spec(name, build):
    return ModelSpec(name, build, f"fault matrix: {name}", recipe=RECIPE)


@hookimpl
def harness_models():
    return [
        _spec("fault-ok", build_ok),
        _spec("fault-build", build_raises),
        _spec("fault-not-module", build_not_a_module),
        _spec("fault-nan", build_nan),
        _spec("fault-export", build_unexportable),
        _spec("fault-mismatch", build_mismatch),
        _spec("fault-slow", build_slow),
        # its accepts() has a bug (a 3-D shape has no [5]): refused with a warning, never a crashed matrix
        ModelSpec("fault-accepts", build_ok, "fault matrix: accepts raises", accepts=lambda shape: shape[5] > 0),
    ]


@hookimpl
def harness_datasets():
    return [DatasetSpec("fault-data", load_fails, "always fails to load", input_shape=(1, 28, 28), num_classes=10)]


@hookimpl
def harness_metrics():
    return [MetricSpec("fault-mutates", metric_mutates), MetricSpec("fault-metric", metric_raises),
            MetricSpec("fault-accuracy-again", metric_accuracy_again)]

"""A plugin whose models and datasets break the contract in ways a plugin author could (tests/test_faults.py).

``contract net`` and ``contract_net`` are fine models whose names clean to the same file name;
``contract-uncounted`` is fine too, but cannot be counted by torch's FLOP counter; ``contract-lazy``
has a lazy layer, sized by its first forward.
"""

from harness import DatasetSpec, ModelSpec, Recipe, hookimpl

RECIPE = Recipe(optimizer="adam", lr=1e-3, batch_size=64, epochs=1)


def _linear(num_classes, input_shape, extra=0):
    import torch.nn as nn

    size = 1
    for d in input_shape:
        size *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(size, num_classes + extra))


def build_plain(num_classes, input_shape, **kwargs):
    return _linear(num_classes, input_shape)


def build_wider(num_classes, input_shape, **kwargs):
    """Fine too, and a different graph from build_plain's (one hidden layer), so the two exports differ."""
    import torch.nn as nn

    return nn.Sequential(_linear(8, input_shape), nn.ReLU(), nn.Linear(8, num_classes))


def build_too_many_logits(num_classes, input_shape, **kwargs):
    return _linear(num_classes, input_shape, extra=3)


def build_tuple(num_classes, input_shape, **kwargs):
    import torch.nn as nn

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _linear(num_classes, input_shape)

        def forward(self, x):
            out = self.body(x)
            return out, out

    return Pair()


def build_fixed(num_classes, input_shape, **kwargs):
    """Written for 10x10 inputs whatever input_shape says: its first forward fails."""
    import torch.nn as nn

    return nn.Sequential(nn.Flatten(), nn.Linear(100, num_classes))


def build_lazy(num_classes, input_shape, **kwargs):
    import torch.nn as nn

    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))  # sized by its first forward


def build_uncounted(num_classes, input_shape, **kwargs):
    """A linear model whose forward refuses to run under torch.utils.flop_counter (as a model with an
    operator the counter cannot handle would fail): the count from its ONNX export stands in."""
    import torch.nn as nn

    class Uncounted(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _linear(num_classes, input_shape)

        def forward(self, x):
            from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

            if any("FlopCounter" in type(mode).__name__ for mode in _get_current_dispatch_mode_stack()):
                raise RuntimeError("not under a FLOP counter")
            return self.body(x)

    return Uncounted()


def _data(n=96, shape=(1, 28, 28), classes=10, x_dtype=None, y_dtype=None, label_shift=0):
    import torch

    from harness import Splits

    g = torch.Generator().manual_seed(0)
    x = torch.rand((n, *shape), generator=g, dtype=x_dtype or torch.float32)
    y = torch.randint(0, classes, (n,), generator=g).to(y_dtype or torch.int64) + label_shift
    half = n // 2
    return Splits(train=(x[:half], y[:half]), test=(x[half:], y[half:]), num_classes=classes)


def load_float64(data_dir, seed, **kwargs):
    import torch

    return _data(x_dtype=torch.float64, y_dtype=torch.int32)


def load_labels_out_of_range(data_dir, seed, **kwargs):
    return _data(label_shift=5)


def load_other_shape(data_dir, seed, **kwargs):
    return _data(shape=(1, 8, 8))


def load_files(data_dir, seed, **kwargs):
    """Reads a file from data_dir, which the contract makes a pathlib.Path even without --data-dir."""
    with open(data_dir / "contract-files" / "train.csv") as handle:
        handle.read()


@hookimpl
def harness_models():
    return [
        # fine, but its published figures hold what JSON cannot: NaN, an infinity, a numpy scalar
        ModelSpec("contract net", build_plain, "fine", recipe=RECIPE,
                  reference={"test_accuracy": float("nan"), "val_accuracy": float("inf"),
                             "train_accuracy": __import__("numpy").float32(0.5), "epochs": 1}),
        ModelSpec("contract_net", build_wider, "fine; its name cleans to the same file name", recipe=RECIPE),
        ModelSpec("contract-wide", build_too_many_logits, "num_classes + 3 logits", recipe=RECIPE),
        ModelSpec("contract-tuple", build_tuple, "returns a tuple", recipe=RECIPE),
        ModelSpec("contract-fixed", build_fixed, "takes 10x10 inputs only", recipe=RECIPE),
        ModelSpec("contract-lazy", build_lazy, "fine; a lazy layer, sized by the first forward", recipe=RECIPE),
        ModelSpec("contract-uncounted", build_uncounted, "fine; torch's FLOP counter cannot run it", recipe=RECIPE),
    ]


@hookimpl
def harness_datasets():
    spec = dict(input_shape=(1, 28, 28), num_classes=10)
    return [
        DatasetSpec("contract-float64", load_float64, "float64 inputs, int32 targets", **spec),
        DatasetSpec("contract-labels", load_labels_out_of_range, "labels 5..14 for 10 classes", **spec),
        DatasetSpec("contract-declared", load_other_shape, "declares 1x28x28, loads 1x8x8", **spec),
        DatasetSpec("contract-files", load_files, "reads data_dir/contract-files/train.csv", **spec),
    ]

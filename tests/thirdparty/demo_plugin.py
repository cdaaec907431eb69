"""A third-party harness plugin used by the tests: one model, one dataset, one metric.

It is installed for the tests as a real distribution (``harness-demo-plugin``)
with a ``harness`` entry point, see ``tests/conftest.py``.
"""

import os
import time

from harness import DatasetSpec, MetricSpec, ModelSpec, Recipe, Splits, hookimpl

_builds = 0


def build_tiny(num_classes, input_shape, **kwargs):
    import torch.nn as nn

    # Test hook: with HARNESS_DEMO_HOLD=PATH, every build after the first in this process waits
    # while PATH exists, so a test can stop a run at a known point (see tests/test_resume.py).
    global _builds
    _builds += 1
    hold = os.environ.get("HARNESS_DEMO_HOLD")
    if hold and _builds > 1:
        deadline = time.monotonic() + 300
        while os.path.exists(hold) and time.monotonic() < deadline:
            time.sleep(0.05)

    flat = 1
    for d in input_shape:
        flat *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(flat, 16), nn.ReLU(), nn.Linear(16, num_classes))


def load_blobs(data_dir, seed, **kwargs):
    import torch

    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(4, 1, 28, 28, generator=g)

    def make(n):
        y = torch.randint(0, 4, (n,), generator=g)
        x = (centers[y] + 0.3 * torch.randn(n, 1, 28, 28, generator=g)).clamp(0, 1)
        return x.float(), y.long()

    return Splits(train=make(256), test=make(128), num_classes=4)


def top2(logits, targets):
    top = logits.topk(2, dim=1).indices
    return float((top == targets[:, None]).any(dim=1).float().mean())


@hookimpl
def harness_models():
    return [ModelSpec("demo-tiny", build_tiny, "a tiny MLP from a third-party plugin",
                      recipe=Recipe(optimizer="adam", lr=3e-3, batch_size=32, epochs=1))]


@hookimpl
def harness_datasets():
    return [DatasetSpec("demo-blobs", load_blobs, "4 noisy blobs, 1x28x28", input_shape=(1, 28, 28), num_classes=4)]


@hookimpl
def harness_metrics():
    return [MetricSpec("demo-top2", top2, True, "top-2 accuracy")]

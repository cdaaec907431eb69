"""Seed 002: three MNIST CNNs with exact per-layer tables (rough 6.38M, cake 389K, ultra-light 6K).

The networks live in :mod:`harness_plugins.mnist_cnns.nets`, imported only
when a model is built (this module must not import torch); its docstring
records how each table was read.
"""

from __future__ import annotations

from typing import Any

from harness import ModelSpec, Recipe, Schedule, hookimpl, lazy

SEED = "seed 002"

# The seed's shared training configuration (Setup-1-Run2, Setup-2, Setup-3):
# SGD lr 0.01, momentum 0.9, no weight decay, StepLR(step_size=10, gamma=0.1),
# batch 64, 20 epochs. The seed does not state a normalisation: MNIST's mean/std.
RECIPE = Recipe(
    optimizer="sgd",
    lr=0.01,
    momentum=0.9,
    weight_decay=0.0,
    batch_size=64,
    epochs=20,
    schedule=Schedule(kind="step", step_size=10, gamma=0.1),
    normalize=(0.1307, 0.3081),
    target_accuracy=0.99,
    # The seed's Setup-1 "set up proper data transforms with augmentation" (kept by every later setup) and
    # its train accuracy sitting below test accuracy (99.16 vs 99.19 %) say the training images were
    # augmented; it does not say how. Reconstructed as the usual RandomRotation((-7, 7), fill=0).
    augment="rotate7",
    source="seed 002: SGD lr 0.01 momentum 0.9 weight decay 0, StepLR(10, 0.1), batch 64, 20 epochs; "
           "augmentation reconstructed as random rotation of +-7 degrees",
)

TAGS = ("seed:002", "mnist", "cnn")


def _spec(
    name: str, build: Any, description: str, reference: dict[str, Any], tags: tuple[str, ...]
) -> ModelSpec:
    return ModelSpec(
        name=name,
        build=build,
        description=description,
        input_rank=3,
        input_channels=1,
        spatial_shape=(28, 28),  # fixed heads: the final conv / the FC layers are sized for 28x28
        recipe=RECIPE,
        reference={**reference, "epochs": 20, "dataset": "mnist"},
        tags=TAGS + tags,
    )


@hookimpl
def harness_models() -> list[ModelSpec]:
    return [
        _spec(
            "mnist-rough-cnn",
            lazy("harness_plugins.mnist_cnns.nets:rough_cnn"),
            "Rough CNN: 7 biased 3x3 convs 1-32-64 | 128-256 | 512-1024-10 ending in a 1x1 map, "
            "no FC; 6,379,786 params; seed 002 Setup-1-Run2",
            {
                "params": 6_379_786,
                "test_accuracy": 0.9951,
                "best_test_accuracy": 0.9952,
                "train_accuracy": 0.9994,
                "train_minutes": 14,
                "model_size_mb": 24.3,  # float32 weights: 6,379,786 x 4 bytes = 24.3 MiB
                "source": "seed 002 Setup-1-Run2",
            },
            ("rough",),
        ),
        _spec(
            "mnist-cake-cnn",
            lazy("harness_plugins.mnist_cnns.nets:cake_cnn"),
            "Cake CNN: 7 bias-free 3x3 convs 16-16-16 | 32-32 | 64-64, FC 3136-100-10; "
            "388,582 params; seed 002 Setup-2",
            {
                "params": 388_582,
                "test_accuracy": 0.9939,
                "best_test_accuracy": 0.9947,
                "train_accuracy": 0.9985,
                "train_minutes": 5,
                "model_size_mb": 1.48,  # float32 weights: 388,582 x 4 bytes = 1.48 MiB
                "source": "seed 002 Setup-2",
            },
            ("cake",),
        ),
        _spec(
            "mnist-ultralight-cnn",
            lazy("harness_plugins.mnist_cnns.nets:ultralight_cnn"),
            "Ultra-light CNN: 7 bias-free 3x3 convs 10-10-10 | 8-8 | 8-8 (unpadded), FC 72-20-10; "
            "6,008 params; seed 002 Setup-3",
            {
                "params": 6_008,
                "test_accuracy": 0.9919,
                "best_test_accuracy": 0.9919,
                "train_accuracy": 0.9916,
                "train_minutes": 5,
                # Not a weight size, unlike the other two models' 24.3 and 1.48 (float32 weights in MiB):
                # 6,008 float32 weights are 0.023 MiB. The seed's 0.45 is torchsummary's "Estimated Total
                # Size" (weights + 2 x every layer's output + the input, for one 1x28x28 image; about
                # 0.46 MiB for this net), kept as published. The report prints our weights' size beside it,
                # which is therefore about 20x smaller without the net being any different. The reference
                # has no note field the report shows, so the explanation lives here and in nets.py.
                "model_size_mb": 0.45,
                "source": "seed 002 Setup-3",
            },
            ("ultralight",),
        ),
    ]

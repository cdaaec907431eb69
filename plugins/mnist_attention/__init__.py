"""Seed 001: traditional MNIST networks (MLP, CNN) against lightweight single-weight neurons with attention.

The networks live in :mod:`harness_plugins.mnist_attention.nets`, imported
only when a model is built; its docstring records the reconstruction. The seed
gives no recipe: the one here (Adam 1e-3, batch 64, 5 epochs, MNIST
normalisation) is a standard choice, not the seed's.
"""

from __future__ import annotations

from typing import Any

from harness import ModelSpec, Recipe, hookimpl, lazy

SEED_SOURCE = "seed 001 (MNIST: traditional networks vs lightweight single-weight neurons with attention)"

RECIPE = Recipe(
    optimizer="adam",
    lr=1e-3,
    batch_size=64,
    epochs=5,
    normalize=(0.1307, 0.3081),
    source="seed 001's batch 64 (get_mnist_dataloaders(batch_size=64)); it gives no optimiser, learning rate or "
           "epochs: Adam 1e-3 for 5 epochs, a standard MNIST recipe",
)

TAGS = ("seed:001", "mnist")


def patch_grid_fits(shape: tuple[int, ...]) -> bool:
    """The attention model pools twice by 2: height and width must be multiples of 4."""
    return len(shape) == 3 and shape[1] % 4 == 0 and shape[2] % 4 == 0


def _spec(name: str, build, description: str, tags: tuple[str, ...], **fields: Any) -> ModelSpec:
    return ModelSpec(
        name=name,
        build=build,
        description=description,
        input_rank=3,
        input_channels=1,
        recipe=RECIPE,
        # The seed reports no figures, only which metrics it compares.
        reference={"source": SEED_SOURCE},
        tags=TAGS + tags,
        **fields,
    )


@hookimpl
def harness_models() -> list[ModelSpec]:
    return [
        _spec(
            "mnist-mlp",
            lazy("harness_plugins.mnist_attention.nets:mnist_mlp"),
            "Traditional fully connected net 784-256-128-10 (ReLU, dropout); "
            "235,146 params at 1x28x28; seed 001",
            ("traditional",),
            spatial_shape=(28, 28),
        ),
        _spec(
            "mnist-cnn",
            lazy("harness_plugins.mnist_attention.nets:mnist_cnn"),
            "Traditional CNN: two conv3x3+max-pool stages (32, 64) then FC 128; "
            "421,642 params at 1x28x28; seed 001",
            ("traditional",),
            spatial_shape=(28, 28),
        ),
        _spec(
            "mnist-lightweight-attention",
            lazy("harness_plugins.mnist_attention.nets:mnist_lightweight_attention"),
            "Lightweight conv features + channel/spatial attention + a layer of single-weight "
            "(elementwise) neurons + linear head; 24,211 params at 1x28x28; seed 001",
            ("lightweight", "attention"),
            accepts=patch_grid_fits,
        ),
    ]

"""Seed 004: 3D MNIST, a sequential 3D CNN against a ResNet-style 3D CNN.

The networks live in :mod:`harness_plugins.cnn3d.nets`, imported only when a
model is built; its docstring records the reconstruction and why both models
default to Adam lr 1e-3 (the seed names no optimiser).
"""

from __future__ import annotations

from harness import ModelSpec, Recipe, hookimpl, lazy

SEED_SOURCE = "seed 004 (3D MNIST: sequential 3D CNN vs ResNet-style 3D CNN)"

# The seed names no optimiser; voxels are already in [0, 1], so no normalisation.
RECIPE = Recipe(
    optimizer="adam",
    lr=1e-3,
    batch_size=32,
    epochs=15,
    normalize=None,
    source="seed 004 names no optimiser: Adam lr 1e-3 (the seed links the ResNet run's instability "
    "to a higher learning rate, so both share the lower one), batch 32, 15 epochs",
)

TAGS = ("seed:004", "3d", "mnist3d")

# What the seed measured on: the original 3D MNIST (Kaggle's point-cloud digits, as its voxelised
# ``full_dataset_vectors.h5``), not our ``mnist3d`` voxelised 2D digits, which are cleaner: the seed's
# ~0.6 validation accuracy does not carry over. Named so that a job on ``mnist3d`` (or anything else)
# is reported "not comparable: mnist3d, not 3d-mnist-point-clouds" beside the published figures.
# The report compares dataset *names*, so this holds even when ``mnist3d`` read the Kaggle file itself
# (``info["source"]`` = full_dataset_vectors.h5): a conservative "not comparable" rather than a false match.
PUBLISHED_DATASET = "3d-mnist-point-clouds"


@hookimpl
def harness_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="cnn3d-sequential",
            build=lazy("harness_plugins.cnn3d.nets:cnn3d_sequential"),
            description="Sequential 3D CNN (conv 8-16, pool, conv 32-64, one BatchNorm, pool, "
            "dense 2048-512-10); 1,260,378 params at 1x16x16x16; seed 004",
            input_rank=4,
            input_channels=1,
            spatial_shape=(16, 16, 16),
            recipe=RECIPE,
            reference={
                "train_accuracy": 0.95,
                "val_accuracy": 0.6,
                "dataset": PUBLISHED_DATASET,
                "source": SEED_SOURCE,
            },
            tags=TAGS + ("sequential",),
        ),
        ModelSpec(
            name="cnn3d-resnet",
            build=lazy("harness_plugins.cnn3d.nets:cnn3d_resnet"),
            description="ResNet-style 3D CNN (residual blocks 16-32-64, BN after each conv, "
            "global average pooling, dense 512-128-10); 325,082 params at 1x16x16x16; seed 004",
            input_rank=4,
            input_channels=1,
            spatial_shape=None,
            recipe=RECIPE,
            # The seed: validation ~0.5 to ~0.6, fluctuating (overfitting).
            reference={
                "train_accuracy": 0.99,
                "val_accuracy": 0.6,
                "val_accuracy_range": (0.5, 0.6),
                "dataset": PUBLISHED_DATASET,
                "source": SEED_SOURCE,
            },
            tags=TAGS + ("resnet",),
        ),
    ]

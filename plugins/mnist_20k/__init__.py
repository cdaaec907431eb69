"""Seed 003: MNIST under 20k parameters in under 20 epochs (enhanced, baseline, residual, wide).

The networks live in :mod:`harness_plugins.mnist_20k.nets`, imported only
when a model is built (this module must not import torch). The seed gives the
enhanced model's channel progression and only the totals of the other three;
``nets``' docstring records the reconstruction, what the seed states and what
was chosen. Every parameter count matches the seed exactly.
"""

from __future__ import annotations

from typing import Any

from harness import ModelSpec, Recipe, Schedule, hookimpl, lazy

SEED = "seed 003"

# The seed's 4-phase schedule 0.003 -> 0.001 -> 0.0003 -> 0.0001 (changes at
# epochs 5, 12, 18), batch 32, 20 epochs, weight decay 0, a 50k/10k train/val
# split. It names no optimiser; its single-LR baseline of 0.001 (Adam's
# default, far too small for plain SGD at batch 32) points to Adam.
RECIPE = Recipe(
    optimizer="adam",
    lr=0.003,
    weight_decay=0.0,
    batch_size=32,
    epochs=20,
    schedule=Schedule(kind="piecewise", milestones=((0, 0.003), (5, 0.001), (12, 0.0003), (18, 0.0001))),
    normalize=(0.1307, 0.3081),
    val_size=10000,
    target_accuracy=0.994,
    source="seed 003: 4-phase LR 0.003/0.001/0.0003/0.0001 from epochs 0/5/12/18 (Adam assumed), "
    "batch 32, 20 epochs, weight decay 0, dropout 0.05, 50k/10k train/val split",
)

TAGS = ("seed:003", "mnist", "cnn", "under-20k")


def _fits_two_pools(shape: tuple[int, ...]) -> bool:
    """Two 2x2 max-pools then global pooling: any (C, H, W) with H, W >= 4."""
    return len(shape) == 3 and min(shape[1:]) >= 4


def _spec(
    name: str, build: Any, description: str, reference: dict[str, Any], tags: tuple[str, ...]
) -> ModelSpec:
    return ModelSpec(
        name=name,
        build=build,
        description=description,
        input_rank=3,
        input_channels=1,
        spatial_shape=None,  # global average pooling head
        accepts=_fits_two_pools,
        recipe=RECIPE,
        reference={**reference, "epochs": 20, "train_minutes": 7, "dataset": "mnist"},
        tags=TAGS + tags,
    )


@hookimpl
def harness_models() -> list[ModelSpec]:
    return [
        _spec(
            "mnist-enhanced-20k",
            lazy("harness_plugins.mnist_20k.nets:enhanced_20k"),
            "Enhanced 3-stage CNN (3x3+1x1+1x1 conv-BN-ReLU per stage, 8-16-16 | 22-30-30 | 36-46-36, "
            "GAP, dropout, FC 36-10); 19,306 params; seed 003",
            {
                "params": 19_306,
                "val_accuracy": 0.9949,
                "test_accuracy": 0.9936,
                "source": "seed 003 (winning model)",
            },
            ("enhanced",),
        ),
        _spec(
            "mnist-baseline-20k",
            lazy("harness_plugins.mnist_20k.nets:baseline_20k"),
            "Baseline 3-stage CNN, narrower expanding convs (6-16-16 | 18-30-30 | 34-44-36, GAP, dropout, "
            "FC 36-10; layout reconstructed); 17,758 params; seed 003",
            {"params": 17_758, "val_accuracy": 0.9934, "source": "seed 003 (architecture evolution table)"},
            ("baseline", "reconstructed"),
        ),
        _spec(
            "mnist-residual-20k",
            lazy("harness_plugins.mnist_20k.nets:residual_20k"),
            "Residual 3-stage CNN, stages 2-3 with 1x1 projection skips (8-16-16 | 14-30-30 | 36-42-36, "
            "GAP, dropout, FC 36-10; layout reconstructed); 19,282 params; seed 003",
            {"params": 19_282, "val_accuracy": 0.9917, "source": "seed 003 (architecture evolution table)"},
            ("residual", "reconstructed"),
        ),
        _spec(
            "mnist-wide-20k",
            lazy("harness_plugins.mnist_20k.nets:wide_20k"),
            "Wide 3-stage CNN, two wider convs per stage (3x3+1x1: 16-20 | 24-29 | 44-44, GAP, dropout, "
            "FC 44-10; layout reconstructed); 19,881 params; seed 003",
            {"params": 19_881, "val_accuracy": 0.9909, "source": "seed 003 (architecture evolution table)"},
            ("wide", "reconstructed"),
        ),
    ]

"""A plugin whose specs have wrongly typed fields, each beside a good one (tests/test_specs_checks.py).

Only the bad specs may be refused: the good ones and every other plugin keep working.
"""

from harness import DatasetSpec, MetricSpec, ModelSpec, Recipe, TrackerSpec, hookimpl, lazy


def build(num_classes, input_shape, **kwargs):
    import torch.nn as nn

    size = 1
    for d in input_shape:
        size *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(size, num_classes))


def load(data_dir, seed, **kwargs):
    raise NotImplementedError("never loaded by these tests")


def metric(logits, targets):
    return 0.5


@hookimpl
def harness_models():
    return [
        ModelSpec("spec-good", build, "fine"),
        ModelSpec(42, build),
        ModelSpec("spec-spatial", build, spatial_shape=28),
        ModelSpec("spec-spatial-rank", build, spatial_shape=(28, 28), input_rank=4),
        ModelSpec("spec-recipe", build, recipe={"lr": 0.01, "epochs": 1}),
        ModelSpec("spec-recipe-field", build, recipe=Recipe(optimizer="adamw9")),
        ModelSpec("spec-rank", build, input_rank="3"),
        ModelSpec("spec-augment-rank", build, input_rank=2, recipe=Recipe(augment="rotate7")),
        ModelSpec("spec-build-str", "spec_bad_fields:build"),
        ModelSpec("spec-tags", lazy("spec_bad_fields:build"), tags="image"),
        ModelSpec("spec-dup", build, "registered twice by this plugin"),
        ModelSpec("spec-dup", build),
    ]


@hookimpl
def harness_datasets():
    return [
        DatasetSpec("spec-good-ds", load, input_shape=(1, 28, 28), num_classes=10),
        DatasetSpec("spec-shape-ds", load, input_shape=16, num_classes=4),
        DatasetSpec("spec-classes-ds", load, input_shape=(1, 28, 28), num_classes="4"),
    ]


@hookimpl
def harness_metrics():
    return [MetricSpec("spec-good-metric", metric), MetricSpec("spec-str-metric", "spec_bad_fields:metric")]


def make_tracker():
    raise NotImplementedError("never made by these tests")


@hookimpl
def harness_trackers():
    return [TrackerSpec("spec-good-tracker", make_tracker, requires=("json",)),
            TrackerSpec("spec-requires-str", make_tracker, requires="wandb"),
            TrackerSpec("spec-make-str", "spec_bad_fields:make_tracker")]

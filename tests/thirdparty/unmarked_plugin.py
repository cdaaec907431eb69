"""A plugin whose hook function lacks the harness.hookimpl marker: pluggy never calls it."""

import pluggy

from harness import ModelSpec

other_project = pluggy.HookimplMarker("someotherproject")


def _build(num_classes, input_shape, **kwargs):
    raise AssertionError("never built")


def harness_models():  # not decorated
    return [ModelSpec("unmarked-model", _build)]


@other_project
def harness_datasets():  # another project's marker
    return []

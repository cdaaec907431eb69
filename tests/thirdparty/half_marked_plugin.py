"""A plugin with one hook decorated and one not: the undecorated one is never called."""

from harness import DatasetSpec, ModelSpec, hookimpl


def _build(num_classes, input_shape, **kwargs):
    raise AssertionError("never built")


@hookimpl
def harness_models():
    return [ModelSpec("half-marked-model", _build)]


def harness_datasets():  # forgot @hookimpl
    return [DatasetSpec("forgotten-data", _build)]

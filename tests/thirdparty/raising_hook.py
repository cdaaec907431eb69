"""A plugin whose harness_models hook raises, and whose datasets hook returns the wrong type."""
from harness import hookimpl


@hookimpl
def harness_models():
    raise RuntimeError("model zoo offline")


@hookimpl
def harness_datasets():
    return {"not": "a list"}

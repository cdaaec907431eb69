"""A plugin whose entry-point name sorts before demo_plugin's and which registers demo's model name."""
from harness import ModelSpec, hookimpl


@hookimpl
def harness_models():
    return [ModelSpec("demo-tiny", lambda num_classes, input_shape: None)]

"""Built-in plugins of harness, installed as ``harness_plugins`` and registered through the ``harness`` entry-point group like any third-party plugin."""

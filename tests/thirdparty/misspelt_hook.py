"""A plugin with a typo in its hook name: check_pending() must catch it."""
from harness import hookimpl


@hookimpl
def harness_modles():
    return []

"""A reporter plugin whose run_ended fails, and which records the calls it gets (in $ENDING_LOG)."""

import json
import os

from harness import hookimpl
from harness.reporters import Reporter


class Ending(Reporter):
    name = "ending"

    def _say(self, what):
        with open(os.environ["ENDING_LOG"], "a") as log:
            log.write(json.dumps(what) + "\n")

    def run_started(self, run_dir, config, environment):
        self._say("run_started")

    def run_ended(self, results, run_dir):
        self._say(["run_ended", bool(results.get("interrupted"))])
        raise RuntimeError("the tracking server went away")


@hookimpl
def harness_reporters():
    return [Ending()]

"""A reporter plugin that fails as the run ends, and records the calls it gets (in $ENDING_LOG).

It fails in ``run_ended``, or in the method ``$ENDING_FAILS_IN`` names (``reports_written``).
"""

import json
import os

from harness import hookimpl
from harness.reporters import Reporter


class Ending(Reporter):
    name = "ending"

    def _say(self, what):
        with open(os.environ["ENDING_LOG"], "a") as log:
            log.write(json.dumps(what) + "\n")

    def _maybe_fail(self, method):
        if os.environ.get("ENDING_FAILS_IN", "run_ended") == method:
            raise RuntimeError("the tracking server went away")

    def run_started(self, run_dir, config, environment):
        self._say("run_started")

    def run_ended(self, results, run_dir):
        self._say(["run_ended", bool(results.get("interrupted"))])
        self._maybe_fail("run_ended")

    def reports_written(self, run_dir, paths):
        self._say(["reports_written", sorted(p.name for p in paths if p.parent.name != "plots")])
        self._maybe_fail("reports_written")


@hookimpl
def harness_reporters():
    return [Ending()]

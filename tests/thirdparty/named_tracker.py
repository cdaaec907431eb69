"""A third-party tracker plugin: ``jsonlog`` writes the calls it gets to ``$JSONLOG_PATH``.

``needs-extra`` requires a package that is not installed; ``broken`` cannot be made.
"""

import json
import os

from harness import TrackerSpec, hookimpl
from harness.reporters import Reporter


class JsonLog(Reporter):
    def _say(self, what):
        with open(os.environ["JSONLOG_PATH"], "a") as log:
            log.write(json.dumps(what) + "\n")

    def run_started(self, run_dir, config, environment):
        self._say(["run_started", self.name])

    def job_ended(self, job_id, row, run_dir):
        self._say(["job_ended", job_id, row["status"]])


def broken():
    raise RuntimeError("no API key in $JSONLOG_KEY")


@hookimpl
def harness_trackers():
    return [
        TrackerSpec("jsonlog", make=JsonLog, description="Calls as JSON lines in $JSONLOG_PATH."),
        TrackerSpec("needs-extra", make=JsonLog, requires=("harness_no_such_package",), install="jsonlog[extra]"),
        TrackerSpec("broken", make=broken),
    ]

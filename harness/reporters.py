"""Run observers: the objects plugins return from ``harness_reporters``, or make for a ``TrackerSpec``.

A reporter sees a run as it happens (for experiment trackers such as MLflow
or TensorBoard). Every method has a do-nothing default, so a reporter
overrides only what it needs. The runner calls them through
:class:`ReporterSet`, which switches off a reporter that raises and records
why, so a tracker's problem never fails a job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from harness.text import redact_credentials, squeeze

log = logging.getLogger(__name__)


class Reporter:
    """Base class of run observers; ``name`` identifies it in messages."""

    name = "reporter"

    def run_started(self, run_dir: Path, config: dict[str, Any], environment: dict[str, Any]) -> None:
        """Called once before the first job."""

    def job_started(self, job_id: str, info: dict[str, Any]) -> None:
        """Called when a job begins; ``info`` has model, dataset, recipe and params once known."""

    def epoch_ended(self, job_id: str, record: dict[str, Any], model: Any = None) -> None:
        """Called after every training epoch with its history record and the plugin's torch model (as its
        ``build`` made it, without the input adapter the harness wraps around it)."""

    def job_ended(self, job_id: str, row: dict[str, Any], run_dir: Path) -> None:
        """Called with the job's finished ``results.json`` row (artifact paths are relative to ``run_dir``)."""

    def run_ended(self, results: dict[str, Any], run_dir: Path) -> None:
        """Called once after the last job with the whole results document (also when the run was
        interrupted: ``results["interrupted"]``)."""

    def reports_written(self, run_dir: Path, paths: list[Path]) -> None:
        """Called by ``harness run`` after ``run_ended``, once results.json holds its final figures (the edge
        answer) and the reports (results.csv, report.md, report.html, the plots) are written: ``paths``."""


def make_trackers(registry: Any, names: Iterable[str]) -> list[Reporter]:
    """The reporters of the trackers called ``names`` (in any case; each once), made now.

    Raises :class:`harness.errors.UnknownNameError` for a name no plugin registers, and
    :class:`harness.errors.HarnessError` for a tracker whose ``requires`` packages are not installed
    (with the ``pip install`` line) or whose ``make`` raises."""
    from harness.errors import HarnessError
    from harness.manager import one_line

    by_lower = {name.lower(): name for name in registry.trackers}
    reporters = []
    for asked in dict.fromkeys(n.strip().lower() for n in names if n.strip()):
        spec = registry.get("trackers", by_lower.get(asked, asked))
        missing = missing_packages(spec)
        if missing:
            install = spec.install or " ".join(missing)
            raise HarnessError(f"the {spec.name} tracker needs the {', '.join(missing)} "
                               f"package{'s' if len(missing) > 1 else ''}: pip install \"{install}\"")
        try:
            reporter = spec.make()
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's bug: one line naming the tracker, exit 2
            log.debug("tracker %r: make() raised", spec.name, exc_info=True)
            raise HarnessError(f"the {spec.name} tracker could not be made: {one_line(exc)}") from None
        if not getattr(reporter, "name", None) or reporter.name == Reporter.name:
            try:  # told apart from others in messages and reporter_errors by the name it was asked by
                reporter.name = spec.name
            except AttributeError:
                pass
        try:  # what --track switched on (results.json's "trackers": a resume without it is warned of)
            reporter.harness_tracker = True
        except AttributeError:
            pass
        reporters.append(reporter)
    return reporters


def run_reporters(registry: Any, trackers: Iterable[Reporter] = ()) -> "ReporterSet":
    """A run's reporters: every plugin's ``harness_reporters`` (a plugin whose hook raises is said in a
    warning, and left out), then ``trackers`` (:func:`make_trackers`) not already among them by name. One
    set: a reporter switched off during the run is not called after it."""
    from harness.manager import one_line

    reporters: list[Reporter] = []
    for impl in registry.host.pm.hook.harness_reporters.get_hookimpls():
        try:
            reporters.extend(impl.function() or [])
        except Exception as exc:  # noqa: BLE001 - a plugin's fault: the run goes on without its reporters
            log.warning("plugin %r: harness_reporters() raised %s", impl.plugin_name, one_line(exc))
    have = {getattr(r, "name", None) for r in reporters}
    return ReporterSet([*reporters, *(r for r in trackers if r.name not in have)])


def missing_packages(spec: Any) -> list[str]:
    """The packages of a ``TrackerSpec``'s ``requires`` that cannot be imported here (found, not imported)."""
    import importlib.util

    def importable(package: str) -> bool:
        try:
            return importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            return False

    return [package for package in spec.requires if not importable(package)]


class ReporterSet:
    """Calls every reporter, isolating failures: a reporter that raises is switched off."""

    def __init__(self, reporters: Iterable[Reporter] = ()):
        self.reporters = list(reporters)
        self.errors: list[str] = []  # this session's
        self.earlier_errors: list[str] = []  # a resumed run's, recorded by its earlier sessions

    def __bool__(self) -> bool:
        return bool(self.reporters)

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        for reporter in list(self.reporters):
            try:
                getattr(reporter, method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - trackers must not fail jobs
                # credentials out: a tracking server's URL with its token went into results.json and the reports
                message = f"reporter {getattr(reporter, 'name', type(reporter).__name__)!r} failed in {method}: " \
                          f"{type(exc).__name__}: {redact_credentials(squeeze(exc))}"
                log.warning(message)
                self.errors.append(message)
                self.reporters.remove(reporter)

"""Where jobs run: the seam between the job matrix and the machines.

An executor takes the planned jobs and a :class:`harness.runner.RunContext`
and calls ``on_done(job, row)`` in the driver process for every finished job,
in completion order. The driver records each row (an atomic rewrite of
``results.json``) as it arrives, so every executor gets durable progress and
``--resume`` for free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from harness.errors import HarnessError

if TYPE_CHECKING:  # pragma: no cover
    from harness.runner import Job, RunContext

OnDone = Callable[["Job", dict[str, Any]], None]


class LocalExecutor:
    """In this process, one job after another: nothing else competes for the cores being measured."""

    name = "local"

    def run(self, jobs: Sequence["Job"], ctx: "RunContext", on_done: OnDone) -> None:
        from harness.runner import run_job

        for index, job in enumerate(jobs, start=1):
            ctx.progress.job(index, len(jobs), job.id)
            on_done(job, run_job(job, ctx))


EXECUTORS: dict[str, Callable[..., Any]] = {"local": LocalExecutor}


def make_executor(name: str, **kwargs: Any) -> Any:
    """The executor called ``name``; ``HarnessError`` when unknown or its extra is not installed."""
    if name == "ray":
        try:
            from harness.ray_executor import RayExecutor
        except ImportError as exc:
            raise HarnessError(f'--executor ray needs Ray: pip install "ray>=2.9" ({exc})') from None
        return RayExecutor(**kwargs)
    if name not in EXECUTORS:
        raise HarnessError(f"unknown executor {name!r}; known: {', '.join(sorted(EXECUTORS) + ['ray'])}")
    return EXECUTORS[name](**kwargs)

"""harness from Python: the run, reports and comparison the CLI makes, for a notebook or a script.

    from harness.api import run, compare

    done = run(models="mnist-enhanced-20k", datasets="mnist", epochs=1, quick=True, data_dir="data/mnist")
    print(done.table())
    done.jobs[0]["latency"]            # results.json's rows, as docs/CONTRACT.md gives them
    compare("reports/base", done.path)["regressions"]

:func:`run` takes ``harness run``'s options as keywords, named as the flags are with ``_`` for ``-``
(``max_train_samples=512``, ``batch_sizes=[1, 32]``, ``size_budget="256KiB"``, ``cold_runs=0``) or as
:class:`harness.runner.RunOptions` names its fields (``size_budget_bytes``); a list may be given as one
value or a comma-separated string. It writes the same run folder and reports, and returns them as a
:class:`RunResult` rather than an exit status. Bad options raise :class:`harness.errors.HarnessError`
(the CLI's one-line message) or ``TypeError`` (a keyword no run takes, a value of the wrong type); a
job that fails does not raise, it is in :attr:`RunResult.failed`, as the CLI's exit status 1 says it.

Unlike the CLI, the calls here leave the process as they found it: no logging handler is added (the
harness logs to the ``harness`` logger; the lines show through Python's last-resort handler, or yours),
the global torch random state is put back after the run, and no signal handler stays installed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from harness.errors import HarnessError

_NAME_LISTS = ("plugins", "models", "datasets", "metrics", "providers", "variants")
_INT_LISTS = ("batch_sizes", "threads")


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder and its ``results.json`` as a dict."""

    path: Path
    results: dict[str, Any]

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """One dict per job (``id``, ``model``, ``dataset``, ``status``, ``metrics``, ``onnx``, ``latency`` ...)."""
        return list(self.results.get("jobs") or [])

    @property
    def failed(self) -> list[str]:
        """A line per job that failed (its id, stage and reason); empty when every job ran."""
        from harness.report import failures

        return failures(self.results)

    @property
    def edge(self) -> dict[str, Any] | None:
        """The edge question's answer (results.json's ``edge``), when the run asked one."""
        return self.results.get("edge")

    def rows(self) -> list[dict[str, Any]]:
        """results.csv's rows as dicts, written or not: one per job (and variant: ``variant`` is ``fp32``,
        ``int8-dynamic`` ...) and latency measurement (``runtime``, ``provider``, ``batch_size``, ``threads``,
        ``p50_ms`` ...), each with its model's ``onnx_accuracy``, ``onnx_bytes`` and ``flops``: the flat
        table to filter, where :attr:`jobs` nests variants and latency rows inside each job."""
        from harness.report import csv_rows

        return [dict(row) for row in csv_rows(self.results)]

    def ask(self, **question: Any) -> dict[str, Any] | None:
        """The edge question asked again of this run, as ``harness report RUN --accuracy-floor 0.99
        --latency-budget-ms 1`` does, without running anything: keywords named like those flags
        (``accuracy_floor``, ``max_accuracy_drop``, ``latency_budget_ms``, ``size_budget="256KiB"``,
        ``activation_budget``, ``cold_budget_ms``, ``memory_budget``), each in place of the run's own (a
        budget the run asked and not given here still applies). The answer is shaped as :attr:`edge`;
        results.json is not changed. Bad values raise :class:`HarnessError`, unknown keywords ``TypeError``."""
        from harness.edge import Question, edge_record
        from harness.runner import RunOptions, validate_options

        unknown = sorted(set(question) - set(Question.KEYS) - set(_SIZE_FLAGS))
        if unknown:
            raise TypeError(f"ask() got unknown keyword(s) {', '.join(unknown)}; it takes accuracy_floor, "
                            "max_accuracy_drop, latency_budget_ms, size_budget, activation_budget, cold_budget_ms "
                            "and memory_budget")
        asked = {key: value for key, value in _from_flags(question).items() if value is not None}
        for key, value in asked.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{key} takes a number, not {value!r}")
        validate_options(RunOptions(**asked))  # the run's own checks (a floor in [0, 100], budgets > 0)
        return edge_record({**self.results, "config": {**(self.results.get("config") or {}), **asked}})

    def table(self, width: int | None = None, sort: str | None = None, top: int | None = None) -> str:
        """The comparison table ``harness run`` prints; ``sort`` and ``top`` rank it as ``harness report --sort
        KEY --top N`` does (keys: :data:`harness.report.SORT_KEYS`)."""
        from harness.report import comparison_table

        return comparison_table(self.results, width=width, sort=sort, top=top)


def run(*, quick: bool = False, progress: bool = True, reports: bool = True, track: str | Iterable[str] | None = None,
        **options: Any) -> RunResult:
    """Train, export, check and benchmark every job ``options`` select, as ``harness run`` does.

    ``options``: the fields of :class:`harness.runner.RunOptions` (``models``, ``datasets``, ``epochs``,
    ``device``, ``out``, ``run_id``, ``resume``, ``profile`` ...); ``plugins="all"`` or None selects every
    plugin. ``quick``: the ``--quick`` latency settings. ``progress``: the CLI's progress display (lines
    when stderr is no terminal). ``reports``: also write results.csv, report.md, report.html and the
    plots. ``track``: experiment trackers by name (``--track``).

    ``resume=True`` continues the run ``run_id`` in ``out`` (else the latest there) with its stored
    options, the ones given here on top; ``like=RUN`` (a run folder) starts a new run with RUN's stored
    options, the ones given here on top, beside RUN unless ``out`` is given. A Ctrl-C keeps the finished jobs (and their reports) and raises
    ``KeyboardInterrupt``, whose ``run_folder`` says where they are.
    """
    from harness.progress import make_progress
    from harness.registry import build_registry
    from harness.reporters import make_trackers, run_reporters
    from harness.runner import execute, record_edge, write_run_reports

    if "no_progress" in options:  # --no-progress
        progress = not _flag("no_progress", options.pop("no_progress"))
    for name, value in (("quick", quick), ("progress", progress), ("reports", reports)):
        _flag(name, value)
    run_options = _options(options, quick, tracking=bool(track))
    registry = build_registry()
    registry.check_names(run_options)
    trackers = make_trackers(registry, _names("track", track) or []) if track else []
    reporter_set = run_reporters(registry, trackers)
    folder = None
    with _torch_random_state_kept():
        try:
            folder = execute(registry, run_options, make_progress(progress), reporters=reporter_set,
                             keep_lock=True)
            if reports:
                write_run_reports(folder, reporter_set)
            else:  # the edge answer is results.json's, not a report's
                record_edge(folder)
        except KeyboardInterrupt as exc:
            stopped = getattr(exc, "run_folder", None)
            if stopped is not None:  # stopped during the jobs: the reports of those that finished
                folder = stopped
                if reports:
                    write_run_reports(folder, reporter_set)
            elif folder is not None:  # while the reports were written: the folder is still unlocked below, and
                exc.run_folder = folder  # named (it was dropped, its lock held while the exception lived)
            raise
        finally:
            if folder is not None:
                folder.unlock()
    return load(folder.path)  # as results.json has it (lists, not the tuples some rows hold in memory)


def load(run_dir: str | Path) -> RunResult:
    """A run folder written before (or its ``results.json``), checked as ``harness report`` checks it."""
    from harness.results import load_results, run_folder_of

    return RunResult(run_folder_of(run_dir), load_results(Path(run_dir)))


def report(run_dir: str | Path) -> list[Path]:
    """(Re)write a run's results.csv, report.md, report.html and plots from its results.json, as
    ``harness report RUN`` does; the files written."""
    from harness.report import write_reports

    done = load(run_dir)
    return write_reports(done.path, done.results)


def compare(base: str | Path | RunResult, new: str | Path | RunResult, threshold: float | None = None,
            min_change_ms: float = 0.0, *, max_accuracy_drop: float | None = None,
            threads: int | str | Iterable[int] | None = None, batch_sizes: int | str | Iterable[int] | None = None,
            per_seed: bool = False) -> dict[str, Any]:
    """``harness compare BASE NEW --json`` as a dict: every job's accuracy and latency side by side, and
    with ``threshold`` (``--fail-on-regression``, percent) the ``regressions`` beyond it (each also as a dict
    in ``regression_details``: ``kind``, ``job`` ...); ``incomplete`` names a run that stopped before some of
    its planned jobs. The flags' keywords: a p50 regresses only when it also grew by more than
    ``min_change_ms``; ``max_accuracy_drop`` (points) gates accuracy on its own bound; ``threads`` /
    ``batch_sizes`` (a count, a list or ``"1,32"``) gate only the latency rows measured at those; ``per_seed``
    gates each seed of a sweep on its own.

    A bad value raises :class:`HarnessError` with the CLI's message (naming the keyword), a value of the wrong
    type ``TypeError``. The CLI's warnings (BASE and NEW are the same run; a run is incomplete) go to the
    ``harness`` logger, as :func:`run`'s do."""
    from harness.compare import API_OPTIONS, compare_folders
    from harness.results import run_folder_of

    def side(run: str | Path | RunResult) -> tuple[Path, dict[str, Any] | None]:
        if isinstance(run, RunResult):
            return run.path, run.results
        if not isinstance(run, (str, Path)):
            raise TypeError(f"compare() takes a run folder or a RunResult, not {run!r}")
        return run_folder_of(run), None  # a folder, or its results.json

    (base_dir, base_results), (new_dir, new_results) = side(base), side(new)
    return compare_folders(base_dir, new_dir, base_results, new_results, names=API_OPTIONS, threshold=threshold,
                           accuracy_points=max_accuracy_drop, threads=threads, batch_sizes=batch_sizes,
                           per_seed=per_seed, min_change_ms=min_change_ms)


def _names(name: str, value: Any) -> list[str] | None:
    """A list of names given as a list, one name, or ``"a,b"``; a ``TypeError`` for anything else (a
    string iterated letter by letter picked no model at all)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    raise TypeError(f"{name} takes a name, 'a,b' or a list of names, not {value!r}")


# harness run's flags whose RunOptions field is called otherwise: a size budget as the flag takes it
# ("256KiB") or its field's bytes; --no-torch-latency as torch_latency=False, and the other --no- flags.
_SIZE_FLAGS = {"size_budget": "size_budget_bytes", "activation_budget": "activation_budget_bytes",
               "memory_budget": "memory_budget_bytes"}
_NEGATED = {"no_torch_latency": "torch_latency", "no_channels_last": "channels_last", "no_compile": "compile",
            "no_cuda_graphs": "cuda_graphs"}
_ON_OFF = ("spin", "iobinding")  # latency.FLAG_FIELDS' flags that have a no_ form
_FLAGS = (*_SIZE_FLAGS, *_NEGATED, "no_progress", "no_quick", "cold_runs", "like", *_ON_OFF,
          *(f"no_{flag}" for flag in _ON_OFF))
# harness run's flags with no keyword here, and what to do instead
_NOT_HERE = {"config": "read the file and pass its settings as keywords",
             "edge_gate": "RunResult.edge['qualifying'] is empty when no job fits"}


def _from_flags(given: dict[str, Any]) -> dict[str, Any]:
    """:func:`run`'s keywords with the flag-named ones (``size_budget="256KiB"``, ``no_torch_latency=True``)
    turned into their fields; ``cold_runs`` and ``spin``/``iobinding`` (and their ``no_``) are kept for the
    caller."""
    from harness.text import parse_bytes

    values = dict(given)
    for flag, name in [*_SIZE_FLAGS.items(), *_NEGATED.items()]:
        if flag in values and name in values:
            raise TypeError(f"run() got both {flag} and {name}; give one")
    for flag, name in _SIZE_FLAGS.items():
        if flag in values:
            size = values.pop(flag)
            try:
                values[name] = None if size is None else parse_bytes(size)
            except ValueError as exc:
                raise HarnessError(f"{flag}: {exc}") from None
    for flag, name in _NEGATED.items():
        if flag in values:
            values[name] = not _flag(flag, values.pop(flag))
    return values


def _flag(name: str, value: Any) -> bool:
    """A True/False keyword; ``TypeError`` for another value ("yes" was taken as true)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} takes True or False, not {value!r}")
    return value


def _whole(name: str, value: Any, least: int) -> int | None:
    """An int keyword (None: unset); ``TypeError`` for another type, ``HarnessError`` below ``least``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} takes a whole number, not {value!r}")
    if value < least:
        raise HarnessError(f"{name} must be at least {least}, not {value}")
    return value


def _options(given: dict[str, Any], quick: bool, tracking: bool = False) -> Any:
    """:class:`RunOptions` from :func:`run`'s keywords."""
    from harness.latency import FLAG_FIELDS, QUICK, LatencyConfig
    from harness.runner import RunOptions, _check_stored_option, liked_options, resumed_options

    fields = {f.name: str(f.type) for f in dataclasses.fields(RunOptions)}
    instead = [f"{name} ({_NOT_HERE[name]})" for name in sorted(set(given) & set(_NOT_HERE))]
    if instead:
        raise TypeError(f"run() takes no {'; no '.join(instead)}")
    unknown = sorted(set(given) - set(fields) - set(_FLAGS))
    if unknown:
        raise TypeError(f"run() got unknown option(s) {', '.join(unknown)}; it takes {', '.join(sorted(fields))}, "
                        f"the flags {', '.join(_FLAGS)}, and quick, progress, reports and track")
    values = _from_flags(given)
    no_quick = _flag("no_quick", values.pop("no_quick")) if "no_quick" in values else False
    if no_quick and quick:
        raise TypeError("run() got both quick and no_quick; give one")
    if isinstance(values.get("sweep"), dict):  # a config file's [sweep] table, crossed as the CLI crosses it
        from harness.config import sweep_points

        values["sweep"] = sweep_points(values["sweep"], "sweep")
    swept = {key for point in values.get("sweep") or [] if isinstance(point, dict) for key in point}
    both = sorted(swept & set(values) - {"seed", "sweep"})
    if both:  # the sweep's point won, and results.json recorded the keyword
        raise HarnessError(f"run(): {', '.join(both)} given both as a keyword and in sweep; keep one")
    for name, value in values.items():  # the CLI and a config file refuse inf and nan; results.json wrote null
        if isinstance(value, float) and not math.isfinite(value):
            raise HarnessError(f"run(): {name}={value} is not a finite number")
    like = values.pop("like", None)
    if like is not None and not isinstance(like, (str, Path)):
        raise TypeError(f"like takes a run folder's path, not {like!r}")
    out_given = "out" in values
    cold_runs = _whole("cold_runs", values.pop("cold_runs", None), 0)
    tweaks = {} if cold_runs is None else {"cold_runs": cold_runs}  # on top of the latency settings, as the flags
    for flag in _ON_OFF:
        field = FLAG_FIELDS[flag]
        if flag in values and f"no_{flag}" in values:
            raise TypeError(f"run() got both {flag} and no_{flag}; give one")
        if flag in values:
            tweaks[field] = _flag(flag, values.pop(flag))
        elif f"no_{flag}" in values:
            tweaks[field] = not _flag(f"no_{flag}", values.pop(f"no_{flag}"))
    ray_given = {name for name in ("ray_address", "jobs") if values.get(name) is not None}
    if "jobs" in values:
        values["jobs"] = _whole("jobs", values["jobs"], 1)
    for name in _NAME_LISTS:
        if name in values:
            values[name] = _names(name, values[name])
    if values.get("plugins") == ["all"]:
        values["plugins"] = None
    if values.get("amp") == "fp32":  # as --amp fp32: no autocast
        values["amp"] = None
    for name in _INT_LISTS:
        if isinstance(values.get(name), int) and not isinstance(values[name], bool):
            values[name] = [values[name]]
        elif isinstance(values.get(name), str):  # "1,32", as the flag takes it
            from harness.compare import counts

            values[name] = counts(name, values[name])
    latency = values.pop("latency", None)
    if isinstance(latency, dict):
        try:
            latency = LatencyConfig(**latency)
        except ValueError as exc:  # a value out of range (min_runs=0); an unknown field stays a TypeError
            raise HarnessError(f"latency: {exc}") from None
    if latency is not None and not isinstance(latency, LatencyConfig):
        raise TypeError(f"latency takes a LatencyConfig or a dict of its fields, not {latency!r}")
    for name in ("out", "data_dir"):
        if isinstance(values.get(name), Path):
            values[name] = str(values[name])
    for name, value in values.items():
        try:
            _check_stored_option(name, list(value) if isinstance(value, tuple) else value, fields[name])
        except ValueError as exc:
            raise TypeError(f"run(): {exc}") from None
    values["latency"] = latency or (QUICK if quick else LatencyConfig())
    if tweaks:  # as --cold-runs, --no-spin, --no-iobinding: on top of the latency settings (--quick's, or these)
        values["latency"] = dataclasses.replace(values["latency"], **tweaks)
    values["out"] = Path(values.get("out", "reports")).expanduser()
    if values.get("data_dir") is not None:
        values["data_dir"] = Path(values["data_dir"]).expanduser().resolve()
    # no_quick: the full latency settings over a like= or resumed run's quick ones, as --no-quick
    named = set(values) - {"latency"} | ({"latency"} if latency is not None or quick or no_quick else set())
    if values.get("profile") == "edge":
        from harness.edge import apply_edge_profile

        apply_edge_profile(values, named)
    elif values.get("profile") not in (None, "edge"):
        raise HarnessError(f"profile {values['profile']!r} is not one harness knows; known: edge")
    if like is not None:  # as --like: RUN's options, those given here on top, a new run beside it
        if values.get("resume"):
            raise HarnessError("like starts a new run with another run's options and resume continues a run: "
                               "give one of them")
        named -= set() if out_given else {"out"}
    if like is not None or values.get("resume"):
        chosen = {k: v for k, v in values.items() if k in named}
        options = (liked_options(Path(like), chosen, tracking) if like is not None
                   else resumed_options(values["out"], values.get("run_id"), chosen))
        options.latency = dataclasses.replace(options.latency, **tweaks)  # on top of the run's own, as the CLI does
    else:
        options = RunOptions(**values)
    if options.executor != "ray" and ray_given:  # a resume's own are cleared by runner._stored_options
        raise HarnessError("ray_address and jobs need executor='ray'")
    return options


def _torch_random_state_kept() -> Any:
    """``torch.random.fork_rng`` over the CPU's and, where CUDA is in use, every GPU's random state, which a
    run reseeds for each job: a notebook's own random numbers go on as they would have."""
    import torch

    return torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_initialized() else [])

"""The ``harness`` command line: thin click commands that parse, call a stage and print.

Exit status: 0 all good; 1 the run finished but a job failed (or
``compare`` found a regression); 2 bad usage or input, with a one-line
message on stderr and no traceback (``--debug`` shows it); 74 a run folder
that stopped taking files during a run (full, made read-only); 130/143 a
run stopped by Ctrl-C/SIGTERM. torch, onnx and
onnxruntime are imported only inside the commands that need them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from harness import __version__
from harness.errors import EXIT_STORAGE, STORAGE_ERRNOS, HarnessError, StorageError
from harness.ort import PROVIDER_SHORT_NAMES
from harness.text import squeeze

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE = 0, 1, 2


class ItemError(ValueError):
    """A list item's own reason for refusal, shown as it is (``'0' is not positive``)."""


class CommaList(click.ParamType):
    """``a,b,c`` -> list, each item converted by ``convert_item``."""

    def __init__(self, convert_item: Callable[[str], Any] = str, name: str = "LIST"):
        self.convert_item = convert_item
        self.name = name

    def convert(self, value: Any, param: Any, ctx: Any) -> list[Any]:
        if isinstance(value, list):  # from a config file: each item checked like a typed one
            items = [str(v).strip() for v in value]
            if not items:
                self.fail("is an empty list", param, ctx)
            if not all(items):
                self.fail(f"{value!r} is not a list of {self.name.lower()}", param, ctx)
        else:
            items = [v.strip() for v in str(value).split(",") if v.strip()]
        if not items:
            self.fail("expected a comma-separated list", param, ctx)
        try:
            return [self.convert_item(v) for v in items]
        except ItemError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)
        except ValueError:
            what = "list" if isinstance(value, list) else "comma-separated list"
            self.fail(f"{value!r} is not a {what} of {self.name.lower()}", param, ctx)


def positive_ints(name: str) -> CommaList:
    def convert(text: str) -> int:
        number = int(text)
        if number < 1:
            raise ItemError(f"{name.lower()} must be at least 1 (got {number})")
        return number

    return CommaList(convert, name)


NAMES = CommaList(str, "NAMES")


def _dim_item(text: str) -> tuple[str, int]:
    name, _, size = text.partition("=")
    if not name.strip():
        raise ValueError(text)
    if int(size) < 1:
        raise ItemError(f"{name.strip()}: a size must be at least 1, not {int(size)}")
    return name.strip(), int(size)


DIMS = CommaList(_dim_item, "NAME=SIZE PAIRS")
# harness.report.SORT_KEYS, named here so that the CLI's start imports no report code (a test keeps them alike)
SORT_CHOICES = ("accuracy", "p50", "p99", "throughput", "size", "activation", "params", "flops", "train")


class Finite(click.FloatRange):
    """A float option that refuses ``nan`` and ``inf`` (which pass range checks or disable them).

    With ``percent``, a trailing ``%`` is allowed and dropped (``10%`` is 10), as people write percentages."""

    name = "float"

    def __init__(self, *args: Any, percent: bool = False, none: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.percent = percent
        self.none = none  # "none" (or "off") is :data:`NO_BUDGET`: harness report drops the run's own value

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        if self.none and _says_none(value):
            return NO_BUDGET
        if self.percent and isinstance(value, str) and value.strip().endswith("%"):
            number_text = value.strip()[:-1].strip()
            try:
                float(number_text)
            except ValueError:
                self.fail(f"{value!r} is not a valid number (or percentage).", param, ctx)
            number = super().convert(number_text, param, ctx)
        else:
            number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number

    def _describe_range(self) -> str:
        return "" if self.min is None and self.max is None else super()._describe_range()


NO_BUDGET = "none"
"""What ``harness report --size-budget none`` (and the other re-asked settings) gives: drop the run's own."""


def _says_none(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("none", "off")


class ByteSize(click.ParamType):
    """A size in bytes: ``65536``, ``64KiB``, ``1.5MB`` (see :func:`harness.text.parse_bytes`); with ``none``,
    also ``none``/``off`` (:data:`NO_BUDGET`)."""

    name = "size"

    def __init__(self, none: bool = False):
        self.none = none

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from harness.text import parse_bytes

        if self.none and _says_none(value):
            return NO_BUDGET

        try:
            return parse_bytes(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class HarnessGroup(click.Group):
    """Turns :class:`HarnessError` into one line on stderr and exit status 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """``harness run --debug ...`` as ``harness --debug run ...``: the flag is the group's, but it is
        natural to add it at the end of a command that just failed."""
        head = args[:args.index("--")] if "--" in args else args
        if "--debug" in head[1:]:
            args = ["--debug"] + [a for i, a in enumerate(args) if not (a == "--debug" and i < len(head))]
        try:  # the group's own --help and --version write here, before invoke(): into a full or closed stdout
            return super().parse_args(ctx, args)
        except OSError as exc:
            _exit_for_os_error(ctx, exc)
            raise  # pragma: no cover - _exit_for_os_error always exits

    def invoke(self, ctx: click.Context) -> Any:
        if sys.stdout is None:  # started with standard output closed (`>&-`): output goes nowhere, not into a
            sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - traceback (older click)
            _STDOUT_CLOSED.append(True)
        _replace_unencodable()
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            if _debug(ctx):  # the traceback, and still the usage status: --debug must not turn 2 into 1
                import traceback

                traceback.print_exc()
            _say_error(f"harness: error: {exc}")
            ctx.exit(getattr(exc, "exit_code", EXIT_USAGE))  # a run folder that stopped taking files: 74
        except KeyboardInterrupt:  # click's own "Aborted!" exits 1, which means "a job failed" here
            if _debug(ctx):
                import traceback

                traceback.print_exc()
            _say_error("\nharness: interrupted")
            ctx.exit(128 + 2)  # 130, as for Ctrl-C during a run
        except OSError as exc:  # a path the user cannot reach (no permission, a name too long), a closed pipe
            _exit_for_os_error(ctx, exc)


def _exit_for_os_error(ctx: click.Context, exc: OSError) -> None:
    """One line and the status an OSError means: 141 for a reader that left, 74 for storage that stopped
    taking files, else 2 (a path the user cannot reach)."""
    import errno

    if _debug(ctx):
        import traceback

        traceback.print_exc()
    if exc.errno == errno.EPIPE:  # `harness list models | head -1`: the reader left, as for grep
        _quiet_stdout()
        ctx.exit(128 + 13)  # 141, a shell's status for SIGPIPE
    where = f": {exc.filename}" if exc.filename else ""
    _say_error(f"harness: error: {exc.strerror or exc}{where}")
    ctx.exit(EXIT_STORAGE if exc.errno in STORAGE_ERRNOS else EXIT_USAGE)


def _say_error(line: str) -> None:
    """``line`` on standard error, if it takes it: a full or closed one must not turn the status the line
    goes with (2 for bad input, 74, 130) into a traceback's 1."""
    try:
        click.echo(line, err=True)
    except (OSError, ValueError, AttributeError):  # AttributeError: click 8.1 writes to a closed one's None
        pass


def _quiet_stdout() -> None:
    """Point standard output at the null device: what is still buffered for a reader that left would
    raise again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass


_STDOUT_CLOSED: list[bool] = []


def _replace_unencodable() -> None:
    """Standard output and error in an encoding that cannot write every character (a Windows console's
    cp1252, ``PYTHONIOENCODING=latin-1``) write a ``?`` for what they cannot: a model or run named in
    another script, or a ``→`` in a table, otherwise lost the whole table (or turned an error line into
    a traceback)."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None)
        try:
            utf = codecs.lookup(encoding).name.startswith("utf") if encoding else True
        except LookupError:
            utf = False
        if not utf and getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):  # pragma: no cover - a stream that cannot change now
                pass


def _echo_out(text: str) -> None:
    """``text`` on standard output, where a missing, full or closed stdout is a warning, not the run's
    failure: the run's figures are on disk and its exit status must stay what the jobs make it."""
    if _STDOUT_CLOSED:
        click.echo("harness: warning: the table could not be printed (standard output is closed); report.md "
                   "holds it", err=True)
        return
    try:
        click.echo(text)
        sys.stdout.flush()
    except (OSError, AttributeError, ValueError) as exc:
        _quiet_stdout()
        why = getattr(exc, "strerror", None) or exc
        click.echo(f"harness: warning: the table could not be printed ({why}); report.md holds it", err=True)


def _run_table(results: dict[str, Any], sort: str | None = None, top: int | None = None) -> str:
    """The comparison table for standard output: fitted to a terminal's width, and there a sweep's most
    accurate jobs only (:data:`harness.report.TERMINAL_ROWS`); a log or a pipe gets every job. ``sort`` and
    ``top``: ``harness report``'s ranking (the terminal's cut takes the first rows of that order)."""
    from harness.report import TERMINAL_ROWS, comparison_table

    terminal = sys.stdout is not None and sys.stdout.isatty()
    return comparison_table(results, width=_terminal_width(), max_rows=TERMINAL_ROWS if terminal else None,
                            sort=sort, top=top)


def _terminal_width() -> int | None:
    """The width the comparison table must fit: $COLUMNS, else the terminal's; None when the output goes to
    a file or pipe (a CI log keeps every column)."""
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout is not None and sys.stdout.isatty():  # None: started with standard output closed
        return shutil.get_terminal_size().columns
    return None


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.params or {}).get("debug")) or os.environ.get("HARNESS_DEBUG") == "1"


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harness")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """Train, export to ONNX and benchmark small neural networks, through plugins.

    \b
    Quick start (offline, a few minutes on a laptop CPU):
      harness run --plugins all --datasets synthetic,synthetic3d --epochs 1 --max-train-samples 512
      (a smoke test of the pipeline: with 512 samples most models stay near chance accuracy)
    \b
    Which model meets 1 ms at batch 1 on 1 thread with at least 99 % accuracy?
      harness run --models mnist-ultralight-cnn,mnist-enhanced-20k,mnist-fast \\
        --datasets mnist --data-dir ~/data/mnist --profile edge --latency-budget-ms 1 --accuracy-floor 0.99
      (full recipes: minutes on a GPU, tens of minutes on a laptop CPU; the
      reports' "Edge deployment" table answers)
    \b
    Environment: HARNESS_OFFLINE=1 (no downloads), HARNESS_CACHE_DIR (decoded
    datasets; default ~/.cache/harness), HARNESS_DISABLE_PLUGINS=a,b,
    HARNESS_TRACK=mlflow,tensorboard (as --track), RAY_ADDRESS (--executor ray),
    HARNESS_DEBUG=1 (as --debug).
    """
    # The same "harness: warning: ..." lines as the CLI's own messages; --debug adds the module.
    fmt = "harness: %(levelname)s: %(name)s: %(message)s" if debug else "harness: %(levelname)s: %(message)s"
    handler = _StderrHandler()
    handler.setFormatter(_LowercaseLevel(fmt))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])
    if debug:  # the harness's and plugins' debug lines, without thousands from the exporter's libraries
        for name in CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)


CHATTY_LIBRARIES = ("onnxscript", "onnx_ir", "torch", "matplotlib", "PIL", "urllib3", "filelock", "fsspec",
                    "asyncio")
"""Libraries whose DEBUG logs would bury the harness's under ``--debug`` (onnxscript alone wrote about
2,800 lines for one export, and a dozen at INFO); their warnings and errors still show."""


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to ``sys.stderr`` as it is when a record comes: the live progress display puts
    its own there while it draws, which prints a line above its rows; a handler holding the stream it was
    made with wrote a job's warning into the rows, where the next redraw erased half of it."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler's own assignment: always sys.stderr
        pass


class _LowercaseLevel(logging.Formatter):
    """``warning``, ``error``: the level as the harness's own messages write it."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "levelname": record.levelname.lower()})
        return super().format(record)


# -- plugins / list --------------------------------------------------------------------------------------


def _registry() -> Any:
    from harness.registry import build_registry

    return build_registry()


@main.command("plugins", short_help="Loaded plugins: what each registered, and load errors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--strict", is_flag=True,
              help="Also import every lazy() target and check that it takes the arguments the harness "
                   "passes (build, load and compute functions already imported are checked either way); exit 1 "
                   "when any plugin failed to load or register, or one of those checks failed (for a plugin "
                   "package's CI).")
def plugins_command(as_json: bool, strict: bool) -> None:
    """List loaded plugins: distribution, version, hooks, what each registered, and load errors."""
    registry = _registry()
    # --strict imports the targets (torch with them): only then, so plain `plugins` and `list` stay fast;
    # the functions a plugin imported itself are read either way (a signature costs nothing)
    registry.check_targets(imported_only=not strict)
    _show_plugins(registry, as_json)
    if strict and registry.errors:
        sys.exit(EXIT_JOB_FAILED)


def _show_plugins(registry: Any, as_json: bool) -> None:
    entries = []
    for name, info in registry.host.plugins.items():
        entry = info.to_dict()
        entry["registered"] = registry.registered_by(name)
        entry["errors"] = [e.message for e in registry.errors if e.plugin == name]
        entries.append(entry)
    loaded = set(registry.host.plugins)
    failed = [e.to_dict() for e in registry.errors if e.plugin not in loaded]
    disabled = list(registry.host.disabled)
    if as_json:
        click.echo(json.dumps({"plugins": entries, "errors": [e.to_dict() for e in registry.errors],
                               "failed": failed, "disabled": disabled}, indent=2))
        return
    from tabulate import tabulate

    from harness.manager import SLOW_IMPORT_S

    rows = []
    for e in entries:
        parts = [f"{k}: {', '.join(v)}" for k, v in e["registered"].items() if v]
        if "harness_reporters" in e["hooks"]:  # made per run: nothing to list ahead of it
            parts.append("reporters: made when a run starts")
        registered = _wrapped_names("; ".join(parts) or "-")
        rows.append([e["name"], f"{e['distribution'] or '-'} {e['version'] or ''}".strip(),
                     ", ".join(e["hooks"]) or "-", registered])
    for error in {e.plugin: e for e in registry.errors if e.plugin not in loaded and e.distribution}.values():
        # a plugin that did not load has its row too, where its author looks for it
        rows.append([error.plugin, f"{error.distribution} {error.version() or ''}".strip(), "-",
                     "not loaded (see errors below)"])
    click.echo(tabulate(rows, headers=["plugin", "distribution", "hooks", "registered"],
                        maxcolwidths=[None, None, 30, None]))
    slow = [e for e in entries if (e["import_seconds"] or 0) > SLOW_IMPORT_S]
    for e in sorted(slow, key=lambda e: -e["import_seconds"]):
        click.echo(f"\nslow start: importing plugin {e['name']!r} ({e['module']}) took {e['import_seconds']:.1f} s, "
                   "paid by every harness command (keep torch and other heavy imports inside build/load)", err=True)
    if disabled:
        click.echo(f"\ndisabled by HARNESS_DISABLE_PLUGINS: {', '.join(disabled)}", err=True)
    if registry.errors:
        click.echo("\nerrors:", err=True)
        for error in registry.errors:
            click.echo(f"  {error}", err=True)


def _wrapped_names(text: str, width: int = 70) -> str:
    """``text`` wrapped at spaces only: tabulate's own wrapping breaks names at hyphens (``tv-`` /
    ``mobilenet-v3-small``), and names are what users copy into ``--models``."""
    import textwrap

    return textwrap.fill(text, width, break_on_hyphens=False, break_long_words=False)


def _say_load_errors(registry: Any, selected: Sequence[str] | None) -> None:
    """Each load or registration error of the ``selected`` plugins (None: all) on its own line, and the
    other plugins that had errors in one line: a run of one plugin is not buried under another's."""
    chosen = None if selected is None else set(selected)
    others = []
    for error in registry.errors:
        if chosen is None or error.plugin in chosen:
            click.echo(f"harness: warning: {error}", err=True)
        elif error.plugin not in others:
            others.append(error.plugin)
    if others:
        which = " not selected here" if chosen else ""  # (with chosen None every error was said above)
        click.echo(f"harness: warning: {len(others)} plugin(s){which} had errors loading or registering: "
                   f"{', '.join(sorted(others))} (see 'harness plugins')", err=True)


@main.command("list", short_help="Registered models, datasets, metrics or trackers.")
@click.argument("kind", type=click.Choice(["models", "datasets", "metrics", "trackers"]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(kind: str, as_json: bool) -> None:
    """List registered models, datasets, metrics or trackers with the plugin that registered each."""
    registry = _registry()
    _say_load_errors(registry, ())  # a name missing from the list is most often a plugin that failed to load
    if registry.disabled_text():  # the other reason a name is missing
        click.echo(f"harness: warning: {registry.disabled_text()}", err=True)
    specs = registry.specs[kind]
    rows = []
    for name, spec in specs.items():
        item: dict[str, Any] = {"name": name, "plugin": registry.owners[kind][name], "description": spec.description}
        if kind == "models":
            item.update(input_rank=spec.input_rank, input_channels=spec.input_channels,
                        spatial_shape=list(spec.spatial_shape) if spec.spatial_shape else None,
                        reference=dict(spec.reference), recipe=spec.recipe.to_dict(), tags=list(spec.tags))
        elif kind == "datasets":
            item.update(input_shape=list(spec.input_shape) if spec.input_shape else None,
                        num_classes=spec.num_classes, tags=list(spec.tags))
        elif kind == "trackers":
            from harness.reporters import missing_packages

            item.update(requires=list(spec.requires), install=spec.install or None,
                        missing=missing_packages(spec))
        else:
            item.update(higher_is_better=spec.higher_is_better, gate=spec.gate)
        rows.append(item)
    if as_json:
        from harness.results import json_text

        click.echo(json_text(rows))
        return
    from tabulate import tabulate

    if kind == "models":
        def published(params: Any) -> str:
            return f"{params:,}" if isinstance(params, int) and not isinstance(params, bool) else str(params or "-")

        table = [[r["name"], r["plugin"], published(r["reference"].get("params")), _shape_text(r), r["description"]]
                 for r in rows]
        headers = ["model", "plugin", "published params", "input", "description"]
    elif kind == "datasets":
        table = [[r["name"], r["plugin"], "x".join(map(str, r["input_shape"] or [])) or "?", r["num_classes"] or "?",
                  r["description"]] for r in rows]
        headers = ["dataset", "plugin", "input", "classes", "description"]
    elif kind == "trackers":
        def needs(r: dict[str, Any]) -> str:
            if not r["missing"]:
                return "installed" if r["requires"] else "-"
            return 'pip install "' + (r['install'] or ' '.join(r['missing'])) + '"'

        table = [[r["name"], r["plugin"], needs(r), r["description"]] for r in rows]
        headers = ["tracker", "plugin", "packages", "description"]
    else:
        table = [[r["name"], r["plugin"], "higher" if r["higher_is_better"] else "lower",
                  "yes" if r["gate"] else "-", r["description"]] for r in rows]
        headers = ["metric", "plugin", "better", "gated", "description"]
    click.echo(tabulate(table, headers=headers, maxcolwidths=[None] * (len(headers) - 1) + [60]))


@main.command("cache", short_help="The decoded-dataset cache: list it, or clear it.")
@click.option("--clear", is_flag=True,
              help="Delete the decoded datasets (rebuilt from their source files when next needed).")
@click.option("--older-than", "older_than", type=Finite(min=0), metavar="DAYS", default=None,
              help="With --clear: only entries no run has read for DAYS days.")
@click.option("--downloads", is_flag=True,
              help="With --clear: the files torchvision downloaded too (fetched again when next needed).")
@click.option("--datasets", type=NAMES, default=None, help="Only these datasets' folders.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {root, items: [...], removed: [...], errors: [...]}.")
def cache_command(clear: bool, older_than: float | None, downloads: bool, datasets: list[str] | None,
                  as_json: bool) -> None:
    """What the dataset cache holds ($HARNESS_CACHE_DIR, default ~/.cache/harness), and clearing it.

    A decoded dataset is one entry per source folder and file stamp (about 55 MB for MNIST; 290 MB
    per seed for a voxelised mnist3d); only this command prunes them.

    \b
      harness cache                           # dataset, kind, items, size, last used
      harness cache --clear --older-than 30   # entries no run has read for 30 days
    """
    import time

    from harness.cache import cache_items, cache_root, removable, remove, root_problem
    from harness.text import size_text

    if (older_than is not None or downloads) and not clear:
        raise HarnessError("--older-than and --downloads choose what --clear deletes; add --clear")
    root = cache_root()
    problem = root_problem()
    if problem:
        raise HarnessError(problem)
    items = cache_items(datasets)
    if datasets:  # a misspelt name matched nothing, and with --clear read like success
        from harness.cache import cached_datasets
        from harness.registry import build_registry, unknown_name_message

        known = cached_datasets() | set(build_registry().datasets)
        unknown = [name for name in datasets if name not in known]
        if unknown:
            raise HarnessError(unknown_name_message("dataset", unknown[0], known))
    gone: list[Any] = []
    failed: list[str] = []
    if clear:
        gone, failed = remove(removable(items, older_than, downloads))
        items = [item for item in items if item not in gone]
    if as_json:
        click.echo(json.dumps({"root": str(root), "items": [i.to_dict() for i in items],
                               "removed": [i.to_dict() for i in gone], "errors": failed}, indent=2))
    else:
        where = "HARNESS_CACHE_DIR" if os.environ.get("HARNESS_CACHE_DIR", "").strip() else "default"
        click.echo(f"cache: {root} ({where})")
        if gone:
            click.echo(f"deleted {len(gone)} item(s), {size_text(sum(i.bytes for i in gone))}")
        elif clear and items:
            click.echo("deleted nothing" + (f": every entry was used in the last {older_than:g} day(s)"
                                            if older_than is not None else ""))
        if items:
            from tabulate import tabulate

            rows = []
            for dataset in dict.fromkeys(i.dataset for i in items):
                for kind in ("decoded", "download", "unfinished", "other"):
                    mine = [i for i in items if i.dataset == dataset and i.kind == kind]
                    if mine:
                        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(max(i.last_used for i in mine)))
                        rows.append([dataset, kind, len(mine), size_text(sum(i.bytes for i in mine)), used])
            click.echo(tabulate(rows, headers=["dataset", "kind", "items", "size", "last used"],
                                colalign=("left", "left", "right", "right", "left")))
            click.echo(f"total {size_text(sum(i.bytes for i in items))}"
                       + ("" if clear else "; free it with: harness cache --clear [--older-than DAYS]"))
        elif not gone:
            click.echo("empty" if not datasets else f"nothing for {', '.join(datasets)}")
    if failed:
        raise HarnessError(f"could not delete {len(failed)} item(s): {failed[0]}"
                           + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))


def _shape_text(row: dict[str, Any]) -> str:
    from harness.specs import input_text

    return input_text(row["input_rank"], row["input_channels"], row["spatial_shape"], kind=False)


# -- run ---------------------------------------------------------------------------------------------------


@main.command("run", short_help="Train, export, check and benchmark models x datasets.")
@click.option("--plugins", "plugins", type=NAMES, default="all", show_default=True,
              help="'all' or comma-separated plugin (entry-point) names whose registrations take part.")
@click.option("--models", type=NAMES, help="Only these models (comma-separated).")
@click.option("--datasets", type=NAMES, help="Only these datasets (comma-separated).")
@click.option("--metrics", type=NAMES, help="Only these metrics, and accuracy, which every job reports (default: the built-in ones and those of the plugins --plugins selects).")
@click.option("--epochs", type=click.IntRange(min=1), metavar="N", help="Override every recipe's epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N", help="Override every recipe's training batch size.")
@click.option("--lr", type=Finite(min=0, min_open=True),
              help="Override every recipe's learning rate; a piecewise schedule's rates scale with it (a sweep's "
                   "schedule = [\"constant\"] holds it instead).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Training device; auto picks CUDA when available.")
@click.option("--max-train-samples", type=click.IntRange(min=1), metavar="N", help="Train on at most N samples (a seeded random subset; "
              "default: all).")
@click.option("--max-test-samples", type=click.IntRange(min=1), metavar="N", help="Evaluate on at most N test samples (default: all).")
@click.option("--batch-sizes", type=positive_ints("BATCH SIZES"), metavar="N,N...", default="1,32", show_default=True,
              help="Inference batch sizes to benchmark.")
@click.option("--threads", type=positive_ints("THREAD COUNTS"), metavar="N,N...", default="1", show_default=True,
              help="Intra-op thread counts to benchmark.")
@click.option("--providers", type=NAMES, help=f"ONNX Runtime providers ({PROVIDER_SHORT_NAMES} or full names); "
              "default: CPU plus CUDA when usable.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for data, init and shuffling.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where dataset plugins look for files first.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"), show_default=True,
              help="Folder that receives the run folder.")
@click.option("--run-id", help="Name of the run folder (default: a timestamp; an empty one, as an unset variable "
                                "gives, counts as none).")
@click.option("--resume", is_flag=True, help="Continue the run named by --run-id, or without one (or with an empty "
                                              "one) the latest in --out; it says which.")
@click.option("--like", type=click.Path(path_type=Path), metavar="RUN",
              help="Run again with the options the run folder RUN recorded (its results.json), as a new run "
                   "beside it; options given here replace those.")
@click.option("--variants", type=NAMES, default="fp32", show_default=True,
              help="Model variants to measure: fp32, int8-dynamic, int8-static, fp16, ort-opt, slim.")
@click.option("--exporter", type=click.Choice(["auto", "dynamo", "torchscript"]), default="auto", show_default=True,
              help="ONNX exporter; auto tries dynamo and falls back to TorchScript.")
@click.option("--onnx-tolerance", type=Finite(min=0, min_open=True),
              help="Fail a job whose ONNX Runtime logits differ from PyTorch's by more than this, times the "
                   "logit's size where that is above 1 (default: 1e-4).")
@click.option("--quick/--no-quick", default=False,
              help="Short latency measurements (smoke tests; noisier figures); --no-quick: the full ones, e.g. "
                   "over a --like or --config run's --quick.")
@click.option("--cold-runs", type=click.IntRange(min=0), metavar="N",
              help="New processes that time each ONNX model's cold start (load, first answer, memory); "
                   "0: none. Default: 3, or 1 with --quick.")
@click.option("--no-torch-latency/--torch-latency", "no_torch_latency", default=False,
              help="Skip eager PyTorch latency rows (--torch-latency: time them, over a stored or file setting).")
@click.option("--spin/--no-spin", default=None,
              help="ONNX Runtime's intra-op threads spin-wait between calls (its default) or sleep (--no-spin): "
                   "above 1 thread on a busy machine spinning threads compete for the cores; time as you deploy.")
@click.option("--iobinding/--no-iobinding", default=None,
              help="Bind each ONNX model's inputs once (the default) or feed numpy arrays to session.run every "
                   "call (--no-iobinding), as most Python applications do.")
@click.option("--amp", type=click.Choice(["bf16", "fp16", "fp32"]),
              help="Mixed-precision training (autocast): bf16 on CUDA or the CPU, fp16 on CUDA only; fp32 "
                   "(the default) none, e.g. to --resume a bf16 run in float32.")
@click.option("--channels-last/--no-channels-last", default=None,
              help="Train 2D models in channels-last memory format. Default: on when training on the CPU "
                   "(a median 1.2x, up to 1.9x, faster per epoch there), off on CUDA.")
@click.option("--compile/--no-compile", "compile_model", default=False, help="torch.compile the training forward pass.")
@click.option("--cuda-graphs/--no-cuda-graphs", default=False,
              help="Capture each training step (forward, backward, optimizer update) as a CUDA graph "
                   "and replay it. Falls back to the eager loop, with the reason recorded, where it "
                   "cannot apply.")
@click.option("--warmup-steps", type=click.IntRange(min=0), metavar="N",
              help="Untimed training steps on a copy of each model, at each batch size, before its training "
                   "clock starts, so one-time GPU costs (kernel loading, cuDNN autotuning) do not land in "
                   "whichever job runs first. Default: 2 on CUDA, 0 on the CPU.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML/JSON file of options and a [sweep] grid.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help='Where jobs run: in this process, or as Ray tasks (pip install "ray>=2.9").')
@click.option("--ray-address", help="Ray cluster to join (ray://HEAD:10001, HOST:6379 or auto); "
              "default $RAY_ADDRESS, else a local Ray instance.")
@click.option("--jobs", type=click.IntRange(min=1), metavar="N", help="With --executor ray: at most N jobs at once "
              "(the local Ray instance's CPUs).")
@click.option("--job-timeout", type=Finite(0, min_open=True), metavar="SECONDS", help="Fail a job that runs longer than this many seconds "
              "(default: no limit).")
@click.option("--profile", type=click.Choice(["edge"]), help="edge: batch 1 on 1 thread and on all cores, every "
              "variant, and a deployment table in the reports.")
@click.option("--latency-budget-ms", type=Finite(0, min_open=True), help="Mark which models meet this p50 latency at batch 1.")
@click.option("--accuracy-floor", type=Finite(percent=True), help="Lowest acceptable accuracy (0.99 or 99) in the edge "
              "question: the deployment table, the answer under the results table and --edge-gate.")
@click.option("--max-accuracy-drop", type=Finite(0, 100, percent=True), metavar="POINTS",
              help="Largest accuracy loss below float32 a variant (int8, fp16...) may have in the deployment "
                   "table, in percentage points (0.5: half a point).")
@click.option("--size-budget", "size_budget_bytes", type=ByteSize(), metavar="SIZE",
              help="Mark which models fit this size on disk (flash), e.g. 256KiB or 1MB.")
@click.option("--activation-budget", "activation_budget_bytes", type=ByteSize(), metavar="SIZE",
              help="Mark which models' peak activation memory at batch 1 (a static estimate from the graph: "
                   "working RAM beside the weights) fits SIZE, e.g. 64KiB.")
@click.option("--cold-budget-ms", type=Finite(0, min_open=True), help="Mark which models start within this many milliseconds "
              "at batch 1: their load and first answer in a new process (a model loaded on demand; timed at "
              "the fewest threads measured).")
@click.option("--memory-budget", "memory_budget_bytes", type=ByteSize(), metavar="SIZE",
              help="Mark which models add at most SIZE of resident memory to a process that loads them and "
                   "answers once (measured: weights as ONNX Runtime holds them, its arena, the tensors), "
                   "e.g. 4MiB.")
@click.option("--track", type=NAMES, envvar="HARNESS_TRACK", help="Experiment trackers by name: mlflow,tensorboard "
              "built in, others from plugins (harness list trackers; also $HARNESS_TRACK; pip install "
              "'mlflow-skinny>=2.10' / 'tensorboard>=2.14').")
@click.option("--edge-gate", is_flag=True, help="Exit 1 when no job answers the edge question (the accuracy "
              "floor and budgets asked): a CI check that some model still fits. results.json's 'edge' holds "
              "the answer either way.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress on stderr.")
@click.pass_context
def run_command(ctx: click.Context, **kwargs: Any) -> None:
    """Train, export, check and benchmark every compatible model x dataset job.

    Writes <out>/<run-id>/ with results.json, results.csv, report.md,
    report.html and the ONNX files, and prints a comparison table.
    Exit status: 0 every job ok; 1 a job failed (or --edge-gate closed);
    2 bad input, before any job runs; 74 the run folder stopped taking
    files (full disk, read-only), the jobs written before kept; 130/143/129
    stopped by Ctrl-C/SIGTERM/SIGHUP (149: Ctrl-Break on Windows), the
    finished jobs kept (--resume goes on). A reader of standard output that
    left early (| head) is a warning: the status stays the jobs'.
    """
    from harness.progress import make_progress
    from harness.report import failures

    values, explicit, from_config = _merge_config(ctx, kwargs)
    registry = _registry()
    try:
        options = _run_options(values, explicit)
    except HarnessError:  # a load error may be why (a --resume whose plugin no longer loads)
        _say_load_errors(registry, None)
        raise
    from harness.registry import with_builtin_metrics

    # --plugins' own plugins' errors in full; with the built-in metrics, which every run uses
    _say_load_errors(registry, with_builtin_metrics(options.plugins))
    _check_run_options(options, from_config)
    edge_gate = values.get("edge_gate")
    if edge_gate and not _asks_edge_question(options):
        raise HarnessError("--edge-gate needs an edge question to judge: --accuracy-floor, --latency-budget-ms, "
                           "--size-budget ...")
    if edge_gate:
        from harness.runner import edge_unmeasured

        unmeasured = edge_unmeasured(options)
        if unmeasured:  # the gate would close on every run, as if no model fitted
            raise HarnessError(f"--edge-gate: {unmeasured}")
    # a typo is said before torch's second of importing, named as the file's setting when it came from there
    registry.check_names(options, where={kind: f"{path}: {kind}" for kind, path in from_config.items()})
    from harness.runner import execute, write_run_reports

    if options.executor != "ray" and (values["ray_address"] or values["jobs"]):  # a resume's: runner clears them
        raise HarnessError("--ray-address and --jobs need --executor ray")
    tracked = []
    if values.get("track"):  # made now: a bad name or a missing package is this one line, before any job
        source = ("$HARNESS_TRACK" if ctx.get_parameter_source("track") == click.core.ParameterSource.ENVIRONMENT
                  else f"{from_config['track']}: track" if "track" in from_config else "--track")
        from harness.reporters import make_trackers

        try:
            tracked = make_trackers(registry, values["track"])
        except HarnessError as exc:  # which setting named it: a variable set long ago reads as a mystery
            raise HarnessError(f"{source}: {exc}") from None
    from harness.reporters import run_reporters

    reporter_set = run_reporters(registry, tracked)
    progress = make_progress(values["progress"])
    stop = _StopSignals(holding=True)
    previous = stop.install()
    folder = None
    try:
        try:
            _import_run_modules()
            stop.release()  # a signal that came during the imports stops the run here
            folder = execute(registry, options, progress, reporters=reporter_set, keep_lock=True,
                             stop_requested=lambda: bool(stop.received))
        except StorageError as exc:  # the run folder stopped taking files mid-run: the finished jobs' table
            stopped = getattr(exc, "run_folder", None)
            if stopped is not None and stopped.data["jobs"]:
                try:
                    write_run_reports(stopped, reporter_set)  # if the disk takes them; results.json has the figures
                except HarnessError:
                    pass
                _echo_out(_run_table(stopped.data))
            raise
        except HarnessError as exc:  # the sweep's keys are checked against the models chosen: name its file
            if str(exc).startswith("sweep ") and "sweep" in from_config:
                raise HarnessError(f"{from_config['sweep']}: {exc}") from None
            raise
        except KeyboardInterrupt as exc:
            folder = getattr(exc, "run_folder", None)
            if folder is not None and getattr(exc, "complete", False):  # after the last job (Ray shutting down)
                stop.deferring = True
                write_run_reports(folder, reporter_set)
                _end_finished_run_after_signal(ctx, folder, stop)
            if folder is not None:
                try:
                    write_run_reports(folder, reporter_set)  # of the jobs that finished
                except HarnessError as error:  # a full disk: still the signal's status and the resume hint
                    click.echo(f"\nharness: warning: {error}", err=True)
                if folder.data["jobs"]:  # standard output holds the table, of the jobs that finished
                    _echo_out(_run_table(folder.data))
                failed = sum(1 for job in folder.data["jobs"] if job.get("status") == "failed")
                again = f" ({failed} failed, to run again)" if failed else ""
                track = f" --track {','.join(r.name for r in tracked)}" if tracked else ""  # or they miss the rest
                # the cluster it went to, which a resume asks for again rather than read from results.json
                cluster = f" --ray-address {options.ray_address}" if options.ray_address else ""
                click.echo(f"\ninterrupted: {len(folder.finished_ids())} finished job(s) kept in {folder.path}{again}; "
                           f"continue with: harness run --resume --run-id {folder.path.name} "
                           f"--out {folder.path.parent}{track}{cluster}", err=True)
            else:
                click.echo("\ninterrupted before the first job", err=True)
            ctx.exit(stop.exit_code())
        stop.deferring = True  # the reports of a finished run are written whole
        if len(folder.data["jobs"]) >= REPORTS_SAID_FROM:  # seconds of quiet after the last job read as a hang
            progress.note(f"writing the reports of {len(folder.data['jobs'])} jobs (results.csv, report.md, "
                          "report.html, plots)")
        try:
            write_run_reports(folder, reporter_set)
        except HarnessError:  # a full disk: the figures are known, and a CI log keeps them
            _echo_out(_run_table(folder.data))
            raise
        if stop.received:
            _end_finished_run_after_signal(ctx, folder, stop)
    finally:
        if folder is not None:
            folder.unlock()  # only now: a --resume waits until the reports are written
        if stop.received:
            _ignore_signals(previous)  # the process exits now: a late Ctrl-C must not turn the status into -2
        else:
            _restore_signals(previous)
    _echo_out(_run_table(folder.data))
    _echo_edge_answer(folder.data, folder.path)
    click.echo(f"\nrun folder: {folder.path}")
    failed = failures(folder.data)
    for lines, what in ((failures(folder.data, "skipped"), "skipped (--models and --datasets named pairs "
                         "that cannot run)"), (failed, "failed")):
        if lines:
            click.echo(f"{len(lines)} job(s) {what}:", err=True)
            for line in lines:
                click.echo(f"  {line}", err=True)
    closed = edge_gate and not (folder.data.get("edge") or {}).get("qualifying")
    if closed:
        click.echo("harness: --edge-gate: no job answers the edge question", err=True)
    if failed or closed:
        ctx.exit(EXIT_JOB_FAILED)


class _StopSignals:
    """Ctrl-C, SIGTERM (CI time-outs, ``kill``) and SIGHUP (a closed terminal) during ``harness run``.

    The first signal stops the run (KeyboardInterrupt: the finished jobs are kept and resumable),
    unless ``deferring`` is set (the reports of a finished run are being written). Any other signal is
    only noted, so an interrupted run still saves its state and writes its reports. ``received`` holds
    every signal; the first gives the exit status. A KeyboardInterrupt Python drops (raised inside a
    weakref callback) is raised again at the run's next job, stage or training step
    (``harness.runner.checkpoint`` asks ``received``).
    """

    def __init__(self, holding: bool = False) -> None:
        self.received: list[int] = []
        self.deferring = False
        self.holding = holding

    def __call__(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if len(self.received) == 1 and not self.deferring and not self.holding:
            raise KeyboardInterrupt
        if len(self.received) == (1 if self.deferring else 2) and not self.holding:
            click.echo("\nharness: finishing the reports first (a few seconds)", err=True)

    def release(self) -> None:
        """End ``holding`` (signals only noted, see :func:`_import_run_modules`): raise the
        KeyboardInterrupt a signal received meanwhile would have raised."""
        self.holding = False
        if self.received and not self.deferring:
            raise KeyboardInterrupt

    def install(self) -> dict[int, Any] | None:
        """Handle SIGINT, SIGTERM and SIGHUP, and on Windows SIGBREAK; the previous handlers (None off the main
        thread: nothing changed)."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None
        # SIGHUP: the terminal or ssh session went away; stopped as SIGTERM stops a run, not killed outright.
        # Windows has none, but SIGBREAK: Ctrl-Break, and the CTRL_BREAK_EVENT a CI runner or supervisor sends a
        # console process group to stop it (its default action ended the run at once, no reports written)
        hangup = [getattr(signal, name) for name in ("SIGHUP", "SIGBREAK") if hasattr(signal, name)]
        return {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM, *hangup)}

    def exit_code(self) -> int:
        """128 + the signal's number, the shell's convention: 130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for
        SIGHUP (149 for Windows' SIGBREAK)."""
        import signal

        return 128 + int(self.received[0] if self.received else signal.SIGINT)


REPORTS_SAID_FROM = 100
"""From this many jobs on (some 5 s of report writing, 15 s at 1,000) the progress says the reports are
being written after the last job."""


def _import_run_modules() -> None:
    """Import what every run needs, while signals are only noted: a KeyboardInterrupt raised inside
    torch's or onnx's import left half-initialised C extensions behind, and the process then died
    writing the interrupted run's reports (a RecursionError in numpy, or an abort from pybind11). The
    report modules too: loaded now, they match each other when the reports are written hours later,
    even if harness was upgraded in between (the HTML page's import then failed, and was skipped).

    The garbage collector sits out the imports (it walked torch's and the exporter's new objects again and
    again, ~0.3 s) and their objects are frozen after them, out of every later collection; and the
    collections of the interpreter's shutdown, which walked them all once more after the run had ended
    (~1 s of every ``harness run``), skip what is alive when the last exit handler runs. Timing is not
    touched: the collector is paused while latency is measured (:mod:`harness.latency`)."""
    import atexit
    import gc
    import importlib

    gc.disable()
    try:
        for name in ("numpy", "onnx", "onnxruntime", "torch", "harness.report_html"):
            try:
                importlib.import_module(name)
            except ImportError as exc:  # a library that cannot load here: one line, not torch's 34
                from harness.manager import one_line

                raise HarnessError(f"cannot load {name}: {one_line(exc, 300)} (a memory limit such as "
                                   f"ulimit -v too low for it, or a broken install: python -c 'import {name}' shows "
                                   "the whole error)") from None
    finally:
        gc.enable()
    gc.freeze()
    atexit.register(gc.freeze)  # registered first, so run last: after the trackers' and Ray's own handlers


def _restore_signals(previous: dict[int, Any] | None) -> None:
    import signal

    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)


def _ignore_signals(previous: dict[int, Any] | None) -> None:
    """Ignore Ctrl-C and SIGTERM from here on (an interrupted run, about to exit with its status).

    Python resets its own handlers to the default while it shuts down, so a signal in that window
    would kill the process (status -2) after everything was saved; an ignored signal stays ignored.
    """
    import signal

    for sig in previous or {}:
        signal.signal(sig, signal.SIG_IGN)


def _merge_config(ctx: click.Context, kwargs: dict[str, Any]) -> tuple[dict[str, Any], set[str], dict[str, Path]]:
    """(values, names given explicitly, names taken from the config file -> that file): the command line,
    filled from --config where it left the default."""
    values = dict(kwargs)
    config_file = values.pop("config_file")
    explicit = {k for k in values if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    from_config: dict[str, Path] = {}
    if config_file is None:
        return values, explicit, from_config
    from harness.config import load_config

    params = {param.name: param for param in ctx.command.params}
    settings = load_config(config_file)
    on_command_line = set(explicit)  # the file's own keys join `explicit` below: they are not the command line's
    swept = {key for point in settings.get("sweep") or [] for key in point}
    both = sorted(swept & {_PARAM_OF.get(setting, setting) for setting in settings if setting != "sweep"} - {"seed"})
    if both:  # which one wins would depend on the order of the file's keys
        raise HarnessError(f"{config_file}: {', '.join(both)} is set both as an option and in [sweep]; keep one")
    for setting, value in settings.items():
        key = _PARAM_OF.get(setting, setting)
        if key == "sweep":
            from harness.runner import check_sweep_grid

            try:  # the whole grid, before the command line replaces any of it
                check_sweep_grid(value)
            except HarnessError as exc:
                raise HarnessError(f"{config_file}: {exc}") from None
            value = _sweep_without(value, on_command_line, config_file)
        param = params.get(key)
        if param is not None:  # the command line's own checks, also on a value the command line overrides
            try:
                value = param.type.convert(value, param, ctx)
            except click.BadParameter as exc:
                finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
                bounds = _range_text(param.type) if finite else None  # out of range: as other config errors read
                raise HarnessError(f"{config_file}: {setting} must be {bounds}, not {value!r}" if bounds
                                   else f"{config_file}: {setting}: {exc.message}") from None
        if key in explicit:
            continue
        values[key] = value
        explicit.add(key)
        from_config[key] = Path(config_file)
    return values, explicit, from_config


def _range_text(kind: Any) -> str | None:
    """A click number range in words: ``at least 1``, ``positive``, ``between 0 and 100``; None if no range."""
    low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    if low is not None:
        return "positive" if low == 0 and getattr(kind, "min_open", False) else f"at least {low:g}"
    if high is not None:
        return f"at most {high:g}"
    return None


def _sweep_without(points: list[dict[str, Any]], given: set[str], config_file: Path) -> list[dict[str, Any]]:
    """The config's sweep grid less the recipe fields the command line sets (it wins over the file), with a
    warning. ``--seed`` stays beside a swept seed: it picks the data, the swept one what training draws."""
    dropped = sorted({key for point in points for key in point} & given - {"seed"})
    if not dropped:
        return points
    flags = ", ".join("--" + key.replace("_", "-") for key in dropped)
    click.echo(f"harness: warning: {flags} on the command line replaces the sweep over "
               f"{', '.join(dropped)} in {config_file}", err=True)
    from harness.config import sweep_without

    return sweep_without(points, dropped)


def _check_run_options(options: Any, from_config: dict[str, Path]) -> None:
    """The run options' checks before anything runs; a bad value from the config file is named as the
    file's setting (``sweep.toml: epochs must be ...``), not as the flag the user did not type."""
    from harness.runner import validate_options

    try:
        validate_options(options)
    except HarnessError as exc:
        message = str(exc)
        flag = message.split(" ", 1)[0]
        key = flag.lstrip("-").replace("-", "_")
        if flag.startswith("--") and key in from_config:
            message = message.replace(flag, f"{from_config[key]}: {key}", 1)
        raise HarnessError(message) from None


# CLI option name -> RunOptions field, where they differ; and a config file's key -> CLI option name.
_FIELD_OF = {"no_torch_latency": "torch_latency", "quick": "latency", "compile_model": "compile"}
_PARAM_OF = {"compile": "compile_model", "size_budget": "size_budget_bytes",
             "activation_budget": "activation_budget_bytes", "memory_budget": "memory_budget_bytes"}


def _run_options(values: dict[str, Any], explicit: set[str]) -> Any:
    """RunOptions from CLI values; with --resume, the stored run's options with explicit values on top."""
    from harness.latency import QUICK, LatencyConfig
    from harness.runner import RunOptions

    fields = {
        "plugins": None if values["plugins"] in (["all"], None) else values["plugins"],
        "models": values["models"], "datasets": values["datasets"], "metrics": values["metrics"],
        "epochs": values["epochs"], "batch_size": values["batch_size"], "lr": values["lr"],
        "device": values["device"], "max_train_samples": values["max_train_samples"],
        "max_test_samples": values["max_test_samples"], "batch_sizes": values["batch_sizes"],
        "threads": values["threads"], "providers": values["providers"], "seed": values["seed"],
        # resolved: a resume from another folder finds it, and "~" in a config file (no shell) means home
        "data_dir": Path(values["data_dir"]).expanduser().resolve() if values["data_dir"] else None,
        "out": Path(values["out"]).expanduser(),  # a config's out = "~/runs" made a folder named "~"
        "run_id": values["run_id"], "resume": values["resume"], "variants": values["variants"],
        "exporter": values["exporter"], "latency": QUICK if values["quick"] else LatencyConfig(),
        "torch_latency": not values["no_torch_latency"], "amp": None if values["amp"] == "fp32" else values["amp"],
        "channels_last": values["channels_last"], "compile": values["compile_model"],
        "cuda_graphs": values["cuda_graphs"], "warmup_steps": values["warmup_steps"],
        "sweep": values.get("sweep") or [{}], "executor": values["executor"],
        "ray_address": values["ray_address"] or None, "jobs": values["jobs"],
        "job_timeout": values["job_timeout"], "profile": values["profile"],
        "latency_budget_ms": values["latency_budget_ms"], "accuracy_floor": values["accuracy_floor"],
        "size_budget_bytes": values["size_budget_bytes"], "max_accuracy_drop": values["max_accuracy_drop"],
        "activation_budget_bytes": values["activation_budget_bytes"], "cold_budget_ms": values["cold_budget_ms"],
        "memory_budget_bytes": values["memory_budget_bytes"],
    }
    fields["latency"] = _latency_flags(fields["latency"], values)
    if values["onnx_tolerance"] is not None:
        fields["onnx_tolerance"] = values["onnx_tolerance"]
    if fields["profile"] == "edge":
        from harness.edge import apply_edge_profile

        apply_edge_profile(fields, explicit)
    if values.get("like") is not None and values["resume"]:
        raise HarnessError("--like starts a new run with another run's options and --resume continues a run: "
                           "give one of them")
    if not values["resume"] and values.get("like") is None:
        return RunOptions(**fields)
    from harness.runner import liked_options, resumed_options

    given = {_FIELD_OF.get(name, name) for name in explicit}
    if "profile" in given and fields["profile"] == "edge":  # what the profile implies comes with it, as for a new run
        from harness.edge import edge_profile

        given |= set(edge_profile())
    chosen = {k: v for k, v in fields.items() if k in given}
    if values.get("like") is not None:
        stored = liked_options(values["like"], chosen, tracking=bool(values.get("track")))
    else:
        stored = resumed_options(fields["out"], fields["run_id"], chosen)
    stored.latency = _latency_flags(stored.latency, values)  # on top of the run's own latency settings
    return stored


def _latency_flags(latency: Any, values: dict[str, Any]) -> Any:
    """``latency`` (a LatencyConfig) with the flags given on top: --cold-runs, --spin/--no-spin and
    --iobinding/--no-iobinding (None: not given, the settings' own stand)."""
    from harness.latency import FLAG_FIELDS

    given = {field: values[flag] for flag, field in FLAG_FIELDS.items() if values.get(flag) is not None}
    return dataclasses.replace(latency, **given) if given else latency


# -- bench -------------------------------------------------------------------------------------------------


@main.command("bench", short_help="Latency, FLOPs and memory of any ONNX file.")
@click.argument("model_path", metavar="MODEL.onnx", type=click.Path(path_type=Path))
@click.option("--batch-sizes", type=positive_ints("BATCH SIZES"), metavar="N,N...", default=None,
              help="Batch sizes to time. Default: 1, or the graph's batch size when its input fixes one "
                   "(a static batch dimension skips other sizes, with a warning).")
@click.option("--dims", type=DIMS, metavar="NAME=N,...", default=None,
              help="Sizes of the graph's open input dimensions other than the batch, by name (h=224,w=224) or "
                   "as INPUT[AXIS]=N (x[2]=32: an unnamed one's only way); an unset one is 1, with a warning. The "
                   "batch is the dimension named like one (batch, batch_size, bs), else each input's open first "
                   "one, unless --batch-dim names it.")
@click.option("--batch-dim", metavar="NAME", default=None,
              help="The batch dimension, by name or as INPUT[AXIS], when it is neither named like one nor each "
                   "input's first (a time-major (seq, N, F) input: --batch-dim N); inputs without it are not "
                   "batched. 'none': the graph has no batch (an unbatched [3, 32, 32] image); it is timed and "
                   "counted per call, at batch size 1.")
@click.option("--threads", type=positive_ints("THREAD COUNTS"), metavar="N,N...", default="1", show_default=True,
              help="Intra-op thread counts to time.")
@click.option("--providers", type=NAMES, default="cpu", show_default=True,
              help=f"ONNX Runtime providers: {PROVIDER_SHORT_NAMES} or full names.")
@click.option("--opt-level", type=click.Choice(["disable", "basic", "extended", "all"]), default="all",
              show_default=True, help="ONNX Runtime graph optimisation level.")
@click.option("--min-runs", type=click.IntRange(min=1), default=50, show_default=True, metavar="N",
              help="Timed runs per measurement, at least, within the time limit (twice --min-time, and at least "
                   "10 s; a row that stops short is warned of).")
@click.option("--min-time", "min_time", type=Finite(min=0), default=0.5, metavar="SECONDS", show_default=True, help="Seconds of timed runs per measurement, at least.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, metavar="N",
              help="Untimed runs first, and at least 0.1 s of them; 0: no warm-up.")
@click.option("--spin/--no-spin", default=True, show_default=True,
              help="Whether ONNX Runtime's intra-op threads spin-wait for work (its default). Above 1 thread on a "
                   "busy machine, spinning threads compete for the cores: --no-spin times without.")
@click.option("--iobinding/--no-iobinding", default=True, show_default=True,
              help="Bind inputs and outputs once (on a GPU provider, on the device) and time the inference "
                   "alone; --no-iobinding times session.run on numpy arrays, conversions (and host-device "
                   "copies) included, as an application calling run() pays.")
@click.option("--cold-runs", type=click.IntRange(min=0), default=3, show_default=True, metavar="N",
              help="New processes that time the cold start (the model's load and first answer, on the CPU "
                   "provider where timed, else the first; fewest threads, smallest batch; their medians). "
                   "0: none.")
@click.option("--against", metavar="OTHER.onnx", type=click.Path(path_type=Path), default=None,
              help="Time MODEL against OTHER in alternating rounds (ABBA, so that the machine's drift cancels) at "
                   "each setting MODEL has a row for, on the same inputs when their inputs match, and print the "
                   "ratio: the way to tell whether a change (int8, an optimised graph, a smaller model) is faster.")
@click.option("--rounds", type=click.IntRange(min=1), default=None, metavar="N",
              help="Alternating rounds of --against (default 5; each times each file for 0.15 s, or --min-time "
                   "when shorter).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: {model, bytes, flops (per sample), activation_bytes (at batch 1, or at "
                   "activation_batch, present when the graph fixes another), latency: [...], cold_start: {...} or "
                   "null, skipped: [why each batch size or provider asked for has no rows; empty when none]}; where "
                   "they apply, flops_uncounted names the nodes a partial FLOP count leaves out and assumed_dims_1 "
                   "the open dimensions set to 1; with --against, against: {model, bytes, flops, activation_bytes, "
                   "comparisons: [{provider, batch_size, threads, ratio (MODEL / OTHER: above 1, MODEL is slower), "
                   "stability, note, ...}]}.")
def bench_command(model_path: Path, batch_sizes: list[int] | None, dims: list[tuple[str, int]] | None,
                  batch_dim: str | None, threads: list[int], providers: list[str], opt_level: str, min_runs: int,
                  min_time: float, warmup: int, spin: bool, iobinding: bool, cold_runs: int, against: Path | None,
                  rounds: int | None, as_json: bool) -> None:
    """Latency of any ONNX file, no training, with its FLOPs and activation memory. Inputs are random,
    shaped as the graph declares (open dimensions from --dims). FLOPs count convolutions and matrix
    products, 2 per multiply-add (MACs are half), and LSTM/GRU/RNN layers; element-wise work is not counted,
    and an operator with no formula (Einsum, fused attention, custom or contrib operators) is named, not
    counted as 0."""
    from harness.latency import LatencyConfig, measure_onnx, unstable_mark, unstable_note

    if rounds is not None and against is None:
        raise HarnessError("--rounds needs --against: they are the rounds of that comparison")
    model = _check_onnx_file(model_path)
    other = _check_onnx_file(against, "--against: ") if against is not None else None
    if against is not None and model_path.resolve() == against.resolve():  # a slip, or a check of the method
        click.echo(f"harness: warning: --against is the model itself ({against}): every ratio is about 1", err=True)
    if providers:
        from harness.runner import check_providers

        providers = check_providers(providers, here=False)  # an unknown name; one that cannot run here is skipped
    sizes = dict(dims or [])
    if batch_dim is not None and not batch_dim.strip():
        raise HarnessError("--batch-dim needs a dimension's name, or INPUT[AXIS]")
    from collections import Counter

    twice = sorted(name for name, count in Counter(name for name, _ in dims or []).items() if count > 1)
    if twice:
        raise HarnessError(f"--dims gives {twice[0]!r} twice")
    from harness.shapes import graph_shapes, plan_with

    plan, marked, problem = plan_with(graph_shapes(model.graph), sizes, batch_dim)  # marked: the stages' dims
    if problem:
        raise HarnessError(f"--{problem[0].replace('_', '-')}: {problem[1]}")
    other_marked: dict[str, Any] = {}
    if other is not None:  # the same sizes, checked against its own graph: no comparison at another input size
        other_plan, other_marked, problem = plan_with(graph_shapes(other.graph), sizes, batch_dim)
        if problem:
            raise HarnessError(f"--against {against}: --{problem[0].replace('_', '-')}: {problem[1]}")
        other_unset = other_plan.unset(sizes)
        if other_unset:
            click.echo(f"harness: warning: --against {against}: open input dimension(s) {', '.join(other_unset)} "
                       f"set to 1", err=True)
        del other
    from harness.ort import is_cpu_provider

    if _mostly_float16(model) and any(is_cpu_provider(p) for p in providers or ["cpu"]):
        from harness.variants import FP16_CPU_NOTE

        click.echo("harness: warning: a float16 model timed on the CPU provider, which casts to float32 around "
                   f"float16 operators (harness run times fp16 variants on GPU providers only: "
                   f"{FP16_CPU_NOTE.split(': ')[1]})", err=True)
    del model
    from harness.export import onnx_bytes
    from harness.onnx_cost import count_onnx_cost

    counted = count_onnx_cost(model_path, marked)
    refused: list[str] = []  # batch sizes an unbatched graph cannot have: in the JSON's skipped too
    if batch_sizes is None:
        batch_sizes = [counted.batch]  # the batch size the graph fixes, else 1
    elif not plan.batched and batch_sizes != [1]:
        why = ("no input has a batch dimension" + (" (--batch-dim none)" if batch_dim else "")
               + ", so the graph is timed per call, at batch size 1")
        if 1 not in batch_sizes:  # nothing asked could be measured
            raise HarnessError(f"--batch-sizes: {why}")
        others = ", ".join(str(b) for b in batch_sizes if b != 1)
        refused.append(f"batch size(s) {others}: {why}")
        click.echo(f"harness: warning: batch size(s) {others} skipped: {why}", err=True)  # as a static batch
        batch_sizes = [1]
    open_dims = ""
    unset = plan.unset(sizes)
    if unset:
        open_dims = (f"open input dimension(s) {', '.join(unset)} set to 1; give their sizes with "
                     f"--dims {','.join(f'{key}=N' for key in unset)}"
                     + plan.batch_hint(batch_dim is not None, "--batch-dim"))  # a time-major input's N set to 1
        click.echo(f"harness: warning: {open_dims}", err=True)
    from harness.latency import threads_over_cores

    over = threads_over_cores(threads)
    if over:
        click.echo(f"harness: warning: {over}", err=True)
    skipped: list[str] = []
    config = LatencyConfig(warmup_runs=warmup, min_runs=min_runs, min_time_s=min_time,
                           max_time_s=max(10.0, min_time * 2), cold_runs=cold_runs,
                           warmup_time_s=LatencyConfig.warmup_time_s if warmup else 0.0)
    rows = measure_onnx(model_path, list(dict.fromkeys(batch_sizes)), list(dict.fromkeys(threads)), providers,
                        config, opt_level=opt_level, on_skip=skipped.append, dims=marked, spinning=spin,
                        iobinding=iobinding)
    skipped = list(dict.fromkeys(skipped))  # the same reason once, not once per thread count
    if not rows:  # one line: the reason
        why = f": {skipped[0]}" + (f" (and {len(skipped) - 1} more reason(s))" if len(skipped) > 1 else "") \
            if skipped else ""
        fixed = f"; the graph fixes its batch at {plan.fixed_batch}: --batch-sizes {plan.fixed_batch}" \
            if plan.fixed_batch is not None and plan.fixed_batch not in batch_sizes else ""
        raise HarnessError(f"nothing could be measured for {model_path}{why}{fixed}"
                           + (f"; {open_dims}" if open_dims else ""))
    for message in skipped:
        click.echo(f"harness: warning: skipped {message}", err=True)
    short = [r for r in rows if r["runs"] < min_runs]
    if short:  # a slow model: p99 of fewer runs than asked is close to the slowest one
        click.echo(f"harness: warning: {len(short)} row(s) stopped at the time limit ({config.max_time_s:g} s) with "
                   f"fewer than --min-runs {min_runs} runs (as few as {min(r['runs'] for r in short)}); give a "
                   f"longer --min-time for more", err=True)
    from harness.coldstart import cold_start_for

    result = {"model": str(model_path), "bytes": onnx_bytes(model_path), **counted.to_dict(), "latency": rows}
    cold = cold_start_for(model_path, rows, cold_runs, config.max_time_s, dims=marked)
    result["cold_start"] = cold  # null with --cold-runs 0
    if against is not None:
        not_compared: list[str] = []
        from harness.latency import ROUND

        round_config = dataclasses.replace(  # the run's short rounds, shorter where bench was asked for less
            ROUND, warmup_runs=min(warmup, ROUND.warmup_runs), min_runs=min(min_runs, ROUND.min_runs),
            min_time_s=min(min_time, ROUND.min_time_s), warmup_time_s=ROUND.warmup_time_s if warmup else 0.0)
        result["against"] = _compare_against(model_path, against, rows, other_marked, marked, rounds or 5,
                                             round_config, opt_level, iobinding, spin, not_compared.append)
        for message in not_compared:
            click.echo(f"harness: warning: skipped {message}", err=True)
        skipped += not_compared
    result["skipped"] = refused + skipped  # what was asked for and has no row, for a script that reads the JSON
    if as_json:
        from harness.results import json_text

        click.echo(json_text(result))
        return
    from tabulate import tabulate

    facts = [f"{result['bytes']:,} bytes"]
    per = "per sample" if plan.batched else "per call"  # an unbatched graph's call is its one sample
    if counted.flops is not None:
        facts.append(_flops_fact(counted.flops, per, counted.uncounted))
    if counted.activation_bytes is not None:
        at = f"at batch {counted.batch}" if plan.batched else "per call"  # an unbatched graph has no batch size
        facts.append(f"{counted.activation_bytes / 1024:,.1f} KiB of activations {at}"
                     + (" with its QDQ groups fused, as ONNX Runtime runs them"
                        if counted.activation_basis == "onnxruntime-fused" else ""))
    click.echo(f"{model_path} ({', '.join(facts)})")
    if counted.uncounted:
        click.echo(f"harness: note: the FLOPs leave out {len(counted.uncounted)} node(s) they cannot count: "
                   f"{squeeze(', '.join(counted.uncounted), 200)}", err=True)
    if counted.error:
        click.echo(f"harness: note: FLOPs and activation memory could not be counted: {counted.error}", err=True)
    elif counted.activation_bytes is None:
        click.echo("harness: note: activation memory not estimated: ONNX shape inference leaves some tensors' "
                   "shapes unknown (data-dependent ones, or operators it cannot follow)", err=True)
    unstable = [r for r in rows if r.get("stable") is False]
    click.echo(tabulate(
        [[r["provider"], r["batch_size"], r["threads"], r["runs"],
          f"{r['p50_ms']:.4f}" + unstable_mark(r), f"{r['p90_ms']:.4f}",
          f"{r['p99_ms']:.4f}", f"{r['min_ms']:.4f}", f"{r['mean_ms']:.4f}", f"{r['throughput_per_s']:,.0f}",
          f"{r['session_ms']:.1f}", f"{r['first_call_ms']:.3f}"] for r in rows],
        # the mean beside the throughput it gives: a few stalls move it (and the throughput) far from the p50
        headers=["provider", "batch", "threads", "runs", "p50 ms", "p90 ms", "p99 ms", "min ms", "mean ms",
                 "samples/s (batch / mean)" if plan.batched else "calls/s (1 / mean)", "session ms", "first call ms"],
        disable_numparse=True,
    ))
    if unstable:
        click.echo(unstable_note(unstable, "with a longer --min-time or at a quieter moment"), err=True)
    if against is not None:
        other_facts = [f"{result['against']['bytes']:,} bytes"]
        if result["against"]["flops"] is not None:
            other_facts.append(_flops_fact(result["against"]["flops"], per, result["against"]["flops_uncounted"]))
        lines = _against_lines(result["against"])
        click.echo(f"against {against} ({', '.join(other_facts)})"
                   + (", in alternating rounds:" if lines else ": not compared at any setting (the warnings say why)"))
        for line in lines:
            click.echo(f"  {line}")
    if cold is not None:
        from harness.coldstart import cold_start_text

        click.echo(cold_start_text(cold))


def _compare_against(model_path: Path, against: Path, rows: list[dict[str, Any]], dims_b: dict[str, Any],
                     dims_a: dict[str, Any], rounds: int, config: Any, opt_level: str, iobinding: bool, spin: bool,
                     on_skip: Callable[[str], None]) -> dict[str, Any]:
    """``harness bench --against``: MODEL against OTHER in alternating rounds at each setting MODEL has a
    row for; a setting OTHER cannot run at (another static batch) is a ``skipped`` reason."""
    from harness.export import onnx_bytes
    from harness.latency import compare_onnx
    from harness.onnx_cost import count_onnx_cost

    comparisons = []
    for row in rows:
        setting = (row["provider"], row["batch_size"], row["threads"])
        try:
            comparisons.append(compare_onnx(model_path, against, batch_size=setting[1], threads=setting[2],
                                            provider=setting[0], rounds=rounds, config=config, opt_level=opt_level,
                                            iobinding=iobinding, dims=dims_a, spinning=spin, dims_b=dims_b))
        except Exception as exc:  # noqa: BLE001 - a static batch of another size; a graph that fails there
            on_skip(f"--against at batch size {setting[1]} on {setting[0]} with {setting[2]} thread(s): "
                    f"{squeeze(exc, 200)}")
    counted = count_onnx_cost(against, dims_b)
    return {"model": str(against), "bytes": onnx_bytes(against), "flops": counted.flops,
            "flops_uncounted": counted.uncounted, "activation_bytes": counted.activation_bytes,
            "comparisons": comparisons}


def _flops_fact(flops: int, per: str, uncounted: Sequence[str]) -> str:
    """``0.13 MFLOPs per sample``, or FLOPs for a graph too small to show in millions; ``at least`` before a
    partial count (``uncounted`` names what it lacks)."""
    floor = "at least " if uncounted else ""
    return f"{floor}{flops / 1e6:,.2f} MFLOPs {per}" if flops >= 10_000 else f"{floor}{flops:,} FLOPs {per}"


def _against_lines(against: dict[str, Any]) -> list[str]:
    """The text of ``harness bench --against``: one line per setting, the ratio first, then how it was got."""
    from harness.edge import robust_ratio

    lines = []
    for c in against["comparisons"]:
        ratio, _ = robust_ratio(c)
        if ratio is None:
            verdict = "no ratio"
        elif abs(ratio - 1) < 0.01:
            verdict = f"{c['a']} and {c['b']} are as fast (within 1 %)"
        else:
            verdict = f"{c['a']} is {max(ratio, 1 / ratio):.2f}x {'slower' if ratio > 1 else 'faster'} than {c['b']}"
        lines.append(f"{c['provider']}, batch {c['batch_size']}, {c['threads']} thread(s): {verdict} "
                     f"({squeeze(c['note'])})")
    return lines


def _check_onnx_file(path: Path, option: str = "") -> Any:
    """The model at ``path`` without its external data, or :class:`HarnessError` (its message after ``option``,
    ``"--against: "``) when it is a folder, no file or no ONNX model."""
    from harness.export import read_onnx

    if path.is_dir():
        raise HarnessError(f"{option}{path} is a folder; give an .onnx file (a run's are in its onnx/ folder)")
    if not path.exists():
        raise HarnessError(f"{option}{path}: no such file")
    if not path.is_file():
        raise HarnessError(f"{option}{path} is not a regular file; give an .onnx file")
    try:
        return read_onnx(path)
    except ValueError as exc:
        raise HarnessError(f"{option}{exc}") from None


def _mostly_float16(model: Any) -> bool:
    """True when most of a model's floating-point weights (by count of values) are float16."""
    import math

    from onnx import TensorProto

    from harness.onnx_cost import subgraphs

    counts = {TensorProto.FLOAT16: 0, TensorProto.FLOAT: 0, TensorProto.DOUBLE: 0, TensorProto.BFLOAT16: 0}

    def count(graph: Any) -> None:  # initializers and Constant nodes' values, subgraphs' too
        tensors = list(graph.initializer) + [a.t for node in graph.node if node.op_type == "Constant"
                                             for a in node.attribute if a.name == "value"]
        for tensor in tensors:
            if tensor.data_type in counts:
                counts[tensor.data_type] += math.prod(tensor.dims)
        for node in graph.node:
            for inner in subgraphs(node):
                count(inner)

    count(model.graph)
    return counts[TensorProto.FLOAT16] > sum(counts.values()) / 2


# -- report / compare --------------------------------------------------------------------------------------


def _asks_edge_question(options: Any) -> bool:
    """Whether the run options ask the edge question (a floor, a drop limit or a budget)."""
    from harness.edge import Question

    return bool(Question.from_config(options.to_config()))


def _echo_edge_answer(results: dict[str, Any], run_dir: Path | None) -> None:
    """The edge question's one-line answer under the results table, when the run asked one (a line per
    run for a joined report whose runs asked differently). ``run_dir``: the run's folder, or the joined
    report's."""
    from harness.edge import edge_answers

    lines = edge_answers(results, run_dir=run_dir)
    if not lines and (results.get("config") or {}).get("profile") == "edge":  # asked to look, with no question
        from harness.report import NO_QUESTION

        lines = [f"edge (batch 1, 1 thread, CPU): {NO_QUESTION[0].lower()}{NO_QUESTION[1:]}"]
    if lines:
        click.echo("\n" + "\n".join(lines))


def _relative_folder(run_dir: Path, report_dir: Path) -> str:
    """``run_dir`` as a path from ``report_dir`` (absolute where there is none, as across Windows drives)."""
    try:
        return Path(os.path.relpath(Path(run_dir).resolve(), Path(report_dir).resolve())).as_posix()
    except ValueError:
        return Path(run_dir).resolve().as_posix()


def _missing_model_files(run_dir: Path, document: dict[str, Any]) -> list[str]:
    """The ``onnx.path`` and variant ``path`` entries of a run that are not in its folder."""
    listed = []
    for job in document.get("jobs", []):
        listed.append((job.get("onnx") or {}).get("path"))
        listed += [v.get("path") for v in job.get("variants") or [] if isinstance(v, dict)]
    return [p for p in listed if isinstance(p, str) and p and not (Path(run_dir) / p).is_file()]


@main.command("report", short_help="Rebuild a run's reports, or join runs into one.")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Where to write the reports instead: of several runs "
              "joined (default: a folder 'joined' beside the first run), or a copy of one run's; never a run folder.")
@click.option("--accuracy-floor", type=Finite(0, 100, percent=True, none=True), help="Ask the edge question again "
              "with this accuracy floor (0.99 or 99) instead of the run's own; 'none' for no floor (as each below "
              "takes 'none': the run's own budget dropped).")
@click.option("--max-accuracy-drop", type=Finite(0, 100, percent=True, none=True), metavar="POINTS",
              help="Ask it allowing a variant this many percentage points below float32.")
@click.option("--latency-budget-ms", type=Finite(0, min_open=True, none=True), help="Ask it with this p50 latency "
              "budget at batch 1.")
@click.option("--size-budget", "size_budget_bytes", type=ByteSize(none=True), metavar="SIZE",
              help="Ask it with this budget for the model's size on disk, e.g. 256KiB.")
@click.option("--activation-budget", "activation_budget_bytes", type=ByteSize(none=True), metavar="SIZE",
              help="Ask it with this budget for peak activation memory at batch 1, e.g. 64KiB.")
@click.option("--cold-budget-ms", type=Finite(0, min_open=True, none=True), help="Ask it with this budget for the "
              "cold start at batch 1 (the model's load and first answer in a new process).")
@click.option("--memory-budget", "memory_budget_bytes", type=ByteSize(none=True), metavar="SIZE",
              help="Ask it with this budget for the resident memory a model adds to its process, e.g. 4MiB.")
@click.option("--edge-gate", is_flag=True, help="Exit 1 when no job answers the edge question (the run's own, "
              "or the one these options ask).")
@click.option("--sort", type=click.Choice(SORT_CHOICES), metavar="KEY", help=f"Order the printed table best first "
              f"by {', '.join(SORT_CHOICES)} (latencies at the table's small batch, throughput at its large one); "
              "jobs without the figure last. The files keep run order.")
@click.option("--top", type=click.IntRange(min=1), metavar="N", help="Print only the first N jobs of that order "
              "(by accuracy without --sort).")
def report_command(run_dirs: Sequence[Path], out: Path | None, edge_gate: bool, sort: str | None, top: int | None,
                   **asked: Any) -> None:
    """Rebuild results.csv, report.md and report.html from results.json.

    The edge options re-ask "which model fits?" of finished runs without running them again: the
    reports' deployment tables and the answer printed here use each in place of the run's own value
    of that setting (a budget the run asked and not given here still applies; 'none' drops it). results.json is not
    changed; a later report without them goes back to the run's own.
    """
    from harness.edge import Question, floor_warning
    from harness.report import write_reports
    from harness.results import RESULTS_FILE, load_results
    from harness.text import SIZE_UNITS

    # A run's results.json stands for its folder (the reports go beside it).
    run_dirs = [Path(d).parent if Path(d).name == RESULTS_FILE and Path(d).is_file() else Path(d) for d in run_dirs]
    seen: dict[Path, Path] = {}
    for run_dir in run_dirs:
        if not run_dir.exists() and str(run_dir).lower() in SIZE_UNITS:  # --size-budget 64 KiB, unquoted
            raise HarnessError(f"{run_dir}: no such run folder (a size with a space needs quotes: '64 {run_dir}', "
                               f"or none: 64{run_dir})")
        resolved = run_dir.resolve()  # the same run twice would count each of its jobs twice
        if resolved in seen:
            raise HarnessError(f"{run_dir} is given twice (as {seen[resolved]})")
        seen[resolved] = run_dir
    documents = [load_results(d) for d in run_dirs]
    for run_dir, document in zip(run_dirs, documents):
        missing = _missing_model_files(run_dir, document)
        if missing:  # the figures stand, but a deployment table's "fastest file" would point at nothing
            click.echo(f"harness: warning: {len(missing)} ONNX file(s) results.json lists are not in {run_dir} "
                       f"(moved or deleted?): {squeeze(', '.join(missing), 200)}", err=True)
    # given ones, "none" (NO_BUDGET) as a None that replaces the run's own
    asked = {key: None if value == NO_BUDGET else value for key, value in asked.items() if value is not None}
    if edge_gate and not any(Question.from_config({**(d.get("config") or {}), **asked}) for d in documents):
        raise HarnessError("--edge-gate needs an edge question to judge: the run asked none; add "
                           "--accuracy-floor, --latency-budget-ms, --size-budget ...")
    warning = floor_warning(asked.get("accuracy_floor"))
    if warning:
        click.echo(f"harness: warning: {warning}", err=True)
    if asked:
        documents = [{**d, "config": {**(d.get("config") or {}), **asked},
                      "edge_reasked": Question.from_config(d.get("config")).text()} for d in documents]
    held = None
    if len(documents) == 1 and out is None:
        target, results = run_dirs[0], documents[0]
        held = _hold_for_report(target)
    else:
        from harness.compare import run_labels
        from harness.results import SCHEMA_VERSION

        target = out or run_dirs[0].parent / "joined"
        if (target / "results.json").exists():  # a run's own reports would no longer match its results
            what = "the joined report" if len(documents) > 1 else "this run's report"
            raise HarnessError(f"{target} is a run folder (it has results.json); pass --out with another folder "
                               f"for {what}")
        labels = run_labels(run_dirs, documents)
        documents = [{**d, "run_id": label} for d, label in zip(documents, labels)]
        results = {
            "schema_version": SCHEMA_VERSION,
            "run_id": "+".join(d["run_id"] for d in documents),
            "created": max(d.get("created", "") for d in documents),
            "environment": documents[0].get("environment", {}),
            # Each run's folder relative to the joined report's, so that its files can be named.
            "joined_runs": [{"run_id": d["run_id"], "created": d.get("created"), "folder": _relative_folder(run_dir, target),
                             "environment": d.get("environment") or {}} for d, run_dir in zip(documents, run_dirs)],
            # Each job keeps its run's options (what its training budget was); the edge settings carry
            # over when every run had the same.
            "jobs": [{**job, "id": f"{d['run_id']}:{job.get('id')}", "run_id": d["run_id"],
                      "run_config": d.get("config")} for d in documents for job in d["jobs"]],
            "metric_specs": {name: spec for d in documents for name, spec in (d.get("metric_specs") or {}).items()},
        }
        shared = {}
        for key in Question.KEYS:  # numbers or None, as the options validate them
            values = {(d.get("config") or {}).get(key) for d in documents}
            if len(values) == 1:
                shared[key] = values.pop()
        if any(value is not None for value in shared.values()):
            results["config"] = shared
        if asked:
            results["edge_reasked"] = "; ".join(f"{d['run_id']}: {d['edge_reasked'] or 'nothing'}" for d in documents)
        if len(documents) == 1:  # one run's report written elsewhere: what it planned, and whether it still runs
            from harness.results import RunFolder

            only = documents[0]
            results["snapshot_of"] = str(run_dirs[0])
            if isinstance(only.get("planned_jobs"), list):
                results["planned_jobs"] = [f"{only['run_id']}:{job_id}" for job_id in only["planned_jobs"]]
            results.update({key: only[key] for key in ("interrupted", "resumed") if key in only})
            holder = RunFolder.holder(run_dirs[0])
            if holder:
                results["running_pid"] = holder
                click.echo(f"harness: warning: {run_dirs[0]} is still being written by a harness run (pid {holder}): "
                           f"this report holds the {len(only.get('jobs') or [])} job(s) finished so far", err=True)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise HarnessError(f"{'--out ' if out else 'the joined report folder '}{target} is not a folder (it, "
                               "or a folder above it, is a file)") from None
        except OSError as exc:
            raise HarnessError(f"{'--out ' if out else 'the joined report folder '}{target}: cannot make the folder "
                               f"({exc.strerror or exc})") from None
    from harness.errors import StorageError

    try:
        written = write_reports(target, results)
    except StorageError as exc:  # the folder given refuses the files: bad input here (nothing ran), status 2
        raise HarnessError(str(exc)) from None
    finally:
        if held is not None:
            held.unlock()
    plots = sum(1 for path in written if path.parent.name == "plots")
    names = [path.name for path in written if path.parent.name != "plots"] + ([f"{plots} plot(s)"] if plots else [])
    click.echo(f"wrote {', '.join(names)} in {target}")
    _echo_out(_run_table(results, sort=sort, top=top))
    # the folder the reports went to: a copy's or joined report's joined_runs are relative to it
    _echo_edge_answer(results, target)
    if edge_gate:
        from harness.edge import answered

        if not answered(results):  # None (nothing asked) was refused above
            click.echo("harness: --edge-gate: no job answers the edge question", err=True)
            sys.exit(EXIT_JOB_FAILED)


def _end_finished_run_after_signal(ctx: click.Context, folder: Any, stop: Any) -> None:
    """A run whose every job had finished when a signal came, its reports written: the table, a line that
    says the reports are complete, and the signal's exit status."""
    _echo_out(_run_table(folder.data))
    click.echo(f"\ninterrupted after every job had finished; the reports in {folder.path} are complete", err=True)
    ctx.exit(stop.exit_code())


def _hold_for_report(run_dir: Path) -> Any:
    """The run folder, locked while its reports are rewritten: a run still writing it is refused (its own
    reports follow when it ends, and these would be of a half-done run)."""
    from harness.results import RunFolder, RunInUseError

    try:
        return RunFolder(run_dir, {}).lock()
    except RunInUseError as exc:
        raise HarnessError(f"{run_dir}: a harness run is still writing it (pid {exc.holder}); its reports are "
                           f"written when it ends (or use --out DIR for a report of the jobs finished so far)") from None


@main.command("compare", short_help="Compare two runs job by job (a CI gate with --fail-on-regression).")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--fail-on-regression", "threshold", type=Finite(percent=True), metavar="PCT",
              help="Exit 1 when a job's ONNX Runtime p50 latency grows by more than PCT % or its accuracy, "
                   "macro-F1 or a plugin's gated metric (harness list metrics) moves the worse way by more than "
                   "PCT percentage points, or when a job of BASE or one of its "
                   "ONNX Runtime latency rows (fp32 or a variant) is missing or failed in NEW. A row either run "
                   "marked unstable gates on NEW's fastest call against BASE's p50 instead (noise only adds time). "
                   "Eager PyTorch rows, sizes, MFLOPs and activation memory are shown, never gated.")
@click.option("--max-accuracy-drop", "accuracy_points", type=Finite(0, 100, percent=True), metavar="POINTS",
              help="Gate accuracy, macro-F1 and the other gated metrics at POINTS percentage points instead of PCT (e.g. "
                   "--fail-on-regression 10 --max-accuracy-drop 0.5); alone, it gates accuracy and lost "
                   "measurements but not latency.")
@click.option("--threads", type=positive_ints("THREAD COUNTS"), metavar="N,N...", default=None,
              help="Gate only the latency rows measured at these thread counts (e.g. 1 on a shared CI "
                   "machine, where all-core rows are noisy); the others are shown, not gated.")
@click.option("--batch-sizes", type=positive_ints("BATCH SIZES"), metavar="N,N...", default=None,
              help="Gate only the latency rows measured at these batch sizes.")
@click.option("--min-change-ms", type=Finite(min=0), default=0.0, metavar="MS", show_default=True,
              help="A latency row regresses only when its p50 also grew by more than MS milliseconds: a model "
                   "that answers in tens of microseconds moves by more than 10 % from run to run on a shared "
                   "machine (e.g. --fail-on-regression 10 --min-change-ms 0.02).")
@click.option("--per-seed", is_flag=True,
              help="Gate every seed of a sweep on its own. By default the jobs of a sweep point that differ "
                   "only in seed gate as one, on their mean accuracy and median p50 over the seeds both runs "
                   "have; each seed's rows are then shown, not gated.")
@click.option("--flagged-only", is_flag=True, help="Show only the rows flagged (a regression, a metric moved the "
              "worse way, a lost row) and count the others: a large sweep's comparison runs to thousands of rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (its verdict: pass, fail "
              "or no_gate, and exit_status).")
@click.option("--markdown", "as_markdown", is_flag=True,
              help="Print the comparison as GitHub Markdown, verdict first (e.g. >> \"$GITHUB_STEP_SUMMARY\"; "
                   "with --flagged-only, the flagged rows).")
def compare_command(base: Path, new: Path, threshold: float | None, accuracy_points: float | None,
                    threads: list[int] | None, batch_sizes: list[int] | None, min_change_ms: float,
                    per_seed: bool, flagged_only: bool, as_json: bool, as_markdown: bool) -> None:
    """Compare two runs job by job: accuracy, latency, size, MFLOPs and activation-memory changes.

    Exit status: 1 when a job that was ok in BASE failed in NEW (always), or when a gate below finds a
    regression or a lost job or row; 2 for bad input (a folder without results.json); else 0.
    """
    from harness.compare import comparison_markdown, compare_folders, format_comparison

    if as_json and as_markdown:
        raise HarnessError("--json and --markdown: choose one")
    # the checks, the same-run and incomplete-run warnings and the document: one place for this and harness.api
    comparison = compare_folders(base, new, threshold=threshold, accuracy_points=accuracy_points, threads=threads,
                                 batch_sizes=batch_sizes, per_seed=per_seed, min_change_ms=min_change_ms,
                                 warn=lambda line: click.echo(f"harness: warning: {line}", err=True))
    from harness.results import json_text

    if as_json:
        click.echo(json_text(comparison))
    elif as_markdown:
        click.echo(comparison_markdown(comparison, flagged_only=flagged_only), nl=False)
    else:
        click.echo(format_comparison(comparison, flagged_only=flagged_only))
    if comparison["exit_status"]:  # what --json says it is
        sys.exit(comparison["exit_status"])


if __name__ == "__main__":  # pragma: no cover
    main()

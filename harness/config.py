"""``harness run --config FILE``: run options and a sweep grid in TOML or JSON.

A config file holds the same settings as the command line (``epochs = 3``,
``models = ["mnist-cnn"]``, ``batch_sizes = [1, 32]``; dashes or
underscores), but for those that say how to run this one call rather than what
the run is (``resume``, ``edge_gate``, ``progress``, ``ray_address``, ``jobs``), and optionally a ``[sweep]`` table whose lists are crossed into
a grid: recipe fields (``batch_size``, ``lr``, ``epochs``...), ``seed``, and
anything else, which is passed to the model's ``build`` (e.g. ``dropout``)::

    models = ["mnist-enhanced-20k"]
    datasets = ["mnist"]
    epochs = 20

    [sweep]
    batch_size = [16, 32, 64, 128]
    dropout = [0.01, 0.05, 0.1]
    seed = [0, 1, 2]

Options given on the command line win over the file (one given there replaces
the sweep over it, with a warning). Relative paths (``out``, ``data_dir``) are
read from the working directory, as on the command line. The file is data only:
nothing in it is executed.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable

from harness.errors import HarnessError
from harness.text import squeeze

LIST_KEYS = {"plugins", "models", "datasets", "metrics", "batch_sizes", "threads", "providers", "variants", "track"}
SCALAR_TYPES: dict[str, type | tuple[type, ...]] = {
    "epochs": int, "batch_size": int, "lr": (int, float), "device": str, "max_train_samples": int,
    "max_test_samples": int, "seed": int, "data_dir": str, "out": str, "run_id": str, "exporter": str,
    "onnx_tolerance": (int, float), "amp": str, "channels_last": bool, "executor": str, "profile": str,
    "latency_budget_ms": (int, float), "accuracy_floor": (int, float), "quick": bool,
    "job_timeout": (int, float), "no_torch_latency": bool, "compile": bool,
    "cuda_graphs": bool, "size_budget": (int, float, str), "activation_budget": (int, float, str),
    "max_accuracy_drop": (int, float), "cold_budget_ms": (int, float), "memory_budget": (int, float, str),
    "cold_runs": int, "warmup_steps": int, "spin": bool, "iobinding": bool,
}
MAX_GRID = 10_000
TYPE_TEXT = {int: "a whole number", (int, float): "a number", str: "a string", bool: "true or false",
             (int, float, str): "a size (a number of bytes, or text such as \"64KiB\")"}


def _kind(value: Any) -> str:
    """What a config value is, in the file's own terms."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "null"
    return {int: "a whole number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def toml_parser() -> Callable[[str], Any]:
    """``tomllib.loads`` (Python 3.11+), else ``tomli.loads`` (a dependency on 3.10); ``HarnessError`` when neither."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise HarnessError("reading a TOML config needs tomllib (Python 3.11+) or, on older Pythons, the tomli "
                               'package: pip install "tomli>=1.1" (or write the config as .json)') from None
    return tomllib.loads


def load_config(path: Path) -> dict[str, Any]:
    """Parse and validate ``path``; returns option names (underscored) -> values, ``sweep`` -> grid points."""
    path = Path(path)
    from harness.results import read_regular_file

    try:
        data = read_regular_file(path)
    except OSError as exc:
        raise HarnessError(f"cannot read config {path}: {exc.strerror or exc}") from None
    # Windows PowerShell 5.1's '>' writes UTF-16 with a byte-order mark, and its UTF-8 has one too
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise HarnessError(f"config {path} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                           "save it as UTF-8") from None
    # The parser is found before parsing, so that a missing one is not blamed on the user's file.
    parse = _json_without_repeats if path.suffix.lower() == ".json" else toml_parser()
    try:
        raw = parse(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
        read_as = "" if path.suffix.lower() in (".json", ".toml") else " (read as TOML: name it .toml or .json)"
        raise HarnessError(f"config {path} is malformed{read_as}: {squeeze(exc)}") from None
    if not isinstance(raw, dict):
        raise HarnessError(f"config {path} must be a table of settings")
    return validate_config(raw, str(path))


COMMAND_LINE_ONLY = {"progress": "--no-progress", "edge_gate": "--edge-gate", "like": "--like", "resume": "--resume",
                     "config": "--config", "jobs": "--jobs", "ray_address": "--ray-address"}
"""``harness run`` options a config file does not take (where a run goes, how it is shown, what it resumes),
with their flags."""


def _json_without_repeats(text: str) -> Any:
    """JSON whose objects name each key once: ``json.loads`` kept the last of ``{"epochs": 0, "epochs": 5}``
    without a word (TOML refuses a repeated key itself)."""
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ValueError(f"{key!r} is given twice")
            seen[key] = value
        return seen

    return json.loads(text, object_pairs_hook=unique)


def validate_config(raw: dict[str, Any], where: str = "config") -> dict[str, Any]:
    config: dict[str, Any] = {}
    spelt: dict[str, str] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name in spelt:  # max-train-samples and max_train_samples: the last won, the first went unchecked
            raise HarnessError(f"{where}: {spelt[name]} and {key} are the same setting; keep one")
        spelt[name] = str(key)
        if name == "sweep":
            config["sweep"] = sweep_points(value, where)
        elif name in LIST_KEYS:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise HarnessError(f"{where}: {key} must be a list")
            config[name] = value
        elif name in SCALAR_TYPES:
            expected = SCALAR_TYPES[name]
            if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
                raise HarnessError(f"{where}: {key} must be {TYPE_TEXT[expected]}, not {_kind(value)}")
            config[name] = value
        elif name in COMMAND_LINE_ONLY:  # a did-you-mean of another setting sent the reader the wrong way
            raise HarnessError(f"{where}: {key} is a command-line option only ({COMMAND_LINE_ONLY[name]}), not a "
                               "setting a file can hold")
        else:
            from harness.registry import unknown_name_message

            raise HarnessError(f"{where}: " + unknown_name_message(
                "setting", key, LIST_KEYS | set(SCALAR_TYPES) | {"sweep"}))
    return config


def sweep_without(points: list[dict[str, Any]], keys: Iterable[str]) -> list[dict[str, Any]]:
    """``points`` less ``keys`` (a setting given outside the sweep replaces the sweep over it), the points
    that became one kept once, in order."""
    gone = set(keys)
    kept = [{k: v for k, v in point.items() if k not in gone} for point in points]
    return [dict(p) for p in dict.fromkeys(tuple(sorted(p.items())) for p in kept)]


def sweep_points(table: Any, where: str = "config") -> list[dict[str, Any]]:
    """The cross product of a ``[sweep]`` table's lists, in a stable order."""
    if not isinstance(table, dict):
        raise HarnessError(f"{where}: [sweep] must be a table of lists")
    named = {}
    for key in table:  # dashes or underscores, as for the options (a build keyword cannot have a dash)
        name = str(key).replace("-", "_")
        if not name.isidentifier():  # no recipe field or build argument is named so; and keep the error one line
            raise HarnessError(f"{where}: sweep key {str(key)!r} is no setting name (letters, digits, _ or -)")
        if name in named:
            raise HarnessError(f"{where}: sweep.{named[name]} and sweep.{key} are the same setting")
        named[name] = key
    keys = sorted(named)
    values = []
    for key in keys:
        options = table[named[key]]
        if not isinstance(options, list) or not options:
            raise HarnessError(f"{where}: sweep.{key} must be a non-empty list")
        seen: list[Any] = []
        for option in options:
            if not isinstance(option, (int, float, str, bool)):
                raise HarnessError(f"{where}: sweep.{key} values must be numbers, strings or booleans")
            if isinstance(option, float) and not math.isfinite(option):
                raise HarnessError(f"{where}: sweep.{key} has {option}, not a finite number")
            twice = next((s for s in seen if s == option and isinstance(s, bool) == isinstance(option, bool)), None)
            if twice is not None:  # one training under two labels (1 and 1.0), or a point silently run once
                raise HarnessError(f"{where}: sweep.{key} lists {option!r} twice"
                                   + (f" (as {twice!r} too)" if repr(twice) != repr(option) else ""))
            alike = next((s for s in seen if str(s) == str(option)), None)
            if alike is not None:  # 8 and "8": one job id (width=8) for two points, one of them lost
                raise HarnessError(f"{where}: sweep.{key} lists {alike!r} and {option!r}, which name one job "
                                   f"({key}={option}); keep one")
            seen.append(option)
        values.append(options)
    size = 1
    for options in values:
        size *= len(options)
    if size > MAX_GRID:
        raise HarnessError(f"{where}: the sweep grid has {size} points (more than {MAX_GRID})")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]

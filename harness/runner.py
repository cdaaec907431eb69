"""The job matrix: every compatible model x dataset pair, stage after stage.

A job is train -> evaluate in PyTorch -> export to ONNX -> check -> compare
and evaluate in ONNX Runtime -> measure latency -> record. A failure in any
stage is contained in that job's row (``status: failed`` with the stage and
a one-line error); the other jobs still run. ``results.json`` is rewritten
atomically after every job, so an interrupted run keeps every finished job
and ``--resume`` picks up the rest.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from harness.cache import default_data_dir, offline_problem, root_problem
from harness.errors import DataUnavailableError, HarnessError, StageError, StorageError
from harness.latency import LatencyConfig
from harness.manager import one_line
from harness.progress import Progress
from harness.registry import SINGULAR, Registry, did_you_mean, with_builtin_metrics
from harness.reporters import ReporterSet
from harness.results import (RunFolder, check_no_links, job_file_stem, job_id, json_ready, latest_run, run_folder_name,
                             run_folder_of, run_taken)
from harness.specs import DatasetSpec, ModelSpec, Recipe, Schedule, Splits, keyword_names
from harness.text import redact_credentials, squeeze

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

RECIPE_OVERRIDES = {f.name for f in dataclasses.fields(Recipe)} - {"source"}
SCHEDULE_CHOICES = ("recipe", "constant")
"""What a sweep's ``schedule`` may say: the recipe's own, or the (swept or --lr) learning rate throughout
(seed 003's single-LR runs beside its piecewise one)."""
FP32_TOLERANCE = 1e-4
DIFF_SAMPLES = 256  # the contract asks for at least 64; a few hundred cost next to nothing


@dataclass
class RunOptions:
    """Everything ``harness run`` can be told; defaults are the CLI's defaults."""

    plugins: list[str] | None = None
    models: list[str] | None = None
    datasets: list[str] | None = None
    metrics: list[str] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    device: str = "auto"
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    threads: list[int] = field(default_factory=lambda: [1])
    providers: list[str] | None = None
    seed: int = 0
    data_dir: Path | None = None
    out: Path = Path("reports")
    run_id: str | None = None
    resume: bool = False
    variants: list[str] = field(default_factory=lambda: ["fp32"])
    exporter: str = "auto"
    onnx_tolerance: float = FP32_TOLERANCE
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    torch_latency: bool = True
    amp: str | None = None
    channels_last: bool | None = None  # None: on when training on the CPU (see resolve_channels_last)
    compile: bool = False
    cuda_graphs: bool = False
    warmup_steps: int | None = None  # None: 2 on CUDA, 0 on the CPU (see harness.train.resolve_warmup_steps)
    save_weights: bool = True
    sweep: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    executor: str = "local"
    # --ray-address as given (not $RAY_ADDRESS) and --jobs: a --resume or --like goes back to that cluster (it
    # went to a new local instance on the driver's machine, the rest of a cluster's sweep run there)
    ray_address: str | None = None
    jobs: int | None = None
    job_timeout: float | None = None
    profile: str | None = None
    latency_budget_ms: float | None = None
    accuracy_floor: float | None = None
    size_budget_bytes: int | None = None
    activation_budget_bytes: int | None = None
    cold_budget_ms: float | None = None  # cold start (load and first answer in a new process) at batch 1
    memory_budget_bytes: int | None = None  # resident memory that adds to its process
    max_accuracy_drop: float | None = None  # percentage points below float32, for the edge table

    def to_config(self) -> dict[str, Any]:
        """The options as JSON-friendly data, stored in results.json (and read back by --resume)."""
        data = dataclasses.asdict(self)
        data["ray_address"] = None if self.ray_address is None else redact_credentials(self.ray_address)
        data["out"] = str(self.out)
        data["data_dir"] = None if self.data_dir is None else str(self.data_dir)
        return data

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RunOptions":
        """Options stored by :meth:`to_config` (unknown keys from other versions are ignored); a
        ``ValueError`` naming the first value of the wrong type (a hand-edited results.json)."""
        fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        values = {k: v for k, v in config.items() if k in fields}
        for name, value in values.items():
            _check_stored_option(name, value, fields[name])
        if isinstance(values.get("latency"), dict):
            known = {f.name for f in dataclasses.fields(LatencyConfig)}
            try:
                values["latency"] = LatencyConfig(**{k: v for k, v in values["latency"].items() if k in known})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"latency: {exc}") from None
        for key in ("out", "data_dir"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)


_STORED_KINDS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                              "Path": (str,), "LatencyConfig": (dict,), "dict[str, Any]": (dict,)}


def _check_stored_option(name: str, value: Any, annotation: str) -> None:
    """``value`` fits the :class:`RunOptions` field annotated ``annotation`` (as JSON stores it)."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if value is None:
        if optional:
            return
        raise ValueError(f"{name} is null")
    inner = base[len("list["):-1] if base.startswith("list[") else None
    items = value if inner is not None else [value]
    if inner is not None and not isinstance(value, (list, tuple)):  # a tuple: options built in Python
        raise ValueError(f"{name} is {type(value).__name__}, not a list")
    kinds = _STORED_KINDS.get(inner or base)
    for item in items:
        if kinds is not None and (not isinstance(item, kinds) or (isinstance(item, bool) and bool not in kinds)):
            raise ValueError(f"{name} holds {item!r}, not {inner or base}")


@dataclass
class Job:
    model: ModelSpec
    dataset: DatasetSpec
    point: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return job_id(self.model.name, self.dataset.name, self.point)


@dataclass
class Plan:
    jobs: list[Job]
    skipped: list[tuple[str, str, str]]  # (model, dataset, why) for explicitly chosen incompatible pairs
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (model, what it takes): no dataset chosen fits


class DatasetCache:
    """Loads each dataset once per run; a failed load is remembered and re-raised for every job. ``load`` gets
    ``data_dir`` as a path: ``--data-dir``, else :func:`harness.cache.default_data_dir`."""

    def __init__(self, data_dir: Path | None, seed: int):
        self.data_dir = data_dir
        self.seed = seed
        self._loaded: dict[str, Splits | BaseException] = {}
        self._digests: dict[str, dict[str, str]] = {}

    def get(self, spec: DatasetSpec) -> Splits:
        if spec.name not in self._loaded:
            try:
                data_dir = Path(self.data_dir) if self.data_dir is not None else default_data_dir()
                splits = spec.load(data_dir=data_dir, seed=self.seed)
                if not isinstance(splits, Splits):
                    raise TypeError(f"load() returned {type(splits).__name__}, expected Splits")
                check_splits(spec, splits)
                self._loaded[spec.name] = splits
            except Exception as exc:  # noqa: BLE001 - recorded in each job's row
                self._loaded[spec.name] = exc
        value = self._loaded[spec.name]
        if isinstance(value, BaseException):
            raise value
        return value

    def digests(self, spec: DatasetSpec) -> dict[str, str]:
        """:meth:`Splits.digests` of the loaded dataset, hashed once per run (MNIST's 188 MB: ~0.3 s)."""
        if spec.name not in self._digests:
            self._digests[spec.name] = self.get(spec).digests()
        return self._digests[spec.name]

    def shape(self, spec: DatasetSpec) -> tuple[int, ...] | None:
        if spec.input_shape is not None:
            return tuple(spec.input_shape)
        try:
            return self.get(spec).input_shape
        except Exception:  # noqa: BLE001 - the job will fail at load with the reason
            return None


def check_splits(spec: DatasetSpec, splits: Splits) -> None:
    """Refuse a dataset plugin's ``Splits`` that break the contract, naming the dataset and what is wrong.

    Inputs float32 ``(N, *input_shape)`` with one shape across the splits, targets int64 ``(N,)`` in
    ``0 .. num_classes - 1``, and the shape and class count the spec declares (the plan relies on them).
    Without this a wrong dtype or label fails later inside training, blaming the model.
    """
    import torch

    problems = []
    shape = None
    for part in ("train", "test", "val"):
        value = getattr(splits, part)
        if value is None and part == "val":
            continue
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(map(torch.is_tensor, value))):
            problems.append(f"{part} is not an (inputs, targets) pair of tensors")
            continue
        x, y = value
        if x.dtype != torch.float32:
            problems.append(f"{part} inputs are {x.dtype}, expected torch.float32")
        elif len(x) and not bool((finite := torch.isfinite(x)).all()):  # else "training diverged" blamed the lr
            bad = x[~finite]
            nan = int(torch.isnan(bad).sum())
            said = [f"{nan} NaN"] * bool(nan) + [f"{len(bad) - nan} infinite"] * bool(len(bad) - nan)
            problems.append(f"{part} inputs hold {' and '.join(said)} value(s)")
        if y.dtype != torch.int64:
            problems.append(f"{part} targets are {y.dtype}, expected torch.int64")
        if part in ("train", "test") and len(x) == 0:  # the test split scores every job; train trains it
            problems.append(f"the {part} split is empty")
        if y.dim() != 1 or len(y) != len(x):
            problems.append(f"{part} has {len(x)} inputs but targets of shape {tuple(y.shape)}")
        elif len(y) and not y.is_floating_point():
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= splits.num_classes:
                problems.append(f"{part} targets span {low}..{high}, outside 0..{splits.num_classes - 1}")
        if shape is None:
            shape = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != shape:
            problems.append(f"{part} inputs have shape {tuple(x.shape[1:])} per sample, train {shape}")
    if spec.input_shape is not None and shape is not None and tuple(spec.input_shape) != shape:
        problems.append(f"it declares input_shape {tuple(spec.input_shape)} but loads {shape}")
    if spec.num_classes is not None and spec.num_classes != splits.num_classes:
        problems.append(f"it declares num_classes {spec.num_classes} but loads {splits.num_classes}")
    if problems:
        raise StageError("load", f"dataset {spec.name!r} breaks the Splits contract: {'; '.join(problems)}")


def check_model_output(name: str, model: "torch.nn.Module", example: "torch.Tensor", num_classes: int) -> None:
    """Refuse a model that does not map ``(N, *input_shape)`` to ``(N, num_classes)`` logits, before training.

    One eval-mode forward on two samples, with the random state restored after it. Without this a
    model with too many outputs trained and scored as if fine; one with too few failed inside the loss.
    """
    import torch

    if len(example) == 0:
        return  # an empty training split fails in training, with its own message
    from harness.train import eval_mode

    expected = (len(example), num_classes)
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), eval_mode(model):
            out = model(example)
    except Exception as exc:  # noqa: BLE001 - the input it was given is what the author needs to see
        shape = tuple(example.shape)
        hint = (" (these look channels-last: a dataset gives N x C x H x W)"
                if len(shape) == 4 and shape[-1] in (1, 3) and min(shape[1:3]) > shape[-1] else "")
        raise StageError("build", f"{name} fails on inputs of shape {shape} (N, *input_shape){hint}: "
                                  f"{one_line(exc)}") from exc
    if not torch.is_tensor(out):
        got = f"a {type(out).__name__}"
    elif tuple(out.shape) != expected or not out.is_floating_point():
        got = f"a {out.dtype} tensor of shape {tuple(out.shape)}"
    else:
        return
    raise StageError("build", f"{name} returns {got}; a model must map (N, *input_shape) to (N, num_classes) "
                              f"floating-point logits, here {expected}")


def note_reporters(folder: RunFolder, reporters: Any, resume: bool) -> None:
    """Record which trackers (``--track``) saw the run (``trackers`` in results.json, every session's), and
    on a resume warn of one that saw the earlier sessions and is not on now: the jobs run now would be
    missing from that experiment tracker without a word. A plugin's own reporters are on in every run."""
    names = [str(getattr(r, "name", type(r).__name__)) for r in reporters.reporters
             if getattr(r, "harness_tracker", False)]
    before = [str(n) for n in folder.data.get("trackers") or [] if isinstance(n, str)]
    missing = [n for n in before if n not in names]
    if resume and missing:
        log.warning("this run was reported to %s before; this resume is not, so the jobs it runs will be missing "
                    "there (resume with --track %s)", ", ".join(missing), ",".join(missing))
    if names or before:
        folder.data["trackers"] = list(dict.fromkeys([*before, *names]))


def keep_reporter_errors(folder: RunFolder, reporters: Any) -> bool:
    """Put the reporters' errors in the results (``reporter_errors``) after those of the run's earlier
    sessions (a resumed run's: its first jobs' tracking failed all the same); whether this session had any."""
    if reporters.errors:
        folder.data["reporter_errors"] = [*reporters.earlier_errors, *reporters.errors]
    return bool(reporters.errors)


CONSTANT_OUTPUT_TEXT = ("the model gives the same logits for every test input: its accuracy is one class's share, "
                        "and the ONNX agreement check and the variants' accuracy drops cannot tell a wrong export "
                        "from a right one (train it longer?)")


def constant_output(logits: "torch.Tensor") -> bool:
    """Whether ``logits`` (N, classes) hardly vary across the N inputs: every logit's spread over the inputs is
    below a millionth of the largest logit (or of 1)."""
    if logits.ndim != 2 or logits.shape[0] < 2:
        return False
    values = logits.detach().float()
    spread = float(values.std(dim=0).max())
    return spread <= 1e-6 * max(1.0, float(values.abs().max()))


def cpu_state_dict(net: "torch.nn.Module") -> Any:
    """``net.state_dict()`` with its tensors on the CPU, keeping the state dict's ``_metadata``: the module
    versions a model's ``_load_from_state_dict`` may read (torchvision's MNASNet refuses a state dict
    without them: "version should be set to 1 or 2 instead of None")."""
    state = net.state_dict()
    out = type(state)((key, value.detach().cpu()) for key, value in state.items())
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def remove_unlisted_files(folder: RunFolder, jobs: Sequence[Job]) -> list[Path]:
    """Delete the files of ``jobs`` in ``onnx/`` and ``weights/`` that no row of results.json lists: what a
    job stopped by Ctrl-C, SIGTERM or ``--job-timeout`` left half-done (an export cut off mid-write, the
    weights of a job that never finished, a variant), which a script globbing ``onnx/*.onnx`` would take
    for a checked export. A file is a job's when its name is the job's file stem and a dot-suffix; of two
    stems that both fit (``a`` and ``a.b``) the longer owns it. Returns the files removed."""
    mine = {job_file_stem(job.id) for job in jobs}
    stems = mine | {job_file_stem(str(row["id"])) for row in folder.data["jobs"] if row.get("id")}
    listed = set()
    for row in folder.data["jobs"]:
        variants = [v.get("path") for v in row.get("variants") or [] if isinstance(v, dict)]
        for path in ((row.get("onnx") or {}).get("path"), (row.get("train") or {}).get("weights"), *variants):
            if isinstance(path, str) and path:
                listed.add(Path(path).name)
    removed = []
    for kind in ("onnx", "weights"):
        folder_of_kind = folder.path / kind
        if not folder_of_kind.is_dir():
            continue
        for file in sorted(folder_of_kind.iterdir()):
            owner = max((stem for stem in stems if file.name.startswith(stem + ".")), key=len, default=None)
            if owner not in mine or not file.is_file():
                continue
            if file.name in listed or any(file.name.startswith(name + ".") for name in listed):  # x.onnx.data
                continue
            with contextlib.suppress(OSError):
                file.unlink()
                removed.append(file)
    if removed:
        log.info("removed %d file(s) of jobs that did not finish: %s", len(removed),
                 ", ".join(f"{p.parent.name}/{p.name}" for p in removed))
    return removed


def plan_jobs(registry: Registry, options: RunOptions, cache: DatasetCache) -> Plan:
    """The compatible model x dataset (x sweep point) jobs the options select."""
    models: list[ModelSpec] = registry.select("models", options.models, options.plugins)
    datasets: list[DatasetSpec] = registry.select("datasets", options.datasets, options.plugins)
    jobs, skipped = [], []
    for dataset in datasets:
        shape = cache.shape(dataset)
        for model in models:
            try:
                compatible = shape is None or model.model_input_shape(shape) is not None
                refusal = None if compatible else _refusal(model, shape)
            except Exception as exc:  # noqa: BLE001 - a plugin's accepts() bug must not stop the whole matrix
                compatible, refusal = False, _accepts_raised(registry, model, shape, exc)
                log.warning("%s; not paired with %s", refusal, dataset.name)
            if not compatible:
                if options.models is not None and options.datasets is not None:
                    skipped.append((model.name, dataset.name, refusal))
                continue
            for point in _model_points(model, options.sweep or [{}]):
                jobs.append(Job(model, dataset, point))
    paired = {job.model.name for job in jobs} | {name for name, _, _ in skipped}
    unmatched = [(model.name, _accepted_input(model)) for model in models if model.name not in paired]
    return Plan(jobs, skipped, unmatched if datasets else [])


def _model_points(model: ModelSpec, sweep: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep points as ``model`` trains them: less the build arguments it does not take (one that takes
    ``**kwargs`` keeps them all), each distinct point once. Else ``width = [8, 16]`` beside a model without a
    width trained that model twice alike, under two labels."""
    keys = {key for point in sweep for key in point} - RECIPE_OVERRIDES - {"seed"}
    if not keys:
        return [dict(point) for point in sweep]
    try:
        takes = keyword_names(model.build)
    except Exception:  # noqa: BLE001 - a build that cannot be imported fails its job with the reason
        takes = None
    unread = set() if takes is None else keys - takes
    kept = [{k: v for k, v in point.items() if k not in unread} for point in sweep]
    return [dict(items) for items in dict.fromkeys(tuple(point.items()) for point in kept)]


def no_job_reason(registry: Registry, options: RunOptions, cache: DatasetCache, plan: Plan) -> str:
    """Why the selection pairs no model with any dataset, short enough for one line."""
    if plan.skipped:
        return "; ".join(why for _, _, why in plan.skipped)
    models = registry.select("models", options.models, options.plugins)
    datasets = registry.select("datasets", options.datasets, options.plugins)
    if not models or not datasets:
        kind = "models" if not models else "datasets"
        chosen = set(registry.host.plugins if options.plugins is None else options.plugins)
        broken = [e for e in registry.errors if e.plugin in chosen and e.kind == kind]
        if broken:  # the plugin meant to register them failed: that, not the selection, is the news
            return "; ".join(f"plugin {e.plugin!r} failed: {e.message}" for e in broken[:3])
        offering = sorted({registry.owners[kind][name] for name in registry.specs[kind]} - chosen)
        hint = (f" (add one that does to --plugins, e.g. {', '.join(repr(p) for p in offering[:3])})"
                if offering else "")
        return f"the selected plugins register no {SINGULAR[kind]}{hint}"
    shapes = {d.name: cache.shape(d) for d in datasets}
    shown = ", ".join(f"{name} {'x'.join(map(str, shape)) if shape else '(shape unknown)'}"
                      for name, shape in list(shapes.items())[:6])
    takes = ", ".join(f"{m.name} takes {_accepted_input(m)}" for m in models[:6])
    more = " ..." if len(models) > 6 or len(datasets) > 6 else ""
    return f"no selected model accepts the selected datasets' inputs ({shown}); models: {takes}{more}"


def _refusal(model: ModelSpec, shape: tuple[int, ...]) -> str:
    """Why ``model`` is not paired with data of ``shape``: ``m takes 3x32x32 images, not 1x28x28``, or its
    ``accepts`` refused it."""
    data = "x".join(map(str, shape))
    relaxed = dataclasses.replace(model, accepts=None)
    if relaxed.model_input_shape(shape) is not None:  # only the plugin's own check refused it
        return f"{model.name} does not accept {data} inputs (its accepts() refused them)"
    channels_only = dataclasses.replace(model, accepts=None, input_channels=None).model_input_shape(shape) is not None
    adapted = (" (only 1 and 3 channels are adapted to each other)" if channels_only and model.input_rank > 1 else
               " (features are not adapted)" if channels_only else "")
    return f"{model.name} takes {_accepted_input(model)}, not {data}{adapted}"


def _accepts_raised(registry: Registry, model: ModelSpec, shape: tuple[int, ...], exc: Exception) -> str:
    """``model 'm' (plugin 'p'): its accepts(3x128) raised IndexError: ...``: a plugin's bug, said as such."""
    plugin = registry.owners["models"].get(model.name)
    owner = f" (plugin {plugin!r})" if plugin else ""
    return f"model {model.name!r}{owner}: its accepts({'x'.join(map(str, shape))}) raised {one_line(exc)}"


def _accepted_input(model: ModelSpec) -> str:
    """``1xHxW images`` / ``1x28x28 images`` / ``CxL sequences``: what a model's spec accepts."""
    from harness.specs import input_text

    return input_text(model.input_rank, model.input_channels, model.spatial_shape)


def _sweep_value_problem(key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for a recipe field or ``seed`` (None when it fits; a model's own
    arguments are the model's to check)."""
    from harness.train import AUGMENTATIONS, OPTIMIZERS

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if key in ("epochs", "batch_size"):
        return None if is_int(value) and value >= 1 else "must be a whole number, at least 1"
    if key == "seed":
        return None if is_int(value) else "must be a whole number"
    if key == "lr":
        return None if is_number(value) and value > 0 else "must be a positive number"
    if key in ("momentum", "weight_decay", "val_size"):
        return None if is_number(value) and value >= 0 else "must be a number, at least 0"
    if key == "label_smoothing":
        return None if is_number(value) and 0 <= value <= 1 else "must be a number in [0, 1]"
    if key == "target_accuracy":
        return None if is_number(value) and 0 < value <= 1 else "must be a fraction in (0, 1]"
    if key == "nesterov":
        return None if isinstance(value, bool) else "must be true or false"
    if key == "optimizer":  # any case, as training reads it
        return None if isinstance(value, str) and value.lower() in OPTIMIZERS else \
            f"must be one of {', '.join(OPTIMIZERS)}"
    if key == "augment":  # "" sweeps augmentation off
        return None if value in (*AUGMENTATIONS, "") else f"must be one of {', '.join(AUGMENTATIONS)} or \"\" (none)"
    if key == "normalize":
        return "cannot be swept (a (mean, std) pair, not one value)"
    if key == "schedule":
        return None if value in SCHEDULE_CHOICES else \
            f"must be {' or '.join(map(repr, SCHEDULE_CHOICES))} (the learning rate throughout)"
    return None


def check_sweep_grid(sweep: Sequence[dict[str, Any]]) -> None:
    """The checks of :func:`check_sweep_keys` that need no model: each recipe field's or seed's value one
    could train with, no key the dataset sets, no run option. A config's [sweep] is checked so before the
    command line replaces any of it, so a file valid with ``--epochs 1`` is valid without it too."""
    for point in sweep:
        for key, value in point.items():
            problem = _sweep_value_problem(key, value)
            if problem:
                shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as the file spells it
                raise HarnessError(f"sweep value {key} = {shown}: {problem}")
    keys = {key for point in sweep for key in point} - RECIPE_OVERRIDES - {"seed"}
    from_dataset = sorted(keys & {"num_classes", "input_shape"})  # the harness passes these to every build
    if from_dataset:
        raise HarnessError(f"sweep key {from_dataset[0]!r} cannot be swept: it comes from the dataset")
    from harness.config import LIST_KEYS, SCALAR_TYPES

    options = sorted(keys & (LIST_KEYS | set(SCALAR_TYPES)))
    if options:
        raise HarnessError(f"sweep key {options[0]!r} is a run option, not something a sweep can vary; set it "
                           f"outside [sweep] (a sweep varies recipe fields, seed and models' build arguments)")


def check_sweep_keys(models: Sequence[ModelSpec], sweep: Sequence[dict[str, Any]]) -> None:
    """Refuse a sweep key that nothing would read: not a recipe field, not ``seed``, no selected model's argument;
    and a recipe field's or seed's value no job could train with (``batch_size = 0``, ``optimizer = "adamw9"``).

    A model's ``build`` drops keywords it does not take, so a misspelt key (``batchsize``) would
    otherwise give identical jobs under different labels. A build that takes ``**kwargs`` (as the
    contract suggests, to ignore the rest) does not count as reading a key: one selected model must
    name it. A run option that is not a recipe field (``models``, ``device``) is not sweepable.
    """
    check_sweep_grid(sweep)
    keys = {key for point in sweep for key in point} - RECIPE_OVERRIDES - {"seed"}
    if not keys:
        return
    named: set[str] = set()
    unreadable = False  # a build that cannot be imported fails its job with the reason; do not refuse for it
    for model in models:
        try:
            names = keyword_names(model.build, explicit=True)
        except Exception:  # noqa: BLE001
            names = None
        if names is None:  # no signature to read
            unreadable = True
        else:
            named |= names
    for key in sorted(keys - named):
        if not unreadable:
            hint = did_you_mean(key, RECIPE_OVERRIDES | named | {"seed"}, n=2, cutoff=0.7)
            raise HarnessError(f"sweep key {key!r} is not a recipe field ({', '.join(sorted(RECIPE_OVERRIDES))}), "
                               f"nor seed, nor an argument any selected model's build names (**kwargs does not count)"
                               f"{hint}")


def _never() -> bool:
    return False


@dataclass
class RunContext:
    options: RunOptions
    registry: Registry
    folder: RunFolder
    cache: DatasetCache
    metrics: list[Any]
    device: str
    progress: Progress
    reporters: ReporterSet
    providers: list[str]
    # Whether a stop signal came (the CLI's Ctrl-C/SIGTERM handler): see :func:`checkpoint`.
    stop_requested: Callable[[], bool] = _never


def checkpoint(ctx: RunContext) -> None:
    """Raise KeyboardInterrupt when a stop signal came and the run still goes: the handler's own
    KeyboardInterrupt was lost (raised inside a weakref callback or a finaliser, which Python reports as
    unraisable and drops, as the dynamo exporter's weakref callbacks do), and the run would otherwise go
    on to its last job. Called before each job, stage, training step and epoch."""
    if ctx.stop_requested():
        raise KeyboardInterrupt


def _subset(pair: tuple[Any, Any], n: int | None, seed: int) -> tuple[Any, Any]:
    import torch

    x, y = pair
    if n is None or n >= len(x):
        return x, y
    index = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[index], y[index]


def split_validation(splits: Splits, recipe: Recipe, seed: int) -> tuple[tuple[Any, Any], tuple[Any, Any] | None]:
    """(train, val): the dataset's own val split, else ``recipe.val_size`` samples held out of train."""
    import torch

    if splits.val is not None:
        return splits.train, splits.val
    x, y = splits.train
    n = len(x)
    size = int(recipe.val_size if recipe.val_size >= 1 else round(recipe.val_size * n))
    if size <= 0:
        return splits.train, None
    if size >= n // 2:  # a recipe made for 60k samples on a small dataset: keep a sixth for validation
        size = max(1, n // 6)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    val_index, train_index = order[:size], order[size:]
    return (x[train_index], y[train_index]), (x[val_index], y[val_index])


def onnx_agreement(torch_logits: Any, ort_logits: Any, tolerance: float) -> tuple[float, str | None]:
    """The largest |difference| of two runtimes' logits, and why one is too large (None when none is).

    Each logit is held to ``tolerance`` times its own size when that is above 1, else to ``tolerance``
    (as ``numpy.allclose`` with both tolerances equal): float32 rounding grows with the values (a logit of
    1040 has a step of 1.2e-4), and a well-exported model with large logits must pass, while a large
    logit elsewhere must not excuse a wrong small one.
    """
    import numpy as np

    from harness.ort import max_abs_diff

    diff = max_abs_diff(torch_logits, ort_logits)
    a = np.asarray(torch_logits, dtype=np.float64)
    gap = np.abs(a - np.asarray(ort_logits, dtype=np.float64))
    allowed = tolerance * np.maximum(1.0, np.abs(a))
    if not np.size(a) or (gap <= allowed).all():
        return diff, None
    worst = np.unravel_index(np.argmax(np.where(np.isnan(gap), np.inf, gap / allowed)), a.shape)
    size = abs(float(a[worst]))
    limit = f"{tolerance:g}" if size <= 1 else f"{tolerance:g} x {size:.4g}, that logit's size"
    largest = "" if float(gap[worst]) >= diff else f"; the largest difference, {diff:.3g}, is within its own"
    return diff, f"ONNX Runtime output differs from PyTorch by {float(gap[worst]):.3g} (> {limit}{largest})"


def recipe_changes(default: Recipe, used: Recipe) -> dict[str, list[Any]]:
    """``{field: [the model's own, what the job trained with]}`` for each recipe field an option or a sweep
    changed (``--epochs``, ``--lr``, a swept ``schedule``...): the reports judge by it whether a job trained as
    the published run did."""
    before, after = default.to_dict(), used.to_dict()
    return {key: [before[key], after[key]] for key in after if key != "source" and before.get(key) != after[key]}


def job_recipe(job: Job, options: RunOptions) -> Recipe:
    recipe = job.model.recipe.replace(epochs=options.epochs, batch_size=options.batch_size, lr=options.lr)
    point = {k: v for k, v in job.point.items() if k in RECIPE_OVERRIDES}
    schedule = point.pop("schedule", "recipe")
    recipe = recipe.replace(**point)
    return dataclasses.replace(recipe, schedule=Schedule()) if schedule == "constant" else recipe


_METRIC_FAILURES_SAID: set[tuple[str, str]] = set()
_EXPORT_NOTES_SAID: set[tuple[str, str]] = set()  # (model, note): a sweep's seeds fall back alike


def metric_specs(registry: Any, metrics: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """``metric_specs`` in results.json: each computed metric's plugin, direction, description, and whether
    ``harness compare`` gates it (``gate``)."""
    return {m.name: {"plugin": registry.owners["metrics"].get(m.name), "higher_is_better": m.higher_is_better,
                     "description": m.description, "gate": m.gate} for m in metrics}


_METRICS_OF_JOB: "contextvars.ContextVar[tuple[str, dict[str, str]] | None]" = contextvars.ContextVar(
    "harness_metrics_of_job", default=None)
"""The job :func:`run_job` is running and the metrics' plugins by name, for a failing metric's warning."""


def compute_metrics(metrics: Sequence[Any], logits: Any, targets: Any,
                    errors: dict[str, str] | None = None) -> dict[str, float | None]:
    """Each metric's value (None where it raised or is not finite; why, in ``errors`` by name, when given).

    Each metric gets its own copy of ``logits`` and ``targets``: one that changed them in place (a
    ``softmax_``) changed every metric computed after it, other plugins' and the gated macro-F1 too. A
    failing metric is said once per run and message, not for every job, model and variant."""
    values: dict[str, float | None] = {}
    for metric in metrics:
        try:
            raw = metric.compute(_own_copy(logits), _own_copy(targets))
            try:
                if isinstance(raw, (str, bytes)):  # float("0.5") would pass a type slip unnoticed
                    raise TypeError
                value = float(raw)
            except (TypeError, ValueError):
                raise TypeError(f"compute returned {squeeze(repr(raw), 60)}, expected a number") from None
            if not math.isfinite(value):
                raise ValueError(f"compute returned {value}")
            if getattr(metric, "gate", False) and not 0.0 <= value <= 1.0:  # compare would gate 100x its moves
                raise ValueError(f"compute returned {value:g}; a gated metric (gate=True) is a fraction in [0, 1]"
                                 + (" (a percentage?)" if 1.0 < value <= 100.0 else ""))
            values[metric.name] = value
        except Exception as exc:  # noqa: BLE001 - a metric's bug fails that metric, not the job
            said = (metric.name, one_line(exc))
            if errors is not None:
                errors[metric.name] = squeeze(said[1], 200)
            if said not in _METRIC_FAILURES_SAID:
                _METRIC_FAILURES_SAID.add(said)
                job, owners = _METRICS_OF_JOB.get() or (None, {})
                plugin = owners.get(metric.name)
                whose = f" (plugin {plugin!r})" if plugin else ""
                on = f" on {job}" if job else ""
                # "once": what makes it the same failure, said once per run by a Ray driver too (the job differs)
                log.warning("metric %s%s failed%s: %s (its value is null; the same failure is not repeated, and "
                            "results.json has it as metric_errors)", metric.name, whose, on, said[1],
                            extra={"once": f"metric {said[0]}: {said[1]}"})
            values[metric.name] = None
    return values


def record_metrics(into: dict[str, Any], metrics: Sequence[Any], logits: Any, targets: Any) -> None:
    """``into["metrics"]``: :func:`compute_metrics`; ``into["metric_errors"]``: why a metric is null, when one
    is (kept with the run: the warning is said once, on stderr)."""
    errors: dict[str, str] = {}
    into["metrics"] = compute_metrics(metrics, logits, targets, errors)
    if errors:
        into["metric_errors"] = errors


def _own_copy(tensor: Any) -> Any:
    clone = getattr(tensor, "clone", None)
    return clone() if callable(clone) else tensor


class JobTimeout(BaseException):
    """Raised inside a job when ``--job-timeout`` seconds have passed.

    A ``BaseException``, as ``KeyboardInterrupt`` is: the ``except Exception`` of a stage that falls back
    on failure (the dynamo exporter to TorchScript, a provider to the next) must not take the time-out
    for that stage's own failure and carry on, which left a job "ok" long after its limit.
    """


_preloaded: list[str] = []  # the modules preload_job_modules imported


QUANTIZING_VARIANTS = ("int8-dynamic", "int8-static", "fp16")
"""Variants made with ``onnxruntime.quantization`` (or its ``transformers`` package, which puts its own folder on
``sys.path``: preloaded in a run that asked none, a notebook's later ``import benchmark`` got ONNX Runtime's)."""


def preload_job_modules(exporter: str | None = None, variants: Sequence[str] = QUANTIZING_VARIANTS) -> None:
    """Import the modules jobs import on first use (the exporters, the FLOP counter's compiler modules)
    before the job's clock starts and before any time limit is armed. Inside it, the first job of a process
    was charged about 1.5 s of imports in its build and export times; and a :class:`JobTimeout` raised
    inside an import leaves the module half-initialised for every later job (``module 'torch._dynamo' has
    no attribute 'utils'``). The quantizer only for a run that asks a :data:`QUANTIZING_VARIANTS` variant.
    Cheap after the first call (a later run asking the quantizer still loads it)."""
    quantizing = any(v in QUANTIZING_VARIANTS for v in variants)
    names = [name for name in ("torch._dynamo", "torch.export", "torch.onnx", "onnxscript",
                               "torch.onnx._internal.exporter._core",
                               *(["onnxruntime.quantization"] if quantizing else [])) if name not in _preloaded]
    if not names:
        return
    first = not _preloaded
    import importlib

    for name in names:
        _preloaded.append(name)
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional or renamed module: the job imports what it needs
            log.debug("preloading %s failed", name, exc_info=True)
    if exporter is not None and first:
        from harness.export import warm_up_exporter

        warm_up_exporter(exporter)


def timer_usable() -> bool:
    """Whether :func:`time_limit` can stop a job here: a SIGALRM timer, which needs POSIX and the main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`JobTimeout` in the main thread after ``seconds`` (POSIX; a no-op elsewhere)."""
    if not (seconds is not None and seconds > 0 and timer_usable()):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise JobTimeout(f"the job ran longer than --job-timeout {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    outer, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)  # a caller's own timer (a notebook's)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:  # armed again, less the job's time (it was cancelled for good); one due meanwhile fires now
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3), outer_interval)


def storage_stop(exc: BaseException, run_dir: Path) -> StorageError:
    """The :class:`StorageError` that stops a run whose folder ``run_dir`` stopped taking files, with how
    to go on: no model's fault, and no later job could store its files either."""
    return StorageError(f"{exc}; the jobs finished before are kept: make room or make the folder writable, "
                        f"then continue with: harness run --resume --run-id {run_dir.name} --out {run_dir.parent}")


def paired_threads(threads: Sequence[int]) -> int:
    """The thread count a job's paired comparisons (ORT vs eager, a variant vs fp32) are timed at: 1, the
    edge question's, when it was timed, else the fewest: the same whatever order --threads gave them in."""
    return 1 if 1 in threads else min(threads)


def job_plugins(registry: Any, job: Job) -> dict[str, Any] | None:
    """The plugins (with distribution and version) that registered the job's model and dataset."""
    source = getattr(registry, "source", None)
    if source is None:
        return None
    return {"model": source("models", job.model.name), "dataset": source("datasets", job.dataset.name)}


def run_job(job: Job, ctx: RunContext) -> dict[str, Any]:
    """Run every stage of one job; never raises except on KeyboardInterrupt."""
    owners = getattr(ctx.registry, "owners", {}).get("metrics", {})
    token = _METRICS_OF_JOB.set((job.id, owners))  # a failing metric's warning names the job and the plugin
    try:
        return _run_job(job, ctx)
    finally:
        _METRICS_OF_JOB.reset(token)


def _run_job(job: Job, ctx: RunContext) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": job.id,
        "model": job.model.name,
        "dataset": job.dataset.name,
        "point": job.point or None,
        "status": "failed",
        "stage": None,
        "error": None,
        "params": None,
        "flops": None,
        "reference": json_ready(dict(job.model.reference)) or None,
        "plugins": job_plugins(ctx.registry, job),
        "train": None,
        "metrics": None,
        "onnx": None,
        "latency": [],
    }
    # Once per process, outside the job's clock: imported inside it, they cost the first job ~1.5 s of
    # build and export time that no later job pays (and a --job-timeout must not fire inside an import).
    preload_job_modules(ctx.options.exporter, ctx.options.variants)
    stage = "load"
    started = time.perf_counter()
    timings: dict[str, float] = {}
    current = ["load", started]

    def enter(name: str) -> None:
        """Start stage ``name``; the wall time of the one before is added to ``stage_seconds``."""
        now = time.perf_counter()
        previous, since = current
        timings[previous] = round(timings.get(previous, 0.0) + now - since, 3)
        current[:] = [name, now]
        _set_stage(ctx, job, row, name)

    try:
        with time_limit(ctx.options.job_timeout):
            checkpoint(ctx)
            ctx.progress.stage(job.id, "loading data")
            splits = ctx.cache.get(job.dataset)
            if splits.info:  # where the data came from (folder, download, a stand-in dataset...)
                row["data"] = json_ready(dict(splits.info))
            row["data_sha256"] = ctx.cache.digests(job.dataset)  # and what it was, sample by sample
            row["num_classes"] = splits.num_classes  # what chance accuracy is (the reports flag a job near it)
            row["input_shape"] = list(splits.input_shape)  # per sample: what the ONNX file takes
            stage = "build"
            _run_stages(job, ctx, splits, row, enter)
        row["status"] = "ok"
        row["stage"] = None
    except KeyboardInterrupt:
        raise
    except StorageError as exc:  # the run folder stopped taking files: no model's fault, and no job can go on
        raise storage_stop(exc, ctx.folder.path) from None
    except JobTimeout as exc:
        row["stage"] = row.get("stage") or stage
        row["error"] = squeeze(exc)
        row["timed_out"] = True  # for scripts: the job was stopped, not broken
    except StageError as exc:
        row["stage"], row["error"] = exc.stage, squeeze(exc)
    except Exception as exc:  # noqa: BLE001 - contained in this job's row
        row["stage"] = row.get("stage") or stage
        row["error"] = squeeze(exc) if isinstance(exc, HarnessError) else one_line(exc)
        log.debug("job %s failed", job.id, exc_info=True)
    finished = time.perf_counter()
    timings[current[0]] = round(timings.get(current[0], 0.0) + finished - current[1], 3)
    row["seconds"] = round(finished - started, 3)
    row["stage_seconds"] = timings
    return row


def _set_stage(ctx: RunContext, job: Job, row: dict[str, Any], stage: str) -> None:
    checkpoint(ctx)
    row["stage"] = stage
    ctx.progress.stage(job.id, stage)


def _run_stages(job: Job, ctx: RunContext, splits: Splits, row: dict[str, Any],
                stage: Callable[[str], None]) -> None:
    """The stages of one job, in order, each filling its part of ``row``; a failure raises
    :class:`StageError` naming the stage (``stage`` is told each one as it starts)."""
    options = ctx.options
    seed = int(job.point.get("seed", options.seed))
    stage("build")
    recipe = job_recipe(job, options)
    net, model = _build(job, ctx, splits, row, recipe, seed)
    stage("train")
    # Splits and subsets follow the run's --seed, not a swept seed: the jobs of a seed sweep train on
    # the same samples and are scored on the same ones, so they differ only in training randomness
    # (initialisation, shuffling, augmentation), which is what the seeds table summarises.
    train_split, val_split = split_validation(splits, recipe, options.seed)
    test_x, test_y = _subset(splits.test, options.max_test_samples, options.seed)
    result, train_split = _train(job, ctx, row, recipe, seed, net, model, train_split, val_split, (test_x, test_y))
    stage("evaluate")
    _evaluate(job, ctx, splits, row, net, model, result, val_split is None, test_x, test_y)
    stage("export")
    model = model.cpu().eval()
    onnx_path = _export(job, ctx, row, model, test_x)
    stage("check")
    _check(row, onnx_path)
    stage("onnx-eval")
    test_np = _onnx_eval(ctx, splits, row, model, onnx_path, train_split, test_x, test_y)
    stage("latency")
    _latency(ctx, row, model, onnx_path, test_x, test_np)
    variants = [v for v in options.variants if v != "fp32"]
    if variants:
        stage("variants")
        from harness.variants import evaluate_variants

        row["variants"] = evaluate_variants(
            variants, onnx_path, ctx.folder.path, train_split[0], test_x, test_y, ctx.metrics,
            options, ctx.providers, fp32_metrics=row["onnx"]["metrics"],
            seed=options.seed,  # int8-static's calibration subset: a data choice, so the run's --seed as the splits
        )


def _build(job: Job, ctx: RunContext, splits: Splits, row: dict[str, Any], recipe: Recipe,
           seed: int) -> tuple[Any, Any]:
    """(the plugin's network, that network inside the input adapter the harness trains and exports)."""
    import torch

    from harness.train import count_flops, count_parameters, input_adapter

    data_shape = splits.input_shape
    model_shape = job.model.model_input_shape(data_shape)
    if model_shape is None:
        raise StageError("build", f"{job.model.name} does not accept inputs of shape {data_shape}")
    if tuple(model_shape) != tuple(data_shape):  # 3 channels fed grayscale: weights/*.pt is the net built for this
        row["build_input_shape"] = list(model_shape)
    if recipe.epochs < 0:
        raise StageError("train", f"epochs must be >= 0, got {recipe.epochs}")
    build_kwargs = {k: v for k, v in job.point.items() if k not in RECIPE_OVERRIDES and k != "seed"}
    torch.manual_seed(seed)
    net = job.model.build(num_classes=splits.num_classes, input_shape=model_shape, **build_kwargs)
    if not isinstance(net, torch.nn.Module):
        raise StageError("build", f"build() returned {type(net).__name__}, expected a torch.nn.Module")
    model = input_adapter(net, data_shape, model_shape, recipe.normalize)
    if data_shape[0] != model_shape[0]:  # done inside the exported graph: a deployment feeds the data's channels
        images = len(data_shape) == 3  # gray and RGB are images' channels; a sequence's are just channels
        row["input_adapted"] = (f"{data_shape[0]} -> {model_shape[0]} channels ("
                                + (("gray duplicated to RGB" if images else "the channel duplicated") if model_shape[0] == 3
                                   else ("RGB averaged to gray" if images else "the channels' mean")) + ")")
    check_model_output(job.model.name, model, splits.train[0][:2], splits.num_classes)
    row["params"] = count_parameters(net)  # after a forward: lazy modules (nn.LazyLinear) have their sizes now
    row["flops"] = count_flops(model, splits.train[0][:2])
    ctx.reporters.call("job_started", job.id, {"model": job.model.name, "dataset": job.dataset.name,
                                               "recipe": recipe.to_dict(), "params": row["params"],
                                               "flops": row["flops"], "point": job.point})
    return net, model


def _train(job: Job, ctx: RunContext, row: dict[str, Any], recipe: Recipe, seed: int, net: Any, model: Any,
           train_split: Any, val_split: Any, test: Any) -> tuple[Any, Any]:
    """(the training result, the training split as trained on: ``--max-train-samples`` applied)."""
    from harness.train import TrainOptions, resolve_channels_last, train_model

    options = ctx.options
    available = len(train_split[0])  # before --max-train-samples: whether the cap cut anything
    train_split = _subset(train_split, options.max_train_samples, options.seed)
    evaluate_on = val_split if val_split is not None else test
    evaluated_on = "val" if val_split is not None else "test"

    def on_epoch(record: dict[str, Any]) -> None:  # the progress line says which split "eval" scored
        ctx.progress.epoch(job.id, {**record, "evaluated_on": evaluated_on}, recipe.epochs)
        ctx.reporters.call("epoch_ended", job.id, record, net)  # the plugin's model: its own parameter names
        checkpoint(ctx)

    def on_batch(step: int, steps: int) -> None:
        ctx.progress.batch(job.id, step, steps)
        checkpoint(ctx)

    result = train_model(
        model,
        train_split,
        recipe,
        TrainOptions(
            device=ctx.device, seed=seed, amp=options.amp,
            channels_last=resolve_channels_last(options.channels_last, ctx.device),
            compile=options.compile, cuda_graphs=options.cuda_graphs, warmup_steps=options.warmup_steps,
            on_epoch=on_epoch, on_batch=on_batch, label=job.model.name,
        ),
        evaluate_on=evaluate_on,
    )
    row["train"] = result.to_dict(recipe)
    row["train"]["recipe_changes"] = recipe_changes(job.model.recipe, recipe)
    # "amp" is what the result says ran (bf16 on CUDA or the CPU, fp16 on CUDA); the request is kept beside it.
    # Likewise "channels_last" is what ran (2D inputs only); the request (None: automatic) is kept beside it.
    # "compile" too is what ran: --compile whose compiler failed trained eagerly (train.compile_fallback says why)
    row["train"].update(amp_requested=options.amp, channels_last_requested=options.channels_last,
                        compile=options.compile and not result.compile_fallback,
                        train_samples=len(train_split[0]), train_samples_available=available,
                        val_samples=None if val_split is None else len(val_split[0]),
                        evaluated_on=evaluated_on)
    return result, train_split


def _evaluate(job: Job, ctx: RunContext, splits: Splits, row: dict[str, Any], net: Any, model: Any, result: Any,
              scored_test: bool, test_x: Any, test_y: Any) -> None:
    """The trained model's metrics on the test split (and its weights saved, with --save-weights)."""
    from harness.train import predict

    if scored_test and result.final_eval_logits is not None:
        logits = result.final_eval_logits  # the last epoch already scored this model on the test split
    else:
        logits = predict(model, test_x, ctx.device)
    record_metrics(row, ctx.metrics, logits, test_y)
    if constant_output(logits):  # an untrained or collapsed model: figures that cannot tell anything apart
        row["constant_output"] = True
        log.warning("%s: %s", job.id, CONSTANT_OUTPUT_TEXT)
    row["test_samples"] = len(test_x)
    row["test_samples_available"] = len(splits.test[0])
    if ctx.options.save_weights:
        weights = Path("weights") / f"{job_file_stem(job.id)}.pt"
        (ctx.folder.path / weights).parent.mkdir(parents=True, exist_ok=True)
        # The plugin's own network (what build() returned), not the input adapter around it, so the file
        # loads into build()'s model as is; the adapter holds no weights (its normalisation is in the recipe).
        save_atomically(cpu_state_dict(net), ctx.folder.path / weights)
        row["train"]["weights"] = weights.as_posix()  # '/' on every OS: a Windows run read elsewhere


def save_atomically(state: Any, path: Path) -> None:
    """``torch.save(state, path)``, serialised in memory and written by :func:`atomic_write_bytes`: a full disk
    leaves no truncated file and is a :class:`StorageError` (torch's own file writer says it as an unclear
    RuntimeError)."""
    import io

    import torch

    from harness.results import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _export(job: Job, ctx: RunContext, row: dict[str, Any], model: Any, test_x: Any) -> Path:
    """The ONNX file of ``model`` (eval mode, on the CPU), in the run's ``onnx/``."""
    from harness.export import export_onnx

    onnx_rel = Path("onnx") / f"{job_file_stem(job.id)}.onnx"
    onnx_path = ctx.folder.path / onnx_rel
    example = test_x[: max(2, min(8, len(test_x)))].cpu()
    # Its failure is an ExportError, a StageError whose one line holds the cause (each exporter's, under auto).
    exported = export_onnx(model, example, onnx_path, exporter=ctx.options.exporter)
    row["onnx"] = {"path": onnx_rel.as_posix(), **exported.to_dict(), "max_abs_diff": None, "metrics": None}
    for note in exported.notes:  # a fallback to TorchScript, a trace that may hold one branch: said, not only recorded
        if (job.model.name, note) not in _EXPORT_NOTES_SAID:  # once per model (per Ray worker under Ray)
            _EXPORT_NOTES_SAID.add((job.model.name, note))
            log.warning("%s: %s (said once per model)", job.id, note)
    return onnx_path


def _check(row: dict[str, Any], onnx_path: Path) -> None:
    """onnx.checker's verdict, and the export's own FLOPs and activation count."""
    from harness.export import check_onnx
    from harness.onnx_cost import count_onnx_cost

    try:
        check_onnx(onnx_path)
    except Exception as exc:  # noqa: BLE001
        raise StageError("check", f"onnx.checker rejected the export: {one_line(exc)}") from exc
    # The export's own count, from its graph: it agrees with the model's, or stands in for it when the
    # model could not be counted in PyTorch or counted less (a kernel torch.utils.flop_counter has no
    # formula for counts 0 there): a complete graph count only. A partial one above the model's proves the
    # model's short without giving the figure, so the job's is null rather than a silent undercount.
    cost = count_onnx_cost(onnx_path)
    row["onnx"].update(cost.to_dict())
    if cost.flops is not None and (row["flops"] is None or cost.flops > row["flops"]):
        if row["flops"] is not None:
            partial = bool(cost.uncounted)
            log.warning("%s: PyTorch counted %s FLOPs per sample, the exported graph %s%s; flops: %s",
                        row["id"], f"{row['flops']:,}", "at least " if partial else "", f"{cost.flops:,}",
                        "null" if partial else "the graph's")
        row["flops"] = None if cost.uncounted else cost.flops


def _onnx_eval(ctx: RunContext, splits: Splits, row: dict[str, Any], model: Any, onnx_path: Path,
               train_split: Any, test_x: Any, test_y: Any) -> Any:
    """The exported model's metrics in ONNX Runtime and its agreement with PyTorch; the test inputs as numpy."""
    import torch

    from harness.ort import make_session, run_batched
    from harness.train import predict

    session = make_session(onnx_path, "CPUExecutionProvider", threads=None)
    test_np = test_x.cpu().numpy()
    ort_logits = run_batched(session, test_np)
    # The logits are compared on DIFF_SAMPLES inputs: test inputs first (the evaluated ones, whose logits are
    # at hand, unless --max-test-samples left fewer than the split has), then training inputs when the
    # test split itself is smaller. Never one input twice.
    reuse = len(test_x) >= min(DIFF_SAMPLES, len(splits.test[0]))
    test_part = (test_x if reuse else splits.test[0])[:DIFF_SAMPLES].cpu()
    diff_x = torch.cat([test_part, train_split[0][:DIFF_SAMPLES - len(test_part)].cpu()])
    torch_logits = predict(model, diff_x, "cpu").numpy()
    ort_diff_logits = ort_logits[:len(diff_x)] if reuse and len(diff_x) == len(test_part) \
        else run_batched(session, diff_x.numpy())
    diff, mismatch = onnx_agreement(torch_logits, ort_diff_logits, ctx.options.onnx_tolerance)
    row["onnx"]["max_abs_diff"] = diff
    row["onnx"]["diff_samples"] = len(diff_x)
    row["onnx"]["diff_test_samples"] = len(test_part)  # of them from the test split; the rest are training inputs
    record_metrics(row["onnx"], ctx.metrics, torch.from_numpy(ort_logits), test_y)
    if mismatch:
        raise StageError("onnx-eval", f"{mismatch} on {len(diff_x)} inputs: a wrong export, or looser numerics "
                                      f"than --onnx-tolerance allows")
    return test_np


def _latency(ctx: RunContext, row: dict[str, Any], model: Any, onnx_path: Path, test_x: Any, test_np: Any) -> None:
    """ONNX Runtime latency rows (eager PyTorch's too, with the paired ORT-vs-eager ratio) and the cold start."""
    from harness.coldstart import cold_start_for
    from harness.latency import compare_onnx_with_eager, measure_onnx, measure_torch

    options = ctx.options
    sample = test_np[: max(options.batch_sizes)]
    skipped: list[str] = []
    row["latency"] = measure_onnx(
        onnx_path, options.batch_sizes, options.threads, ctx.providers, options.latency,
        sample=sample, on_skip=skipped.append,
    )
    if options.torch_latency:
        row["latency"] += measure_torch(model, test_x[: max(options.batch_sizes)], options.batch_sizes,
                                        options.threads, "cpu", options.latency)
        if ctx.device.startswith("cuda"):
            row["latency"] += measure_torch(model, test_x[: max(options.batch_sizes)], options.batch_sizes,
                                            [1], ctx.device, options.latency)
        if "CPUExecutionProvider" in ctx.providers:  # the table's "ORT vs eager", timed in alternating rounds
            threads = paired_threads(options.threads)
            try:
                smallest = min(options.batch_sizes)
                row["ort_vs_eager"] = compare_onnx_with_eager(onnx_path, model.cpu().eval(), test_x[:smallest],
                                                              smallest, threads, options.latency)
            except Exception as exc:  # noqa: BLE001 - the rows stand; only the paired ratio is missing
                skipped.append(f"ORT vs eager in alternating rounds: {one_line(exc)}")
    cold = cold_start_for(onnx_path, row["latency"], options.latency.cold_runs, options.latency.max_time_s,
                          on_skip=skipped.append)
    if cold is not None:
        row["onnx"]["cold_start"] = cold
    if skipped:
        row["latency_skipped"] = skipped


def check_named_datasets(plan: Plan, cache: DatasetCache) -> None:
    """Load each dataset the user named before any job: one that is not there is a usage error (exit 2).

    Without this, ``--datasets mnist,cifar10`` with no CIFAR-10 files trained every MNIST job first
    and then failed the CIFAR-10 ones. Other load errors (a plugin's bug) still fail only their jobs.
    The loaded splits stay in ``cache`` for the jobs, so this loading is outside any job: not under
    ``--job-timeout``, and not in the first job's ``stage_seconds["load"]``. A plugin says its data is
    missing with :class:`harness.DataUnavailableError` (a ``FileNotFoundError`` counts the same).
    """
    for spec in {job.dataset.name: job.dataset for job in plan.jobs}.values():
        try:
            cache.get(spec)
        except DataUnavailableError:
            raise
        except FileNotFoundError as exc:  # a plugin's files missing, said the plain way
            raise DataUnavailableError(f"dataset {spec.name!r}: {one_line(exc)} (--data-dir names where the "
                                       "data is)") from None
        except Exception:  # noqa: BLE001 - recorded in each job's row
            pass


def check_providers(names: Sequence[str], here: bool = True) -> list[str]:
    """The full provider names of ``--providers``; an unknown name is a usage error.

    With ``here`` (jobs run on this machine), so is a list of which none can run here: the run
    would measure no ONNX Runtime latency at all. One that cannot run while others can is noted
    once and skipped by each job, which records why.
    """
    import onnxruntime as ort

    from harness.latency import provider_skip_reason
    from harness.ort import PROVIDER_NAMES_HINT, provider_name

    full = list(dict.fromkeys(provider_name(name) for name in names))
    unknown = [name for name in full if name not in ort.get_all_providers()]
    if unknown:
        raise HarnessError(f"unknown ONNX Runtime provider(s) {', '.join(unknown)}; {PROVIDER_NAMES_HINT}")
    if not here:
        return full
    reasons = {name: provider_skip_reason(name) for name in full}
    usable = [name for name in full if reasons[name] is None]
    if not usable:
        raise HarnessError("none of --providers can run here: " + "; ".join(map(str, reasons.values())))
    for name in full:
        if reasons[name] is not None:  # before any progress display starts; shown with --no-progress too
            print(f"harness: warning: {reasons[name]}; measuring only {', '.join(usable)}", file=sys.stderr)
    return full


def default_providers(device: str) -> list[str]:
    """CPU always; CUDA too when ONNX Runtime can really run it here, whatever ``device`` trains on (the
    ONNX model is what ships: its GPU rows are wanted from a CPU-trained run too). TensorRT only when
    asked for (``--providers tensorrt``): its engines are slow to build."""
    from harness.ort import usable_providers

    usable, _ = usable_providers()
    chosen = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in usable:
        chosen.append("CUDAExecutionProvider")
    return chosen


def record_edge(folder: RunFolder) -> None:
    """The run's edge answer into results.json (``edge``, for CI to read), saved: with the reports, or alone
    for a run that writes none (``harness.api.run(reports=False)`` left it out)."""
    from harness.edge import edge_record

    folder.data["edge"] = edge_record(folder.data)
    folder.save()


def write_run_reports(folder: RunFolder, reporters: ReporterSet | None = None) -> None:
    """A run's edge answer into results.json (``edge``, for CI to read), saved, then its reports from it;
    then the reporters are told (``reports_written``: a tracker keeps the files), and results.json keeps
    what failed in that (``reporter_errors``)."""
    from harness.report import write_reports

    record_edge(folder)
    written = write_reports(folder.path, folder.data)
    if reporters:
        before = len(reporters.errors)
        reporters.call("reports_written", folder.path, [folder.results_path, *written])
        if len(reporters.errors) > before and keep_reporter_errors(folder, reporters):
            folder.save()


def resumed_options(out: Path, run_id: str | None, given: dict[str, Any]) -> RunOptions:
    """The options of the run ``--resume`` continues (``run_id`` in ``out``, else the latest there), as it
    stored them, with the options in ``given`` (named as :class:`RunOptions` fields) on top."""
    folder = RunFolder.open(resume_target(out, run_id))
    stored = _stored_options(folder, "resume it", "start a new run instead of resuming this one", given)
    stored.resume = True
    stored.run_id = folder.path.name
    stored.out = folder.path.parent
    return stored


def liked_options(run: Path, given: dict[str, Any], tracking: bool = False) -> RunOptions:
    """``harness run --like RUN``: a new run with the options ``run`` (a run folder or its results.json)
    stored, those in ``given`` (named as :class:`RunOptions` fields) on top; its folder goes beside ``run``'s
    unless ``given`` names ``out``, under ``given``'s ``run_id`` or a new one. A run ``run`` was tracked
    (results.json's ``trackers``) is said to be, unless ``tracking`` (trackers asked for this one)."""
    folder = RunFolder.open(run_folder_of(run))
    recorded = [str(n) for n in folder.data.get("trackers") or []]
    if recorded and not tracking:  # trackers are no run option: said, not taken
        log.warning("%s was tracked (%s); this run is not unless asked: --track %s", run, ", ".join(recorded),
                    ",".join(recorded))
    stored = _stored_options(folder, "run it again", "give its options on the command line instead", given)
    stored.resume = False
    stored.run_id = given.get("run_id")
    stored.out = given["out"] if "out" in given else folder.path.parent
    return stored


def _stored_options(folder: RunFolder, doing: str, instead: str, given: dict[str, Any]) -> RunOptions:
    """The options ``folder``'s run stored, with ``given`` on top (but where it is written)."""
    config = folder.data.get("config")
    if not config:  # defaults would widen the run to every plugin's jobs
        raise HarnessError(f"{folder.results_path} records no run options (config), so what the run was is "
                           f"unknown; {instead}")
    try:
        stored = RunOptions.from_config(config)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"{folder.results_path}: the run's stored options were edited or damaged "
                           f"(config.{squeeze(exc, 200)}); cannot {doing}") from None
    for name, value in given.items():
        if name not in ("resume", "run_id", "out"):
            setattr(stored, name, value)
    _given_over_stored_sweep(stored, given, folder, doing)
    if "ray_address" not in given:  # where this machine connects is never a results.json's to choose: one from
        recorded, stored.ray_address = stored.ray_address, None  # a fork's artifact chose a cluster of its own
        if recorded and stored.executor == "ray":
            raise HarnessError(f"the run went to the Ray cluster at {recorded}, and a results.json does not choose "
                               f"where this machine connects: give the address again (--ray-address "
                               f"{recorded}) to go back to it, or --executor local to {doing} here")
    if stored.executor != "ray" and "jobs" not in given:  # a Ray run resumed with --executor local
        stored.jobs = None
    return stored


def _given_over_stored_sweep(stored: RunOptions, given: dict[str, Any], folder: RunFolder, doing: str) -> None:
    """A setting given with --like (``epochs``) that the stored run swept replaces that sweep, with a warning,
    as --epochs does over a --config file's [sweep]: the sweep's point won before, and its jobs trained 2
    epochs under a recorded ``epochs = 1``. A resume refuses it: its jobs are its sweep points."""
    if not stored.sweep or given.get("sweep") is not None:
        return
    dropped = sorted({key for point in stored.sweep for key in point} & set(given) - {"seed"})
    if not dropped:
        return
    names = ", ".join(dropped)
    if doing == "resume it":
        raise HarnessError(f"{folder.path.name} sweeps {names}: its jobs are those sweep points, so {names} cannot "
                           f"change on resume; finish it as it was, or start a new run with --like "
                           f"{folder.path} and {names} given (that replaces the sweep over {names})")
    log.warning("%s given replaces the sweep over %s that %s ran", names, names, folder.path.name)
    from harness.config import sweep_without

    stored.sweep = sweep_without(stored.sweep, dropped)


def resume_target(out: Path, run_id: str | None) -> Path:
    """The run folder ``--resume`` continues: ``--run-id`` in ``out``, else the latest run there."""
    out = Path(out)
    if run_id:
        path = out / run_folder_name(run_id)
        if not (path / "results.json").exists():
            what = (f"{path} has no results.json (the run was stopped before its first write, or the file was "
                    "removed)" if path.is_dir() else f"no run {run_id!r} in {out}")
            raise HarnessError(f"nothing to resume: {what}; start it without --resume "
                               f"(a new --run-id if the folder is in the way)")
        return path
    found = latest_run(out)
    if found is None:
        raise HarnessError(f"nothing to resume: no run folder in {out}; start a run without --resume "
                           "(or point --out at the folder that holds the run)")
    return found


def open_run_folder(options: RunOptions, environment: dict[str, Any], planned: Sequence[str] = ()) -> RunFolder:
    """A new run folder, or with ``--resume`` the named (or latest) one. ``planned``: the job ids the options
    select; when every one has finished, a resume runs nothing, so its options are not recorded as the run's."""
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out} exists and is not a folder")
    if options.resume:
        folder = RunFolder.open(resume_target(out, options.run_id), lock=True)
        try:
            check_no_links(folder.path, "resume it")
        except HarnessError:
            folder.unlock()
            raise
        resumed = dict(environment)
        if folder.data.get("run_id") != folder.path.name:  # a copied or renamed run folder: its name is its id
            resumed["run_id_before"] = folder.data.get("run_id")
            folder.data["run_id"] = folder.path.name
        config = options.to_config()
        where = ("resume", "run_id", "out")  # how this call found the run, not how the run trains

        def options_of(stored: Any) -> dict[str, Any]:
            return {k: v for k, v in (stored or {}).items() if k not in where}

        before, now = options_of(folder.data.get("config")), options_of(config)
        # A narrower selection runs fewer jobs now; the run still covers what it set out to (a later plain
        # --resume runs the rest), so what it records is the union of both selections.
        config.update(widened_selection(folder.data.get("config") or {}, config))
        now = options_of(config)

        from harness.latency import settings_differences

        def same(a: Any, b: Any) -> bool:  # a sub-setting only one side has (latency.cold_runs): an older run
            if isinstance(a, dict) and isinstance(b, dict):
                return not settings_differences(a, b)
            return a == b

        # An option that a run from an older version did not record is its default then, which is today's
        # (cuda_graphs, unrecorded before the option, was said as "None -> False": a change nobody made).
        defaults = options_of(RunOptions().to_config())
        differ = [k for k in sorted(set(before) | set(now))
                  if not same(before[k] if k in before else defaults.get(k), now.get(k))]
        # The edge question's floor and budgets judge every job, finished or not: not worth a warning.
        from harness.edge import Question

        def change(key: str) -> str:
            old, new = before.get(key), now.get(key)
            if key == "sweep" and isinstance(old, list) and isinstance(new, list):  # grids are long: count them
                return f"sweep {len(old)} -> {len(new)} points"
            if isinstance(old, dict) and isinstance(new, dict):  # the latency settings: by name, else what differs
                return ", ".join(f"{key}{sub} {a if not sub else repr(a)} -> {b if not sub else repr(b)}"
                                 for sub, a, b in settings_differences(old, new))
            return f"{key} {old!r} -> {new!r}"

        changed = ", ".join(change(k) for k in differ if k not in Question.KEYS)
        idle = not set(planned) - folder.finished_ids()  # every job selected has finished: nothing will run
        if idle and changed:  # options no job runs with are not the run's: only the edge question is re-asked
            log.warning("nothing to resume in %s: the job(s) these options select have all finished, so the "
                        "changed options (%s) are not recorded", folder.path.name, squeeze(changed, 300))
        elif changed:  # e.g. a larger sweep grid: the run's options are now these
            finished = len(folder.finished_ids())
            log.warning("resuming %s with changed options (%s): the jobs still to run use them%s", folder.path.name,
                        squeeze(changed, 300), f", the {finished} finished job(s) keep the settings they ran with"
                        if finished else "")
        made_by, making = _made_by(folder.data.get("environment") or {}), _made_by(environment)
        if not idle and folder.finished_ids() and made_by != making:
            log.warning("resuming %s, whose finished job(s) were made by %s; the jobs still to run are made by %s "
                        "(its exporter, timing and reports' rules may differ: the run then holds both)",
                        folder.path.name, made_by, making)
        if idle:
            config = {**(folder.data.get("config") or {}), **{k: config.get(k) for k in differ if k in Question.KEYS}}
            differ = [k for k in differ if k in Question.KEYS]
        if differ:
            resumed["config_before"] = folder.data.get("config")
            for job in folder.data["jobs"]:  # the reports judge each job by the options it ran with
                job.setdefault("trained_with", folder.data.get("config"))
            folder.data["config"] = {**config, **{k: (folder.data.get("config") or {}).get(k) for k in where}}
        folder.data.setdefault("resumed", []).append(resumed)
        folder.save()  # recorded even when every job had already finished
        return folder
    return RunFolder.create(out, options.run_id, environment, options.to_config())


def _made_by(environment: dict[str, Any]) -> str:
    """Which harness an environment record names: ``harness 0.1.0 (commit 1a2b3c4d)``, ``... (commit not
    recorded)`` for a run from before harness_commit was; a changed checkout is marked, as its code differs."""
    commit = environment.get("harness_commit")
    where = (f"commit {str(commit)[:12]}" + (", changed" if environment.get("harness_dirty") else "")
             if commit else "commit not recorded")
    return f"harness {environment.get('harness') or '?'} ({where})"


SELECTION_KEYS = ("plugins", "models", "datasets")  # None: all of them


def widened_selection(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run covers: each selection key's names from both option sets (None, all, wins), and
    the sweep points of both grids in their first order."""
    merged: dict[str, Any] = {}
    for key in SELECTION_KEYS:
        old, new = before.get(key), now.get(key)
        if isinstance(old, list) and isinstance(new, list):
            merged[key] = list(dict.fromkeys([*old, *new]))
        elif key in before or key in now:
            merged[key] = None
    old_sweep, new_sweep = before.get("sweep"), now.get("sweep")
    if isinstance(old_sweep, list) and isinstance(new_sweep, list):
        merged["sweep"] = [*old_sweep, *(p for p in new_sweep if p not in old_sweep)]
    return merged


def mixed_precision_warning(finished: Iterable[dict[str, Any]], amp: str | None, device: str) -> str | None:
    """On ``--resume``: say so when finished jobs trained in another precision than the jobs still to run will.

    The options can be unchanged and the precision still differ: a run begun with ``--amp bf16`` on
    the CPU by a harness that ran autocast on CUDA only trained in float32, and ``--device auto``
    resumed on another machine may pick another device. Accuracy and training time are then not
    comparable across the run's jobs without saying so.
    """
    from harness.train import resolve_amp

    now = resolve_amp(amp, device) or "fp32"
    other: dict[str, int] = {}
    for job in finished:
        train = job.get("train")
        if job.get("status") == "ok" and isinstance(train, dict):
            ran = _precision_ran(train)
            if ran != now:
                other[ran] = other.get(ran, 0) + 1
    if not other:
        return None
    then = ", ".join(f"{n} trained in {kind}" for kind, n in sorted(other.items()))
    return (f"mixed precision in one run: of the finished jobs, {then}; the jobs still to run "
            f"train in {now} on {device}, so accuracy and training time differ in kind across the run's jobs; "
            f"a new run (without --resume) trains them all alike")


def check_device_options(options: RunOptions, device: str) -> None:
    """Options the device cannot honour: a usage error when the user named the device, else a warning.

    ``--amp fp16`` is CUDA-only (the CPU trains it in float32), and so is ``--cuda-graphs`` (the eager loop
    trains); ``--threads`` above the core count
    oversubscribes the CPU, so those latency rows measure contention rather than the model.
    """
    from harness.train import resolve_amp

    # resolve_amp decides what training will apply; a request it turns down (fp16 off CUDA) is said here
    if options.amp and resolve_amp(options.amp, device) is None:
        if options.device == "cpu":
            raise HarnessError(f"--amp {options.amp} runs on CUDA only; on the CPU use --amp bf16")
        log.warning("--amp %s needs CUDA and this run trains on %s: it trains in float32 "
                    "(--amp bf16 runs on the CPU)", options.amp, device)
    if options.cuda_graphs and not device.startswith("cuda"):  # an explicit flag that would do nothing unsaid
        log.warning("--cuda-graphs needs a CUDA device and this run trains on %s: the eager loop trains, "
                    "and each job records why (train.cuda_graphs)", device)
    from harness.latency import threads_over_cores

    over = threads_over_cores(options.threads)
    if over and options.executor == "local":  # a Ray worker's cores are not this machine's
        log.warning("%s", over)


def _precision_ran(train: dict[str, Any]) -> str:
    """The precision a finished job trained in. Records without ``amp_requested`` come from a harness
    that stored the request in ``amp`` and ran autocast on CUDA only: on a CPU they trained in fp32."""
    amp = train.get("amp") or "fp32"
    if "amp_requested" not in train and str(train.get("device") or "").startswith("cpu"):
        return "fp32"
    return amp


def say_option_warnings(options: RunOptions) -> None:
    """Warn about options a run goes on with but may not mean: an accuracy floor that reads as a percentage,
    a job time-out that cannot be applied here, an edge question no job will measure."""
    from harness.edge import Question, floor_warning

    warning = floor_warning(options.accuracy_floor)  # not in validate_options: the CLI calls that too
    if warning:
        log.warning("%s", warning)
    if options.job_timeout and options.executor == "local" and not timer_usable():
        log.warning("--job-timeout is not applied: it needs the main thread on a POSIX system (a SIGALRM timer), "
                    "and this run is in another thread or on Windows")
    unmeasured = edge_unmeasured(options) if Question.from_config(options.to_config()) else None
    if unmeasured:
        log.warning("%s: no job will answer it (add 1 to them, or use --profile edge)", unmeasured)


def begin_run(folder: RunFolder, plan: Plan, options: RunOptions, specs: dict[str, Any], device: str,
              progress: Progress) -> list[Job]:
    """Write what the run sets out to do into ``folder`` (its planned jobs, its metrics' ``specs``, the
    models no dataset fits, a row per skipped pair) and say what a resume finds; the jobs left to run."""
    # What the run set out to run, so a report of an interrupted run can say what never ran. A resume
    # with a narrower selection keeps the run's other unfinished jobs planned, for a later --resume.
    done = folder.finished_ids() if options.resume else set()
    planned = [job.id for job in plan.jobs]
    before = [str(i) for i in folder.data.get("planned_jobs") or []] if options.resume else []
    left = [i for i in before if i not in done and i not in planned]
    if left:
        log.warning("this resume's options leave out %d unfinished job(s) of the run (%s): they stay planned, "
                    "and `harness run --resume --run-id %s --out %s` runs them later", len(left),
                    squeeze(", ".join(left), 200), folder.path.name, folder.path.parent)
    folder.data["planned_jobs"] = list(dict.fromkeys([*before, *planned]))
    # What each metric is, for reports rebuilt where its plugin is not installed (a resume adds its own)
    folder.data["metric_specs"] = {**(folder.data.get("metric_specs") or {}), **specs}
    folder.data.pop("interrupted", None)
    todo = [job for job in plan.jobs if job.id not in done]
    if done:
        progress.note(f"resuming {folder.path}: {len(done)} job(s) already finished, {len(todo)} to run")
        mixed = mixed_precision_warning(folder.data["jobs"], options.amp, device) if todo else None
        if mixed:
            log.warning("%s", mixed)
    if plan.unmatched and plan.jobs:  # said, not silently dropped (with no job at all, the error says why)
        takes = "; ".join(dict.fromkeys(f"{what}: {', '.join(m for m, w in plan.unmatched if w == what)}"
                                        for _, what in plan.unmatched))
        progress.note(f"{len(plan.unmatched)} model(s) fit none of the datasets chosen and are left out "
                      f"(they take {takes})")  # (a model named in --models is a skipped job instead)
        # kept with the run and said in its reports: under --no-progress a CI log showed a green run, a model short
        folder.data["unmatched_models"] = {**(folder.data.get("unmatched_models") or {}), **dict(plan.unmatched)}
    for model, dataset, why in plan.skipped:
        folder.record({"id": job_id(model, dataset), "model": model, "dataset": dataset, "status": "skipped",
                       "stage": "plan", "error": why, "params": None, "train": None, "metrics": None,
                       "onnx": None, "latency": []})
    return todo


def execute(registry: Registry, options: RunOptions, progress: Progress,
            reporters: Iterable[Any] = (), executor_options: dict[str, Any] | None = None,
            keep_lock: bool = False, stop_requested: Callable[[], bool] | None = None) -> RunFolder:
    """Plan and run every job, writing the run folder; returns it with its results.

    Raises :class:`HarnessError` for bad input found before any job runs.
    On KeyboardInterrupt the finished jobs are already on disk; the exception
    propagates with ``run_folder`` attached so the caller can say how to resume.
    The folder is locked against other harness processes while the run goes; with
    ``keep_lock`` it stays locked when the folder is returned or attached (the CLI
    writes the reports, then calls ``unlock()``). ``stop_requested``: whether a stop signal
    came, asked between stages (see :func:`checkpoint`).
    """
    from harness.executors import make_executor

    validate_options(options)
    _METRIC_FAILURES_SAID.clear()  # said once per run, and again in the next run of this process
    _EXPORT_NOTES_SAID.clear()
    say_option_warnings(options)
    # The built-in metrics (accuracy, nll, macro-f1) take part whatever --plugins selects; another plugin's
    # only when --plugins selects it, as for models and datasets. --metrics narrows them, accuracy aside.
    metrics = registry.select("metrics", options.metrics, with_builtin_metrics(options.plugins))
    accuracy = registry.specs["metrics"].get("accuracy")
    if accuracy is not None and accuracy not in metrics:  # --metrics names the others: every job reports accuracy
        metrics = [accuracy, *metrics]  # (the edge question, the gates and the Pareto table judge by it)
    if not metrics:  # every job would report no accuracy, and the edge question could not be answered
        disabled = registry.disabled_text()
        log.warning("no metric is registered, so no job gets an accuracy%s", f" ({disabled})" if disabled else "")
    if options.executor == "ray":  # the run's own, which a caller's executor_options (ray.init's) may add to
        executor_options = {"address": options.ray_address, "num_cpus": options.jobs, **(executor_options or {})}
    # Made first: a missing extra is a usage error before any run folder exists.
    executor = make_executor(options.executor, **(executor_options or {}))
    try:
        return _execute(registry, options, progress, reporters, keep_lock, stop_requested, metrics, executor)
    finally:  # a Ray instance this run started, left running by a usage error (the next run of this process
        close = getattr(executor, "close", None)  # joined it, and its --jobs were ignored)
        if close is not None:
            close()


def _execute(registry: Registry, options: RunOptions, progress: Progress, reporters: Iterable[Any],
             keep_lock: bool, stop_requested: Callable[[], bool] | None, metrics: list[Any], executor: Any
             ) -> RunFolder:
    """:func:`execute` with its metrics chosen and its executor made."""
    from harness.environment import collect_environment
    from harness.train import resolve_device

    taken = run_taken(options.out, options.run_id) if not options.resume and options.run_id else None
    if taken:  # before the data is loaded, as RunFolder.create would after
        raise taken
    problem = offline_problem()
    if problem:
        raise HarnessError(problem)
    problem = root_problem()  # a dataset without its files would otherwise blame them, not this
    if problem:
        log.warning("%s: datasets are decoded on every run and cannot be downloaded", problem)
    cache = DatasetCache(options.data_dir, options.seed)
    plan = plan_jobs(registry, options, cache)
    if not plan.jobs:
        raise HarnessError(f"no job to run: {no_job_reason(registry, options, cache, plan)}")
    check_sweep_keys(list({job.model.name: job.model for job in plan.jobs}.values()), options.sweep)
    # after the checks that cost nothing: --executor ray starts or joins Ray to see the cluster's GPUs
    device = getattr(executor, "resolve_device", resolve_device)(options.device)
    check_device_options(options, device)
    if options.datasets and options.executor == "local":
        check_named_datasets(plan, cache)
    if options.providers:
        providers = check_providers(options.providers, here=options.executor == "local")
    else:
        providers = default_providers(device)
    environment = collect_environment(device)
    folder = open_run_folder(options, environment, [job.id for job in plan.jobs])
    handed_over = False
    try:  # the folder stays locked against a second harness process until this run ends
        # the caller's own set (harness run's, which tells the reporters of the reports written after this)
        reporter_set = reporters if isinstance(reporters, ReporterSet) else ReporterSet(reporters)
        reporter_set.earlier_errors = list(folder.data.get("reporter_errors") or []) if options.resume else []
        note_reporters(folder, reporter_set, options.resume)
        ctx = RunContext(options, registry, folder, cache, metrics, device, progress, reporter_set, providers,
                         stop_requested or _never)
        todo = begin_run(folder, plan, options, metric_specs(registry, metrics), device, progress)
        reporter_set.call("run_started", folder.path, folder.data.get("config", {}), environment)

        def on_done(job: Job, row: dict[str, Any]) -> None:
            folder.record(row)
            progress.job_done(row)
            reporter_set.call("job_ended", job.id, row, folder.path)

        progress.start(len(todo))
        try:
            executor.run(todo, ctx, on_done)
        except KeyboardInterrupt as exc:
            progress.stop()
            recorded = {row.get("id") for row in folder.data["jobs"]}
            remove_unlisted_files(folder, todo)
            if all(job.id in recorded for job in todo):  # the signal came after the last job (Ray shutting down)
                exc.complete = True  # type: ignore[attr-defined]
            else:
                folder.data["interrupted"] = True
            # the trackers close what the interrupted jobs opened (an MLflow run marked KILLED, not left running)
            reporter_set.call("run_ended", folder.data, folder.path)
            keep_reporter_errors(folder, reporter_set)
            folder.save()
            exc.run_folder = folder  # type: ignore[attr-defined]
            handed_over = keep_lock
            raise
        except StorageError as exc:  # the folder stopped taking files: the finished jobs are kept, in memory too
            progress.stop()
            folder.data["interrupted"] = True
            reporter_set.call("run_ended", folder.data, folder.path)
            try:
                folder.save()  # the disk may take this smaller write yet
            except StorageError:
                pass
            exc.run_folder = folder  # type: ignore[attr-defined]  # the caller prints their table
            raise
        progress.stop()
        remove_unlisted_files(folder, todo)  # a timed-out job's half-written export
        reporter_set.call("run_ended", folder.data, folder.path)
        if keep_reporter_errors(folder, reporter_set):  # run_ended's own too
            folder.save()
        handed_over = keep_lock
        return folder
    finally:
        if not handed_over:
            folder.unlock()


DEVICES = ("auto", "cpu", "cuda")
"""``--device``'s choices (the CLI spells them out too, so that its start imports no runner; a test keeps the two equal)."""
AMP_CHOICES = ("bf16", "fp16", "fp32")
"""``--amp``'s choices; ``fp32`` (no autocast) is ``RunOptions.amp = None``."""


def validate_options(options: RunOptions) -> None:
    """Refuse (:class:`HarnessError`, naming the option) run options no job could run with."""
    from harness.config import MAX_GRID

    if len(options.sweep) > MAX_GRID:  # a --config grid is held to it; a stored one (--like, --resume) too
        raise HarnessError(f"the sweep has {len(options.sweep)} points (more than {MAX_GRID})")
    if options.epochs is not None and options.epochs < 1:
        raise HarnessError(f"--epochs must be at least 1, got {options.epochs}")
    if options.lr is not None and not options.lr > 0:
        raise HarnessError(f"--lr must be positive, got {options.lr}")
    if not options.onnx_tolerance > 0:
        raise HarnessError(f"--onnx-tolerance must be positive, got {options.onnx_tolerance}")
    if options.batch_size is not None and options.batch_size < 1:
        raise HarnessError(f"--batch-size must be at least 1, got {options.batch_size}")
    if not options.batch_sizes or any(b < 1 for b in options.batch_sizes):
        raise HarnessError(f"--batch-sizes must be positive integers, got {options.batch_sizes}")
    if not options.threads or any(t < 1 for t in options.threads):
        raise HarnessError(f"--threads must be positive integers, got {options.threads}")
    for name, value in (("--max-train-samples", options.max_train_samples),
                        ("--max-test-samples", options.max_test_samples)):
        if value is not None and value < 1:
            raise HarnessError(f"{name} must be at least 1, got {value}")
    if options.data_dir is not None and not Path(options.data_dir).is_dir():
        raise HarnessError(f"--data-dir {options.data_dir} is not a folder")
    from harness.export import EXPORTERS

    from harness.variants import unknown_variants

    unknown = unknown_variants(options.variants)
    if unknown:
        from harness.variants import VARIANTS

        raise HarnessError(f"--variants has unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if "slim" in options.variants and options.executor == "local":  # Ray workers have their own packages
        from harness.variants import slim_available

        if not slim_available():
            raise HarnessError('--variants slim needs onnxslim: pip install "onnxslim>=0.1.98"')
    for name in ("latency_budget_ms", "cold_budget_ms"):
        value = getattr(options, name)
        if value is not None and value <= 0:
            raise HarnessError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if options.max_accuracy_drop is not None and not 0 <= options.max_accuracy_drop <= 100:
        raise HarnessError(
            f"--max-accuracy-drop must be percentage points in [0, 100], got {options.max_accuracy_drop}")
    for name in ("size_budget_bytes", "activation_budget_bytes", "memory_budget_bytes"):
        value = getattr(options, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            flag = "--" + name.removesuffix("_bytes").replace("_", "-")
            raise HarnessError(f"{flag} must be a positive number of bytes, got {value!r}")
    if options.accuracy_floor is not None and not 0 <= options.accuracy_floor <= 100:
        raise HarnessError(f"--accuracy-floor must be a fraction in [0, 1] or a percentage, got {options.accuracy_floor}")
    if options.job_timeout is not None and options.job_timeout <= 0:
        raise HarnessError(f"--job-timeout must be positive, got {options.job_timeout}")
    if options.job_timeout is not None and not hasattr(signal, "setitimer"):
        # Windows has no interval timer: the limit would be silently ignored, a job running on unbounded
        raise HarnessError("--job-timeout needs an interval timer (signal.setitimer), which this platform "
                           "(Windows) lacks; run without it")
    if options.exporter not in EXPORTERS:
        raise HarnessError(f"--exporter must be one of {', '.join(EXPORTERS)}")
    # the CLI's choices; harness.api.run passed "gpu" on to torch (a traceback in each job) and "bf17" to
    # a float32 run that recorded it as asked for
    if options.device not in DEVICES:
        raise HarnessError(f"--device must be one of {', '.join(DEVICES)}, not {options.device!r}")
    if options.amp is not None and (options.amp == "fp32" or options.amp not in AMP_CHOICES):  # fp32 is None here
        raise HarnessError(f"--amp must be one of {', '.join(AMP_CHOICES)}, not {options.amp!r}")
    if options.latency.cold_runs == 0:
        for value, flag in ((options.cold_budget_ms, "--cold-budget-ms"), (options.memory_budget_bytes, "--memory-budget")):
            if value is not None:
                raise HarnessError(f"{flag} judges each model's cold start, which --cold-runs 0 does not measure")


def edge_unmeasured(options: RunOptions) -> str | None:
    """Why the edge question (judged at batch 1 on 1 thread, on the CPU provider) cannot be answered by
    what these options measure, or None."""
    missing = [flag for flag, values in (("--batch-sizes", options.batch_sizes), ("--threads", options.threads))
               if 1 not in values]
    if missing:
        given = " ".join(f"{flag} {','.join(map(str, getattr(options, flag[2:].replace('-', '_'))))}"
                         for flag in missing)
        return f"the edge question is judged at batch 1 on 1 thread, which {given} does not time"
    from harness.ort import is_cpu_provider

    if options.providers and not any(is_cpu_provider(p) for p in options.providers):
        return (f"the edge question is judged on the CPU provider, which --providers {','.join(options.providers)} "
                f"does not time")
    return None

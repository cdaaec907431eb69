"""The spec types plugins return from their hooks.

These are plain frozen dataclasses with no heavy imports, so that listing what
plugins registered never imports torch. ``ModelSpec.build`` and
``DatasetSpec.load`` are only called when a job needs them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
import numbers
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def keyword_names(function: Callable[..., Any], explicit: bool = False) -> set[str] | None:
    """The keyword arguments ``function`` takes; None when it takes any (``**kwargs``) or has no signature.

    With ``explicit``, the ones it names even when it also takes ``**kwargs`` (None only without a
    signature). For a :class:`lazy` callable, those of its target (imported now).
    """
    if isinstance(function, lazy):
        function = function._resolve()
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if not explicit and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


_MISSING = object()
DOCUMENTED_KEYWORDS = {"build": ("num_classes", "input_shape"), "load": ("data_dir", "seed")}
"""The keyword arguments the harness passes to every ``ModelSpec.build`` and ``DatasetSpec.load``."""


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _and(names: Iterable[str]) -> str:
    names = list(names)
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def _parameters_text(function: Callable[..., Any]) -> str:
    """``n, shape`` (with ``*args``, ``**kwargs`` and a ``/`` after positional-only ones): what it takes."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return "no readable signature"
    parts = []
    for i, p in enumerate(parameters):
        parts.append({p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name)
        if p.kind is p.POSITIONAL_ONLY and (i + 1 == len(parameters) or parameters[i + 1].kind is not p.kind):
            parts.append("/")
    return ", ".join(parts) or "no arguments"


def _binding_problem(function: Callable[..., Any], args: tuple, kwargs: dict[str, Any], dropped: list[str],
                     target: str) -> str | None:
    """Why ``function(*args, **kwargs)`` cannot be called now that the documented keywords among ``dropped``
    were left out; None when it binds, or when only extras were dropped (its own error says it then).

    lazy() drops keyword arguments its target does not name, which is right for a sweep's extras but
    turns ``build(n, shape)`` into a "missing 2 required positional arguments" that hides the cause."""
    documented = [k for names in DOCUMENTED_KEYWORDS.values() for k in names if k in dropped]
    if not documented:
        return None
    try:
        inspect.signature(function).bind(*args, **kwargs)
        return None
    except (TypeError, ValueError):
        pass
    role = next(r for r, names in DOCUMENTED_KEYWORDS.items() if set(names) & set(documented))
    return (f"{role} target {target} must take keyword argument{'s' if len(documented) > 1 else ''} "
            f"{_and(documented)} (it takes {_parameters_text(function)})")


class lazy:
    """A callable named ``"package.module:function"``, imported on its first call.

    Plugin modules use it so that listing what they register never imports
    torch: ``ModelSpec("my-net", build=lazy("my_pkg.nets:my_net"))``. Keyword
    arguments the target does not accept are dropped (unless it takes
    ``**kwargs``), so a plain ``my_net(num_classes, input_shape)`` ignores the
    extra settings a sweep may pass. A target that cannot then be called because
    it does not name the documented ones (``my_net(n, shape)``) gets a TypeError
    saying so, not Python's "missing 2 required positional arguments".
    """

    def __init__(self, target: str):
        if not isinstance(target, str):
            raise TypeError(f"lazy() wants a 'package.module:function' string, got {_short(target)}")
        module, sep, name = target.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"lazy() wants 'package.module:function', got {target!r}")
        self.target = target
        self._function: Callable[..., Any] | None = None
        self._accepted: set[str] | None = None

    def _lookup(self) -> tuple[Callable[..., Any] | None, Exception | None]:
        """The target, imported now, or what is wrong with it (not raised, so that ``--strict`` can word it);
        an import that fails raises."""
        module, _, name = self.target.partition(":")
        function = getattr(importlib.import_module(module), name, _MISSING)
        if function is _MISSING:
            return None, AttributeError(f"module {module!r} has no attribute {name!r}")
        if not callable(function):
            return None, TypeError(f"not callable (it is {_short(function)})")
        return function, None

    def _resolve(self) -> Callable[..., Any]:
        if self._function is None:
            function, problem = self._lookup()
            if problem is not None:  # getattr's own message names neither lazy() nor the target
                raise type(problem)(f"lazy target {self.target}: {problem}")
            self._accepted = keyword_names(function)
            self._function = function
        return self._function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        function = self._resolve()
        if self._accepted is not None:
            dropped = [k for k in kwargs if k not in self._accepted]
            kwargs = {k: v for k, v in kwargs.items() if k in self._accepted}
            if dropped:  # dropping is meant for extras; a target that now misses arguments gets told why
                problem = _binding_problem(function, args, kwargs, dropped, self.target)
                if problem:
                    raise TypeError(problem)
        return function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule, applied once per epoch.

    kind:
      - ``constant``: the recipe's ``lr`` throughout.
      - ``step``: ``lr * gamma ** (epoch // step_size)`` (torch's ``StepLR``).
      - ``piecewise``: ``milestones`` is ``((epoch, lr), ...)``; from each
        epoch (0-based) on, that learning rate holds. The recipe's ``lr`` is
        used before the first milestone. Overriding the recipe's ``lr``
        (:meth:`Recipe.replace`) scales these rates by the same factor.
      - ``onecycle``: ``torch.optim.lr_scheduler.OneCycleLR`` stepped per
        batch, peaking at ``lr``.
    """

    kind: str = "constant"
    step_size: int = 10
    gamma: float = 0.1
    milestones: tuple[tuple[int, float], ...] = ()

    def lr_at(self, epoch: int, base_lr: float) -> float:
        """The learning rate in force during ``epoch`` (0-based), for per-epoch kinds."""
        if self.kind == "step":
            return base_lr * self.gamma ** (epoch // self.step_size)
        if self.kind == "piecewise":
            lr = base_lr
            for start, value in sorted(self.milestones):
                if epoch >= start:
                    lr = value
            return lr
        return base_lr


@dataclass(frozen=True)
class Recipe:
    """How a model is trained by default; command-line options override fields.

    ``normalize`` is ``(mean, std)`` applied to inputs in [0, 1] inside the
    exported model (so the ONNX file takes raw [0, 1] pixels). ``val_size`` is
    how many training samples are held out for validation when the dataset
    has no ``val`` split of its own (an int, or a fraction < 1).
    ``target_accuracy`` is the accuracy whose first crossing is timed
    (time-to-accuracy). ``augment`` names a training-time augmentation done on
    the device, batch by batch (see :data:`harness.train.AUGMENTATIONS`):
    ``rotate7`` rotates each 2D image by a random angle in [-7, 7] degrees.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 1
    schedule: Schedule = field(default_factory=Schedule)
    normalize: tuple[float, float] | None = None
    val_size: float = 0
    label_smoothing: float = 0.0
    target_accuracy: float | None = None
    augment: str | None = None
    source: str = ""

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with ``changes`` applied; ``None`` values are ignored.

        A new ``lr`` scales a piecewise schedule's learning rates by the same factor (its milestones
        are absolute rates, so they would otherwise ignore ``--lr`` and an ``lr`` sweep), unless the
        changes bring their own ``schedule``.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        lr, schedule = changes.get("lr"), self.schedule
        if lr is not None and "schedule" not in changes and schedule.kind == "piecewise" and self.lr:
            factor = lr / self.lr
            changes["schedule"] = dataclasses.replace(
                schedule, milestones=tuple((start, value * factor) for start, value in schedule.milestones))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SIZE_NAMES = {1: (), 2: ("L",), 3: ("H", "W"), 4: ("D", "H", "W")}
_RANK_KINDS = {1: "feature vectors", 2: "sequences", 3: "images", 4: "volumes"}


def input_text(rank: int, channels: int | None, spatial: Iterable[int] | None, kind: bool = True) -> str:
    """What a model of this ``input_rank`` takes: ``1x28x28 images``, ``CxL sequences``, ``F feature vectors``
    (``CxHxW`` alone without ``kind``)."""
    first = str(channels) if channels is not None else ("F" if rank == 1 else "C")
    sizes = tuple(spatial) if spatial else _SIZE_NAMES.get(rank, tuple(f"S{i + 1}" for i in range(rank - 1)))
    shape = "x".join([first, *map(str, sizes)])
    return f"{shape} {_rank_kind(rank)}" if kind else shape


def _rank_kind(rank: int) -> str:
    return _RANK_KINDS.get(rank, f"rank-{rank} inputs")


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin offers.

    ``build(num_classes=..., input_shape=..., **kwargs)`` returns a
    ``torch.nn.Module`` mapping ``(N, *input_shape)`` float32 to ``(N,
    num_classes)`` logits. ``input_shape`` is channels first, without batch.

    Compatibility with a dataset is decided from ``input_rank`` (1 for
    ``(F,)`` feature vectors, 2 for ``(C, L)`` sequences, 3 for ``(C, H, W)``
    images, 4 for ``(C, D, H, W)`` volumes), ``input_channels`` (``None``: any;
    otherwise the harness adapts 1 <-> 3 channels as the seeds do, grayscale
    duplicated to RGB; at rank 1 it is the number of features, never adapted)
    and ``spatial_shape`` (``None``: any size; otherwise exactly this size,
    e.g. ``(28, 28)`` for a network with a fixed fully connected head; a
    feature vector's size is ``input_channels``). ``accepts`` may refine that
    further.

    ``recipe`` is the default training recipe; ``reference`` holds published
    figures (``params``, ``test_accuracy``, ``source``...) that reports
    compare against.
    """

    name: str
    build: Callable[..., "torch.nn.Module"]
    description: str = ""
    input_rank: int = 3
    input_channels: int | None = None
    spatial_shape: tuple[int, ...] | None = None
    accepts: Callable[[tuple[int, ...]], bool] | None = None
    recipe: Recipe = field(default_factory=Recipe)
    reference: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def model_input_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """The input shape this model is built for on data of ``data_shape``, or ``None``.

        ``None`` means the pair is incompatible.
        """
        if len(data_shape) != self.input_rank:
            return None
        channels, spatial = data_shape[0], tuple(data_shape[1:])
        if self.spatial_shape is not None and tuple(self.spatial_shape) != spatial:
            return None
        if self.input_channels is not None and channels != self.input_channels:
            if {channels, self.input_channels} != {1, 3} or self.input_rank < 2:  # features are no channels
                return None
            channels = self.input_channels
        shape = (channels, *spatial)
        if self.accepts is not None and not self.accepts(shape):
            return None
        return shape


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset a plugin offers.

    ``load(data_dir=..., seed=..., **kwargs)`` returns :class:`Splits`.
    ``input_shape`` and ``num_classes``, when declared, let the harness pair
    models with this dataset without loading it.
    """

    name: str
    load: Callable[..., "Splits"]
    description: str = ""
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Splits:
    """Tensors of one dataset: inputs float32 ``(N, *input_shape)``, targets int64 ``(N,)``."""

    train: tuple["torch.Tensor", "torch.Tensor"]
    test: tuple["torch.Tensor", "torch.Tensor"]
    num_classes: int
    val: tuple["torch.Tensor", "torch.Tensor"] | None = None
    classes: tuple[str, ...] | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train[0].shape[1:])

    def digests(self) -> dict[str, str]:
        """SHA-256 of each split (inputs then targets: dtype, shape and bytes, in order): what identifies the
        data a run used, beside where it came from. Another copy of a dataset with the same samples in
        another order digests differently, as it should: ``--max-*-samples`` subsets are drawn by position."""
        out = {}
        for name in ("train", "val", "test"):
            pair = getattr(self, name)
            if pair is not None:
                digest = hashlib.sha256()
                for tensor in pair:
                    tensor_digest(tensor, digest)
                out[name] = digest.hexdigest()
        return out


def tensor_digest(tensor: "torch.Tensor", into: Any = None) -> str:
    """SHA-256 over a tensor's dtype, shape and raw bytes (fed into the hash object ``into`` when given,
    whose digest so far is returned)."""
    digest = hashlib.sha256() if into is None else into
    digest.update(f"{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel():
        import torch

        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


@dataclass(frozen=True)
class MetricSpec:
    """A metric computed on the whole test split (or its ``--max-test-samples`` subset):
    ``compute(logits, targets) -> float``.

    ``gate``: the metric is a fraction in [0, 1] (an accuracy-like score) that ``harness compare
    --fail-on-regression`` judges as it judges accuracy and macro-F1: a move the worse way (by
    ``higher_is_better``) of more than the threshold in percentage points is a regression. Off by
    default: any other metric's change is shown, marked not gated."""

    name: str
    compute: Callable[["torch.Tensor", "torch.Tensor"], float]
    higher_is_better: bool = True
    description: str = ""
    gate: bool = False


@dataclass(frozen=True)
class TrackerSpec:
    """An experiment tracker a user switches on by name (``--track NAME``, ``$HARNESS_TRACK`` or ``track``
    in a config file): ``make() -> Reporter``, called once when such a run starts.

    ``requires`` names the packages the tracker imports; when one is missing the run stops before it
    starts, saying ``pip install`` of ``install`` (or of the missing package when ``install`` is empty)."""

    name: str
    make: Callable[[], Any]
    requires: tuple[str, ...] = ()
    install: str = ""
    description: str = ""


# -- field checks, run when a plugin registers a spec ------------------------------------------------------
# A frozen dataclass takes any value; a wrong type then failed in whichever command first read the field
# (a traceback in `harness list`, or a job failing at build time). These say it once, at registration,
# as that plugin's error. Cheap: no import, no call.

SCHEDULE_KINDS = ("constant", "step", "piecewise", "onecycle")
CALLS = {"build": DOCUMENTED_KEYWORDS["build"], "load": DOCUMENTED_KEYWORDS["load"], "compute": 2, "make": 0}
"""How the harness calls each spec callable: with these keyword arguments, or with this many positional ones."""


def _is_int(value: Any, least: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) > 0 and all(_is_int(d) for d in value)


def _is_str_tuple(value: Any) -> bool:
    """Tags: any collection of str (a tuple, a list, a set: only iterated), not one str (its letters)."""
    return isinstance(value, (tuple, list, set, frozenset)) and all(isinstance(t, str) for t in value)


def _must(field_name: str, value: Any, ok: bool, what: str) -> str | None:
    return None if ok else f"{field_name} must be {what}, not {_short(value)}"


def _callable_problem(field_name: str, value: Any) -> str | None:
    if callable(value):
        return None
    hint = (f" (wrap it: {field_name}=harness.lazy({value!r}))"
            if isinstance(value, str) and ":" in value else "")
    return f"{field_name} must be callable, not {_short(value)}{hint}"


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def _reference_problem(reference: Any) -> str | None:
    """What is wrong with the published figures the reports set beside a model's own: the keys they read
    must hold what they read (a percentage for an accuracy, or params as text, fell out of the comparison
    without a word); other keys are free, shown as published figures. numpy's numbers count as numbers, and
    an unknown figure (NaN, inf) is let through: it is recorded as null."""
    if not isinstance(reference, Mapping):
        return None

    def real(value: Any) -> bool:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)

    problems = []
    for key, value in reference.items():
        if real(value) and not math.isfinite(float(value)):
            continue
        name = f"reference[{key!r}]"
        if key == "params":
            problems.append(_must(name, value, isinstance(value, numbers.Integral) and real(value) and value >= 0,
                                  "a whole number of parameters"))
        elif key == "epochs":
            problems.append(_must(name, value, isinstance(value, numbers.Integral) and real(value) and value >= 1,
                                  "a positive int"))
        elif key in ("train_minutes", "model_size_mb"):
            problems.append(_must(name, value, real(value) and value > 0, "a positive number"))
        elif key in ("dataset", "source", "note"):
            problems.append(_must(name, value, isinstance(value, str), "a str"))
        elif isinstance(key, str) and key.endswith("accuracy"):
            problems.append(_must(name, value, real(value) and 0 <= value <= 1,
                                  "a fraction in [0, 1] (99.1 % is 0.991)"))
    return _first(*problems)


def _recipe_problem(recipe: Any) -> str | None:
    if not isinstance(recipe, Recipe):
        return f"recipe must be a harness.Recipe, not {_short(recipe)}"
    from harness.train import AUGMENTATIONS, OPTIMIZERS  # no torch at import

    r, s = recipe, recipe.schedule
    problem = _first(
        _must("optimizer", r.optimizer, isinstance(r.optimizer, str) and r.optimizer.lower() in OPTIMIZERS,
              f"one of {', '.join(OPTIMIZERS)}"),
        _must("lr", r.lr, _is_number(r.lr) and r.lr > 0, "a positive number"),
        _must("momentum", r.momentum, _is_number(r.momentum) and r.momentum >= 0, "a number, at least 0"),
        _must("nesterov", r.nesterov, isinstance(r.nesterov, bool), "True or False"),
        _must("weight_decay", r.weight_decay, _is_number(r.weight_decay) and r.weight_decay >= 0,
              "a number, at least 0"),
        _must("batch_size", r.batch_size, _is_int(r.batch_size), "a positive int"),
        _must("epochs", r.epochs, _is_int(r.epochs), "a positive int"),
        _must("schedule", s, isinstance(s, Schedule), "a harness.Schedule"),
        _must("normalize", r.normalize, r.normalize is None or (
            isinstance(r.normalize, (tuple, list)) and len(r.normalize) == 2 and all(map(_is_number, r.normalize))
            and r.normalize[1] != 0), "None or a (mean, std) pair of numbers, std not 0"),
        _must("val_size", r.val_size, _is_number(r.val_size) and r.val_size >= 0,
              "a number of samples or a fraction < 1, at least 0"),
        _must("label_smoothing", r.label_smoothing, _is_number(r.label_smoothing) and 0 <= r.label_smoothing <= 1,
              "a number in [0, 1]"),
        _must("target_accuracy", r.target_accuracy, r.target_accuracy is None or (
            _is_number(r.target_accuracy) and 0 < r.target_accuracy <= 1), "None or a fraction in (0, 1]"),
        _must("augment", r.augment, r.augment in (None, "", *AUGMENTATIONS),
              f"None or one of {', '.join(AUGMENTATIONS)}"),
        _must("source", r.source, isinstance(r.source, str), "a str"),
    )
    if problem is None and isinstance(s, Schedule):
        problem = _first(
            _must("schedule.kind", s.kind, s.kind in SCHEDULE_KINDS, f"one of {', '.join(SCHEDULE_KINDS)}"),
            _must("schedule.step_size", s.step_size, _is_int(s.step_size), "a positive int"),
            _must("schedule.gamma", s.gamma, _is_number(s.gamma) and s.gamma > 0, "a positive number"),
            _must("schedule.milestones", s.milestones, isinstance(s.milestones, (tuple, list)) and all(
                isinstance(m, (tuple, list)) and len(m) == 2 and _is_int(m[0], 0) and _is_number(m[1]) and m[1] >= 0
                for m in s.milestones), "a tuple of (epoch, lr) pairs, lr at least 0"),
        )
    return f"recipe.{problem}" if problem else None


def spec_problem(spec: Any) -> str | None:
    """The first field of ``spec`` whose value does not fit its declared type, as ``field must be ..., not
    X``; None when every field fits. Types and ranges only: nothing is called, no lazy target imported."""
    name = _must("name", spec.name, isinstance(spec.name, str) and spec.name.strip() != "", "a non-empty str")
    if name is None and (spec.name != spec.name.strip() or "," in spec.name or "@" in spec.name):
        # --models a,b splits at commas and strips each name; a job's id is MODEL@DATASET
        name = (f"name must have no comma, no '@' and no space at either end (--models and job ids could not "
                f"name it), not {_short(spec.name)}")
    # None too: description=fn.__doc__ is a common idiom, and None where the function has no docstring
    description = _must("description", spec.description, spec.description is None or isinstance(spec.description, str),
                        "a str")
    if isinstance(spec, ModelSpec):
        rank_ok = _is_int(spec.input_rank)
        spatial = spec.spatial_shape
        return _first(
            name,
            _callable_problem("build", spec.build),
            description,
            _must("input_rank", spec.input_rank, rank_ok, "a positive int (1 for F features, 2 for CxL sequences, 3 for CxHxW images, 4 for CxDxHxW volumes)"),
            _must("input_channels", spec.input_channels, spec.input_channels is None or _is_int(spec.input_channels),
                  "None or a positive int"),
            _must("spatial_shape", spatial, spatial is None or _is_shape(spatial), "None or a tuple of positive ints"),
            None if not (rank_ok and _is_shape(spatial)) or len(spatial) == spec.input_rank - 1 else
            f"spatial_shape {_short(spatial)} has {len(spatial)} sizes, but input_rank {spec.input_rank} wants "
            f"{spec.input_rank - 1} (the sizes after the channels)",
            _must("accepts", spec.accepts, spec.accepts is None or callable(spec.accepts), "None or callable"),
            _recipe_problem(spec.recipe),
            None if not (rank_ok and isinstance(spec.recipe, Recipe) and spec.recipe.augment and spec.input_rank != 3)
            else f"recipe.augment {spec.recipe.augment!r} works on images (input_rank 3) only, not "
                 f"{_rank_kind(spec.input_rank)} (every job would fail "
                 "when it trains)",
            _must("reference", spec.reference, isinstance(spec.reference, Mapping), "a dict"),
            _reference_problem(spec.reference),
            _must("tags", spec.tags, _is_str_tuple(spec.tags), "a tuple of str"),
        )
    if isinstance(spec, DatasetSpec):
        return _first(
            name,
            _callable_problem("load", spec.load),
            description,
            _must("input_shape", spec.input_shape, spec.input_shape is None or _is_shape(spec.input_shape),
                  "None or a tuple of positive ints (channels first)"),
            _must("num_classes", spec.num_classes, spec.num_classes is None or _is_int(spec.num_classes),
                  "None or a positive int"),
            _must("tags", spec.tags, _is_str_tuple(spec.tags), "a tuple of str"),
        )
    if isinstance(spec, MetricSpec):
        return _first(
            name,
            _callable_problem("compute", spec.compute),
            _must("higher_is_better", spec.higher_is_better, isinstance(spec.higher_is_better, bool), "True or False"),
            _must("gate", spec.gate, isinstance(spec.gate, bool), "True or False"),
            description,
        )
    if isinstance(spec, TrackerSpec):
        return _first(
            name,
            _callable_problem("make", spec.make),
            _must("requires", spec.requires, _is_str_tuple(spec.requires), "a tuple of str (package names)"),
            _must("install", spec.install, isinstance(spec.install, str), "a str"),
            description,
        )
    return None


def call_problem(role: str, function: Callable[..., Any]) -> str | None:
    """Why the harness's call of ``function`` as a spec's ``role`` (build, load, compute) would fail, read
    from its signature; None when it fits or has no signature to read. A lazy target is imported first
    (an import that fails raises): for ``harness plugins --strict``, not for every command."""
    target = function.target if isinstance(function, lazy) else None
    where = f"{role} target {target}" if target else role
    if target is not None:
        function, wrong = function._lookup()
        if wrong is not None:
            return f"{where}: {wrong}"
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    call = CALLS[role]
    if isinstance(call, int):  # compute(logits, targets), make()
        try:
            signature.bind(*(None,) * call)
        except TypeError:
            takes = _parameters_text(function)
            wanted = "two positional arguments, logits and targets" if call == 2 else "no arguments"
            return f"{where} must take {wanted} (it takes {takes})"
        return None
    accepted = keyword_names(function)
    missing = [k for k in call if accepted is not None and k not in accepted]
    if not missing:
        return None
    if target is not None:  # lazy drops what its target does not name: wrong only if the call then cannot bind
        return _binding_problem(function, (), {k: None for k in call if k not in missing}, missing, target)
    return (f"{where} must take keyword argument{'s' if len(missing) > 1 else ''} {_and(missing)} "
            f"(it takes {_parameters_text(function)})")

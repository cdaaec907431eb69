"""The spec types plugins return from their hooks.

These are plain frozen dataclasses with no heavy imports, so that listing what
plugins registered never imports torch. ``ModelSpec.build`` and
``DatasetSpec.load`` are only called when a job needs them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

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


class lazy:
    """A callable named ``"package.module:function"``, imported on its first call.

    Plugin modules use it so that listing what they register never imports
    torch: ``ModelSpec("my-net", build=lazy("my_pkg.nets:my_net"))``. Keyword
    arguments the target does not accept are dropped (unless it takes
    ``**kwargs``), so a plain ``my_net(num_classes, input_shape)`` ignores the
    extra settings a sweep may pass.
    """

    def __init__(self, target: str):
        module, sep, name = target.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"lazy() wants 'package.module:function', got {target!r}")
        self.target = target
        self._function: Callable[..., Any] | None = None
        self._accepted: set[str] | None = None

    def _resolve(self) -> Callable[..., Any]:
        if self._function is None:
            module, _, name = self.target.partition(":")
            function = getattr(importlib.import_module(module), name)
            self._accepted = keyword_names(function)
            self._function = function
        return self._function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        function = self._resolve()
        if self._accepted is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._accepted}
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


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin offers.

    ``build(num_classes=..., input_shape=..., **kwargs)`` returns a
    ``torch.nn.Module`` mapping ``(N, *input_shape)`` float32 to ``(N,
    num_classes)`` logits. ``input_shape`` is channels first, without batch.

    Compatibility with a dataset is decided from ``input_rank`` (3 for images,
    4 for volumes), ``input_channels`` (``None``: any; otherwise the harness
    adapts 1 <-> 3 channels as the seeds do, grayscale duplicated to RGB) and
    ``spatial_shape`` (``None``: any size; otherwise exactly this size,
    e.g. ``(28, 28)`` for a network with a fixed fully connected head).
    ``accepts`` may refine that further.

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
            if {channels, self.input_channels} != {1, 3}:
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


@dataclass(frozen=True)
class MetricSpec:
    """A metric computed on the whole test split: ``compute(logits, targets) -> float``."""

    name: str
    compute: Callable[["torch.Tensor", "torch.Tensor"], float]
    higher_is_better: bool = True
    description: str = ""

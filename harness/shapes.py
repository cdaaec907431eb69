"""Which dimension of each graph input is the batch, and what size every other open one takes.

One rule for the inputs ``harness bench`` generates (:func:`harness.ort.input_feeds`), the FLOPs and
activation count (:mod:`harness.onnx_cost`) and the cold-start probe, so that they agree:

- an input's batch axis is the open dimension ``dims`` marks as the batch (``{"N": "batch"}``, from
  ``harness bench --batch-dim N``), else the first dimension named like a batch (``batch``,
  ``batch_size``, ``bs``...), else its first dimension when that is open (named or unnamed); with a
  marked batch, an input that lacks that dimension is not batched;
- an input whose first dimension is static is not batched while another input has an open batch (a
  bias, anchors or a config vector beside the images);
- when no input has an open batch, the graph fixes it: the first input's static first dimension (of an
  input of two or more dimensions: ``[256]`` is one sample's features), and the inputs that share it;
  with none such, or ``dims`` marking :data:`UNBATCHED` (``--batch-dim none``), no input is batched and
  the graph is run and counted per call;
- every other open dimension takes its size from ``dims`` by name (``{"h": 224}``) or as ``input[axis]``
  (``{"x[2]": 32}``: an unnamed one's only way; a named one's size by position goes to every input that
  shares the name); one given no size is 1 and reported as assumed.

A shape is a list of ``int`` (static), ``str`` (a named open dimension) or ``None`` (unnamed open), as
ONNX Runtime's ``NodeArg.shape`` gives it (0 and negative sizes count as open).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Sequence

Shape = Sequence["int | str | None"]


BATCH = "batch"
"""The value that marks a ``dims`` key as the batch dimension instead of giving it a size."""

NO_BATCH = "none"
"""``--batch-dim none``: no input has a batch; the graph is timed and counted per call."""

UNBATCHED = "-"
"""The ``dims`` key that :data:`NO_BATCH` becomes (``{"-": "batch"}``), as the stages pass ``dims`` on."""


def is_static(dim: int | str | None) -> bool:
    return isinstance(dim, int) and dim > 0


def is_batch_name(name: object) -> bool:
    """A dimension name that says it is the batch: ``batch``, ``batch_size``, ``Batch``, ``bs``, ``nbatch``."""
    if not isinstance(name, str):
        return False
    low = name.lower()
    return low.startswith("batch") or low in ("bs", "nbatch", "n_batch")


def dim_key(input_name: str, axis: int, dim: int | str | None) -> str:
    """How ``--dims`` names an open dimension: its name, or ``input[axis]`` when it has none."""
    return dim if isinstance(dim, str) and dim else f"{input_name}[{axis}]"


@dataclass
class InputPlan:
    """The batch axis of each input (None: not batched) and the batch the graph fixes (None: open)."""

    axes: dict[str, int | None]
    fixed_batch: int | None
    open_keys: list[str] = field(default_factory=list)  # every open dimension but the batch, as dim_key names it
    batch_keys: list[str] = field(default_factory=list)  # the open batch dimensions, as dim_key names them
    positions: dict[str, str] = field(default_factory=dict)  # "x[1]" -> "seq": a named open dimension by position

    def batch_hint(self, batch_named: bool, name_it: str) -> str:
        """When the rule took each input's first open dimension for the batch (none is named like a batch and
        the caller named none: ``batch_named``), a hint for the warning about dimensions set to 1 that a
        time-major input's batch is another, named with ``name_it`` (``--batch-dim``, ``batch_dim=``); else ""."""
        if batch_named or not self.batch_keys or any(is_batch_name(key) for key in self.batch_keys):
            return ""
        return (f" (the batch is taken to be the first dimension, {', '.join(self.batch_keys)}; if another is the "
                f"batch, as in a time-major input, name it with {name_it})")

    def named(self, dims: dict[str, Any]) -> dict[str, Any]:
        """``dims`` with each ``input[axis]`` key of a named open dimension given as its name, so that every
        input sharing the name gets the size (a key given both ways is the later one)."""
        return {self.positions.get(key, key): value for key, value in dims.items()}

    def shape(self, input_name: str, declared: Shape, batch_size: int, dims: dict[str, int]) -> list[int]:
        """The concrete shape of ``input_name`` at ``batch_size``; open dimensions from ``dims`` or 1."""
        axis = self.axes.get(input_name)
        out = []
        for i, dim in enumerate(declared):
            if i == axis:
                out.append(batch_size)
            elif is_static(dim):
                out.append(int(dim))  # type: ignore[arg-type]
            else:
                given = _given(input_name, i, dim, dims)
                out.append(1 if given is None else int(given))
        return out

    def assumed(self, shapes: dict[str, Shape], dims: dict[str, int]) -> list[str]:
        """The open dimensions, batch aside, that ``dims`` gives no size (``input[name]`` / ``input[axis]``)."""
        out = []
        for name, declared in shapes.items():
            for i, dim in enumerate(declared):
                if i != self.axes.get(name) and not is_static(dim) and _given(name, i, dim, dims) is None:
                    out.append(f"{name}[{dim if isinstance(dim, str) and dim else i}]")
        return out

    @property
    def batched(self) -> bool:
        """Whether any input has a batch axis (else the graph is run and counted per call)."""
        return any(axis is not None for axis in self.axes.values())

    def unset(self, dims: dict[str, int]) -> list[str]:
        """The open dimensions, batch aside, that ``dims`` gives no size (by name or by position), as ``dims``
        would name them."""
        given = self.named(dims)
        return [key for key in self.open_keys if key not in given]


def _given(input_name: str, axis: int, dim: int | str | None, dims: dict[str, Any]) -> int | None:
    """The size ``dims`` gives an open dimension: by :func:`dim_key`, or as ``input[axis]``; None if none
    (or if ``dims`` marks it as the batch)."""
    size = dims.get(dim_key(input_name, axis, dim), dims.get(f"{input_name}[{axis}]"))
    if size is None or size == BATCH:
        return None
    return operator.index(size)  # numpy ints from a parametrize too; a float or a string is a TypeError


def marked_batch(dims: dict[str, Any] | None) -> list[str]:
    """The ``dims`` keys marked as the batch dimension (:data:`BATCH`)."""
    return [key for key, value in (dims or {}).items() if value == BATCH]


def graph_shapes(graph: Any) -> dict[str, list[int | str | None]]:
    """The declared shapes of an ONNX ``GraphProto``'s inputs that are no initializer and have a shape."""
    initializers = {t.name for t in graph.initializer}
    shapes = {}
    for value in graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        if value.type.tensor_type.HasField("shape"):
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                                  else (d.dim_param if d.HasField("dim_param") and d.dim_param else None)
                                  for d in value.type.tensor_type.shape.dim]
    return shapes


def plan_inputs(shapes: dict[str, Shape], dims: dict[str, Any] | None = None) -> InputPlan:
    """The batch axes of ``shapes`` (input name -> declared shape, in the graph's order); see the module.
    Of ``dims``, only a key marked as the batch (``{"N": "batch"}``) counts here."""
    marked = marked_batch(dims)
    axes: dict[str, int | None] = {}
    if UNBATCHED in marked:  # --batch-dim none: every open dimension is one to size
        keys = [dim_key(name, i, dim) for name, declared in shapes.items() for i, dim in enumerate(declared)
                if not is_static(dim)]
        return InputPlan({name: None for name in shapes}, None, list(dict.fromkeys(keys)), [])
    for name, declared in shapes.items():
        named = [i for i, dim in enumerate(declared) if is_batch_name(dim)]
        if marked:
            chosen = [i for i, dim in enumerate(declared) if not is_static(dim)
                      and (dim_key(name, i, dim) in marked or f"{name}[{i}]" in marked)]
            axes[name] = chosen[0] if chosen else None
        elif named:
            axes[name] = named[0]
        elif declared and not is_static(declared[0]):
            axes[name] = 0
        else:
            axes[name] = None
    fixed = None
    if not marked and all(axis is None for axis in axes.values()):
        # an input of one dimension ([256] features) is a sample, not a batch of scalars
        first = next((declared[0] for declared in shapes.values() if len(declared) > 1 and is_static(declared[0])),
                     None)
        if first is not None:
            fixed = int(first)  # type: ignore[arg-type]
            axes = {name: 0 if len(declared) > 1 and declared[0] == first else None
                    for name, declared in shapes.items()}
    open_keys, batch_keys, positions = [], [], {}
    for name, declared in shapes.items():
        for i, dim in enumerate(declared):
            if is_static(dim):
                continue
            (batch_keys if i == axes[name] else open_keys).append(dim_key(name, i, dim))
            if isinstance(dim, str) and dim:
                positions[f"{name}[{i}]"] = dim
    return InputPlan(axes, fixed, list(dict.fromkeys(open_keys)), list(dict.fromkeys(batch_keys)), positions)


def dims_problem(plan: InputPlan, dims: dict[str, Any], batch_named: bool = True) -> str | None:
    """Why ``dims`` does not fit the graph (a name no open dimension has, or the batch's, given a size;
    a batch mark on no open dimension, or on two), else None. ``batch_named``: whether the caller named the
    batch (``--batch-dim``); if not, a size given to the batch the default rule chose says how to name another."""
    marked = marked_batch(dims)
    if len(marked) > 1:
        return f"one batch dimension, not {len(marked)} ({', '.join(marked)})"
    for key in dims:
        if key in marked:
            if key == UNBATCHED:
                continue
            if not plan.batched:
                names = ", ".join(plan.batch_keys + plan.open_keys) or "none"
                return f"no open input dimension is called {key!r} to be the batch (open: {names})"
            continue
        size = dims[key]
        if isinstance(size, bool) or not isinstance(size, int) and not hasattr(size, "__index__") or size < 1:
            return f"{key!r} needs a whole size of at least 1, not {size!r}"
        if key in plan.batch_keys and key not in plan.open_keys:
            return (f"{key!r} is the batch dimension: its size is the batch size (--batch-sizes, batch_size=)"
                    + ("" if batch_named else "; if another dimension is the batch (a time-major input), name it "
                                              "(--batch-dim, batch_dim=)"))
        if key not in plan.open_keys:
            names = ", ".join(plan.open_keys) or "none"
            return f"no open input dimension is called {key!r} (open, besides the batch: {names})"
    return None


def plan_with(shapes: dict[str, Shape], dims: dict[str, Any],
              batch_dim: str | None = None) -> tuple[InputPlan, dict[str, Any], tuple[str, str] | None]:
    """The plan of ``shapes`` with ``batch_dim`` marked as the batch, the ``dims`` the later stages are given
    (``dims`` plus that mark), and what does not fit: ``("dims", reason)`` or ``("batch_dim", reason)``,
    else None. ``harness bench`` and ``onnx_inference_call`` check their arguments with it."""
    if batch_dim is not None and batch_dim.strip().lower() == NO_BATCH:
        batch_dim = UNBATCHED
    marked = {**dims, batch_dim: BATCH} if batch_dim else dict(dims)
    plan = plan_inputs(shapes, marked)
    twice = sorted({plan.positions[key] for key in dims if plan.positions.get(key) in dims})
    if twice:
        return plan, marked, ("dims", f"{twice[0]!r} is given twice, by name and by position")
    dims, marked = plan.named(dims), plan.named(marked)  # x[1]=20 sizes the 'seq' of every input that has it
    for what, given in (("dims", dims), ("batch_dim", marked)):
        problem = dims_problem(plan, given, batch_named=batch_dim is not None)
        if problem:
            return plan, marked, (what, problem)
    return plan, marked, None


def checked_dims(graph: Any, dims: dict[str, Any] | None, batch_dim: str | None = None) -> dict[str, Any]:
    """``dims`` with ``batch_dim`` marked, for the stages that take a graph's ``dims``; a ``ValueError`` saying
    what does not fit the ONNX ``graph`` (a name no open dimension has, the batch given a size): the Python
    API's :func:`~harness.onnx_cost.onnx_cost` and :func:`~harness.coldstart.measure_cold_start` check
    their arguments as ``harness bench`` does, so that a typo is not counted at 1 in silence."""
    _, marked, problem = plan_with(graph_shapes(graph), dict(dims or {}), batch_dim)
    if problem:
        raise ValueError(f"{problem[0]}: {problem[1]}")
    return marked

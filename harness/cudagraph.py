"""CUDA-graph training steps: forward, loss, backward and the optimizer update
captured once and replayed for every later batch.

For the small models this harness trains, an eager training step is a few
hundred kernel launches of microseconds each: the GPU waits on Python. A CUDA
graph replays the whole step with one launch. What it needs, and how this
module provides it (following PyTorch's "whole network capture" recipe):

- static shapes: every batch is copied into a fixed input buffer, one per
  batch size, so no sample is dropped; the epoch's trailing partial batch
  gets a graph of its own once it has been seen eagerly, when enough epochs
  remain for its replays to repay the capture (:func:`capture_due`), and
  otherwise trains eagerly;
- static memory: gradients, optimizer state and outputs live in the graph's
  private pool and are refilled on each replay;
- no host synchronisation inside the step: the learning rate (and SGD's
  momentum, which one-cycle schedules change every step) live in device
  tensors that are refilled from the schedule's Python floats before each
  replay. SGD's update is done here with ``torch._foreach_*`` ops on those
  tensors (torch's SGD turns a tensor lr into a Python scalar); Adam and AdamW
  use torch's ``capturable=True`` implementation;
- warm-up on a side stream before capture: the first batches of each shape
  are trained eagerly with the same step function (they are real training
  steps, not extra ones), so cuDNN autotuning and lazily created state happen
  before the capture.

fp16 autocast needs a GradScaler, which synchronises with the host every
step, and one-cycle schedules cycle Adam's beta1, which torch bakes into the
captured kernels; both fall back to the eager loop with the reason recorded.
So does a model whose forward pass changes a plain Python attribute (a step
counter, a growing list) in its warm-up steps: a replay would run the step
with that value frozen at capture, training wrongly without an error. A
change only in its very first step (setting itself up) is allowed; one every
hundred steps is not seen.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable

from harness.specs import Recipe

if TYPE_CHECKING:  # pragma: no cover
    import torch

WARMUP_STEPS = 3
# A later batch shape (the epoch's partial last batch, one step an epoch) is captured only when at least this
# many of its steps remain to replay, the capturing one included. A capture costs several eager steps' time
# (a synchronisation, emptying the allocator's cache, recording the step, instantiating the graph) while a
# replay saves less than one, so a shape with a step or two left loses time to its capture: mnist-fast's
# 2 epochs would capture its partial batch in the run's very last step, inside the timed epoch, for one
# replay. 8 is a rough break-even, not a measurement: the 20-epoch recipes (19 replays) still capture it.
MIN_LATER_REPLAYS = 8
_SIDE_STREAMS: dict[Any, Any] = {}  # device -> the one side stream every uncaptured CUDA step runs on


def _side_stream(device: "torch.device") -> "torch.cuda.Stream":
    """One stream per device for the whole process: cuBLAS keeps a workspace for each stream it meets
    until the process ends, so a new stream per job (or per step) would add one every time."""
    import torch

    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device=device)
    return _SIDE_STREAMS[device]


def unsupported_reason(recipe: Recipe, device: str, amp: str | None, compile: bool, steps: int) -> str | None:
    """Why the captured step cannot be used for this job, or None when it can.

    ``steps`` is the number of full batches in the whole run.
    """
    if not device.startswith("cuda"):
        return "CUDA graphs need a CUDA device"
    if compile:
        return "--compile and --cuda-graphs are exclusive (use one)"
    if amp == "fp16":
        return "fp16 needs a GradScaler, which synchronises with the host each step (use --amp bf16)"
    optimizer = recipe.optimizer.lower()
    if optimizer not in ("sgd", "adam", "adamw"):
        return f"no capturable update for optimizer {recipe.optimizer!r}"
    if optimizer != "sgd" and recipe.schedule.kind == "onecycle":
        return "one-cycle cycles Adam's beta1, which a captured step cannot follow"
    if steps <= WARMUP_STEPS:
        return f"only {steps} full batches: nothing left to replay after {WARMUP_STEPS} warm-up steps"
    return None


def capture_due(calls: int, *, first_shape: bool, epochs: int) -> bool:
    """Whether a batch shape's ``calls``-th step (this one counted) is captured and replayed, when
    capture is on and nothing has ruled it out.

    The first shape (the full batch) is captured after ``WARMUP_STEPS`` eager steps
    (:func:`unsupported_reason` has checked that steps remain to replay). A later shape is the epoch's
    partial last batch, met once an epoch: one eager step does its own cuDNN autotuning, and it is
    captured only while ``MIN_LATER_REPLAYS`` of its steps remain (``epochs - calls + 1``), else it
    trains eagerly to the end (deciding at its second step: later, fewer remain).
    """
    if first_shape:
        return calls > WARMUP_STEPS
    return calls > 1 and epochs - calls + 1 >= MIN_LATER_REPLAYS


def sgd_update_(
    params: list["torch.Tensor"],
    grads: list["torch.Tensor"],
    momentum_buffers: list["torch.Tensor"],
    lr: "torch.Tensor",
    momentum: "torch.Tensor",
    *,
    nesterov: bool,
    weight_decay: float,
) -> None:
    """One SGD step in place, with ``lr`` and ``momentum`` as 0-dim tensors on the parameters' device.

    The same update as ``torch.optim.SGD`` with dampening 0 (whose first step
    sets the buffer to the gradient, which is what a zero buffer gives here),
    and no host synchronisation, so it can be captured in a CUDA graph.
    """
    import torch

    with torch.no_grad():
        if weight_decay:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        torch._foreach_mul_(momentum_buffers, momentum)
        torch._foreach_add_(momentum_buffers, grads)
        if nesterov:
            direction = torch._foreach_add(grads, torch._foreach_mul(momentum_buffers, momentum))
        else:
            direction = momentum_buffers
        torch._foreach_add_(params, torch._foreach_mul(direction, lr), alpha=-1.0)


_PLAIN = (bool, int, float, str, type(None))


def python_state(model: "torch.nn.Module") -> dict[str, Any]:
    """Each module's plain Python attributes: numbers, strings, flags and tuples of them by value, lists,
    dicts and sets by length. A forward pass that changes one (a step counter, a list of past outputs)
    does something a CUDA graph does not record: replays would run the captured step as if frozen at
    that value, and train wrongly without an error. Tensors are left out: a replay updates them."""
    state: dict[str, Any] = {}
    for prefix, module in model.named_modules():
        for key, value in vars(module).items():
            if key.startswith("_") or key == "training":
                continue
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, _PLAIN) or (isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)):
                state[name] = value
            elif isinstance(value, (list, dict, set)):
                state[name] = f"{type(value).__name__} of {len(value)}"
    return state


def python_state_change(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """The first attribute that differs, said as ``name: old -> new``; None when none does."""
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name, "unset"), after.get(name, "unset")
        if old != new:
            return f"{name}: {old!r} -> {new!r}"
    return None


class _Shape:
    """The fixed buffers, and once captured the graph, of one batch size."""

    def __init__(self, example_x: "torch.Tensor", example_y: "torch.Tensor", channels_last: bool) -> None:
        import torch

        memory_format = torch.channels_last if channels_last and example_x.dim() == 4 else torch.contiguous_format
        self.x = torch.empty_like(example_x, memory_format=memory_format)
        self.y = torch.empty_like(example_y)
        self.calls = 0
        self.graph: Any = None
        self.loss: "torch.Tensor | None" = None
        self.logits: "torch.Tensor | None" = None


class StaticTrainStep:
    """A training step over fixed buffers; captured as CUDA graphs when ``capture`` is true.

    ``schedule_optimizer`` is the ordinary torch optimizer whose param groups
    the recipe's schedule writes (it is never stepped); this class reads its
    current ``lr`` (and ``momentum``) before each step. With ``capture=False``
    the same step runs eagerly (used on CPU by the tests, and as the fallback
    when a capture fails). One graph is kept per batch size captured (the full
    batch, and the epoch's last partial one when ``epochs`` leave it enough
    replays: :func:`capture_due`).
    """

    def __init__(
        self,
        model: "torch.nn.Module",
        recipe: Recipe,
        schedule_optimizer: "torch.optim.Optimizer",
        *,
        amp_dtype: "torch.dtype | None",
        channels_last: bool,
        capture: bool,
        epochs: int,
    ) -> None:
        import torch

        self.model = model
        self.recipe = recipe
        self.schedule_optimizer = schedule_optimizer
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self.amp_dtype = amp_dtype
        self.channels_last = channels_last
        self.capture = capture
        self.epochs = epochs  # the run's, which says how many replays a partial-batch graph would get
        self.fallback_reason: str | None = None
        self.shapes: dict[int, _Shape] = {}
        self.replays = 0
        group = schedule_optimizer.param_groups[0]
        # The parameters' dtype: CUDA's single-kernel foreach ops need the scalar tensor to match
        # (float32 training); a float64 model gets the schedule's Python floats exactly.
        hyper = {"device": self.device, "dtype": self.params[0].dtype if self.params else torch.float32}
        self.lr = torch.tensor(float(group["lr"]), **hyper)
        self.momentum = torch.tensor(float(group.get("momentum", 0.0)), **hyper)
        optimizer_name = recipe.optimizer.lower()
        self.momentum_buffers: list[torch.Tensor] = []
        self.update_optimizer: torch.optim.Optimizer | None = None
        if optimizer_name in ("adam", "adamw"):
            cls = torch.optim.Adam if optimizer_name == "adam" else torch.optim.AdamW
            # capturable=True keeps the step count on the device (no host sync);
            # torch allows it on accelerators only, so the uncaptured CPU path uses the plain loop.
            on_accelerator = self.device.type != "cpu"
            self.update_optimizer = cls(
                self.params, lr=self.lr, weight_decay=recipe.weight_decay,
                foreach=on_accelerator, capturable=on_accelerator,
            )
        else:
            self.momentum_buffers = [torch.zeros_like(p) for p in self.params]

    # -- the step itself -------------------------------------------------
    def _body(self, shape: _Shape) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch
        import torch.nn.functional as F

        use_amp = self.amp_dtype is not None
        # cache_enabled=False: autocast's weight cache does not survive graph replays.
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                            enabled=use_amp, cache_enabled=False):
            logits = self.model(shape.x)
            loss = F.cross_entropy(logits.float(), shape.y, label_smoothing=self.recipe.label_smoothing)
        loss.backward()
        if self.update_optimizer is not None:
            with warnings.catch_warnings():
                # capturable=True warns when stepped outside a capture (warm-up, CPU tests).
                warnings.filterwarnings("ignore", message=".*capturable=True.*")
                self.update_optimizer.step()
        else:
            # Parameters that got no gradient (unused branches) are left alone, as torch's SGD does.
            live = [i for i, p in enumerate(self.params) if p.grad is not None]
            if live:
                sgd_update_(
                    [self.params[i] for i in live], [self.params[i].grad for i in live],
                    [self.momentum_buffers[i] for i in live], self.lr, self.momentum,
                    nesterov=self.recipe.nesterov, weight_decay=self.recipe.weight_decay,
                )
        return loss, logits

    def _zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _refresh_hyperparameters(self) -> None:
        group = self.schedule_optimizer.param_groups[0]
        if self.update_optimizer is None:
            self.lr.fill_(float(group["lr"]))
            self.momentum.fill_(float(group.get("momentum", 0.0)))
        else:
            for update_group in self.update_optimizer.param_groups:
                update_group["lr"].fill_(float(group["lr"]))

    # -- driving it ------------------------------------------------------
    def __call__(self, xb: "torch.Tensor", yb: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """Train on one batch; returns (loss, logits), valid until the next call with a batch of this size."""
        shape = self.shapes.get(xb.shape[0])
        if shape is None:
            shape = self.shapes[xb.shape[0]] = _Shape(xb, yb, self.channels_last)
        shape.x.copy_(xb)
        shape.y.copy_(yb)
        self._refresh_hyperparameters()
        shape.calls += 1
        if shape.graph is not None:
            shape.graph.replay()
            self.replays += 1
            assert shape.loss is not None and shape.logits is not None
            return shape.loss, shape.logits
        first_shape = shape is next(iter(self.shapes.values()))
        if (self.capture and self.fallback_reason is None
                and capture_due(shape.calls, first_shape=first_shape, epochs=self.epochs)):
            return self._capture_and_replay(shape)
        return self._eager(shape)

    def _eager(self, shape: _Shape) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        capturing = self.capture and self.fallback_reason is None
        # While a capture is still ahead, each eager step but the very first (where a model may set itself
        # up once) checks that the model keeps its Python state: a graph would replay the step as captured,
        # with the value frozen (see python_state).
        first_step = sum(other.calls for other in self.shapes.values()) == 1  # this call is counted already
        before = python_state(self.model) if capturing and not first_step else None
        if self.device.type == "cuda" and capturing:
            # Warm-up runs on a side stream, as capture requires (PyTorch CUDA-graph notes): always the
            # same one, so the parameters' gradient accumulators are never met from two streams.
            stream = _side_stream(self.device)
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self._zero_grad()
                loss, logits = self._body(shape)
            torch.cuda.current_stream().wait_stream(stream)
        else:
            self._zero_grad()
            loss, logits = self._body(shape)
        if before is not None:
            change = python_state_change(before, python_state(self.model))
            if change is not None:
                self._fall_back(f"the model changes a Python attribute in its training steps ({change}), which "
                                f"a CUDA graph would not repeat")
        return loss.detach(), logits.detach()

    def _fall_back(self, reason: str) -> None:
        """Train eagerly from here on, every batch size: one training loop, not a mix."""
        import torch

        self.fallback_reason = reason
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._drop_graphs()

    def _drop_graphs(self) -> None:
        for shape in self.shapes.values():
            shape.graph = shape.loss = shape.logits = None

    def _capture_and_replay(self, shape: _Shape) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        graph = torch.cuda.CUDAGraph()
        # torch.cuda.graph's exit ends the capture before it puts the stream back, so when the capture
        # fails (capture_end raises) its capture stream would stay this thread's current stream for the
        # rest of the process: every later step, job and latency row would run on it.
        stream_before = torch.cuda.current_stream(self.device)
        # Fresh gradient tensors in this graph's own memory pool; backward assigns them, so
        # each graph's replay leaves complete gradients in its own tensors.
        self._zero_grad()
        try:
            with torch.cuda.graph(graph):
                loss, logits = self._body(shape)
        except RuntimeError as exc:  # a capture failure (torch raises RuntimeError subclasses): train eagerly
            from harness.manager import one_line

            torch.cuda.set_stream(stream_before)
            self._fall_back(f"capture failed: {one_line(exc)}")  # which synchronises the device
            return self._eager(shape)
        except BaseException:
            # Anything else (--job-timeout's JobTimeout, a model's own bug) propagates as in the eager loop,
            # with the stream put back for whatever the process does next.
            torch.cuda.set_stream(stream_before)
            raise
        # Detached: a kept autograd graph would keep the parameters' gradient accumulators alive from
        # the capture stream into a later step on another stream, and torch warns of the mismatch
        # ("The AccumulateGrad node's stream does not match ...", seen on an H200 before this).
        shape.graph, shape.loss, shape.logits = graph, loss.detach(), logits.detach()
        graph.replay()  # capture records the step without running it
        self.replays += 1
        return shape.loss, shape.logits

    def release(self) -> None:
        """Drop the graphs, their outputs and the gradients made in their memory pools: once training is
        over, so each graph's private pool can go back to the allocator (on an H200, each graphed job of a
        five-seed sweep peaked 256 MiB higher than the one before; eager jobs did not)."""
        self._drop_graphs()
        self._zero_grad()

    def describe(self) -> dict[str, Any]:
        """What ran, for the job's train block."""
        captured = sorted(size for size, shape in self.shapes.items() if shape.graph is not None)
        reason = None
        if not captured:
            reason = self.fallback_reason or ("capture not requested" if not self.capture else "never reached capture")
        return {
            "used": bool(captured),
            "reason": reason,
            "graphs": {str(size): self.shapes[size].calls for size in captured},
            "replayed_steps": self.replays,
            "eager_steps": sum(shape.calls for shape in self.shapes.values()) - self.replays,
        }


def run_with_warnings_suppressed(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` with torch's 'scheduler stepped before optimizer' warning off.

    In graph mode the schedule's optimizer only holds the hyper-parameters and
    is never stepped itself, so the warning would be wrong. torch checks only
    on a scheduler's first step, so that is the only call that needs this.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)`")
        return fn()

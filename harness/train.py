"""Stage: train a model from its recipe, and evaluate it in PyTorch.

Data stays in tensors on the training device and is shuffled by index each
epoch (no per-sample Python, no DataLoader). The model is wrapped in an
:class:`InputAdapter` that adapts channels (grayscale duplicated to RGB, as
the seeds do) and applies the recipe's normalisation, so the exported ONNX
model takes the dataset's raw [0, 1] inputs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from harness import rss
from harness.errors import StageError
from harness.specs import Recipe

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    import torch

OPTIMIZERS = ("sgd", "adam", "adamw")
AUGMENTATIONS = ("rotate7",)


def augment_batch(x: "torch.Tensor", kind: str, generator: "torch.Generator") -> "torch.Tensor":
    """A randomly augmented copy of an image batch ``(N, C, H, W)``, on its own device.

    ``rotate7``: each image rotated about its centre by an angle drawn
    uniformly from [-7, 7] degrees, zero fill (torchvision's
    ``RandomRotation((-7, 7), fill=0)``, done for the whole batch at once).
    """
    import torch
    import torch.nn.functional as F

    if kind != "rotate7":
        raise ValueError(f"unknown augmentation {kind!r}; known: {', '.join(AUGMENTATIONS)}")
    if x.dim() != 4:
        raise ValueError("rotate7 augments 2D images (N, C, H, W) only")
    # Drawn with the generator's own device: a CUDA generator keeps this free of host syncs.
    angles = (torch.rand(x.shape[0], generator=generator, device=generator.device) * 2 - 1) * (7 * math.pi / 180)
    cos, sin = angles.cos(), angles.sin()
    zeros = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from harness.errors import HarnessError

        raise HarnessError("--device cuda was asked for but torch sees no CUDA device")
    return device


CUDA_WARMUP_STEPS = 2


def resolve_warmup_steps(requested: int | None, device: str) -> int:
    """Untimed training steps on a copy of the model before the clock starts: ``requested``, or when
    None (automatic) ``CUDA_WARMUP_STEPS`` on CUDA and none elsewhere.

    On a GPU the first steps of a process pay once for lazy kernel loading, cuBLAS and cuDNN handles
    and cuDNN's autotuning of each new shape: measured on an H200, the first of five identical
    mnist-fast jobs took 4.85 s to train against 1.27-1.68 s for the others. Without a warm-up, a job's
    training time would depend on its place in the run.
    """
    if requested is not None:
        return max(0, int(requested))
    return CUDA_WARMUP_STEPS if device.startswith("cuda") else 0


def warm_up(
    model: "torch.nn.Module",
    x: "torch.Tensor",
    y: "torch.Tensor",
    recipe: Recipe,
    steps: int,
    *,
    batch_size: int,
    amp_dtype: "torch.dtype | None",
    channels_last: bool,
) -> float | None:
    """Train a throwaway copy of ``model`` for ``steps`` steps at each batch size an epoch will use
    (the full batch, and the last partial one), so one-time costs are paid before the training clock.

    ``model``, its optimizer-to-be and every random-number generator are left exactly as they were.
    Returns the seconds it took, or None when the model cannot be copied (then nothing ran).
    """
    import copy

    import torch

    if steps <= 0 or x.shape[0] == 0:
        return None
    start = time.perf_counter()
    try:
        shadow = copy.deepcopy(model)
    except Exception as exc:  # a module holding something deepcopy cannot copy: train without a warm-up
        log.debug("no warm-up: the model cannot be copied (%s)", exc)
        return None
    device = x.device
    on_cuda = device.type == "cuda"
    sizes = [min(batch_size, x.shape[0])]
    if x.shape[0] % sizes[0]:
        sizes.append(x.shape[0] % sizes[0])
    optimizer = make_optimizer(recipe, shadow.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    generator = torch.Generator(device=device).manual_seed(0)  # augmentation's own, not the job's
    cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] if on_cuda else []
    shadow.train()
    with torch.random.fork_rng(devices=cuda_devices):  # dropout draws from the global generators
        for size in sizes:
            for _ in range(steps):
                xb, yb = x[:size], y[:size]
                if recipe.augment:
                    xb = augment_batch(xb, recipe.augment, generator)
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                eager_train_step(shadow, optimizer, scaler, xb, yb, recipe, amp_dtype)
        if on_cuda:
            torch.cuda.synchronize(device)
    del shadow, optimizer
    return time.perf_counter() - start


def eager_train_step(
    forward: Callable[["torch.Tensor"], "torch.Tensor"],
    optimizer: "torch.optim.Optimizer",
    scaler: "torch.amp.GradScaler",
    xb: "torch.Tensor",
    yb: "torch.Tensor",
    recipe: Recipe,
    amp_dtype: "torch.dtype | None",
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """One ordinary training step: forward under autocast when ``amp_dtype`` is set, cross-entropy
    with the recipe's label smoothing, backward through ``scaler`` (fp16's; a no-op otherwise) and
    the optimizer's update. Returns (loss, logits)."""
    import torch
    import torch.nn.functional as F

    with torch.autocast(device_type=xb.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        logits = forward(xb)
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=recipe.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, logits


def resolve_channels_last(requested: bool | None, device: str) -> bool:
    """Whether to train 2D models in channels-last memory format: ``requested``, or when None (automatic)
    on the CPU only, the one device it has been measured on.

    Measured on a 2-core x86 CPU (oneDNN) with ``benchmarks/train_ab.py`` (one epoch of 1,024
    images per model, best of 2 alternating rounds, run twice): a median 1.19x faster over the 16
    built-in 2D models, up to 1.56x; the MLP (no convolution) and the rough CNN (dominated by its dense
    layers) gain nothing (0.96-1.00x, noise). A whole epoch of real MNIST: 1.88x for the ultra-light
    CNN, 1.68x for mnist-fast. On CUDA (or any other accelerator) it is not measured yet, so it stays off.
    """
    if requested is not None:
        return bool(requested)
    return device.split(":")[0] == "cpu"


def resolve_amp(requested: str | None, device: str) -> str | None:
    """The autocast dtype that training on ``device`` really uses for ``--amp requested``, or None.

    CUDA takes bf16 and fp16. The CPU takes bf16 only: torch's CPU autocast runs the convolutions and
    matrix products in bfloat16 through oneDNN (the weights, the optimizer and the loss stay float32),
    while float16 there has no fast kernels on most CPUs. Measured on this project's 2-core AMD EPYC
    (AVX512-BF16) with ``benchmarks/train_ab.py --option bf16`` (one epoch of 1,024 images, best of 2
    alternating rounds): a median 1.37x faster over the 16 built-in 2D models, up to 2.16x (mnist-fast),
    0.87-1.06x for the small-batch 003 models; the README's training-speed section has the rest. On a
    CPU without native bfloat16 (no AVX512-BF16 or AMX) oneDNN emulates it, which can be slower than
    float32, so it is a choice, never a default.
    """
    if requested not in ("bf16", "fp16"):
        return None
    kind = device.split(":")[0]
    if kind == "cuda" or (kind == "cpu" and requested == "bf16"):
        return requested
    return None


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool | None:
    """Whether this x86 CPU computes bfloat16 natively (AVX512-BF16 or AMX; oneDNN emulates it otherwise);
    None on other architectures (ARM's bf16 extensions are not probed here)."""
    import platform

    import torch

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


_warned_bf16 = False  # the emulated-bf16 warning, once per process rather than per job


def amp_not_applied_reason(requested: str, device: str) -> str:
    """Why ``--amp requested`` did not apply on ``device`` (the report's wording)."""
    if device.split(":")[0] == "cpu":
        if requested == "bf16":  # a run recorded before bf16 autocast ran on the CPU
            return "bf16 not applied (recorded by a harness that ran autocast on CUDA only)"
        return f"{requested} not applied (on the CPU only bf16 autocast runs)"
    return f"{requested} not applied (autocast runs on CUDA and, for bf16, the CPU)"


def input_adapter(model: "torch.nn.Module", data_shape: Sequence[int], model_shape: Sequence[int],
                  normalize: tuple[float, float] | None) -> "torch.nn.Module":
    """Wrap ``model`` so it takes inputs of ``data_shape``; see :class:`InputAdapter`."""
    from harness._nets import InputAdapter

    return InputAdapter(model, int(data_shape[0]), int(model_shape[0]), normalize)


def count_parameters(model: "torch.nn.Module") -> int:
    """Number of trainable and frozen parameters (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


FLOPS_COUNTED = ("convolutions, matrix products, attention and recurrent layers (torch.utils.flop_counter; "
                 "2 per multiply-add)")


def _recurrent_flops(steps: Any, matrices: Sequence[Any]) -> int:
    """2 FLOPs per multiply-add of a recurrent layer: each weight matrix (``gates*hidden x input``,
    ``gates*hidden x hidden``, an LSTM's projection) multiplies one vector per time step and sample.
    ``steps``: the input's shape, ``[seq, batch, features]`` (either order) or a packed
    ``[steps, features]``."""
    rows = math.prod(steps[:2]) if len(steps) == 3 else steps[0]
    return 2 * rows * sum(math.prod(shape) for shape in matrices if shape is not None and len(shape) == 2)


def _mkldnn_rnn_layer_flops(input: Any, weight0: Any, weight1: Any, *args: Any, **kwargs: Any) -> int:
    """``aten.mkldnn_rnn_layer``: one layer and direction of an ``nn.LSTM`` on the CPU (oneDNN), which
    ``torch.utils.flop_counter`` has no formula for (it counted an LSTM as 0)."""
    return _recurrent_flops(input, [weight0, weight1])


def _fused_rnn_flops(input: Any, weight: Any, *args: Any, **kwargs: Any) -> int:
    """``aten._cudnn_rnn`` / ``aten.miopen_rnn``: every layer and direction of an LSTM, GRU or RNN in one
    call (CUDA, ROCm); ``weight`` lists each one's matrices and biases."""
    return _recurrent_flops(input, weight)


def _lstm_mps_flops(input: Any, hx: Any, params: Any, *args: Any, **kwargs: Any) -> int:
    """``aten._lstm_mps``: an ``nn.LSTM`` on Apple's GPU; ``params`` as ``weight`` above."""
    return _recurrent_flops(input, params)


def recurrent_flop_formulas() -> dict[Any, Any]:
    """FLOP formulas for the fused recurrent kernels an ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` dispatches to,
    for ``FlopCounterMode(custom_mapping=...)``. It has no formula for a CPU LSTM's kernel
    (``aten.mkldnn_rnn_layer``, which does not decompose: an LSTM counted 0) nor cuDNN's, which runs
    every recurrent layer on CUDA (``aten._cudnn_rnn``); a GRU or RNN on the CPU, and an LSTM where oneDNN
    is off or with ``proj_size``, run as matrix products it counts already. Kernels this torch lacks are
    left out."""
    import torch

    formulas = {"mkldnn_rnn_layer": _mkldnn_rnn_layer_flops, "_cudnn_rnn": _fused_rnn_flops,
                "miopen_rnn": _fused_rnn_flops, "_lstm_mps": _lstm_mps_flops}
    found = {}
    for name, formula in formulas.items():
        packet = getattr(torch.ops.aten, name, None)  # an AttributeError where this build lacks it
        if packet is not None:
            found[packet] = formula
    return found


def count_flops(model: "torch.nn.Module", example: "torch.Tensor") -> int | None:
    """Floating-point operations of one eval-mode forward pass, per sample.

    Counted as :data:`FLOPS_COUNTED` says: convolutions, matrix products, attention and recurrent layers
    (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``: the matrix products of their gates at every step, see
    :func:`recurrent_flop_formulas`), two operations per multiply-add (so MACs are half); element-wise
    work, normalisation, pooling and activations are not counted. These dominate the cost of the
    networks here and are what papers quote as a model's FLOPs. ``example`` is a batch of real inputs;
    the count is divided by its size. The random state and the model's train/eval mode are restored.
    None when the batch is empty or counting fails (the count is a figure, not a check: a model it
    cannot trace still trains).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if len(example) == 0:
        return None
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), eval_mode(model):
            with FlopCounterMode(display=False, custom_mapping=recurrent_flop_formulas()) as counter:
                model(example)
        total = int(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - see the docstring
        log.debug("counting FLOPs failed", exc_info=True)
        return None
    return (total + len(example) // 2) // len(example)


@contextlib.contextmanager
def eval_mode(model: "torch.nn.Module") -> Iterator[None]:
    """``model.eval()`` for the block, then every submodule back in its own mode (``model.train(flag)``
    would also switch a submodule a plugin keeps in eval mode, such as a frozen batch norm)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


_warned_view: set[str] = set()


def channels_last_works(model: "torch.nn.Module", example: "torch.Tensor", label: str = "the model") -> bool:
    """Whether ``model`` (already moved to channels-last) runs on channels-last inputs; if not, it is moved
    back to the default format with a warning, and False returned. A model that flattens with ``.view``
    (``x.view(x.size(0), -1)``) fails on a channels-last tensor, which ``.reshape`` or ``flatten`` handle;
    the same model trains in the default format. Any other failure is left for training to report."""
    import torch

    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), eval_mode(model):
            model(example.contiguous(memory_format=torch.channels_last))
        return True
    except RuntimeError as exc:
        if "view size is not compatible" not in str(exc):
            return True  # not the memory format's doing: training says what it is
    model.to(memory_format=torch.contiguous_format)
    if label not in _warned_view:  # once per model, not once per job of a sweep
        _warned_view.add(label)
        log.warning("%s: its .view() cannot read channels-last tensors, so it trains in the default memory "
                    "format (slower on the CPU); .reshape() or .flatten() in the model lift this "
                    "(--no-channels-last silences this warning)", label)
    return False


@dataclass
class TrainOptions:
    device: str = "cpu"
    seed: int = 0
    amp: str | None = None  # None, "bf16" (CUDA or CPU autocast) or "fp16" (CUDA only); see resolve_amp
    channels_last: bool = False
    compile: bool = False  # torch.compile the training forward (the exported module stays eager)
    cuda_graphs: bool = False  # capture the whole step as a CUDA graph (see harness.cudagraph)
    warmup_steps: int | None = None  # untimed steps on a copy first; None: automatic (resolve_warmup_steps)
    static_step: bool = False  # the CUDA-graph step machinery without capture (tests, debugging)
    eval_batch_size: int = 1024
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    on_batch: Callable[[int, int], None] | None = None
    label: str = "the model"  # how a warning names the model (the runner gives the model's name)


@dataclass
class TrainResult:
    epochs: int
    seconds: float
    device: str
    history: list[dict[str, Any]] = field(default_factory=list)
    time_to_target_s: float | None = None
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None
    memory_at_start_bytes: int | None = None  # CPU: resident set size when training began (job_peak_rss only)
    cuda_graphs: dict[str, Any] | None = None
    amp: str | None = None  # the autocast dtype really used (None where --amp does not apply; see resolve_amp)
    channels_last: bool = False  # whether training really ran channels-last (2D inputs only)
    warmup_steps: int = 0  # untimed steps per batch size on a copy of the model before the clock started
    warmup_seconds: float | None = None  # what they took (None: no warm-up ran)
    # Why --compile's forward was given up for the eager one during training (None: it was not, or no
    # --compile); see _train's eager_step.
    compile_fallback: str | None = None
    batch_size: int | None = None  # what each step took: the recipe's, or all the samples when there are fewer
    # Logits of the final model on ``evaluate_on`` (the last epoch's evaluation), so a caller that
    # evaluates on the same inputs need not predict again. Not serialised.
    final_eval_logits: "torch.Tensor | None" = field(default=None, repr=False)

    def to_dict(self, recipe: Recipe) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "seconds": round(self.seconds, 3),
            "device": self.device,
            "recipe": recipe.to_dict(),
            "batch_size": self.batch_size,
            "target_accuracy": recipe.target_accuracy,
            "time_to_target_s": None if self.time_to_target_s is None else round(self.time_to_target_s, 3),
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_kind": self.peak_memory_kind,
            "memory_at_start_bytes": self.memory_at_start_bytes,
            "cuda_graphs": self.cuda_graphs,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "warmup_steps": self.warmup_steps,
            "warmup_s": None if self.warmup_seconds is None else round(self.warmup_seconds, 3),
            "compile_fallback": self.compile_fallback,
            "history": self.history,
        }


def make_optimizer(recipe: Recipe, params: Any) -> "torch.optim.Optimizer":
    import torch

    name = recipe.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
            weight_decay=recipe.weight_decay,
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; known: {', '.join(OPTIMIZERS)}")


def make_batch_scheduler(
    recipe: Recipe, optimizer: "torch.optim.Optimizer", steps_per_epoch: int
) -> "torch.optim.lr_scheduler.LRScheduler | None":
    """The scheduler stepped after every batch (one-cycle), or None for per-epoch schedules."""
    import torch

    if recipe.schedule.kind != "onecycle":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=max(1, recipe.epochs * steps_per_epoch)
    )


def train_model(
    model: "torch.nn.Module",
    train: tuple["torch.Tensor", "torch.Tensor"],
    recipe: Recipe,
    options: TrainOptions,
    evaluate_on: tuple["torch.Tensor", "torch.Tensor"] | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``recipe.epochs`` epochs; per-epoch history in the result.

    ``evaluate_on`` (validation, else test inputs) is scored after every epoch
    for the training curves and time-to-accuracy; its time is not counted in
    ``seconds``, nor is the warm-up on a copy of the model (:func:`warm_up`).
    A non-finite loss stops training with ``StageError('train')``. On CUDA,
    cuDNN autotunes each shape during training; the setting is put back after.
    """
    from harness.latency import cudnn_benchmark

    with cudnn_benchmark(True) if options.device.startswith("cuda") else contextlib.nullcontext():
        return _train(model, train, recipe, options, evaluate_on)


def _train(
    model: "torch.nn.Module",
    train: tuple["torch.Tensor", "torch.Tensor"],
    recipe: Recipe,
    options: TrainOptions,
    evaluate_on: tuple["torch.Tensor", "torch.Tensor"] | None,
) -> TrainResult:
    import torch
    import torch.nn.functional as F

    device = options.device
    on_cuda = device.startswith("cuda")
    # Every torch.cuda call names the job's device: without one they act on the current device,
    # another GPU than the job's with --device cuda:1.
    cuda_device = torch.device(device) if on_cuda else None
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(cuda_device)
    rss_at_start = None if on_cuda else rss.reset_peak()  # CPU: so the peak read after training is this job's
    model.to(device)
    channels_last = options.channels_last and train[0].dim() == 4
    if channels_last:
        model.to(memory_format=torch.channels_last)
        channels_last = channels_last_works(model, train[0][:2].to(device), options.label)
    forward = torch.compile(model) if options.compile else model
    x_all = train[0].to(device, non_blocking=True)
    y_all = train[1].to(device, non_blocking=True)
    n = x_all.shape[0]
    if n == 0:
        raise StageError("train", "the training split is empty")
    batch_size = min(recipe.batch_size, n)
    if batch_size < recipe.batch_size:
        log.info("%s: batch size %d is more than the %d training samples: each step trains on all of them "
                 "(train.batch_size says so)", options.label, recipe.batch_size, n)
    steps_per_epoch = math.ceil(n / batch_size)
    seen = n  # the samples each epoch trains on
    if n % batch_size == 1 and batch_size > 1:
        # A last batch of one sample fails BatchNorm in training mode ("Expected more than 1 value per
        # channel"), so whether a job trained hung on N % batch size: that sample sits the epoch out (a
        # random one each epoch, as the order is shuffled), as DataLoader's drop_last would.
        steps_per_epoch, seen = steps_per_epoch - 1, n - 1
        log.info("%s: %d training samples at batch size %d leave a last batch of one, which BatchNorm cannot "
                 "train on: each epoch trains on %d of them", options.label, n, batch_size, seen)
    amp = resolve_amp(options.amp, device)
    global _warned_bf16
    if amp == "bf16" and not on_cuda and cpu_has_native_bf16() is False and not _warned_bf16:
        _warned_bf16 = True
        log.warning("--amp bf16 on a CPU without native bfloat16 (no AVX512-BF16 or AMX): oneDNN emulates it, "
                    "and training may be slower than float32 (compare with benchmarks/train_ab.py --option bf16)")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")  # None: no autocast

    graph_reason = None
    if options.cuda_graphs or options.static_step:
        from harness import cudagraph

        if options.cuda_graphs:
            graph_reason = cudagraph.unsupported_reason(
                recipe, device, amp, options.compile, (n // batch_size) * recipe.epochs
            )
    use_static = options.static_step or (options.cuda_graphs and graph_reason is None)

    warmup_steps = resolve_warmup_steps(options.warmup_steps, device)
    warmup_seconds = warm_up(model, x_all, y_all, recipe, warmup_steps, batch_size=batch_size,
                             amp_dtype=amp_dtype, channels_last=channels_last)
    if warmup_seconds is not None:  # the copy's peak is not this job's training peak
        if on_cuda:
            torch.cuda.reset_peak_memory_stats(cuda_device)
        elif rss_at_start is not None:
            rss.reset_peak()  # the high-water mark only: the baseline stays the one from before the copy

    optimizer = make_optimizer(recipe, model.parameters())
    per_batch_scheduler = make_batch_scheduler(recipe, optimizer, steps_per_epoch)
    # On CUDA the generator lives on the GPU, so shuffling and augmentation never wait on the host.
    generator = torch.Generator(device=device if on_cuda else "cpu").manual_seed(options.seed)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    static_step = None
    if use_static:
        static_step = cudagraph.StaticTrainStep(
            model, recipe, optimizer, amp_dtype=amp_dtype, channels_last=channels_last,
            capture=on_cuda and options.cuda_graphs and graph_reason is None, epochs=recipe.epochs,
        )

    # torch.compile is lazy: dynamo and inductor run inside a training step (the first, and again at each
    # recompile, such as the epoch's partial last batch), so a machine that cannot compile (no C++ compiler,
    # no libcuda) fails there. The model then trains with its eager forward for the rest of the job.
    compile_errors: tuple[type[BaseException], ...] = ()
    if options.compile:
        from torch._dynamo.exc import TorchDynamoException  # InductorError, BackendCompilerFailed, ...

        compile_errors = (TorchDynamoException,)
    compile_fallback: str | None = None

    def eager_step(xb: "torch.Tensor", yb: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        nonlocal forward, compile_fallback
        if forward is model:
            return eager_train_step(model, optimizer, scaler, xb, yb, recipe, amp_dtype)
        try:
            return eager_train_step(forward, optimizer, scaler, xb, yb, recipe, amp_dtype)
        except compile_errors as exc:
            # Re-running the failed step eagerly is safe: the step zeroes the gradients itself, and a
            # compile fails before the optimizer or the scaler is stepped.
            from harness.manager import one_line

            compile_fallback = one_line(exc)
            log.warning("%s: torch.compile failed, so it trains with its eager forward from here on: %s",
                        options.label, compile_fallback)
            forward = model
            return eager_train_step(model, optimizer, scaler, xb, yb, recipe, amp_dtype)

    # With the static step the schedule's optimizer only holds the values and is never stepped itself;
    # torch warns about that on the scheduler's first step (only then), wrongly here.
    schedule_checked = static_step is None

    def step_schedule() -> None:
        nonlocal schedule_checked
        if per_batch_scheduler is None:
            return
        if schedule_checked:
            per_batch_scheduler.step()
            return
        schedule_checked = True
        cudagraph.run_with_warnings_suppressed(per_batch_scheduler.step)

    # The evaluation inputs go to the device once, not in slices after every epoch (on a GPU each
    # slice from pageable host memory is a synchronous copy).
    eval_x = None if evaluate_on is None else evaluate_on[0].to(device, non_blocking=True)
    result = TrainResult(epochs=recipe.epochs, seconds=0.0, device=device, amp=amp, batch_size=batch_size,
                         channels_last=channels_last, warmup_steps=warmup_steps if warmup_seconds is not None else 0,
                         warmup_seconds=warmup_seconds)
    train_seconds = 0.0
    for epoch in range(recipe.epochs):
        if per_batch_scheduler is None:
            for group in optimizer.param_groups:
                group["lr"] = recipe.schedule.lr_at(epoch, recipe.lr)
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator, device=generator.device).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            xb, yb = x_all.index_select(0, idx), y_all.index_select(0, idx)
            if recipe.augment:
                xb = augment_batch(xb, recipe.augment, generator)
            if static_step is not None:
                loss, logits = static_step(xb, yb)
            else:
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                loss, logits = eager_step(xb, yb)
            step_schedule()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
            if options.on_batch is not None:
                options.on_batch(step + 1, steps_per_epoch)
        train_loss = float(loss_sum.item()) / seen  # one sync per epoch
        if on_cuda:
            torch.cuda.synchronize(cuda_device)
        train_seconds += time.perf_counter() - start
        if not math.isfinite(train_loss):
            raise StageError("train", f"training diverged: the loss became {train_loss} in epoch {epoch + 1}")
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": round(train_loss, 6),
            "train_accuracy": round(float(correct.item()) / seen, 6),
            "seconds": round(train_seconds, 3),
        }
        if evaluate_on is not None:
            logits = predict(model, eval_x, device, options.eval_batch_size)
            result.final_eval_logits = logits
            targets = evaluate_on[1]
            record["eval_loss"] = round(float(F.cross_entropy(logits, targets).item()), 6)
            record["eval_accuracy"] = round(float((logits.argmax(1) == targets).float().mean().item()), 6)
            if (
                result.time_to_target_s is None
                and recipe.target_accuracy is not None
                and record["eval_accuracy"] >= recipe.target_accuracy
            ):
                result.time_to_target_s = train_seconds
        result.history.append(record)
        if options.on_epoch is not None:
            options.on_epoch(record)
    result.seconds = train_seconds
    result.compile_fallback = compile_fallback
    if channels_last:
        # Back to the default layout: export, saved weights and latency rows see the usual model.
        model.to(memory_format=torch.contiguous_format)
    if static_step is not None:
        result.cuda_graphs = static_step.describe()
        static_step.release()
    elif options.cuda_graphs:
        result.cuda_graphs = {"used": False, "reason": graph_reason}
    result.peak_memory_bytes, result.peak_memory_kind = peak_memory(device, rss_reset=rss_at_start is not None)
    # The last step's gradients are not part of the trained model; under CUDA graphs they live in the
    # graphs' private memory pool, which they would keep from being freed after the job.
    model.zero_grad(set_to_none=True)
    if result.peak_memory_kind == "job_peak_rss":
        result.memory_at_start_bytes = rss_at_start
    return result


def predict(model: "torch.nn.Module", inputs: "torch.Tensor", device: str, batch_size: int = 1024) -> "torch.Tensor":
    """Float32 CPU logits of ``model`` on every row of ``inputs``, in eval mode, batched."""
    import torch

    outputs = []
    with torch.inference_mode(), eval_mode(model):
        for i in range(0, inputs.shape[0], batch_size):
            outputs.append(model(inputs[i : i + batch_size].to(device, non_blocking=True)).float())
    # One copy back at the end (no host sync per batch on a GPU), outside inference mode so
    # callers get an ordinary tensor.
    return torch.cat(outputs).cpu() if outputs else torch.empty(0)


def peak_memory(device: str, rss_reset: bool = False) -> tuple[int | None, str | None]:
    """(bytes, kind): CUDA max allocated on a GPU; on the CPU the peak resident set size since
    :func:`harness.rss.reset_peak` (``job_peak_rss``, when ``rss_reset``), else of the whole process so far."""
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(torch.device(device))), "cuda_max_allocated"
    if rss_reset:
        peak = rss.status_bytes("VmHWM")
        if peak is not None:
            return peak, "job_peak_rss"
    peak = rss.process_peak_bytes()
    return (peak, "process_peak_rss") if peak is not None else (None, None)

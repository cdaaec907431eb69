"""The CUDA-graph training step: the same training as the eager loop, minus the host.

Capture itself needs a GPU (the ``gpu`` tests at the end); everything around
it — the graph-safe SGD update, hyper-parameters read from the schedule each
step, the static buffers, the fallbacks and what is recorded — runs on CPU
through ``TrainOptions(static_step=True)``, the same step without capture.
"""

from __future__ import annotations

import copy

import pytest
import torch
from fixtures.data import bright_pixel_data as _data

from harness.cudagraph import (
    MIN_LATER_REPLAYS,
    WARMUP_STEPS,
    StaticTrainStep,
    capture_due,
    python_state,
    python_state_change,
    sgd_update_,
    unsupported_reason,
)
from harness.registry import build_registry
from harness.specs import Recipe, Schedule
from harness.train import TrainOptions, input_adapter, train_model


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Dropout(0.0), torch.nn.Linear(4 * 6 * 6, 4),
    )


@pytest.mark.parametrize("nesterov,weight_decay", [(False, 0.0), (True, 0.0), (True, 5e-4), (False, 1e-3)])
def test_graph_safe_sgd_matches_torch_sgd_while_lr_and_momentum_change(nesterov, weight_decay):
    torch.manual_seed(0)
    reference = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    ours = [torch.nn.Parameter(p.detach().clone()) for p in reference]
    sgd = torch.optim.SGD(reference, lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=weight_decay)
    buffers = [torch.zeros_like(p) for p in ours]
    lr, momentum = torch.tensor(0.0), torch.tensor(0.0)
    for step in range(6):
        grads = [torch.randn_like(p) for p in reference]
        value_lr, value_momentum = 0.1 * (step + 1), 0.95 - 0.02 * step  # as one-cycle moves them
        for group in sgd.param_groups:
            group["lr"], group["momentum"] = value_lr, value_momentum
        for p, g in zip(reference, grads):
            p.grad = g.clone()
        sgd.step()
        lr.fill_(value_lr)
        momentum.fill_(value_momentum)
        with torch.no_grad():
            sgd_update_(ours, [g.clone() for g in grads], buffers, lr, momentum,
                        nesterov=nesterov, weight_decay=weight_decay)
    for a, b in zip(reference, ours):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("recipe", [
    Recipe(optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=64, epochs=2,
           schedule=Schedule(kind="onecycle"), label_smoothing=0.1),
    Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=64, epochs=3,
           schedule=Schedule(kind="step", step_size=2, gamma=0.1)),
    Recipe(optimizer="adam", lr=3e-3, batch_size=64, epochs=3,
           schedule=Schedule(kind="piecewise", milestones=((0, 3e-3), (1, 1e-3), (2, 3e-4)))),
    Recipe(optimizer="adamw", lr=3e-3, weight_decay=1e-2, batch_size=64, epochs=2),
], ids=["sgd-onecycle", "sgd-step", "adam-piecewise", "adamw"])
@pytest.mark.parametrize("n", [512, 500], ids=["whole-batches", "partial-last-batch"])
def test_static_step_trains_like_the_eager_loop(recipe, n):
    # float64, because small training runs are chaotic: a 1e-6 change of lr moves Adam's weights by 1e-2.
    (x, y), (hx, hy) = _data(n), _data(128, 1)
    data, held_out = (x.double(), y), (hx.double(), hy)
    eager_model, static_model = _model().double(), _model().double()
    eager = train_model(eager_model, data, recipe, TrainOptions(seed=3), evaluate_on=held_out)
    static = train_model(static_model, data, recipe, TrainOptions(seed=3, static_step=True), evaluate_on=held_out)
    for a, b in zip(eager.history, static.history):
        assert a["lr"] == pytest.approx(b["lr"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)
        assert a["eval_accuracy"] == b["eval_accuracy"]
    for a, b in zip(eager_model.state_dict().values(), static_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    steps = -(-n // 64) * recipe.epochs
    assert static.cuda_graphs == {"used": False, "reason": "capture not requested", "graphs": {},
                                  "replayed_steps": 0, "eager_steps": steps}
    assert eager.cuda_graphs is None


def test_static_step_hands_back_no_autograd_graph():
    # A loss that still holds its graph keeps the parameters' gradient accumulators alive into the next
    # step; on CUDA that next step may run on another stream (capture, side-stream warm-up), and torch
    # warns of the mismatch on every such run.
    from harness.cudagraph import StaticTrainStep

    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=8, epochs=1)
    model = _model()
    step = StaticTrainStep(model, recipe, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                           amp_dtype=None, channels_last=False, capture=False, epochs=1)
    x, y = _data(8)
    loss, logits = step(x, y)
    assert loss.grad_fn is None and logits.grad_fn is None
    assert torch.isfinite(loss)


@pytest.mark.parametrize("static", [False, True], ids=["eager", "static-step"])
def test_a_trained_model_hands_back_no_gradients(static):
    # Under CUDA graphs the last step's gradients live in the graphs' private memory pool: kept on the
    # model, they would hold that pool after the job.
    model = _model()
    recipe = Recipe(optimizer="adam", lr=1e-2, batch_size=64, epochs=1)
    train_model(model, _data(200), recipe, TrainOptions(static_step=static))
    assert all(p.grad is None for p in model.parameters())


def test_cuda_graphs_on_cpu_fall_back_to_the_eager_loop_and_say_why():
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=100, epochs=1)
    batches = []
    options = TrainOptions(cuda_graphs=True, on_batch=lambda step, total: batches.append(total))
    result = train_model(_model(), _data(450), recipe, options)
    assert result.cuda_graphs == {"used": False, "reason": "CUDA graphs need a CUDA device"}
    assert batches == [5] * 5


def test_unsupported_reasons_name_the_obstacle():
    sgd = Recipe(optimizer="sgd", schedule=Schedule(kind="onecycle"))
    adam_onecycle = Recipe(optimizer="adam", schedule=Schedule(kind="onecycle"))
    assert unsupported_reason(sgd, "cuda", None, False, 100) is None
    assert unsupported_reason(sgd, "cuda", "bf16", False, 100) is None
    assert unsupported_reason(Recipe(optimizer="adam"), "cuda:0", None, False, 100) is None
    assert "CUDA device" in unsupported_reason(sgd, "cpu", None, False, 100)
    assert "exclusive" in unsupported_reason(sgd, "cuda", None, True, 100)
    assert "GradScaler" in unsupported_reason(sgd, "cuda", "fp16", False, 100)
    assert "beta1" in unsupported_reason(adam_onecycle, "cuda", None, False, 100)
    assert "warm-up" in unsupported_reason(sgd, "cuda", None, False, WARMUP_STEPS)
    assert "optimizer" in unsupported_reason(Recipe(optimizer="lbfgs"), "cuda", None, False, 100)


class _Counting(torch.nn.Module):
    """A model with Python-side state: the step count, kept in a plain attribute, scales its output."""

    def __init__(self, set_up_once: bool = False):
        super().__init__()
        self.layer = torch.nn.Linear(64, 4)
        self.count = 0
        self.set_up_once = set_up_once
        self.ready = False
        self.seen: list[int] = []

    def forward(self, x):
        if self.set_up_once:
            self.ready = True  # set once, on the first call: the same in every later step
        else:
            self.count += 1
        return self.layer(x.flatten(1)) * (1.0 + 0.1 * self.count)


def _step(model, capture=True, epochs=1):
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=8, epochs=epochs)
    return StaticTrainStep(model, recipe, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                           amp_dtype=None, channels_last=False, capture=capture, epochs=epochs)


def test_the_full_batch_is_captured_after_its_warm_up_and_the_partial_one_only_when_replays_repay_it():
    assert [capture_due(calls, first_shape=True, epochs=2) for calls in range(1, WARMUP_STEPS + 2)] == \
        [False] * WARMUP_STEPS + [True]
    # The partial last batch comes once an epoch: its second step leaves epochs - 1 replays.
    assert not capture_due(1, first_shape=False, epochs=100)  # its first step is its warm-up
    assert capture_due(2, first_shape=False, epochs=MIN_LATER_REPLAYS + 1)
    assert not capture_due(2, first_shape=False, epochs=MIN_LATER_REPLAYS)
    assert not capture_due(2, first_shape=False, epochs=2)  # mnist-fast: a capture in its last step, one replay
    assert capture_due(2, first_shape=False, epochs=20)  # the 20-epoch recipes: 19 replays
    assert not capture_due(20, first_shape=False, epochs=20)  # a late step of a long run: too few left


@pytest.mark.parametrize("epochs", [2, MIN_LATER_REPLAYS, MIN_LATER_REPLAYS + 1, 20])
def test_the_step_asks_for_a_capture_at_the_steps_capture_due_names(epochs, monkeypatch):
    # Capture itself needs a GPU; here it is recorded instead, to see which step of which shape would capture.
    step, (x, y) = _step(_model(), epochs=epochs), _data(20)
    captures = {}

    def capture(shape):
        captures.setdefault(shape.x.shape[0], shape.calls)
        return step._eager(shape)

    monkeypatch.setattr(step, "_capture_and_replay", capture)
    for _ in range(epochs):  # two full batches of 8 and a partial one of 4 an epoch
        for start in (0, 8, 16):
            step(x[start:start + 8], y[start:start + 8])
    expected = {8: WARMUP_STEPS + 1}
    if epochs - 1 >= MIN_LATER_REPLAYS:
        expected[4] = 2
    assert captures == expected


def test_a_model_that_changes_python_state_each_step_is_never_captured():
    # A captured graph replays the step as it was at capture: count frozen at 3, with no error said.
    step, (x, y) = _step(_Counting()), _data(8)
    for _ in range(WARMUP_STEPS + 3):  # past the warm-up: capture (impossible on the CPU) is never tried
        step(x, y)
    info = step.describe()
    assert info["used"] is False and info["eager_steps"] == WARMUP_STEPS + 3
    assert info["reason"].startswith("the model changes a Python attribute in its training steps (count: 1 -> 2)")


def test_python_state_set_once_in_the_first_step_does_not_stop_capture():
    step, (x, y) = _step(_Counting(set_up_once=True)), _data(8)
    for _ in range(WARMUP_STEPS):
        step(x, y)
    assert step.fallback_reason is None


def test_python_state_reads_plain_attributes_and_container_sizes():
    model = torch.nn.Sequential(_Counting())
    before = python_state(model)
    assert before["0.count"] == 0 and before["0.seen"] == "list of 0" and "0.layer.in_features" in before
    assert not any(name.endswith("training") or "weight" in name for name in before)
    model[0].seen.append(1)
    assert python_state_change(before, python_state(model)) == "0.seen: 'list of 0' -> 'list of 1'"


BUILT_IN = build_registry().models


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_model_trains_alike_through_the_graph_step(name):
    # What --cuda-graphs does to each built-in model, less the capture: its own optimizer, schedule,
    # augmentation, label smoothing, dropout and batch norm, through the static step, against the eager
    # loop; two full batches and a partial one, so both of the step's batch shapes are used.
    spec = BUILT_IN[name]
    shape = (1, 16, 16, 16) if spec.input_rank == 4 else (spec.input_channels or 1, 28, 28)
    recipe = spec.recipe.replace(batch_size=8, epochs=1)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(20, *shape, generator=generator).double(), torch.randint(0, 10, (20,), generator=generator)
    trained, states = [], []
    for static in (False, True):
        torch.manual_seed(0)
        model = input_adapter(spec.build(num_classes=10, input_shape=shape), shape, shape, recipe.normalize).double()
        states.append(python_state(model))
        torch.manual_seed(1)  # dropout's draws
        result = train_model(model, (x, y), recipe, TrainOptions(seed=2, static_step=static))
        trained.append((model, result))
    (eager_model, eager), (static_model, static) = trained
    # Nothing a captured step would freeze: under --cuda-graphs on a GPU it would keep the graph.
    assert python_state_change(states[1], python_state(static_model)) is None
    assert static.cuda_graphs["eager_steps"] == 3
    assert static.history[0]["train_loss"] == pytest.approx(eager.history[0]["train_loss"], rel=1e-9)
    for (key, a), b in zip(eager_model.state_dict().items(), static_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10, msg=lambda m, key=key: f"{name} {key}: {m}")


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (run on the GPU machine: pytest -m gpu)")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("recipe", [
    Recipe(optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=64, epochs=3,
           schedule=Schedule(kind="onecycle"), label_smoothing=0.1, augment="rotate7"),
    Recipe(optimizer="adam", lr=3e-3, batch_size=64, epochs=3,
           schedule=Schedule(kind="piecewise", milestones=((0, 3e-3), (1, 1e-3), (2, 3e-4)))),
], ids=["sgd-onecycle-rotate7", "adam-piecewise"])
@pytest.mark.parametrize("amp", [None, "bf16"])
def test_captured_step_trains_like_the_uncaptured_one_on_cuda(recipe, amp):
    data, held_out = _data(1000), _data(256, 1)  # 15 full batches of 64 and one of 40 per epoch
    base = _model()
    uncaptured_model, captured_model = copy.deepcopy(base), copy.deepcopy(base)
    uncaptured = train_model(uncaptured_model, data, recipe,
                             TrainOptions(device="cuda", seed=1, amp=amp, static_step=True), evaluate_on=held_out)
    captured = train_model(captured_model, data, recipe,
                           TrainOptions(device="cuda", seed=1, amp=amp, cuda_graphs=True), evaluate_on=held_out)
    graphs = captured.cuda_graphs
    # 3 epochs leave the partial batch 2 replays, fewer than MIN_LATER_REPLAYS: it is never captured.
    assert graphs["used"] is True and graphs["graphs"] == {"64": 15 * 3}, graphs
    # eager: the full batch's 3 warm-up steps and the partial batch in each epoch; the other 42 are replays
    assert graphs["eager_steps"] == WARMUP_STEPS + 3 and graphs["replayed_steps"] == 15 * 3 - WARMUP_STEPS
    for a, b in zip(uncaptured.history, captured.history):
        # cuDNN picks algorithms per run, so allow float noise, not different training.
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=2e-2, abs=2e-3)
    assert captured.history[-1]["eval_accuracy"] > 0.9


@pytest.mark.gpu
@needs_cuda
def test_a_model_with_python_state_trains_eagerly_on_cuda_and_says_why():
    model = _Counting()
    result = train_model(model, _data(200), Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=64, epochs=2),
                         TrainOptions(device="cuda", cuda_graphs=True))
    graphs = result.cuda_graphs
    assert graphs["used"] is False and "(count: 1 -> 2)" in graphs["reason"], graphs
    assert graphs["replayed_steps"] == 0 and model.count == graphs["eager_steps"] == 8


CAPTURED_TWICE = """
import gc, torch
from fixtures.data import bright_pixel_data
from harness.specs import Recipe
from harness.train import TrainOptions, input_adapter, train_model

def net():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 4))

recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=64, epochs=2)
used = []
for _ in range(3):  # 1000 samples: 15 full batches of 64 (a graph), a partial one of 40 (eager in 2 epochs)
    result = train_model(net(), bright_pixel_data(1000), recipe, TrainOptions(device="cuda", cuda_graphs=True))
    assert result.cuda_graphs["used"], result.cuda_graphs
    del result
    gc.collect()
    torch.cuda.synchronize()
    used.append(torch.cuda.memory_allocated())
print("allocated after each job:", used)
assert used[2] <= used[1] + 2**20, used  # the second and third jobs alike: nothing kept per job
"""


@pytest.mark.gpu
@needs_cuda
def test_captured_training_leaves_no_warning_and_no_memory_behind():
    # In a new process: torch says the AccumulateGrad stream warning once per process (TORCH_WARN_ONCE),
    # so a test after another would pass whatever the step does. On an H200 (torch 2.11) every graphed
    # run warned, and each graphed job of a sweep peaked 256 MiB higher than the one before.
    done = _run_in_new_process(CAPTURED_TWICE)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "AccumulateGrad" not in done.stderr, done.stderr[-3000:]


def _run_in_new_process(code: str):
    """``python -c code`` in tests/, with tests/ first on PYTHONPATH (the fixtures) and the caller's path kept
    after it (it may be how this checkout is found at all: gpu_session.sh's fallback install)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    path = os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=tests, env={**os.environ, "PYTHONPATH": path})


CAPTURE_FAILS = """
import torch
from fixtures.data import bright_pixel_data
from harness.specs import Recipe
from harness.train import TrainOptions, train_model

class Syncing(torch.nn.Module):  # reads a value back to the host: fine eagerly, not allowed in a capture
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(64, 4)

    def forward(self, x):
        if x.sum().item() < 0:
            x = -x
        return self.layer(x.flatten(1))

stream = torch.cuda.current_stream()
recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=64, epochs=2)
result = train_model(Syncing(), bright_pixel_data(640), recipe, TrainOptions(device="cuda", cuda_graphs=True))
graphs = result.cuda_graphs
print(graphs)
assert graphs["used"] is False and graphs["reason"].startswith("capture failed"), graphs
assert graphs["replayed_steps"] == 0 and graphs["eager_steps"] == 20, graphs
assert torch.cuda.current_stream() == stream, (torch.cuda.current_stream(), stream)
plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
eager = train_model(plain, bright_pixel_data(640), recipe, TrainOptions(device="cuda"))
assert eager.history[-1]["train_accuracy"] > 0.5, eager.history
"""


@pytest.mark.gpu
@needs_cuda
def test_a_failed_capture_trains_eagerly_and_gives_the_stream_back():
    # torch.cuda.graph's exit ends the capture before restoring the stream: without the step's own
    # restore, the capture stream would stay current after the failure. In a new process: a failed capture
    # leaves torch's allocator believing the capture is still under way, for the rest of that process.
    done = _run_in_new_process(CAPTURE_FAILS)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]


@pytest.mark.gpu
@needs_cuda
def test_cuda_run_end_to_end_records_graphs_amp_and_gpu_latency(tmp_path):
    """The whole GPU path in one run: CUDA training with graphs and bf16, torch CUDA latency rows,
    and ONNX Runtime's CUDA provider either measured or skipped with its reason."""
    import json

    from conftest import run_cli

    result = run_cli("run", "--models", "mnist-fast", "--datasets", "synthetic", "--epochs", "2",
                     "--max-train-samples", "2000", "--device", "cuda", "--cuda-graphs", "--amp", "bf16",
                     "--providers", "cpu,cuda", "--batch-sizes", "1,32", "--quick", "--out", str(tmp_path),
                     "--run-id", "gpu", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = json.loads((tmp_path / "gpu" / "results.json").read_text())["jobs"]
    train = job["train"]
    assert train["device"] == "cuda" and train["amp"] == "bf16" and train["cuda_graphs"]["used"], train
    torch_cuda = [r for r in job["latency"] if r["runtime"] == "torch" and r["provider"] == "cuda"]
    assert {r["batch_size"] for r in torch_cuda} == {1, 32} and all(r["p50_ms"] > 0 for r in torch_cuda)
    ort_cuda = [r for r in job["latency"] if r["runtime"] == "onnxruntime" and "CUDA" in r["provider"]]
    skipped = " ".join(job.get("latency_skipped") or [])
    assert ort_cuda or "CUDAExecutionProvider" in skipped

"""The training stage: recipes as data, schedules, time-to-accuracy, divergence, reproducibility."""

from __future__ import annotations

import sys

import pytest
import torch
from fixtures.data import bright_pixel_data as _data

from harness.errors import StageError
from harness.specs import ModelSpec, Recipe, Schedule
from harness.train import (
    TrainOptions,
    count_flops,
    count_parameters,
    eval_mode,
    input_adapter,
    predict,
    train_model,
)
from harness.rss import reset_peak as reset_peak_rss


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


def test_step_and_piecewise_schedules_follow_the_seeds():
    step = Schedule(kind="step", step_size=10, gamma=0.1)
    assert [step.lr_at(e, 0.01) for e in (0, 9, 10, 19, 20)] == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001])
    four_phase = Schedule(kind="piecewise", milestones=((0, 0.003), (5, 0.001), (12, 0.0003), (18, 0.0001)))
    assert [four_phase.lr_at(e, 0.003) for e in (0, 4, 5, 11, 12, 17, 18, 19)] == pytest.approx(
        [0.003, 0.003, 0.001, 0.001, 0.0003, 0.0003, 0.0001, 0.0001])


def test_an_lr_override_scales_a_piecewise_schedule():
    four_phase = Schedule(kind="piecewise", milestones=((0, 0.003), (5, 0.001), (12, 0.0003)))
    recipe = Recipe(optimizer="adam", lr=0.003, batch_size=32, epochs=20, schedule=four_phase)
    assert recipe.replace(lr=None) == recipe  # no override: unchanged
    tenfold = recipe.replace(lr=0.03)  # --lr 0.03 or a sweep's lr: the same shape, ten times higher
    assert [tenfold.schedule.lr_at(e, tenfold.lr) for e in (0, 5, 12)] == pytest.approx([0.03, 0.01, 0.003])
    own = Schedule(kind="piecewise", milestones=((0, 0.5),))
    assert recipe.replace(lr=0.03, schedule=own).schedule == own  # a schedule given with it is kept
    step = Recipe(optimizer="sgd", lr=0.01, schedule=Schedule(kind="step"))
    assert step.replace(lr=0.1).schedule == step.schedule  # other kinds already scale with lr


def test_history_records_the_scheduled_learning_rate_each_epoch():
    recipe = Recipe(optimizer="sgd", lr=0.1, momentum=0.9, batch_size=64, epochs=3,
                    schedule=Schedule(kind="step", step_size=2, gamma=0.5))
    result = train_model(_model(), _data(), recipe, TrainOptions(), evaluate_on=_data(128, 1))
    assert [h["lr"] for h in result.history] == pytest.approx([0.1, 0.1, 0.05])
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert all(0 <= h["eval_accuracy"] <= 1 for h in result.history)


def test_training_learns_and_time_to_target_is_recorded():
    recipe = Recipe(optimizer="adam", lr=1e-2, batch_size=32, epochs=4, target_accuracy=0.9)
    model = _model()
    result = train_model(model, _data(), recipe, TrainOptions(), evaluate_on=_data(256, 1))
    assert result.history[-1]["eval_accuracy"] >= 0.9
    assert result.time_to_target_s is not None and 0 < result.time_to_target_s <= result.seconds


def test_a_batch_larger_than_the_training_set_is_recorded_as_the_batch_each_step_took():
    recipe = Recipe(optimizer="sgd", lr=0.1, batch_size=100_000, epochs=1)
    result = train_model(_model(), _data(96), recipe, TrainOptions(), evaluate_on=_data(32, 1))
    record = result.to_dict(recipe)
    assert (record["batch_size"], record["recipe"]["batch_size"]) == (96, 100_000)  # asked for, and what ran
    assert train_model(_model(), _data(96), Recipe(batch_size=32, epochs=1), TrainOptions()).batch_size == 32


def test_a_last_batch_of_one_sample_sits_the_epoch_out_so_batchnorm_trains_whatever_n_mod_batch(caplog):
    """385 samples at batch 32 left a last batch of 1 and a BatchNorm model failed its job ("Expected more
    than 1 value per channel when training"); 384 trained. Now one (shuffled) sample waits each epoch."""
    def batchnorm_mlp():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16),
                                   torch.nn.ReLU(), torch.nn.Linear(16, 4))

    recipe = Recipe(optimizer="adam", lr=1e-2, batch_size=32, epochs=2)
    steps = []
    options = TrainOptions(on_batch=lambda step, total: steps.append((step, total)), label="bn")
    with caplog.at_level("INFO", logger="harness.train"):
        result = train_model(batchnorm_mlp(), _data(385), recipe, options)
    assert steps[-1] == (12, 12) and len(steps) == 24  # 12 full batches an epoch, no 13th of one sample
    assert "bn: 385 training samples at batch size 32 leave a last batch of one" in caplog.text
    assert 0 <= result.history[-1]["train_accuracy"] <= 1
    steps.clear()
    train_model(batchnorm_mlp(), _data(386), recipe, options)  # a last batch of two trains as it did
    assert steps[-1] == (13, 13)


def test_unreached_target_stays_null():
    recipe = Recipe(optimizer="sgd", lr=1e-6, batch_size=64, epochs=1, target_accuracy=0.999)
    result = train_model(_model(), _data(), recipe, TrainOptions(), evaluate_on=_data(128, 1))
    assert result.time_to_target_s is None


def test_onecycle_schedule_steps_per_batch():
    recipe = Recipe(optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True, batch_size=64, epochs=2,
                    schedule=Schedule(kind="onecycle"))
    result = train_model(_model(), _data(), recipe, TrainOptions(), evaluate_on=_data(256, 1))
    assert result.history[-1]["eval_accuracy"] > 0.5


def _rss_high_water() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM:"))


def test_cpu_peak_memory_is_the_jobs_own_not_an_earlier_jobs():
    """A small job after a large one reports its own peak, not the large one's (Linux, where CI runs)."""
    spike = torch.ones(128 * 2**20 // 4 * 3)  # 384 MiB, touched: an earlier, larger job's peak
    del spike
    before = _rss_high_water()
    recipe = Recipe(optimizer="sgd", lr=0.05, batch_size=32, epochs=1)
    result = train_model(_model(), _data(), recipe, TrainOptions())
    assert result.peak_memory_kind == "job_peak_rss"
    assert result.memory_at_start_bytes <= result.peak_memory_bytes < before - 256 * 2**20
    record = result.to_dict(recipe)
    assert record["peak_memory_bytes"] == result.peak_memory_bytes
    assert record["memory_at_start_bytes"] == result.memory_at_start_bytes


def test_without_the_kernels_reset_the_process_peak_is_said(monkeypatch):
    monkeypatch.setattr("harness.rss.reset_peak", lambda: None)
    result = train_model(_model(), _data(), Recipe(optimizer="sgd", lr=0.05, batch_size=32, epochs=1), TrainOptions())
    assert result.peak_memory_kind == "process_peak_rss" and result.peak_memory_bytes > 0
    assert result.memory_at_start_bytes is None


@pytest.mark.skipif(sys.platform == "win32", reason="the resource module is POSIX")
def test_process_peak_rss_is_in_bytes_on_linux_and_macos(monkeypatch):
    import resource

    from harness.train import peak_memory

    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    monkeypatch.setattr(sys, "platform", "linux")
    linux, kind = peak_memory("cpu")
    monkeypatch.setattr(sys, "platform", "darwin")  # macOS reports ru_maxrss in bytes, not kilobytes
    darwin, _ = peak_memory("cpu")
    assert kind == "process_peak_rss" and linux >= raw * 1024 and darwin < linux / 512


def test_reset_peak_rss_lowers_the_high_water_mark():
    spike = torch.ones(64 * 2**20)  # 256 MiB
    del spike
    high = _rss_high_water()
    at_start = reset_peak_rss()
    assert at_start is not None and _rss_high_water() < high - 128 * 2**20


def test_seeded_cpu_training_is_reproducible():
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=32, epochs=2)
    runs = [train_model(_model(seed=3), _data(), recipe, TrainOptions(seed=7)).history for _ in range(2)]
    assert [h["train_loss"] for h in runs[0]] == [h["train_loss"] for h in runs[1]]
    other = train_model(_model(seed=3), _data(), recipe, TrainOptions(seed=8)).history
    assert [h["train_loss"] for h in other] != [h["train_loss"] for h in runs[0]]


def test_warm_up_runs_on_a_copy_and_leaves_the_training_as_it_would_have_been():
    # Dropout and batch norm (global RNG, running statistics), augmentation, and a partial last batch
    # (250 = 7 x 32 + 26): the warm-up must touch none of the job's state.
    def model():
        torch.manual_seed(5)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                   torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(4 * 6 * 6, 4))

    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=32, epochs=2, augment="rotate7")
    runs = {}
    for steps in (0, 2):
        net, batches = model(), []
        net.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))  # the copy keeps it
        result = train_model(net, _data(250), recipe, TrainOptions(seed=4, warmup_steps=steps))
        runs[steps] = (net, result, batches)
    (cold, cold_result, cold_batches), (warm, warm_result, warm_batches) = runs[0], runs[2]
    assert warm_batches[:4] == [32, 32, 26, 26] and warm_batches[4:] == cold_batches  # each size twice, first
    assert [h["train_loss"] for h in warm_result.history] == [h["train_loss"] for h in cold_result.history]
    for a, b in zip(cold.state_dict().values(), warm.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (warm_result.warmup_steps, cold_result.warmup_steps) == (2, 0)
    assert warm_result.warmup_seconds > 0 and cold_result.warmup_seconds is None
    recorded = warm_result.to_dict(recipe)
    assert recorded["warmup_steps"] == 2 and recorded["warmup_s"] >= 0


def test_a_cpu_warm_up_keeps_the_memory_baseline_from_before_the_copy(monkeypatch):
    # The copy's memory stays with the allocator: a baseline read after it hid most of the training's growth.
    import harness.rss as rss

    readings = iter([100 * 2**20, 400 * 2**20, 500 * 2**20])
    monkeypatch.setattr(rss, "reset_peak", lambda: next(readings))
    recipe = Recipe(optimizer="sgd", lr=0.05, batch_size=32, epochs=1)
    result = train_model(_model(), _data(64), recipe, TrainOptions(warmup_steps=1))
    if result.peak_memory_kind == "job_peak_rss":  # Linux: the kernel's high-water mark was reset
        assert result.memory_at_start_bytes == 100 * 2**20


def test_warm_up_is_automatic_on_cuda_only_and_an_explicit_count_wins():
    from harness.train import CUDA_WARMUP_STEPS, resolve_warmup_steps

    assert resolve_warmup_steps(None, "cpu") == 0
    assert resolve_warmup_steps(None, "cuda") == resolve_warmup_steps(None, "cuda:1") == CUDA_WARMUP_STEPS > 0
    assert resolve_warmup_steps(3, "cpu") == 3 and resolve_warmup_steps(0, "cuda") == 0


def test_divergence_is_a_train_stage_error():
    recipe = Recipe(optimizer="sgd", lr=1e30, momentum=0.9, batch_size=64, epochs=2)
    with pytest.raises(StageError) as info:
        train_model(_model(), _data(), recipe, TrainOptions())
    assert info.value.stage == "train" and "diverged" in str(info.value)


def test_input_adapter_duplicates_gray_to_rgb_and_normalises_inside_the_model():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x.flatten(1)[:, :2]

    adapted = input_adapter(Probe(), (1, 4, 4), (3, 4, 4), (0.5, 0.5))
    x = torch.rand(2, 1, 4, 4)
    adapted(x)
    assert seen["x"].shape == (2, 3, 4, 4)
    assert torch.allclose(seen["x"][:, 2], (x[:, 0] - 0.5) / 0.5)
    assert count_parameters(adapted) == 0


def test_model_input_shape_pairs_only_compatible_inputs():
    spec = ModelSpec("m", lambda **k: None, input_rank=3, input_channels=3, spatial_shape=(28, 28))
    assert spec.model_input_shape((1, 28, 28)) == (3, 28, 28)
    assert spec.model_input_shape((3, 32, 32)) is None
    assert spec.model_input_shape((1, 16, 16, 16)) is None
    assert spec.model_input_shape((2, 28, 28)) is None  # only 1 <-> 3 channels are adapted


def test_predict_is_batched_and_in_eval_mode():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.9), torch.nn.Linear(64, 4))
    x = _data(100)[0]
    first, second = predict(model, x, "cpu", batch_size=7), predict(model, x, "cpu", batch_size=100)
    # equal up to float rounding (a batch of 7 and one of 100 may take different matmul kernels on some CPUs);
    # dropout left on would differ by far more
    assert first.shape == (100, 4) and torch.allclose(first, second, rtol=1e-5, atol=1e-7) and model.training


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine: pytest -m gpu)")
@pytest.mark.parametrize("amp", [None, "bf16"])
def test_cuda_training_with_amp_and_channels_last(amp):
    from harness.latency import QUICK, measure_torch

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 6 * 6, 4))
    recipe = Recipe(optimizer="adam", lr=1e-2, batch_size=64, epochs=3)
    before, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, False
    try:
        result = train_model(model, _data(), recipe, TrainOptions(device="cuda", amp=amp, channels_last=True),
                             evaluate_on=_data(256, 1))
        flag_after_training = torch.backends.cudnn.benchmark
        rows = measure_torch(model, _data(8)[0], [1, 8], [1], "cuda", QUICK)
        flag_after_latency = torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before
    assert result.device == "cuda" and result.peak_memory_kind == "cuda_max_allocated" and result.amp == amp
    assert result.history[-1]["eval_accuracy"] > 0.5
    assert flag_after_training is False  # training's autotuning does not leak into later stages
    assert {r["provider"] for r in rows} == {"cuda"} and all(r["p50_ms"] > 0 for r in rows)
    assert all(r["cudnn_benchmark"] is True for r in rows) and flag_after_latency is False


def test_bf16_autocast_runs_on_the_cpu_and_fp16_is_recorded_as_not_applied():
    import torch

    recipe = Recipe(optimizer="sgd", lr=0.1, batch_size=64, epochs=1)
    seen = []
    model = _model()
    model.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    result = train_model(model, _data(128), recipe, TrainOptions(amp="bf16"))
    assert result.amp == "bf16" and result.to_dict(recipe)["amp"] == "bf16"
    assert seen and set(seen) == {torch.bfloat16}  # the forward really ran under CPU autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay float32

    seen.clear()
    result = train_model(model, _data(128), recipe, TrainOptions(amp="fp16"))
    assert result.amp is None and set(seen) == {torch.float32}
    from harness.report import _train_settings

    assert _train_settings({"amp": None, "amp_requested": "fp16", "device": "cpu"}) == (
        "fp16 not applied (on the CPU only bf16 autocast runs)")
    assert _train_settings({"amp": "bf16", "amp_requested": "bf16", "device": "cpu"}) == "bf16"


def test_bf16_on_a_cpu_without_native_bf16_warns_that_it_may_be_slower(monkeypatch, caplog):
    import harness.train

    recipe = Recipe(optimizer="sgd", lr=0.1, batch_size=64, epochs=1)
    monkeypatch.setattr(harness.train, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(harness.train, "_warned_bf16", False)
    with caplog.at_level("WARNING", logger="harness.train"):
        assert train_model(_model(), _data(64), recipe, TrainOptions(amp="bf16")).amp == "bf16"
        train_model(_model(), _data(64), recipe, TrainOptions(amp="bf16"))  # a second job: said once is enough
    assert sum("without native bfloat16" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    monkeypatch.setattr(harness.train, "_warned_bf16", False)
    monkeypatch.setattr(harness.train, "cpu_has_native_bf16", lambda: True)
    with caplog.at_level("WARNING", logger="harness.train"):
        train_model(_model(), _data(64), recipe, TrainOptions(amp="bf16"))
    assert not caplog.records


def test_resolve_amp_per_device():
    from harness.train import resolve_amp

    assert resolve_amp("bf16", "cpu") == "bf16" and resolve_amp("fp16", "cpu") is None
    assert resolve_amp("fp16", "cuda:1") == "fp16" and resolve_amp("bf16", "cuda") == "bf16"
    assert resolve_amp(None, "cuda") is None and resolve_amp("bf16", "mps") is None


def test_channels_last_is_automatic_on_the_cpu_only_and_an_explicit_choice_wins():
    from harness.train import resolve_channels_last

    assert resolve_channels_last(None, "cpu") is True
    assert resolve_channels_last(None, "cuda") is False and resolve_channels_last(None, "cuda:1") is False
    assert resolve_channels_last(None, "mps") is False
    assert resolve_channels_last(False, "cpu") is False and resolve_channels_last(True, "cuda") is True


def _conv_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 6 * 6, 4))


def test_channels_last_training_matches_contiguous_and_hands_back_a_contiguous_model():
    # SGD: Adam divides by the root of tiny second moments, which turns float32 rounding differences in
    # weights with near-zero gradients into visible ones after a few steps (seen here: same training
    # loss, eval loss 2 % apart), whichever layout is the "right" one.
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=64, epochs=5)
    plain_model, last_model = _conv_model(), _conv_model()
    plain = train_model(plain_model, _data(), recipe, TrainOptions(), evaluate_on=_data(256, 1))
    last = train_model(last_model, _data(), recipe, TrainOptions(channels_last=True), evaluate_on=_data(256, 1))
    assert not plain.channels_last and last.channels_last and last.to_dict(recipe)["channels_last"] is True
    # The same arithmetic in another order: the curves agree to float32 rounding.
    for a, b in zip(plain.history, last.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["eval_accuracy"] == pytest.approx(b["eval_accuracy"], abs=2 / 256)
    assert plain.history[-1]["eval_accuracy"] > 0.9
    # Export, saved weights and latency rows get the usual layout back.
    weights = [p for p in last_model.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous() for p in weights)
    for a, b in zip(plain_model.parameters(), last_model.parameters()):
        assert torch.allclose(a, b, atol=1e-4)


def test_channels_last_is_not_applied_to_inputs_that_are_not_images():
    recipe = Recipe(optimizer="sgd", lr=0.05, batch_size=64, epochs=1)
    x, y = _data()
    model = torch.nn.Sequential(torch.nn.Linear(64, 4))
    result = train_model(model, (x.flatten(1), y), recipe, TrainOptions(channels_last=True))
    assert result.channels_last is False


class _ViewFlatten(torch.nn.Module):
    """The textbook CNN's flatten, ``x.view(x.size(0), -1)``, which cannot read a channels-last tensor."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(1, 8, 3), torch.nn.Linear(8 * 6 * 6, 4)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


def test_a_model_whose_view_cannot_read_channels_last_trains_in_the_default_format_with_a_warning(caplog):
    recipe = Recipe(optimizer="sgd", lr=0.05, batch_size=64, epochs=1)
    torch.manual_seed(0)
    model = _ViewFlatten()
    with caplog.at_level("WARNING", logger="harness.train"):
        result = train_model(model, _data(), recipe, TrainOptions(channels_last=True, label="classic-cnn"))
    assert result.channels_last is False and result.history  # trained, and says it was not channels-last
    assert "classic-cnn: its .view() cannot read channels-last tensors" in caplog.text
    assert "--no-channels-last" in caplog.text
    assert all(p.is_contiguous() for p in model.parameters())


def test_rotate7_augmentation_is_seeded_small_and_shape_preserving():
    from harness.train import augment_batch

    x = torch.zeros(16, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0  # a vertical bar, like a "1"
    a = augment_batch(x, "rotate7", torch.Generator().manual_seed(0))
    b = augment_batch(x, "rotate7", torch.Generator().manual_seed(0))
    c = augment_batch(x, "rotate7", torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, x)  # images really moved
    overlap = (a * x).sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert bool((overlap > 0.6).all())  # but only by a few degrees
    assert float(a.min()) >= -1e-6 and float(a.max()) <= 1 + 1e-6


def test_recipe_augmentation_is_applied_in_training():
    recipe = Recipe(optimizer="sgd", lr=0.05, batch_size=32, epochs=1)
    plain = train_model(_model(seed=3), _data(), recipe, TrainOptions(seed=7)).history
    augmented = train_model(_model(seed=3), _data(), recipe.replace(augment="rotate7"), TrainOptions(seed=7)).history
    assert plain[0]["train_loss"] != augmented[0]["train_loss"]


def test_lazy_build_imports_on_first_call_and_drops_unaccepted_keywords():
    import sys

    from harness import lazy

    build = lazy("harness_plugins.mnist_20k.nets:enhanced_20k")
    assert "lazy('harness_plugins.mnist_20k.nets:enhanced_20k')" == repr(build)
    model = build(num_classes=10, input_shape=(1, 28, 28), dropout=0.2, unknown_setting=1)
    assert "harness_plugins.mnist_20k.nets" in sys.modules
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in model.modules())
    with pytest.raises(ValueError):
        lazy("no_colon_here")


@pytest.mark.slow
def test_compiled_training_forward_trains_like_eager():
    """--compile (torch.compile of the training forward; inductor needs a C compiler, ~25 s here)."""
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=64, epochs=2)
    model = lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),  # noqa: E731
                                        torch.nn.Linear(4 * 6 * 6, 4))
    torch.manual_seed(0)
    eager_model = model()
    torch.manual_seed(0)
    compiled_model = model()
    eager = train_model(eager_model, _data(), recipe, TrainOptions(), evaluate_on=_data(128, 1))
    compiled = train_model(compiled_model, _data(), recipe, TrainOptions(compile=True), evaluate_on=_data(128, 1))
    for a, b in zip(eager.history, compiled.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["eval_accuracy"] == pytest.approx(b["eval_accuracy"], abs=1 / 128 + 1e-9)


def test_a_compile_that_fails_inside_training_falls_back_to_the_eager_forward(monkeypatch, tmp_path, caplog):
    # torch.compile is lazy: inductor's failure (here: no C++ compiler) comes in the first training step, and
    # must not fail the job. A real compile, not a mock: it fails in about 2 s.
    import torch._dynamo
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("/nonexistent-cxx",))
    monkeypatch.setattr(torch._inductor.config, "fx_graph_cache", False)  # a cached graph needs no compiler
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=16, epochs=1)
    data = _data(40)  # two full batches and a partial one (a recompile: guarded too)
    eager_model, compiled_model = _model(), _model()
    eager = train_model(eager_model, data, recipe, TrainOptions())
    torch._dynamo.reset()  # dynamo keeps compiled code per code object: start, and leave, clean
    try:
        compiled = train_model(compiled_model, data, recipe, TrainOptions(compile=True, label="tiny"))
    finally:
        torch._dynamo.reset()
    # torch 2.6 wraps inductor's error as BackendCompilerFailed; later releases raise InductorError
    failure = ("InductorError", "BackendCompilerFailed")
    assert compiled.compile_fallback is not None and compiled.compile_fallback.startswith(failure)
    assert compiled.to_dict(recipe)["compile_fallback"] == compiled.compile_fallback
    assert eager.compile_fallback is None and eager.to_dict(recipe)["compile_fallback"] is None
    warnings = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("tiny: ")
    assert compiled.history[0]["train_loss"] == eager.history[0]["train_loss"]
    for a, b in zip(eager_model.state_dict().values(), compiled_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    from harness.report import _train_settings  # the reports say it trained eagerly, and why

    settings = _train_settings({"compile": False, "compile_fallback": compiled.compile_fallback})
    assert settings.startswith(tuple(f"not compiled ({name}" for name in failure)) and _train_settings({"compile": True}) == "compiled"


def test_count_flops_counts_convolutions_and_matrix_products_per_sample():
    conv, fc = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 13 * 13, 10)
    model = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Flatten(), fc)
    # 2 per multiply-add: each of the 26x26 conv outputs per channel costs in_channels * 3 * 3 of them;
    # batch norm, ReLU and pooling are not counted.
    expected = 2 * 4 * 1 * 3 * 3 * 26 * 26 + 2 * fc.in_features * fc.out_features
    assert count_flops(model, torch.randn(5, 1, 28, 28)) == expected
    assert count_flops(model, torch.randn(1, 1, 28, 28)) == expected  # per sample, whatever the batch


def test_count_flops_restores_the_mode_and_the_random_state():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(8))
    model.train()
    one = torch.randn(1, 8)
    torch.manual_seed(3)
    expected_next = torch.rand(1)
    torch.manual_seed(3)
    assert count_flops(model, one) == 2 * 8 * 8  # batch norm in train mode would refuse a batch of one; dropout draws nothing
    assert model.training and torch.equal(torch.rand(1), expected_next)
    model.eval()
    count_flops(model, torch.randn(2, 8))
    assert not model.training


def test_count_flops_is_none_when_it_cannot_count():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("no forward here")

    assert count_flops(Broken(), torch.randn(2, 3)) is None
    assert count_flops(torch.nn.Linear(3, 2), torch.randn(0, 3)) is None


def test_eval_mode_gives_each_submodule_back_its_own_mode():
    frozen = torch.nn.BatchNorm1d(4)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), frozen)
    model.train()
    frozen.eval()  # a plugin keeping its batch norm statistics fixed while the rest trains
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert model.training and model[0].training and not frozen.training
    count_flops(model, torch.randn(2, 4))
    predict(model, torch.randn(3, 4), "cpu")
    assert model.training and not frozen.training


def test_saved_weights_keep_the_module_versions_a_model_may_need_to_load_them(tmp_path):
    """torchvision's MNASNet reads its version from the state dict's metadata: the weights a run saved
    as a plain dict of tensors failed to load with 'version should be set to 1 or 2 instead of None'."""
    from harness.runner import cpu_state_dict

    class Versioned(torch.nn.Module):
        _version = 2

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
            if local_metadata.get("version") != 2:
                raise ValueError(f"version should be set to 1 or 2 instead of {local_metadata.get('version')}")
            super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    torch.save(cpu_state_dict(Versioned()), tmp_path / "w.pt")
    fresh = Versioned()
    fresh.load_state_dict(torch.load(tmp_path / "w.pt"))  # strict, and the version is there
    plain = {k: v for k, v in Versioned().state_dict().items()}  # what was saved before
    with pytest.raises(ValueError, match="instead of None"):
        Versioned().load_state_dict(plain)


def test_logits_that_do_not_vary_across_inputs_are_told_apart_from_a_model_that_learnt_something():
    """mobilenet-v3-small after an epoch on 256 samples gave every input the same logits (spread 4e-10): its
    export check (max |diff| 1e-9) and every variant's 'drop 0.00' read as proof of an exact export."""
    from harness.runner import constant_output

    same = torch.arange(10.0).repeat(128, 1) + torch.randn(128, 10) * 1e-9
    assert constant_output(same)
    assert not constant_output(torch.randn(128, 10))
    assert not constant_output(torch.arange(10.0).repeat(1, 1))  # one input: nothing to compare
    assert not constant_output(same + torch.linspace(0, 1e-3, 128)[:, None])  # small, but it varies

"""A plugin's spec with a wrongly typed field is refused at registration as that plugin's one-line error.

Before, such a spec crashed `harness plugins`, `harness list` or `harness run` for everyone with a
traceback, or failed only when a job built it. The fake plugins are tests/thirdparty/spec_*.py.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from conftest import THIRDPARTY, run_cli

from harness.registry import build_registry
from harness.specs import DatasetSpec, MetricSpec, ModelSpec, Recipe, Schedule, lazy, spec_problem


def _build(num_classes, input_shape, **kwargs):
    return None


def _errors(registry, plugin):
    return [e.message for e in registry.errors if e.plugin == plugin]


def test_wrongly_typed_fields_refuse_only_that_spec_naming_plugin_spec_and_field(site):
    site.install("harness-spec-bad", {"spec-bad": "spec_bad_fields"})
    site.install("harness-demo-plugin", {"demo": "demo_plugin"})
    registry = build_registry()
    errors = _errors(registry, "spec-bad")
    expected = [
        "model #2 of harness_models(): name must be a non-empty str, not 42",
        "model 'spec-spatial': spatial_shape must be None or a tuple of positive ints, not 28",
        "model 'spec-spatial-rank': spatial_shape (28, 28) has 2 sizes, but input_rank 4 wants 3",
        "model 'spec-recipe': recipe must be a harness.Recipe, not {'lr': 0.01, 'epochs': 1}",
        "model 'spec-recipe-field': recipe.optimizer must be one of sgd, adam, adamw, not 'adamw9'",
        "model 'spec-rank': input_rank must be a positive int",
        "model 'spec-augment-rank': recipe.augment 'rotate7' works on images (input_rank 3) only, not sequences",
        "model 'spec-build-str': build must be callable, not 'spec_bad_fields:build' "
        "(wrap it: build=harness.lazy('spec_bad_fields:build'))",
        "model 'spec-tags': tags must be a tuple of str, not 'image'",
        "dataset 'spec-shape-ds': input_shape must be None or a tuple of positive ints (channels first), not 16",
        "dataset 'spec-classes-ds': num_classes must be None or a positive int, not '4'",
        "metric 'spec-str-metric': compute must be callable, not 'spec_bad_fields:metric'",
        "tracker 'spec-requires-str': requires must be a tuple of str (package names), not 'wandb'",
        "tracker 'spec-make-str': make must be callable, not 'spec_bad_fields:make_tracker'",
    ]
    for text in expected:
        assert any(m.startswith(text) for m in errors), (text, errors)
    assert all("\n" not in m for m in errors)
    assert "not '3'" in next(m for m in errors if "spec-rank" in m)  # the value as written, quotes and all
    # Just the bad specs are refused: the good ones and the other plugins keep theirs.
    assert registry.registered_by("spec-bad") == {
        "models": ["spec-dup", "spec-good"], "datasets": ["spec-good-ds"], "metrics": ["spec-good-metric"],
        "trackers": ["spec-good-tracker"]}
    assert "demo-tiny" in registry.models and "synthetic" in registry.datasets
    assert not _errors(registry, "demo")


def test_a_name_registered_twice_by_one_plugin_says_so(site):
    site.install("harness-spec-bad", {"spec-bad": "spec_bad_fields"})
    (message,) = [m for m in _errors(build_registry(), "spec-bad") if "'spec-dup'" in m]
    assert message == ("model name 'spec-dup' is registered twice by plugin 'spec-bad'; "
                       "the second registration was refused")


def test_naming_a_spec_refused_for_its_fields_says_why_not_did_you_mean(site):
    """`--models spec-rank` said "unknown model 'spec-rank'; did you mean: spec-good ...", though the registry
    had refused it a few lines above for its input_rank."""
    from harness.errors import HarnessError, UnknownNameError
    from harness.runner import RunOptions

    site.install("harness-spec-bad", {"spec-bad": "spec_bad_fields"})
    registry = build_registry()
    with pytest.raises(HarnessError, match=r"^model 'spec-rank' was refused when plugin 'spec-bad' loaded: "
                                               r"input_rank must be a positive int"):
        registry.check_names(RunOptions(models=["spec-rank"]))
    with pytest.raises(UnknownNameError, match=r"^dataset 'spec-classes-ds' was refused when plugin 'spec-bad' "
                                               r"loaded: num_classes must be"):
        registry.get("datasets", "spec-classes-ds")
    with pytest.raises(UnknownNameError, match="^unknown model 'spec-rank'"):  # a run that leaves the plugin out
        registry.get("models", "spec-rank", among=["demo"])


def test_commands_keep_working_beside_a_plugin_with_bad_fields(site):
    site.install("harness-spec-bad", {"spec-bad": "spec_bad_fields"})
    env = site.env()
    plugins = run_cli("plugins", env=env)
    assert plugins.returncode == 0 and "Traceback" not in plugins.stderr, plugins.stderr
    assert "plugin 'spec-bad' (from harness-spec-bad): model 'spec-spatial': spatial_shape" in plugins.stderr
    assert run_cli("plugins", "--strict", env=env).returncode == 1
    for kind in ("models", "datasets", "metrics", "trackers"):
        listed = run_cli("list", kind, "--json", env=env)
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        assert json.loads(listed.stdout)
    # `harness run --plugins all` planned every model against every dataset and crashed on spatial_shape=28;
    # planning needs no training to show it.
    from harness.runner import DatasetCache, RunOptions, plan_jobs

    registry = build_registry()
    plan = plan_jobs(registry, RunOptions(datasets=["synthetic", "synthetic3d"]), DatasetCache(None, 0))
    assert any(job.model.name == "spec-good" for job in plan.jobs)


@pytest.mark.parametrize("spec, said", [
    (ModelSpec("m", _build, input_rank=True), "input_rank must be a positive int"),
    (ModelSpec("m", _build, input_rank=0), "input_rank must be a positive int"),
    (ModelSpec("m", _build, input_channels=0), "input_channels must be None or a positive int, not 0"),
    (ModelSpec("m", _build, spatial_shape=(28, -1)), "spatial_shape must be None or a tuple of positive ints"),
    (ModelSpec("m", _build, spatial_shape=()), "spatial_shape must be None or a tuple of positive ints, not ()"),
    (ModelSpec("m", _build, accepts="yes"), "accepts must be None or callable, not 'yes'"),
    (ModelSpec("m", _build, reference=[1]), "reference must be a dict, not [1]"),
    # the figures the reports read: a percentage, or params as text, fell out of the comparison silently
    (ModelSpec("m", _build, reference={"test_accuracy": 99.1}), "reference['test_accuracy'] must be a fraction"),
    (ModelSpec("m", _build, reference={"best_test_accuracy": "0.99"}), "reference['best_test_accuracy'] must be"),
    (ModelSpec("m", _build, reference={"params": "4,266"}), "reference['params'] must be a whole number"),
    (ModelSpec("m", _build, reference={"epochs": 2.5}), "reference['epochs'] must be a positive int, not 2.5"),
    (ModelSpec("m", _build, reference={"train_minutes": 0}), "reference['train_minutes'] must be a positive number"),
    (ModelSpec("m", _build, reference={"dataset": 1}), "reference['dataset'] must be a str, not 1"),
    (ModelSpec("m", _build, description=1), "description must be a str, not 1"),
    (ModelSpec("", _build), "name must be a non-empty str, not ''"),
    (ModelSpec("my,net", _build), "name must have no comma, no '@' and no space at either end"),
    (DatasetSpec("at@data", _build), "name must have no comma, no '@' and no space at either end"),
    (MetricSpec(" top2", max), "name must have no comma, no '@' and no space at either end"),
    (ModelSpec("m", _build, recipe=Recipe(lr="1e-3")), "recipe.lr must be a positive number, not '1e-3'"),
    (ModelSpec("m", _build, recipe=Recipe(batch_size=64.0)), "recipe.batch_size must be a positive int, not 64.0"),
    (ModelSpec("m", _build, recipe=Recipe(schedule=Schedule(kind="cosine"))), "recipe.schedule.kind must be one of"),
    (ModelSpec("m", _build, recipe=Recipe(normalize=0.5)), "recipe.normalize must be None or a (mean, std) pair"),
    (ModelSpec("m", _build, recipe=Recipe(augment="flip")), "recipe.augment must be None or one of rotate7"),
    (DatasetSpec("d", _build, input_shape=(1, 28.0, 28)), "input_shape must be None or a tuple of positive ints"),
    (DatasetSpec("d", _build, num_classes=True), "num_classes must be None or a positive int, not True"),
    (DatasetSpec("d", None), "load must be callable, not None"),
    (MetricSpec("x", max, higher_is_better="yes"), "higher_is_better must be True or False, not 'yes'"),
])
def test_spec_problem_names_the_field_and_the_value(spec, said):
    assert spec_problem(spec).startswith(said), spec_problem(spec)


def test_a_reference_of_well_formed_figures_and_free_keys_passes():
    reference = {"params": 0, "test_accuracy": 0.991, "val_accuracy_range": (0.98, 0.99), "epochs": 20,
                 "train_minutes": 7.5, "dataset": "mnist", "source": "seed 002", "flops_m": 3.2,
                 "val_accuracy": float("nan")}  # an unknown figure: recorded as null
    assert spec_problem(ModelSpec("m", _build, reference=reference)) is None
    import numpy as np

    reference = {"params": np.int64(6008), "test_accuracy": np.float32(0.5)}  # numpy's numbers are numbers
    assert spec_problem(ModelSpec("m", _build, reference=reference)) is None


def test_specs_as_plugins_and_the_built_ins_write_them_pass():
    assert spec_problem(ModelSpec("m", _build, spatial_shape=[28, 28], tags=["a"], input_channels=1)) is None
    assert spec_problem(ModelSpec("v", _build, input_rank=4, spatial_shape=(16, 16, 16))) is None
    assert spec_problem(DatasetSpec("d", _build, input_shape=[1, 28, 28], num_classes=10)) is None
    assert spec_problem(MetricSpec("x", max, False)) is None
    assert spec_problem(ModelSpec("my net_v2.1+ft", _build)) is None  # a space inside, as --models 'my net' names it
    # what worked before the checks keeps working: a docstring-less description, a set of tags, a zero lr phase
    assert spec_problem(ModelSpec("n", _build, description=None, tags=frozenset({"mlp"}))) is None
    from harness.specs import Recipe, Schedule

    fade = Schedule(kind="piecewise", milestones=((0, 0.01), (5, 0.0)))
    assert spec_problem(ModelSpec("z", _build, recipe=Recipe(schedule=fade))) is None
    registry = build_registry()
    builtin = {name for name, info in registry.host.plugins.items() if info.builtin}
    assert not [str(e) for e in registry.errors if e.plugin in builtin]
    registry.check_targets()  # every built-in build, load and compute fits the harness's call
    assert not [str(e) for e in registry.errors if e.plugin in builtin]


# -- lazy targets: a plain call never imports them; --strict does ----------------------------------------------


def test_lazy_says_which_documented_keywords_its_target_does_not_take():
    module = type(sys)("spec_lazy_inline")
    exec("def positional_only(n, shape): pass\n"
         "def half(num_classes, shape): pass\n"
         "def my_net(num_classes, input_shape): return num_classes, input_shape\n"
         "def needs_width(num_classes, input_shape, width): pass\n"
         "def reader(path, rng): pass\n", module.__dict__)
    sys.modules["spec_lazy_inline"] = module
    try:
        with pytest.raises(TypeError) as caught:
            lazy("spec_lazy_inline:positional_only")(num_classes=10, input_shape=(1, 28, 28))
        assert str(caught.value) == ("build target spec_lazy_inline:positional_only must take keyword arguments "
                                     "num_classes and input_shape (it takes n, shape)")
        with pytest.raises(TypeError, match=r"must take keyword argument input_shape \(it takes num_classes, shape\)"):
            lazy("spec_lazy_inline:half")(num_classes=10, input_shape=(1, 28, 28))
        with pytest.raises(TypeError, match=r"^load target spec_lazy_inline:reader must take keyword arguments "
                                            r"data_dir and seed \(it takes path, rng\)$"):
            lazy("spec_lazy_inline:reader")(data_dir=None, seed=0)
        # Extras a target does not name are still dropped, as designed ...
        assert lazy("spec_lazy_inline:my_net")(num_classes=10, input_shape=(1,), dropout=0.1) == (10, (1,))
        # ... and a target missing something else gets Python's own message, which is right then.
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'width'"):
            lazy("spec_lazy_inline:needs_width")(num_classes=10, input_shape=(1,), widht=3)
    finally:
        del sys.modules["spec_lazy_inline"]
    with pytest.raises(TypeError, match="lazy\\(\\) wants a 'package.module:function' string"):
        lazy(_build)


def _install_lazy_plugin(site):
    site.install("harness-spec-lazy", {"spec-lazy": "spec_lazy_targets"})
    shutil.copy(THIRDPARTY / "spec_lazy_nets.py", site.root / "spec_lazy_nets.py")


def test_check_targets_imports_lazy_targets_and_reads_signatures(site):
    _install_lazy_plugin(site)
    registry = build_registry()
    assert not _errors(registry, "spec-lazy")  # registering imports no target: they look fine until checked
    assert "spec_lazy_nets" not in sys.modules
    registry.check_targets()
    errors = _errors(registry, "spec-lazy")
    expected = [
        "model 'lazy-typo-module': build target spec_lazy_nest:good_net cannot be imported: "
        "ModuleNotFoundError: No module named 'spec_lazy_nest'",
        "model 'lazy-typo-name': build target spec_lazy_nets:godo_net: module 'spec_lazy_nets' has no attribute "
        "'godo_net'",
        "model 'lazy-not-callable': build target spec_lazy_nets:NOT_CALLABLE: not callable (it is 3)",
        "model 'lazy-positional': build target spec_lazy_nets:positional_only must take keyword arguments "
        "num_classes and input_shape (it takes n, shape)",
        "model 'plain-positional': build must take keyword arguments num_classes and input_shape (it takes n, shape)",
        "dataset 'lazy-load-ds': load target spec_lazy_nets:load_positional must take keyword arguments "
        "data_dir and seed (it takes path, rng)",
        "dataset 'plain-load-ds': load must take keyword arguments data_dir and seed (it takes path, rng)",
        "metric 'plain-one-arg': compute must take two positional arguments, logits and targets (it takes logits)",
        "tracker 'plain-keyed-tracker': make must take no arguments (it takes api_key)",
    ]
    assert sorted(errors) == sorted(expected), errors
    assert registry.registered_by("spec-lazy")["models"]  # checked, not refused: their jobs fail as before


def test_plain_plugins_command_imports_no_lazy_target(site, tmp_path):
    _install_lazy_plugin(site)
    mark = tmp_path / "imported"
    env = {**site.env(), "SPEC_LAZY_NETS_MARK": str(mark)}
    result = run_cli("plugins", env=env)
    assert result.returncode == 0 and not mark.exists(), result.stderr
    # the functions the plugin imported itself are read all the same (a signature costs nothing)
    said = result.stdout + result.stderr
    assert "model 'plain-positional': build must take keyword arguments num_classes and input_shape" in said
    assert "tracker 'plain-keyed-tracker': make must take no arguments" in said
    assert "model 'lazy-positional'" not in said  # a lazy target: only --strict imports it


def test_plugins_strict_fails_on_a_misspelt_lazy_target(site, tmp_path):
    _install_lazy_plugin(site)
    mark = tmp_path / "imported"
    env = {**site.env(), "SPEC_LAZY_NETS_MARK": str(mark)}
    result = run_cli("plugins", "--strict", env=env)
    assert result.returncode == 1 and mark.exists()
    assert "build target spec_lazy_nest:good_net cannot be imported: ModuleNotFoundError" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_pair_left_out_says_what_the_model_takes():
    """'does not accept input (1, 28, 28)' left the user to guess: a fixed size, a rank, the channels?"""
    from harness import ModelSpec
    from harness.runner import _refusal

    def build(**kwargs):
        raise AssertionError("not built")

    fixed = ModelSpec("fixed", build, input_channels=3, spatial_shape=(32, 32))
    assert _refusal(fixed, (1, 28, 28)) == "fixed takes 3x32x32 images, not 1x28x28"
    volumes = ModelSpec("vol", build, input_rank=4)
    assert _refusal(volumes, (3, 32, 32)) == "vol takes CxDxHxW volumes, not 3x32x32"
    rgb = ModelSpec("rgb", build, input_channels=3)
    assert _refusal(rgb, (2, 28, 28)) == "rgb takes 3xHxW images, not 2x28x28 (only 1 and 3 channels are adapted " \
                                        "to each other)"
    picky = ModelSpec("picky", build, accepts=lambda shape: shape[1] >= 64)
    assert _refusal(picky, (1, 28, 28)) == "picky does not accept 1x28x28 inputs (its accepts() refused them)"


def test_the_built_in_accuracy_is_the_exact_fraction_not_a_float32_mean():
    """741 of 1000 right is 0.741 in results.json: a float32 mean stored 0.7409999966621399, which a user's
    own `accuracy >= 0.741` check of the rows refused while the edge answer (with its slack) took it."""
    import torch

    from harness_plugins.metrics import accuracy

    targets = torch.zeros(1000, dtype=torch.int64)
    logits = torch.zeros(1000, 2)
    logits[741:, 1] = 1.0  # the last 259 predict class 1
    assert accuracy(logits, targets) == 0.741
    assert accuracy(logits[:3], targets[:3]) == 1.0 and accuracy(logits[-7:], targets[-7:]) == 0.0

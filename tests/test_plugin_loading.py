"""Plugin discovery through entry points: third-party distributions, broken plugins, clashes."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import run_cli

from harness.errors import HarnessError, UnknownNameError
from harness.registry import build_registry


def test_builtin_plugins_are_entry_points_of_the_harness_distribution():
    registry = build_registry()
    builtins = {name for name, info in registry.host.plugins.items() if info.builtin}
    assert {"datasets", "metrics", "mnist-cnns", "mnist-20k", "mwnn", "mnist-attention", "cnn3d"} <= builtins
    assert all(registry.host.plugins[name].distribution == "harness" for name in builtins)
    assert registry.owners["datasets"]["synthetic"] == "datasets"


def test_third_party_distribution_is_discovered_with_its_name_and_version(site):
    site.install("harness-demo-plugin", {"demo": "demo_plugin"}, version="2.3")
    registry = build_registry()
    info = registry.host.plugins["demo"]
    assert (info.distribution, info.version, info.builtin) == ("harness-demo-plugin", "2.3", False)
    assert info.hooks == ["harness_datasets", "harness_metrics", "harness_models"]
    assert registry.registered_by("demo") == {
        "models": ["demo-tiny"], "datasets": ["demo-blobs"], "metrics": ["demo-top2"], "trackers": []}
    assert not [e for e in registry.errors if e.plugin == "demo"]


def test_broken_import_is_reported_with_plugin_and_distribution_and_the_rest_works(site):
    site.install("harness-broken", {"broken": "broken_import"})
    site.install("harness-demo-plugin", {"demo": "demo_plugin"})
    registry = build_registry()
    errors = [e for e in registry.errors if e.plugin == "broken"]
    assert len(errors) == 1
    assert errors[0].distribution == "harness-broken"
    assert "ModuleNotFoundError" in errors[0].message and "\n" not in errors[0].message
    assert "demo-tiny" in registry.models and "synthetic" in registry.datasets


def test_duplicate_name_is_refused_naming_both_plugins_and_the_builtin_keeps_it(site):
    site.install("harness-clash", {"clash": "clash_plugin"})
    registry = build_registry()
    assert registry.owners["metrics"]["accuracy"] == "metrics"
    assert registry.metrics["accuracy"].compute.__module__ == "harness_plugins.metrics"
    (error,) = [e for e in registry.errors if e.plugin == "clash"]
    assert "'accuracy'" in error.message and "'metrics'" in error.message and "'clash'" in error.message
    assert registry.owners["metrics"]["clash-own"] == "clash"  # its other registration still counts


def test_a_name_lost_to_an_unselected_plugin_says_which_and_how_to_keep_it_out(site):
    site.install("harness-demo-plugin", {"demo": "demo_plugin"})
    site.install("harness-adupe", {"adupe": "takes_demo_name"})  # "adupe" sorts first: it takes demo-tiny
    registry = build_registry()
    assert registry.owners["models"]["demo-tiny"] == "adupe"
    with pytest.raises(UnknownNameError) as raised:
        registry.select("models", ["demo-tiny"], ["demo"])
    assert str(raised.value) == (
        "model 'demo-tiny' comes from plugin 'adupe', which --plugins does not include; plugin 'demo' registers it "
        "too, but 'adupe' took it first (plugins load in entry-point name order): HARNESS_DISABLE_PLUGINS=adupe "
        "keeps 'adupe' out")


def test_a_trylast_or_tryfirst_hook_does_not_take_a_builtin_name(site):
    # pluggy calls a trylast implementation first: collecting in its order handed "accuracy" to the plugin
    site.install("harness-clash-ordered", {"ordered": "clash_ordered_plugin"})
    registry = build_registry()
    assert registry.owners["metrics"]["accuracy"] == "metrics"
    assert registry.owners["datasets"]["synthetic"] == "datasets"
    assert sorted(e.kind for e in registry.errors if e.plugin == "ordered") == ["datasets", "metrics"]
    assert not [e for e in registry.errors if e.plugin in ("metrics", "datasets")]


def test_raising_hook_and_wrong_return_type_are_reported_per_plugin(site):
    site.install("harness-raising", {"raising": "raising_hook"})
    registry = build_registry()
    messages = [e.message for e in registry.errors if e.plugin == "raising"]
    assert any("harness_models() raised RuntimeError: model zoo offline" in m for m in messages)
    assert any("harness_datasets() must return a list, got dict" in m for m in messages)
    assert "mnist-cnn" in registry.models


def test_a_selected_plugin_whose_hook_failed_is_the_reason_given_for_no_job(site):
    site.install("harness-raising", {"raising": "raising_hook"})
    run = run_cli("run", "--plugins", "raising,datasets", "--datasets", "synthetic", env=site.env())
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "harness: warning: plugin 'raising'" in run.stderr  # selected: its error in full, before the run
    last = run.stderr.strip().splitlines()[-1]
    assert "no job to run" in last and "plugin 'raising' failed: harness_models() raised RuntimeError" in last
    assert run_cli("plugins", env=site.env()).returncode == 0
    assert run_cli("plugins", "--strict", "--json", env=site.env()).returncode == 1  # a plugin package's CI gate
    debug = run_cli("--debug", "plugins", env=site.env())  # where in the plugin the hook raised
    assert "Traceback" in debug.stderr and "model zoo offline" in debug.stderr and "raising_hook.py" in debug.stderr
    # harness list, where a user looks for the missing model, says that a plugin failed
    listed = run_cli("list", "models", "--json", env=site.env())
    assert listed.returncode == 0 and json.loads(listed.stdout)  # the JSON stays clean on stdout
    recipes = {m["name"]: m["recipe"] for m in json.loads(listed.stdout)}  # what training will do, before a run
    assert recipes["mnist-ultralight-cnn"]["augment"] == "rotate7" and "seed 002" in recipes["mnist-ultralight-cnn"]["source"]
    assert "1 plugin(s) had errors loading or registering: raising (see 'harness plugins')" in listed.stderr
    # a selection that registers no dataset is pointed at plugins that do, not at one already chosen
    run = run_cli("run", "--plugins", "datasets", env=site.env())
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 2 and "register no model" in last and "e.g. 'cnn3d'" in last and "'datasets'" not in last
    # a plugin the run does not select is one summary line, not its every error
    assert "1 plugin(s) not selected here had errors loading or registering: raising" in run.stderr
    assert "harness_models() raised" not in run.stderr


def test_misspelt_hook_is_caught_by_check_pending(site):
    site.install("harness-typo", {"typo": "misspelt_hook"})
    registry = build_registry()
    (error,) = [e for e in registry.errors if e.plugin == "typo"]
    # the hook meant, and the module by name (pluggy's message has its repr, an absolute path)
    assert error.message == "unknown hook 'harness_modles' in misspelt_hook (did you mean harness_models?)"
    assert "typo" not in registry.host.plugins


def test_an_unknown_name_lists_the_selected_plugins_names_and_their_failures_only(site):
    """With --plugins, the 'known:' list held every plugin's names and the failure note every plugin that
    failed anything, one that registers no metric (or registers nothing) among them."""
    from harness.runner import RunOptions

    site.install("harness-faulty", {"faulty": "faulty_plugin"})  # registers fault-metric
    site.install("harness-raising", {"raising": "raising_hook"})  # its models hook raises
    site.install("harness-unmarked", {"unmarked": "unmarked_plugin"})  # loads, with no harness hook
    registry = build_registry()
    with pytest.raises(HarnessError) as caught:
        registry.check_names(RunOptions(plugins=["datasets"], metrics=["zzz"]))
    message = str(caught.value)
    assert message.startswith("unknown metric 'zzz'; known: accuracy, macro-f1, nll"), message
    assert "fault-metric" not in message and "raising" not in message and "unmarked" not in message
    # every plugin: the failure note names one whose hook of that kind failed, not one without such a hook
    with pytest.raises(HarnessError) as caught:
        registry.check_names(RunOptions(models=["zzz"]))
    assert "'raising'" in str(caught.value) and "unmarked" not in str(caught.value), str(caught.value)
    with pytest.raises(HarnessError) as caught:
        registry.check_names(RunOptions(metrics=["zzz"]))
    assert "fault-metric" in str(caught.value) and "raising" not in str(caught.value), str(caught.value)


def test_a_hook_that_takes_arguments_is_said_in_harness_words():
    """pluggy's message ("Argument(s) {'num_classes'} are declared in the hookimpl but can not be found in the
    hookspec") does not say what to write instead."""
    import types

    from harness import hookimpl
    from harness.manager import PluginHost

    plugin = types.ModuleType("with_arguments")
    plugin.harness_models = hookimpl(lambda num_classes: [])
    host = PluginHost()
    assert host.register(plugin, "with-arguments") is False
    (error,) = host.errors
    assert error.message.startswith("harness_models(num_classes): harness hooks take no arguments (def "
                                    "harness_models(): return [...])")
    assert "with-arguments" not in host.plugins


def test_same_distribution_seen_twice_is_not_a_clash(site):
    site.install("harness-demo-plugin", {"demo": "demo_plugin"})
    from importlib import metadata

    from harness.manager import PluginHost

    eps = [ep for ep in metadata.entry_points(group="harness") if ep.name == "demo"]
    host = PluginHost()
    host.load_entry_points(eps + eps)
    assert list(host.plugins) == ["demo"] and host.errors == []


def test_plugins_command_lists_third_party_and_errors_as_json(site):
    site.install("harness-demo-plugin", {"demo": "demo_plugin"}, version="0.9")
    site.install("harness-broken", {"broken": "broken_import"})
    result = run_cli("plugins", "--json", env=site.env())
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    demo = next(p for p in data["plugins"] if p["name"] == "demo")
    assert demo["distribution"] == "harness-demo-plugin" and demo["version"] == "0.9"
    assert demo["registered"]["models"] == ["demo-tiny"]
    assert any(e["plugin"] == "broken" and e["distribution"] == "harness-broken" and e["version"]
               for e in data["errors"])
    table = run_cli("plugins", env=site.env()).stdout  # a plugin that did not load has its row too
    broken = next(line for line in table.splitlines() if line.startswith("broken "))
    assert "harness-broken" in broken and broken.rstrip().endswith("not loaded (see errors below)"), table
    site.install("harness-ending", {"ending": "ending_reporter"})
    table = run_cli("plugins", env=site.env()).stdout  # a reporter plugin registers nothing ahead of a run
    ending = next(line for line in table.splitlines() if line.startswith("ending "))
    assert ending.rstrip().endswith("reporters: made when a run starts"), table
    trackers = next(line for line in table.splitlines() if line.startswith("trackers "))
    assert trackers.rstrip().endswith("trackers: mlflow, tensorboard"), table
    names = [name for p in data["plugins"] for kind in p["registered"].values() for name in kind]
    assert all(name in table for name in names), table  # wrapped at spaces, never inside a hyphenated name
    from harness.cli import _wrapped_names

    long = "models: " + ", ".join(f"tv-mobilenet-v{i}-small" for i in range(6))
    lines = _wrapped_names(long).splitlines()
    assert len(lines) > 1 and all(any(f"tv-mobilenet-v{i}-small" in line for line in lines) for i in range(6))


def test_plugins_and_help_do_not_import_torch_onnx_or_onnxruntime(site):
    site.install("harness-demo-plugin", {"demo": "demo_plugin"})
    site.install("harness-spec-bad", {"spec-bad": "spec_bad_fields"})  # checking spec fields imports nothing
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom harness.cli import main\n"
        "for args in (['--help'], ['plugins'], ['list', 'models'], ['list', 'datasets'], ['run', '--help']):\n"
        "    r = CliRunner().invoke(main, args)\n    assert r.exit_code == 0, (args, r.output)\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=site.env())
    assert result.returncode == 0, result.stderr


def test_a_misspelt_name_is_refused_before_torch_is_imported():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom harness.cli import main\n"
        "for args in (['run', '--models', 'mnist-mpl'], ['run', '--datasets', 'mnis'], ['run', '--metrics', 'acc']):\n"
        "    r = CliRunner().invoke(main, args)\n    assert r.exit_code == 2 and 'did you mean' in r.output, r.output\n"
        "assert 'torch' not in sys.modules\n"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_plugin_mistakes_are_said_not_silent(site, monkeypatch):
    site.install("harness-broken", {"broken": "broken_import"})
    site.install("harness-unmarked", {"unmarked": "unmarked_plugin"})
    site.install("harness-half-marked", {"half": "half_marked_plugin"})
    site.install("harness-demo-plugin", {"demo": "demo_plugin"})
    env = {**site.env(), "HARNESS_DISABLE_PLUGINS": "demo,demmo"}
    listed = run_cli("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    errors = {e["plugin"]: e["error"] for e in data["errors"]}
    assert "implements no harness hook" in errors["unmarked"]  # loaded, but nothing it defines is a hook
    # its models hook works, its datasets hook lacks the marker: the dataset would just be missing
    assert errors["half"] == "harness_datasets is not decorated with harness.hookimpl, so it is never called"
    assert next(p for p in data["plugins"] if p["name"] == "half")["hooks"] == ["harness_models"]
    assert "no installed plugin has that entry-point name" in errors["demmo"]  # a typo in the variable
    assert data["disabled"] == ["demo"]
    assert all(isinstance(p["import_seconds"], float) for p in data["plugins"])  # what each costs at start-up
    # Selecting a plugin that failed to import names the failure, not "unknown plugin".
    run = run_cli("run", "--plugins", "broken,datasets", "--datasets", "synthetic", env=env)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "plugin 'broken' failed to load: failed to import broken_import: ModuleNotFoundError" in run.stderr
    disabled = run_cli("run", "--plugins", "demo", env=env)
    assert disabled.returncode == 2 and "plugin 'demo' is disabled by HARNESS_DISABLE_PLUGINS" in disabled.stderr
    by_name = run_cli("run", "--models", "demo-tiny", env=env)  # named by what it registers: the same reason
    assert by_name.returncode == 2 and "HARNESS_DISABLE_PLUGINS keeps out plugin(s) demo" in by_name.stderr
    listed = run_cli("list", "models", env=env)
    assert "HARNESS_DISABLE_PLUGINS keeps out plugin(s) demo" in listed.stderr and "demo-tiny" not in listed.stdout
    # --debug shows where the import failed.
    debug = run_cli("--debug", "plugins", env=env)
    assert "Traceback" in debug.stderr and "harness_this_module_does_not_exist" in debug.stderr


def test_a_torchvision_built_for_another_torch_is_named_where_a_plugin_or_job_fails_on_it():
    """A plugin wrapping torchvision models failed with a bare 'operator torchvision::nms does not exist'; only
    the dataset loaders said what it means."""
    from harness.manager import one_line

    said = one_line(RuntimeError("operator torchvision::nms does not exist"))
    assert said.startswith("RuntimeError: operator torchvision::nms does not exist (torchvision was built for "
                           "another torch than the one installed")
    assert "pip install torch torchvision --index-url" in said
    assert one_line(RuntimeError("nms does not exist")) == "RuntimeError: nms does not exist"  # no hint elsewhere


def test_two_built_in_plugins_registering_one_name_are_told_to_rename_the_new_one():
    """A contributor's new built-in took 'mnist-fast' (built-ins load in entry-point name order) and the
    error read as though the untouched plugin had been refused for a clash it did not start."""
    from harness import ModelSpec, hookimpl
    from harness.manager import PluginHost, PluginInfo
    from harness.registry import Registry

    class Plugin:
        def __init__(self, name):
            self.name = name

        @hookimpl
        def harness_models(self):
            return [ModelSpec("shared-net", lambda num_classes, input_shape: None, description=self.name)]

    host = PluginHost()
    for name, builtin in (("anew", True), ("fast", True), ("outside", False)):
        host.register(Plugin(name), name, PluginInfo(name=name, distribution="harness" if builtin else "x",
                                                     builtin=builtin))
    registry = Registry.from_host(host)
    assert registry.owners["models"]["shared-net"] == "anew"
    messages = {e.plugin: e.message for e in registry.errors}
    assert messages["fast"] == ("model name 'shared-net' is registered by two built-in plugins, 'anew' and 'fast' "
                                "(the first loaded in entry-point name order keeps it): rename the new one's")
    assert messages["outside"] == ("model name 'shared-net' is already registered by plugin 'anew'; the "
                                   "registration by 'outside' was refused")


def test_a_name_in_another_case_is_suggested_first():
    """Model names are case-sensitive; MNIST-MLP got the whole list of names and no suggestion."""
    from harness.registry import did_you_mean, unknown_name_message

    known = ["mnist-mlp", "mnist-cnn", "mnist-fast"]
    assert unknown_name_message("model", "MNIST-MLP", known) == "unknown model 'MNIST-MLP'; did you mean: mnist-mlp?"
    assert did_you_mean("mnist-mpl", known).startswith("; did you mean: mnist-mlp")

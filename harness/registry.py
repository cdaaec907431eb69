"""Names -> specs, collected from every plugin's hooks.

Each plugin's hook implementation is called on its own so that a hook that
raises, or returns something other than a list of the right spec type, is
reported against that plugin and the rest still registers. A spec with a
field of the wrong type (``spatial_shape=28``, ``build="pkg.mod:fn"``) is
refused the same way, naming the plugin, the spec and the field. The first plugin
to register a name keeps it; a second registration is refused and reported as
the second plugin's error, naming both plugins.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from harness.errors import HarnessError, UnknownNameError
from harness.manager import LoadError, PluginHost, load_plugins, one_line
from harness.specs import DatasetSpec, MetricSpec, ModelSpec, TrackerSpec, call_problem, lazy, spec_problem

log = logging.getLogger(__name__)

BUILTIN_METRICS_PLUGIN = "metrics"  # the entry point of harness_plugins.metrics


def with_builtin_metrics(plugins: Iterable[str] | None) -> list[str] | None:
    """The plugins a ``--plugins`` selection lets take part, the built-in metrics' among them (accuracy,
    nll, macro-f1 take part in every run); None (every plugin) stays None."""
    return None if plugins is None else [*plugins, BUILTIN_METRICS_PLUGIN]

KINDS: dict[str, tuple[str, type]] = {
    "models": ("harness_models", ModelSpec),
    "datasets": ("harness_datasets", DatasetSpec),
    "metrics": ("harness_metrics", MetricSpec),
    "trackers": ("harness_trackers", TrackerSpec),
}
SINGULAR = {"models": "model", "datasets": "dataset", "metrics": "metric", "trackers": "tracker"}
ROLES = {"models": "build", "datasets": "load", "metrics": "compute", "trackers": "make"}  # the callable each kind's spec holds


def spec_label(kind: str, spec: Any, index: int, hook_name: str) -> str:
    """``model 'm'``, or ``model #2 of harness_models()`` when its name is no name."""
    if isinstance(spec.name, str) and spec.name.strip():
        return f"{SINGULAR[kind]} {spec.name!r}"
    return f"{SINGULAR[kind]} #{index + 1} of {hook_name}()"


@dataclass
class Registry:
    """Every model, dataset, metric and tracker the loaded plugins offer, by name."""

    host: PluginHost
    specs: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    owners: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})
    refused: dict[str, dict[str, list[str]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    """kind -> name -> the plugins whose registration of that taken name was refused."""
    rejected: dict[str, dict[str, tuple[str, str]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    """kind -> name -> (plugin, why) for a spec refused for its fields when its plugin loaded."""

    @property
    def errors(self) -> list[LoadError]:
        return self.host.errors

    @property
    def models(self) -> dict[str, ModelSpec]:
        return self.specs["models"]

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        return self.specs["datasets"]

    @property
    def metrics(self) -> dict[str, MetricSpec]:
        return self.specs["metrics"]

    @property
    def trackers(self) -> dict[str, TrackerSpec]:
        return self.specs["trackers"]

    @classmethod
    def from_host(cls, host: PluginHost) -> "Registry":
        registry = cls(host=host)
        # In plugin registration order (built-ins were registered first, so their names win a clash).
        # get_hookimpls() is not that order: pluggy puts a trylast implementation first and a tryfirst
        # one last, which let a third-party trylast hook take "accuracy" from the built-ins.
        order = {name: index for index, name in enumerate(host.plugins)}
        for kind, (hook_name, spec_type) in KINDS.items():
            caller = getattr(host.pm.hook, hook_name)
            for impl in sorted(caller.get_hookimpls(), key=lambda i: order.get(i.plugin_name, len(order))):
                registry._collect(kind, spec_type, impl.plugin_name, impl.function)
        return registry

    def _collect(self, kind: str, spec_type: type, plugin: str, function: Any) -> None:
        dist = self.host.plugins[plugin].distribution if plugin in self.host.plugins else None
        hook_name = KINDS[kind][0]
        try:
            result = function()
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not stop the harness
            log.debug("plugin %r: %s() raised", plugin, hook_name, exc_info=True)  # --debug: the traceback
            self.errors.append(LoadError(plugin, dist, f"{hook_name}() raised {one_line(exc)}", kind))
            return
        if not isinstance(result, (list, tuple)):
            self.errors.append(
                LoadError(plugin, dist, f"{hook_name}() must return a list, got {type(result).__name__}", kind)
            )
            return
        for index, item in enumerate(result):
            if not isinstance(item, spec_type):
                self.errors.append(
                    LoadError(
                        plugin,
                        dist,
                        f"{hook_name}() returned {type(item).__name__}, expected {spec_type.__name__}",
                        kind,
                    )
                )
                continue
            try:
                problem = spec_problem(item)
            except Exception as exc:  # noqa: BLE001 - a field whose own methods raise (an odd __eq__, __len__)
                log.debug("plugin %r: checking %r raised", plugin, item, exc_info=True)
                problem = f"its fields cannot be checked: {one_line(exc)}"
            if problem is not None:  # refused now, rather than a traceback wherever the field is first read
                label = spec_label(kind, item, index, hook_name)
                self.errors.append(LoadError(plugin, dist, f"{label}: {problem}", kind))
                if isinstance(item.name, str) and item.name.strip():  # so naming it says why, not "did you mean"
                    self.rejected[kind].setdefault(item.name, (plugin, problem))
                continue
            owner = self.owners[kind].get(item.name)
            if owner is not None:
                both_builtin = all(getattr(self.host.plugins.get(p), "builtin", False) for p in (owner, plugin))
                said = (f"is registered twice by plugin {plugin!r}; the second registration was refused"
                        if owner == plugin else
                        # two of the harness's own: the first by entry-point name took it, not the older one
                        f"is registered by two built-in plugins, {owner!r} and {plugin!r} (the first loaded in "
                        "entry-point name order keeps it): rename the new one's" if both_builtin else
                        f"is already registered by plugin {owner!r}; the registration by {plugin!r} was refused")
                self.errors.append(LoadError(plugin, dist, f"{SINGULAR[kind]} name {item.name!r} {said}", kind))
                self.refused[kind].setdefault(item.name, []).append(plugin)
                continue
            self.specs[kind][item.name] = item
            self.owners[kind][item.name] = plugin

    def source(self, kind: str, name: str) -> dict[str, Any] | None:
        """Which plugin registered the ``kind`` spec ``name``, from which distribution at which version
        (recorded per job: a third-party model's code is named by its package's version)."""
        plugin = self.owners[kind].get(name)
        if plugin is None:
            return None
        info = self.host.plugins.get(plugin)
        return {"plugin": plugin, "distribution": info.distribution if info else None,
                "version": info.version if info else None}

    def check_targets(self, imported_only: bool = False) -> None:
        """Import every lazy target and read every build/load/compute signature, recording what the harness's
        call would trip over as the owning plugin's error (``harness plugins --strict``).

        Not done on every command: importing the targets imports torch, which ``harness plugins`` and
        ``harness list`` are kept free of. ``imported_only``: read only the functions already imported (not
        lazy targets), which costs nothing (plain ``harness plugins``). A spec found wrong stays registered
        (its jobs fail as before)."""
        for kind, specs in self.specs.items():
            role = ROLES[kind]
            for name, spec in specs.items():
                if imported_only and isinstance(getattr(spec, role), lazy):
                    continue
                plugin = self.owners[kind][name]
                info = self.host.plugins.get(plugin)
                try:
                    problem = call_problem(role, getattr(spec, role))
                except BaseException as exc:  # noqa: BLE001 - a plugin's import may raise anything, SystemExit too
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    log.debug("plugin %r: checking %s %r's %s raised", plugin, SINGULAR[kind], name, role,
                              exc_info=True)  # --debug: the traceback
                    target = getattr(getattr(spec, role), "target", None)
                    where = f"{role} target {target} cannot be imported" if target else f"{role} cannot be checked"
                    problem = f"{where}: {one_line(exc)}"
                if problem is not None:
                    self.errors.append(LoadError(plugin, info.distribution if info else None,
                                                 f"{SINGULAR[kind]} {name!r}: {problem}", kind))

    # -- lookup -------------------------------------------------------------------------------------
    def get(self, kind: str, name: str, among: Iterable[str] | None = None) -> Any:
        """The spec called ``name``; :class:`UnknownNameError` with close matches otherwise. ``among``: the
        plugins a run selects, whose names alone the error lists when none is close (None: every plugin)."""
        try:
            return self.specs[kind][name]
        except KeyError:
            chosen = None if among is None else set(among)
            if name in self.rejected[kind] and (chosen is None or self.rejected[kind][name][0] in chosen):
                plugin, problem = self.rejected[kind][name]
                raise UnknownNameError(f"{SINGULAR[kind]} {name!r} was refused when plugin {plugin!r} loaded: "
                                       f"{problem}") from None
            known = [n for n, owner in self.owners[kind].items() if chosen is None or owner in chosen]
            close = did_you_mean(name, self.specs[kind])  # a close name of another plugin is still the likely typo
            message = f"unknown {SINGULAR[kind]} {name!r}{close}" if close else \
                unknown_name_message(SINGULAR[kind], name, known or self.specs[kind])
            disabled = self.disabled_text()
            if disabled:  # the likeliest reason when the name is a built-in one
                message += f" ({disabled}: if the name is one of theirs, leave them in)"
            hook = f"harness_{kind}"
            # the other likely reason: a plugin that may register it did not load, or its hook failed; not one
            # that loaded without that hook (its kind-less errors: no hook at all, an undecorated other one)
            failed = list(dict.fromkeys(
                e.plugin for e in self.errors
                if (chosen is None or e.plugin in chosen)
                and (e.kind == kind or (e.kind is None and (e.plugin not in self.host.plugins or hook in e.message)))))
            if failed:
                message += (f" (plugin{'s' if len(failed) > 1 else ''} {', '.join(map(repr, failed))} failed to "
                            f"load or register {kind}: see 'harness plugins')")
            raise UnknownNameError(message) from None

    def check_names(self, options: Any, where: dict[str, str] | None = None) -> None:
        """Refuse (:class:`HarnessError`) a plugin, model, dataset or metric that ``options`` (a
        :class:`harness.runner.RunOptions`) names and no loaded plugin offers: a plugin that failed to
        load or is disabled is said so; an unknown name gets close matches. ``where`` maps a kind
        (``plugins``, ``models`` ...) to where its names came from, put before the message."""
        where = where or {}
        for name in options.plugins or []:
            if name not in self.host.plugins:
                failed = [e.message for e in self.errors if e.plugin == name]
                if failed:
                    message = f"plugin {name!r} failed to load: {failed[0]}"
                elif name in getattr(self.host, "disabled", []):
                    message = f"plugin {name!r} is disabled by HARNESS_DISABLE_PLUGINS"
                else:
                    message = unknown_name_message("plugin", name, self.host.plugins)
                raise HarnessError(f"{where['plugins']}: {message}" if "plugins" in where else message)
        for kind in ("models", "datasets", "metrics"):
            among = with_builtin_metrics(options.plugins) if kind == "metrics" else options.plugins
            for name in getattr(options, kind) or []:
                try:
                    self.get(kind, name, among)
                except HarnessError as exc:
                    raise HarnessError(f"{where[kind]}: {exc}" if kind in where else str(exc)) from None

    def disabled_text(self) -> str | None:
        """``HARNESS_DISABLE_PLUGINS keeps out plugin(s) a, b``, or None when it keeps out none."""
        disabled = list(getattr(self.host, "disabled", []))
        return f"HARNESS_DISABLE_PLUGINS keeps out plugin(s) {', '.join(disabled)}" if disabled else None

    def registered_by(self, plugin: str) -> dict[str, list[str]]:
        """What ``plugin`` registered, per kind."""
        return {
            kind: sorted(n for n, owner in owners.items() if owner == plugin)
            for kind, owners in self.owners.items()
        }

    def select(self, kind: str, names: Iterable[str] | None, plugins: Iterable[str] | None = None) -> list[Any]:
        """Specs of ``kind`` named in ``names`` (all when None) whose owner is in ``plugins`` (all when None).

        Unknown names raise :class:`UnknownNameError`; a name whose owner is
        not among ``plugins`` is a usage error too.
        """
        allowed = set(plugins) if plugins is not None else None
        if names is None:
            return [
                spec
                for name, spec in self.specs[kind].items()
                if allowed is None or self.owners[kind][name] in allowed
            ]
        chosen = []
        for name in names:
            spec = self.get(kind, name)
            owner = self.owners[kind][name]
            if allowed is not None and owner not in allowed:
                message = f"{SINGULAR[kind]} {name!r} comes from plugin {owner!r}, which --plugins does not include"
                refused = [plugin for plugin in self.refused[kind].get(name, []) if plugin in allowed]
                if refused:  # the selected plugin's own registration lost the name to one not selected
                    message += (f"; plugin {refused[0]!r} registers it too, but {owner!r} took it first (plugins "
                                f"load in entry-point name order): HARNESS_DISABLE_PLUGINS={owner} keeps {owner!r} out")
                raise UnknownNameError(message)
            chosen.append(spec)
        return chosen


def did_you_mean(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """``; did you mean: a, b?`` for the names of ``known`` close to ``name``, or "" when none is: a name
    that differs only in case first (names are case-sensitive: MNIST-MLP is no model), then by spelling."""
    known = sorted(known)
    same = [k for k in known if k.lower() == name.lower() and k != name]
    close = same + [k for k in difflib.get_close_matches(name, known, n=n, cutoff=cutoff) if k not in same]
    return f"; did you mean: {', '.join(close[:n])}?" if close else ""


def unknown_name_message(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown model 'x'; did you mean: a, b`` (or the full list when nothing is close)."""
    known = sorted(known)
    close = did_you_mean(name, known)
    if close:
        return f"unknown {what} {name!r}{close}"
    listing = ", ".join(known) if known else "none registered"
    return f"unknown {what} {name!r}; known: {listing}"


def build_registry(extra: Iterable[tuple[str, object]] = ()) -> Registry:
    """Load every plugin and collect what each one registers."""
    return Registry.from_host(load_plugins(extra))

"""Builds the one :class:`pluggy.PluginManager` of harness and loads plugins.

Entry points of the ``harness`` group are loaded one by one, so a plugin that
fails to import (or implements a misspelt hook) is recorded as a
:class:`LoadError` naming the plugin and its distribution, and every other
plugin still works. Built-in plugins travel the same road: they are entry
points of the ``harness`` distribution itself, loaded before third-party ones
so that built-in names win a clash.

The environment variable ``HARNESS_DISABLE_PLUGINS`` (comma-separated
entry-point names) blocks plugins by name, and ``HARNESS_NO_ENTRY_POINTS=1``
skips entry points altogether (tests register plugin objects directly).
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from harness import hookspecs
from harness._names import ENTRY_POINT_GROUP, NAME
from harness.text import squeeze

BUILTIN_DISTRIBUTION = NAME
HOOK_NAMES = sorted(name for name in vars(hookspecs) if name.startswith(f"{NAME}_"))
SLOW_IMPORT_S = 0.5  # `harness plugins` points at a plugin whose import takes longer

log = logging.getLogger(__name__)


@dataclass
class PluginInfo:
    """What is known about one plugin: its entry-point name and where it came from."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    import_seconds: float | None = None  # how long importing its entry point took (None: registered directly)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "builtin": self.builtin,
            "hooks": list(self.hooks),
            "import_seconds": None if self.import_seconds is None else round(self.import_seconds, 3),
        }


def _with_arguments(plugin: object) -> str | None:
    """What is wrong with a plugin whose hook functions take parameters, in harness's words (pluggy's
    names the arguments the spec lacks); None when none does. Every harness hook takes none: the harness
    calls it once and it returns its specs."""
    import inspect

    wrong = []
    for hook in HOOK_NAMES:
        function = getattr(plugin, hook, None)
        if not callable(function):
            continue
        try:
            parameters = list(inspect.signature(function).parameters)
        except (TypeError, ValueError):
            continue
        if parameters:
            wrong.append(f"{hook}({', '.join(parameters)})")
    if not wrong:
        return None
    return (f"{'; '.join(wrong)}: harness hooks take no arguments (def {wrong[0].split('(')[0]}(): return [...]); "
            "the plugin is not loaded")


@dataclass
class LoadError:
    """A plugin that could not be loaded or whose hook failed; ``message`` is one line."""

    plugin: str
    distribution: str | None
    message: str
    kind: str | None = None
    """``models``, ``datasets``, ``metrics`` or ``trackers`` when the error came from registering that kind (a hook that
    raised, returned the wrong type, or a refused name); None for import and load errors."""

    def __str__(self) -> str:
        dist = f" (from {self.distribution})" if self.distribution else ""
        return f"plugin {self.plugin!r}{dist}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "distribution": self.distribution, "version": self.version(),
                "error": self.message}

    def version(self) -> str | None:
        """The installed version of the plugin's distribution (a plugin that failed to load has no
        :class:`PluginInfo` to say it); None when unknown."""
        return package_version(self.distribution) if self.distribution else None


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``; None when it is not installed (or its name is no
    distribution's)."""
    try:
        return metadata.version(name)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` squeezed onto a single line (colour codes removed, at most ``limit`` characters)."""
    text = squeeze(exc, limit)  # squeeze drops colour codes too
    from harness.errors import known_cause

    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__) + known_cause(exc)


class PluginHost:
    """The plugin manager plus what was learnt while loading plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.errors: list[LoadError] = []
        self.disabled: list[str] = []  # entry points that HARNESS_DISABLE_PLUGINS kept out

    # -- registration -------------------------------------------------------------------------------
    def register(self, plugin: object, name: str, info: PluginInfo | None = None) -> bool:
        """Register ``plugin`` under ``name``; False (and a recorded error) if that fails."""
        info = info or PluginInfo(name=name, module=getattr(plugin, "__name__", type(plugin).__name__))
        if self.pm.has_plugin(name) or name in self.plugins:
            other = self.plugins.get(name)
            where = f" by {other.distribution}" if other and other.distribution else ""
            self.errors.append(
                LoadError(name, info.distribution, f"plugin name {name!r} is already registered{where}")
            )
            return False
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validates hookimpl signatures here
            self.errors.append(LoadError(name, info.distribution, _with_arguments(plugin) or one_line(exc)))
            return False
        self.plugins[name] = info
        if not self._check_pending(name, info):
            return False
        info.hooks = sorted(
            caller.name for caller in (self.pm.get_hookcallers(plugin) or []) if caller.name.startswith(NAME)
        )
        if not info.hooks:  # loaded, yet it can contribute nothing: say so rather than list it silently
            self.errors.append(LoadError(name, info.distribution, "implements no harness hook: are its hook "
                                         "functions decorated with harness.hookimpl (not another project's marker)?"))
            return True
        # a hook left undecorated beside decorated ones is never called: what it registers would just be missing
        plain = [hook for hook in HOOK_NAMES if hook not in info.hooks and callable(getattr(plugin, hook, None))]
        if plain:
            self.errors.append(LoadError(name, info.distribution, f"{', '.join(plain)} is not decorated with "
                                         "harness.hookimpl, so it is never called"))
        return True

    def _check_pending(self, name: str, info: PluginInfo) -> bool:
        """Refuse a plugin that implements a hook no spec declares (usually a typo), saying which hook was meant.

        pluggy's own message names the plugin by its module's repr, an absolute path that says nothing here."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            plugin = self.pm.get_plugin(name)
            unknown = sorted(caller.name for caller in (self.pm.get_hookcallers(plugin) or []) if not caller.has_spec())
            self.pm.unregister(name=name)
            del self.plugins[name]
            message = "; ".join(unknown_hook_message(hook, info.module) for hook in unknown) or one_line(exc)
            self.errors.append(LoadError(name, info.distribution, message))
            return False
        return True

    def load_entry_points(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Load every ``harness`` entry point one by one, built-ins first."""
        blocked = {n.strip() for n in os.environ.get("HARNESS_DISABLE_PLUGINS", "").split(",") if n.strip()}
        names_seen: set[str] = set()
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        seen: set[tuple[str, str]] = set()
        ordered = sorted(entry_points, key=lambda ep: (_dist_name(ep) != BUILTIN_DISTRIBUTION, ep.name))
        for ep in ordered:
            dist, version = _dist_name(ep), _dist_version(ep)
            # The same distribution can be seen twice (editable installs, stray egg-info): not a clash.
            key = (ep.name, ep.value)
            if key in seen:
                continue
            seen.add(key)
            names_seen.add(ep.name)
            if ep.name in blocked:
                self.disabled.append(ep.name)
                continue
            info = PluginInfo(
                name=ep.name,
                distribution=dist,
                version=version,
                module=ep.value,
                builtin=dist == BUILTIN_DISTRIBUTION,
            )
            if ep.name in self.plugins:
                first = self.plugins[ep.name]
                self.errors.append(
                    LoadError(
                        ep.name,
                        dist,
                        f"entry-point name {ep.name!r} is also declared by {first.distribution}; "
                        f"kept the one from {first.distribution}",
                    )
                )
                continue
            started = time.perf_counter()
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
                if isinstance(exc, KeyboardInterrupt):
                    raise
                log.debug("plugin %r failed to import %s", ep.name, ep.value, exc_info=True)  # --debug: the traceback
                self.errors.append(LoadError(ep.name, dist, f"failed to import {ep.value}: {one_line(exc)}"))
                continue
            info.import_seconds = time.perf_counter() - started
            self.register(plugin, ep.name, info)
        for name in sorted(blocked - names_seen):
            self.errors.append(LoadError(name, None, "HARNESS_DISABLE_PLUGINS names it, but no installed plugin "
                                                     "has that entry-point name"))


def unknown_hook_message(hook: str, module: str | None) -> str:
    """``unknown hook 'harness_model' in my_pkg.plugin (did you mean harness_models?)``."""
    known = sorted(n for n in dir(hookspecs) if n.startswith(f"{NAME}_"))
    close = difflib.get_close_matches(hook, known, n=1, cutoff=0.6)
    where = f" in {module}" if module else ""
    hint = f" (did you mean {close[0]}?)" if close else f" (the hooks are {', '.join(known)})"
    return f"unknown hook {hook!r}{where}{hint}"


def _dist_name(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def _dist_version(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else None


def load_plugins(extra: Iterable[tuple[str, object]] = ()) -> PluginHost:
    """A :class:`PluginHost` with every entry-point plugin loaded, plus ``extra`` (name, plugin) pairs."""
    host = PluginHost()
    if os.environ.get("HARNESS_NO_ENTRY_POINTS") != "1":
        host.load_entry_points()
    for name, plugin in extra:
        host.register(plugin, name)
    return host

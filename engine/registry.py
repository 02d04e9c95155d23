"""Loading plugins from entry points and collecting what they provide.

The registry is built once per process. A plugin that fails to import, or that claims a step or
encoder name another plugin already has, stops start-up with a :class:`PluginError` naming it.
"""
from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass, field
from types import ModuleType
from typing import Iterable

import pluggy

from . import hookspecs
from .errors import PluginError, RecipeError
from .steps import Encoder, Step, StepParams

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "pixline"


@dataclass
class PluginInfo:
    """One loaded plugin: its entry-point name, distribution and what it registered."""

    name: str
    distribution: str
    version: str
    steps: list[str] = field(default_factory=list)
    encoders: list[str] = field(default_factory=list)


class Registry:
    """The steps and encoders of every loaded plugin, by name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.steps: dict[str, Step] = {}
        self.encoders: dict[str, Encoder] = {}
        self._step_owner: dict[str, str] = {}
        self._encoder_owner: dict[str, str] = {}

    @classmethod
    def load(cls, extra: Iterable[tuple[str, ModuleType | object]] = ()) -> "Registry":
        """Build the registry from the ``pixline`` entry points plus ``extra`` (name, plugin) pairs."""
        registry = cls()
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "unknown distribution"
            version = ep.dist.version if ep.dist else "?"
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure: name the plugin, not a traceback
                raise PluginError(
                    f"plugin {ep.name!r} (distribution {dist}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            registry.add(ep.name, plugin, dist, version)
        for name, plugin in extra:
            registry.add(name, plugin, "(registered in code)", "")
        return registry

    def add(self, name: str, plugin: object, distribution: str = "", version: str = "") -> None:
        """Register one plugin object and collect its steps and encoders."""
        if name in self.plugins:
            raise PluginError(
                f"plugin name {name!r} is claimed by both {self.plugins[name].distribution} and {distribution}"
            )
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} ({distribution}) could not be registered: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} ({distribution}) has an invalid hook: {exc}") from exc
        info = PluginInfo(name, distribution, version)
        self.plugins[name] = info
        for impl in self.pm.hook.pixline_register_steps.get_hookimpls():
            if impl.plugin_name == name:
                impl.function(register=lambda cls: self._add_step(info, cls))
        for impl in self.pm.hook.pixline_register_encoders.get_hookimpls():
            if impl.plugin_name == name:
                impl.function(register=lambda cls: self._add_encoder(info, cls))

    def _add_step(self, info: PluginInfo, step_cls: type[Step]) -> None:
        where = f"plugin {info.name!r} ({info.distribution})"
        if not (isinstance(step_cls, type) and issubclass(step_cls, Step)) or not step_cls.name:
            raise PluginError(f"{where} registered {step_cls!r}, which is not a named Step subclass")
        if not issubclass(step_cls.Params, StepParams):
            raise PluginError(f"{where}: step {step_cls.name!r} has Params that are not a StepParams")
        if step_cls.name in self.steps:
            other = self._step_owner[step_cls.name]
            raise PluginError(
                f"step {step_cls.name!r} is registered by two plugins: {other} and {where}; "
                "uninstall one of them"
            )
        self.steps[step_cls.name] = step_cls()
        self._step_owner[step_cls.name] = where
        info.steps.append(step_cls.name)

    def _add_encoder(self, info: PluginInfo, encoder_cls: type[Encoder]) -> None:
        where = f"plugin {info.name!r} ({info.distribution})"
        if not (isinstance(encoder_cls, type) and issubclass(encoder_cls, Encoder)) or not encoder_cls.name:
            raise PluginError(f"{where} registered {encoder_cls!r}, which is not a named Encoder subclass")
        if encoder_cls.name in self.encoders:
            raise PluginError(
                f"encoder {encoder_cls.name!r} is registered by two plugins: "
                f"{self._encoder_owner[encoder_cls.name]} and {where}"
            )
        self.encoders[encoder_cls.name] = encoder_cls()
        self._encoder_owner[encoder_cls.name] = where
        info.encoders.append(encoder_cls.name)

    def step(self, name: str) -> Step:
        """The step called ``name``; a :class:`RecipeError` lists the known ones otherwise."""
        try:
            return self.steps[name]
        except KeyError:
            known = ", ".join(sorted(self.steps)) or "none: no plugin is installed"
            raise RecipeError(f"unknown step {name!r} (known steps: {known})") from None

    def encoder(self, name: str) -> Encoder:
        try:
            return self.encoders[name]
        except KeyError:
            known = ", ".join(sorted(self.encoders)) or "none: install pixline-format"
            raise RecipeError(f"unknown output format {name!r} (known formats: {known})") from None

    def step_owner(self, name: str) -> str:
        return self._step_owner[name]


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    if _default is None:
        _default = Registry.load()
    return _default

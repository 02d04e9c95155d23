"""Loading plugins from entry points and collecting what they provide.

The registry is built once per process. Start-up stops with a one-line :class:`PluginError` naming
the plugin when one fails to import, raises inside a hook, defines a ``pixline_*`` function that is
not a hook (a misspelling) or a hook without ``@hookimpl``, registers a badly named step or encoder,
or claims a step or encoder name another plugin already has.
"""
from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import logging
import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError, RecipeError, quote
from .steps import (EXTENSION_RE, NAME_RE, NAME_RULE, URL_KEY_RE, Context, Encoder, OutputSpec, Step,
                    StepParams)

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "pixline"
HOOKS = tuple(sorted(name for name, value in vars(hookspecs).items()
                     if name.startswith(f"{hookspecs.PROJECT}_") and callable(value)))
MEDIA_TYPE_RE = re.compile(r"[a-z]+/[a-z0-9.+-]+")
#: Names of ``format: {type: …}`` that choose an encoder rather than name one.
RESERVED_FORMATS = ("auto", "source")


@dataclass
class PluginInfo:
    """One loaded plugin: its entry-point name, distribution and what it registered.

    ``unavailable`` maps the encoders it registered that cannot write here to the reason.
    """

    name: str
    distribution: str
    version: str
    steps: list[str] = field(default_factory=list)
    encoders: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """How messages name it: ``plugin 'sepia' from pixline-sepia 1.2.3``."""
        return f"plugin {self.name!r} from {self.distribution} {self.version}".rstrip()


class Registry:
    """The steps and encoders of every loaded plugin, by name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.steps: dict[str, Step] = {}
        self.encoders: dict[str, Encoder] = {}
        #: Encoders registered but unable to write here (name → reason).
        self.unavailable_encoders: dict[str, str] = {}
        self._step_plugin: dict[str, PluginInfo] = {}
        self._encoder_plugin: dict[str, PluginInfo] = {}

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
        info = PluginInfo(name, distribution, version)
        check_hooks(plugin, info)
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except ValueError as exc:
            raise PluginError(f"{info.describe()} could not be registered: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{info.describe()} has an invalid hook: {exc}") from exc
        self.plugins[name] = info
        collectors: dict[str, Callable[[PluginInfo, Any], None]] = {
            "pixline_register_steps": self._add_step, "pixline_register_encoders": self._add_encoder}
        for hook, collect in collectors.items():
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                if impl.plugin_name != name:
                    continue
                try:
                    impl.function(register=lambda cls, collect=collect: collect(info, cls))
                except PluginError:
                    raise
                except Exception as exc:  # a bug in the plugin: one line naming it, not a traceback
                    raise PluginError(f"{info.describe()} failed in {hook}: "
                                      f"{type(exc).__name__}: {exc}") from exc

    def _add_step(self, info: PluginInfo, step_cls: type[Step]) -> None:
        where = info.describe()
        if not (isinstance(step_cls, type) and issubclass(step_cls, Step)) or not step_cls.name:
            raise PluginError(f"{where} registered {step_cls!r}, which is not a named Step subclass")
        if not NAME_RE.fullmatch(step_cls.name):
            raise PluginError(f"{where}: step name {step_cls.name!r} is not valid: use {NAME_RULE}")
        if not (isinstance(step_cls.Params, type) and issubclass(step_cls.Params, StepParams)):
            raise PluginError(f"{where}: step {step_cls.name!r} has Params that are not a StepParams")
        check_url_keys(step_cls, where)
        if step_cls.name in self.steps:
            other = self._step_plugin[step_cls.name].describe()
            raise PluginError(
                f"step {step_cls.name!r} is registered by two plugins: {other} and {where}; "
                "uninstall one of them"
            )
        self.steps[step_cls.name] = step_cls()
        self._step_plugin[step_cls.name] = info
        info.steps.append(step_cls.name)

    def _add_encoder(self, info: PluginInfo, encoder_cls: type[Encoder]) -> None:
        where = info.describe()
        if not (isinstance(encoder_cls, type) and issubclass(encoder_cls, Encoder)) or not encoder_cls.name:
            raise PluginError(f"{where} registered {encoder_cls!r}, which is not a named Encoder subclass")
        name = encoder_cls.name
        if name in self._encoder_plugin:
            raise PluginError(
                f"encoder {name!r} is registered by two plugins: "
                f"{self._encoder_plugin[name].describe()} and {where}"
            )
        check_encoder(encoder_cls, where)
        encoder = encoder_cls()
        self._encoder_plugin[name] = info
        reason = encoder.unavailable()
        if reason:
            log.warning("%s: %s output is unavailable here: %s", where, name, reason)
            self.unavailable_encoders[name] = info.unavailable[name] = reason
            return
        self.encoders[name] = encoder
        info.encoders.append(name)

    def step(self, name: str) -> Step:
        """The step called ``name``; a :class:`RecipeError` lists the known ones otherwise."""
        try:
            return self.steps[name]
        except KeyError:
            known = ", ".join(sorted(self.steps)) or "none: no plugin is installed"
            raise RecipeError(f"unknown step {quote(name)} (known steps: {known})") from None

    def encoder(self, name: str) -> Encoder:
        """The encoder called ``name``; a :class:`RecipeError` says why not otherwise."""
        try:
            return self.encoders[name]
        except KeyError:
            if name in self.unavailable_encoders:
                raise RecipeError(f"output format {quote(name)} is not available here: "
                                  f"{self.unavailable_encoders[name]}") from None
            known = ", ".join(sorted(self.encoders)) or "none: install pixline-format"
            raise RecipeError(f"unknown output format {quote(name)} (known formats: {known})") from None

    def step_plugin(self, name: str) -> PluginInfo:
        """The plugin that registered step ``name``."""
        return self._step_plugin[name]

    def encoder_plugin(self, name: str) -> PluginInfo:
        """The plugin that registered encoder ``name`` (available or not)."""
        return self._encoder_plugin[name]


def check_hooks(plugin: object, info: PluginInfo) -> None:
    """Refuse ``pixline_*`` functions that are not hooks, or hooks not marked with ``@hookimpl``.

    pluggy itself ignores both (an unmarked function is not an implementation; a marked one with an
    unknown name waits for a spec that never comes), so a misspelt hook would silently do nothing.
    """
    marker = f"{hookspecs.PROJECT}_impl"
    for attr in dir(plugin):
        if not attr.startswith(f"{hookspecs.PROJECT}_"):
            continue
        function = getattr(plugin, attr, None)
        if not callable(function):
            continue
        if attr not in HOOKS:
            close = difflib.get_close_matches(attr, HOOKS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise PluginError(f"{info.describe()}: {attr} is not a pixline hook ({hint}the hooks are "
                              f"{', '.join(HOOKS)})")
        if not hasattr(function, marker):
            raise PluginError(f"{info.describe()}: {attr} is not marked as a hook: decorate it with "
                              "@hookimpl (from pixline.engine import hookimpl)")


def check_url_keys(step_cls: type[Step], where: str) -> None:
    """A step's short URL keys must be valid keys naming its own parameters, and not shadow one."""
    fields = step_cls.Params.model_fields
    for key, target in step_cls.Params.url_keys.items():
        problem = None
        if not URL_KEY_RE.fullmatch(key):
            problem = "is not a valid URL key (lower-case letters, digits and '_')"
        elif key in fields:
            problem = "is already the name of a parameter"
        elif target not in fields:
            problem = f"stands for {target!r}, which is not a parameter"
        if problem:
            raise PluginError(f"{where}: step {step_cls.name!r}: URL key {key!r} {problem}")


def check_encoder(encoder_cls: type[Encoder], where: str) -> None:
    """An encoder's name, extension, media type and ``encode`` signature, checked at registration."""
    name = encoder_cls.name
    what = f"{where}: encoder {name!r}"
    if not NAME_RE.fullmatch(name) or name in RESERVED_FORMATS:
        raise PluginError(f"{where}: encoder name {name!r} is not valid: use {NAME_RULE}, "
                          f"not {' or '.join(RESERVED_FORMATS)}")
    if not EXTENSION_RE.fullmatch(encoder_cls.extension or ""):
        raise PluginError(f"{what}: extension {encoder_cls.extension!r} is not valid: use 1-5 "
                          "lower-case letters or digits, without the dot")
    if not MEDIA_TYPE_RE.fullmatch(encoder_cls.media_type or ""):
        raise PluginError(f"{what}: media type {encoder_cls.media_type!r} is not a type/subtype")
    try:
        inspect.signature(encoder_cls.encode).bind(None, None, OutputSpec(), False, Context())
    except TypeError:
        raise PluginError(f"{what}: encode() must take (self, image, spec, keep_metadata, ctx)") from None


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    if _default is None:
        _default = Registry.load()
    return _default

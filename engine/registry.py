"""Loading plugins from entry points and collecting what they provide.

The registry is built once per process. A plugin that fails to import, raises inside a hook or
registers a step or encoder that breaks the contract (a bad name, ``Params``, ``url_keys``, or a
method the contract cannot call, engine/contract.py) is *broken*: it is listed with its reason, its
steps and encoders are left out, and only a recipe that needs one of them is refused (naming the
recipe and the plugin). What still stops start-up (:class:`FatalPluginError`): a ``pixline_*``
function that is not a hook (a misspelling) or a hook without ``@hookimpl``, and two plugins claiming
one step or encoder name (docs/plugins.md, "Broken plugins, and what stops start-up").
"""
from __future__ import annotations

import difflib
import importlib.metadata
import logging
import re
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from . import contract, distributions, hookspecs
from .analyser import Analyser, check_analyser
from .gravity import SmartGravity, check_smart_gravity
from .metric import Metric, check_metric
from .plugininfo import PluginInfo
from .errors import FatalPluginError, PluginError, RecipeError, quote
from .steps import EXTENSION_RE, NAME_RE, NAME_RULE, URL_KEY_RE, Encoder, Step, StepParams

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "pixline"
HOOKS = tuple(sorted(name for name, value in vars(hookspecs).items()
                     if name.startswith(f"{hookspecs.PROJECT}_") and callable(value)))
MEDIA_TYPE_RE = re.compile(r"[a-z]+/[a-z0-9.+-]+")
#: Names of ``format: {type: …}`` that choose an encoder rather than name one.
RESERVED_FORMATS = ("auto", "source")
STATUSES = ("ok", "deprecated", "broken")


class Registry:
    """The steps, encoders, analysers, gravities and metrics of every loaded plugin, by name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.steps: dict[str, Step] = {}
        self.encoders: dict[str, Encoder] = {}
        self.analysers: dict[str, Analyser] = {}
        self.gravities: dict[str, SmartGravity] = {}
        self.metrics: dict[str, Metric] = {}
        #: Encoders registered but unable to write here (name → reason).
        self.unavailable_encoders: dict[str, str] = {}
        #: Step and encoder names a broken plugin registered, left out (name → the plugin).
        self.broken_steps: dict[str, PluginInfo] = {}
        self.broken_encoders: dict[str, PluginInfo] = {}
        #: What stops start-up (:class:`FatalPluginError`), raised by :meth:`refuse_conflicts`.
        self.conflicts: list[FatalPluginError] = []
        self._step_plugin: dict[str, PluginInfo] = {}
        self._encoder_plugin: dict[str, PluginInfo] = {}

    @classmethod
    def load(cls, extra: Iterable[tuple[str, ModuleType | object]] = (), *,
             refuse: bool = True) -> "Registry":
        """Build the registry from the ``pixline`` entry points plus ``extra`` (name, plugin) pairs.

        A broken plugin is recorded (:attr:`PluginInfo.problem`), not raised. ``refuse``: raise the
        first :class:`FatalPluginError` (a misspelt hook, a name claimed twice), as every process
        does at start-up; ``pixline plugins`` lists them instead.
        """
        registry = cls()
        entry_points = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        installed = distributions.installed_by_name(ep.dist.name for ep in entry_points if ep.dist)
        for ep in entry_points:
            registry._load_entry_point(ep, installed)
        for name, plugin in extra:
            registry.add(name, plugin, "(registered in code)", "", strict=False)
        if refuse:
            registry.refuse_conflicts()
        return registry

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint,
                          installed: dict[str, list[importlib.metadata.Distribution]]) -> None:
        dist = ep.dist.name if ep.dist else "unknown distribution"
        version = ep.dist.version if ep.dist else "?"
        try:
            plugin = ep.load()
        except Exception as exc:  # any import failure: name the plugin, not a traceback
            self._broken(PluginInfo(ep.name, dist, version),
                         f"failed to load: {type(exc).__name__}: {exc}")
            return
        found = distributions.owner(ep.module, installed.get(distributions.normalise_name(dist), []),
                                    ep.dist)
        info = self.add(ep.name, plugin, found.name, found.version, strict=False)
        if found.warning:
            info.warnings.append(found.warning)
            log.warning("%s: %s", info.describe(), found.warning)

    def add(self, name: str, plugin: object, distribution: str = "", version: str = "", *,
            strict: bool = True) -> PluginInfo:
        """Register one plugin object and collect its steps and encoders.

        ``strict`` (for a plugin's own tests): raise the :class:`PluginError` that makes it broken.
        Otherwise it is recorded; a :class:`FatalPluginError` is raised by :meth:`refuse_conflicts`.
        """
        info = PluginInfo(name, distribution, version)
        try:
            if name in self.plugins:
                raise FatalPluginError(f"plugin name {name!r} is claimed by both "
                                          f"{self.plugins[name].distribution} and {distribution}")
            self.plugins[name] = info
            self._collect(plugin, info)
        except PluginError as exc:
            if strict:
                raise
            self._broken(info, str(exc).removeprefix(info.describe()).lstrip(": "), exc)
        return info

    def _broken(self, info: PluginInfo, reason: str, exc: PluginError | None = None) -> None:
        info.problem = reason
        self.plugins.setdefault(info.name, info)
        for name in info.steps:
            self.broken_steps[name] = info
        for name in (*info.encoders, *info.unavailable):
            self.broken_encoders[name] = info
        if isinstance(exc, FatalPluginError):
            self.conflicts.append(exc)  # raised at start-up as it is: not logged twice
        else:
            log.error("%s is broken (recipes that need it are refused): %s", info.describe(), reason)

    def refuse_conflicts(self) -> None:
        """Raise the first :class:`FatalPluginError` found while loading, if any."""
        if self.conflicts:
            raise self.conflicts[0]

    def _collect(self, plugin: object, info: PluginInfo) -> None:
        """Run the plugin's register hooks; commit its steps and encoders only if all are valid."""
        check_hooks(plugin, info)
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()
        except ValueError as exc:
            raise PluginError(f"{info.describe()} could not be registered: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=info.name)
            raise FatalPluginError(f"{info.describe()} has an invalid hook: {exc}") from exc
        steps: dict[str, Step] = {}
        encoders: dict[str, Encoder] = {}
        analysers: dict[str, Analyser] = {}
        gravities: dict[str, SmartGravity] = {}
        metrics: dict[str, Metric] = {}
        collectors: dict[str, Callable[[Any], None]] = {
            "pixline_register_steps": lambda cls: self._add_step(info, cls, steps),
            "pixline_register_encoders": lambda cls: self._add_encoder(info, cls, encoders),
            "pixline_register_analysers": lambda cls: self._add_named(info, cls, analysers, "analyser"),
            "pixline_register_gravities": lambda cls: self._add_named(info, cls, gravities, "gravity"),
            "pixline_register_metrics": lambda cls: self._add_named(info, cls, metrics, "metric")}
        try:
            for hook, collect in collectors.items():
                for impl in getattr(self.pm.hook, hook).get_hookimpls():
                    if impl.plugin_name == info.name:
                        _run_hook(impl, hook, collect, info)
        except PluginError:
            self.pm.unregister(name=info.name)
            raise
        self._commit(info, steps, encoders)
        self.analysers.update(analysers)
        self.gravities.update(gravities)
        self.metrics.update(metrics)

    def _add_step(self, info: PluginInfo, step_cls: type[Step], staged: dict[str, Step]) -> None:
        where = info.describe()
        if not (isinstance(step_cls, type) and issubclass(step_cls, Step)) or not step_cls.name:
            raise PluginError(f"{where} registered {step_cls!r}, which is not a named Step subclass")
        name = step_cls.name
        info.steps.append(name)
        if not NAME_RE.fullmatch(name):
            raise PluginError(f"{where}: step name {name!r} is not valid: use {NAME_RULE}")
        if not (isinstance(step_cls.Params, type) and issubclass(step_cls.Params, StepParams)):
            raise PluginError(f"{where}: step {name!r} has Params that are not a StepParams")
        check_url_keys(step_cls, where)
        if name in self.steps or name in staged:
            other = self._step_plugin[name].describe() if name in self.steps else where
            raise FatalPluginError(f"step {name!r} is registered by two plugins: {other} and {where}; "
                                   "uninstall one of them")
        check_contract(step_cls, info)
        staged[name] = step_cls()

    def _add_encoder(self, info: PluginInfo, encoder_cls: type[Encoder], staged: dict[str, Encoder]) -> None:
        where = info.describe()
        if not (isinstance(encoder_cls, type) and issubclass(encoder_cls, Encoder)) or not encoder_cls.name:
            raise PluginError(f"{where} registered {encoder_cls!r}, which is not a named Encoder subclass")
        name = encoder_cls.name
        if name in self._encoder_plugin or name in staged or name in info.unavailable:
            other = self._encoder_plugin[name].describe() if name in self._encoder_plugin else where
            raise FatalPluginError(f"encoder {name!r} is registered by two plugins: {other} and {where}")
        info.encoders.append(name)
        check_encoder(encoder_cls, where)
        check_contract(encoder_cls, info)
        encoder = encoder_cls()
        reason = contract.call(encoder, "unavailable")
        if reason:
            log.warning("%s: %s output is unavailable here: %s", where, name, reason)
            info.encoders.remove(name)
            info.unavailable[name] = reason
            return
        staged[name] = encoder

    def _add_named(self, info: PluginInfo, cls: type, staged: dict[str, Any], kind: str) -> None:
        """An analyser, a gravity or a metric: checked, and its name claimed by one plugin only."""
        check, taken, listed = {"analyser": (check_analyser, self.analysers, "analysers"),
                                "gravity": (check_smart_gravity, self.gravities, "gravities"),
                                "metric": (check_metric, self.metrics, "metrics")}[kind]
        check(cls, info.describe())
        if cls.name in taken or cls.name in staged:
            owner = next((p for p in self.plugins.values() if cls.name in getattr(p, listed)), info)
            raise FatalPluginError(f"{kind} {cls.name!r} is registered by two plugins: "
                                   f"{owner.describe()} and {info.describe()}; uninstall one of them")
        getattr(info, listed).append(cls.name)
        check_contract(cls, info)
        staged[cls.name] = cls()

    def _commit(self, info: PluginInfo, steps: dict[str, Step], encoders: dict[str, Encoder]) -> None:
        self.steps.update(steps)
        self._step_plugin.update(dict.fromkeys(steps, info))
        self.encoders.update(encoders)
        self.unavailable_encoders.update(info.unavailable)
        self._encoder_plugin.update(dict.fromkeys([*encoders, *info.unavailable], info))

    def step(self, name: str) -> Step:
        """The step called ``name``; a :class:`RecipeError` says why not otherwise: the broken
        plugin that has it, or the known steps and which plugins may be missing."""
        try:
            return self.steps[name]
        except KeyError:
            if name in self.broken_steps:
                raise RecipeError(broken_message("step", name, self.broken_steps[name])) from None
            known = ", ".join(sorted(self.steps)) or "none: no plugin is installed"
            raise RecipeError(f"unknown step {quote(name)} (known steps: {known}); "
                              f"{self.missing_hint()}") from None

    def encoder(self, name: str) -> Encoder:
        """The encoder called ``name``; a :class:`RecipeError` says why not otherwise."""
        try:
            return self.encoders[name]
        except KeyError:
            if name in self.unavailable_encoders:
                raise RecipeError(f"output format {quote(name)} is not available here: "
                                  f"{self.unavailable_encoders[name]}") from None
            if name in self.broken_encoders:
                raise RecipeError(broken_message("output format", name, self.broken_encoders[name])) from None
            known = ", ".join(sorted(self.encoders)) or "none: install pixline-format"
            raise RecipeError(f"unknown output format {quote(name)} (known formats: {known}); "
                              f"{self.missing_hint()}") from None

    def missing_hint(self) -> str:
        """What to check when a recipe names something no plugin provides."""
        broken = [info for info in self.plugins.values() if info.problem]
        if broken:
            named = "; ".join(f"{info.describe()} is broken ({info.problem})" for info in broken)
            return f"it may be from a plugin that did not load: {named}"
        return ("is the plugin that provides it installed? `pixline plugins` lists the installed "
                "ones; install the missing distribution (pip install …) and restart")

    def step_plugin(self, name: str) -> PluginInfo:
        """The plugin that registered step ``name``."""
        return self._step_plugin[name]

    def encoder_plugin(self, name: str) -> PluginInfo:
        """The plugin that registered encoder ``name`` (available or not)."""
        return self._encoder_plugin[name]

    def identity(self, kind: str, name: str) -> list[str]:
        """[distribution, version] of the plugin that registered the ``kind`` (``gravities``,
        ``metrics``) called ``name``, for digests."""
        owner = next((p for p in self.plugins.values() if name in getattr(p, kind)), None)
        return [owner.distribution, owner.version] if owner else ["", ""]


def _run_hook(impl: pluggy.HookImpl, hook: str, register: Callable[[Any], None], info: PluginInfo) -> None:
    """Call one register hook with the arguments it declares (pluggy's opt-in arguments)."""
    arguments = {"register": register}
    try:
        with contract.calling(info):
            impl.function(**{name: arguments[name] for name in impl.argnames})
    except PluginError:
        raise
    except Exception as exc:  # a bug in the plugin: one line naming it, not a traceback
        raise PluginError(f"{info.describe()} failed in {hook}: {type(exc).__name__}: {exc}") from exc


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
            raise FatalPluginError(f"{info.describe()}: {attr} is not a pixline hook ({hint}the hooks are "
                              f"{', '.join(HOOKS)})")
        if not hasattr(function, marker):
            raise FatalPluginError(f"{info.describe()}: {attr} is not marked as a hook: decorate it with "
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
    """An encoder's name, extension and media type, checked at registration."""
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


def check_contract(cls: type, info: PluginInfo) -> None:
    """Every contract method of ``cls`` can be called (engine/contract.py); deprecations recorded."""
    try:
        contract.check_class(cls, info)
    except contract.ContractError as exc:
        raise PluginError(f"{info.describe()}: {exc}") from None


def broken_message(what: str, name: str, info: PluginInfo) -> str:
    """Why a recipe cannot use ``name``: the plugin that provides it is broken."""
    return (f"{what} {name!r} is from {info.describe()}, which is broken: {info.problem} "
            "(`pixline plugins` lists it; fix or uninstall it)")


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    if _default is None:
        _default = Registry.load()
    return _default

"""The plugin contract's methods, and how the engine calls a plugin's implementation of each.

A plugin's :class:`~pixline.engine.steps.Step` and :class:`~pixline.engine.steps.Encoder` are called
with the arguments their methods *declare*, by name, the way pluggy calls hooks ("opt-in
arguments"): ``encode(self, image, spec, keep_metadata)``, written before ``ctx`` was added, gets
those three. So adding an argument to the contract never breaks a plugin again (docs/plugins.md,
"Contract changelog"). Each signature is read once, when the plugin registers (:func:`check_class`);
an argument the contract does not have is refused there, naming it, rather than failing per render.

One old shape is still called positionally, with a deprecation warning: a method whose arguments
are all positional, as many as a shape the contract has published, but named otherwise
(``apply(self, img, p, context)``). Removed and renamed arguments are kept in :data:`METHODS` for at
least one minor version, passed under their old name with a warning (:class:`PixlineDeprecationWarning`).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol

log = logging.getLogger(__name__)

#: The version of the plugin contract this pixline implements (docs/plugins.md, "Contract changelog").
#: Minor versions add; a major version may remove what a minor version before it deprecated.
CONTRACT_VERSION = "2.5"
#: The first contract version that no longer takes what is deprecated now.
REMOVAL_VERSION = "3.0"


class PixlineDeprecationWarning(DeprecationWarning):
    """Something a plugin uses will be removed from the contract: the message names the plugin, its
    distribution and what to change. Shown by ``pixline plugins`` and logged once at start.

    .. versionadded:: 2.2
    """


class ContractError(Exception):
    """A plugin's method cannot be called under the contract (the registry makes it a broken plugin)."""


@dataclass(frozen=True)
class Method:
    """One method of the contract: its arguments in order, and the shapes it has had.

    ``shapes`` are the argument lists of earlier published versions (each a prefix of today's, or a
    list with a name since renamed): an implementation with as many plain positional arguments as one
    of them, named otherwise, is called positionally. ``renamed`` maps an old argument name to the
    name that replaced it, with the version it was deprecated in.
    """

    arguments: tuple[str, ...]
    shapes: tuple[tuple[str, ...], ...] = ()
    renamed: Mapping[str, tuple[str, str]] = field(default_factory=dict)


#: Every method of a plugin class the engine calls, by class ("Step", "Encoder") and name.
METHODS: dict[str, dict[str, Method]] = {
    "Step": {
        "apply": Method(("image", "params", "ctx")),
        "open": Method(("source", "params", "ctx")),
        "output": Method(("params",)),
        "shrink_hint": Method(("params", "width", "height")),
        "output_size": Method(("params", "width", "height")),
    },
    "Encoder": {
        # Contract 1.x: encode(self, image, spec, keep_metadata); ctx came in 2.0.
        "encode": Method(("image", "spec", "keep_metadata", "ctx"),
                         shapes=(("image", "spec", "keep_metadata"),)),
        "unavailable": Method(()),
    },
    "Analyser": {
        "analyse": Method(("image", "ctx")),
    },
    "SmartGravity": {
        "place": Method(("width", "height", "box_width", "box_height", "ctx")),
    },
    "Metric": {
        "prepare": Method(("image",)),
        "score": Method(("reference", "image")),
    },
}


@dataclass(frozen=True)
class Call:
    """How to call one implementation: which contract arguments it takes, by name or in order."""

    passed: tuple[tuple[str, str], ...]  # (the implementation's name, the contract argument it gets)
    positional: bool = False
    deprecations: tuple[str, ...] = ()

    def __call__(self, function: Callable[..., Any], arguments: Mapping[str, Any]) -> Any:
        if self.positional:
            return function(*(arguments[source] for _, source in self.passed))
        return function(**{name: arguments[source] for name, source in self.passed})


class Owner(Protocol):
    """What the contract needs of a plugin (a :class:`~pixline.engine.registry.PluginInfo`)."""

    deprecations: list[str]

    def describe(self) -> str: ...


#: Where the contract's classes live (read by name: those modules import this one).
CONTRACT_MODULES = ("engine.steps", "engine.analyser", "engine.gravity", "engine.metric")


def kind_of(cls: type) -> str:
    """``"Step"``, ``"Encoder"``, ``"Analyser"``, ``"SmartGravity"`` or ``"Metric"``: which of the
    contract's classes (engine/steps.py, analyser.py, gravity.py, metric.py) ``cls`` subclasses.

    Read from the class's bases, not by importing those modules, which import this one.
    """
    for base in cls.__mro__:
        if base.__name__ in METHODS and base.__module__.endswith(CONTRACT_MODULES):
            return base.__name__
    return ""


def plan(function: Callable[..., Any], method: Method, label: str) -> Call:
    """How to call ``function`` (a plugin's method, ``self`` included) with the contract's arguments.

    Raises :class:`ContractError` naming an argument the contract does not have. ``label`` names the
    method in messages (``step 'sepia': apply()``).
    """
    parameters = list(inspect.signature(function).parameters.values())[1:]  # without self
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return Call(tuple((name, name) for name in method.arguments))
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return Call(tuple((name, name) for name in method.arguments), positional=True)
    passed, deprecations, unknown = [], [], []
    for p in parameters:
        if p.kind is p.POSITIONAL_ONLY:
            unknown.append(p.name)  # cannot be passed by name
        elif p.name in method.arguments:
            passed.append((p.name, p.name))
        elif p.name in method.renamed:
            new, since = method.renamed[p.name]
            passed.append((p.name, new))
            deprecations.append(f"{label}: argument {p.name!r} is deprecated since contract {since}: "
                                f"name it {new!r} (the old name goes in {REMOVAL_VERSION})")
        elif p.default is p.empty:
            unknown.append(p.name)
    if unknown:
        return _positional(parameters, method, label, unknown)
    return Call(tuple(passed), deprecations=tuple(deprecations))


def _positional(parameters: list[inspect.Parameter], method: Method, label: str,
                unknown: list[str]) -> Call:
    """The published shape ``parameters`` has, called in order; or a :class:`ContractError`."""
    required = [p for p in parameters if p.default is p.empty]
    shapes = {len(shape): shape for shape in (*method.shapes, method.arguments)}
    wanted = f"({', '.join(('self', *method.arguments))})"
    if any(p.kind is p.KEYWORD_ONLY for p in required) or len(required) not in shapes:
        names = ", ".join(repr(name) for name in unknown)
        raise ContractError(f"{label} asks for {names}, which the contract does not have: it passes "
                            f"{wanted}, by name; take any of them (contract {CONTRACT_VERSION})")
    shape = shapes[len(required)]
    spelt = ", ".join(("self", *(p.name for p in required)))
    return Call(tuple((p.name, source) for p, source in zip(required, shape)), positional=True,
                deprecations=(f"{label} names its arguments ({spelt}) otherwise than the contract, so "
                              f"it is called by position, deprecated since contract 2.2: name them "
                              f"{wanted} (positional calls end in {REMOVAL_VERSION})",))


@functools.lru_cache(maxsize=None)
def plans(cls: type) -> dict[str, Call]:
    """The :class:`Call` of every contract method of ``cls``, read once per class."""
    kind = kind_of(cls)
    label = f"{kind.lower()} {getattr(cls, 'name', '') or cls.__name__!r}"
    return {name: plan(getattr(cls, name), method, f"{label}: {name}()")
            for name, method in METHODS.get(kind, {}).items()}


def check_class(cls: type, owner: Owner) -> None:
    """Read ``cls``'s methods at registration: refuse a shape the contract cannot call (raises
    :class:`ContractError`), record each deprecated one on ``owner`` and remember ``owner`` for
    deprecations found while rendering."""
    try:
        found = plans(cls)
    except (TypeError, ValueError) as exc:  # no signature to read (a builtin)
        raise ContractError(f"{cls.__name__}: cannot read its methods' signatures: {exc}") from None
    _owners[cls] = owner
    for call in found.values():
        for message in call.deprecations:
            deprecated(message, owner)


_owners: dict[type, Owner] = {}
_calling: contextvars.ContextVar[Owner | None] = contextvars.ContextVar("pixline_calling", default=None)


def call(obj: Any, name: str, **arguments: Any) -> Any:
    """``obj.name(...)`` with the contract's ``arguments``, as many as the implementation declares."""
    how = plans(type(obj))[name]
    owner = _owners.get(type(obj))
    if owner is None:
        return how(getattr(obj, name), arguments)
    token = _calling.set(owner)
    try:
        return how(getattr(obj, name), arguments)
    finally:
        _calling.reset(token)


def deprecated(message: str, owner: Owner | None = None) -> None:
    """Warn once per plugin and message that a plugin uses something deprecated.

    ``owner`` defaults to the plugin whose method the engine is calling (``Context.metadata`` read
    inside a step). The warning is a :class:`PixlineDeprecationWarning`, logged too, and kept on the
    plugin's :class:`~pixline.engine.registry.PluginInfo` for ``pixline plugins``.
    """
    owner = owner or _calling.get()
    text = f"{owner.describe()}: {message}" if owner else message
    if owner is not None:
        if message in owner.deprecations:
            return
        owner.deprecations.append(message)
    log.warning("%s", text)
    warnings.warn(text, PixlineDeprecationWarning, stacklevel=3)


@contextlib.contextmanager
def calling(owner: Owner | None) -> Iterator[None]:
    """Treat code run inside as ``owner``'s (its hooks, at registration)."""
    token = _calling.set(owner)
    try:
        yield
    finally:
        _calling.reset(token)

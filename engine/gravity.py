"""Gravities a plugin adds (contract 2.4): a :class:`SmartGravity` places a crop from what an
analyser found of the image when it was taken in (the faces in it), so a render never looks for it.

A step's parameters hold such a gravity as a :class:`GravityName` (``AnyGravity`` is the field type:
a built-in :class:`~pixline.engine.steps.Gravity` or a plugin's name); the recipe is checked against
the installed gravities when it is built (:func:`check_gravities`), its digest names their versions,
and :func:`place` is where every smart gravity, built in or not, picks its box.
"""
from __future__ import annotations

import logging
import numbers
from typing import Annotated, Any, ClassVar, Iterable, Mapping

import pydantic
import pyvips

from . import contract, frames
from .errors import PluginError, RecipeError, quote
from .steps import NAME_RE, Context, Gravity, check_named, param_error

log = logging.getLogger(__name__)

#: What a plugin gravity falls back to when it has nothing to go by (no faces found).
FALLBACK = Gravity.ATTENTION
BUILT_IN = ", ".join(g.value for g in Gravity)


class SmartGravity:
    """A gravity by name, for ``crop: {aspect: …, gravity: NAME}`` and ``resize: {fit: cover,
    gravity: NAME}``. Subclass it, set ``name``, ``version`` and ``analysers``, implement ``place``,
    and register it through ``pixline_register_gravities``.

    .. versionadded:: 2.4
    """

    #: The gravity's name in recipes and URLs (``g:face``); the rule of step names, and not a
    #: built-in gravity's.
    name: ClassVar[str] = ""
    #: Bump it when placements change: it is part of the digest of every recipe that uses it.
    version: ClassVar[str] = "1"
    #: The analysers (``pixline_register_analysers``) whose results ``place`` reads from
    #: ``ctx.analysis``. An image taken in before one was installed is analysed on its first render.
    analysers: ClassVar[tuple[str, ...]] = ()

    def place(self, width: int, height: int, box_width: int, box_height: int,
              ctx: Context) -> tuple[int, int] | None:
        """Where to cut a ``box_width``×``box_height`` box from a ``width``×``height`` image (a frame
        of it): its (left, top), inside the image. ``ctx.analysis`` holds the analysers' results,
        ``ctx.source_size`` the original's size they refer to. Return ``None`` to fall back to
        ``attention`` (nothing found); an exception also falls back, logged.

        .. versionadded:: 2.4
        """
        raise NotImplementedError


class GravityName(str):
    """A plugin's gravity as a step's parameters hold it. It answers like a smart
    :class:`~pixline.engine.steps.Gravity` (``value``, ``is_smart``, ``offset``), so a step written
    for the built-in ones passes it on to :func:`place`."""

    @property
    def value(self) -> str:
        return str(self)

    @property
    def is_smart(self) -> bool:
        return True

    def offset(self, outer_w: int, outer_h: int, inner_w: int, inner_h: int) -> tuple[int, int]:
        """No fixed position, as attention has none: the centre."""
        return Gravity.CENTRE.offset(outer_w, outer_h, inner_w, inner_h)


def _gravity(value: object) -> Gravity | GravityName:
    if isinstance(value, (Gravity, GravityName)):
        return value
    if not isinstance(value, str):
        raise param_error(f"{quote(value)} is not a gravity")
    try:
        return Gravity(value)
    except ValueError:
        pass
    if not NAME_RE.fullmatch(value):
        raise param_error(f"{quote(value)} is not a gravity: use one of {BUILT_IN}, or one a plugin adds")
    return GravityName(value)


#: The type of a step parameter that takes any gravity, built in or added by a plugin.
AnyGravity = Annotated[Gravity | GravityName, pydantic.PlainValidator(_gravity),
                       pydantic.PlainSerializer(lambda g: g.value, return_type=str),
                       pydantic.WithJsonSchema({
                           "anyOf": [{"enum": [g.value for g in Gravity]},
                                     {"type": "string", "pattern": NAME_RE.pattern}],
                           "description": "a built-in gravity, or the name of one a plugin adds "
                                          "(`pixline plugins` lists them; `face`: pixline-faces)"})]


def check_smart_gravity(cls: type, where: str) -> None:
    """A plugin gravity's name, version and analysers, checked at registration."""
    check_named(cls, SmartGravity, "gravity", where)
    if cls.name in {g.value for g in Gravity} or Gravity._missing_(cls.name) is not None:
        raise PluginError(f"{where}: gravity {cls.name!r} is built in; pick another name")
    if not isinstance(cls.analysers, tuple) or not all(isinstance(a, str) for a in cls.analysers):
        raise PluginError(f"{where}: gravity {cls.name!r}: analysers must be a tuple of analyser names")


def named_gravities(params: pydantic.BaseModel) -> list[str]:
    """The plugin gravities a step's validated parameters name."""
    return [str(value) for value in params.__dict__.values() if isinstance(value, GravityName)]


def check_gravities(params: pydantic.BaseModel, registry: Any, where: str) -> None:
    """:class:`RecipeError` when ``params`` name a gravity no installed plugin adds. (``registry`` is
    a :class:`~pixline.engine.registry.Registry`, typed loosely: the registry imports this module.)"""
    for name in named_gravities(params):
        if name not in registry.gravities:
            added = ", ".join(sorted(registry.gravities)) or "none"
            raise RecipeError(f"{where}: parameter 'gravity': {quote(name)} is not a gravity: use one of "
                              f"{BUILT_IN}, or one an installed plugin adds (plugins add: {added}; "
                              "'pixline plugins' lists them)", param="gravity")


def digest_part(steps: Iterable[Any], registry: Any) -> dict[str, list[str]]:
    """What of the plugin gravities ``steps`` use decides the output: name → [version, plugin]."""
    used = sorted({g for rs in steps for g in named_gravities(rs.params)})
    return {name: [registry.gravities[name].version, *registry.identity("gravities", name)] for name in used}


def place(image: pyvips.Image, width: int, height: int, gravity: Gravity | GravityName,
          ctx: Context) -> tuple[int, int]:
    """The (left, top) of a ``width``×``height`` box cut from ``image`` at a smart ``gravity``.

    A plugin's gravity is asked first; libvips' smartcrop (attention, or the built-in one named)
    reads the pixels: give an image in memory.
    """
    if isinstance(gravity, GravityName):
        chosen = _plugin_place(image, width, height, gravity, ctx)
        if chosen is not None:
            return chosen
        gravity = FALLBACK
    return frames.smart_box(image, width, height, gravity.value)


def _plugin_place(image: pyvips.Image, width: int, height: int, gravity: GravityName,
                  ctx: Context) -> tuple[int, int] | None:
    smart: Mapping[str, SmartGravity] = ctx.gravities
    if str(gravity) not in smart:  # a recipe is checked when built; a Context made by hand may lack it
        log.warning("gravity %r is not installed here: falling back to %s", str(gravity), FALLBACK.value)
        return None
    frame_h = frames.page_height(image)
    try:
        chosen = contract.call(smart[str(gravity)], "place", width=image.width, height=frame_h,
                               box_width=width, box_height=height, ctx=ctx)
    except Exception as exc:  # noqa: BLE001  (a stranger's plugin: its failure falls back, logged)
        log.warning("gravity %r failed (%s: %s): falling back to %s", str(gravity), type(exc).__name__,
                    exc, FALLBACK.value)
        return None
    if chosen is None:
        return None
    whole = (isinstance(chosen, tuple) and len(chosen) == 2
             and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in chosen))
    if not whole or not (0 <= chosen[0] <= image.width - width and 0 <= chosen[1] <= frame_h - height):
        log.warning("gravity %r placed a %d×%d box at %r, outside the %d×%d image: falling back to %s",
                    str(gravity), width, height, chosen, image.width, frame_h, FALLBACK.value)
        return None
    return int(chosen[0]), int(chosen[1])

"""Running a recipe over an image: shrink-on-load, lazy steps, web-safe output, one encode.

The first step may load the source itself (a resize does, with libvips' ``thumbnail`` so the image is
never decoded at full size); every later step is a lazy libvips operation; pixels are computed once,
when the encoder runs.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pyvips

from .errors import PixlineError, RenderTimeoutError, UndecodableImageError
from .negotiate import choose_encoder
from .recipe import Recipe
from .registry import Registry
from .source import Source
from .steps import Context, Encoder, OutputSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    """An encoded output and what a response needs to know about it."""

    data: bytes
    format: str
    media_type: str
    extension: str
    width: int
    height: int
    negotiated: bool  # True when the format followed Accept (the response must say Vary: Accept)


def to_web_safe(image: pyvips.Image, colour_managed: bool = False) -> pyvips.Image:
    """8-bit sRGB (or 8-bit grey), whatever came in: CMYK, 16-bit, other ICC profiles.

    ``colour_managed`` says the image already went through an ICC transform (libvips' thumbnail
    does one when the input has a profile), so it is not transformed twice.
    """
    interpretation = image.interpretation
    has_profile = image.get_typeof("icc-profile-data") != 0
    if interpretation == "cmyk" or (has_profile and not colour_managed):
        try:
            image = image.icc_transform("srgb", embedded=True, intent="perceptual",
                                        input_profile="cmyk" if interpretation == "cmyk" else "srgb")
        except pyvips.Error:  # a broken embedded profile: fall back to plain conversion
            image = image.colourspace("srgb")
    elif interpretation in ("grey16", "b-w") and image.bands <= 2:
        if image.format != "uchar":
            image = image.colourspace("b-w")
    elif interpretation != "srgb":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        # Anything still wider than 8 bits (e.g. rgb16 tagged srgb) is scaled, not clipped.
        image = image.colourspace("srgb") if image.interpretation == "rgb16" else image.cast("uchar")
    return image


def flatten_alpha(image: pyvips.Image, spec: OutputSpec) -> pyvips.Image:
    """Flatten alpha onto ``spec.background`` (for encoders with no alpha)."""
    if not image.hasalpha():
        return image
    colour_bands = image.bands - 1
    background = list(spec.background)[:colour_bands]
    if len(background) < colour_bands:
        background += [background[-1]] * (colour_bands - len(background))
    return image.flatten(background=background)


def run_steps(recipe: Recipe, source: Source, ctx: Context,
              decoded: pyvips.Image | None = None) -> tuple[pyvips.Image, bool]:
    """The lazy image after every step, and whether it was colour managed at load.

    ``decoded`` is an already loaded, upright, sRGB image of the source (a worker decodes once for
    several recipes); without it the first step may shrink on load.
    """
    steps = list(recipe.steps)
    colour_managed = False
    if decoded is not None:
        image, colour_managed = decoded, True
    else:
        first = steps[0]
        image = first.step.open(source, first.params, ctx)
        if image is not None:
            steps = steps[1:]
            colour_managed = True
        else:
            image = source.load()
    for rs in steps:
        image = rs.step.apply(image, rs.params, ctx)
    return image, colour_managed


def stop_after(image: pyvips.Image, deadline: float) -> None:
    """Make libvips abandon computing ``image`` once ``time.monotonic()`` passes ``deadline``.

    libvips reports progress while it computes an image; the handler asks it to stop from there, so
    the encoder fails with "killed" instead of holding a render slot for as long as it takes.
    """
    image.set_progress(True)

    def on_eval(img: pyvips.Image, progress: object) -> None:
        if time.monotonic() > deadline:
            img.set_kill(True)

    image.signal_connect("eval", on_eval)


def render(recipe: Recipe, source: Source, registry: Registry, ctx: Context | None = None,
           decoded: pyvips.Image | None = None, encoder: Encoder | None = None,
           time_limit: float | None = None) -> Rendered:
    """Render ``recipe`` over ``source`` into encoded bytes.

    The encoder follows the recipe's output spec and ``ctx.accept``; pass ``encoder`` to force one.
    ``time_limit`` (seconds) stops the computation with :class:`RenderTimeoutError` once passed.
    Raises :class:`~pixline.engine.errors.InputError` subclasses for bad input.
    """
    ctx = ctx or Context()
    ctx.source_format = ctx.source_format or source.format
    ctx.recipe_name = recipe.name
    spec = recipe.output_spec
    if encoder is None:
        encoder = choose_encoder(spec, registry, ctx.accept, ctx.source_format, source.has_alpha)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    timed_out = RenderTimeoutError(
        f"{source.name}: recipe {recipe.name!r} took longer than {time_limit or 0:g} s and was stopped")
    try:
        image, colour_managed = run_steps(recipe, source, ctx, decoded)
        image = to_web_safe(image, colour_managed)
        if not encoder.supports_alpha:
            image = flatten_alpha(image, spec)
        if deadline is not None:
            # Steps may compute pixels themselves (a smart crop does): past the limit already, stop
            # here; a small image may also be computed before libvips reports any progress.
            if time.monotonic() > deadline:
                raise timed_out
            stop_after(image, deadline)
        data = encoder.encode(image, spec, recipe.keep_metadata)
    except PixlineError:
        raise
    except pyvips.Error as err:
        if deadline is not None and "killed" in (err.detail or ""):
            raise timed_out from None
        detail = (err.detail or str(err)).strip().splitlines()
        raise UndecodableImageError(
            f"{source.name}: cannot render recipe {recipe.name!r}: {detail[-1] if detail else err}"
        ) from None
    return Rendered(
        data=data,
        format=encoder.name,
        media_type=encoder.media_type,
        extension=encoder.extension,
        width=image.width,
        height=image.height,
        negotiated=recipe.negotiated,
    )

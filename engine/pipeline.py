"""Running a recipe over an image: shrink-on-load, lazy steps, web-safe output, one encode.

The first step may load the source itself (a resize does, with libvips' ``thumbnail`` so the image is
never decoded at full size); every later step is a lazy libvips operation; pixels are computed once,
when the encoder runs.

A time limit is a :class:`~pixline.engine.deadline.Deadline` in the render's context, checked here
before anything is decoded, after every step and before encoding, and watched by libvips during the
encode (see ``engine/deadline.py`` for why libvips' progress signal alone does not stop small renders).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import pyvips

from . import frames
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
    height: int  # of one frame
    negotiated: bool  # True when the format followed Accept (the response must say Vary: Accept)
    frames: int = 1  # more than one only for an animation into a format that animates


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
            ctx.deadline.check(f"after the {first.step.name} step")
        else:
            image = source.load()
    for rs in steps:
        image = frames.apply_step(rs.step, image, rs.params, ctx)
        ctx.deadline.check(f"after the {rs.step.name} step")
    return image, colour_managed


def render(recipe: Recipe, source: Source, registry: Registry, ctx: Context | None = None,
           decoded: pyvips.Image | None = None, encoder: Encoder | None = None,
           time_limit: float | None = None) -> Rendered:
    """Render ``recipe`` over ``source`` into encoded bytes.

    The encoder follows the recipe's output spec and ``ctx.accept``; pass ``encoder`` to force one.
    ``time_limit`` (seconds from now) narrows ``ctx.deadline``; past it, the render stops with
    :class:`RenderTimeoutError` at the next check (before decoding, after each step, before encoding,
    inside steps that compute eagerly) or, during the encode, when libvips is told to stop. A render
    that has finished encoding is returned even if the limit passed meanwhile.
    An animated source keeps every frame when the encoder animates (``decoded``, one frame, is then
    not used); otherwise only its first frame is rendered.
    Raises :class:`~pixline.engine.errors.InputError` subclasses for bad input.
    """
    ctx = ctx or Context()
    ctx.deadline = deadline = ctx.deadline.sooner(time_limit)
    ctx.recipe_name = recipe.name
    spec = recipe.output_spec
    try:
        deadline.check("before decoding")
        ctx.source_format = ctx.source_format or source.format
        if encoder is None:
            encoder = choose_encoder(spec, registry, ctx.accept, ctx.source_format, source.has_alpha)
        if encoder.animated and source.animated:
            source, decoded = source.with_every_frame(), None
        image, colour_managed = run_steps(recipe, source, ctx, decoded)
        image = to_web_safe(image, colour_managed)
        if not encoder.supports_alpha:
            image = flatten_alpha(image, spec)
        deadline.check("before encoding")
        data = encoder.encode(deadline.watch(image), spec, recipe.keep_metadata)
    except RenderTimeoutError as err:
        raise timed_out(recipe, source, str(err)) from None
    except (PixlineError, pyvips.Error) as err:
        # libvips reports a kill as a failure of whatever it was computing; a step may have wrapped
        # that in its own error. After a kill by this render's deadline, it is a timeout either way.
        if deadline.killed:
            raise timed_out(recipe, source, str(deadline.exceeded("while computing pixels"))) from None
        if isinstance(err, PixlineError):
            raise
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
        height=frames.page_height(image),
        negotiated=recipe.negotiated,
        frames=frames.frame_count(image),
    )


def timed_out(recipe: Recipe, source: Source, reason: str) -> RenderTimeoutError:
    """The error a caller sees: which input and recipe, and ``reason`` (``Deadline.exceeded``)."""
    return RenderTimeoutError(f"{source.name}: recipe {recipe.name!r} {reason}")

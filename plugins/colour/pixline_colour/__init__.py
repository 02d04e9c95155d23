"""Colour toning for pixline: the ``grayscale`` and ``tint`` steps.

Recipes::

    - grayscale                                  # luminance only, as sRGB grey
    - tint: {colour: "#704214", strength: 0.8}   # sepia (the default colour)

``tint`` works as sharp's does: each pixel keeps its lightness (L* of CIELAB) and takes the hue and
chroma (a*, b*) of the tint colour, so any picture becomes a monochrome in that colour; ``strength``
mixes it with the original. Both steps keep alpha and look at one pixel at a time.
"""
from __future__ import annotations

import functools
from typing import Callable

import pydantic
import pyvips

from pixline.engine import Context, Step, StepParams, hookimpl
from pixline.engine.colour import Colour, rgba

SEPIA = "#704214"


def split_alpha(image: pyvips.Image) -> tuple[pyvips.Image, pyvips.Image | None]:
    """Colour and alpha of a normal image (8-bit sRGB, alpha as a 4th band)."""
    return (image[:3], image[3:]) if image.bands > 3 else (image, None)


def with_alpha(colour: pyvips.Image, alpha: pyvips.Image | None) -> pyvips.Image:
    out = colour if alpha is None else colour.bandjoin(alpha)
    return out.copy(interpretation="srgb")


class Grayscale(Step):
    """Shades of grey.  Recipe: ``- grayscale``"""

    name = "grayscale"
    version = "1"
    handles_frames = True  # every pixel on its own: an animation's strip is converted whole

    def apply(self, image: pyvips.Image, params: StepParams, ctx: Context) -> pyvips.Image:
        colour, alpha = split_alpha(image)
        # libvips' b-w is the luminance (Y, in linear light) encoded with sRGB's curve; back to
        # three equal bands so later steps and encoders see sRGB as from any step.
        return with_alpha(colour.colourspace("b-w").colourspace("srgb"), alpha)


class TintParams(StepParams):
    colour: Colour = pydantic.Field(SEPIA, validation_alias=pydantic.AliasChoices("colour", "color"))
    strength: float = pydantic.Field(1.0, ge=0, le=1)  # 0: the original, 1: fully toned


@functools.lru_cache(maxsize=64)
def chroma(colour: str) -> tuple[float, float]:
    """The a*, b* (CIELAB) of ``colour``: the hue and chroma a tint gives."""
    red, green, blue, _ = rgba(colour)
    pixel = (pyvips.Image.black(1, 1) + [red, green, blue]).cast("uchar").copy(interpretation="srgb")
    _, a, b = pixel.colourspace("lab")(0, 0)
    return a, b


class Tint(Step):
    """Tone in one colour (sepia by default).  Recipe: ``- tint: {colour: "#704214", strength: 1}``"""

    name = "tint"
    version = "1"
    Params = TintParams
    handles_frames = True  # every pixel on its own: an animation's strip is toned whole

    def apply(self, image: pyvips.Image, params: TintParams, ctx: Context) -> pyvips.Image:
        if params.strength == 0:
            return image
        colour, alpha = split_alpha(image)
        lightness = colour.colourspace("lab")[0]
        toned = lightness.bandjoin_const(list(chroma(params.colour))).copy(interpretation="lab")
        toned = toned.colourspace("srgb")
        if params.strength < 1:
            toned = (colour * (1 - params.strength) + toned * params.strength).rint().cast("uchar")
        return with_alpha(toned, alpha)


@hookimpl
def pixline_register_steps(register: Callable[[type[Step]], None]) -> None:
    register(Grayscale)
    register(Tint)

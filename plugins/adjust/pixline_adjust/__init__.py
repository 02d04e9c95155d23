"""The ``adjust`` step: brightness, contrast, saturation and gamma, as CSS filters define them.

Recipe: ``- adjust: {brightness: 1.1, contrast: 1.2, saturation: 0.8, gamma: 1.2}``

Every parameter is a factor whose identity is 1, and the defaults are identity: an ``adjust`` with
no parameters leaves every pixel as it was. The meanings are those of the CSS ``brightness()``,
``contrast()`` and ``saturate()`` filters (on 8-bit sRGB values), plus a levels gamma:

1. brightness: each value × ``brightness``;
2. contrast: away from (above 1) or towards (below 1) mid-grey: ``(v - 0.5) × contrast + 0.5``;
3. gamma: ``v ** (1 / gamma)``, so above 1 lifts the mid-tones, below 1 darkens them;
4. saturation: towards (below 1) or away from (above 1) each pixel's luma (Rec. 709 weights).

Values are clipped to 0..1 after each stage, as a chain of CSS filters does. Steps 1-3 are one
256-entry lookup table; 4 a 3×3 colour matrix. Alpha is untouched.
"""
from __future__ import annotations

from typing import Callable

import pydantic
import pyvips

from pixline.engine import Context, Step, StepParams, hookimpl

#: Rec. 709 luma weights, as the CSS saturate() matrix uses them.
LUMA = (0.2126, 0.7152, 0.0722)


class AdjustParams(StepParams):
    url_keys = {"b": "brightness", "c": "contrast", "s": "saturation", "g": "gamma"}

    brightness: float = pydantic.Field(1.0, ge=0, le=4)
    contrast: float = pydantic.Field(1.0, ge=0, le=4)
    saturation: float = pydantic.Field(1.0, ge=0, le=4)
    gamma: float = pydantic.Field(1.0, ge=0.1, le=10)


def levels_lut(params: AdjustParams) -> pyvips.Image:
    """Brightness, contrast and gamma as one lookup table from 8-bit values to 8-bit values."""
    v = pyvips.Image.identity().cast("float") / 255
    v = clip(v * params.brightness)
    v = clip((v - 0.5) * params.contrast + 0.5)
    v = v ** (1 / params.gamma)
    return (v * 255).rint().cast("uchar")


def clip(image: pyvips.Image) -> pyvips.Image:
    return image.clamp(min=0, max=1)


def saturation_matrix(saturation: float) -> list[list[float]]:
    """The CSS ``saturate()`` matrix: 0 is grey (luma), 1 unchanged, above 1 more colourful."""
    return [[LUMA[col] * (1 - saturation) + (saturation if row == col else 0) for col in range(3)]
            for row in range(3)]


class Adjust(Step):
    """Brightness, contrast, saturation, gamma.  Recipe: ``- adjust: {contrast: 1.2}``"""

    name = "adjust"
    version = "1"
    Params = AdjustParams
    handles_frames = True  # every pixel on its own: an animation's strip is adjusted whole

    def apply(self, image: pyvips.Image, params: AdjustParams, ctx: Context) -> pyvips.Image:
        levels = (params.brightness, params.contrast, params.gamma) != (1, 1, 1)
        if not levels and params.saturation == 1:
            return image  # identity: not a pixel touched
        # The image is normal (8-bit sRGB, alpha as a 4th band): a 3-band matrix and an 8-bit table fit.
        colour, alpha = (image[:3], image[3:]) if image.bands > 3 else (image, None)
        if levels:
            colour = colour.maplut(levels_lut(params))
        if params.saturation != 1:
            colour = colour.recomb(saturation_matrix(params.saturation)).rint().cast("uchar")
        out = colour if alpha is None else colour.bandjoin(alpha)
        return out.copy(interpretation="srgb")


@hookimpl
def pixline_register_steps(register: Callable[[type[Step]], None]) -> None:
    register(Adjust)

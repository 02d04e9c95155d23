"""The ``sharpen`` step: libvips' unsharp mask on lightness, for crisp edges after a downscale.

Recipe: ``- sharpen: {sigma: 0.5, amount: 1.5}``

libvips' ``sharpen`` blurs the L* channel with a Gaussian of ``sigma``, takes the difference
(the detail) and adds it back through a curve: differences under ``threshold`` (flat areas, noise,
JPEG blocking) are left alone, larger ones are multiplied by ``amount``, and the change is capped at
10 L* brighter and 20 L* darker, so edges get no glowing halos. Colour and alpha are untouched.
"""
from __future__ import annotations

from typing import Any, Callable

import pydantic
import pyvips

from pixline.engine import Context, Step, StepParams, hookimpl

#: libvips' caps on the change, in L* (0-100): its defaults, meant for screens.
MAX_BRIGHTEN = 10.0
MAX_DARKEN = 20.0


class SharpenParams(StepParams):
    url_keys = {"s": "sigma", "a": "amount", "t": "threshold"}

    # px: libvips' default, for screens, is also the least that changes a pixel (a narrower
    # Gaussian rounds to a one-pixel mask)
    sigma: float = pydantic.Field(0.5, ge=0.5, le=10)
    amount: float = pydantic.Field(2.0, ge=0, le=10)      # libvips' m2, the slope past threshold: sharp's 2
    threshold: float = pydantic.Field(2.0, ge=0, le=100)  # libvips' x1, in L*: flatter areas are left alone


class Sharpen(Step):
    """Sharpen edges.  Recipe: ``- sharpen: {sigma: 0.5, amount: 1.5}``"""

    name = "sharpen"
    version = "1"
    Params = SharpenParams
    # Not handles_frames: the Gaussian would reach across an animation's frames; the pipeline
    # sharpens frame by frame.

    def apply(self, image: pyvips.Image, params: SharpenParams, ctx: Context) -> pyvips.Image:
        if params.amount == 0:
            return image
        # m1 = 0: flat areas stay as they are, so noise and compression artefacts are not boosted.
        return image.sharpen(sigma=params.sigma, x1=params.threshold, m1=0, m2=params.amount,
                             y2=MAX_BRIGHTEN, y3=MAX_DARKEN)


@hookimpl
def pixline_register_steps(register: Callable[[type[Step]], None]) -> None:
    register(Sharpen)

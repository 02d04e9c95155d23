"""The ``blur`` step: a Gaussian blur, for backdrops, previews and privacy.

Recipe: ``- blur: {sigma: 8}``

``sigma`` is the Gaussian's standard deviation in pixels of the image the step receives: after a
``resize`` to 600 px, ``sigma: 8`` blurs as much of the picture as ``sigma: 32`` would at 2400 px.
An image with alpha is blurred premultiplied, so see-through pixels lend no colour to their
neighbours (no dark fringes round a cut-out).
"""
from __future__ import annotations

from typing import Callable

import pydantic
import pyvips

from pixline.engine import Context, Step, StepParams, hookimpl

#: Below this libvips' mask is one pixel wide: nothing would change.
MIN_SIGMA = 0.6
#: The cost of a Gaussian grows with sigma; past this a downscale, blur and upscale is the tool.
MAX_SIGMA = 100


class BlurParams(StepParams):
    url_keys = {"s": "sigma"}

    sigma: float = pydantic.Field(ge=MIN_SIGMA, le=MAX_SIGMA)  # px; no default: how much is the point


class Blur(Step):
    """Gaussian blur.  Recipe: ``- blur: {sigma: 8}``"""

    name = "blur"
    version = "1"
    Params = BlurParams
    # Not handles_frames: the Gaussian would reach across an animation's frames; the pipeline
    # blurs frame by frame.

    def apply(self, image: pyvips.Image, params: BlurParams, ctx: Context) -> pyvips.Image:
        if not image.hasalpha():
            return image.gaussblur(params.sigma)
        blurred = image.premultiply().gaussblur(params.sigma).unpremultiply()
        return blurred.cast(image.format).copy(interpretation=image.interpretation)


@hookimpl
def pixline_register_steps(register: Callable[[type[Step]], None]) -> None:
    register(Blur)

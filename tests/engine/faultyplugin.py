"""A plugin whose step fails on purpose, in each of the ways a real plugin can fail at render time.

``- explode: {how: value}`` raises a ``ValueError`` (a bug); ``vips`` makes a libvips error while
building the image (a 3×3 matrix over two bands); ``lazy`` a libvips error only when pixels are
computed; ``parameter`` a ``ParameterError`` (a recipe that cannot work on this image); ``oserror``
an ``OSError`` (the store went away: transient); ``none`` does nothing.
"""
from __future__ import annotations

from typing import Literal

import pyvips

from pixline.engine import Encoder, ParameterError, Step, StepParams, hookimpl, testing

_asset = testing.jpeg_bytes(testing.gradient(1000, 800))
BROKEN_ASSET = _asset[: len(_asset) // 2]


class Explode(Step):
    name = "explode"

    class Params(StepParams):
        how: Literal["value", "vips", "lazy", "parameter", "oserror", "none"] = "value"

    def apply(self, image: pyvips.Image, params: Params, ctx) -> pyvips.Image:
        if params.how == "value":
            raise ValueError("the plugin has a bug")
        if params.how == "vips":
            return image[:2].recomb([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
        if params.how == "lazy":
            # An asset cut short: libvips only notices when it decodes its pixels, in the encoder.
            broken = pyvips.Image.new_from_buffer(BROKEN_ASSET, "", fail_on="truncated")
            return image.insert(broken.crop(0, 700, 8, 8), 0, 0)
        if params.how == "parameter":
            raise ParameterError("this image is too small for the recipe's box")
        if params.how == "oserror":
            raise ConnectionError("the store went away")
        return image


class Fragile(Encoder):
    """An encoder that fails: ``- format: {type: fragile}``."""

    name, media_type, extension = "fragile", "image/x-fragile", "frg"

    def encode(self, image, spec, keep_metadata, ctx):
        raise RuntimeError("the encoder has a bug")


@hookimpl
def pixline_register_steps(register):
    register(Explode)


@hookimpl
def pixline_register_encoders(register):
    register(Fragile)

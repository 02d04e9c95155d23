"""A tiny plugin used by the engine's own tests, so they do not depend on the first-party plugins."""
from __future__ import annotations

import pydantic
import pyvips

from pixline.engine import Encoder, OutputSpec, Step, StepParams, hookimpl


class Invert(Step):
    """Invert the colour bands.  Recipe: ``- invert: {}``"""

    name = "invert"
    version = "1"

    def apply(self, image: pyvips.Image, params: StepParams, ctx) -> pyvips.Image:
        if image.hasalpha():
            return image[: image.bands - 1].invert().bandjoin(image[image.bands - 1])
        return image.invert()


class Half(Step):
    """Halve the size; shrinks on load when first."""

    name = "half"
    version = "2"

    class Params(StepParams):
        times: int = pydantic.Field(default=1, ge=1, le=4)

    def apply(self, image, params, ctx):
        return image.resize(0.5 ** params.times)

    def open(self, source, params, ctx):
        width, _ = source.size
        return source.thumbnail(max(1, width >> params.times))


class Out(Step):
    """Choose an output format: ``- out: {type: png}``"""

    name = "out"

    class Params(StepParams):
        type: str = "png"
        candidates: tuple[str, ...] = ("webpish",)

    def apply(self, image, params, ctx):
        return image

    def output(self, params):
        return OutputSpec(format=params.type, candidates=params.candidates)


class Png(Encoder):
    name, media_type, extension, supports_alpha = "png", "image/png", "png", True

    def encode(self, image, spec, keep_metadata, ctx):
        return image.pngsave_buffer(keep="all" if keep_metadata else "none")


class Jpeg(Encoder):
    name, media_type, extension = "jpeg", "image/jpeg", "jpg"

    def encode(self, image, spec, keep_metadata, ctx):
        return image.jpegsave_buffer(Q=spec.quality or 85, keep="all" if keep_metadata else "none")


class WebpIsh(Encoder):
    name, media_type, extension, supports_alpha = "webpish", "image/webp", "webp", True

    def encode(self, image, spec, keep_metadata, ctx):
        return image.webpsave_buffer(keep="none")


@hookimpl
def pixline_register_steps(register):
    for step in (Invert, Half, Out):
        register(step)


@hookimpl
def pixline_register_encoders(register):
    for encoder in (Png, Jpeg, WebpIsh):
        register(encoder)

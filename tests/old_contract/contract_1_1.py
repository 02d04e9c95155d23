"""A plugin as written against contract 1.1, kept as its author wrote it: ``Step.output_size``
exists, ``Context.fields`` holds the upload fields, ``encode`` still has no ``ctx``."""
import pyvips

from pixline.engine import Encoder, Step, StepParams, hookimpl


class BorderParams(StepParams):
    width: int = 3


class Border(Step):
    """A blue border of ``width`` pixels around the image."""

    name = "oldborder"
    Params = BorderParams

    def apply(self, image: pyvips.Image, params: BorderParams, ctx) -> pyvips.Image:
        w = params.width
        colour = [0, 0, 255] + ([255] if image.hasalpha() else [])
        return image.embed(w, w, image.width + 2 * w, image.height + 2 * w, extend="background",
                           background=colour)

    def output_size(self, params: BorderParams, width: int, height: int) -> tuple[int, int]:
        return width + 2 * params.width, height + 2 * params.width


class TiffBorder(Encoder):
    name = "tiff_border"
    media_type = "image/tiff"
    extension = "tif"

    def encode(self, image, spec, keep_metadata):
        return image.tiffsave_buffer(compression="lzw", keep="all" if keep_metadata else "none")


@hookimpl
def pixline_register_steps(register):
    register(Border)


@hookimpl
def pixline_register_encoders(register):
    register(TiffBorder)

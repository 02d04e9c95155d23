"""A plugin as written against contract 2.0, kept as its author wrote it: ``encode`` takes ``ctx``,
``Encoder.unavailable`` and ``StepParams.url_keys`` exist."""
import pyvips

from pixline.engine import Context, Encoder, OutputSpec, Step, StepParams, hookimpl


class StampParams(StepParams):
    url_keys = {"s": "size"}
    size: int = 6


class Stamp(Step):
    """A white square of ``size`` pixels in the top-left corner."""

    name = "stamp"
    version = "2"
    Params = StampParams

    def apply(self, image: pyvips.Image, params: StampParams, ctx: Context) -> pyvips.Image:
        size = min(params.size, image.width, image.height)
        square = image.new_from_image([255] * image.bands).crop(0, 0, size, size)
        return image.insert(square, 0, 0)


class TiffStamp(Encoder):
    name = "tiff_stamp"
    media_type = "image/tiff"
    extension = "tif"
    supports_alpha = True

    def encode(self, image: pyvips.Image, spec: OutputSpec, keep_metadata: bool, ctx: Context) -> bytes:
        return image.tiffsave_buffer(compression="deflate", keep="all" if keep_metadata else "none")

    def unavailable(self):
        return None if pyvips.type_find("VipsOperation", "tiffsave_buffer") else "no TIFF saver"


@hookimpl
def pixline_register_steps(register):
    register(Stamp)


@hookimpl
def pixline_register_encoders(register):
    register(TiffStamp)

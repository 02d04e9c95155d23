"""A plugin as written against contract 1.0 (pixline's first engine), kept as its author wrote it.

Then: ``Encoder.encode(self, image, spec, keep_metadata)`` (no ``ctx``), no ``output_size``,
``Context.metadata`` for the upload fields (renamed ``fields`` in 1.1), and argument names of the
author's own choosing (``img``, ``p``). It must keep loading, listing and rendering, with
deprecation warnings for the last two (docs/plugins.md, "Contract changelog").
"""
import pyvips

from pixline.engine import Encoder, Step, StepParams, hookimpl


class TintBarParams(StepParams):
    height: int = 4


class TintBar(Step):
    """A bar across the top: red, or green when the upload has an owner."""

    name = "tintbar"
    version = "1"
    Params = TintBarParams

    def apply(self, img, p, ctx):
        colour = [0, 255, 0] if ctx.metadata.get("owner") else [255, 0, 0]
        if img.hasalpha():
            colour.append(255)
        bar = img.new_from_image(colour).crop(0, 0, img.width, min(p.height, img.height))
        return img.insert(bar, 0, 0)


class TiffTintbar(Encoder):
    name = "tiff_tintbar"
    media_type = "image/tiff"
    extension = "tif"
    supports_alpha = True

    def encode(self, image: pyvips.Image, spec, keep_metadata) -> bytes:
        return image.tiffsave_buffer(compression="deflate", keep="all" if keep_metadata else "none")


@hookimpl
def pixline_register_steps(register):
    register(TintBar)


@hookimpl
def pixline_register_encoders(register):
    register(TiffTintbar)

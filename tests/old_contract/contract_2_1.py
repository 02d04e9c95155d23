"""A plugin as written against contract 2.1, kept as its author wrote it: ``Step.handles_frames``,
``Encoder.animated`` and ``Encoder.max_side``, and every argument of every method."""
import pyvips

from pixline.engine import Context, Encoder, OutputSpec, Step, StepParams, hookimpl


class StripeParams(StepParams):
    height: int = 5


class Stripe(Step):
    """A yellow stripe across the top of the strip (so of an animation's first frame)."""

    name = "stripe"
    Params = StripeParams
    handles_frames = True

    def apply(self, image: pyvips.Image, params: StripeParams, ctx: Context) -> pyvips.Image:
        colour = [255, 255, 0] + ([255] if image.hasalpha() else [])
        stripe = image.new_from_image(colour).crop(0, 0, image.width, min(params.height, image.height))
        return image.insert(stripe, 0, 0)

    def output_size(self, params: StripeParams, width: int, height: int) -> tuple[int, int]:
        return width, height


class GifStripe(Encoder):
    name = "gif_stripe"
    media_type = "image/gif"
    extension = "gif"
    animated = True
    max_side = 4000

    def encode(self, image: pyvips.Image, spec: OutputSpec, keep_metadata: bool, ctx: Context) -> bytes:
        return image.gifsave_buffer()


@hookimpl
def pixline_register_steps(register):
    register(Stripe)


@hookimpl
def pixline_register_encoders(register):
    register(GifStripe)

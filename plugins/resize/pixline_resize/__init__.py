"""The ``resize`` step: scale to a width and/or height, with sharp's ``fit`` modes.

Recipe: ``- resize: {width: 600, height: 400, fit: cover, gravity: attention}``

As the first step of a recipe it loads the source with libvips' shrink-on-load (``thumbnail``), so a
large JPEG is never decoded at full size; later in a recipe it resizes the image it is given. Both
paths share :func:`plan_resize`, so they produce the same geometry.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Callable

import pydantic
import pyvips

from pixline.engine import (AnyGravity, Context, Gravity, Source, Step, StepParams, frames, hookimpl, param_error,
                            place)
from pixline.engine.colour import Colour, rgba

log = logging.getLogger(__name__)

MAX_SIDE = 16384


class Fit(str, enum.Enum):
    """How the image goes into a width × height box (sharp's names and meanings)."""

    COVER = "cover"      # fill the box, aspect kept, overflow cropped at gravity
    CONTAIN = "contain"  # fit inside the box, aspect kept, padded to the box with background
    FILL = "fill"        # stretch to the box, aspect ignored
    INSIDE = "inside"    # fit inside the box, aspect kept, no padding
    OUTSIDE = "outside"  # smallest size covering the box, aspect kept, no crop


@dataclass(frozen=True)
class ResizePlan:
    """Where a resize takes a ``width``×``height`` input: scale to ``scaled``, then ``crop`` or
    ``pad`` to ``output`` (or nothing). ``offset`` is the crop's top-left in the scaled image, or
    the scaled image's top-left on the padded canvas."""

    scaled: tuple[int, int]
    output: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    action: str = "none"  # "crop", "pad" or "none"


class ResizeParams(StepParams):
    url_keys = {"w": "width", "h": "height", "g": "gravity"}

    width: int | None = pydantic.Field(None, ge=1, le=MAX_SIDE)
    height: int | None = pydantic.Field(None, ge=1, le=MAX_SIDE)
    fit: Fit = Fit.INSIDE
    gravity: AnyGravity = Gravity.CENTRE
    enlarge: bool = False
    dpr: float = pydantic.Field(1.0, ge=1, le=4)
    background: Colour = "white"

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> "ResizeParams":
        if self.width is None and self.height is None:
            raise param_error("give 'width' or 'height' (or both)")
        for side in ("width", "height"):
            value = getattr(self, side)
            if value is not None and round(value * self.dpr) > MAX_SIDE:
                raise param_error(f"'{side}' × 'dpr' is {value} × {self.dpr}, over {MAX_SIDE} pixels")
        given = self.model_fields_set
        if "background" in given and self.fit is not Fit.CONTAIN:
            raise param_error(f"'background' only applies to fit: contain (fit is {self.fit.value})")
        if "gravity" in given and self.fit not in (Fit.COVER, Fit.CONTAIN):
            raise param_error(f"'gravity' only applies to fit: cover or contain (fit is {self.fit.value})")
        if self.fit is Fit.CONTAIN and self.gravity.is_smart:
            raise param_error(f"'gravity' {self.gravity.value} only applies to fit: cover (it picks a crop)")
        return self


def plan_resize(width: int, height: int, params: ResizeParams) -> ResizePlan:
    """The geometry of a resize of a ``width``×``height`` image (pure: no pixels involved).

    Follows sharp: with one side given, the other follows the aspect ratio (``fill`` keeps it as
    is); without ``enlarge``, neither axis is scaled up, so the output may be smaller than the box
    (``cover`` then crops to the box clipped to the image; ``contain`` still pads to the full box).
    """
    box_w = round(params.width * params.dpr) if params.width else None
    box_h = round(params.height * params.dpr) if params.height else None
    fill = params.fit is Fit.FILL
    if box_w and box_h:
        sx, sy = box_w / width, box_h / height
        if params.fit in (Fit.COVER, Fit.OUTSIDE):
            sx = sy = max(sx, sy)
        elif params.fit in (Fit.CONTAIN, Fit.INSIDE):
            sx = sy = min(sx, sy)
    elif box_w:
        sx = box_w / width
        sy = 1.0 if fill else sx
    else:
        sy = box_h / height
        sx = 1.0 if fill else sy
    if not params.enlarge:
        sx, sy = min(sx, 1.0), min(sy, 1.0)
    scaled = (max(1, round(width * sx)), max(1, round(height * sy)))
    if not (box_w and box_h) or params.fit not in (Fit.COVER, Fit.CONTAIN):
        return ResizePlan(scaled, scaled)
    if params.fit is Fit.COVER:
        output = (min(box_w, scaled[0]), min(box_h, scaled[1]))
        offset = params.gravity.offset(*scaled, *output)
        return ResizePlan(scaled, output, offset, "crop" if output != scaled else "none")
    output = (max(box_w, scaled[0]), max(box_h, scaled[1]))
    offset = params.gravity.offset(*output, *scaled)
    return ResizePlan(scaled, output, offset, "pad" if output != scaled else "none")


def _pad(image: pyvips.Image, plan: ResizePlan, background: str) -> pyvips.Image:
    """Embed a normal image (8-bit sRGB, alpha as a 4th band) on a ``plan.output`` canvas."""
    *colour, alpha = rgba(background)
    if alpha < 255 and not image.hasalpha():
        image = image.bandjoin_const([255])  # opaque picture on a see-through canvas
    if image.hasalpha():
        colour.append(alpha)
    return image.embed(*plan.offset, *plan.output, extend="background", background=colour)


def finish(image: pyvips.Image, plan: ResizePlan, params: ResizeParams,
           ctx: Context | None = None) -> pyvips.Image:
    """Crop (cover) or pad (contain) an image already scaled to ``plan.scaled``; an animation's
    frames each alike.

    A smart crop computes pixels now (the decode and shrink included), within ``ctx.deadline``.
    """
    if plan.action == "crop":
        offset = plan.offset
        if params.gravity.is_smart:
            deadline = (ctx or Context()).deadline
            deadline.check("before the smart crop")
            # smartcrop reads the image more than once: a sequential (shrink-on-load) source
            # cannot be re-read, and a lazy one would be recomputed. The scaled image is small.
            image = deadline.copy_memory(image)
            offset = place(deadline.watch(image), *plan.output, params.gravity, ctx or Context())
        return frames.per_frame(image, lambda frame: frame.crop(*offset, *plan.output))
    if plan.action == "pad":
        return frames.per_frame(image, lambda frame: _pad(frame, plan, params.background))
    return image


class Resize(Step):
    """Scale to a width and/or height.  Recipe: ``- resize: {width: 300, height: 300, fit: cover}``"""

    name = "resize"
    version = "1"
    Params = ResizeParams
    handles_frames = True  # thumbnail and thumbnail_image scale each frame of a strip

    def apply(self, image: pyvips.Image, params: ResizeParams, ctx: Context) -> pyvips.Image:
        height = frames.page_height(image)
        plan = plan_resize(image.width, height, params)
        if plan.scaled != (image.width, height):
            # thumbnail_image premultiplies alpha; "force" gives exactly the planned size (of a frame).
            image = image.thumbnail_image(plan.scaled[0], height=plan.scaled[1], size="force",
                                          no_rotate=True)
        return finish(image, plan, params, ctx)

    def open(self, source: Source, params: ResizeParams, ctx: Context) -> pyvips.Image:
        width, height = source.size  # displayed size: thumbnail rotates upright as it loads
        plan = plan_resize(width, height, params)
        log.debug("resize %s: %s×%s → %s", source.name, width, height, plan)
        # Source.thumbnail returns a normal image (ICC profile applied, 8-bit sRGB), as apply() gets.
        # For an animation loaded whole, height is a frame's: libvips scales each frame.
        image = source.thumbnail(plan.scaled[0], height=plan.scaled[1], size="force")
        return finish(image, plan, params, ctx)

    def shrink_hint(self, params: ResizeParams, width: int, height: int) -> tuple[int, int]:
        return plan_resize(width, height, params).scaled

    def output_size(self, params: ResizeParams, width: int, height: int) -> tuple[int, int]:
        return plan_resize(width, height, params).output


@hookimpl
def pixline_register_steps(register: Callable[[type[Step]], None]) -> None:
    register(Resize)

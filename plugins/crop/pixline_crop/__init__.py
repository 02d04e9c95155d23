"""The ``crop`` step: cut out a box, the largest box of an aspect ratio, or a uniform border.

Exactly one mode per step::

    - crop: {left: 100, top: 50, width: 400, height: 300}             # a box in pixels
    - crop: {left: 0.1, top: 0, width: 0.8, height: 1, unit: fraction} # a box in fractions of the image
    - crop: {aspect: "16:9", gravity: attention}                      # largest 16:9 box
    - crop: {trim: true, threshold: 10}                               # remove a uniform border
"""
from __future__ import annotations

import enum
import logging
import math
import re
from typing import Annotated, Callable

import pydantic
import pyvips

from pixline.engine import (AnyGravity, Context, Gravity, ParameterError, Step, StepParams, frames, hookimpl,
                            param_error, place, quote)

log = logging.getLogger(__name__)

MAX_PIXELS = 65535
#: Each side at most 6 digits and 6 decimals: the ratio is finite and never 0 (400 nines on each
#: side would be inf/inf, a NaN size).
ASPECT_RE = re.compile(r"\s*(\d{1,6}(?:\.\d{1,6})?)\s*:\s*(\d{1,6}(?:\.\d{1,6})?)\s*")
BOX_KEYS = {"left", "top", "width", "height", "unit"}
ASPECT_KEYS = {"aspect", "gravity"}
TRIM_KEYS = {"trim", "threshold"}
MODES = ("a box ('left', 'top', 'width', 'height' [, 'unit']), 'aspect' [with 'gravity'], "
         "or 'trim': true [with 'threshold']")


class Unit(str, enum.Enum):
    """How box values are read: whole pixels, or fractions 0..1 of the image's width/height."""

    PX = "px"
    FRACTION = "fraction"


def parse_aspect(text: str) -> float:
    """``"16:9"`` → 16/9. Raises ``ValueError`` for anything else."""
    match = ASPECT_RE.fullmatch(text)
    if not match or float(match.group(1)) <= 0 or float(match.group(2)) <= 0:
        raise ValueError(f"{quote(text)} is not an aspect ratio: write it as \"W:H\" (each at most 6 digits), "
                         "e.g. \"16:9\"")
    return float(match.group(1)) / float(match.group(2))


def _box_value(positive: bool) -> pydantic.PlainValidator:
    """A box value: a finite number in range; whole numbers become ints (400.0 is 400)."""

    def check(value: object) -> int | float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise param_error(f"{quote(value)} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise param_error(f"{quote(value)} is not a number")
        if value < 0 or (positive and value == 0) or value > MAX_PIXELS:
            raise param_error(f"{quote(value)} is out of range ({'over' if positive else 'at least'} 0, at most "
                           f"{MAX_PIXELS})")
        # One spelling per box, so one recipe digest.
        return int(value) if float(value).is_integer() else value

    return pydantic.PlainValidator(check, json_schema_input_type=float)


Offset = Annotated[int | float | None, _box_value(positive=False)]
Size = Annotated[int | float | None, _box_value(positive=True)]


class CropParams(StepParams):
    url_keys = {"w": "width", "h": "height", "g": "gravity"}

    left: Offset = None
    top: Offset = None
    width: Size = None
    height: Size = None
    unit: Unit = Unit.PX
    aspect: str | None = None
    gravity: AnyGravity = Gravity.CENTRE
    trim: bool = False
    threshold: float = pydantic.Field(10.0, ge=0, le=255)

    @pydantic.field_validator("aspect", mode="before")
    @classmethod
    def _aspect_is_text(cls, value: object) -> object:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 16:9 as the base-60 number 969.
            raise param_error(f"got the number {quote(value)}: quote the ratio, e.g. aspect: \"16:9\"")
        return value

    @pydantic.field_validator("aspect")
    @classmethod
    def _aspect_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_aspect(value)
            except ValueError as exc:
                raise param_error(str(exc)) from None
        return value

    @pydantic.model_validator(mode="after")
    def _one_mode(self) -> "CropParams":
        given = self.model_fields_set
        modes = [name for name, keys in (("box", BOX_KEYS), ("aspect", ASPECT_KEYS), ("trim", TRIM_KEYS))
                 if given & keys]
        if len(modes) != 1:
            got = " and ".join(modes) if modes else "none"
            raise param_error(f"give exactly one crop mode: {MODES}; got {got}")
        if modes == ["aspect"] and self.aspect is None:
            raise param_error("'gravity' needs 'aspect' (e.g. aspect: \"16:9\")")
        if modes == ["trim"] and "trim" not in given:
            raise param_error("'threshold' needs 'trim: true'")
        if modes == ["trim"] and not self.trim:
            raise param_error("'trim' must be true (leave the step out to keep the border)")
        if modes == ["box"]:
            self._check_box()
        return self

    def _check_box(self) -> None:
        if self.width is None or self.height is None:
            raise param_error("a box needs 'width' and 'height' ('left' and 'top' default to 0)")
        values = {k: getattr(self, k) for k in ("left", "top", "width", "height")
                  if getattr(self, k) is not None}
        if self.unit is Unit.PX:
            for key, value in values.items():
                if not float(value).is_integer():
                    raise param_error(f"'{key}' is {value}: pixel values are whole numbers "
                                   "(for fractions of the image add unit: fraction)")
            return
        for key, value in values.items():
            if value > 1:
                raise param_error(f"'{key}' is {value}: with unit: fraction, values are 0..1")
        for start, size in (("left", "width"), ("top", "height")):
            if (getattr(self, start) or 0) + getattr(self, size) > 1 + 1e-9:
                raise param_error(f"'{start}' + '{size}' is over 1: the box leaves the image")


def box_for(width: int, height: int, params: CropParams) -> tuple[int, int, int, int]:
    """The (left, top, width, height) a box-mode crop takes of a ``width``×``height`` image.

    The box is clipped to the image; a box entirely outside it raises :class:`ParameterError`.
    """
    if params.unit is Unit.FRACTION:
        left, top = round((params.left or 0) * width), round((params.top or 0) * height)
        box_w, box_h = max(1, round(params.width * width)), max(1, round(params.height * height))
    else:
        left, top = int(params.left or 0), int(params.top or 0)
        box_w, box_h = int(params.width), int(params.height)
    if left >= width or top >= height:
        raise ParameterError(
            f"crop: the box left={left}, top={top}, width={box_w}, height={box_h} lies entirely "
            f"outside the {width}×{height} image"
        )
    return left, top, min(box_w, width - left), min(box_h, height - top)


def aspect_size(width: int, height: int, ratio: float) -> tuple[int, int]:
    """The largest (w, h) of aspect ``ratio`` (w/h) inside ``width``×``height``."""
    if width / height > ratio:
        return max(1, min(width, round(height * ratio))), height
    return width, max(1, min(height, round(width / ratio)))


def trim_box(image: pyvips.Image, threshold: float) -> tuple[int, int, int, int] | None:
    """The box inside a uniform border (sharp's trim: the top-left pixel is the border colour).

    An image with alpha is also trimmed of transparent edges. ``None``: nothing to trim, or the
    whole image is border. This reads pixels: pass an image that can be read more than once.
    """
    alpha = image.hasalpha()
    colour = image.getpoint(0, 0)
    boxes = [image.find_trim(threshold=threshold, background=colour[:-1] if alpha else colour)]
    if alpha:
        boxes.append(image[image.bands - 1].find_trim(threshold=threshold, background=[colour[-1]]))
    boxes = [b for b in boxes if b[2] > 0 and b[3] > 0]
    if not boxes:
        return None
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return left, top, right - left, bottom - top


class Crop(Step):
    """Cut out part of the image.  Recipe: ``- crop: {aspect: "1:1", gravity: attention}``"""

    name = "crop"
    version = "1"
    Params = CropParams
    handles_frames = True  # one box for every frame: a trim or smart crop must not jump about

    def apply(self, image: pyvips.Image, params: CropParams, ctx: Context) -> pyvips.Image:
        if params.trim or params.gravity.is_smart:
            # Pixels are computed here, not at encode time: within the render's time budget.
            ctx.deadline.check("before the crop computes pixels")
            # find_trim and smartcrop read the image, then the crop reads it again: a sequential
            # (shrink-on-load) input cannot be re-read, and a lazy one would be recomputed.
            image = ctx.deadline.copy_memory(image)
        box = self.box(ctx.deadline.watch(image) if params.trim or params.gravity.is_smart else image, params, ctx)
        if box is None:
            return image
        # An animation is cut at the same place in every frame (found on the first).
        return frames.per_frame(image, lambda frame: frame.crop(*box))

    def box(self, image: pyvips.Image, params: CropParams,
            ctx: Context | None = None) -> tuple[int, int, int, int] | None:
        """(left, top, width, height) to cut from each frame of ``image``; ``None``: keep it whole.
        A smart gravity (attention, or a plugin's: ``face``) places it (engine/gravity.py)."""
        width, height = image.width, frames.page_height(image)
        if params.trim:
            box = trim_box(frames.split(image)[0], params.threshold)
            log.debug("crop trim: %s×%s → %s", width, height, box)
            return box
        if params.aspect is not None:
            size = aspect_size(width, height, parse_aspect(params.aspect))
            if size == (width, height):
                return None
            if params.gravity.is_smart:
                return (*place(image, *size, params.gravity, ctx or Context()), *size)
            return (*params.gravity.offset(width, height, *size), *size)
        return box_for(width, height, params)

    def output_size(self, params: CropParams, width: int, height: int) -> tuple[int, int]:
        if params.trim:
            return width, height  # the border is found in the pixels: the input size is an upper bound
        if params.aspect is not None:
            return aspect_size(width, height, parse_aspect(params.aspect))
        _, _, box_w, box_h = box_for(width, height, params)
        return box_w, box_h


@hookimpl
def pixline_register_steps(register: Callable[[type[Step]], None]) -> None:
    register(Crop)

"""Animated images: every frame in one tall strip, as libvips keeps them.

libvips loads an animation (``n=-1``) as one image whose frames are stacked top to bottom, each
``page-height`` pixels high, with the frame delays (``delay``, milliseconds) and the loop count
(``loop``, 0 = forever) as metadata; the GIF and WebP savers write such a strip as an animation.
Operations that look only at one pixel (colour, levels) work on the strip as they are; anything that
looks at neighbours or at the image's size (resize, crop, blur, a watermark) must work per frame.
:func:`per_frame` does that for steps that do not (docs/architecture.md, "Animation").
"""
from __future__ import annotations

from typing import Any, Callable

import pyvips

from . import contract
from .errors import RenderError

PAGE_HEIGHT = "page-height"


def page_height(image: pyvips.Image) -> int:
    """The height of one frame: ``page-height`` when it divides the strip, else the whole height."""
    if image.get_typeof(PAGE_HEIGHT) == 0:
        return image.height
    height = image.get(PAGE_HEIGHT)
    return height if 0 < height < image.height and image.height % height == 0 else image.height


def frame_count(image: pyvips.Image) -> int:
    """How many frames the strip holds (1 for a still image)."""
    return image.height // page_height(image)


def split(image: pyvips.Image) -> list[pyvips.Image]:
    """Each frame as its own (lazy) image; a still image is its only frame."""
    height = page_height(image)
    if height == image.height:
        return [image]
    return [image.crop(0, top, image.width, height) for top in range(0, image.height, height)]


def join(frames: list[pyvips.Image]) -> pyvips.Image:
    """Stack frames of one size into a strip; metadata (``delay``, ``loop``) from the first frame."""
    if len(frames) == 1:
        return frames[0]
    sizes = {(f.width, f.height) for f in frames}
    if len(sizes) > 1:
        raise ValueError(f"frames of an animation must share one size, got {sorted(sizes)}")
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, PAGE_HEIGHT, frames[0].height)
    return strip


def per_frame(image: pyvips.Image, fn: Callable[[pyvips.Image], pyvips.Image]) -> pyvips.Image:
    """``fn`` applied to each frame of ``image``, stacked again (just ``fn(image)`` for a still)."""
    parts = split(image)
    if len(parts) == 1:
        return fn(image)
    return join([fn(frame) for frame in parts])


def smart_box(image: pyvips.Image, width: int, height: int, interesting: str) -> tuple[int, int]:
    """Where libvips' ``smartcrop`` would cut a ``width``×``height`` box from ``image``: (left, top).

    An animation is cut at one place for every frame, found on its first: frames that jump about
    would be worse than a box that misses a late detail. Reads pixels: give an image in memory.
    """
    first = split(image)[0]
    cut = first.smartcrop(width, height, interesting=interesting)
    # smartcrop records where it cut as the output's (negated) offset, as extract_area does.
    return abs(cut.xoffset), abs(cut.yoffset)


def apply_step(step: Any, image: pyvips.Image, params: Any, ctx: Any) -> pyvips.Image:
    """``step.apply(image, params, ctx)`` over an animation: whole if the
    :class:`~pixline.engine.steps.Step` ``handles_frames``, else frame by frame. (Typed loosely:
    steps.py imports source.py, which imports this module, so importing steps here is a cycle.)
    The step gets the arguments its ``apply`` declares (engine/contract.py); what it returns must be
    an image, or the step is blamed here rather than the encoder that would trip over it."""
    parts = [image] if step.handles_frames else split(image)
    if len(parts) == 1:
        return _applied(step, image, params, ctx)
    done = [_applied(step, frame, params, ctx) for frame in parts]
    try:
        return join(done)
    except ValueError as exc:  # frames of different sizes cannot be stacked again
        raise RenderError(f"step {step.name!r} cannot work on an animation: {exc}") from None


def _applied(step: Any, image: pyvips.Image, params: Any, ctx: Any) -> pyvips.Image:
    result = contract.call(step, "apply", image=image, params=params, ctx=ctx)
    if not isinstance(result, pyvips.Image):
        raise TypeError(f"apply() returned {type(result).__name__}, not a pyvips.Image")
    return result

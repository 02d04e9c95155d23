"""The reduced copy of a large original: made once at upload, rendered from whenever it is enough.

Every render of a large original decodes all of it: an 18 MP progressive JPEG costs ~0.5 s of CPU
and ~130 MB of memory for a 300 px output, however small the output. So at upload, when the original
is larger than ``size`` on its longest side, pixline keeps a copy scaled to fit ``size``: upright,
8-bit sRGB, a baseline JPEG at quality 90 (what bench/README.md measured: at 3072 px a 300 px render
took ~20 ms of CPU instead of ~490, and its outputs differ from the original's by about 1/255).

Making the copy decodes the whole original, so it is also the upload's check that the file is not
truncated. A render uses the copy when its first step says what size it needs (``shrink_hint``, as
the queue's decode-once does) and that fits within the copy, and the recipe does not keep metadata
(the copy has none); everything else renders from the original. The copy stands in through a
:class:`~pixline.engine.source.Source` that reports the original's size, so every step plans the
same geometry from either.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from .deadline import Deadline
from .recipe import Recipe
from .source import Source

QUALITY = 90
#: The ``meta`` key that says an image has a reduced copy, and its size.
META_KEY = "reduced"


def needs_copy(source: Source, size: int) -> bool:
    """Whether ``source`` gets a reduced copy: larger than ``size`` (0: copies off), a still image,
    without alpha."""
    width, height = source.size
    return bool(size) and max(width, height) > size and source.frames == 1 and not source.has_alpha


def make_copy(source: Source, size: int, deadline: Deadline | None = None
              ) -> tuple[bytes, dict[str, int]] | None:
    """The reduced copy of ``source`` and what meta records of it, or ``None`` when it needs none
    (:func:`needs_copy`).

    Raises :class:`UndecodableImageError` for a file that does not decode to its end, and
    :class:`ImageTooLargeError` when the decode runs past ``deadline`` (libvips is told to stop; a
    JPEG decoded through Pillow is checked once it is decoded, as libjpeg cannot be stopped mid-way).
    """
    if not needs_copy(source, size):
        return None
    deadline = deadline or Deadline()
    with source.checking(deadline):  # the same errors as the upload's check decode
        image = source.thumbnail(size, height=size, size="down")  # normalised: upright 8-bit sRGB
        deadline.check("after decoding")
        data = deadline.watch(image).jpegsave_buffer(Q=QUALITY, subsample_mode="on",
                                                     optimize_coding=True, keep="none")
    return data, {"width": image.width, "height": image.height, "bytes": len(data)}


def fits(recipes: Iterable[Recipe], meta: Mapping[str, Any]) -> bool:
    """Whether every recipe can render from the image's reduced copy (the image must have one)."""
    copy = meta.get(META_KEY)
    if not copy:
        return False
    width, height = int(meta["width"]), int(meta["height"])
    for recipe in recipes:
        if recipe.keep_metadata:
            return False
        first = recipe.steps[0]
        needed = first.step.shrink_hint(first.params, width, height)
        if needed is None or needed[0] > copy["width"] or needed[1] > copy["height"]:
            return False
    return True


def copy_source(data: bytes, meta: Mapping[str, Any], name: str, limits: Any) -> Source:
    """A :class:`Source` over the copy's bytes that plans with the original's displayed size."""
    return Source(data, name=name, limits=limits,
                  display_size=(int(meta["width"]), int(meta["height"])))

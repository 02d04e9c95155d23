"""The reduced copies of an original: made once at upload, rendered from whenever one is enough.

Every render of an original decodes all of it, however small the output: an 18 MP progressive JPEG
costs ~0.5 s of CPU and ~130 MB for a 300 px output, and even a 4 MP photo ~8 ms, most of a small
on-demand render. So at upload pixline keeps up to two copies, each only when the original is longer
than the copy's size: the *large* copy (``--reduced-size``, 3072) and the *small* one
(``--reduced-small-size``, 768), both upright 8-bit sRGB baseline JPEGs at quality 90. bench/README.md
has the measurements: from a 3072 px copy a 300 px render of the 18 MP photo took ~20 ms of CPU
instead of ~490; from a 768 px copy a 300 px render of a 2.5–5 MP photo took ~2.6 ms instead of ~8.
Outputs differ from the original's by about 1/255 on average (tests/engine/test_reduced.py).

Making a JPEG's first copy decodes the whole original, so it is also the upload's check that the file
is not truncated; a second copy is made from the first's pixels. A render uses the smallest copy
that holds what its first step needs (``shrink_hint``, as the queue's decode-once does; for a queue
job, every recipe of it) when the recipe does not keep metadata (the copies have none); everything
else renders from the original. A copy stands in through a :class:`~pixline.engine.source.Source`
that reports the original's size, so every step plans the same geometry from either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pyvips

from .deadline import Deadline
from .recipe import Recipe
from .source import Source
from .storage import REDUCED_LARGE, REDUCED_SMALL

QUALITY = 90


@dataclass(frozen=True)
class Level:
    """One of the reduced copies an image can have."""

    meta_key: str     #: the ``meta`` key that says the image has this copy, and its size
    key_suffix: str   #: its store key's suffix (:meth:`~pixline.engine.storage.Store.reduced_key`)


LARGE = Level("reduced", REDUCED_LARGE)
SMALL = Level("reduced_small", REDUCED_SMALL)
#: Largest first: each copy is made from the one before it.
LEVELS = (LARGE, SMALL)


def needs_copy(source: Source, size: int) -> bool:
    """Whether ``source`` gets a reduced copy: larger than ``size`` (0: copies off), a still image,
    without alpha."""
    width, height = source.size
    return bool(size) and max(width, height) > size and source.frames == 1 and not source.has_alpha


class Copies(dict):
    """Reduced copies (by :class:`Level`, or by store key suffix), and ``pixels``: the smallest
    one's pixels, in memory, which the upload's analysers start from instead of decoding its bytes
    again (a 768 px copy's decode cost ~2.5 ms, half of what the placeholders cost: issue 21)."""

    def __init__(self, *args: Any, pixels: pyvips.Image | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pixels = pixels


def make_copies(source: Source, sizes: Sequence[tuple[Level, int]], deadline: Deadline | None = None
                ) -> Copies:
    """The reduced copies ``source`` gets of ``sizes`` (largest first; size 0: none), each with what
    meta records of it: the bytes and ``{"width", "height", "bytes"}``; and the smallest one's
    pixels (``Copies.pixels``). Empty when it needs none (:func:`needs_copy`).

    The first copy is decoded from the original, each next one from the copy before it. Raises
    :class:`UndecodableImageError` for a file that does not decode to its end, and
    :class:`ImageTooLargeError` when the decode runs past ``deadline`` (libvips is told to stop; a
    JPEG decoded through Pillow is checked once it is decoded, as libjpeg cannot be stopped mid-way).
    """
    wanted = [(level, size) for level, size in sizes if needs_copy(source, size)]
    copies = Copies()
    if not wanted:
        return copies
    deadline = deadline or Deadline()
    image = None
    with source.checking(deadline):  # the same errors as the upload's check decode
        for level, size in wanted:
            if image is None:
                image = source.thumbnail(size, height=size, size="down")  # normalised: upright 8-bit sRGB
            else:
                image = image.thumbnail_image(size, height=size, size="down")
            if len(copies) < len(wanted) - 1:
                image = image.copy_memory()  # the next copy starts from these pixels, not the decode
            else:
                image = copies.pixels = deadline.copy_memory(image)  # the analysers start from these
            deadline.check("after decoding")
            # Standard Huffman tables: optimised ones saved 3% of a copy's bytes for half its encode
            # (1.2 against 2.5 ms for a 768 px copy), and renders from either cost the same.
            data = image.jpegsave_buffer(Q=QUALITY, subsample_mode="on", optimize_coding=False, keep="none")
            copies[level] = data, {"width": image.width, "height": image.height, "bytes": len(data)}
    return copies


def choose(recipes: Iterable[Recipe], meta: Mapping[str, Any]) -> Level | None:
    """The smallest of the image's copies every one of ``recipes`` can render from, or ``None``."""
    recipes = list(recipes)
    for level in reversed(LEVELS):
        if fits(recipes, meta, level):
            return level
    return None


def fits(recipes: Iterable[Recipe], meta: Mapping[str, Any], level: Level = LARGE) -> bool:
    """Whether every recipe can render from the image's ``level`` copy (the image must have one)."""
    copy = meta.get(level.meta_key)
    if not copy:
        return False
    width, height = int(meta["width"]), int(meta["height"])
    for recipe in recipes:
        if recipe.keep_metadata:
            return False
        needed = recipe.shrink_hint(width, height)
        if needed is None or needed[0] > copy["width"] or needed[1] > copy["height"]:
            return False
    return True


def copy_source(data: bytes, meta: Mapping[str, Any], name: str, limits: Any) -> Source:
    """A :class:`Source` over the copy's bytes that plans with the original's displayed size."""
    return Source(data, name=name, limits=limits,
                  display_size=(int(meta["width"]), int(meta["height"])))

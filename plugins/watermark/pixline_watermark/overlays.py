"""What a watermark lays over an image: set text and decoded logos, made within bounds and cached.

Both are computed when the step runs (libvips sets text eagerly), so what they may cost is bounded
before they are made: text is set no larger than the box it is fitted into (a 14-line text at half
the image's width was once set at 505 MP only to be shrunk again), and the cache they share holds at
most :data:`CACHE_BYTES` of pixels, however many entries that is.
"""
from __future__ import annotations

import functools
import html
import math
import os
import threading
from typing import Callable, Hashable

import cachetools
import pyvips

from pixline.engine import (AssetError, Context, Deadline, InputError, Limits, NotFoundError,
                            ParameterError, Source, quote)
from pixline.engine.colour import rgba

#: Pixels the overlay cache may hold per process (text and logos together); an overlay larger than
#: this is made for its render and not kept.
CACHE_BYTES = 64 * 1024 * 1024
#: Watermarks are logos: a huge file is a mistake, not something to decode on every worker.
ASSET_LIMITS = Limits(max_bytes=10 * 1024 * 1024, max_pixels=16_000_000)
MIN_FONT_PX = 6
#: Text is first set at this size to learn its shape, which then says how large it can usefully be.
MEASURE_PX = 32
BYTES_PER_SAMPLE = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4,
                    "double": 8, "complex": 8, "dpcomplex": 16}


def image_bytes(image: pyvips.Image) -> int:
    """The memory a decoded image takes."""
    return image.width * image.height * image.bands * BYTES_PER_SAMPLE.get(image.format, 8)


_cache: cachetools.LRUCache = cachetools.LRUCache(maxsize=CACHE_BYTES, getsizeof=image_bytes)
_lock = threading.Lock()


def cached(key: Hashable, make: Callable[[], pyvips.Image]) -> pyvips.Image:
    """The cached image under ``key``, or ``make()``'s, kept while the cache has room for it."""
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return found
    image = make()  # outside the lock: renders of other overlays go on meanwhile
    with _lock:
        try:
            _cache[key] = image
        except ValueError:  # larger than the whole cache: used by this render only
            pass
    return image


def cache_bytes() -> int:
    """The bytes the cache holds now."""
    with _lock:
        return int(_cache.currsize)


def clear_cache() -> None:
    with _lock:
        _cache.clear()


# -- text ----------------------------------------------------------------------------------------

def _set(text: str, font: str, px: int) -> pyvips.Image:
    # dpi 72 makes a point a pixel; the text is escaped because libvips reads it as Pango markup.
    return pyvips.Image.text(html.escape(text), font=f"{font} {px}", dpi=72)


@functools.lru_cache(maxsize=256)
def text_shape(text: str, font: str) -> tuple[int, int]:
    """(width, height) of ``text`` set at :data:`MEASURE_PX` (two numbers: cheap to keep)."""
    mask = _set(text, font, MEASURE_PX)
    return max(1, mask.width), max(1, mask.height)


def fitted_px(text: str, font: str, px: int, box_w: int, box_h: int) -> int:
    """``px``, or the smaller size at which ``text`` just fills a ``box_w``×``box_h`` box.

    The overlay is fitted into that box anyway: setting it larger only to shrink it again costs
    memory and time in proportion to the area (14 lines of W at 1800 px: 3 GB). Text scales with its
    size, so one small setting says how large it can be.
    """
    width, height = text_shape(text, font)
    fit = MEASURE_PX * min(box_w / width, box_h / height)
    return max(MIN_FONT_PX, min(px, math.ceil(fit)))


def text_overlay(text: str, font: str, px: int, colour: str,
                 deadline: Deadline | None = None) -> pyvips.Image:
    """``text`` set in ``font`` at ``px`` pixels, in ``colour``, as sRGB with alpha (cached)."""
    def make() -> pyvips.Image:
        mask = _set(text, font, px)
        rgb = mask.new_from_image(list(rgba(colour)[:3]))
        return (deadline or Deadline()).copy_memory(rgb.bandjoin(mask).copy(interpretation="srgb"))

    return cached(("text", text, font, px, colour), make)


# -- images --------------------------------------------------------------------------------------

def load_watermark(ref: str, ctx: Context) -> pyvips.Image:
    """Watermark image ``ref`` as 8-bit sRGB with alpha, decoded once per ref.

    With an asset loader (``ctx.load_asset``, set by the server and the command line) every ref goes
    through it; without one, ``ref`` must be an absolute file path. A ref that cannot be used is an
    :class:`~pixline.engine.AssetError` naming it.
    """
    if ctx.load_asset is not None:
        loader = ctx.load_asset
        # Keyed by ref: an asset is immutable under its name (recipe digests only see the name).
        return cached(("asset", loader, ref), lambda: _decode(_asset_bytes(loader, ref), ref, ctx.deadline))
    if not os.path.isabs(ref):
        raise AssetError(f"watermark image {quote(ref)}: no asset loader is configured, so the image "
                         "must be an absolute file path")
    try:
        stat = os.stat(ref)
    except (OSError, ValueError) as exc:
        raise AssetError(f"watermark image {quote(ref)}: {getattr(exc, 'strerror', None) or exc}") from None
    # mtime and size are part of the key, so an edited file is read again.
    return cached(("file", ref, stat.st_mtime_ns, stat.st_size),
                  lambda: _decode(_file_bytes(ref), ref, ctx.deadline))


def _asset_bytes(loader: Callable[[str], bytes], ref: str) -> bytes:
    try:
        return loader(ref)
    except (NotFoundError, ParameterError) as exc:  # missing or refused: a set-up or URL error
        raise AssetError(str(exc)) from None  # it names the asset


def _file_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise AssetError(f"watermark image {quote(path)}: {exc.strerror}") from None


def _decode(data: bytes, ref: str, deadline: Deadline) -> pyvips.Image:
    try:
        # Source.load normalises: 8-bit sRGB, 3 bands plus alpha, whatever the logo file was.
        image = Source(data, name=f"watermark image {quote(ref)}", limits=ASSET_LIMITS).load()
    except InputError as exc:
        raise AssetError(str(exc)) from None
    if not image.hasalpha():
        image = image.bandjoin(255)
    try:
        return deadline.copy_memory(image)
    except pyvips.Error as err:
        if deadline.killed:
            raise  # the render's deadline stopped it: the pipeline reports a timeout
        detail = (err.detail or str(err)).strip().splitlines()
        raise AssetError(f"watermark image {quote(ref)}: cannot decode image: {detail[-1] if detail else err}") from None

"""Watermarks for pixline: a text or an image laid over the picture, at a compass point or tiled.

Recipe: ``- watermark: {text: "© {owner}", position: south-east, opacity: 0.4}``. Sizes are relative
to the image's width, so one recipe looks the same at every output size.
"""
from __future__ import annotations

import functools
import html
import logging
import os
import re
from typing import Any, Callable, Mapping

import pydantic
import pyvips

from pixline.engine import (Context, Gravity, InputError, Limits, NotFoundError, RenderError, Source,
                            Step, StepParams, hookimpl, param_error)
from pixline.engine.colour import Colour, rgba

log = logging.getLogger(__name__)

#: ``{field}`` or ``{field|fallback}``; ``{{`` and ``}}`` are literal braces.
PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\|([^{}]*))?\}")
FONT_RE = re.compile(r"[A-Za-z][A-Za-z0-9 ,._-]*(?<![0-9 ])")  # family and style, no size
MAX_TEXT = 300  # characters once filled: upload fields come from clients and must not make a banner
MIN_FONT_PX = 6
#: Watermarks are logos: a huge file is a mistake, not something to decode on every worker.
ASSET_LIMITS = Limits(max_bytes=10 * 1024 * 1024, max_pixels=16_000_000)
TEXT_ONLY = ("font", "size", "colour")
IMAGE_ONLY = ("scale",)


def fill_template(template: str, fields: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by ``fields[name]``.

    A missing or empty field becomes its fallback (``{owner|anonymous}``) or empty text. Values are
    printable text only, and the result is cut at :data:`MAX_TEXT` characters.
    """
    def one(match: re.Match[str]) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        value = fields.get(match.group(1))
        if value is None or str(value).strip() == "":
            return match.group(2) or ""
        return "".join(ch if ch.isprintable() else " " for ch in str(value))

    return PLACEHOLDER_RE.sub(one, template)[:MAX_TEXT]


class Watermark(Step):
    """Overlay a text or an image.  Recipe: ``- watermark: {image: "store:logo.png", scale: 0.2}``"""

    name = "watermark"
    version = "1"

    class Params(StepParams):
        text: str | None = pydantic.Field(None, min_length=1, max_length=200)
        image: str | None = pydantic.Field(None, min_length=1, max_length=500)
        font: str = pydantic.Field("sans", max_length=100)
        size: float = pydantic.Field(0.04, gt=0, le=0.5)        # font size ÷ image width
        colour: Colour = pydantic.Field("#ffffff", validation_alias=pydantic.AliasChoices("colour", "color"))
        scale: float = pydantic.Field(0.2, gt=0, le=1)          # watermark width ÷ image width
        opacity: float = pydantic.Field(0.5, ge=0, le=1)
        position: Gravity = Gravity.SOUTH_EAST
        margin: int = pydantic.Field(10, ge=0, le=2000)         # px from the edges; gap between tiles
        tile: bool = False

        @pydantic.field_validator("text")
        @classmethod
        def _check_template(cls, value: str | None) -> str | None:
            if value is not None and re.search(r"[{}]", PLACEHOLDER_RE.sub("", value)):
                raise param_error("placeholders are written {name} or {name|fallback} (letters, digits, "
                                  "_); write {{ or }} for a literal brace")
            return value

        @pydantic.field_validator("font")
        @classmethod
        def _check_font(cls, value: str) -> str:
            if not FONT_RE.fullmatch(value):
                raise param_error("a font family and style such as 'sans bold', without a size (the size "
                                  "comes from 'size')")
            return value

        @pydantic.field_validator("position")
        @classmethod
        def _check_position(cls, value: Gravity) -> Gravity:
            if value.is_smart:
                raise param_error(f"use a compass point or centre; '{value.value}' only applies to crops")
            return value

        @pydantic.model_validator(mode="after")
        def _check_kind(self) -> "Watermark.Params":
            given = self.model_fields_set
            if self.text is not None and self.image is not None:
                raise param_error("give 'text' or 'image', not both", param="image")
            if self.text is None and self.image is None:
                raise param_error("a watermark needs 'text' (a text) or 'image' (an image reference)",
                                  param="text")
            for name in TEXT_ONLY if self.image is not None else IMAGE_ONLY:
                if name in given:
                    raise param_error(f"only applies to {'text' if self.image else 'image'} watermarks",
                                      param=name)
            if self.tile and "position" in given:
                raise param_error("a tiled watermark covers the whole image; remove one of them",
                                  param="position")
            return self

    def apply(self, image: pyvips.Image, params: Any, ctx: Context) -> pyvips.Image:
        # ``image`` is normal (8-bit sRGB, alpha as a 4th band, no ICC profile), like the overlays.
        if params.opacity == 0:
            return image
        if params.text is not None:
            text = fill_template(params.text, ctx.fields).strip()
            if not text:  # every field was missing: nothing to draw
                log.debug("watermark text %r is empty for this image; skipped", params.text)
                return image
        # Setting the text and decoding the logo happen now, not at encode time, and their results
        # are cached across renders (so they are checked against the deadline, never watched).
        ctx.deadline.check("before drawing the watermark")
        if params.text is not None:
            px = max(MIN_FONT_PX, round(params.size * image.width))
            overlay = text_overlay(text, params.font, px, params.colour)
        else:
            logo = load_watermark(params.image, ctx)
            overlay = _scale(logo, params.scale * image.width / logo.width)
        margin = params.margin if min(image.width, image.height) > 2 * params.margin else 0
        box_w, box_h = image.width - 2 * margin, image.height - 2 * margin
        overlay = _scale(overlay, min(1.0, box_w / overlay.width, box_h / overlay.height))  # fit inside
        if params.opacity < 1:
            overlay = overlay[:3].bandjoin((overlay[3] * params.opacity).cast("uchar"))
        if params.tile:
            overlay, x, y = _tile(overlay, image.width, image.height, params.margin), 0, 0
        else:
            x, y = params.position.offset(box_w, box_h, overlay.width, overlay.height)
            x, y = x + margin, y + margin
        out = image.composite2(overlay, "over", x=x, y=y)
        return out if image.hasalpha() else out[:3]  # an opaque image stays opaque: drop the alpha

    def output_size(self, params: Any, width: int, height: int) -> tuple[int, int]:
        return width, height  # drawn inside the image, tiles included


@functools.lru_cache(maxsize=64)
def text_overlay(text: str, font: str, px: int, colour: str) -> pyvips.Image:
    """``text`` set in ``font`` at ``px`` pixels, in ``colour``, as sRGB with alpha (cached)."""
    # dpi 72 makes a point a pixel; the text is escaped because libvips reads it as Pango markup.
    mask = pyvips.Image.text(html.escape(text), font=f"{font} {px}", dpi=72)
    rgb = mask.new_from_image(list(rgba(colour)[:3]))
    return rgb.bandjoin(mask).copy(interpretation="srgb").copy_memory()


def load_watermark(ref: str, ctx: Context) -> pyvips.Image:
    """Watermark image ``ref`` as 8-bit sRGB with alpha, decoded once per ref.

    With an asset loader (``ctx.load_asset``, set by the server and the command line) every ref goes
    through it; without one, ``ref`` must be an absolute file path.
    """
    if ctx.load_asset is not None:
        return _asset_watermark(ctx.load_asset, ref)
    if not os.path.isabs(ref):
        raise RenderError(f"watermark image {ref!r}: no asset loader is configured, so the image "
                          "must be an absolute file path")
    try:
        stat = os.stat(ref)
    except OSError as exc:
        raise RenderError(f"watermark image {ref!r}: {exc.strerror}") from None
    return _file_watermark(ref, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _asset_watermark(loader: Callable[[str], bytes], ref: str) -> pyvips.Image:
    # Keyed by ref: an asset is immutable under its name (recipe digests only see the name).
    try:
        return _decode(loader(ref), ref)
    except NotFoundError as exc:  # the recipe's asset is missing: a set-up error, not a missing image
        raise RenderError(f"watermark image {ref!r}: {exc}") from None


@functools.lru_cache(maxsize=16)
def _file_watermark(path: str, mtime_ns: int, size: int) -> pyvips.Image:
    # mtime and size are part of the key, so an edited file is read again.
    try:
        with open(path, "rb") as fh:
            return _decode(fh.read(), path)
    except OSError as exc:
        raise RenderError(f"watermark image {path!r}: {exc.strerror}") from None


def _decode(data: bytes, ref: str) -> pyvips.Image:
    try:
        # Source.load normalises: 8-bit sRGB, 3 bands plus alpha, whatever the logo file was.
        image = Source(data, name=f"watermark image {ref!r}", limits=ASSET_LIMITS).load()
    except InputError as exc:
        raise RenderError(str(exc)) from None
    if not image.hasalpha():
        image = image.bandjoin(255)
    return image.copy_memory()


def _scale(image: pyvips.Image, factor: float) -> pyvips.Image:
    factor = max(factor, 1 / image.width, 1 / image.height)  # never below one pixel
    if abs(factor - 1) < 1e-9:
        return image
    # Premultiplied, so transparent pixels do not bleed a dark fringe into the edges.
    scaled = image.premultiply().resize(factor).unpremultiply()
    return scaled.cast("uchar").copy(interpretation="srgb")


def _tile(overlay: pyvips.Image, width: int, height: int, gap: int) -> pyvips.Image:
    cell = overlay.embed(0, 0, overlay.width + gap, overlay.height + gap)  # the gap is transparent
    across, down = -(-width // cell.width), -(-height // cell.height)
    return cell.replicate(across, down).crop(0, 0, width, height)


@hookimpl
def pixline_register_steps(register: Any) -> None:
    register(Watermark)

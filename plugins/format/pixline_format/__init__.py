"""Output formats for pixline: JPEG, PNG, WebP, AVIF and GIF encoders, and the ``format`` step.

Recipe: ``- format: {type: auto, candidates: [avif, webp]}``. The step leaves pixels alone; it
decides the :class:`~pixline.engine.OutputSpec` that the pipeline encodes with. Every parameter is
checked when the recipe loads, including combinations a format cannot honour (``lossless`` JPEG).
``type`` and ``candidates`` may name any installed encoder, a third-party plugin's too: the recipe
loader checks them against the registry; of the options, such formats take ``quality``.
"""
from __future__ import annotations

import logging
from typing import Annotated, Any

import pydantic
import pyvips

from pixline.engine import Context, Encoder, OutputSpec, Step, StepParams, autoquality, hookimpl, param_error, quote
from pixline.engine.colour import Colour, rgba
from pixline.engine.negotiate import FALLBACKS
from pixline.engine.metric import TARGET_METRIC
from pixline.engine.steps import NAME_RE

log = logging.getLogger(__name__)


#: The formats this plugin encodes.
FIRST_PARTY = ("jpeg", "png", "webp", "avif", "gif")
#: An encoder name (any plugin's; the recipe loader checks it is installed), ``auto`` or ``source``.
# pydantic matches a pattern anywhere in the text (and its Rust engine's `$` is the very end): anchor it.
FormatName = Annotated[str, pydantic.StringConstraints(pattern=rf"^(?:{NAME_RE.pattern})$")]


def _quality_value(value: object) -> int | str | None:
    """A quality 1-100, or a ``quality: auto`` target (checked: engine/autoquality.py)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise param_error(f"{quote(value)} is not a quality")
    if isinstance(value, str) and not value.strip().isdigit():
        if value.startswith("auto-"):  # a URL's plain values have no ':' (q=auto-high): one spelling kept
            value = "auto:" + value[5:]
        try:
            autoquality.parse_target(value)
        except ValueError as exc:
            raise param_error(str(exc)) from None
        return value
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None or not 1 <= number <= 100:
        raise param_error(f"{quote(value)} is not a quality: give a whole number 1-100, or auto")
    return number


Quality = Annotated[int | str | None, pydantic.PlainValidator(_quality_value),
                    pydantic.WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 100},
                                                       {"type": "string", "pattern": "^auto([:-].+)?$"}],
                                             "description": "1-100, or auto (the lowest quality whose SSIMULACRA 2 "
                                                            "score is at least 80), auto:high (85), auto:eco (70), "
                                                            "auto:N (a target N from 30 to 99); in a URL "
                                                            "q=auto, q=auto-high, q=auto-75"})]

#: Quality when a recipe gives none (the README says why these numbers).
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 55}
#: effort per format: (lowest, highest, default). JPEG has no effort knob. AVIF 3, not sharp's 4:
#: on a 600 px photo effort 4 took 5-8× as long (~0.5-0.8 s) for files only 5-9% smaller.
EFFORT = {"png": (0, 9, 6), "webp": (0, 6, 4), "avif": (0, 9, 3), "gif": (1, 10, 7)}
LOSSLESS = ("png", "webp", "avif")
PROGRESSIVE = ("jpeg", "png", "gif")
#: Trellis quantisation runs after the last row is written, where a render's time limit cannot stop
#: it: 0.05 s per megapixel of a photo, 0.3 s of noise. Up to the large recipe's 2048×2048 it stays
#: under ~1.3 s; larger JPEGs (ad-hoc URLs) keep the other optimisations.
TRELLIS_MAX_PIXELS = 2048 * 2048


def hex_to_rgb(colour: str) -> tuple[float, float, float]:
    """A colour as three 0-255 floats (its alpha does not matter when flattening)."""
    return tuple(float(c) for c in rgba(colour)[:3])  # type: ignore[return-value]


class Format(Step):
    """Choose the output encoding.  Recipe: ``- format: {type: webp, quality: 80}``"""

    name = "format"
    version = "1"
    handles_frames = True  # pixels untouched: no need to split an animation into frames

    class Params(StepParams):
        url_keys = {"t": "type", "q": "quality"}

        type: FormatName = "auto"
        # None: per-format default; "auto", "auto:high", "auto:eco", "auto:N": a perceptual target.
        quality: Quality = None
        # Per format, for auto/source (imgproxy's format_quality): AVIF needs a lower number than JPEG.
        qualities: dict[FormatName, pydantic.conint(ge=1, le=100)] = {}
        lossless: bool = False
        progressive: bool = False          # progressive JPEG, interlaced PNG/GIF
        effort: int | None = pydantic.Field(None, ge=0, le=10)  # range per format: EFFORT
        palette: bool = False              # PNG: quantise to 256 colours (lossy, small)
        background: Colour = "#ffffff"         # flattening colour when the format has no alpha
        candidates: tuple[FormatName, ...] = ("avif", "webp")

        @pydantic.model_validator(mode="after")
        def _check_auto_quality(self) -> "Format.Params":
            if isinstance(self.quality, str) and self.qualities:
                raise param_error("a per-format quality and quality: auto cannot be combined; keep one",
                                  param="qualities")
            kind = self.type
            if isinstance(self.quality, str) and kind in FIRST_PARTY and kind not in DEFAULT_QUALITY:
                raise param_error(f"{kind} has no quality to search: quality: auto applies to jpeg, webp and avif",
                                  param="quality")
            return self

        @pydantic.model_validator(mode="after")
        def _check_combinations(self) -> "Format.Params":
            kind = self.type
            explicit = kind not in ("auto", "source")
            if not self.candidates:
                raise param_error("list at least one format", param="candidates")
            if "candidates" in self.model_fields_set and kind != "auto":
                raise param_error(f"only applies to type 'auto', not {quote(kind)}", param="candidates")
            if explicit:
                if self.lossless and kind not in LOSSLESS:
                    raise param_error(f"{kind} has no lossless mode (png, webp and avif have)",
                                      param="lossless")
                if self.progressive and kind not in PROGRESSIVE:
                    raise param_error(f"{kind} has no progressive mode (jpeg, png and gif have)",
                                      param="progressive")
                if self.palette and kind != "png":
                    raise param_error(f"only applies to png, not {kind}", param="palette")
                if self.quality is not None and kind == "png" and not self.palette:
                    raise param_error("png is lossless; quality only applies with 'palette: true'",
                                      param="quality")
                if self.quality is not None and kind == "gif":
                    raise param_error("gif has no quality setting", param="quality")
                if self.effort is not None and kind not in EFFORT:
                    raise param_error(f"{kind} has no effort setting (png, webp, avif and gif have)",
                                      param="effort")
            if self.qualities and explicit:
                raise param_error(f"only applies to type 'auto' or 'source'; use 'quality' for {kind}",
                                  param="qualities")
            for fmt in self.qualities:
                possible = (*self.candidates, *FALLBACKS) if kind == "auto" else FIRST_PARTY
                if fmt not in possible:
                    raise param_error(f"{fmt} is not a format this step can produce "
                                      f"({', '.join(dict.fromkeys(possible))})", param="qualities")
                if fmt in FIRST_PARTY and fmt not in DEFAULT_QUALITY:
                    raise param_error(f"{fmt} has no quality setting "
                                      f"({', '.join(DEFAULT_QUALITY)} have)", param="qualities")
            if self.lossless and (self.quality is not None or self.qualities):
                raise param_error("has no effect with 'lossless: true'; remove one of them",
                                  param="quality" if self.quality is not None else "qualities")
            if self.lossless and self.palette:
                raise param_error("palette quantisation is lossy; it cannot be combined with lossless",
                                  param="palette")
            if self.effort is not None:
                # auto and source may end up as any of several formats: the value must suit each one.
                if explicit:
                    targets = [kind]
                elif kind == "auto":
                    targets = [*self.candidates, *FALLBACKS]
                else:
                    targets = list(FIRST_PARTY)
                for fmt in (t for t in targets if t in EFFORT):
                    low, high, _ = EFFORT[fmt]
                    if not low <= self.effort <= high:
                        raise param_error(f"{self.effort} is out of range for {fmt} ({low}..{high})",
                                          param="effort")
            return self

    def apply(self, image: pyvips.Image, params: Any, ctx: Context) -> pyvips.Image:
        return image  # the encoding is decided by output(); pixels are untouched

    def output_size(self, params: Any, width: int, height: int) -> tuple[int, int]:
        return width, height

    def output(self, params: Any) -> OutputSpec:
        auto = params.type == "auto"
        searched = isinstance(params.quality, str)
        return OutputSpec(
            format=params.type,
            candidates=tuple(params.candidates) if auto else (),
            quality=None if searched else params.quality,
            target=autoquality.parse_target(params.quality) if searched else None,
            metric=TARGET_METRIC if searched else None,
            options={"lossless": params.lossless, "progressive": params.progressive,
                     "palette": params.palette, "effort": params.effort,
                     "qualities": dict(params.qualities)},
            background=hex_to_rgb(params.background),
        )


def _quality(spec: OutputSpec, fmt: str) -> int:
    """The recipe's quality for ``fmt``: its per-format value, its single value, or our default."""
    per_format = spec.options.get("qualities") or {}
    if fmt in per_format:
        return per_format[fmt]
    return spec.quality if spec.quality is not None else DEFAULT_QUALITY[fmt]


def _effort(spec: OutputSpec, fmt: str) -> int:
    low, high, default = EFFORT[fmt]
    effort = spec.options.get("effort")
    # Clamped, not trusted: a spec may come from somewhere other than a validated format step.
    return default if effort is None else min(max(int(effort), low), high)


def _keep(keep_metadata: bool) -> str:
    # The pipeline has already converted to sRGB, so dropping the ICC profile changes nothing visible.
    return "all" if keep_metadata else "none"


class JpegEncoder(Encoder):
    # 2: no trellis quantisation above TRELLIS_MAX_PIXELS, nor for outputs rendered on demand
    name, media_type, extension, supports_alpha, version = "jpeg", "image/jpeg", "jpg", False, "2"
    max_side = 65500  # libjpeg's JPEG_MAX_DIMENSION
    qualities = (30, 95)  # quality: auto searches these (below 30 blocks show; above 95 bytes balloon)

    def encode(self, image: pyvips.Image, spec: OutputSpec, keep_metadata: bool, ctx: Context) -> bytes:
        progressive = bool(spec.options.get("progressive"))
        # mozjpeg's trellis quantisation saves ~8% of the bytes and costs ~3 ms on a 320 px output (a
        # fifth of an on-demand render), and its overshoot deringing a quarter of a plain encode for
        # the same bytes on photos (it helps black-on-white edges): only for outputs made ahead of
        # time (eager recipes). Trellis runs after the last row, where no deadline can stop it: only
        # up to TRELLIS_MAX_PIXELS. Optimised Huffman tables are nearly free.
        # quality: auto (spec.target) is worth the same care: the search picks the quality for these
        # settings, with quant table 3 (ImageMagick's, tuned on perceptual metrics): issue 21 measured
        # 0.80× the bytes of one fixed quality with these, 0.88× with the search alone.
        careful = spec.ahead_of_time or spec.target is not None
        trellis = careful and image.width * image.height <= TRELLIS_MAX_PIXELS
        return image.jpegsave_buffer(Q=_quality(spec, "jpeg"), optimize_coding=True,
                                     trellis_quant=trellis, overshoot_deringing=careful,
                                     quant_table=3 if spec.target is not None else 0,
                                     interlace=progressive,
                                     optimize_scans=progressive, keep=_keep(keep_metadata))


class PngEncoder(Encoder):
    name, media_type, extension, supports_alpha, version = "png", "image/png", "png", True, "1"
    max_side = 2**31 - 1  # the format's own bound; the output pixel limit comes long before

    def encode(self, image: pyvips.Image, spec: OutputSpec, keep_metadata: bool, ctx: Context) -> bytes:
        options: dict[str, Any] = {}
        if spec.options.get("palette"):
            options = {"palette": True, **({"Q": spec.quality} if spec.quality is not None else {})}
        return image.pngsave_buffer(compression=_effort(spec, "png"),
                                    interlace=bool(spec.options.get("progressive")),
                                    keep=_keep(keep_metadata), **options)


class WebpEncoder(Encoder):
    # Version 2: an animated source keeps its frames (version 1 wrote the first frame).
    name, media_type, extension, supports_alpha, version = "webp", "image/webp", "webp", True, "2"
    animated = True  # a strip of frames (page-height) is written as an animation, delays and loop kept
    max_side = 16383  # libwebp: 14 bits per side
    qualities = (30, 95)

    def encode(self, image: pyvips.Image, spec: OutputSpec, keep_metadata: bool, ctx: Context) -> bytes:
        # quality: auto: effort 6 gave the same SSIMULACRA 2 scores in ~3% fewer bytes than 4 on the
        # shared photos at 600 px, for about the same time per search (encodes are its small part).
        effort = EFFORT["webp"][1] if spec.target is not None and spec.options.get("effort") is None \
            else _effort(spec, "webp")
        return image.webpsave_buffer(Q=_quality(spec, "webp"), lossless=bool(spec.options.get("lossless")),
                                     effort=effort, keep=_keep(keep_metadata))


class AvifEncoder(Encoder):
    name, media_type, extension, supports_alpha, version = "avif", "image/avif", "avif", True, "1"
    max_side = 16384  # libvips' heifsave refuses larger ("image too large")
    qualities = (20, 85)  # AV1's scale is lower: q55 is about JPEG's q80 on photos

    def encode(self, image: pyvips.Image, spec: OutputSpec, keep_metadata: bool, ctx: Context) -> bytes:
        return image.heifsave_buffer(compression="av1", Q=_quality(spec, "avif"),
                                     lossless=bool(spec.options.get("lossless")),
                                     effort=_effort(spec, "avif"), keep=_keep(keep_metadata))

    def unavailable(self) -> str | None:
        # Only AVIF depends on an optional codec (libheif with AV1); probing the rest would only
        # slow start-up.
        return cannot_encode(self)


class GifEncoder(Encoder):
    name, media_type, extension, supports_alpha, version = "gif", "image/gif", "gif", True, "2"
    animated = True
    max_side = 65535  # 16-bit sides

    def encode(self, image: pyvips.Image, spec: OutputSpec, keep_metadata: bool, ctx: Context) -> bytes:
        return image.gifsave_buffer(effort=_effort(spec, "gif"),
                                    interlace=bool(spec.options.get("progressive")),
                                    keep=_keep(keep_metadata))


def cannot_encode(encoder: Encoder) -> str | None:
    """Why this libvips build cannot write ``encoder``'s format, or ``None`` when it can."""
    try:
        encoder.encode(pyvips.Image.black(8, 8, bands=3).copy(interpretation="srgb"),
                       OutputSpec(options={"effort": 0}), False, Context())
        return None
    except pyvips.Error as err:
        lines = (err.detail or str(err)).strip().splitlines()
        return f"libvips cannot write it: {lines[-1] if lines else err}"


@hookimpl
def pixline_register_steps(register: Any) -> None:
    register(Format)


@hookimpl
def pixline_register_encoders(register: Any) -> None:
    for encoder in (JpegEncoder, PngEncoder, WebpEncoder, AvifEncoder, GifEncoder):
        register(encoder)

"""The test kit of pixline and its plugins: synthetic inputs, renders, decoding, image comparison.

Public API for plugin authors (docs/plugins.md, "Testing"): ``from pixline import testing`` (the
stable name, :mod:`pixline.testing`; ``pixline.engine.testing`` stays importable). ``__all__`` is
what is promised. pixline's pytest plugin (:mod:`pixline.pytest_plugin`) gives the same as
fixtures.
"""
from __future__ import annotations

import importlib.metadata
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

import pyvips

from . import api
from .errors import PluginError
from .frames import frame_count, page_height
from .normalise import normalise
from .pipeline import run_steps
from .recipe import Recipe, build_recipe
from .registry import ENTRY_POINT_GROUP, Registry
from .source import Source
from .steps import Context

__all__ = [
    "COLOUR_SHAPES", "FRAME_COLOURS", "FakeClock", "animation", "animation_bytes", "animation_strip",
    "assert_decodes", "busy_right_half", "cmyk_jpeg_bytes", "colour_shapes", "decode", "gradient",
    "jpeg_bytes", "mean_abs_diff", "normal_input", "photo", "pixel_flood_png", "plugin_registry", "png_bytes",
    "recipe", "render_recipe", "rendered_image", "rgb16_png_bytes", "sample_inputs", "unreadable",
    "upload_bytes",
]


def gradient(width: int = 640, height: int = 480, bands: int = 3) -> pyvips.Image:
    """An 8-bit sRGB test card: horizontal and vertical ramps, so crops and flips are visible."""
    x = pyvips.Image.xyz(width, height)
    red = x[0] * (255.0 / max(width - 1, 1))
    green = x[1] * (255.0 / max(height - 1, 1))
    blue = (red + green) / 2
    image = red.bandjoin([green, blue])
    if bands == 4:
        image = image.bandjoin(255)
    return image.cast("uchar").copy(interpretation="srgb")


def busy_right_half(size: int = 200) -> pyvips.Image:
    """Flat grey on the left, saturated noise on the right: smart crops (attention, entropy) go right.

    The noise is seeded: unseeded, about one image in forty put libvips' attention crop half on
    the flat side (a flaky test).
    """
    flat = (pyvips.Image.black(size, size, bands=3) + 128).cast("uchar")
    noise = pyvips.Image.gaussnoise(size, size, sigma=80, mean=128, seed=1)
    busy = noise.bandjoin([255 - noise, noise * 0 + 40]).cast("uchar")
    return flat.join(busy, "horizontal").copy(interpretation="srgb")


def jpeg_bytes(image: pyvips.Image | None = None, orientation: int | None = None, **save: object) -> bytes:
    """``image`` (default: a gradient) as JPEG, optionally tagged with an EXIF orientation."""
    image = (image if image is not None else gradient()).copy()
    if orientation is not None:
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return image.jpegsave_buffer(**save)


def png_bytes(image: pyvips.Image | None = None, **save: object) -> bytes:
    return (image if image is not None else gradient(bands=4)).pngsave_buffer(**save)


def cmyk_jpeg_bytes(width: int = 320, height: int = 240, profile: bool = False) -> bytes:
    """A CMYK JPEG of the gradient, with no embedded profile (as many print workflows produce) or,
    with ``profile``, with the CMYK profile it was made with."""
    cmyk = gradient(width, height).icc_export(output_profile="cmyk")
    return cmyk.copy(interpretation="cmyk").jpegsave_buffer(keep="icc" if profile else "none")


def _16_bit(image: pyvips.Image, interpretation: str) -> pyvips.Image:
    """An 8-bit image on the 16-bit scale (0-65535), tagged ``rgb16`` or ``grey16``."""
    return (image.cast("ushort") * 257).cast("ushort").copy(interpretation=interpretation)


def _half_alpha(width: int, height: int) -> pyvips.Image:
    """Opaque on the left half, half transparent on the right."""
    return (pyvips.Image.xyz(width, height)[0] < width // 2).ifthenelse(255, 128).cast("uchar")


def rgb16_png_bytes(width: int = 320, height: int = 240) -> bytes:
    """A 16-bit RGB PNG of the gradient."""
    return _16_bit(gradient(width, height), "rgb16").pngsave_buffer()


#: The names of :func:`colour_shapes`, in order (the ``colour_shape`` fixture runs a test per name).
COLOUR_SHAPES = ("grey", "grey-alpha", "rgb", "rgba", "grey16", "rgb16", "rgba16", "cmyk", "animated",
                 "animated-alpha")


def colour_shapes(width: int = 64, height: int = 48) -> dict[str, pyvips.Image]:
    """An image of every colour shape an upload can decode to, by name (:data:`COLOUR_SHAPES`), in memory.

    ``grey`` (1 band), ``grey-alpha`` (2), ``rgb`` (3), ``rgba`` (4: alpha half transparent on the
    right), ``grey16``, ``rgb16`` and ``rgba16`` (16-bit), ``cmyk`` (no profile), ``animated`` and
    ``animated-alpha`` (three frames of ``height``: :func:`animation_strip`). Floating-point samples
    are not among them: pixline refuses such uploads (``UnsupportedFormatError``). Each is the gradient, so a step's effect can be compared.
    :func:`upload_bytes` encodes one as an upload; :func:`render_recipe` and :func:`rendered_image`
    take them as they are. Steps and encoders get each one normalised (8-bit sRGB, 3 or 4 bands).
    """
    card = gradient(width, height)
    half = _half_alpha(width, height)
    grey = card.colourspace("b-w")
    shapes = {
        "grey": grey,
        "grey-alpha": grey.bandjoin(half).copy(interpretation="b-w"),
        "rgb": card,
        "rgba": card.bandjoin(half),
        "grey16": _16_bit(grey, "grey16"),
        "rgb16": _16_bit(card, "rgb16"),
        "rgba16": _16_bit(card.bandjoin(half), "rgb16"),
        "cmyk": card.icc_export(output_profile="cmyk").copy(interpretation="cmyk"),
        "animated": animation_strip(3, width, height),
        "animated-alpha": animation_strip(3, width, height, alpha=True),
    }
    return {name: shapes[name] for name in COLOUR_SHAPES}


def upload_bytes(image: pyvips.Image) -> bytes:
    """``image`` encoded without loss, as an upload of it could come: an animation (``page-height``
    set) as an animated WebP, anything else as TIFF (any band count, 16-bit samples, CMYK)."""
    if image.get_typeof("page-height") and image.get("page-height") < image.height:
        return image.webpsave_buffer(lossless=True)
    return image.tiffsave_buffer()


def sample_inputs(width: int = 64, height: int = 48) -> dict[str, bytes]:
    """Every kind of input the pipeline normalises, by name: encoded files of the gradient.

    ``rgb``, ``rgba`` (half transparent), ``grey``, ``grey-alpha``, ``grey16``, ``rgb16``, ``cmyk``
    (no profile), ``cmyk-profile``, ``p3-profile`` (wide-gamut RGB with its ICC profile), ``palette``
    and ``palette-alpha`` (8-bit palette PNGs), ``rotated`` (stored sideways, EXIF orientation 6).
    A step's tests can run it over each (``@pytest.mark.parametrize("kind", sample_inputs())``): the
    step receives every one as a normal image (8-bit sRGB, 3 bands plus alpha).
    """
    card = gradient(width, height)
    half = _half_alpha(width, height)
    shapes = colour_shapes(width, height)
    return {
        "rgb": card.pngsave_buffer(),
        "rgba": card.bandjoin(half).pngsave_buffer(),
        "grey": shapes["grey"].pngsave_buffer(),
        "grey-alpha": shapes["grey-alpha"].pngsave_buffer(),
        "grey16": shapes["grey16"].pngsave_buffer(),
        "rgb16": shapes["rgb16"].pngsave_buffer(),
        "cmyk": cmyk_jpeg_bytes(width, height),
        "cmyk-profile": cmyk_jpeg_bytes(width, height, profile=True),
        "p3-profile": card.icc_transform("p3").jpegsave_buffer(keep="icc", Q=95),
        "palette": card.pngsave_buffer(palette=True),
        "palette-alpha": card.bandjoin(half).pngsave_buffer(palette=True),
        "rotated": jpeg_bytes(card.rot270(), orientation=6, Q=95),
    }


def pixel_flood_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``width``×``height`` pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def decode(data: bytes) -> pyvips.Image:
    """Decode output bytes for checking (any loader that pixline allows)."""
    return pyvips.Image.new_from_buffer(data, "")


def mean_abs_diff(a: pyvips.Image, b: pyvips.Image) -> float:
    """Mean absolute difference per pixel and band, on the 0–255 scale of 8-bit images.

    0 is identical; JPEG round trips of photos land around 1–3, a visible change well above 5.
    ``b`` is resized to ``a``'s size if they differ; alpha is ignored when the band counts differ.
    """
    if (a.width, a.height) != (b.width, b.height):
        b = b.resize(a.width / b.width, vscale=a.height / b.height)
    if a.bands != b.bands:
        a, b = a[:3] if a.bands > 3 else a, b[:3] if b.bands > 3 else b
    return float((a.cast("float") - b.cast("float")).abs().avg())


def recipe(registry: Registry, steps: list, name: str = "test", **extra: object) -> Recipe:
    """Build a recipe from a list of steps written as in YAML (``[{"resize": {"width": 10}}]``)."""
    return build_recipe(name, {"steps": steps, **extra}, registry)


def _encoded(image: Any) -> Any:
    """An input as the test kit takes it (bytes, a file path or an image) as pixline takes it."""
    return upload_bytes(image) if isinstance(image, pyvips.Image) else image


def normal_input(data: Any, every_frame: bool = True) -> pyvips.Image:
    """The normal image pixline makes of the input ``data`` (bytes or an image): what a recipe's
    first step is given, to compare a step's result with. An animation as every frame, unless
    ``every_frame`` is false (as :func:`rendered_image`)."""
    source = Source(_encoded(data))
    return (source.with_every_frame() if every_frame else source).load()


def rendered_image(registry: Registry, steps: list, data: Any, ctx: Context | None = None,
                   every_frame: bool = True) -> pyvips.Image:
    """The image ``steps`` make of the input ``data`` (bytes or an image), as the pipeline would hand
    it to an encoder (normalised), computed into memory: no encoder plugin is needed to test a step.

    An animated input comes out as every frame, the strip an animated encoder gets (``page-height``
    set; :mod:`pixline.engine.frames` takes it apart); with ``every_frame=False``, as its first
    frame, as for a still output format.
    """
    source = Source(_encoded(data))
    image = run_steps(recipe(registry, steps), source.with_every_frame() if every_frame else source,
                      ctx or Context())
    return normalise(image).copy_memory()


def render_recipe(registry: Registry, recipe: Any, image: Any, *, accept: str | None = None,
                  fields: Mapping[str, str] | None = None) -> api.EncodedImage:
    """``image`` rendered through ``recipe``, encoder and all, to the bytes pixline would serve.

    ``recipe`` is a list of steps as in YAML (``[{"sepia": {}}, {"format": {"type": "png"}}]``), a
    dict shaped like a recipe file, a :class:`~pixline.engine.recipe.Recipe`, or a recipe file's
    path; ``image`` encoded bytes, a file path or an image (:func:`upload_bytes`). ``accept`` and
    ``fields`` are the client's ``Accept`` header and the upload's fields. It is
    :func:`pixline.render` with ``registry``: the result says its ``format``, ``width``, ``height``
    and ``frames``; :func:`assert_decodes` checks the bytes are that.
    """
    if isinstance(recipe, list):
        recipe = {"steps": recipe}
    return api.render(recipe, _encoded(image), accept=accept, fields=fields, registry=registry)


#: Encoder name → the libvips loader that reads its files, where the two names differ.
LOADERS = {"jpg": "jpeg", "avif": "heif", "heic": "heif", "tif": "tiff"}


def assert_decodes(data: bytes, format: str | None = None, *, width: int | None = None,
                   height: int | None = None, frames: int | None = None) -> pyvips.Image:
    """Check that ``data`` decodes whole, with libvips, as the image it should be; the decoded image
    (every frame, stacked as libvips holds an animation). Raises ``AssertionError`` saying what differs.

    ``format`` is an encoder name (``jpeg``, ``tiff``…) whose loader must read it; ``width`` and
    ``height`` are those of one frame. For a render's result (:func:`render_recipe`), each defaults
    to what the result says it is, so ``assert_decodes(render_recipe(…))`` checks an encoder's bytes.
    """
    format, width, height, frames = (given if given is not None else getattr(data, attribute, None)
                                     for given, attribute in ((format, "format"), (width, "width"),
                                                              (height, "height"), (frames, "frames")))
    try:
        header = pyvips.Image.new_from_buffer(bytes(data), "")
        pages = header.get("n-pages") if header.get_typeof("n-pages") else 1
        image = pyvips.Image.new_from_buffer(bytes(data), "", fail_on="truncated",
                                             **({"n": -1} if pages > 1 else {}))
        image = image.copy_memory()  # every pixel: a truncated or corrupt file fails here
    except pyvips.Error as exc:
        raise AssertionError(f"{len(data)} bytes do not decode: {exc}") from None
    loader = image.get("vips-loader")
    if format is not None and not loader.startswith(LOADERS.get(format, format) + "load"):
        raise AssertionError(f"{format!r} bytes are read by libvips' {loader}")
    got = {"width": image.width, "height": page_height(image), "frames": frame_count(image)}
    wanted = {"width": width, "height": height, "frames": frames}
    wrong = [f"{key} {got[key]}, not {value}" for key, value in wanted.items()
             if value is not None and got[key] != value]
    if wrong:
        raise AssertionError(f"the decoded {loader} image has " + ", ".join(wrong))
    return image


PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "photos"


def plugin_registry(plugin: ModuleType | object, name: str | None = None, *, distribution: str = "",
                    version: str = "test", installed: Iterable[str] = ("format",)) -> Registry:
    """A registry of ``plugin`` (the module with its hooks) alone, plus the installed plugins named
    in ``installed``: entry point names, by default pixline-format's ``format`` (the format step and
    the JPEG, PNG, WebP, AVIF and GIF encoders) so a recipe can end in bytes. The tests then do not
    depend on what else is installed (``Registry.load()`` loads every installed plugin, as pixline
    does). ``name`` defaults to the module's without ``pixline_`` (``pixline_soft_glow``: ``soft-glow``).
    """
    name = name or getattr(plugin, "__name__", "plugin").removeprefix("pixline_").replace("_", "-")
    registry = Registry()
    registry.add(name, plugin, distribution or f"pixline-{name}", version)
    entry_points = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for wanted in installed:
        ep = entry_points.get(wanted)
        if ep is None:
            raise PluginError(f"plugin {wanted!r} is not installed, and the test kit renders through it: "
                              f"install its distribution (pip install pixline-{wanted})")
        dist = ep.dist
        registry.add(wanted, ep.load(), dist.name if dist else wanted, dist.version if dist else "")
    return registry


def photo(name: str = "Storm.jpg") -> Path:
    """A real photo from the repository's ``tests/photos`` (a source checkout only)."""
    return PHOTOS / name


class FakeClock:
    """A clock for :class:`~pixline.engine.deadline.Deadline` tests: it stands still until advanced.

    With ``expire_after``, it jumps an hour ahead by itself after that many readings (a deadline reads
    the clock once when set, once per check and once per libvips progress report), so a test can let
    a step's checks pass and have the deadline expire inside the computation that follows them.
    """

    def __init__(self, expire_after: int | None = None) -> None:
        self.now = 0.0
        self.readings = 0
        self.expire_after = expire_after

    def __call__(self) -> float:
        self.readings += 1
        if self.expire_after is not None and self.readings > self.expire_after:
            self.now = max(self.now, 3600.0)
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: The wash of each frame of :func:`animation`, in order, so a test can tell frames apart.
FRAME_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255))


def animation_strip(frames: int = 3, width: int = 120, height: int = 80, delays: list[int] | None = None,
                    loop: int = 0, alpha: bool = False) -> pyvips.Image:
    """An animation as libvips holds one: ``frames`` test cards stacked top to bottom (``page-height``),
    frame *i* a gradient washed with ``FRAME_COLOURS[i % 6]``, shown ``delays[i]`` ms (default 100,
    200, 300…), repeated ``loop`` times (0: forever); with ``alpha``, the right half of each frame
    is see-through. :func:`animation_bytes` saves one; :func:`pixline.engine.frames.split` takes it
    apart."""
    cards = []
    for index in range(frames):
        wash = FRAME_COLOURS[index % len(FRAME_COLOURS)]
        card = (gradient(width, height) * 0.4 + [0.6 * c for c in wash]).cast("uchar")
        if alpha:  # opaque on the left half, see-through on the right
            card = card.bandjoin((pyvips.Image.xyz(width, height)[0] < width // 2).ifthenelse(255, 0))
        cards.append(card)
    strip = pyvips.Image.arrayjoin(cards, across=1).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", delays or [100 * (i + 1) for i in range(frames)])
    strip.set_type(pyvips.GValue.gint_type, "loop", loop)
    return strip


def animation_bytes(format: str = "gif", frames: int = 3, width: int = 120, height: int = 80,
                    delays: list[int] | None = None, loop: int = 0, alpha: bool = False) -> bytes:
    """:func:`animation_strip` as an animated file: ``gif`` (a palette of 256 colours, alpha on or
    off) or ``webp`` (lossless: the exact pixels and alpha)."""
    strip = animation_strip(frames, width, height, delays, loop, alpha)
    if format == "gif":
        return strip.gifsave_buffer()
    if format == "webp":
        return strip.webpsave_buffer(lossless=True)
    raise ValueError(f"animation_bytes: format {format!r}: use 'gif' or 'webp'")


def animation(*args: Any, **kwargs: Any) -> pyvips.Image:
    """Deprecated: :func:`animation_strip`, the same image (the name said nothing of what it returns,
    next to helpers that return files); :func:`animation_bytes` for a GIF or WebP file. It warns
    (``DeprecationWarning``) and stays for at least one minor version."""
    warnings.warn("pixline.testing.animation() is deprecated: use animation_strip() (the same image) "
                  "or animation_bytes() (an animated GIF or WebP file)", DeprecationWarning, stacklevel=2)
    return animation_strip(*args, **kwargs)


def unreadable(width: int = 200, height: int = 100) -> pyvips.Image:
    """An image whose header reads but whose pixels fail to compute (a truncated JPEG).

    A lazy step returns an image from it without error; only computing the pixels (``avg()``,
    encoding) raises ``pyvips.Error``. Use it to test that ``apply`` reads no pixels.
    """
    data = jpeg_bytes(gradient(width, height))
    return pyvips.Image.new_from_buffer(data[: len(data) // 2], "", fail_on="truncated")

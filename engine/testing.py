"""Helpers for testing pixline and its plugins: synthetic inputs and image comparison.

Plugin authors can use these in their own test suites (``from pixline.engine.testing import ...``).
"""
from __future__ import annotations

from pathlib import Path

import pyvips

from .normalise import normalise
from .pipeline import run_steps
from .recipe import Recipe, build_recipe
from .registry import Registry
from .source import Source
from .steps import Context


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


def rgb16_png_bytes(width: int = 320, height: int = 240) -> bytes:
    """A 16-bit RGB PNG of the gradient."""
    image = (gradient(width, height).cast("ushort") * 257).cast("ushort").copy(interpretation="rgb16")
    return image.pngsave_buffer()


def sample_inputs(width: int = 64, height: int = 48) -> dict[str, bytes]:
    """Every kind of input the pipeline normalises, by name: encoded files of the gradient.

    ``rgb``, ``rgba`` (half transparent), ``grey``, ``grey-alpha``, ``grey16``, ``rgb16``, ``cmyk``
    (no profile), ``cmyk-profile``, ``p3-profile`` (wide-gamut RGB with its ICC profile), ``palette``
    and ``palette-alpha`` (8-bit palette PNGs), ``rotated`` (stored sideways, EXIF orientation 6).
    A step's tests can run it over each (``@pytest.mark.parametrize("kind", sample_inputs())``): the
    step receives every one as a normal image (8-bit sRGB, 3 bands plus alpha).
    """
    card = gradient(width, height)
    half = (pyvips.Image.xyz(width, height)[0] < width // 2).ifthenelse(255, 128).cast("uchar")
    grey = card.colourspace("b-w")
    return {
        "rgb": card.pngsave_buffer(),
        "rgba": card.bandjoin(half).pngsave_buffer(),
        "grey": grey.pngsave_buffer(),
        "grey-alpha": grey.bandjoin(half).copy(interpretation="b-w").pngsave_buffer(),
        "grey16": (grey.cast("ushort") * 257).cast("ushort").copy(interpretation="grey16").pngsave_buffer(),
        "rgb16": rgb16_png_bytes(width, height),
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


def rendered_image(registry: Registry, steps: list, data: bytes, ctx: Context | None = None) -> pyvips.Image:
    """The image ``steps`` make of the encoded input ``data``, as the pipeline would hand it to an
    encoder (normalised), computed into memory: no encoder plugin is needed to test a step."""
    image = run_steps(recipe(registry, steps), Source(data), ctx or Context())
    return normalise(image).copy_memory()


PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "photos"


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


def animation(frames: int = 3, width: int = 120, height: int = 80, delays: list[int] | None = None,
              loop: int = 0, alpha: bool = False) -> pyvips.Image:
    """An animation as libvips holds one: ``frames`` test cards stacked top to bottom (``page-height``),
    frame *i* a gradient washed with ``FRAME_COLOURS[i % 6]``, shown ``delays[i]`` ms (default 100,
    200, 300…), repeated ``loop`` times (0: forever). Save it with ``gifsave_buffer`` or
    ``webpsave_buffer``; :func:`pixline.engine.frames.split` takes a decoded one apart."""
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


def unreadable(width: int = 200, height: int = 100) -> pyvips.Image:
    """An image whose header reads but whose pixels fail to compute (a truncated JPEG).

    A lazy step returns an image from it without error; only computing the pixels (``avg()``,
    encoding) raises ``pyvips.Error``. Use it to test that ``apply`` reads no pixels.
    """
    data = jpeg_bytes(gradient(width, height))
    return pyvips.Image.new_from_buffer(data[: len(data) // 2], "", fail_on="truncated")

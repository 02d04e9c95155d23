"""Generated hostile inputs: small files that cost a decoder far more than their size says.

Every file is made here from nothing (no downloads), in well under a second: the cost lies in what the
bytes claim, not in the bytes. ``python -m tests.hostile.manifest DIR`` writes them, with a
``manifest.json`` of what each one is and what pixline must answer, for trying a live server by hand.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import pyvips

from pixline.engine import testing

# -- TIFF --------------------------------------------------------------------------------------

SHORT, LONG = 3, 4
PHOTOMETRIC = {"grey": 1, "rgb": 2, "cmyk": 5}
COLOUR_BANDS = {"grey": 1, "rgb": 3, "cmyk": 4}
SAMPLE_FORMATS = {"uint": 1, "int": 2, "float": 3}


@dataclass(frozen=True)
class TiffSpec:
    """A deflate-compressed TIFF of zeros. ``tile`` px square tiles, or strips of ``rows`` rows
    (``rows=None``: the whole image is one strip). Every tile or strip points at one shared compressed
    block, so the file stays a few kilobytes however large the image is."""

    width: int
    height: int
    bands: int
    bits: int = 8
    sample_format: str = "uint"
    photometric: str = "grey"
    tile: int | None = 256
    rows: int | None = None


def _entry(tag: int, kind: int, values: list[int], heap: bytearray, base: int) -> bytes:
    """One IFD entry; values that do not fit in its 4 bytes go to ``heap`` (file offset ``base``)."""
    packed = struct.pack(f"<{len(values)}{'H' if kind == SHORT else 'I'}", *values)
    if len(packed) <= 4:
        return struct.pack("<HHI", tag, kind, len(values)) + packed.ljust(4, b"\0")
    offset = base + len(heap)
    heap += packed + (b"\0" if len(packed) % 2 else b"")
    return struct.pack("<HHII", tag, kind, len(values), offset)


def tiff(spec: TiffSpec) -> bytes:
    """The bytes of the TIFF ``spec`` describes (little-endian, one IFD)."""
    if spec.tile:
        block_w, block_h = spec.tile, spec.tile
        count = -(-spec.width // spec.tile) * -(-spec.height // spec.tile)
    else:
        block_w, block_h = spec.width, spec.rows or spec.height
        count = -(-spec.height // block_h)
    block = zlib.compress(bytes(block_w * block_h * spec.bands * spec.bits // 8), 9)
    extra = spec.bands - COLOUR_BANDS[spec.photometric]
    tags = [(256, LONG, [spec.width]), (257, LONG, [spec.height]), (258, SHORT, [spec.bits] * spec.bands),
            (259, SHORT, [8]), (262, SHORT, [PHOTOMETRIC[spec.photometric]]),
            (277, SHORT, [spec.bands]), (284, SHORT, [1]),
            (339, SHORT, [SAMPLE_FORMATS[spec.sample_format]] * spec.bands)]
    if extra > 0:
        tags.append((338, SHORT, [2] + [0] * (extra - 1)))  # unassociated alpha, then unspecified
    offsets, counts = [8] * count, [len(block)] * count
    if spec.tile:
        tags += [(322, LONG, [spec.tile]), (323, LONG, [spec.tile]), (324, LONG, offsets),
                 (325, LONG, counts)]
    else:
        tags += [(273, LONG, offsets), (278, LONG, [block_h]), (279, LONG, counts)]
    tags.sort()
    heap_at = 8 + len(block) + (len(block) % 2)
    heap = bytearray()
    entries = b"".join(_entry(tag, kind, values, heap, heap_at) for tag, kind, values in tags)
    ifd_at = heap_at + len(heap)
    header = b"II*\0" + struct.pack("<I", ifd_at)
    return (header + block + b"\0" * (len(block) % 2) + bytes(heap)
            + struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0))


# -- progressive JPEG --------------------------------------------------------------------------

def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a well-formed JPEG; a scan includes its data."""
    out, pos = [], 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((marker, pos, pos + 2))
            return out
        end = pos + 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0, *range(0xD0, 0xD8))):
                end += 1
        out.append((marker, pos, end))
        pos = end
    return out


def progressive_scan_flood(width: int = 4000, height: int = 4000, scans: int = 300) -> bytes:
    """A progressive JPEG that repeats a tiny scan ``scans`` times (about 35 bytes each).

    The repeated scan is the luma AC "first" scan, rewritten to the finest bit position: libjpeg then
    finds a consistent progression (no warning, which libvips would count) and decodes every block of
    the image again for each copy.
    """
    flat = (pyvips.Image.black(width, height, bands=3) + 100).cast("uchar").copy(interpretation="srgb")
    data = flat.jpegsave_buffer(interlace=True, Q=75)
    segments = _segments(data)
    for index, (marker, start, end) in enumerate(segments):
        header = data[start + 4:]
        # one component (id 1: luma), spectral start > 0 (AC), Ah = 0 (a first scan)
        if marker == 0xDA and header[0] == 1 and header[1] == 1 and header[3] > 0 and header[5] >> 4 == 0:
            dht_start = segments[index - 1][1]
            unit = bytearray(data[dht_start:end])
            unit[start - dht_start + 4 + 5] = 0x00  # Ah = Al = 0
            eoi = segments[-1][1]
            return data[:eoi] + bytes(unit) * scans + data[eoi:]
    raise AssertionError("libvips wrote no luma AC first scan to repeat")


# -- others ------------------------------------------------------------------------------------

def frame_flood_gif(frames: int = 101, size: int = 8) -> bytes:
    """An animated GIF of ``frames`` tiny frames (over the 100-frame limit by default)."""
    # Each frame has a colour of its own: libvips merges frames that look alike.
    rows = pyvips.Image.xyz(size, size * frames)[1]
    strip = ((rows / size).floor() * 37 % 256).cast("uchar").bandjoin_const([0, 255])
    strip = strip.copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", size)
    return strip.gifsave_buffer()


def wide_png(width: int = 66_000, height: int = 2) -> bytes:
    """A PNG wider than JPEG (65500 px) and WebP (16383 px) can be: within the pixel limit."""
    return (pyvips.Image.black(width, height, bands=3) + 90).cast("uchar").copy(
        interpretation="srgb").pngsave_buffer(compression=1)


def truncated_jpeg() -> bytes:
    data = testing.jpeg_bytes(testing.gradient(640, 480))
    return data[: len(data) // 2]


def photo_jpeg() -> bytes:
    """A well-formed control image: everything must render it."""
    return testing.jpeg_bytes(testing.gradient(640, 480))

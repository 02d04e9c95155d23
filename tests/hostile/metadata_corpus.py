"""Generated inputs whose cost lies in their metadata: text, EXIF, XMP and ICC chunks and segments.

Every file is a 64×64 image made here from nothing, in well under a second; what it carries is what
the decoders read at header time, on every load (engine/metadata.py). The bombs are built from one
compressed block repeated (a full flush resets deflate's state, so every copy has the same bytes), so
a zTXt chunk that inflates to 512 MB is made without ever holding 512 MB.
"""
from __future__ import annotations

import base64
import random
import struct
import zlib

import pyvips

MB = 1024 * 1024
ADLER_BASE = 65521


def flat(width: int = 64, height: int = 64) -> pyvips.Image:
    return (pyvips.Image.black(width, height, bands=3) + 90).cast("uchar").copy(interpretation="srgb")


def with_blob(image: pyvips.Image, field: str, data: bytes) -> pyvips.Image:
    image = image.copy()
    image.set_type(pyvips.GValue.blob_type, field, data)
    return image


def xmp(size: int) -> bytes:
    """An XMP packet of about ``size`` bytes."""
    return b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><x:pad>' + b"A" * size + b"</x:pad></x:xmpmeta>"


# -- PNG ---------------------------------------------------------------------------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with(chunks: list[bytes], after_image: bool = False) -> bytes:
    """A 64×64 PNG with ``chunks`` (made by :func:`png_chunk`) after its header, or before IEND."""
    base = flat().pngsave_buffer(keep="none")
    at = base.rindex(b"IEND") - 4 if after_image else 8 + 25  # the signature and the IHDR chunk
    return base[:at] + b"".join(chunks) + base[at:]


def _adler32_repeated(block: bytes, times: int) -> int:
    """zlib's Adler-32 of ``block`` repeated ``times`` times, without making the repeat."""
    one, size = zlib.adler32(block), len(block)
    a, b = 1, 0  # Adler-32 of nothing
    for _ in range(times):  # combine(a, b; one, size), as zlib's adler32_combine
        b = (b + (size % ADLER_BASE) * a + (one >> 16) - (size % ADLER_BASE)) % ADLER_BASE
        a = (a + (one & 0xFFFF) - 1) % ADLER_BASE
    return (b << 16) | a


def deflate_bomb(size: int, block: bytes = b"A" * MB) -> bytes:
    """A zlib stream that inflates to ``size`` bytes (a whole number of ``block``s), about 1/1000 of it."""
    times = max(1, size // len(block))
    packer = zlib.compressobj(9)
    first = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.flush()[:-4]  # the final empty block; the checksum is of the whole repeat
    return (first + repeat * (times - 1) + end
            + struct.pack(">I", _adler32_repeated(block, times)))


def ztxt(keyword: bytes, compressed: bytes) -> bytes:
    return png_chunk(b"zTXt", keyword + b"\0\0" + compressed)


def ztxt_flood(chunks: int = 490, inflates_to: int = 4 * MB, text: int = 100_000) -> bytes:
    """The issue's attack: a 64×64 PNG of ``chunks`` zTXt chunks, each of about ``text`` bytes that do
    not compress (random base64) and then ``inflates_to`` bytes that do: about 50 MB by default."""
    text = base64.b64encode(random.Random(18).randbytes(text))
    compressed = zlib.compress(text + b"A" * inflates_to, 9)
    return png_with([ztxt(b"k%d" % i, compressed) for i in range(chunks)])


def text_flood(kind: bytes = b"tEXt", chunks: int = 300, size: int = 100) -> bytes:
    """A PNG of ``chunks`` tEXt (or uncompressed iTXt) chunks of ``size`` bytes each."""
    prefix = b"\0" if kind == b"tEXt" else b"\0\0\0\0\0"  # iTXt: flag, method, language, translation
    return png_with([png_chunk(kind, b"k%d" % i + prefix + b"t" * size) for i in range(chunks)])


def ztxt_bomb(inflates_to: int = 512 * MB) -> bytes:
    """One zTXt chunk of about 500 KB that inflates to ``inflates_to`` bytes."""
    return png_with([ztxt(b"bomb", deflate_bomb(inflates_to))])


def itxt_bomb(inflates_to: int = 512 * MB) -> bytes:
    """One compressed iTXt chunk (an XMP packet's key) that inflates to ``inflates_to`` bytes."""
    return png_with([png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + deflate_bomb(inflates_to))])


def iccp_bomb(inflates_to: int = 64 * MB) -> bytes:
    """An iCCP chunk whose "profile" inflates to ``inflates_to`` bytes."""
    return png_with([png_chunk(b"iCCP", b"icc\0\0" + deflate_bomb(inflates_to))])


def png_at_the_limits() -> bytes:
    """A PNG of 256 zTXt chunks of 32 KB of text: 8 MiB with their keywords, at both default limits."""
    return png_with([ztxt(b"k", zlib.compress(b"A" * (32 * 1024 - 16))) for _ in range(256)])


def png_xmp(size: int = 20 * MB) -> bytes:
    """A PNG as libvips writes a large XMP packet: a compressed iTXt chunk of a few KB."""
    return with_blob(flat(), "xmp-data", xmp(size)).pngsave_buffer()


# -- JPEG --------------------------------------------------------------------------------------

def jpeg_with_segments(segments: int, size: int, marker: int = 0xE1) -> bytes:
    """A 64×64 JPEG with ``segments`` marker segments ``marker`` (APP1, or COM 0xFE) of ``size`` bytes
    of data each (at most 65533), after its SOI."""
    base = flat().jpegsave_buffer(keep="none")
    segment = bytes([0xFF, marker]) + struct.pack(">H", size + 2) + b"x" * size
    return base[:2] + segment * segments + base[2:]


# -- WebP, TIFF, AVIF ----------------------------------------------------------------------------

def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def webp_with(exif: bytes = b"", xmp_data: bytes = b"", copies: int = 1) -> bytes:
    """A 64×64 lossless WebP in an extended (VP8X) container with ``copies`` EXIF and XMP chunks."""
    image = flat().webpsave_buffer(lossless=True, keep="none")[12:]  # its VP8L chunk
    flags = (0x08 if exif else 0) | (0x04 if xmp_data else 0)
    vp8x = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + (63).to_bytes(3, "little") * 2)
    body = (b"WEBP" + vp8x + image + (_riff_chunk(b"EXIF", exif) * copies if exif else b"")
            + (_riff_chunk(b"XMP ", xmp_data) * copies if xmp_data else b""))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_xmp(size: int = 20 * MB) -> bytes:
    return with_blob(flat(), "xmp-data", xmp(size)).tiffsave_buffer()


def avif_xmp(size: int = 20 * MB) -> bytes:
    return with_blob(flat(), "xmp-data", xmp(size)).heifsave_buffer(compression="av1", effort=0)

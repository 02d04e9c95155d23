"""Bounding an input's metadata (text, EXIF, XMP, ICC) from its bytes, before libvips parses it.

Decoders read metadata when they read the header, on every load, not only at upload: libspng
decompresses every text chunk of a PNG before its first row, libjpeg copies every APPn segment before
the first scan. A 64×64 PNG of 490 zTXt chunks, each decompressing to 10 MB, cost 2.9 s of CPU per
header read and 15 s per thumbnail (libvips' thumbnail reads the header more than once); no pixel limit
sees it. So pixline counts the metadata chunks or segments and their bytes where the container makes
that cheap, walking it by its lengths: PNG chunks (text, ``iCCP``, ``eXIf``; compressed ones are
decompressed incrementally and the walk stops at the limit, so the check costs at most the limit),
JPEG APPn and COM segments (engine/jpegscans.py's walk) and WebP's ``ICCP``, ``EXIF`` and ``XMP``
chunks. For the other formats (HEIF/AVIF and TIFF, whose boxes and tags are not cheap to walk, and
GIF) the blobs and strings libvips reports in the header are bounded after the header is read
(:func:`header_bytes`). Not for the walked ones too: libvips adds strings of its own (each EXIF tag
again as text), so a file at the limit of its walk would be over it in the header.

GIF is not walked: libvips' GIF loader keeps none of a GIF's extension blocks (comments, XMP
application blocks), and skipping them costs about 0.5 ms per MB.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import pyvips

from .errors import ImageTooLargeError
from .jpegscans import JpegScans

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG chunks a decoder keeps as metadata: text, ICC profile, EXIF.
PNG_METADATA = (b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf")
PNG_WHAT = "metadata chunks (tEXt, zTXt, iTXt, iCCP, eXIf)"
#: WebP chunks libwebp's demuxer hands libvips as metadata.
WEBP_METADATA = (b"ICCP", b"EXIF", b"XMP ")
WEBP_WHAT = "metadata chunks (ICCP, EXIF, XMP)"
#: A PNG or WebP of more chunks than this is not a photo: the walk runs in Python (0.25 µs a chunk),
#: and a 50 MB file can hold four million empty ones. libpng writes 8 KB image chunks: 6400 in 50 MB.
MAX_CHUNKS = 65536
#: Compressed data is inflated in pieces of this much, into steps of this much: a bomb never makes
#: more at once.
INFLATE_STEP = 1 << 20
#: The header fields whose size is counted: blobs (EXIF, XMP, ICC, IPTC) and strings (text).
_COUNTED_TYPES = (pyvips.GValue.blob_type, pyvips.GValue.gstr_type, pyvips.GValue.refstr_type)


@dataclass(frozen=True)
class Measured:
    """What a walk saw: ``chunks`` metadata chunks (segments) holding ``size`` bytes (decompressed),
    among ``walked`` chunks of any kind. ``complete``: the walk reached the end; otherwise it stopped
    once a limit was passed (or at :data:`MAX_CHUNKS`) and the counts are lower bounds."""

    container: str
    what: str
    chunks: int
    size: int
    walked: int = 0
    complete: bool = True
    decompressed: bool = False


def measure(data: bytes, max_chunks: int | None, max_bytes: int | None) -> Measured | None:
    """The metadata of PNG or WebP ``data``, walked until a limit is passed; ``None`` for other
    formats. Malformed data ends the walk quietly: the decoder reports it properly."""
    if data.startswith(PNG_SIGNATURE):
        return _png(data, max_chunks, max_bytes)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data, max_chunks, max_bytes)
    return None


def from_jpeg(walk: JpegScans) -> Measured:
    """The metadata segments that engine/jpegscans.py's walk counted."""
    return Measured("JPEG", "metadata segments (APP0-APP15, COM)", walk.metadata, walk.metadata_bytes)


def _over(value: int, limit: int | None) -> bool:
    return limit is not None and value > limit


def _png(data: bytes, max_chunks: int | None, max_bytes: int | None) -> Measured:
    view = memoryview(data)
    pos, walked, chunks, size = len(PNG_SIGNATURE), 0, 0, 0
    while pos + 8 <= len(data):
        if walked >= MAX_CHUNKS:
            return Measured("PNG", PNG_WHAT, chunks, size, walked, False, True)
        length, kind = struct.unpack_from(">I4s", data, pos)
        walked += 1
        start, end = pos + 8, min(pos + 8 + length, len(data))
        if kind in PNG_METADATA:
            chunks += 1
            budget = None if max_bytes is None else max_bytes - size
            size += _png_chunk_size(kind, data, view, start, end, budget)
            if _over(chunks, max_chunks) or _over(size, max_bytes):
                return Measured("PNG", PNG_WHAT, chunks, size, walked, False, True)
        if kind == b"IEND":
            break
        pos = start + length + 4  # data, then its CRC
    return Measured("PNG", PNG_WHAT, chunks, size, walked, decompressed=True)


def _png_chunk_size(kind: bytes, data: bytes, view: memoryview, start: int, end: int,
                    budget: int | None) -> int:
    """The bytes a text, ICC or EXIF chunk holds once decompressed (counted up to ``budget`` + 1)."""
    if kind in (b"tEXt", b"eXIf"):
        return end - start
    key_end = data.find(b"\0", start, end)  # keyword, then (iTXt) a flag before the method
    if key_end < 0 or key_end + 2 >= end:
        return end - start
    if kind == b"iTXt":
        if data[key_end + 1] != 1:  # not compressed
            return end - start
        language_end = data.find(b"\0", key_end + 3, end)
        text_at = data.find(b"\0", language_end + 1, end) + 1 if language_end >= 0 else 0
        if text_at <= 0:
            return end - start
    else:  # zTXt and iCCP: keyword, method, compressed data
        text_at = key_end + 2
    return (text_at - start) + _inflated_size(view[text_at:end], budget)


def _inflated_size(compressed: memoryview, budget: int | None) -> int:
    """The size ``compressed`` (a zlib stream) inflates to, counted up to ``budget`` + 1 bytes (so
    inflating a bomb stops at the limit); a stream that does not inflate counts as its own size, and so
    does every stream when nothing limits the bytes (``budget`` ``None``: there is nothing to learn).

    The input goes in by pieces, the output comes out by steps: neither is ever held whole (zlib's
    ``unconsumed_tail`` is a copy of the input left over)."""
    if budget is None:
        return len(compressed)
    inflater, size = zlib.decompressobj(), 0
    try:
        for at in range(0, len(compressed), INFLATE_STEP):
            pending = compressed[at:at + INFLATE_STEP]
            while True:
                room = max(1, min(INFLATE_STEP, budget + 1 - size))
                out = inflater.decompress(pending, room)
                size += len(out)
                if size > budget or inflater.eof:
                    return size
                pending = inflater.unconsumed_tail
                if not pending and len(out) < room:  # this piece is inflated whole: the next one
                    break
    except zlib.error:
        return len(compressed)
    return size


def _webp(data: bytes, max_chunks: int | None, max_bytes: int | None) -> Measured:
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    pos, walked, chunks, size = 12, 0, 0, 0
    while pos + 8 <= end:
        if walked >= MAX_CHUNKS:
            return Measured("WebP", WEBP_WHAT, chunks, size, walked, complete=False)
        kind, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        walked += 1
        if kind in WEBP_METADATA:
            chunks += 1
            size += min(length, end - pos - 8)  # a length may claim more than the file holds
            if _over(chunks, max_chunks) or _over(size, max_bytes):
                return Measured("WebP", WEBP_WHAT, chunks, size, walked, complete=False)
        pos += 8 + length + (length & 1)  # chunks are padded to an even length
    return Measured("WebP", WEBP_WHAT, chunks, size, walked)


def check(found: Measured, name: str, max_chunks: int | None, max_bytes: int | None) -> None:
    """Raise :class:`ImageTooLargeError` if ``found`` is over a limit, naming what and how much."""
    if not found.complete and found.walked >= MAX_CHUNKS:
        raise ImageTooLargeError(f"{name}: a {found.container} of more than {MAX_CHUNKS} chunks")
    if _over(found.chunks, max_chunks):
        count = f"{found.chunks}" if found.complete else f"more than {max_chunks}"
        raise ImageTooLargeError(f"{name}: a {found.container} of {count} {found.what}, over the limit "
                                 f"of {max_chunks}")
    if _over(found.size, max_bytes):
        size = f"{found.size} bytes" if found.complete else f"more than {max_bytes} bytes"
        size += " once decompressed" if found.decompressed else ""
        raise ImageTooLargeError(f"{name}: a {found.container} whose {found.what} hold {size}, over the "
                                 f"limit of {max_bytes} bytes of metadata")


def header_bytes(image: pyvips.Image) -> tuple[int, str]:
    """The bytes of every blob and string libvips reports in ``image``'s header (EXIF, XMP, ICC,
    IPTC, text), and the name of the largest."""
    total, largest, largest_size = 0, "", -1
    for field in image.get_fields():
        if image.get_typeof(field) not in _COUNTED_TYPES:
            continue
        value = image.get(field)
        size = len(value) if isinstance(value, (bytes, str)) else 0
        total += size
        if size > largest_size:
            largest, largest_size = field, size
    return total, largest


def check_header(image: pyvips.Image, name: str, max_bytes: int | None) -> None:
    """Raise :class:`ImageTooLargeError` if the metadata libvips read is over ``max_bytes``."""
    if max_bytes is None:
        return
    total, largest = header_bytes(image)
    if total > max_bytes:
        raise ImageTooLargeError(f"{name}: {total} bytes of metadata (the largest: {largest}), over the "
                                 f"limit of {max_bytes} bytes")

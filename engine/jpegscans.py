"""Counting a JPEG's scans and metadata segments from its bytes, before libjpeg decodes anything.

A progressive JPEG is a series of scans, and libjpeg-turbo decodes each one over the whole image: a
file of a few hundred kilobytes that repeats a tiny scan (an end-of-band run covering every block)
hundreds of times costs seconds of CPU to decode while passing every header check. libjpeg-turbo's
own tools guard against it with a scan limit (``djpeg -maxscans``, ``TJPARAM_SCANLIMIT``); libvips
has none, so pixline counts the start-of-scan markers itself.

The walk follows the marker segments by their lengths, so bytes inside an EXIF thumbnail or an ICC
profile are never mistaken for markers; inside entropy-coded data a marker is 0xFF followed by
anything but a stuffed 0x00 or a restart marker.

The same walk counts the metadata segments (APP0-APP15: JFIF, EXIF, XMP, ICC, IPTC, Adobe; COM) and
their bytes, which engine/metadata.py bounds: libjpeg reads every segment before the first scan when
the header is read, on every load.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SOI, EOI, SOS, COM = 0xD8, 0xD9, 0xDA, 0xFE
#: Markers of metadata segments: APP0-APP15 and COM.
METADATA = {*range(0xE0, 0xF0), COM}
#: Markers with no length field: restarts (D0-D7), SOI, EOI and TEM.
STANDALONE = {*range(0xD0, 0xD8), SOI, EOI, 0x01}
#: The next marker after entropy-coded data: 0xFF not followed by a stuffed 0x00 or a restart.
NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")
#: A JPEG with more marker segments than this is not a photo: the walk stops there (it runs in Python).
MAX_SEGMENTS = 4096


@dataclass(frozen=True)
class JpegScans:
    """What the walk saw: ``scans`` start-of-scan markers among ``segments`` marker segments, of which
    ``metadata`` APPn or COM segments of ``metadata_bytes`` bytes (their lengths, markers excluded).

    The walk stops early once ``scans`` passes the limit it was given or ``segments`` reaches
    :data:`MAX_SEGMENTS`, so all are lower bounds of the file's real counts.
    """

    scans: int
    segments: int
    metadata: int = 0
    metadata_bytes: int = 0


def count_scans(data: bytes, stop_after: int | None = None) -> JpegScans:
    """The scans of JPEG ``data``, counted up to ``stop_after + 1`` (``None``: all of them).

    Data that is not a well-formed JPEG ends the walk quietly: the decoder reports it properly.
    """
    scans = segments = metadata = metadata_bytes = 0
    if not data.startswith(b"\xff\xd8"):
        return JpegScans(0, 0)
    pos = 2
    while pos + 1 < len(data) and segments < MAX_SEGMENTS:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == EOI:
            break
        if marker in STANDALONE:
            pos += 2
            continue
        if pos + 4 > len(data):
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        segments += 1
        if marker in METADATA:
            metadata += 1
            metadata_bytes += length
        if marker == SOS:
            scans += 1
            if stop_after is not None and scans > stop_after:
                break
            found = NEXT_MARKER.search(data, end)
            if found is None:
                break
            end = found.start()
        pos = end
    return JpegScans(scans, segments, metadata, metadata_bytes)

"""JPEG decoding at a DCT scale (1/2, 1/4, 1/8) with Pillow's libjpeg-turbo, handed to libvips as
pixels: the decode of an on-demand thumbnail at thumbor's cost.

Why (bench/README.md, issue #10): for a 300-340 px output of a 2-5 MP photo, Pillow's scaled decode
(``draft``, as thumbor uses it) followed by libvips' resize and encode took 18.2 ms of CPU where
libvips' own ``jpegload`` at the same scale took 23.4 ms (medians of 120, interleaved in one
process). The pixels are the same: on the repository's photos, 4:2:0 and 4:4:4, at every scale, the
two decodes do not differ by a single level (tests/engine/test_jpegdraft.py holds them to a
tolerance); the libjpeg-turbo in Pillow's wheel is simply faster than the decoder (mozjpeg) and the
load machinery in the libvips wheel. The decode is most of a miss; the rest stays libvips'.

Only what libvips would have decoded the same way comes here: an 8-bit YCbCr or greyscale JPEG
(``RGB``/``L`` in Pillow's terms; CMYK and anything unusual go to libvips). The EXIF orientation
and the ICC profile travel with the pixels as libvips fields, so ``thumbnail_image`` turns and
colour-manages the image as it would have after its own load. Any failure in Pillow returns
``None`` and the caller decodes with libvips, whose errors are the ones users see. Pillow releases
the GIL while it decodes, so renders on several threads decode in parallel, as with libvips.
"""
from __future__ import annotations

import io
import logging

import pyvips

log = logging.getLogger(__name__)

try:  # Pillow is a dependency; without it every decode is libvips' (nothing else changes)
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover
    _PILImage = None

#: Pillow modes of a decoded JPEG → libvips interpretation.
MODES = {"RGB": ("srgb", 3), "L": ("b-w", 1)}
#: EXIF tag of the orientation (TIFF tag 274).
ORIENTATION = 0x0112


def decode(data: bytes, shrink: int, pixels: int = 0) -> pyvips.Image | None:
    """The JPEG ``data`` decoded at 1/``shrink`` of its size (each side rounded up, as libjpeg does),
    as an uncompressed libvips image with ``orientation`` and ``icc-profile-data`` set from the file;
    ``None`` when Pillow cannot or should not decode it.

    The caller has already checked the file (format, limits, scans) from its header; ``pixels`` is
    its size from there. Images over Pillow's own decompression-bomb size are left to libvips
    (pixline's limits apply already; Pillow would only warn, or refuse).
    """
    if _PILImage is None or shrink not in (2, 4, 8):
        return None
    if _PILImage.MAX_IMAGE_PIXELS and pixels > _PILImage.MAX_IMAGE_PIXELS:
        return None
    try:
        with _PILImage.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.mode not in MODES:
                return None
            width, height = image.size
            image.draft(image.mode, (max(1, width // shrink), max(1, height // shrink)))
            if image.size != (-(-width // shrink), -(-height // shrink)):
                return None  # Pillow chose another scale: leave it to libvips
            profile = image.info.get("icc_profile")
            orientation = image.getexif().get(ORIENTATION, 1)
            image.load()
            samples = image.tobytes()
            mode, size = image.mode, image.size
    except Exception as exc:  # noqa: BLE001 (any trouble: libvips decodes it and reports)
        log.debug("Pillow did not decode a JPEG (%s); libvips will", exc)
        return None
    interpretation, bands = MODES[mode]
    out = pyvips.Image.new_from_memory(samples, size[0], size[1], bands, "uchar")
    out = out.copy(interpretation=interpretation)
    if isinstance(orientation, int) and 1 < orientation <= 8:
        out.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    if profile:
        out.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    return out

"""Reading input images safely: which formats we take, limits checked from the header, no half-decodes.

Only the loaders of the formats pixline means to take are enabled (an allow-list, so a libvips build
with more loaders never widens it): JPEG, PNG, WebP, AVIF/HEIF, GIF and TIFF. Every load fails on
truncated data instead of padding it with grey.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator

import pyvips

from . import frames, jpegdraft, metadata
from .deadline import Deadline
from .errors import ImageTooLargeError, RenderTimeoutError, UndecodableImageError, UnsupportedFormatError
from .jpegscans import MAX_SEGMENTS, JpegScans, count_scans
from .normalise import normalise

#: libvips loader classes we take; everything else under VipsForeignLoad is blocked.
ALLOWED_LOADER_CLASSES = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadHeif",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadTiff",
)
#: Loader nickname prefix → pixline format name (heif is refined into avif/heic below).
LOADER_FORMATS = {
    "jpegload": "jpeg",
    "pngload": "png",
    "webpload": "webp",
    "heifload": "heif",
    "gifload": "gif",
    "tiffload": "tiff",
}
FAIL_ON = "truncated"
#: pyvips' message when no loader takes a buffer (``new_from_buffer``).
NO_LOADER = "unable to load from buffer"
#: Bits per sample of libvips' band formats; ``float``/``double``/``complex`` are never taken.
SAMPLE_BITS = {"uchar": 8, "char": 8, "ushort": 16, "short": 16, "uint": 32, "int": 32}
#: Formats whose extra frames are an animation (a multi-page TIFF or HEIF is a set of pictures).
ANIMATED_FORMATS = ("gif", "webp")


def restrict_loaders() -> None:
    """Block every libvips loader but the allowed ones (idempotent, process-wide)."""
    pyvips.operation_block_set("VipsForeignLoad", True)
    for name in ALLOWED_LOADER_CLASSES:
        pyvips.operation_block_set(name, False)


restrict_loaders()


@dataclass(frozen=True)
class Limits:
    """Input limits, all checked from the header and the bytes before any pixel is decoded.

    Every value has a safe default; ``None`` would mean no limit. The pixel limit alone does not bound
    a decode's cost: a 49 MP TIFF of 16 float bands is 3 GB of samples, and a progressive JPEG can
    make libjpeg pass over every block hundreds of times. So bands, bits per sample and JPEG scans
    are limited too (docs/security.md says why each default).
    """

    max_bytes: int | None = 50 * 1024 * 1024
    max_pixels: int | None = 50_000_000
    max_frames: int | None = 100
    #: A photo has at most 5 bands: CMYK plus alpha.
    max_bands: int | None = 5
    #: 16-bit samples are common (PNG, TIFF, 10/12-bit AVIF); 32-bit integers are not photos.
    max_sample_bits: int | None = 16
    #: Scans of a progressive JPEG: encoders write 3-12 (mozjpeg's scan optimisation fewer).
    max_scans: int | None = 100
    #: Metadata chunks or segments (text, EXIF, XMP, ICC) and their bytes, decompressed: a camera's
    #: JPEG has 2-5 segments and under 100 KB; a large ICC profile or extended XMP a few MB.
    max_metadata_chunks: int | None = 256
    max_metadata_bytes: int | None = 8 * 1024 * 1024


def content_id(data: bytes) -> str:
    """The id of an original: derived from its bytes, so re-uploads are idempotent."""
    return hashlib.sha256(data).hexdigest()[:32]


def _detail(err: pyvips.Error) -> str:
    text = (getattr(err, "detail", "") or str(err)).strip().splitlines()
    return text[-1] if text else "libvips error"


class Source:
    """An input image held as bytes, with its header read lazily and checked against ``limits``.

    ``name`` is how errors refer to the input (a file name or an image id). ``every_frame``: load
    and thumbnail an animation whole (see :meth:`with_every_frame`); otherwise its first frame.
    """

    def __init__(self, data: bytes, name: str = "input", limits: Limits = Limits(),
                 every_frame: bool = False, display_size: tuple[int, int] | None = None) -> None:
        self.data = data
        self.name = name
        self.limits = limits
        self.every_frame = every_frame
        # A reduced copy stands in for its original: steps plan with the original's size and ask
        # the copy for pixels (engine/reduced.py).
        self.display_size = display_size

    @classmethod
    def from_path(cls, path: str, limits: Limits = Limits()) -> "Source":
        with open(path, "rb") as fh:
            return cls(fh.read(), name=str(path), limits=limits)

    @cached_property
    def header(self) -> pyvips.Image:
        """The image as libvips sees it before any pixel is decoded. Raises on bad input."""
        if self.limits.max_bytes is not None and len(self.data) > self.limits.max_bytes:
            raise ImageTooLargeError(
                f"{self.name}: {len(self.data)} bytes is over the limit of {self.limits.max_bytes} bytes"
            )
        if not self.data:
            raise UnsupportedFormatError(f"{self.name}: empty file, not an image")
        self._check_metadata()
        try:
            image = pyvips.Image.new_from_buffer(self.data, "", fail_on=FAIL_ON)
        except pyvips.Error as err:
            detail = _detail(err)
            # pyvips says this, and only this, when no (allowed) loader knows the bytes. Not the
            # detail text: libvips' error buffer is one per process, and another thread's error
            # handling can clear it before it is read (a 415 answered as a 422 under load).
            if err.message == NO_LOADER or "not in a known format" in detail:
                raise UnsupportedFormatError(
                    f"{self.name}: not an image type pixline takes (JPEG, PNG, WebP, AVIF/HEIF, GIF, TIFF)"
                ) from None
            raise UndecodableImageError(f"{self.name}: cannot decode image: {detail}") from None
        self._check_limits(image)
        return image

    @cached_property
    def _jpeg_walk(self) -> JpegScans | None:
        """engine/jpegscans.py's walk of a JPEG's segments (``None`` for other formats)."""
        return count_scans(self.data, self.limits.max_scans) if self.data.startswith(b"\xff\xd8") else None

    @cached_property
    def _metadata(self) -> metadata.Measured | None:
        """The metadata walked from the bytes (JPEG, PNG, WebP; ``None`` for other formats)."""
        if self._jpeg_walk is not None:
            return metadata.from_jpeg(self._jpeg_walk)
        return metadata.measure(self.data, self.limits.max_metadata_chunks, self.limits.max_metadata_bytes)

    def _check_metadata(self) -> None:
        """Bound the metadata from the bytes, before libvips parses (and decompresses) it on every load
        (engine/metadata.py). Formats not walked are bounded from the header (:meth:`_check_limits`)."""
        if self._jpeg_walk is not None and self._jpeg_walk.segments >= MAX_SEGMENTS:
            raise ImageTooLargeError(f"{self.name}: a JPEG of more than {MAX_SEGMENTS} marker segments")
        if self._metadata is not None:
            metadata.check(self._metadata, self.name, self.limits.max_metadata_chunks,
                           self.limits.max_metadata_bytes)

    def _check_limits(self, image: pyvips.Image) -> None:
        pixels = image.width * image.height
        if self.limits.max_pixels is not None and pixels > self.limits.max_pixels:
            raise ImageTooLargeError(
                f"{self.name}: {image.width}×{image.height} is {pixels} pixels, over the limit of "
                f"{self.limits.max_pixels}"
            )
        count = image.get("n-pages") if "n-pages" in image.get_fields() else 1
        if self.limits.max_frames is not None and count > self.limits.max_frames:
            raise ImageTooLargeError(
                f"{self.name}: {count} frames, over the limit of {self.limits.max_frames}"
            )
        self._check_samples(image)
        if image.get("vips-loader").startswith("jpegload"):
            self._check_scans()
        if self._metadata is None:  # HEIF/AVIF, TIFF, GIF: the blobs and strings libvips read
            metadata.check_header(image, self.name, self.limits.max_metadata_bytes)

    def _check_samples(self, image: pyvips.Image) -> None:
        if self.limits.max_bands is not None and image.bands > self.limits.max_bands:
            raise ImageTooLargeError(
                f"{self.name}: {image.bands} bands, over the limit of {self.limits.max_bands} "
                "(a photo has at most CMYK and alpha)")
        bits = SAMPLE_BITS.get(image.format)
        if bits is None:
            raise UnsupportedFormatError(
                f"{self.name}: {image.format} samples: pixline takes images of 8- or 16-bit integer "
                "samples, not floating-point or complex ones")
        if self.limits.max_sample_bits is not None and bits > self.limits.max_sample_bits:
            raise ImageTooLargeError(
                f"{self.name}: {bits}-bit samples, over the limit of {self.limits.max_sample_bits} bits")

    def _check_scans(self) -> None:
        found = self._jpeg_walk or count_scans(self.data, self.limits.max_scans)
        if self.limits.max_scans is not None and found.scans > self.limits.max_scans:
            raise ImageTooLargeError(
                f"{self.name}: a progressive JPEG of more than {self.limits.max_scans} scans, over the "
                "limit (each scan is decoded over the whole image)")

    @cached_property
    def format(self) -> str:
        """The format by content: jpeg, png, webp, avif, heic, gif or tiff."""
        loader = self.header.get("vips-loader")
        fmt = next((f for prefix, f in LOADER_FORMATS.items() if loader.startswith(prefix)), None)
        if fmt is None:  # an allowed loader class with a nickname we do not know
            raise UnsupportedFormatError(f"{self.name}: loader {loader} is not one pixline takes")
        if fmt == "heif":
            fields = self.header.get_fields()
            compression = self.header.get("heif-compression") if "heif-compression" in fields else "av1"
            fmt = "avif" if compression == "av1" else "heic"
        return fmt

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as displayed: EXIF orientations 5–8 swap the stored axes (for a reduced
        copy: its original's)."""
        if self.display_size is not None:
            return self.display_size
        image = self.header
        fields = image.get_fields()
        orientation = image.get("orientation") if "orientation" in fields else 1
        if orientation in (5, 6, 7, 8):
            return image.height, image.width
        return image.width, image.height

    @property
    def pixel_size(self) -> tuple[int, int]:
        """(width, height) of the pixels in ``data``, upright: :attr:`size` but for a reduced copy."""
        if self.display_size is None:
            return self.size
        return self.header.width, self.header.height  # copies are stored upright

    @property
    def has_alpha(self) -> bool:
        return bool(self.header.hasalpha())

    @property
    def frames(self) -> int:
        """How many frames (pages) the file holds; 1 for a still image."""
        return self.header.get("n-pages") if "n-pages" in self.header.get_fields() else 1

    @property
    def animated(self) -> bool:
        """True for an animation: a GIF or WebP of more than one frame."""
        return self.frames > 1 and self.format in ANIMATED_FORMATS

    def with_every_frame(self) -> "Source":
        """This source, but :meth:`load` and :meth:`thumbnail` return every frame of its animation,
        stacked in libvips' page-height layout (:mod:`pixline.engine.frames`) with ``delay`` and
        ``loop``. A still image is returned as it is."""
        if not self.animated or self.every_frame:
            return self
        return Source(self.data, self.name, self.limits, every_frame=True,
                      display_size=self.display_size)

    def _frame_options(self) -> dict[str, Any]:
        return {"n": -1} if self.every_frame else {}

    def describe(self) -> dict[str, Any]:
        """What is learned at upload: format, displayed size, bytes, alpha, frames."""
        width, height = self.size
        return {
            "format": self.format,
            "width": width,
            "height": height,
            "bytes": len(self.data),
            "has_alpha": self.has_alpha,
            "frames": self.frames,
        }

    def verify(self, deadline: Deadline | None = None) -> None:
        """Decode the whole image once, so truncated or corrupt data fails now, not later.

        Uploads call this before storing an original: a header can be intact while the data is cut
        short, and libvips only notices when it reads the missing rows. A JPEG is decoded at an eighth
        of its size (libjpeg's own shrink-on-load). The decode is watched by ``deadline``: past it
        libvips is told to stop at its next tile, and the image is refused as too costly to decode
        (:class:`ImageTooLargeError`).
        """
        deadline = deadline or Deadline()
        with self.checking(deadline):
            options: dict[str, Any] = {"shrink": 8} if self.format == "jpeg" else {}
            image = pyvips.Image.new_from_buffer(self.data, "", access="sequential", fail_on=FAIL_ON,
                                                 **options)
            # avg() reads every pixel and reports progress on the watched image as it goes.
            deadline.watch(image).avg()

    @contextmanager
    def checking(self, deadline: Deadline) -> Iterator[None]:
        """Around a decode that checks this source whole (an upload's): ``deadline`` is checked first;
        past it, or when libvips was stopped by it, :class:`ImageTooLargeError` (too costly to
        decode); any other libvips failure is :class:`UndecodableImageError`."""
        try:
            deadline.check("before decoding")
            yield
        except pyvips.Error as err:
            if deadline.killed:
                raise self._too_costly(deadline) from None
            raise UndecodableImageError(f"{self.name}: cannot decode image: {_detail(err)}") from None
        except RenderTimeoutError:
            raise self._too_costly(deadline) from None

    def _too_costly(self, deadline: Deadline) -> ImageTooLargeError:
        return ImageTooLargeError(f"{self.name}: decoding took longer than {deadline.seconds:g} s and was "
                                  "stopped: the image costs too much to decode")

    def load(self) -> pyvips.Image:
        """The whole image at full size, normalised (upright, 8-bit sRGB, see engine/normalise.py)."""
        self.header  # checks type and limits first
        try:
            image = pyvips.Image.new_from_buffer(self.data, "", fail_on=FAIL_ON, **self._frame_options())
            return normalise(frames.per_frame(image, pyvips.Image.autorot))
        except pyvips.Error as err:
            raise UndecodableImageError(f"{self.name}: cannot decode image: {_detail(err)}") from None

    def thumbnail(self, width: int, **options: Any) -> pyvips.Image:
        """libvips' shrink-on-load thumbnail of the source, normalised (upright, 8-bit sRGB).

        ``options`` as libvips' ``thumbnail``. An embedded ICC profile is applied here, on the small
        image (libvips only converts when given an output profile; CMYK it always converts).

        A JPEG is decoded with the largest DCT scaling (1/2, 1/4, 1/8) that still leaves at least the
        target size, as Pillow's ``draft`` does; libvips' own ``thumbnail`` stops one factor short (it
        keeps a 2× margin for its final resize), decoding up to four times the pixels for a difference
        in the output of about 45 dB PSNR (tests/engine/test_source.py holds it to a tolerance).
        """
        if self.header.get_typeof("icc-profile-data") != 0:
            options.setdefault("output_profile", "srgb")
        elif self.header.interpretation == "cmyk":
            # Without a pair of profiles libvips converts CMYK to sRGB at full size, before it
            # shrinks: 2.6 s of CPU for a 49 MP CMYK TIFF, against 0.35 s when it shrinks first.
            options.setdefault("input_profile", "cmyk")
            options.setdefault("output_profile", "srgb")
        load = f"fail_on={FAIL_ON}" + (",n=-1" if self.every_frame else "")
        try:
            shrink = self.load_shrink(width, options.get("height"), options.get("size", "both"),
                                      options.get("crop", "none") != "none")
            if shrink > 1:
                # Pillow's draft decode when it can (engine/jpegdraft.py: a fifth less CPU per
                # miss), libvips' own otherwise.
                image = (jpegdraft.decode(self.data, shrink, self.header.width * self.header.height)
                         if not self.every_frame else None)
                if image is None:
                    image = pyvips.Image.jpegload_buffer(self.data, shrink=shrink, access="sequential",
                                                         fail_on=FAIL_ON)
                image = image.thumbnail_image(width, **options)
            else:
                image = pyvips.Image.thumbnail_buffer(self.data, width, option_string=load, **options)
            return normalise(image, colour_managed=True)
        except pyvips.Error as err:
            raise UndecodableImageError(f"{self.name}: cannot decode image: {_detail(err)}") from None

    def load_shrink(self, width: int, height: int | None = None, size: str = "both",
                    crop: bool = False) -> int:
        """The JPEG shrink-on-load factor (1, 2, 4 or 8) for a thumbnail into ``width``×``height``.

        The largest factor that decodes at least the size the thumbnail ends at, computed as libvips'
        ``thumbnail`` computes its scale (``height`` defaults to ``width``; ``size`` and ``crop`` as
        there). 1 for every other format: libvips' own shrink-on-load serves them.
        """
        if self.format != "jpeg" or size == "up":
            return 1
        box_w, box_h = width, height or width
        src_w, src_h = self.pixel_size
        h_shrink, v_shrink = src_w / box_w, src_h / box_h
        if size != "force":
            fit = min(h_shrink, v_shrink) if crop else max(h_shrink, v_shrink)
            h_shrink = v_shrink = fit
        least = min(h_shrink, v_shrink)
        # libvips' JPEG shrink rounds each side down: the decode must still hold every output pixel
        # of both sides as libvips' thumbnail rounds them (rint), or the output loses a row.
        out_w, out_h = int(src_w / h_shrink + 0.5), int(src_h / v_shrink + 0.5)
        return next((factor for factor in (8, 4, 2)
                     if factor <= least and src_w // factor >= out_w and src_h // factor >= out_h), 1)

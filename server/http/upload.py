"""Reading an upload: the body within its byte limit (raw or multipart), owner fields, a safe image.

Order matters for safety: the byte limit is checked from ``Content-Length`` before anything is read
(and counted while reading when the body is chunked); the type and the pixel, frame, band, sample and
JPEG scan limits come from the image header and bytes before any pixel is decoded, the metadata
limits (text, EXIF, XMP and ICC chunks: engine/metadata.py) from the bytes before libvips reads them
(from the header for the formats not walked); only then is a small thumbnail decoded, within the
render time limit, which makes libvips read the whole file and notice truncation, so a broken
original is never stored. That thumbnail must also become a web image
(at most RGB and alpha): what cannot render is refused now, not in every later job.
"""
from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import falcon
from falcon.media import MultipartFormHandler

from pixline.engine import reduced
from pixline.engine.deadline import Deadline
from pixline.engine.errors import ImageTooLargeError, ParameterError, UnsupportedFormatError, quote
from pixline.engine.normalise import converted_bands
from pixline.engine.source import Limits, Source

from .errors import LengthRequiredError

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
#: Room for multipart boundaries, part headers and owner fields on top of the image's byte limit.
MULTIPART_OVERHEAD = 64 * 1024
#: Owner fields (``?owner=ana`` or multipart text fields) kept in ``meta["fields"]`` for templates.
FIELD_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")  # matched whole (fullmatch): no trailing newline
MAX_FIELDS = 16
MAX_FIELD_CHARS = 256
#: A multipart part with one of these names, or else the first part with a file name, is the image.
IMAGE_PART_NAMES = ("file", "image")


class LimitedReader:
    """A read-only stream that raises :class:`ImageTooLargeError` once more than ``limit`` bytes came."""

    def __init__(self, stream: BinaryIO, limit: int, what: str = "upload") -> None:
        self.stream = stream
        self.limit = limit
        self.what = what
        self.count = 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        # Never ask for more than one byte past the limit: enough to know it is exceeded.
        chunk = self.stream.read(min(size, self.limit - self.count + 1))
        self.count += len(chunk)
        if self.count > self.limit:
            raise ImageTooLargeError(f"{self.what}: body is over the limit of {self.limit} bytes")
        return chunk


@dataclass
class Upload:
    """The image bytes of a request and the owner fields that came with it."""

    data: bytes
    fields: dict[str, str] = field(default_factory=dict)


def _body(req: falcon.Request, limit: int) -> tuple[LimitedReader, int | None]:
    length = req.content_length  # falcon answers 400 itself for a malformed header
    if length is not None:
        if length > limit:
            raise ImageTooLargeError(
                f"upload: Content-Length {length} is over the limit of {limit} bytes")
        return LimitedReader(req.bounded_stream, limit), length
    if req.env.get("wsgi.input_terminated"):
        # A chunked body: the server (gunicorn) ends the stream; we count while reading.
        return LimitedReader(req.stream, limit), None
    raise LengthRequiredError("upload: send Content-Length or a chunked body")


def media_type(content_type: str | None) -> str:
    """``multipart/form-data`` of ``multipart/form-data; boundary=…``: the type without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def body_limit(content_type: str | None, max_bytes: int) -> int:
    """The byte limit of an upload's body: the image's own, plus room for a form's boundaries and
    fields when the body is multipart. The front checks it before reading, the reader while reading."""
    if media_type(content_type) == "multipart/form-data":
        return max_bytes + MULTIPART_OVERHEAD
    return max_bytes


def add_field(fields: dict[str, str], name: str, value: Any) -> None:
    """Check and keep one owner field; a bad name, a long value or too many fields are a 400."""
    if not FIELD_NAME_RE.fullmatch(name):
        raise ParameterError(f"field name {quote(name)} is not valid: use 1-32 lower-case letters, digits, '_'")
    if not isinstance(value, str):
        raise ParameterError(f"field {quote(name)} is given more than once")
    if len(value) > MAX_FIELD_CHARS or any(ord(c) < 32 for c in value):
        raise ParameterError(f"field {quote(name)}: at most {MAX_FIELD_CHARS} printable characters")
    if name in fields:
        raise ParameterError(f"field {quote(name)} is given more than once")
    if len(fields) >= MAX_FIELDS:
        raise ParameterError(f"at most {MAX_FIELDS} fields per upload")
    fields[name] = value


def read_upload(req: falcon.Request, max_bytes: int) -> Upload:
    """The image and owner fields of ``POST /images`` (raw body or ``multipart/form-data``)."""
    fields: dict[str, str] = {}
    for name, value in req.params.items():
        add_field(fields, name, value)
    if media_type(req.content_type) == "multipart/form-data":
        data = _read_multipart(req, max_bytes, fields)
    else:
        reader, _ = _body(req, body_limit(req.content_type, max_bytes))
        data = reader.read()
    if not data:
        raise ParameterError("no image in the request: send the image as the body or a multipart 'file'")
    return Upload(data, fields)


def _read_multipart(req: falcon.Request, max_bytes: int, fields: dict[str, str]) -> bytes:
    reader, length = _body(req, body_limit(req.content_type, max_bytes))
    # falcon's parser needs a length bound; for a chunked body the reader's own limit is the bound.
    form = MultipartFormHandler().deserialize(reader, req.content_type, length or reader.limit + 1)
    image: bytes | None = None
    for part in form:
        is_image = part.name in IMAGE_PART_NAMES or bool(part.filename)
        if is_image:
            if image is not None:
                raise ParameterError("one image per upload: the form has more than one file")
            image = LimitedReader(part.stream, max_bytes, f"upload part {quote(part.name)}").read()
        else:
            add_field(fields, part.name or "", part.get_text() or "")
    if image is None:
        raise ParameterError("the form has no image: send it as a part named 'file'")
    return image


def inspect_image(data: bytes, limits: Limits, deadline: Deadline | None = None,
                  reduced_size: int = 0, reduced_small_size: int = 0
                  ) -> tuple[dict[str, Any], reduced.Copies]:
    """What the original is (by content, never by name or Content-Type) and the reduced copies it
    gets (engine/reduced.py; bytes by store key suffix, the smallest one's pixels kept for the
    analysers), or the error that rejects it.

    The header gives type and the input limits without decoding; then the whole file is decoded once
    within ``deadline`` (past it the upload is refused as too costly to decode), which is where a
    truncated file is noticed: a JPEG that gets a reduced copy (longer than ``reduced_size`` or
    ``reduced_small_size``) is decoded for its first copy, which reads all of it (libjpeg refuses a
    truncated file either way); anything else is decoded small first (``Source.verify``) and, if it
    gets a copy, again for it (a GIF, PNG or TIFF has no shrink-on-load, and some loaders could make
    a thumbnail without reading every pixel).
    """
    source = Source(data, name="upload", limits=limits)
    meta = source.describe()
    check_renderable(source)
    sizes = [(reduced.LARGE, reduced_size), (reduced.SMALL, reduced_small_size)]
    if not (source.format == "jpeg" and any(reduced.needs_copy(source, size) for _, size in sizes)):
        source.verify(deadline)
    made = reduced.make_copies(source, sizes, deadline)
    copies = reduced.Copies(pixels=made.pixels)
    for level, (copy_data, copy_meta) in made.items():
        meta[level.meta_key] = copy_meta
        copies[level.key_suffix] = copy_data
    return meta, copies


def check_renderable(source: Source) -> None:
    """Refuse an image that does not become grey or RGB, with at most one alpha band.

    A TIFF may carry any extra bands (five grey samples, RGB plus two): normalising to sRGB would
    silently drop them, so what the recipes show would not be the image that was sent. Known from the
    header (:func:`~pixline.engine.normalise.converted_bands`), before anything is decoded.
    """
    header = source.header
    if converted_bands(header) > 4:
        raise UnsupportedFormatError(
            f"{source.name}: {header.bands} bands ({header.interpretation}) that do not make a web "
            "image: pixline takes grey, RGB or CMYK images with at most one alpha band")


def original_meta(image_id: str, described: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """The stored ``meta/<id>.json``: Source.describe() plus the id, owner fields and upload time."""
    return {
        **described,
        "id": image_id,
        "fields": dict(fields),
        # Milliseconds: the gallery orders uploads by it, and several come in one second.
        "uploaded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
    }

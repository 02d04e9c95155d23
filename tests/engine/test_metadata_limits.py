"""The metadata limits (engine/metadata.py): text, EXIF, XMP and ICC chunks and segments, counted and
measured from the bytes before libvips reads them (PNG, JPEG, WebP), from the header for the formats
that are not walked (TIFF, AVIF); real photos and their profiles pass, and the reduced copies carry
none of it. Generated files only (tests/hostile/metadata_corpus.py)."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest
import pyvips

from pixline.engine import ImageTooLargeError, Limits, Source, metadata, testing
from pixline.engine.deadline import Deadline
from pixline.engine.jpegscans import count_scans
from pixline.server.http.upload import inspect_image
from tests.hostile import metadata_corpus as mc
from tests.hostile.metadata_corpus import MB

LIMIT = Limits().max_metadata_bytes
SHARED_PHOTOS = Path("/work/shared/photos")


def refused_from_the_bytes(data: bytes, monkeypatch: pytest.MonkeyPatch, **limits: Any) -> str:
    """The message of the error ``Source.header`` raises, with libvips' loaders made to fail the test:
    the refusal comes from the walk of the bytes, before libvips parses any of them."""
    def never(*args: Any, **kwargs: Any) -> None:
        pytest.fail("libvips was given the bytes")

    for name in ("new_from_buffer", "thumbnail_buffer", "jpegload_buffer"):
        monkeypatch.setattr(pyvips.Image, name, never)
    with pytest.raises(ImageTooLargeError) as err:
        Source(data, name="bomb", limits=Limits(**limits)).header
    return str(err.value)


def refused_from_the_header(data: bytes, monkeypatch: pytest.MonkeyPatch) -> str:
    """The message of the error ``Source.header`` raises, with every pixel decode failing the test."""
    for method in ("load", "thumbnail", "verify"):
        monkeypatch.setattr(Source, method, lambda *a, **k: pytest.fail("decoded pixels"))
    with pytest.raises(ImageTooLargeError) as err:
        Source(data, name="bomb").header
    return str(err.value)


def test_the_ztxt_flood_of_the_issue_is_refused_from_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # 490 zTXt chunks of 100 KB, 50 MB: 5.3 s of CPU to upload and 4.3 s a thumbnail, 2.4 GB.
    flood = mc.ztxt_flood()
    assert len(flood) > 45 * MB
    message = refused_from_the_bytes(flood, monkeypatch)
    assert message == (f"bomb: a PNG whose metadata chunks (tEXt, zTXt, iTXt, iCCP, eXIf) hold more than "
                       f"{LIMIT} bytes once decompressed, over the limit of {LIMIT} bytes of metadata")


@pytest.mark.parametrize("make", [mc.ztxt_bomb, mc.itxt_bomb, mc.iccp_bomb, mc.png_xmp],
                         ids=["ztxt-512MB", "itxt-512MB", "iccp-64MB", "libvips-xmp-20MB"])
def test_a_compressed_chunk_is_measured_decompressed_and_only_up_to_the_limit(
        make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = make()
    assert len(bomb) < MB
    inflated = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self) -> None:
            self.inner = real()

        def decompress(self, data: Any, max_length: int = 0) -> bytes:
            out = self.inner.decompress(data, max_length)
            inflated.append(len(out))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(metadata.zlib, "decompressobj", Counting)
    assert "hold more than 8388608 bytes once decompressed" in refused_from_the_bytes(bomb, monkeypatch)
    # The check's own cost is bounded: it inflates the limit and one byte (less what other chunks
    # hold), never the bomb, and never more than a step at once.
    assert LIMIT - 4096 < sum(inflated) <= LIMIT + 1 and max(inflated) <= metadata.INFLATE_STEP


@pytest.mark.parametrize("kind", [b"tEXt", b"iTXt"])
def test_many_small_text_chunks_are_over_the_count(kind: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused_from_the_bytes(mc.text_flood(kind, chunks=300, size=100), monkeypatch)
    assert message == ("bomb: a PNG of more than 256 metadata chunks (tEXt, zTXt, iTXt, iCCP, eXIf), "
                       "over the limit of 256")


def test_text_after_the_image_data_counts_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # libspng reads no text after the image data when the header is read, libpng does at its end.
    chunks = [mc.ztxt(b"k%d" % i, zlib.compress(b"A" * MB)) for i in range(9)]
    assert "hold more than" in refused_from_the_bytes(mc.png_with(chunks, after_image=True), monkeypatch)


def test_the_png_limits_are_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # 256 chunks of 32 KB of text (8 MiB in all, with their keywords under the limit): taken.
    at_limit = mc.png_at_the_limits()
    found = metadata.measure(at_limit, 256, LIMIT)
    assert found is not None and found.complete
    assert (found.chunks, found.size) == (256, 256 * (32 * 1024 - 13))
    Source(at_limit).verify()
    assert "more than 255 metadata chunks" in refused_from_the_bytes(at_limit, monkeypatch,
                                                                     max_metadata_chunks=255)
    assert "hold more than 1000000 bytes" in refused_from_the_bytes(at_limit, monkeypatch,
                                                                    max_metadata_bytes=1_000_000)


def test_no_limit_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    flood = mc.text_flood(chunks=300)
    Source(flood, limits=Limits(max_metadata_chunks=None, max_metadata_bytes=None)).header
    # Nothing to learn from inflating when nothing limits the bytes: a bomb is counted as it is.
    monkeypatch.setattr(metadata.zlib, "decompressobj", lambda: pytest.fail("inflated"))
    found = metadata.measure(mc.ztxt_bomb(), None, None)
    assert found is not None and found.size < mc.MB


def test_jpeg_segments_are_counted_by_the_scan_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    # 700 APP1 segments of 65 KB (45 MB): libjpeg copies each one at every header read.
    message = refused_from_the_bytes(mc.jpeg_with_segments(700, 65_000), monkeypatch)
    assert message == "bomb: a JPEG of 700 metadata segments (APP0-APP15, COM), over the limit of 256"
    comments = mc.jpeg_with_segments(300, 10, marker=0xFE)
    assert "a JPEG of 300 metadata segments" in refused_from_the_bytes(comments, monkeypatch)
    # Under the count, over the bytes: 200 segments of 60 KB, 12 MB.
    message = refused_from_the_bytes(mc.jpeg_with_segments(200, 60_000), monkeypatch)
    assert message == (f"bomb: a JPEG whose metadata segments (APP0-APP15, COM) hold 12000400 bytes, over "
                       f"the limit of {LIMIT} bytes of metadata")


def test_the_jpeg_walk_counts_the_metadata_segments_and_their_lengths() -> None:
    walk = count_scans(mc.jpeg_with_segments(3, 1000))
    # libvips' own JPEG has none (keep="none"), then three of 1000 bytes and a 2-byte length each.
    assert (walk.metadata, walk.metadata_bytes, walk.scans) == (3, 3006, 1)
    photo = count_scans(testing.photo("Wood.jpg").read_bytes())
    assert photo.metadata == 1 and 64_000 < photo.metadata_bytes < 65_536  # one EXIF APP1


def test_webp_metadata_chunks_are_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    big = mc.webp_with(exif=b"Exif\0\0II*\0" + bytes(5 * MB), xmp_data=mc.xmp(5 * MB))
    message = refused_from_the_bytes(big, monkeypatch)
    assert message == (f"bomb: a WebP whose metadata chunks (ICCP, EXIF, XMP) hold more than {LIMIT} "
                       f"bytes, over the limit of {LIMIT} bytes of metadata")
    many = mc.webp_with(exif=b"Exif\0\0II*\0\0\0\0\0", copies=300)
    assert "a WebP of more than 256 metadata chunks" in refused_from_the_bytes(many, monkeypatch)


def test_a_png_of_endless_chunks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Empty chunks cost libspng nothing, but the walk runs in Python.
    endless = mc.png_with([mc.png_chunk(b"pAdd", b"")] * metadata.MAX_CHUNKS)
    message = refused_from_the_bytes(endless, monkeypatch)
    assert message == f"bomb: a PNG of more than {metadata.MAX_CHUNKS} chunks"
    # Exactly that many, IHDR, IDAT and IEND included, is still a PNG.
    own = metadata.measure(mc.png_with([]), None, None)
    assert own is not None and own.complete
    at_most = mc.png_with([mc.png_chunk(b"pAdd", b"")] * (metadata.MAX_CHUNKS - own.walked))
    found = metadata.measure(at_most, None, None)
    assert found is not None and found.walked == metadata.MAX_CHUNKS
    metadata.check(found, "at-most", 256, LIMIT)


@pytest.mark.parametrize("make", [mc.tiff_xmp, mc.avif_xmp], ids=["tiff", "avif"])
def test_tiff_and_avif_metadata_is_bounded_from_the_header(make: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused_from_the_header(make(), monkeypatch)
    assert message.startswith("bomb: 2097") and message.endswith(
        f"bytes of metadata (the largest: xmp-data), over the limit of {LIMIT} bytes")


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\0\0\0\x20zTXt", b"\x89PNG\r\n\x1a\n",
                                  mc.png_with([mc.png_chunk(b"zTXt", b"k\0\0not zlib")]),
                                  mc.png_with([mc.png_chunk(b"iTXt", b"k\0\1\0no ends")]),
                                  mc.png_with([mc.png_chunk(b"zTXt", b"no keyword end")]),
                                  b"RIFF\xff\xff\xff\xffWEBPEXIF\xff\xff\xff\xff"],
                         ids=["cut-chunk", "signature-only", "bad-zlib", "itxt-no-ends", "no-keyword",
                              "riff-lies"])
def test_malformed_containers_end_the_walk_quietly(data: bytes) -> None:
    found = metadata.measure(data, 256, LIMIT)
    assert found is not None and found.size <= len(data)


# -- what passes ---------------------------------------------------------------------------------

def real_photos() -> list[Path]:
    return sorted(testing.photo().parent.glob("*.jpg")) + sorted(SHARED_PHOTOS.glob("*.jpg"))


@pytest.mark.parametrize("path", real_photos(), ids=lambda p: p.name)
def test_real_photos_pass(path: Path) -> None:
    source = Source(path.read_bytes())
    source.header
    assert source._metadata is not None and 1 <= source._metadata.chunks <= 5


def with_camera_metadata(image: pyvips.Image) -> pyvips.Image:
    """``image`` with a real camera's 64 KB EXIF (Wood.jpg's), a 1 MB XMP packet and a Display P3
    profile, as a photo editor would leave them."""
    exif = pyvips.Image.new_from_file(str(testing.photo("Wood.jpg"))).get("exif-data")
    image = mc.with_blob(image.icc_transform("p3"), "exif-data", exif)
    return mc.with_blob(image, "xmp-data", mc.xmp(MB))


@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "tiff"])
def test_an_image_with_exif_xmp_and_an_icc_profile_passes(fmt: str) -> None:
    image = with_camera_metadata(testing.gradient(640, 480))
    save = {"avif": {"compression": "av1", "effort": 0}}.get(fmt, {})
    data = getattr(image, f"{'heif' if fmt == 'avif' else fmt}save_buffer")(**save)
    source = Source(data)
    assert source.header.get_typeof("xmp-data") != 0 and source.header.get_typeof("icc-profile-data") != 0
    source.verify()


def test_a_jpeg_and_a_tiff_with_a_1_mb_cmyk_profile_pass() -> None:
    jpeg = testing.cmyk_jpeg_bytes(profile=True)  # libvips' CMYK profile, 961 KB: 15 APP2 segments
    assert count_scans(jpeg).metadata >= 15
    Source(jpeg).verify()
    cmyk = testing.gradient(320, 240).icc_transform("cmyk")
    Source(cmyk.tiffsave_buffer()).verify()


def test_the_reduced_copies_carry_no_metadata() -> None:
    # An accepted original's metadata is within the limits, and a render from a copy reads none of it.
    image = with_camera_metadata(testing.gradient(1600, 1200))
    image.set_type(pyvips.GValue.gstr_type, "png-comment-0-note", "t" * 100_000)
    for data in (image.pngsave_buffer(), image.jpegsave_buffer()):
        _, copies = inspect_image(data, Limits(), Deadline(30), reduced_size=1024, reduced_small_size=512)
        assert len(copies) == 2
        for copy in copies.values():
            header = pyvips.Image.new_from_buffer(copy, "")
            assert metadata.header_bytes(header)[0] < 100, header.get_fields()
            assert count_scans(copy).metadata == 0

"""Decode-cost limits inside the pixel limit: bands, sample formats, JPEG scans, the check decode's time
budget, and CMYK shrunk before it is converted. Generated files only (tests/hostile/corpus.py)."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import (Deadline, ImageTooLargeError, Limits, Source, UnsupportedFormatError,
                            testing)
from pixline.engine.jpegscans import MAX_SEGMENTS, count_scans
from tests.hostile import corpus
from tests.hostile.corpus import TiffSpec


def refused_before_decoding(data: bytes, monkeypatch: pytest.MonkeyPatch, **limits: int) -> Exception:
    """The error ``Source.header`` raises, with every pixel-decoding path made to fail the test."""
    for method in ("load", "thumbnail"):
        monkeypatch.setattr(Source, method, lambda *a, **k: pytest.fail("decoded pixels"))
    with pytest.raises((ImageTooLargeError, UnsupportedFormatError)) as err:
        Source(data, name="bomb", limits=Limits(**limits)).header
    return err.value


@pytest.mark.parametrize("bits, fmt", [(32, "float"), (8, "uint")])
def test_many_bands_are_refused_from_the_header(monkeypatch: pytest.MonkeyPatch, bits: int, fmt: str) -> None:
    # 7000×7000, 16 bands, 8-10 KB: the float one took 7 s and 1.8 GB to check at upload.
    error = refused_before_decoding(corpus.tiff(TiffSpec(7000, 7000, 16, bits, fmt)), monkeypatch)
    assert isinstance(error, ImageTooLargeError)
    assert str(error) == "bomb: 16 bands, over the limit of 5 (a photo has at most CMYK and alpha)"


def test_the_band_limit_is_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    four = corpus.tiff(TiffSpec(64, 48, 4, photometric="rgb"))
    Source(four, limits=Limits(max_bands=4)).header
    assert "4 bands, over the limit of 3" in str(refused_before_decoding(four, monkeypatch, max_bands=3))


def test_floating_point_samples_are_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused_before_decoding(corpus.tiff(TiffSpec(7000, 7000, 1, 32, "float")), monkeypatch)
    assert isinstance(error, UnsupportedFormatError) and "float samples" in str(error)


def test_32_bit_samples_are_over_the_sample_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused_before_decoding(corpus.tiff(TiffSpec(4000, 4000, 1, 32)), monkeypatch)
    assert isinstance(error, ImageTooLargeError)
    assert str(error) == "bomb: 32-bit samples, over the limit of 16 bits"


def test_16_bit_and_cmyk_alpha_images_are_taken() -> None:
    for spec in (TiffSpec(64, 48, 4, 16, photometric="rgb"), TiffSpec(64, 48, 5, photometric="cmyk")):
        Source(corpus.tiff(spec)).verify()
    Source(testing.rgb16_png_bytes()).verify()


def test_a_progressive_jpeg_of_too_many_scans_is_refused_before_decoding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 4000×4000, 300 repeats of a 35-byte scan: 18 s of a render slot at upload.
    error = refused_before_decoding(corpus.progressive_scan_flood(4000, 4000, 300), monkeypatch)
    assert str(error) == ("bomb: a progressive JPEG of more than 100 scans, over the limit (each scan "
                          "is decoded over the whole image)")


def test_the_scan_limit_is_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    ten = testing.jpeg_bytes(interlace=True)  # libjpeg's standard progression: 10 scans
    assert count_scans(ten).scans == 10
    Source(ten, limits=Limits(max_scans=10)).header
    assert "more than 9 scans" in str(refused_before_decoding(ten, monkeypatch, max_scans=9))


def test_scans_are_counted_from_the_structure_not_from_stray_bytes() -> None:
    # An EXIF thumbnail is a JPEG with a scan of its own, inside an APP1 segment: not counted.
    photo = testing.photo().read_bytes()
    assert photo.count(b"\xff\xda") > count_scans(photo).scans == 1
    # The walk stops at the limit it is given, and gives up quietly on what is not a JPEG.
    assert count_scans(corpus.progressive_scan_flood(640, 480, 500), stop_after=100).scans == 101
    assert count_scans(b"not a jpeg") == count_scans(b"\xff\xd8\xff") == count_scans(b"")


def test_a_jpeg_of_endless_marker_segments_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Comment segments cost libjpeg nothing, but the scan count walks them in Python.
    jpeg = testing.jpeg_bytes(testing.gradient(32, 32))
    comments = b"\xff\xfe\x00\x03x" * MAX_SEGMENTS
    error = refused_before_decoding(jpeg[:2] + comments + jpeg[2:], monkeypatch)
    assert f"more than {MAX_SEGMENTS} marker segments" in str(error)


def test_the_check_decode_stops_past_its_deadline() -> None:
    clock = testing.FakeClock()
    deadline = Deadline(1, clock)
    clock.advance(2)
    with pytest.raises(ImageTooLargeError, match="decoding took longer than 1 s and was stopped"):
        Source(testing.jpeg_bytes(), name="upload").verify(deadline)


def test_a_long_check_decode_is_killed_by_libvips() -> None:
    # Expires during the decode, after its checks passed: libvips is told to stop at its next tile.
    large = corpus.tiff(TiffSpec(7000, 7000, 4, 16, photometric="rgb"))
    deadline = Deadline(30, testing.FakeClock(expire_after=3))
    with pytest.raises(ImageTooLargeError, match="costs too much to decode"):
        Source(large, name="upload").verify(deadline)
    assert deadline.killed


def test_cmyk_is_shrunk_before_it_is_converted_with_the_same_colours() -> None:
    # libvips converted CMYK to sRGB at full size before shrinking: 2.6 s for a 49 MP TIFF.
    data = testing.cmyk_jpeg_bytes(640, 480)
    ours = Source(data).thumbnail(320)
    converted_first = pyvips.Image.thumbnail_buffer(data, 320)
    assert ours.interpretation == "srgb" and ours.bands == 3
    assert testing.mean_abs_diff(ours, converted_first) < 1.5

from __future__ import annotations

import pytest
import pyvips

from pixline.engine import (ImageTooLargeError, Limits, Source, UndecodableImageError,
                            UnsupportedFormatError)
from pixline.engine import testing


def test_formats_are_decided_by_content():
    image = testing.gradient(64, 48)
    cases = {
        "jpeg": image.jpegsave_buffer(), "png": image.pngsave_buffer(), "webp": image.webpsave_buffer(),
        "avif": image.heifsave_buffer(compression="av1", effort=0), "gif": image.gifsave_buffer(),
        "tiff": image.tiffsave_buffer(),
    }
    for fmt, data in cases.items():
        assert Source(data, name=f"x.{fmt}").format == fmt


@pytest.mark.parametrize("data", [
    b"hello, I am text named photo.jpg",
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    b"P3\n2 2\n255\n0 0 0 255 255 255 0 0 0 255 255 255\n",  # PPM: libvips reads it, we do not take it
    b"",
])
def test_unsupported_types_are_refused_with_the_name(data):
    with pytest.raises(UnsupportedFormatError, match=r"^upload.jpg: "):
        Source(data, name="upload.jpg").header


def test_truncated_jpeg_fails_instead_of_coming_out_grey(photo_bytes):
    truncated = photo_bytes[: len(photo_bytes) // 2]
    source = Source(truncated, name="half.jpg")
    assert source.format == "jpeg"  # the header is intact: libvips notices only when rows are read
    with pytest.raises(UndecodableImageError, match="half.jpg: cannot decode image"):
        source.verify()
    Source(photo_bytes).verify()  # the whole file passes


def test_pixel_flood_is_refused_from_the_header():
    with pytest.raises(ImageTooLargeError, match="100000×100000 is 10000000000 pixels"):
        Source(testing.pixel_flood_png(), name="bomb.png").header


def test_byte_and_frame_limits():
    data = testing.jpeg_bytes()
    with pytest.raises(ImageTooLargeError, match="over the limit of 100 bytes"):
        Source(data, limits=Limits(max_bytes=100)).header
    card = testing.gradient(32, 32)
    frames = pyvips.Image.arrayjoin([card, card.invert(), card], across=1).copy()  # GIF merges equal frames
    frames.set_type(pyvips.GValue.gint_type, "page-height", 32)
    gif = frames.gifsave_buffer()
    assert Source(gif).describe()["frames"] == 3
    with pytest.raises(ImageTooLargeError, match="3 frames, over the limit of 2"):
        Source(gif, limits=Limits(max_frames=2)).header


def test_orientation_swaps_the_displayed_size():
    source = Source(testing.jpeg_bytes(testing.gradient(64, 48), orientation=6))
    assert source.size == (48, 64)
    assert (source.load().width, source.load().height) == (48, 64)


def test_describe_reports_what_an_upload_learns(photo_bytes):
    assert Source(photo_bytes).describe() == {
        "format": "jpeg", "width": 1920, "height": 1280, "bytes": len(photo_bytes),
        "has_alpha": False, "frames": 1,
    }


def test_blocked_loaders_stay_blocked_even_when_called_directly():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    with pytest.raises(pyvips.Error):
        pyvips.Image.svgload_buffer(svg)


@pytest.mark.parametrize("name", ["Storm.jpg", "LadyBird.jpg", "Wood.jpg"])
@pytest.mark.parametrize("width", [200, 300, 333, 600, 1000])
def test_jpeg_shrink_on_load_stays_within_a_tolerance_of_libvips_thumbnail(name, width):
    """Decoding with the largest DCT scaling (as Pillow's draft does) must look like libvips' own
    thumbnail, which decodes at up to twice the size in each axis."""
    data = testing.photo(name).read_bytes()
    source = Source(data)
    height = round(width * source.size[1] / source.size[0])
    ours = source.thumbnail(width, height=height, size="force")
    reference = pyvips.Image.thumbnail_buffer(data, width, height=height, size="force")
    assert (ours.width, ours.height) == (reference.width, reference.height) == (width, height)
    assert testing.mean_abs_diff(ours, reference) < 1.5


def test_jpeg_shrink_on_load_takes_the_largest_factor_that_keeps_the_target_size():
    source = Source(testing.photo("LadyBird.jpg").read_bytes())  # 2560×1600
    assert source.load_shrink(320, 200, "force") == 8      # libvips' thumbnail would take 4
    assert source.load_shrink(321, 200, "force") == 4
    assert source.load_shrink(300, 300) == 8                # fit inside a box: the width decides
    assert source.load_shrink(300, 300, crop=True) == 4     # cover: the height decides (1600/300)
    assert source.load_shrink(1300, 1300) == 1
    assert source.load_shrink(300, 300, "up") == 1
    assert Source(testing.png_bytes()).load_shrink(10) == 1  # other formats: libvips' own


def test_shrink_on_load_keeps_exif_orientation():
    data = testing.jpeg_bytes(testing.gradient(640, 480), orientation=6)  # displayed 480×640
    source = Source(data)
    assert source.load_shrink(60, 80, "force") == 8
    ours = source.thumbnail(60, height=80, size="force")
    reference = pyvips.Image.thumbnail_buffer(data, 60, height=80, size="force")
    assert (ours.width, ours.height) == (60, 80)
    assert testing.mean_abs_diff(ours, reference) < 1.5


def test_bytes_no_loader_takes_are_unsupported_even_when_libvips_error_text_is_gone(monkeypatch):
    """libvips' error buffer is one per process: another thread's error handling may clear it before
    this thread reads it. The classification must not depend on its text."""
    def no_loader(*args, **kwargs):
        raise pyvips.Error("unable to load from buffer", "")

    monkeypatch.setattr(pyvips.Image, "new_from_buffer", no_loader)
    with pytest.raises(UnsupportedFormatError):
        Source(b"plain text named photo.jpg").header

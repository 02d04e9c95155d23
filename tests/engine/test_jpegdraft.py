"""Pillow's draft decode (engine/jpegdraft.py) against libvips' own decode at the same DCT scale: the
same size, the same orientation and colours, pixels within a tolerance; what it should not take, it
leaves to libvips."""
from __future__ import annotations

import pyvips
import pytest

from pixline.engine import jpegdraft, testing
from pixline.engine.source import Source

#: Mean absolute difference (0-255 levels, over every band) allowed between the two decodes. On the
#: repository's photos it is 0 (both are libjpeg at the same scale); the margin is for other builds.
TOLERANCE = 1.5


def _both(data: bytes, width: int, height: int, shrink: int) -> tuple[pyvips.Image, pyvips.Image]:
    draft = jpegdraft.decode(data, shrink)
    assert draft is not None, "Pillow should have decoded this JPEG"
    libvips = pyvips.Image.jpegload_buffer(data, shrink=shrink)
    options = {"height": height, "size": "force"}
    if libvips.get_typeof("icc-profile-data") != 0:
        options["output_profile"] = "srgb"
    return (draft.thumbnail_image(width, **options).copy_memory(),
            libvips.thumbnail_image(width, **options).copy_memory())


@pytest.mark.parametrize("name", ["Storm.jpg", "LadyBird.jpg", "Wood.jpg"])
@pytest.mark.parametrize("shrink", [2, 4, 8])
def test_draft_decode_matches_libvips_at_the_same_scale(name, shrink):
    data = testing.photo(name).read_bytes()
    reference = pyvips.Image.jpegload_buffer(data, shrink=shrink)
    draft = jpegdraft.decode(data, shrink)
    assert (draft.width, draft.height, draft.bands) == (reference.width, reference.height, 3)
    assert testing.mean_abs_diff(draft, reference) < TOLERANCE
    ours, theirs = _both(data, 300, round(300 * reference.height / reference.width), shrink)
    assert testing.mean_abs_diff(ours, theirs) < TOLERANCE


def test_orientation_travels_with_the_pixels():
    data = testing.sample_inputs(640, 480)["rotated"]  # stored sideways, EXIF orientation 6
    ours, theirs = _both(data, 60, 80, 4)
    assert (ours.width, ours.height) == (theirs.width, theirs.height) == (60, 80)
    assert testing.mean_abs_diff(ours, theirs) < TOLERANCE


def test_an_embedded_profile_is_applied_as_libvips_applies_it():
    data = testing.sample_inputs(640, 480)["p3-profile"]
    draft = jpegdraft.decode(data, 4)
    assert draft.get_typeof("icc-profile-data") != 0
    ours, theirs = _both(data, 160, 120, 4)
    assert testing.mean_abs_diff(ours, theirs) < TOLERANCE
    # and not as if the pixels were sRGB already (the profile made a visible difference)
    plain = draft.copy()
    plain.remove("icc-profile-data")
    assert testing.mean_abs_diff(plain.thumbnail_image(160, height=120, size="force"), theirs) > 1


def test_grey_jpegs_stay_one_band():
    data = testing.gradient(320, 240).colourspace("b-w").jpegsave_buffer()
    draft = jpegdraft.decode(data, 2)
    assert (draft.bands, draft.interpretation) == (1, "b-w")
    assert testing.mean_abs_diff(draft, pyvips.Image.jpegload_buffer(data, shrink=2)) < TOLERANCE


@pytest.mark.parametrize("data", [testing.cmyk_jpeg_bytes(64, 48), testing.png_bytes(), b"\xff\xd8\xff junk",
                                  testing.jpeg_bytes()[:-2000]])
def test_what_pillow_should_not_decode_is_left_to_libvips(data):
    assert jpegdraft.decode(data, 2) is None


def test_only_dct_scales_are_drafted():
    assert jpegdraft.decode(testing.jpeg_bytes(), 1) is None
    assert jpegdraft.decode(testing.jpeg_bytes(), 3) is None


def test_a_cmyk_source_still_renders_through_libvips():
    source = Source(testing.cmyk_jpeg_bytes(640, 480))
    image = source.thumbnail(80, height=60, size="force")
    assert (image.width, image.height, image.bands, image.interpretation) == (80, 60, 3, "srgb")


def test_images_over_pillows_bomb_size_are_left_to_libvips(monkeypatch):
    from PIL import Image

    data = testing.jpeg_bytes()
    assert jpegdraft.decode(data, 2, pixels=640 * 480) is not None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert jpegdraft.decode(data, 2, pixels=640 * 480) is None

"""The reduced copy: made at upload for large originals, rendered from when it is enough."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import Registry, Source, UndecodableImageError, reduced, render, testing
from pixline.engine.testing import recipe

SIZE = 1024  # small copies keep the tests quick; the default is 3072


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def wood() -> bytes:
    return testing.photo("Wood.jpg").read_bytes()  # 2560×1920


def original_meta(source: Source, copy_meta: dict | None) -> dict:
    width, height = source.size
    meta = {"width": width, "height": height, "format": source.format}
    if copy_meta:
        meta[reduced.META_KEY] = copy_meta
    return meta


def test_a_large_original_gets_an_upright_srgb_baseline_jpeg_copy(wood):
    data, copy_meta = reduced.make_copy(Source(wood), SIZE)
    copy = pyvips.Image.new_from_buffer(data, "")
    assert (copy.width, copy.height) == (copy_meta["width"], copy_meta["height"]) == (1024, 768)
    assert copy.get("vips-loader") == "jpegload_buffer" and copy_meta["bytes"] == len(data)
    assert copy.get_typeof("orientation") == 0 and copy.get_typeof("icc-profile-data") == 0
    assert not copy.get("interlaced") if "interlaced" in copy.get_fields() else True


def test_small_animated_and_transparent_originals_get_no_copy(wood):
    assert reduced.make_copy(Source(wood), 2560) is None           # not larger than the copy
    assert reduced.make_copy(Source(wood), 0) is None              # copies turned off
    assert reduced.make_copy(Source(testing.png_bytes(testing.gradient(2000, 100, bands=4))), SIZE) is None
    first = testing.gradient(1200, 100)
    frames = first.join((255 - first).cast("uchar"), "vertical").copy(interpretation="srgb")
    frames.set_type(pyvips.GValue.gint_type, "page-height", 100)
    animated = Source(frames.gifsave_buffer())
    assert animated.describe()["frames"] == 2
    assert reduced.make_copy(animated, SIZE) is None


def test_making_the_copy_notices_a_truncated_original(wood):
    with pytest.raises(UndecodableImageError, match="cannot decode"):
        reduced.make_copy(Source(wood[: len(wood) // 2], name="half.jpg"), SIZE)


@pytest.mark.parametrize("steps", [
    [{"resize": {"width": 300}}, {"format": {"type": "jpeg", "quality": 90}}],
    [{"resize": {"width": 333, "height": 200, "fit": "cover"}}, {"format": {"type": "png"}}],
    [{"resize": {"width": 200, "height": 200, "fit": "cover", "gravity": "attention"}},
     {"format": {"type": "png"}}],
    [{"resize": {"width": 1000, "fit": "inside"}}, {"format": {"type": "png"}}],
])
def test_outputs_from_the_copy_match_outputs_from_the_original(registry, wood, steps):
    original = Source(wood)
    data, copy_meta = reduced.make_copy(original, SIZE)
    meta = original_meta(original, copy_meta)
    r = recipe(registry, steps)
    assert reduced.fits([r], meta)
    ours = testing.decode(render(r, reduced.copy_source(data, meta, "copy", original.limits), registry).data)
    theirs = testing.decode(render(r, original, registry).data)
    assert (ours.width, ours.height) == (theirs.width, theirs.height)
    assert testing.mean_abs_diff(ours, theirs) < 2.5


def test_a_rotated_original_renders_the_same_from_its_copy(registry):
    data = testing.jpeg_bytes(testing.gradient(1600, 1200), orientation=6, Q=95)  # displayed 1200×1600
    original = Source(data)
    copy_data, copy_meta = reduced.make_copy(original, 800)
    assert (copy_meta["width"], copy_meta["height"]) == (600, 800)
    meta = original_meta(original, copy_meta)
    r = recipe(registry, [{"resize": {"width": 150}}, {"format": {"type": "png"}}])
    ours = testing.decode(render(r, reduced.copy_source(copy_data, meta, "copy", original.limits), registry).data)
    theirs = testing.decode(render(r, original, registry).data)
    assert (ours.width, ours.height) == (theirs.width, theirs.height) == (150, 200)
    assert testing.mean_abs_diff(ours, theirs) < 2


def test_only_recipes_that_fit_within_the_copy_use_it(registry, wood):
    original = Source(wood)
    _, copy_meta = reduced.make_copy(original, SIZE)
    meta = original_meta(original, copy_meta)
    small = recipe(registry, [{"resize": {"width": 500}}])
    assert reduced.fits([small], meta)
    assert not reduced.fits([small, recipe(registry, [{"resize": {"width": 1500}}])], meta)
    assert not reduced.fits([recipe(registry, [{"resize": {"width": 500}}], keep_metadata=True)], meta)
    assert not reduced.fits([recipe(registry, [{"crop": {"width": 100, "height": 100}}])], meta)
    assert not reduced.fits([small], original_meta(original, None))  # no copy

"""The reduced copy: made at upload for large originals, rendered from when it is enough."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import Registry, Source, UndecodableImageError, reduced, render, testing
from pixline.engine.testing import recipe

SIZE = 1024  # small copies keep the tests quick; the default is 3072


def make_copy(source: Source, size: int) -> tuple[bytes, dict] | None:
    """The large copy alone, or None when the source gets none."""
    return reduced.make_copies(source, [(reduced.LARGE, size)]).get(reduced.LARGE)


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
        meta[reduced.LARGE.meta_key] = copy_meta
    return meta


def test_a_large_original_gets_an_upright_srgb_baseline_jpeg_copy(wood):
    data, copy_meta = make_copy(Source(wood), SIZE)
    copy = pyvips.Image.new_from_buffer(data, "")
    assert (copy.width, copy.height) == (copy_meta["width"], copy_meta["height"]) == (1024, 768)
    assert copy.get("vips-loader") == "jpegload_buffer" and copy_meta["bytes"] == len(data)
    assert copy.get_typeof("orientation") == 0 and copy.get_typeof("icc-profile-data") == 0
    assert not copy.get("interlaced") if "interlaced" in copy.get_fields() else True


def test_small_animated_and_transparent_originals_get_no_copy(wood):
    assert make_copy(Source(wood), 2560) is None           # not larger than the copy
    assert make_copy(Source(wood), 0) is None              # copies turned off
    assert make_copy(Source(testing.png_bytes(testing.gradient(2000, 100, bands=4))), SIZE) is None
    first = testing.gradient(1200, 100)
    frames = first.join((255 - first).cast("uchar"), "vertical").copy(interpretation="srgb")
    frames.set_type(pyvips.GValue.gint_type, "page-height", 100)
    animated = Source(frames.gifsave_buffer())
    assert animated.describe()["frames"] == 2
    assert make_copy(animated, SIZE) is None


def test_making_the_copy_notices_a_truncated_original(wood):
    with pytest.raises(UndecodableImageError, match="cannot decode"):
        make_copy(Source(wood[: len(wood) // 2], name="half.jpg"), SIZE)


@pytest.mark.parametrize("steps", [
    [{"resize": {"width": 300}}, {"format": {"type": "jpeg", "quality": 90}}],
    [{"resize": {"width": 333, "height": 200, "fit": "cover"}}, {"format": {"type": "png"}}],
    [{"resize": {"width": 200, "height": 200, "fit": "cover", "gravity": "attention"}},
     {"format": {"type": "png"}}],
    [{"resize": {"width": 1000, "fit": "inside"}}, {"format": {"type": "png"}}],
])
def test_outputs_from_the_copy_match_outputs_from_the_original(registry, wood, steps):
    original = Source(wood)
    data, copy_meta = make_copy(original, SIZE)
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
    copy_data, copy_meta = make_copy(original, 800)
    assert (copy_meta["width"], copy_meta["height"]) == (600, 800)
    meta = original_meta(original, copy_meta)
    r = recipe(registry, [{"resize": {"width": 150}}, {"format": {"type": "png"}}])
    ours = testing.decode(render(r, reduced.copy_source(copy_data, meta, "copy", original.limits), registry).data)
    theirs = testing.decode(render(r, original, registry).data)
    assert (ours.width, ours.height) == (theirs.width, theirs.height) == (150, 200)
    assert testing.mean_abs_diff(ours, theirs) < 2


def test_only_recipes_that_fit_within_the_copy_use_it(registry, wood):
    original = Source(wood)
    _, copy_meta = make_copy(original, SIZE)
    meta = original_meta(original, copy_meta)
    small = recipe(registry, [{"resize": {"width": 500}}])
    assert reduced.fits([small], meta)
    assert not reduced.fits([small, recipe(registry, [{"resize": {"width": 1500}}])], meta)
    assert not reduced.fits([recipe(registry, [{"resize": {"width": 500}}], keep_metadata=True)], meta)
    assert not reduced.fits([recipe(registry, [{"crop": {"width": 100, "height": 100}}])], meta)
    assert not reduced.fits([small], original_meta(original, None))  # no copy


def test_two_copies_come_from_one_decode_and_each_render_picks_the_smallest_that_holds_it(registry, wood):
    original = Source(wood)
    copies = reduced.make_copies(original, [(reduced.LARGE, SIZE), (reduced.SMALL, 400)])
    assert {level: (m["width"], m["height"]) for level, (_, m) in copies.items()} == {
        reduced.LARGE: (1024, 768), reduced.SMALL: (400, 300)}
    meta = {"width": 2560, "height": 1920, **{level.meta_key: m for level, (_, m) in copies.items()}}
    small, middle, big = (recipe(registry, [{"resize": {"width": w}}]) for w in (300, 800, 1500))
    assert reduced.choose([small], meta) is reduced.SMALL
    assert reduced.choose([small, middle], meta) is reduced.LARGE  # a queue job: every recipe must fit
    assert reduced.choose([big], meta) is None
    assert reduced.choose([small], {**meta, reduced.SMALL.meta_key: None}) is reduced.LARGE
    # Only the small copy wanted (the original is between the two sizes): decoded from the original.
    only_small = reduced.make_copies(original, [(reduced.LARGE, 3072), (reduced.SMALL, 400)])
    assert list(only_small) == [reduced.SMALL] and only_small[reduced.SMALL][1]["width"] == 400
    assert reduced.make_copies(original, [(reduced.LARGE, 0), (reduced.SMALL, 0)]) == {}


@pytest.mark.parametrize("steps", [
    [{"resize": {"width": 300}}, {"format": {"type": "jpeg", "quality": 80}}],
    [{"resize": {"width": 320, "height": 10000}}, {"format": {"type": "jpeg", "quality": 80}}],
    [{"resize": {"width": 200, "height": 200, "fit": "cover", "gravity": "attention"}},
     {"format": {"type": "png"}}],
])
def test_outputs_from_the_small_copy_match_outputs_from_the_original(registry, steps):
    for name in ("Wood.jpg", "LadyBird.jpg", "Storm.jpg"):
        data = testing.photo(name).read_bytes()
        original = Source(data)
        copies = reduced.make_copies(original, [(reduced.SMALL, 768)])
        copy_data, copy_meta = copies[reduced.SMALL]
        meta = original_meta(original, None) | {reduced.SMALL.meta_key: copy_meta}
        r = recipe(registry, steps)
        assert reduced.choose([r], meta) is reduced.SMALL
        ours = testing.decode(render(r, reduced.copy_source(copy_data, meta, "copy", original.limits),
                                     registry).data)
        theirs = testing.decode(render(r, original, registry).data)
        assert (ours.width, ours.height) == (theirs.width, theirs.height), name
        assert testing.mean_abs_diff(ours, theirs) < 2.5, name

"""Animated images in the engine: the page-height strip helpers, every-frame sources, and steps
applied per frame by the pipeline (docs/architecture.md, "Animation")."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import (Context, ImageTooLargeError, Limits, RenderError, Source, Step, StepParams,
                            frames, render, testing)
from pixline.engine.frames import apply_step


def washes(image: pyvips.Image) -> list[int]:
    """Which colour washes each frame (index into testing.FRAME_COLOURS' first three)."""
    return [max(range(3), key=lambda band: frame[band].avg()) for frame in frames.split(image)]


# -- the strip -----------------------------------------------------------------------------------

def test_page_height_and_frame_count() -> None:
    strip = testing.animation_strip(frames=3, width=40, height=30)
    assert (frames.page_height(strip), frames.frame_count(strip)) == (30, 3)
    still = testing.gradient(40, 30)
    assert (frames.page_height(still), frames.frame_count(still)) == (30, 1)


@pytest.mark.parametrize("page_height", [0, 7, 90, 200])
def test_a_page_height_that_does_not_divide_the_image_means_one_frame(page_height: int) -> None:
    image = testing.gradient(40, 90).copy()
    image.set_type(pyvips.GValue.gint_type, "page-height", page_height)
    assert frames.frame_count(image) == 1 and frames.split(image) == [image]


def test_split_and_join_round_trip_with_delays_and_loop() -> None:
    strip = testing.animation_strip(frames=4, width=40, height=30, delays=[50, 60, 70, 80], loop=3)
    parts = frames.split(strip)
    assert [(p.width, p.height) for p in parts] == [(40, 30)] * 4
    assert washes(strip) == [0, 1, 2, 0]  # red, green, blue, yellow (red wins ties)
    again = frames.join(parts)
    assert testing.mean_abs_diff(again, strip) == 0
    assert (again.get("page-height"), again.get("delay"), again.get("loop")) == (30, [50, 60, 70, 80], 3)


def test_join_refuses_frames_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="one size"):
        frames.join([testing.gradient(40, 30), testing.gradient(40, 31)])


def test_per_frame_keeps_frames_apart() -> None:
    strip = testing.animation_strip(frames=3, width=40, height=30)
    out = frames.per_frame(strip, lambda frame: frame.gaussblur(4))
    assert frames.frame_count(out) == 3 and out.get("delay") == [100, 200, 300]
    for got, frame in zip(frames.split(out), frames.split(strip)):
        assert testing.mean_abs_diff(got, frame.gaussblur(4)) == 0
    # Blurring the whole strip instead bleeds the red first frame into the green second one's top.
    whole = frames.split(strip.gaussblur(4))[1].crop(0, 0, 40, 1)
    assert whole[0].avg() > frames.split(out)[1].crop(0, 0, 40, 1)[0].avg() + 10


@pytest.mark.parametrize("interesting", ["attention", "entropy"])
def test_smart_box_is_where_smartcrop_cuts(interesting: str) -> None:
    image = testing.busy_right_half(200).copy_memory()
    left, top = frames.smart_box(image, 100, 120, interesting)
    cut = image.smartcrop(100, 120, interesting=interesting)
    assert left > 150  # the busy half
    assert testing.mean_abs_diff(image.crop(left, top, 100, 120), cut) == 0


def test_smart_box_of_an_animation_looks_at_its_first_frame() -> None:
    busy = testing.busy_right_half(100)
    strip = frames.join([busy, busy.fliphor()]).copy_memory()
    left, _ = frames.smart_box(strip, 50, 100, "entropy")
    assert left >= 100  # the first frame's busy right half, not the second's left


# -- sources ---------------------------------------------------------------------------------------

def gif(**kwargs: object) -> bytes:
    return testing.animation_strip(**kwargs).gifsave_buffer()


def test_a_source_loads_its_first_frame_unless_asked_for_every_frame() -> None:
    source = Source(gif(frames=3, width=40, height=30, loop=2))
    assert (source.frames, source.animated) == (3, True)
    first = source.load()
    assert (first.width, first.height, frames.frame_count(first)) == (40, 30, 1)
    every = source.with_every_frame()
    assert every.with_every_frame() is every
    strip = every.load()
    assert (strip.width, strip.height, frames.frame_count(strip)) == (40, 90, 3)
    assert (strip.get("delay"), strip.get("loop")) == ([100, 200, 300], 2)
    assert washes(strip) == [0, 1, 2]
    thumb = every.thumbnail(20, height=15, size="force")
    assert (thumb.width, thumb.height, frames.page_height(thumb)) == (20, 45, 15)
    assert washes(thumb) == [0, 1, 2]


@pytest.mark.parametrize("data", [testing.jpeg_bytes(), testing.gradient(40, 30).gifsave_buffer(),
                                  testing.animation_strip(width=40, height=30).tiffsave_buffer()])
def test_stills_and_multipage_documents_are_not_animations(data: bytes) -> None:
    source = Source(data)
    assert not source.animated and source.with_every_frame() is source


def test_an_animated_webp_is_an_animation() -> None:
    source = Source(testing.animation_strip(frames=2).webpsave_buffer())
    assert (source.format, source.frames, source.animated) == ("webp", 2, True)


def test_the_frame_limit_refuses_an_animation_with_too_many_frames(toy_registry) -> None:
    source = Source(gif(frames=4), limits=Limits(max_frames=3))
    recipe = testing.recipe(toy_registry, ["invert", {"out": {"type": "png"}}])
    with pytest.raises(ImageTooLargeError, match="4 frames, over the limit of 3"):
        source.with_every_frame().load()
    with pytest.raises(ImageTooLargeError, match="4 frames, over the limit of 3"):
        render(recipe, source, toy_registry)


# -- steps per frame -----------------------------------------------------------------------------

class Mirror(Step):
    """A neighbourhood-free step that does not declare ``handles_frames``: applied frame by frame."""

    name = "mirror"
    seen: list[int] = []

    def apply(self, image: pyvips.Image, params: StepParams, ctx: Context) -> pyvips.Image:
        Mirror.seen.append(image.height)
        return image.flipver()


class Ragged(Step):
    """A step that makes frames of different sizes (here: the more red, the wider)."""

    name = "ragged"

    def apply(self, image: pyvips.Image, params: StepParams, ctx: Context) -> pyvips.Image:
        return image.crop(0, 0, 10 + int(image[0].avg() // 10), image.height)


def test_a_step_that_does_not_handle_frames_gets_each_frame() -> None:
    Mirror.seen = []
    strip = testing.animation_strip(frames=3, width=40, height=30)
    out = apply_step(Mirror(), strip, StepParams(), Context())
    assert Mirror.seen == [30, 30, 30]
    # Each frame flipped in place (a flip of the whole strip would reverse their order).
    assert washes(out) == [0, 1, 2]
    assert testing.mean_abs_diff(frames.split(out)[0], frames.split(strip)[0].flipver()) == 0
    Mirror.handles_frames = True
    try:
        assert washes(apply_step(Mirror(), strip, StepParams(), Context())) == [2, 1, 0]
    finally:
        del Mirror.handles_frames


def test_a_step_that_makes_frames_of_different_sizes_is_a_render_error() -> None:
    strip = testing.animation_strip(frames=3, width=40, height=30)
    with pytest.raises(RenderError, match="step 'ragged' cannot work on an animation: .*one size"):
        apply_step(Ragged(), strip, StepParams(), Context())

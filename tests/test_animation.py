"""Animated GIF and WebP through the first-party plugins: every frame kept when the output animates
(GIF, WebP), with its delays and loop count; the first frame otherwise (JPEG, AVIF, PNG)."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import ImageTooLargeError, Limits, Registry, Source, frames, render, testing

ANIMATING = ("gif", "webp")
STILL = ("jpeg", "png", "avif")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def card() -> pyvips.Image:
    """The test card: three 120×80 frames (red, green, blue washes), 100/200/300 ms, played twice."""
    return testing.animation_strip(frames=3, width=120, height=80, delays=[100, 200, 300], loop=2)


def encoded(card: pyvips.Image, kind: str) -> bytes:
    return card.gifsave_buffer() if kind == "gif" else card.webpsave_buffer(lossless=True)


def decode_all(data: bytes) -> pyvips.Image:
    image = testing.decode(data)
    if image.get("vips-loader").startswith(("gifload", "webpload")):
        return pyvips.Image.new_from_buffer(data, "", n=-1)
    return image


def washes(image: pyvips.Image) -> list[str]:
    return ["rgb"[max(range(3), key=lambda band: frame[band].avg())] for frame in frames.split(image)]


def run(registry: Registry, data: bytes, steps: list, fmt: str, limits: Limits = Limits()):
    recipe = testing.recipe(registry, [*steps, {"format": {"type": fmt}}])
    rendered = render(recipe, Source(data, limits=limits), registry)
    return rendered, decode_all(rendered.data)


@pytest.mark.parametrize("source", ["gif", "webp"])
@pytest.mark.parametrize("fmt", ANIMATING)
def test_resize_keeps_every_frame_its_delay_and_the_loop(registry: Registry, card: pyvips.Image,
                                                         source: str, fmt: str) -> None:
    rendered, out = run(registry, encoded(card, source), [{"resize": {"width": 60}}], fmt)
    assert (rendered.width, rendered.height, rendered.frames) == (60, 40, 3)
    assert (out.width, frames.page_height(out), frames.frame_count(out)) == (60, 40, 3)
    assert out.get("delay") == [100, 200, 300] and out.get("loop") == 2
    assert washes(out) == ["r", "g", "b"]
    for got, want in zip(frames.split(out), frames.split(card)):
        assert testing.mean_abs_diff(got, want.resize(0.5)) < 6  # GIF's palette costs a little


@pytest.mark.parametrize("fmt", STILL)
def test_a_format_that_does_not_animate_takes_the_first_frame(registry: Registry, card: pyvips.Image,
                                                              fmt: str) -> None:
    rendered, out = run(registry, encoded(card, "gif"), [{"resize": {"width": 60}}], fmt)
    assert (rendered.width, rendered.height, rendered.frames) == (60, 40, 1)
    assert (out.width, out.height) == (60, 40) and washes(out) == ["r"]


def test_source_format_keeps_a_gif_animated(registry: Registry, card: pyvips.Image) -> None:
    _, out = run(registry, encoded(card, "gif"), [{"resize": {"width": 90}}], "source")
    assert out.get("vips-loader").startswith("gifload") and frames.frame_count(out) == 3


def test_auto_animates_where_the_client_takes_webp(registry: Registry, card: pyvips.Image) -> None:
    from pixline.engine import Context

    recipe = testing.recipe(registry, [{"resize": {"width": 60}}, {"format": {"type": "auto"}}])
    data = encoded(card, "gif")
    webp = render(recipe, Source(data), registry, Context(accept="image/webp"))
    other = render(recipe, Source(data), registry, Context(accept="image/jpeg"))
    # A GIF always loads with alpha, so the fallback is PNG: a still.
    assert (webp.format, webp.frames, other.format, other.frames) == ("webp", 3, "png", 1)


def shifted(frames_: int = 3) -> pyvips.Image:
    """Frames that differ only in blue (0, 60, 120…): red and green are the same gradient in each."""
    base = testing.gradient(120, 80)
    cards = [base[0].bandjoin([base[1], base[1] * 0 + 60 * i]).cast("uchar") for i in range(frames_)]
    strip = pyvips.Image.arrayjoin(cards, across=1).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", 80)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * frames_)
    return strip


@pytest.mark.parametrize("steps, size", [
    ([{"crop": {"left": 10, "top": 20, "width": 50, "height": 40}}], (50, 40)),
    ([{"crop": {"aspect": "1:1", "gravity": "east"}}], (80, 80)),
    ([{"crop": {"aspect": "1:1", "gravity": "attention"}}], (80, 80)),
    ([{"resize": {"width": 60, "height": 60, "fit": "cover", "gravity": "entropy"}}], (60, 60)),
    ([{"resize": {"width": 60, "height": 60, "fit": "cover"}}], (60, 60)),
    ([{"resize": {"width": 60, "height": 60, "fit": "contain", "background": "black"}}], (60, 60)),
    ([{"resize": {"width": 60}}, {"crop": {"aspect": "16:9", "gravity": "south"}}], (60, 34)),
])
def test_crops_cut_every_frame_at_the_same_place(registry: Registry, steps: list, size: tuple) -> None:
    data = shifted().webpsave_buffer(lossless=True)
    recipe = testing.recipe(registry, [*steps, {"format": {"type": "webp", "lossless": True}}])
    rendered = render(recipe, Source(data), registry)
    out = decode_all(rendered.data)
    assert (rendered.width, rendered.height, rendered.frames) == (*size, 3)
    parts = frames.split(out)
    # Red and green are alike in every frame: cut at another place, they would differ.
    for frame in parts[1:]:
        assert (frame[:2].cast("float") - parts[0][:2].cast("float")).abs().max() <= 1
    assert parts[0][2].avg() < parts[1][2].avg() < parts[2][2].avg()
    # The first frame is what a still render of the source makes.
    still, _ = run(registry, data, steps, "png")
    assert testing.mean_abs_diff(parts[0], testing.decode(still.data)) < 1


def test_trim_finds_the_border_on_the_first_frame(registry: Registry, card: pyvips.Image) -> None:
    framed = frames.per_frame(card, lambda f: f.embed(10, 5, 140, 90, extend="white"))
    rendered, out = run(registry, encoded(framed, "webp"), [{"crop": {"trim": True}}], "gif")
    assert (rendered.width, rendered.height, rendered.frames) == (120, 80, 3)
    assert washes(out) == ["r", "g", "b"]


@pytest.mark.parametrize("step", [{"sharpen": {"amount": 3}}, {"blur": {"sigma": 3}}, {"adjust": {"contrast": 1.3}},
                                  {"grayscale": {}}, {"tint": {"strength": 0.5}}])
def test_filters_work_per_frame(registry: Registry, card: pyvips.Image, step: dict) -> None:
    rendered, out = run(registry, encoded(card, "webp"), [step], "webp")
    assert rendered.frames == 3 and out.get("delay") == [100, 200, 300]
    # Each frame is the filter applied to that frame alone: nothing bleeds across a frame's edge.
    for index, got in enumerate(frames.split(out)):
        alone = testing.animation_strip(frames=3, width=120, height=80)
        still = frames.split(alone)[index]
        recipe = testing.recipe(registry, [step, {"format": {"type": "png"}}])
        want = testing.decode(render(recipe, Source(still.pngsave_buffer()), registry).data)
        assert testing.mean_abs_diff(got, want) < 2, index


def test_a_watermark_is_drawn_on_every_frame(registry: Registry, card: pyvips.Image) -> None:
    mark = {"watermark": {"text": "pixline", "size": 0.3, "opacity": 1, "colour": "black", "position": "centre"}}
    rendered, out = run(registry, encoded(card, "webp"), [mark], "webp")
    assert rendered.frames == 3
    for got, want in zip(frames.split(out), frames.split(card)):
        centre = (30, 25, 60, 30)
        assert got.crop(*centre).avg() < want.crop(*centre).avg() - 10  # black text in each frame
        assert testing.mean_abs_diff(got.crop(0, 0, 120, 15), want.crop(0, 0, 120, 15)) < 3


def test_alpha_survives_an_animated_render(registry: Registry) -> None:
    card = testing.animation_strip(frames=2, width=60, height=40, alpha=True)
    _, out = run(registry, encoded(card, "webp"), [{"resize": {"width": 30}}], "webp")
    assert out.bands == 4 and frames.frame_count(out) == 2
    left, right = out.crop(0, 0, 10, 20)[3].avg(), out.crop(20, 0, 10, 20)[3].avg()
    assert left > 250 and right < 5


def test_the_frame_limit_refuses_too_many_frames(registry: Registry, card: pyvips.Image) -> None:
    for fmt in ("gif", "jpeg"):
        with pytest.raises(ImageTooLargeError, match="3 frames, over the limit of 2"):
            run(registry, encoded(card, "gif"), [{"resize": {"width": 60}}], fmt, Limits(max_frames=2))
    rendered, _ = run(registry, encoded(card, "gif"), [{"resize": {"width": 60}}], "gif", Limits(max_frames=3))
    assert rendered.frames == 3

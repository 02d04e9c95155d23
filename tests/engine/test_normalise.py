"""Steps get a normalised image: upright, 8-bit sRGB, 3 bands plus alpha, no ICC profile — whatever
the input was, whichever way it was loaded (the pipeline, a first step's open(), the queue's decode)."""
from __future__ import annotations

import types

import pytest
import pyvips

from pixline.engine import Source, Step, StepError, hookimpl, is_normal, normalise, render, testing
from pixline.engine.normalise import mistagged

W, H = 64, 48
INPUTS = testing.sample_inputs(W, H)
WITH_ALPHA = {"rgba", "grey-alpha", "palette-alpha"}
#: 0-255 mean difference from the gradient: print profiles and palettes shift colours a little.
TOLERANCE = {"cmyk": 25, "cmyk-profile": 25, "palette": 8, "palette-alpha": 8}


MATRIX = [[0.5, 0.5, 0], [0, 1, 0], [0, 0, 1]]


class Insist(Step):
    """Fails unless it is given a normal image, the way a careless third-party step would."""

    name = "insist"

    def apply(self, image, params, ctx):
        problems = [f"{what} is {value!r}" for what, value, want in (
            ("format", image.format, "uchar"), ("interpretation", image.interpretation, "srgb"),
            ("profile", image.get_typeof("icc-profile-data") != 0, False)) if value != want]
        if image.bands not in (3, 4):
            problems.append(f"{image.bands} bands")
        if image.width <= image.height:
            problems.append(f"{image.width}×{image.height}: not upright")
        assert not problems, "; ".join(problems)
        # What an 8-bit sRGB step does: a 3×3 matrix over the colour bands, alpha put back.
        toned = image[:3].recomb(MATRIX).cast("uchar")
        return toned.bandjoin(image[3]) if image.hasalpha() else toned


@hookimpl
def pixline_register_steps(register):
    register(Insist)


@pytest.fixture
def registry(toy_registry):
    toy_registry.add("insist", types.SimpleNamespace(pixline_register_steps=pixline_register_steps),
                     "insist-dist", "1")
    return toy_registry


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("path", ["load", "open", "decoded"])
def test_a_step_insisting_on_8_bit_srgb_works_on_every_input(registry, kind, path):
    """load: the pipeline loads the source; open: a first step (half) shrinks on load; decoded: the
    queue's decode-once image."""
    steps = [{"half": {"times": 1}}, "insist"] if path == "open" else ["insist"]
    source = Source(INPUTS[kind])
    decoded = source.load().copy_memory() if path == "decoded" else None
    out = render(testing.recipe(registry, [*steps, {"out": {"type": "png"}}]), source, registry,
                 decoded=decoded)
    image = testing.decode(out.data)
    assert image.bands == (4 if kind in WITH_ALPHA else 3)
    card = testing.gradient(image.width, image.height)
    if kind.startswith("grey"):
        card = card.colourspace("b-w").colourspace("srgb")
    assert testing.mean_abs_diff(image[:3], card.recomb(MATRIX)) < TOLERANCE.get(kind, 3)


def test_a_normal_image_is_returned_as_it_is():
    card = testing.gradient(8, 8)
    assert is_normal(card) and normalise(card) is card


@pytest.mark.parametrize("make, bands", [
    (lambda c: c.colourspace("lab"), 3),                                       # float Lab
    (lambda c: (c * 1.0).copy(interpretation="srgb"), 3),                      # a step's float arithmetic
    (lambda c: c.copy(interpretation="multiband"), 3),                         # untagged
    (lambda c: (c.cast("ushort") * 257).cast("ushort").copy(interpretation="srgb"), 3),  # 16-bit tagged sRGB
    (lambda c: c.bandjoin([255, 9]), 4),                                       # an extra channel
])
def test_odd_images_are_normalised_without_changing_colours(make, bands):
    card = testing.gradient(16, 12)
    out = normalise(make(card))
    assert is_normal(out) and out.bands == bands
    assert testing.mean_abs_diff(out[:3], card) < 1.5


def test_one_band_tagged_srgb_is_grey():
    card = testing.gradient(16, 12)
    out = normalise(card[0].copy(interpretation="srgb"))
    assert is_normal(out) and out.bands == 3
    assert testing.mean_abs_diff(out, card[0].bandjoin([card[0], card[0]])) < 1


def test_multi_frame_strips_keep_their_frames():
    """Frames stacked vertically (libvips' page-height layout) go through band by band, unturned."""
    frame = testing.gradient(20, 10).colourspace("b-w")
    strip = frame.join(frame.invert(), "vertical").join(frame, "vertical").copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 10)
    strip.set_type(pyvips.GValue.gint_type, "orientation", 6)
    out = normalise(strip)
    assert (out.width, out.height, out.get("page-height")) == (20, 30, 10)
    assert is_normal(out) and out.get("orientation") == 6  # frames cannot be turned as a whole
    assert out.crop(0, 10, 20, 10)[0].avg() == pytest.approx(255 - frame.avg(), abs=1)


class GreyToColour(Step):
    """Builds colour from a grey copy and forgets the tag: three bands still say ``b-w``."""

    name = "grey-to-colour"

    def apply(self, image, params, ctx):
        grey = image.colourspace("b-w")
        return grey.bandjoin([grey, grey])  # libvips keeps the first image's interpretation


def test_a_step_returning_colour_tagged_grey_is_named_not_silently_renormalised(toy_registry):
    # Normalised as it was tagged, it became four bands of wrong colours (issue 20).
    assert normalise(GreyToColour().apply(testing.gradient(8, 8), None, None)).bands == 4
    toy_registry.add("mistag", types.SimpleNamespace(
        pixline_register_steps=hookimpl(lambda register: register(GreyToColour))), "mistag-dist", "1")
    for steps in (["grey-to-colour"], ["invert", "grey-to-colour", "invert"]):
        r = testing.recipe(toy_registry, [*steps, {"out": {"type": "png"}}], name="tagged")
        with pytest.raises(StepError) as err:
            render(r, Source(testing.png_bytes(testing.gradient(40, 30))), toy_registry)
        message = str(err.value)
        place = steps.index("grey-to-colour") + 1
        assert f"recipe 'tagged' failed in step {place} (grey-to-colour, plugin 'mistag'" in message
        assert "returned 3 bands tagged 'b-w'" in message and "interpretation='srgb'" in message


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_no_normal_image_nor_grey_with_alpha_is_called_mistagged(kind):
    image = Source(INPUTS[kind]).load()
    assert mistagged(image) is None
    grey = image.colourspace("b-w")
    assert mistagged(grey) is None and mistagged(grey[0]) is None

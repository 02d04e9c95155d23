"""Tests of the grayscale and tint steps: parameters, pixels against plain pyvips, alpha, laziness."""
from __future__ import annotations

import pytest
import pyvips
import yaml

from pixline.engine import Context, Registry, RecipeError, Source, StepParams, render, testing
from pixline_colour import SEPIA, Grayscale, Tint, TintParams


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def photo() -> pyvips.Image:
    return pyvips.Image.thumbnail(str(testing.photo("LadyBird.jpg")), 320).copy_memory()


def grayscale(image: pyvips.Image) -> pyvips.Image:
    return Grayscale().apply(image, StepParams(), Context())


def tint(image: pyvips.Image, **params: object) -> pyvips.Image:
    return Tint().apply(image, TintParams(**params), Context())


def lab(image: pyvips.Image) -> pyvips.Image:
    return image[:3].colourspace("lab")


# -- parameters ------------------------------------------------------------------------------------

def test_registered_as_one_plugin(registry: Registry) -> None:
    assert registry.plugins["colour"].distribution == "pixline-colour"
    assert registry.plugins["colour"].steps == ["grayscale", "tint"]


@pytest.mark.parametrize("steps", [["grayscale"], [{"grayscale": {}}], ["tint"], [{"tint": {"strength": 0}}],
                                   [{"tint": {"colour": "#336699", "strength": 0.5}}],
                                   [{"tint": {"color": "704214"}}], [{"tint": {"strength": "0.3"}}]])
def test_valid_parameters(registry: Registry, steps: list) -> None:
    testing.recipe(registry, steps)


@pytest.mark.parametrize("step, params, parameter", [
    ("grayscale", {"amount": 1}, "amount"),
    ("tint", {"strength": 1.5}, "strength"), ("tint", {"strength": -0.1}, "strength"),
    ("tint", {"strength": True}, "strength"), ("tint", {"colour": "sepia"}, "colour"),
    ("tint", {"colour": "#12345"}, "colour"), ("tint", {"hue": 30}, "hue"),
])
def test_invalid_parameters_name_step_and_parameter(registry: Registry, step: str, params: dict,
                                                    parameter: str) -> None:
    with pytest.raises(RecipeError) as err:
        testing.recipe(registry, [{step: params}])
    message = str(err.value)
    assert f"({step})" in message and f"'{parameter}'" in message, message


def test_yaml_yes_is_not_a_strength(registry: Registry) -> None:
    with pytest.raises(RecipeError, match="'strength': must be a number, not true"):
        testing.recipe(registry, yaml.safe_load("- tint: {strength: yes}"))


def test_a_colour_without_hash_is_the_same_recipe(registry: Registry) -> None:
    with_hash = testing.recipe(registry, [{"tint": {"colour": "#704214"}}])
    without = testing.recipe(registry, [{"tint": {"colour": "704214"}}])
    assert with_hash.digest == without.digest


# -- grayscale ---------------------------------------------------------------------------------------

def test_grayscale_matches_plain_pyvips(registry: Registry) -> None:
    data = testing.photo("LadyBird.jpg").read_bytes()
    recipe = testing.recipe(registry, [{"resize": {"width": 320}}, "grayscale", {"format": {"type": "png"}}])
    ours = testing.decode(render(recipe, Source(data), registry).data)
    theirs = pyvips.Image.thumbnail_buffer(data, 320).colourspace("b-w")
    assert ours.bands in (1, 3)  # an encoder may write grey as grey
    assert testing.mean_abs_diff(ours[0], theirs) < 0.5


def test_grayscale_is_three_equal_srgb_bands(photo: pyvips.Image) -> None:
    out = grayscale(photo)
    assert (out.bands, out.format, out.interpretation) == (3, "uchar", "srgb")
    assert (out[0] - out[1]).abs().max() <= 1 and (out[1] - out[2]).abs().max() <= 1
    assert lab(out)[1].abs().avg() < 1 and lab(out)[2].abs().avg() < 1  # no colour left


def test_grayscale_keeps_lightness(photo: pyvips.Image) -> None:
    assert testing.mean_abs_diff(lab(grayscale(photo))[0], lab(photo)[0]) < 3


# -- tint --------------------------------------------------------------------------------------------

def test_tint_keeps_lightness_and_takes_the_colours_hue(photo: pyvips.Image) -> None:
    out = tint(photo, colour="#3060c0")
    want = lab((pyvips.Image.black(1, 1) + [0x30, 0x60, 0xC0]).cast("uchar").copy(interpretation="srgb"))(0, 0)
    got = lab(out)
    assert testing.mean_abs_diff(got[0], lab(photo)[0]) < 2.5
    # Where sRGB can show it (mid-tones), every pixel has the tint's a*, b*.
    mid = (got[0] > 30) & (got[0] < 70)
    for band, value in ((1, want[1]), (2, want[2])):
        off = (mid.ifthenelse((got[band] - value).abs(), 0)).avg() / (mid.avg() / 255)
        assert off < 3, (band, off)


def test_default_tint_is_sepia(photo: pyvips.Image) -> None:
    assert TintParams().colour == SEPIA
    r, g, b = (tint(photo)[band].avg() for band in range(3))
    assert r > g > b  # warm brown


def test_tint_matches_plain_pyvips(registry: Registry) -> None:
    data = testing.photo("Wood.jpg").read_bytes()
    recipe = testing.recipe(registry, [{"resize": {"width": 320}}, {"tint": {"colour": "#704214", "strength": 0.6}},
                                       {"format": {"type": "png"}}])
    ours = testing.decode(render(recipe, Source(data), registry).data)
    plain = pyvips.Image.thumbnail_buffer(data, 320)
    sepia = (pyvips.Image.black(1, 1) + [0x70, 0x42, 0x14]).cast("uchar").copy(interpretation="srgb")
    _, a, b = sepia.colourspace("lab")(0, 0)
    toned = plain.colourspace("lab")[0].bandjoin([a, b]).copy(interpretation="lab").colourspace("srgb")
    theirs = plain * 0.4 + toned * 0.6
    assert testing.mean_abs_diff(ours, theirs) < 1


def test_strength_mixes_with_the_original(photo: pyvips.Image) -> None:
    full, half = tint(photo), tint(photo, strength=0.5)
    assert tint(photo, strength=0) is photo
    assert testing.mean_abs_diff(half, photo) == pytest.approx(testing.mean_abs_diff(full, photo) / 2, rel=0.1)


# -- both ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("apply", [grayscale, tint])
def test_alpha_is_kept_and_untouched(apply) -> None:
    image = testing.animation_strip(frames=1, width=60, height=40, alpha=True)
    out = apply(image)
    assert (out.bands, out.interpretation) == (4, "srgb") and (out[3] - image[3]).abs().max() == 0


@pytest.mark.parametrize("step", ["grayscale", "tint"])
@pytest.mark.parametrize("kind", ["grey", "grey-alpha", "rgb16", "cmyk"])
def test_every_kind_of_input_comes_out_8_bit_srgb(registry: Registry, step: str, kind: str) -> None:
    """The pipeline hands the steps a normal image (8-bit sRGB), whatever the upload was."""
    out = testing.rendered_image(registry, [step], testing.sample_inputs(40, 30)[kind])
    assert (out.format, out.interpretation, out.bands) == ("uchar", "srgb", 4 if "alpha" in kind else 3)


@pytest.mark.parametrize("apply", [grayscale, lambda image: tint(image, strength=0.5)])
def test_apply_is_lazy(apply) -> None:
    out = apply(testing.unreadable())
    with pytest.raises(pyvips.Error):
        out.avg()

"""Tests of the adjust step: identity by default, each parameter against plain pyvips, alpha, laziness."""
from __future__ import annotations

import pytest
import pyvips
import yaml

from pixline.engine import Context, Registry, RecipeError, Source, render, testing
from pixline_adjust import Adjust, AdjustParams, levels_lut, saturation_matrix


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def photo() -> pyvips.Image:
    return pyvips.Image.thumbnail(str(testing.photo("Wood.jpg")), 320).copy_memory()


def adjust(image: pyvips.Image, **params: object) -> pyvips.Image:
    return Adjust().apply(image, AdjustParams(**params), Context())


def max_diff(a: pyvips.Image, b: pyvips.Image) -> float:
    return (a.cast("float") - b.cast("float")).abs().max()


# -- parameters ------------------------------------------------------------------------------------

def test_registered_as_a_plugin(registry: Registry) -> None:
    assert "adjust" in registry.steps
    assert registry.plugins["adjust"].distribution == "pixline-adjust"


@pytest.mark.parametrize("params", [{}, {"brightness": 0}, {"brightness": 4}, {"contrast": 0}, {"contrast": 4},
                                    {"saturation": 0}, {"saturation": 4}, {"gamma": 0.1}, {"gamma": 10},
                                    {"brightness": "1.1", "gamma": "2"}])
def test_valid_parameters(registry: Registry, params: dict) -> None:
    testing.recipe(registry, [{"adjust": params}])


@pytest.mark.parametrize("params, parameter", [
    ({"brightness": -0.1}, "brightness"), ({"brightness": 4.5}, "brightness"),
    ({"contrast": -1}, "contrast"), ({"saturation": 5}, "saturation"),
    ({"gamma": 0}, "gamma"), ({"gamma": 11}, "gamma"), ({"gamma": "bright"}, "gamma"),
    ({"contrast": True}, "contrast"), ({"exposure": 1}, "exposure"),
])
def test_invalid_parameters_name_step_and_parameter(registry: Registry, params: dict, parameter: str) -> None:
    with pytest.raises(RecipeError) as err:
        testing.recipe(registry, [{"adjust": params}])
    message = str(err.value)
    assert "(adjust)" in message and f"'{parameter}'" in message, message


def test_yaml_yes_is_not_a_factor(registry: Registry) -> None:
    with pytest.raises(RecipeError, match="'contrast': must be a number, not true"):
        testing.recipe(registry, yaml.safe_load("- adjust: {contrast: yes}"))


# -- identity --------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [{}, {"brightness": 1, "contrast": 1.0, "saturation": 1, "gamma": 1}])
def test_identity_leaves_pixels_unchanged(registry: Registry, params: dict) -> None:
    data = testing.photo("LadyBird.jpg").read_bytes()
    plain = testing.recipe(registry, [{"resize": {"width": 300}}, {"format": {"type": "png"}}])
    adjusted = testing.recipe(registry, [{"resize": {"width": 300}}, {"adjust": params}, {"format": {"type": "png"}}])
    ours = testing.decode(render(adjusted, Source(data), registry).data)
    theirs = testing.decode(render(plain, Source(data), registry).data)
    assert max_diff(ours, theirs) == 0
    image = testing.gradient(20, 10, bands=4)
    assert adjust(image, **params) is image


def test_the_levels_table_is_exactly_identity_at_identity() -> None:
    assert max_diff(levels_lut(AdjustParams()), pyvips.Image.identity()) == 0
    assert saturation_matrix(1) == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


# -- each parameter, against plain pyvips ------------------------------------------------------------

def reference(image: pyvips.Image, brightness: float = 1, contrast: float = 1, saturation: float = 1,
              gamma: float = 1) -> pyvips.Image:
    """The same adjustments written independently: per pixel in float, clipped like CSS filters."""
    v = image.cast("float") / 255
    v = (v * brightness).clamp(min=0, max=1)
    v = ((v - 0.5) * contrast + 0.5).clamp(min=0, max=1)
    v = (v ** (1 / gamma)) * 255
    v = v.rint()
    if saturation != 1:
        luma = v[0] * 0.2126 + v[1] * 0.7152 + v[2] * 0.0722
        v = luma + (v - luma) * saturation
    return v.rint().cast("uchar")


@pytest.mark.parametrize("params", [
    {"brightness": 1.3}, {"brightness": 0.5}, {"contrast": 1.5}, {"contrast": 0.3},
    {"saturation": 0}, {"saturation": 0.5}, {"saturation": 2}, {"gamma": 2.2}, {"gamma": 0.6},
    {"brightness": 1.1, "contrast": 1.2, "saturation": 1.3, "gamma": 0.9},
])
def test_each_adjustment_matches_plain_pyvips(photo: pyvips.Image, params: dict) -> None:
    ours = adjust(photo, **params)
    assert (ours.bands, ours.format, ours.interpretation) == (3, "uchar", "srgb")
    assert max_diff(ours, reference(photo, **params)) <= 1  # rounding of a table vs per pixel


def test_directions() -> None:
    grey = (pyvips.Image.black(8, 8, bands=3) + 100).cast("uchar").copy(interpretation="srgb")
    assert adjust(grey, brightness=1.5)(0, 0)[0] == 150
    assert adjust(grey, contrast=2)(0, 0)[0] < 100 < adjust(grey, contrast=0.5)(0, 0)[0]
    assert adjust(grey, gamma=2)(0, 0)[0] > 100 > adjust(grey, gamma=0.5)(0, 0)[0]
    red = (pyvips.Image.black(8, 8, bands=3) + [200, 80, 80]).cast("uchar").copy(interpretation="srgb")
    r, g, b = adjust(red, saturation=0)(0, 0)
    assert r == g == b
    r2, g2, _ = adjust(red, saturation=1.5)(0, 0)
    assert r2 - g2 > 120  # more colourful


def test_alpha_is_kept_and_untouched() -> None:
    image = testing.animation_strip(frames=1, width=60, height=40, alpha=True)
    out = adjust(image, brightness=0.5, saturation=0)
    assert out.bands == 4 and max_diff(out[3], image[3]) == 0


@pytest.mark.parametrize("kind", ["grey", "grey-alpha", "rgb16", "cmyk"])
def test_every_kind_of_input_comes_out_8_bit_srgb(registry: Registry, kind: str) -> None:
    """The pipeline hands the step a normal image (8-bit sRGB), whatever the upload was."""
    data = testing.sample_inputs(40, 30)[kind]
    out = testing.rendered_image(registry, [{"adjust": {"contrast": 1.2, "saturation": 1.5}}], data)
    assert (out.format, out.interpretation, out.bands) == ("uchar", "srgb", 4 if "alpha" in kind else 3)


def test_apply_is_lazy() -> None:
    out = adjust(testing.unreadable(), brightness=1.2, saturation=0.5)
    with pytest.raises(pyvips.Error):
        out.avg()

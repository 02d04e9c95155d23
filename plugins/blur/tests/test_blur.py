"""Tests of the blur step: parameters, the Gaussian against plain pyvips, alpha, laziness."""
from __future__ import annotations

import pytest
import pyvips
import yaml

from pixline.engine import Context, Registry, RecipeError, Source, render, testing
from pixline_blur import Blur, BlurParams


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def blur(image: pyvips.Image, **params: object) -> pyvips.Image:
    return Blur().apply(image, BlurParams(**params), Context())


def test_registered_as_a_plugin(registry: Registry) -> None:
    assert "blur" in registry.steps
    assert registry.plugins["blur"].distribution == "pixline-blur"


@pytest.mark.parametrize("params", [{"sigma": 0.6}, {"sigma": 8}, {"sigma": 100}, {"sigma": "2.5"}])
def test_valid_parameters(registry: Registry, params: dict) -> None:
    testing.recipe(registry, [{"blur": params}])


@pytest.mark.parametrize("params, parameter", [
    ({}, "sigma"), ({"sigma": 0.55}, "sigma"), ({"sigma": 101}, "sigma"), ({"sigma": "soft"}, "sigma"),
    ({"sigma": True}, "sigma"), ({"sigma": 2, "radius": 3}, "radius"),
])
def test_invalid_parameters_name_step_and_parameter(registry: Registry, params: dict, parameter: str) -> None:
    with pytest.raises(RecipeError) as err:
        testing.recipe(registry, [{"blur": params}])
    message = str(err.value)
    assert "(blur)" in message and f"'{parameter}'" in message, message


def test_yaml_yes_is_not_a_sigma(registry: Registry) -> None:
    with pytest.raises(RecipeError, match="'sigma': must be a number, not true"):
        testing.recipe(registry, yaml.safe_load("- blur: {sigma: yes}"))


@pytest.mark.parametrize("sigma", [1.5, 12])
def test_a_recipe_matches_plain_pyvips(registry: Registry, sigma: float) -> None:
    photo = testing.photo("LadyBird.jpg").read_bytes()
    recipe = testing.recipe(registry, [{"resize": {"width": 400}}, {"blur": {"sigma": sigma}},
                                       {"format": {"type": "png"}}])
    ours = testing.decode(render(recipe, Source(photo), registry).data)
    theirs = pyvips.Image.thumbnail_buffer(photo, 400).gaussblur(sigma)
    assert (ours.width, ours.height) == (theirs.width, theirs.height)
    assert testing.mean_abs_diff(ours, theirs) < 0.5


def test_more_sigma_blurs_more() -> None:
    card = testing.busy_right_half(100)
    detail = [blur(card, sigma=s)[:3].colourspace("b-w").sobel().avg() for s in (0.6, 2, 8)]
    assert card.colourspace("b-w").sobel().avg() > detail[0] > detail[1] > detail[2]


def test_see_through_pixels_lend_no_colour() -> None:
    # An opaque white square on transparent black: its blurred rim fades out, but stays white.
    square = pyvips.Image.black(40, 40, bands=4).copy(interpretation="srgb")
    square = square.draw_rect([255, 255, 255, 255], 10, 10, 20, 20, fill=True)
    out = blur(square, sigma=3)
    assert (out.bands, out.format, out.interpretation) == (4, "uchar", "srgb")
    r, g, b, a = out(8, 20)  # just outside the square: partly transparent
    assert 0 < a < 255 and min(r, g, b) >= 250
    naive = square.gaussblur(3)(8, 20)
    assert naive[0] < 200  # what a blur without premultiplying does: a dark fringe


def test_an_opaque_image_stays_three_bands() -> None:
    out = blur(testing.gradient(64, 48), sigma=2)
    assert (out.bands, out.format, out.interpretation) == (3, "uchar", "srgb")


def test_apply_is_lazy() -> None:
    for image in (testing.unreadable(), testing.unreadable().bandjoin(255)):
        out = blur(image, sigma=2)
        with pytest.raises(pyvips.Error):
            out.avg()

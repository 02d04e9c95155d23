"""Tests of the sharpen step: parameters, the libvips call it makes, what it leaves alone, laziness."""
from __future__ import annotations

import pytest
import pyvips
import yaml

from pixline.engine import Context, Registry, RecipeError, Source, render, testing
from pixline_sharpen import Sharpen, SharpenParams


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def storm() -> bytes:
    return testing.photo("Storm.jpg").read_bytes()


def sharpen(image: pyvips.Image, **params: object) -> pyvips.Image:
    return Sharpen().apply(image, SharpenParams(**params), Context())


def edges(image: pyvips.Image) -> float:
    """Mean edge strength of the lightness (higher is crisper)."""
    return image[:3].colourspace("b-w")[0].sobel().avg()


# -- parameters ------------------------------------------------------------------------------------

def test_registered_as_a_plugin(registry: Registry) -> None:
    assert "sharpen" in registry.steps
    assert registry.plugins["sharpen"].distribution == "pixline-sharpen"


def test_defaults(registry: Registry) -> None:
    params = testing.recipe(registry, ["sharpen"]).steps[0].params
    assert (params.sigma, params.amount, params.threshold) == (0.5, 2.0, 2.0)


@pytest.mark.parametrize("params", [{"sigma": 0.5}, {"sigma": 10}, {"amount": 0}, {"amount": 10},
                                    {"threshold": 0}, {"threshold": 100},
                                    {"sigma": "0.8", "amount": "1.5"}])  # as an ad-hoc URL gives them
def test_valid_parameters(registry: Registry, params: dict) -> None:
    testing.recipe(registry, [{"sharpen": params}])


@pytest.mark.parametrize("params, parameter", [
    ({"sigma": 0.45}, "sigma"), ({"sigma": 11}, "sigma"), ({"sigma": "wide"}, "sigma"),
    ({"amount": -1}, "amount"), ({"amount": 10.5}, "amount"),
    ({"threshold": -0.1}, "threshold"), ({"threshold": 101}, "threshold"),
    ({"sigma": True}, "sigma"), ({"radius": 2}, "radius"),
])
def test_invalid_parameters_name_step_and_parameter(registry: Registry, params: dict, parameter: str) -> None:
    with pytest.raises(RecipeError) as err:
        testing.recipe(registry, [{"sharpen": params}])
    message = str(err.value)
    assert "(sharpen)" in message and f"'{parameter}'" in message, message


def test_yaml_yes_is_not_a_sigma(registry: Registry) -> None:
    with pytest.raises(RecipeError, match="'sigma': must be a number, not true"):
        testing.recipe(registry, yaml.safe_load("- sharpen: {sigma: yes}"))


# -- pixels ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [{}, {"sigma": 1.2, "amount": 3, "threshold": 0}])
def test_a_recipe_matches_plain_pyvips(registry: Registry, storm: bytes, params: dict) -> None:
    recipe = testing.recipe(registry, [{"resize": {"width": 600}}, {"sharpen": params}, {"format": {"type": "png"}}])
    ours = testing.decode(render(recipe, Source(storm), registry).data)
    p = SharpenParams(**params)
    # The resize step decodes a JPEG at the smallest DCT scale that still holds the output (1/2 for
    # Storm's 1920 px at 600), one step further than libvips' thumbnail; sharpening would magnify
    # that difference, so the reference decodes the same way.
    small = pyvips.Image.jpegload_buffer(storm, shrink=2).thumbnail_image(600)
    theirs = small.sharpen(sigma=p.sigma, x1=p.threshold, m1=0, m2=p.amount)
    assert (ours.width, ours.height) == (theirs.width, theirs.height)
    assert testing.mean_abs_diff(ours, theirs) < 0.5


def test_sharpening_makes_edges_crisper_and_more_so_with_amount(storm: bytes) -> None:
    small = pyvips.Image.thumbnail_buffer(storm, 600).copy_memory()
    plain, light, strong = edges(small), edges(sharpen(small, amount=1)), edges(sharpen(small, amount=4))
    assert plain < light < strong


def test_amount_zero_changes_nothing() -> None:
    image = testing.gradient(64, 48)
    assert sharpen(image, amount=0) is image


def test_flat_areas_below_the_threshold_are_left_alone() -> None:
    # Faint noise (±1 level) is under the default threshold of 2 L*: untouched, not boosted.
    noise = (pyvips.Image.gaussnoise(200, 100, sigma=0.6, mean=128)).cast("uchar")
    flat = noise.bandjoin([noise, noise]).copy(interpretation="srgb")
    assert testing.mean_abs_diff(sharpen(flat, amount=5), flat) < 0.05
    assert testing.mean_abs_diff(sharpen(flat, amount=5, threshold=0), flat) > 0.3


def test_colour_and_alpha_are_kept() -> None:
    image = testing.gradient(120, 80, bands=4)
    image = image[:3].bandjoin(testing.busy_right_half(40)[0].resize(2, kernel="nearest").crop(0, 0, 120, 80))
    out = sharpen(image.copy(interpretation="srgb"), amount=3)
    assert (out.bands, out.format, out.interpretation) == (4, "uchar", "srgb")
    assert testing.mean_abs_diff(out[3], image[3]) == 0
    # A smooth colour ramp has no edges to sharpen: its colours come back as they were.
    assert testing.mean_abs_diff(out[:3], image[:3]) < 1


def test_apply_is_lazy() -> None:
    out = sharpen(testing.unreadable())
    with pytest.raises(pyvips.Error):
        out.avg()

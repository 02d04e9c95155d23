"""Tests of the crop step: the three modes, their validation, clipping, gravity and trim."""
from __future__ import annotations

import pytest
import pyvips
import yaml

from pixline.engine import (Context, Deadline, ParameterError, Registry, RecipeError, RenderTimeoutError,
                            Source, testing)
from pixline.engine.pipeline import run_steps
from pixline_crop import Crop, CropParams, aspect_size, box_for


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def crop(image: pyvips.Image, **params: object) -> pyvips.Image:
    return Crop().apply(image, CropParams(**params), Context())


# -- parameters ------------------------------------------------------------------------------------

def test_registered_as_a_plugin(registry: Registry) -> None:
    assert "crop" in registry.steps
    assert registry.plugins["crop"].distribution == "pixline-crop"


@pytest.mark.parametrize("params", [
    {"width": 10, "height": 10},
    {"left": 0, "top": 5, "width": 10, "height": 10},
    {"left": 3, "top": 5, "width": 10, "height": 10, "unit": "px"},
    {"left": 0.25, "top": 0, "width": 0.5, "height": 1, "unit": "fraction"},
    {"aspect": "16:9"}, {"aspect": "1:1", "gravity": "north-west"}, {"aspect": "1.91:1", "gravity": "attention"},
    {"aspect": "4:5", "gravity": "entropy"}, {"aspect": " 3 : 2 ", "gravity": "center"},
    {"trim": True}, {"trim": True, "threshold": 0}, {"trim": True, "threshold": 255},
])
def test_valid_parameters(registry: Registry, params: dict) -> None:
    recipe = testing.recipe(registry, [{"crop": params}])
    assert recipe.steps[0].params.model_dump(exclude_unset=True).keys() == params.keys()


@pytest.mark.parametrize("params, parameter", [
    ({}, "trim"),                                                        # no mode: the message lists them
    ({"aspect": "16:9", "trim": True}, "aspect"),                        # two modes
    ({"width": 10, "height": 10, "aspect": "1:1"}, "aspect"),
    ({"width": 10}, "height"), ({"left": 5, "top": 5}, "width"),
    ({"width": 0, "height": 10}, "width"), ({"width": 10, "height": -1}, "height"),
    ({"left": -1, "width": 10, "height": 10}, "left"), ({"top": 70000, "width": 10, "height": 10}, "top"),
    ({"left": 2.5, "width": 10, "height": 10}, "left"),                  # fractional pixels
    ({"width": 10, "height": "tall"}, "height"),
    ({"width": 10, "height": 10, "unit": "cm"}, "unit"),
    ({"width": 1.5, "height": 0.5, "unit": "fraction"}, "width"),
    ({"left": 0.6, "width": 0.5, "height": 0.5, "unit": "fraction"}, "left"),
    ({"aspect": "16-9"}, "aspect"), ({"aspect": "0:1"}, "aspect"), ({"aspect": 969}, "aspect"),
    ({"aspect": "16:9", "gravity": "middle"}, "gravity"),
    ({"gravity": "north"}, "gravity"),
    ({"trim": False}, "trim"), ({"trim": "maybe"}, "trim"),
    ({"threshold": 20}, "threshold"), ({"trim": True, "threshold": 300}, "threshold"),
    ({"trim": True, "colour": "white"}, "colour"),
])
def test_invalid_parameters_name_step_and_parameter(registry: Registry, params: dict, parameter: str) -> None:
    with pytest.raises(RecipeError) as err:
        testing.recipe(registry, [{"crop": params}])
    message = str(err.value)
    assert "(crop)" in message and f"'{parameter}'" in message, message


def test_unquoted_yaml_ratio_gets_a_hint(registry: Registry) -> None:
    steps = yaml.safe_load("- crop: {aspect: 16:9}")  # YAML 1.1: base-60 integer 969
    with pytest.raises(RecipeError, match=r"quote the ratio"):
        testing.recipe(registry, steps)


def test_whole_pixel_floats_normalise_to_ints(registry: Registry) -> None:
    a = testing.recipe(registry, [{"crop": {"width": 10.0, "height": 10}}])
    b = testing.recipe(registry, [{"crop": {"width": 10, "height": 10}}])
    assert a.digest == b.digest and a.to_dict()["steps"][0]["crop"]["width"] == 10


# -- box mode ---------------------------------------------------------------------------------------

def test_pixel_box_takes_that_region() -> None:
    image = testing.gradient(200, 100)
    out = crop(image, left=50, top=20, width=40, height=30)
    assert (out.width, out.height) == (40, 30)
    assert out.getpoint(0, 0) == image.getpoint(50, 20)
    assert out.getpoint(39, 29) == image.getpoint(89, 49)


def test_fraction_box() -> None:
    image = testing.gradient(200, 100)
    out = crop(image, left=0.5, top=0.25, width=0.5, height=0.5, unit="fraction")
    assert (out.width, out.height) == (100, 50)
    assert out.getpoint(0, 0) == image.getpoint(100, 25)


def test_box_is_clipped_to_the_image() -> None:
    out = crop(testing.gradient(200, 100), left=150, top=80, width=100, height=100)
    assert (out.width, out.height) == (50, 20)


@pytest.mark.parametrize("left, top", [(200, 0), (0, 100), (500, 500)])
def test_box_outside_the_image_is_a_clear_error(left: int, top: int) -> None:
    with pytest.raises(ParameterError, match=r"crop: .*entirely outside the 200×100 image"):
        crop(testing.gradient(200, 100), left=left, top=top, width=10, height=10)


@pytest.mark.parametrize("size, params, box", [
    ((200, 100), {"left": 10, "top": 10, "width": 20, "height": 30}, (10, 10, 20, 30)),
    ((200, 100), {"left": 190, "top": 0, "width": 20, "height": 300}, (190, 0, 10, 100)),
    ((200, 100), {"left": 0.1, "top": 0.1, "width": 0.9, "height": 0.9, "unit": "fraction"}, (20, 10, 180, 90)),
    ((3, 3), {"width": 0.01, "height": 0.01, "unit": "fraction"}, (0, 0, 1, 1)),  # at least a pixel
])
def test_box_for(size: tuple, params: dict, box: tuple) -> None:
    assert box_for(*size, CropParams(**params)) == box


# -- aspect mode ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, ratio, out", [
    ((640, 480), 16 / 9, (640, 360)), ((640, 480), 1.0, (480, 480)), ((480, 640), 1.0, (480, 480)),
    ((640, 480), 4 / 3, (640, 480)), ((100, 100), 1000.0, (100, 1)), ((100, 100), 0.001, (1, 100)),
])
def test_aspect_size(size: tuple, ratio: float, out: tuple) -> None:
    assert aspect_size(*size, ratio) == out


@pytest.mark.parametrize("gravity, band, low, high", [
    ("north", 1, 0, 100), ("south", 1, 155, 255), ("centre", 1, 100, 155),  # green ramps down
])
def test_aspect_gravity_vertical(gravity: str, band: int, low: float, high: float) -> None:
    out = crop(testing.gradient(320, 480), aspect="16:9", gravity=gravity)
    assert (out.width, out.height) == (320, 180)
    assert low <= out[band].avg() <= high


@pytest.mark.parametrize("gravity, low, high", [("west", 0, 100), ("east", 155, 255), ("north-east", 155, 255)])
def test_aspect_gravity_horizontal(gravity: str, low: float, high: float) -> None:
    out = crop(testing.gradient(640, 320), aspect="1:1", gravity=gravity)
    assert (out.width, out.height) == (320, 320)
    assert low <= out[0].avg() <= high  # red ramps left → right


@pytest.mark.parametrize("gravity", ["attention", "entropy"])
def test_aspect_smart_gravity(gravity: str) -> None:
    out = crop(testing.busy_right_half(), aspect="1:1", gravity=gravity)
    assert (out.width, out.height) == (200, 200)
    assert out.deviate() > 30
    assert crop(testing.busy_right_half(), aspect="1:1", gravity="west").deviate() < 1


def test_aspect_already_right_is_unchanged() -> None:
    image = testing.gradient(320, 180)
    assert crop(image, aspect="16:9") is image


# -- trim mode --------------------------------------------------------------------------------------

def framed(border: list[float], inner: pyvips.Image) -> pyvips.Image:
    return inner.embed(30, 20, inner.width + 50, inner.height + 40, extend="background", background=border)


def test_trim_removes_a_uniform_border() -> None:
    out = crop(framed([255, 255, 255], testing.gradient(100, 80)), trim=True)
    assert (out.width, out.height) == (100, 80)


def test_trim_uses_the_top_left_colour_as_border() -> None:
    out = crop(framed([0, 40, 200], testing.gradient(100, 80)), trim=True)
    assert (out.width, out.height) == (100, 80)


def test_trim_removes_transparent_edges() -> None:
    out = crop(framed([0, 0, 0, 0], testing.gradient(100, 80, bands=4)), trim=True)
    assert (out.width, out.height, out.bands) == (100, 80, 4)


def test_trim_finds_opaque_content_of_the_border_colour_by_its_alpha() -> None:
    # White on transparent white: flattened, everything is border; only the alpha band tells.
    white = (pyvips.Image.black(60, 40, bands=4) + 255).cast("uchar").copy(interpretation="srgb")
    out = crop(framed([255, 255, 255, 0], white), trim=True)
    assert (out.width, out.height) == (60, 40)


def test_trim_threshold() -> None:
    faint = (pyvips.Image.black(60, 40, bands=3) + 5).cast("uchar").copy(interpretation="srgb")
    image = framed([0, 0, 0], faint)
    assert (crop(image, trim=True).width, crop(image, trim=True).height) == (image.width, image.height)
    strict = crop(image, trim=True, threshold=2)
    assert (strict.width, strict.height) == (60, 40)


def test_trim_all_border_is_unchanged() -> None:
    blank = (pyvips.Image.black(50, 50, bands=3) + 255).cast("uchar")
    out = crop(blank, trim=True)
    assert (out.width, out.height) == (50, 50)


# -- output size (what a server checks before rendering) --------------------------------------------

@pytest.mark.parametrize("params", [
    {"left": 10, "top": 20, "width": 100, "height": 50},
    {"left": 350, "top": 250, "width": 100, "height": 100},  # clipped to the image
    {"width": 4000, "height": 4000},
    {"left": 0.1, "top": 0.2, "width": 0.5, "height": 0.3, "unit": "fraction"},
    {"width": 0.001, "height": 0.001, "unit": "fraction"},
    {"aspect": "16:9"}, {"aspect": "1:3", "gravity": "east"}, {"aspect": "4:3"},
    {"aspect": "1:1", "gravity": "attention"}, {"aspect": "5:2", "gravity": "entropy"},
])
def test_output_size_is_the_rendered_size(params: dict) -> None:
    p = CropParams(**params)
    out = Crop().apply(testing.busy_right_half(200).resize(1.5), p, Context())  # 600×300
    assert Crop().output_size(p, 600, 300) == (out.width, out.height)


def test_output_size_of_a_box_outside_the_image_is_the_render_error() -> None:
    with pytest.raises(ParameterError, match="entirely outside the 200×100 image"):
        Crop().output_size(CropParams(left=200, width=10, height=10), 200, 100)


@pytest.mark.parametrize("image", [framed([255, 255, 255], testing.gradient(100, 80)),
                                   (pyvips.Image.black(50, 50, bands=3) + 255).cast("uchar")])
def test_trim_output_size_is_the_input_size_an_upper_bound(image: pyvips.Image) -> None:
    out = crop(image, trim=True)
    assert Crop().output_size(CropParams(trim=True), image.width, image.height) == (image.width, image.height)
    assert out.width <= image.width and out.height <= image.height


# -- in a recipe ------------------------------------------------------------------------------------

def test_crop_after_resize_in_a_recipe(registry: Registry) -> None:
    source = Source(testing.jpeg_bytes(testing.gradient(800, 600)))
    recipe = testing.recipe(registry, [{"resize": {"width": 400}}, {"crop": {"aspect": "1:1", "gravity": "east"}}])
    out = run_steps(recipe, source, Context())
    assert (out.width, out.height) == (300, 300)
    assert out[0].avg() > 150


@pytest.mark.parametrize("crop_params", [{"trim": True}, {"aspect": "1:1", "gravity": "attention"},
                                         {"aspect": "1:1", "gravity": "entropy"}])
def test_multi_pass_crops_after_a_shrink_on_load(registry: Registry, crop_params: dict) -> None:
    # After resize's open() the image comes from a sequential loader that cannot be read twice.
    framed_photo = testing.gradient(300, 200).embed(50, 50, 400, 300, extend="white")
    source = Source(testing.jpeg_bytes(framed_photo, Q=95))
    recipe = testing.recipe(registry, [{"resize": {"width": 200}}, {"crop": crop_params}])
    out = run_steps(recipe, source, Context())
    expected = (150, 100) if "trim" in crop_params else (150, 150)
    assert (out.width, out.height) == pytest.approx(expected, abs=2)
    assert out.avg() > 0  # every pixel computes: no "out of order read"


def test_crop_first_loads_the_full_image(registry: Registry) -> None:
    source = Source(testing.jpeg_bytes(testing.gradient(400, 300)))
    recipe = testing.recipe(registry, [{"crop": {"left": 100, "top": 0, "width": 200, "height": 300}}])
    out = run_steps(recipe, source, Context())
    assert (out.width, out.height) == (200, 300)
    assert Crop().shrink_hint(recipe.steps[0].params, 400, 300) is None


# -- the render's time budget -------------------------------------------------------------------------

@pytest.mark.parametrize("params", [{"trim": True}, {"aspect": "1:1", "gravity": "attention"}])
def test_modes_that_compute_pixels_stop_at_a_passed_deadline(params: dict) -> None:
    clock = testing.FakeClock()
    ctx = Context(deadline=Deadline(1, clock))
    clock.advance(2)
    with pytest.raises(RenderTimeoutError, match="stopped before the crop computes pixels"):
        Crop().apply(testing.gradient(64, 48), CropParams(**params), ctx)


def test_a_trim_that_runs_past_the_deadline_is_killed() -> None:
    # The deadline is set and checked in time, then passes while the pixels are computed.
    ctx = Context(deadline=Deadline(1, testing.FakeClock(expire_after=2)))
    with pytest.raises(pyvips.Error, match="killed"):
        Crop().apply(pyvips.Image.gaussnoise(4000, 4000).cast("uchar"), CropParams(trim=True), ctx)
    assert ctx.deadline.killed

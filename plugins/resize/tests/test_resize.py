"""Tests of the resize step: parameters, geometry, gravity, padding, shrink-on-load, both paths."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import Context, Deadline, Registry, RecipeError, RenderTimeoutError, Source, testing
from pixline.engine.pipeline import run_steps
from pixline.engine.colour import rgba as parse_colour
from pixline_resize import Fit, Resize, ResizeParams, plan_resize


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def storm() -> Source:
    return Source.from_path(testing.photo("Storm.jpg"))


@pytest.fixture(scope="module")
def storm_decoded(storm: Source) -> pyvips.Image:
    return storm.load().copy_memory()


def resize(image: pyvips.Image, **params: object) -> pyvips.Image:
    return Resize().apply(image, ResizeParams(**params), Context())


def pixel(image: pyvips.Image, x: int, y: int) -> list[float]:
    return image.getpoint(x, y)


# -- parameters ------------------------------------------------------------------------------------

def test_registered_as_a_plugin(registry: Registry) -> None:
    assert "resize" in registry.steps
    assert registry.plugins["resize"].distribution == "pixline-resize"


@pytest.mark.parametrize("params", [
    {"width": 1}, {"height": 16384}, {"width": 600, "height": 400},
    *({"width": 10, "height": 10, "fit": fit.value} for fit in Fit),
    {"width": 10, "height": 10, "fit": "cover", "gravity": "attention"},
    {"width": 10, "height": 10, "fit": "cover", "gravity": "entropy"},
    {"width": 10, "height": 10, "fit": "cover", "gravity": "northwest"},
    {"width": 10, "height": 10, "fit": "contain", "gravity": "south"},
    {"width": 10, "enlarge": True}, {"width": 10, "dpr": 1}, {"width": 10, "dpr": 2.5}, {"width": 10, "dpr": 4},
    {"width": 10, "height": 10, "fit": "contain", "background": "#000"},
    {"width": 10, "height": 10, "fit": "contain", "background": "#11223344"},
    {"width": 10, "height": 10, "fit": "contain", "background": "Transparent"},
    {"width": 4096, "dpr": 4},
])
def test_valid_parameters(registry: Registry, params: dict) -> None:
    recipe = testing.recipe(registry, [{"resize": params}])
    assert recipe.steps[0].params.model_dump(exclude_unset=True).keys() == params.keys()


@pytest.mark.parametrize("params, parameter", [
    ({}, "width"),
    ({"width": 0}, "width"), ({"width": 16385}, "width"), ({"width": -5}, "width"),
    ({"width": "wide"}, "width"), ({"width": 10.5}, "width"), ({"width": True}, "width"),
    ({"height": 0}, "height"), ({"height": 20000}, "height"),
    ({"width": 10, "fit": "squash"}, "fit"),
    ({"width": 10, "height": 10, "fit": "cover", "gravity": "up"}, "gravity"),
    ({"width": 10, "enlarge": "sometimes"}, "enlarge"),
    ({"width": 10, "dpr": 0.5}, "dpr"), ({"width": 10, "dpr": 4.5}, "dpr"), ({"width": 10, "dpr": "x"}, "dpr"),
    ({"width": 10000, "dpr": 2}, "dpr"),
    ({"width": 10, "height": 10, "fit": "contain", "background": "red"}, "background"),
    ({"width": 10, "height": 10, "fit": "contain", "background": "#12"}, "background"),
    ({"width": 10, "height": 10, "fit": "cover", "background": "#fff"}, "background"),
    ({"width": 10, "height": 10, "fit": "inside", "gravity": "north"}, "gravity"),
    ({"width": 10, "height": 10, "fit": "contain", "gravity": "attention"}, "gravity"),
    ({"width": 10, "colour": "red"}, "colour"),
])
def test_invalid_parameters_name_step_and_parameter(registry: Registry, params: dict, parameter: str) -> None:
    with pytest.raises(RecipeError) as err:
        testing.recipe(registry, [{"resize": params}])
    message = str(err.value)
    assert "(resize)" in message and f"'{parameter}'" in message, message


def test_yaml_recipe(tmp_path, registry: Registry) -> None:
    from pixline.engine import load_recipe

    path = tmp_path / "retina.yaml"
    path.write_text("steps:\n  - resize: {width: 600, height: 400, fit: cover, gravity: attention, dpr: 2}\n")
    params = load_recipe(path, registry).steps[0].params
    assert (params.width, params.height, params.fit, params.dpr) == (600, 400, Fit.COVER, 2.0)


@pytest.mark.parametrize("text, rgba", [
    ("white", (255, 255, 255, 255)), ("#000", (0, 0, 0, 255)), ("#f008", (255, 0, 0, 136)),
    ("#102030", (16, 32, 48, 255)), ("#10203040", (16, 32, 48, 64)), ("transparent", (255, 255, 255, 0)),
])
def test_parse_colour(text: str, rgba: tuple) -> None:
    assert parse_colour(text) == rgba


# -- geometry (the pure planner) -------------------------------------------------------------------

@pytest.mark.parametrize("size, params, scaled, output", [
    # one side given: the other follows the aspect ratio, whatever the fit
    ((1000, 500), {"width": 200}, (200, 100), (200, 100)),
    ((1000, 500), {"height": 100}, (200, 100), (200, 100)),
    ((1000, 500), {"width": 200, "fit": "cover"}, (200, 100), (200, 100)),
    # fill with one side keeps the other side as it is (sharp)
    ((1000, 500), {"width": 200, "fit": "fill"}, (200, 500), (200, 500)),
    # a box
    ((1000, 500), {"width": 200, "height": 200, "fit": "inside"}, (200, 100), (200, 100)),
    ((1000, 500), {"width": 200, "height": 200, "fit": "outside"}, (400, 200), (400, 200)),
    ((1000, 500), {"width": 200, "height": 200, "fit": "cover"}, (400, 200), (200, 200)),
    ((1000, 500), {"width": 200, "height": 200, "fit": "contain"}, (200, 100), (200, 200)),
    ((1000, 500), {"width": 200, "height": 300, "fit": "fill"}, (200, 300), (200, 300)),
    # dpr multiplies the box
    ((1000, 500), {"width": 100, "dpr": 2}, (200, 100), (200, 100)),
    ((1000, 500), {"width": 100, "height": 100, "fit": "cover", "dpr": 1.5}, (300, 150), (150, 150)),
    # no enlargement (default): a smaller input is not scaled up
    ((300, 200), {"width": 600}, (300, 200), (300, 200)),
    ((300, 200), {"width": 400, "height": 400, "fit": "inside"}, (300, 200), (300, 200)),
    ((300, 200), {"width": 400, "height": 400, "fit": "outside"}, (300, 200), (300, 200)),
    ((300, 200), {"width": 400, "height": 400, "fit": "cover"}, (300, 200), (300, 200)),
    ((800, 200), {"width": 400, "height": 400, "fit": "cover"}, (800, 200), (400, 200)),
    ((300, 200), {"width": 400, "height": 400, "fit": "contain"}, (300, 200), (400, 400)),
    ((300, 200), {"width": 400, "height": 100, "fit": "fill"}, (300, 100), (300, 100)),
    ((300, 200), {"width": 100, "dpr": 4}, (300, 200), (300, 200)),
    # enlarge: true
    ((300, 200), {"width": 600, "enlarge": True}, (600, 400), (600, 400)),
    ((300, 200), {"width": 400, "height": 400, "fit": "cover", "enlarge": True}, (600, 400), (400, 400)),
    ((300, 200), {"width": 400, "height": 400, "fit": "contain", "enlarge": True}, (400, 267), (400, 400)),
    ((300, 200), {"width": 400, "height": 100, "fit": "fill", "enlarge": True}, (400, 100), (400, 100)),
    # never below one pixel
    ((10000, 10), {"width": 100}, (100, 1), (100, 1)),
])
def test_plan(size: tuple, params: dict, scaled: tuple, output: tuple) -> None:
    plan = plan_resize(*size, ResizeParams(**params))
    assert (plan.scaled, plan.output) == (scaled, output)
    assert Resize().shrink_hint(ResizeParams(**params), *size) == scaled


@pytest.mark.parametrize("gravity, offset", [
    ("centre", (300, 0)), ("west", (0, 0)), ("east", (600, 0)), ("north-east", (600, 0)),
])
def test_plan_cover_offset(gravity: str, offset: tuple) -> None:
    plan = plan_resize(800, 200, ResizeParams(width=200, height=200, fit="cover", gravity=gravity))
    assert (plan.scaled, plan.output, plan.offset, plan.action) == ((800, 200), (200, 200), offset, "crop")


def test_plan_contain_offset() -> None:
    plan = plan_resize(400, 200, ResizeParams(width=200, height=200, fit="contain", gravity="south"))
    assert (plan.scaled, plan.output, plan.offset, plan.action) == ((200, 100), (200, 200), (0, 100), "pad")


@pytest.mark.parametrize("params, size", [
    ({"width": 200}, (200, 150)), ({"height": 150}, (200, 150)),
    ({"width": 200, "height": 200, "fit": "cover"}, (200, 200)),
    ({"width": 200, "height": 200, "fit": "contain"}, (200, 200)),
    ({"width": 200, "height": 50, "fit": "fill"}, (200, 50)),
    ({"width": 200, "height": 200, "fit": "inside"}, (200, 150)),
    ({"width": 200, "height": 200, "fit": "outside"}, (267, 200)),
    ({"width": 1000}, (400, 300)),
    ({"width": 1000, "enlarge": True}, (1000, 750)),
    ({"width": 500, "height": 500, "fit": "cover"}, (400, 300)),
    ({"width": 500, "height": 500, "fit": "contain"}, (500, 500)),
    ({"width": 100, "height": 100, "fit": "cover", "dpr": 3}, (300, 300)),
])
def test_apply_sizes(params: dict, size: tuple) -> None:
    out = resize(testing.gradient(400, 300), **params)
    assert (out.width, out.height) == size


# -- output size (what a server checks before rendering) -------------------------------------------

@pytest.mark.parametrize("size, params", [
    ((400, 300), {"width": 200}), ((400, 300), {"height": 150, "dpr": 2}),
    ((400, 300), {"width": 1000}), ((400, 300), {"width": 1000, "enlarge": True}),
    ((400, 300), {"width": 200, "height": 200, "fit": "cover"}),
    ((400, 300), {"width": 200, "height": 200, "fit": "cover", "gravity": "attention"}),
    ((400, 300), {"width": 500, "height": 500, "fit": "cover"}),
    ((400, 300), {"width": 500, "height": 500, "fit": "cover", "enlarge": True, "dpr": 1.5}),
    ((400, 300), {"width": 500, "height": 500, "fit": "contain"}),
    ((400, 300), {"width": 150, "height": 100, "fit": "contain", "dpr": 2}),
    ((400, 300), {"width": 200, "height": 200, "fit": "inside"}),
    ((400, 300), {"width": 300, "height": 300, "fit": "outside", "enlarge": True}),
    ((400, 300), {"width": 1, "fit": "fill"}), ((1, 300), {"width": 40, "enlarge": True}),
    ((400, 300), {"width": 50, "height": 120, "fit": "fill", "enlarge": True, "dpr": 2.5}),
    ((2000, 10), {"width": 100}),
])
def test_output_size_is_the_rendered_size(size: tuple, params: dict) -> None:
    p = ResizeParams(**params)
    image = testing.gradient(*size)
    applied = Resize().apply(image, p, Context())
    opened = Resize().open(Source(testing.png_bytes(image)), p, Context())
    expected = Resize().output_size(p, *size)
    assert (applied.width, applied.height) == expected
    assert (opened.width, opened.height) == expected


def test_recipe_output_sizes_follow_each_step(registry: Registry) -> None:
    # A 1-pixel-wide strip enlarged again: tall in between and at the end.
    recipe = testing.recipe(registry, [{"resize": {"width": 1, "fit": "fill"}},
                                       {"resize": {"width": 20, "enlarge": True}},
                                       {"format": {"type": "png"}}])
    assert recipe.output_sizes(40, 30) == [(1, 30), (20, 600), (20, 600)]
    out = run_steps(recipe, Source(testing.png_bytes(testing.gradient(40, 30))), Context())
    assert (out.width, out.height) == (20, 600)


# -- gravity picks the right region ----------------------------------------------------------------

@pytest.mark.parametrize("gravity, band, low, high", [
    ("west", 0, 0, 80), ("east", 0, 175, 255), ("centre", 0, 90, 165),   # red ramps left → right
    ("north", 1, 0, 80), ("south", 1, 175, 255),                          # green ramps top → bottom
])
def test_cover_gravity_region(gravity: str, band: int, low: float, high: float) -> None:
    wide = band == 0
    image = testing.gradient(400, 200) if wide else testing.gradient(200, 400)
    out = resize(image, width=100, height=100, fit="cover", gravity=gravity)
    assert (out.width, out.height) == (100, 100)
    assert low <= out[band].avg() <= high


@pytest.mark.parametrize("gravity", ["attention", "entropy"])
def test_smart_gravity_finds_the_busy_half(gravity: str) -> None:
    out = resize(testing.busy_right_half(), width=100, height=100, fit="cover", gravity=gravity)
    assert (out.width, out.height) == (100, 100)
    assert out.deviate() > 30  # the crop is in the noise, not the flat grey
    west = resize(testing.busy_right_half(), width=100, height=100, fit="cover", gravity="west")
    assert west.deviate() < 1


def test_a_smart_crop_stops_at_a_passed_deadline() -> None:
    clock = testing.FakeClock()
    ctx = Context(deadline=Deadline(1, clock))
    clock.advance(2)
    params = ResizeParams(width=100, height=100, fit="cover", gravity="attention")
    with pytest.raises(RenderTimeoutError, match="stopped before the smart crop"):
        Resize().apply(testing.busy_right_half(), params, ctx)


def test_a_smart_crop_that_runs_past_the_deadline_is_killed() -> None:
    # Set and checked in time; the deadline passes while the scaled image is computed.
    ctx = Context(deadline=Deadline(1, testing.FakeClock(expire_after=2)))
    params = ResizeParams(width=3000, height=1000, fit="cover", gravity="attention")
    with pytest.raises(pyvips.Error, match="killed"):
        Resize().apply(pyvips.Image.gaussnoise(4000, 4000).cast("uchar"), params, ctx)
    assert ctx.deadline.killed


# -- contain: padding -------------------------------------------------------------------------------

def test_contain_pads_with_white_around_the_centre() -> None:
    out = resize(testing.gradient(400, 200), width=200, height=200, fit="contain")
    assert (out.width, out.height, out.bands) == (200, 200, 3)
    assert pixel(out, 100, 10) == [255, 255, 255] and pixel(out, 100, 190) == [255, 255, 255]
    assert pixel(out, 100, 100) != [255, 255, 255]


def test_contain_gravity_and_background() -> None:
    out = resize(testing.gradient(400, 200), width=200, height=200, fit="contain", gravity="north",
                 background="#000")
    assert pixel(out, 100, 190) == [0, 0, 0]
    assert pixel(out, 199, 10)[0] > 200  # the picture's red right edge is at the top


def test_contain_keeps_alpha_and_pads_transparent() -> None:
    out = resize(testing.gradient(400, 200, bands=4), width=200, height=200, fit="contain",
                 background="transparent")
    assert out.bands == 4
    assert pixel(out, 100, 10)[3] == 0 and pixel(out, 100, 100)[3] == 255


def test_contain_adds_alpha_for_a_see_through_background() -> None:
    out = resize(testing.gradient(400, 200), width=200, height=200, fit="contain", background="#ff000080")
    assert out.bands == 4
    assert pixel(out, 100, 10) == [255, 0, 0, 128] and pixel(out, 100, 100)[3] == 255


def test_contain_opaque_background_on_alpha_image() -> None:
    out = resize(testing.gradient(400, 200, bands=4), width=200, height=200, fit="contain")
    assert pixel(out, 100, 10) == [255, 255, 255, 255]


@pytest.mark.parametrize("kind", ["grey", "grey-alpha", "rgb16", "cmyk", "cmyk-profile"])
@pytest.mark.parametrize("width", [64, 32])  # 64: padded as it is (apply); 32: shrunk on load (open)
def test_contain_pads_every_kind_of_input_with_its_background(registry: Registry, kind: str,
                                                              width: int) -> None:
    """The pipeline hands resize a normal image (8-bit sRGB), whatever came in: a coloured canvas
    around grey, 16-bit or CMYK pictures is the colour asked for."""
    source = Source(testing.sample_inputs(64, 48)[kind])
    first = [{"crop": {"left": 0, "top": 0, "width": 64, "height": 48}}] if width == 64 else []
    recipe = testing.recipe(registry, [*first, {"resize": {"width": width, "height": width,
                                                           "fit": "contain", "background": "#ff0000"}}])
    out = run_steps(recipe, source, Context())
    assert (out.width, out.height, out.format, out.interpretation) == (width, width, "uchar", "srgb")
    assert pixel(out, width // 2, 1)[:3] == [255, 0, 0]


# -- the open() path: EXIF orientation, shrink-on-load, agreement with apply() ------------------------

def test_exif_orientation_comes_out_upright() -> None:
    source = Source(testing.jpeg_bytes(testing.gradient(640, 480), orientation=6))
    assert source.size == (480, 640)
    out = Resize().open(source, ResizeParams(width=240), Context())
    assert (out.width, out.height) == (240, 320)
    # Orientation 6 is a quarter turn clockwise: the stored left edge (red 0) becomes the top.
    upright = testing.gradient(640, 480).rot90().thumbnail_image(240, height=320, size="force")
    assert testing.mean_abs_diff(out, upright) < 4
    assert out[0].crop(0, 0, 240, 20).avg() < 30 and out[0].crop(0, 300, 240, 20).avg() > 225


def test_exif_orientation_cover_through_run_steps(registry: Registry) -> None:
    source = Source(testing.jpeg_bytes(testing.gradient(640, 480), orientation=6))
    recipe = testing.recipe(registry, [{"resize": {"width": 100, "height": 200, "fit": "cover",
                                                   "gravity": "north"}}])
    out = run_steps(recipe, source, Context())
    assert (out.width, out.height) == (100, 200)
    assert out[0].avg() < 128  # the top half of the upright picture: low red


def test_open_uses_shrink_on_load_not_a_full_decode(monkeypatch, storm: Source, registry: Registry) -> None:
    def no_full_decode(self: Source) -> pyvips.Image:
        raise AssertionError("Source.load() was called: the image was decoded at full size")

    calls = []
    thumbnail = Source.thumbnail

    def spy(self: Source, width: int, **options: object) -> pyvips.Image:
        calls.append((width, options))
        return thumbnail(self, width, **options)

    monkeypatch.setattr(Source, "load", no_full_decode)
    monkeypatch.setattr(Source, "thumbnail", spy)
    recipe = testing.recipe(registry, [{"resize": {"width": 300, "height": 300, "fit": "cover"}}])
    out = run_steps(recipe, storm, Context())
    assert (out.width, out.height) == (300, 300)
    assert calls == [(450, {"height": 300, "size": "force"})]


@pytest.mark.parametrize("params", [
    {"width": 300},
    {"width": 300, "height": 300, "fit": "cover", "gravity": "south-east"},
    {"width": 300, "height": 300, "fit": "cover", "gravity": "attention"},
    {"width": 300, "height": 300, "fit": "contain"},
    {"width": 200, "height": 300, "fit": "fill"},
    {"width": 300, "height": 300, "fit": "outside"},
])
def test_open_and_apply_agree_on_a_photo(storm: Source, storm_decoded: pyvips.Image, params: dict) -> None:
    p = ResizeParams(**params)
    opened = Resize().open(storm, p, Context())
    applied = Resize().apply(storm_decoded, p, Context())
    assert (opened.width, opened.height) == (applied.width, applied.height)
    assert testing.mean_abs_diff(opened, applied) < 3


def test_open_converts_an_embedded_profile_to_srgb() -> None:
    red = (pyvips.Image.black(64, 64) + [255, 0, 0]).cast("uchar").copy(interpretation="srgb")
    p3 = red.icc_transform("p3").jpegsave_buffer(keep="icc", Q=100)
    out = Resize().open(Source(p3), ResizeParams(width=32), Context())
    assert pixel(out, 16, 16)[0] > 250 and pixel(out, 16, 16)[1] < 10

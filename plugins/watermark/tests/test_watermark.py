"""Tests of pixline-watermark: placement, opacity, templates, image assets, tiling, validation."""
from __future__ import annotations

import pytest
import pyvips

import pixline_watermark
from pixline.engine import (Context, Deadline, NotFoundError, RecipeError, Registry, RenderError,
                            RenderTimeoutError, Source, render)
from pixline.engine.pipeline import run_steps
from pixline.engine.testing import FakeClock, decode, gradient, png_bytes, recipe, sample_inputs
from pixline_watermark import fill_template

W, H, MARGIN = 200, 150, 10
RED = [255, 0, 0]


@pytest.fixture(scope="module")
def registry() -> Registry:
    # Only this plugin: the tests must not break when a sibling plugin is mid-edit.
    reg = Registry()
    reg.add("watermark", pixline_watermark, "pixline-watermark", "test")
    return reg


def flat(value: int = 60, width: int = W, height: int = H) -> pyvips.Image:
    """A flat dark sRGB image: any white or red overlay shows on it."""
    return pyvips.Image.black(width, height).new_from_image([value] * 3).copy(interpretation="srgb")


def logo(colour: list[int] = RED, width: int = 40, height: int = 20) -> pyvips.Image:
    """A solid, opaque RGBA rectangle: its footprint on the output is exact."""
    return pyvips.Image.black(width, height).new_from_image(colour + [255]).copy(interpretation="srgb")


def apply(registry: Registry, params: dict, image: pyvips.Image | None = None, **ctx: object) -> pyvips.Image:
    rs = recipe(registry, [{"watermark": params}]).steps[0]
    return rs.step.apply(image if image is not None else flat(), rs.params, Context(**ctx))


def changed(a: pyvips.Image, b: pyvips.Image) -> pyvips.Image:
    """A one-band mask, 255 where any band of ``a`` and ``b`` differ."""
    a, b = a.cast("float"), b.cast("float")
    return ((a - b).abs() > 0).bandor()


def changed_box(a: pyvips.Image, b: pyvips.Image) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the pixels that differ."""
    return tuple(changed(a, b).find_trim(threshold=0, background=[0]))


@pytest.fixture()
def logo_file(tmp_path):
    path = tmp_path / "logo.png"
    logo().pngsave(str(path))
    return str(path)


def test_plugin_is_found_through_its_entry_point():
    reg = Registry.load()
    assert reg.plugins["watermark"].distribution == "pixline-watermark"
    assert "watermark" in reg.steps


def test_text_changes_only_the_south_east_corner(registry):
    base = flat()
    out = apply(registry, {"text": "© pixline", "opacity": 1}, base)
    assert (out.width, out.height, out.bands) == (W, H, 3)
    left, top, width, height = changed_box(out, base)
    assert width > 0 and height > 0
    assert left > W // 2 and top > H // 2
    assert left + width <= W - MARGIN and top + height <= H - MARGIN


@pytest.mark.parametrize("position, left, top", [
    ("north-west", MARGIN, MARGIN),
    ("north", (W - 50) // 2, MARGIN),
    ("north-east", W - MARGIN - 50, MARGIN),
    ("west", MARGIN, (H - 25) // 2),
    ("centre", (W - 50) // 2, (H - 25) // 2),
    ("east", W - MARGIN - 50, (H - 25) // 2),
    ("south-west", MARGIN, H - MARGIN - 25),
    ("south", (W - 50) // 2, H - MARGIN - 25),
    ("southeast", W - MARGIN - 50, H - MARGIN - 25),  # the alias spelling works too
])
def test_image_is_placed_at_its_position(registry, logo_file, position, left, top):
    base = flat()
    out = apply(registry, {"image": logo_file, "scale": 0.25, "opacity": 1, "position": position}, base)
    # scale 0.25 of a 200 px image: the 40×20 logo becomes 50×25.
    assert changed_box(out, base) == pytest.approx((left, top, 50, 25), abs=1)
    assert out(left + 25, top + 12) == pytest.approx(RED, abs=1)


def test_opacity_zero_changes_nothing(registry, logo_file):
    base = flat()
    for params in ({"text": "© pixline", "opacity": 0}, {"image": logo_file, "opacity": 0}):
        assert (apply(registry, params, base) - base).abs().max() == 0


def test_opacity_blends_the_watermark(registry, logo_file):
    base = flat(60)
    out = apply(registry, {"image": logo_file, "opacity": 0.5, "position": "centre"}, base)
    assert out(W // 2, H // 2) == pytest.approx([(60 + 255) / 2, 30, 30], abs=2)


def test_template_is_filled_from_upload_fields(registry):
    base = flat()
    filled = apply(registry, {"text": "© {owner}"}, base, fields={"owner": "Ann Lee"})
    literal = apply(registry, {"text": "© Ann Lee"}, base)
    other = apply(registry, {"text": "© {owner}"}, base, fields={"owner": "Bob"})
    assert (filled - literal).abs().max() == 0
    assert (filled - other).abs().max() > 0


def test_missing_field_uses_its_fallback_or_nothing(registry):
    base = flat()
    fallback = apply(registry, {"text": "© {owner|pixline}"}, base, fields={})
    literal = apply(registry, {"text": "© pixline"}, base)
    assert (fallback - literal).abs().max() == 0
    assert apply(registry, {"text": "{owner}"}, base, fields={"owner": "  "}) is base


def test_fill_template():
    assert fill_template("{{a}} {b}", {"b": 7}) == "{a} 7"
    assert fill_template("{a|x} {b|y}", {"a": "A"}) == "A y"
    assert fill_template("© {a}", {}) == "© "
    assert fill_template("{a}", {"a": "line\nbreak\x00"}) == "line break "
    assert len(fill_template("{a}", {"a": "x" * 10_000})) == pixline_watermark.MAX_TEXT


def test_markup_characters_are_drawn_as_text(registry):
    base = flat()
    out = apply(registry, {"text": "{owner}", "opacity": 1}, base, fields={"owner": "<b>A & 'B'</b>"})
    assert changed(out, base).max() == 255


def test_text_size_follows_the_image_width(registry):
    small, large = flat(width=200, height=150), flat(width=400, height=300)
    w_small = changed_box(apply(registry, {"text": "pixline", "size": 0.08}, small), small)[2]
    w_large = changed_box(apply(registry, {"text": "pixline", "size": 0.08}, large), large)[2]
    assert 1.7 < w_large / w_small < 2.3


def test_oversized_watermark_is_fitted_inside_the_margins(registry):
    base = flat()
    out = apply(registry, {"text": "a rather long copyright line", "size": 0.5, "opacity": 1}, base)
    left, top, width, height = changed_box(out, base)
    assert left >= MARGIN and top >= MARGIN
    assert left + width <= W - MARGIN and top + height <= H - MARGIN


def test_colour_and_its_american_spelling(registry):
    base = flat()
    british = apply(registry, {"text": "pixline", "colour": "#00ff00", "opacity": 1}, base)
    american = apply(registry, {"text": "pixline", "color": "#00FF00", "opacity": 1}, base)
    assert (british - american).abs().max() == 0
    # Green went up under the text; red can only fall towards the watermark's 0.
    assert british.extract_band(1).max() > 200 and british.extract_band(0).max() == 60


def test_asset_loader_is_used_and_its_result_cached(registry):
    calls = []

    def load(ref: str) -> bytes:
        calls.append(ref)
        return png_bytes(logo())

    base = flat()
    for _ in range(3):
        out = apply(registry, {"image": "store:cached-logo.png", "opacity": 1, "position": "centre"},
                    base, load_asset=load)
        assert out(W // 2, H // 2) == pytest.approx(RED, abs=1)
    assert calls == ["store:cached-logo.png"]


def test_edited_watermark_file_is_read_again(registry, tmp_path):
    path = tmp_path / "changing.png"
    params = {"image": str(path), "opacity": 1, "position": "centre"}
    logo(RED).pngsave(str(path))
    assert apply(registry, params)(W // 2, H // 2) == pytest.approx(RED, abs=1)
    logo([0, 0, 255], width=60).pngsave(str(path))
    assert apply(registry, params)(W // 2, H // 2) == pytest.approx([0, 0, 255], abs=1)


def test_grey_and_greyscale_watermarks(registry, tmp_path):
    path = tmp_path / "grey.png"
    pyvips.Image.black(40, 20).new_from_image(200).pngsave(str(path))  # one band, no alpha
    out = apply(registry, {"image": str(path), "opacity": 1, "position": "centre"})
    assert out(W // 2, H // 2) == pytest.approx([200, 200, 200], abs=1)


@pytest.mark.parametrize("params, ctx", [
    ({"image": "logo.png"}, {}),                                     # relative, no loader
    ({"image": "/nonexistent/logo.png"}, {}),                         # no such file
    ({"image": "store:missing.png"}, {"load_asset": "missing"}),      # loader says not found
    ({"image": "store:junk.png"}, {"load_asset": "junk"}),            # not an image
])
def test_unusable_watermark_image_is_a_render_error_naming_it(registry, params, ctx):
    def missing(ref: str) -> bytes:
        raise NotFoundError(f"asset {ref!r} not found")

    loaders = {"missing": missing, "junk": lambda ref: b"not an image"}
    ctx = {"load_asset": loaders[ctx["load_asset"]]} if ctx else {}
    with pytest.raises(RenderError, match=params["image"]):
        apply(registry, params, **ctx)


def test_tiling_covers_the_image(registry, logo_file):
    base = flat()
    out = apply(registry, {"image": logo_file, "scale": 0.1, "tile": True, "margin": 10}, base)
    mask = changed(out, base)
    for x, y in ((0, 0), (W // 2, 0), (0, H // 2), (W // 2, H // 2)):
        assert mask.crop(x, y, W // 2, H // 2).max() == 255, (x, y)
    # 20×10 tiles in 30×20 cells from the top-left corner: 7 columns of 20 px (the last one ends at
    # 200) and 8 rows (the last one cut to 10 px) are covered.
    assert mask.avg() / 255 == pytest.approx((7 * 20 / W) * ((7 * 10 + 10) / H), abs=0.01)


@pytest.mark.parametrize("params", [{"text": "pixline"}, {"image": "LOGO", "scale": 1, "tile": True},
                                    {"text": "a very long text that does not fit", "size": 0.5}])
def test_output_size_is_the_rendered_size(registry, logo_file, params):
    params = {k: logo_file if v == "LOGO" else v for k, v in params.items()}
    rs = recipe(registry, [{"watermark": params}]).steps[0]
    out = rs.step.apply(flat(), rs.params, Context())
    assert rs.step.output_size(rs.params, W, H) == (out.width, out.height) == (W, H)


def test_image_with_alpha_keeps_its_alpha(registry, logo_file):
    base = gradient(W, H).bandjoin(128).copy(interpretation="srgb")
    out = apply(registry, {"image": logo_file, "opacity": 1, "position": "north-west", "margin": 0}, base)
    assert out.bands == 4
    assert out(W - 1, H - 1)[3] == 128  # untouched part
    assert out(5, 5) == pytest.approx(RED + [255], abs=1)  # opaque watermark over half-transparent


@pytest.mark.parametrize("bands, expected_bands", [(1, 3), (2, 4)])
def test_grey_images_take_a_watermark(registry, logo_file, bands, expected_bands):
    base = pyvips.Image.black(W, H).new_from_image([90] * bands).copy(interpretation="b-w")
    out = apply(registry, {"image": logo_file, "opacity": 1, "position": "centre"}, base)
    assert out.bands == expected_bands and out.interpretation == "srgb"
    assert out(W // 2, H // 2)[:3] == pytest.approx(RED, abs=1)
    assert out(2, 2)[:3] == pytest.approx([90, 90, 90], abs=1)


@pytest.mark.parametrize("kind", ["rgb16", "grey16", "cmyk", "p3-profile"])
def test_every_kind_of_image_takes_a_watermark_through_the_pipeline(registry, logo_file, kind):
    source = Source(sample_inputs(W, H)[kind])
    out = run_steps(recipe(registry, [{"watermark": {"image": logo_file, "opacity": 1,
                                                     "position": "centre"}}]), source, Context())
    assert out.format == "uchar" and out(W // 2, H // 2) == pytest.approx(RED, abs=1)


def test_renders_through_the_pipeline(registry):
    pixline_format = pytest.importorskip("pixline_format")
    reg = Registry()
    reg.add("watermark", pixline_watermark)
    reg.add("format", pixline_format)
    source = Source(png_bytes(flat()))
    plain = recipe(reg, [{"format": {"type": "png"}}])
    marked = recipe(reg, [{"watermark": {"text": "© {owner}"}}, {"format": {"type": "png"}}])
    a = decode(render(plain, source, reg).data)
    b = decode(render(marked, source, reg, Context(fields={"owner": "Ann"})).data)
    left, top, _, _ = changed_box(a, b)
    assert left > W // 2 and top > H // 2


@pytest.mark.parametrize("params, parameter", [
    ({"text": "x", "opacity": 2}, "opacity"),
    ({"text": "x", "opacity": -0.1}, "opacity"),
    ({"text": "x", "position": "top-left"}, "position"),
    ({"text": "x", "position": "attention"}, "position"),
    ({"text": "x", "image": "/logo.png"}, "image"),
    ({}, "text"),
    ({"opacity": 0.5}, "text"),
    ({"text": ""}, "text"),
    ({"text": "{owner"}, "text"),
    ({"text": "{owner.__class__}"}, "text"),
    ({"text": "x", "colour": "whiteish"}, "colour"),
    ({"text": "x", "color": "#ffff0"}, "color"),
    ({"text": "x", "size": 0}, "size"),
    ({"text": "x", "size": 0.9}, "size"),
    ({"text": "x", "font": "sans 12"}, "font"),
    ({"text": "x", "font": "<b>"}, "font"),
    ({"text": "x", "font": "sans\n"}, "font"),
    ({"text": "x", "scale": 0.3}, "scale"),
    ({"image": "/logo.png", "font": "serif"}, "font"),
    ({"image": "/logo.png", "size": 0.1}, "size"),
    ({"image": "/logo.png", "scale": 1.5}, "scale"),
    ({"image": "/logo.png", "tile": True, "position": "north"}, "position"),
    ({"text": "x", "margin": -1}, "margin"),
    ({"text": "x", "rotate": 45}, "rotate"),
])
def test_invalid_parameters_name_step_and_parameter(registry, params, parameter):
    with pytest.raises(RecipeError) as err:
        recipe(registry, [{"watermark": params}])
    message = str(err.value)
    assert "(watermark)" in message and f"parameter '{parameter}'" in message


def test_a_watermark_is_not_drawn_past_the_deadline(registry: Registry) -> None:
    # Setting text happens when the step runs, not at encode time: it is checked against the deadline.
    clock = FakeClock()
    deadline = Deadline(1, clock)
    clock.advance(2)
    with pytest.raises(RenderTimeoutError, match="stopped before drawing the watermark"):
        apply(registry, {"text": "late"}, deadline=deadline)

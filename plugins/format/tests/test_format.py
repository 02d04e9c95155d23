"""Tests of pixline-format: each encoder, the format step's options and validation, negotiation."""
from __future__ import annotations

import re
import types

import pytest
import pyvips

import pixline_format
from pixline.engine import Context, Encoder, RecipeError, Registry, Source, hookimpl, render
from pixline.engine.testing import decode, gradient, jpeg_bytes, png_bytes, recipe

# Small inputs: the machine is shared, and every property checked here shows at 64×48.
W, H = 64, 48
LOADERS = {"jpeg": "jpegload", "png": "pngload", "webp": "webpload", "avif": "heifload", "gif": "gifload"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    # Only this plugin: the tests must not break when a sibling plugin is mid-edit.
    reg = Registry()
    reg.add("format", pixline_format, "pixline-format", "test")
    return reg


def run(registry: Registry, params: dict, data: bytes | None = None, accept: str | None = None,
        **recipe_extra: object):
    source = Source(data if data is not None else jpeg_bytes(gradient(W, H), Q=95))
    return render(recipe(registry, [{"format": params}], **recipe_extra), source, registry,
                  Context(accept=accept))


def transparent_left_half() -> bytes:
    """A PNG whose left half is fully transparent and right half opaque."""
    image = gradient(W, H)
    alpha = (pyvips.Image.xyz(W, H)[0] >= W // 2).ifthenelse(255, 0).cast("uchar")
    return png_bytes(image.bandjoin(alpha))


def test_plugin_is_found_through_its_entry_point():
    reg = Registry.load()
    assert reg.plugins["format"].distribution == "pixline-format"
    assert {"jpeg", "png", "webp", "avif", "gif"} <= set(reg.plugins["format"].encoders)
    assert "format" in reg.steps


@pytest.mark.parametrize("fmt", sorted(LOADERS))
def test_each_encoder_writes_its_format(registry, fmt):
    out = run(registry, {"type": fmt})
    image = decode(out.data)
    assert image.get("vips-loader").startswith(LOADERS[fmt])
    if fmt == "avif":
        assert image.get("heif-compression") == "av1"
    assert (out.format, out.width, out.height) == (fmt, W, H)
    assert out.media_type == f"image/{fmt}" and not out.negotiated


@pytest.mark.parametrize("fmt", sorted(LOADERS))
def test_grey_input_encodes_in_every_format(registry, fmt):
    out = run(registry, {"type": fmt}, data=jpeg_bytes(gradient(W, H).colourspace("b-w")))
    assert decode(out.data).width == W


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_quality_changes_size(registry, fmt):
    low = run(registry, {"type": fmt, "quality": 20})
    high = run(registry, {"type": fmt, "quality": 95})
    assert len(low.data) < len(high.data)


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_default_quality_is_the_documented_one(registry, fmt):
    default = run(registry, {"type": fmt})
    explicit = run(registry, {"type": fmt, "quality": pixline_format.DEFAULT_QUALITY[fmt]})
    other = run(registry, {"type": fmt, "quality": pixline_format.DEFAULT_QUALITY[fmt] - 30})
    assert default.data == explicit.data != other.data


def test_progressive_jpeg_is_multiscan(registry):
    assert decode(run(registry, {"type": "jpeg", "progressive": True}).data).get("jpeg-multiscan") == 1
    assert decode(run(registry, {"type": "jpeg"}).data).get("jpeg-multiscan") == 0


def test_progressive_png_is_interlaced(registry):
    fields = decode(run(registry, {"type": "png", "progressive": True}).data).get_fields()
    assert "interlaced" in fields
    assert "interlaced" not in decode(run(registry, {"type": "png"}).data).get_fields()


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_lossless_keeps_every_pixel(registry, fmt):
    data = png_bytes(gradient(W, H))
    original = decode(data)
    lossless = decode(run(registry, {"type": fmt, "lossless": True}, data=data).data)
    lossy = decode(run(registry, {"type": fmt}, data=data).data)
    assert (lossless - original).abs().max() == 0
    assert (lossy - original).abs().max() > 0


def test_png_palette_is_smaller_and_paletted(registry):
    data = png_bytes(gradient(W, H))
    full = run(registry, {"type": "png"}, data=data)
    paletted = run(registry, {"type": "png", "palette": True, "quality": 60}, data=data)
    assert decode(paletted.data).get("palette") == 1
    assert "palette" not in decode(full.data).get_fields()
    assert len(paletted.data) < len(full.data)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_effort_changes_output(registry, fmt):
    low, high = pixline_format.EFFORT[fmt][:2]
    fastest, smallest = run(registry, {"type": fmt, "effort": low}), run(registry, {"type": fmt, "effort": high})
    assert len(smallest.data) < len(fastest.data)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_metadata_is_stripped_unless_kept(registry, fmt):
    data = jpeg_bytes(gradient(W, H), orientation=1)  # carries EXIF
    assert "exif-data" in decode(data).get_fields()
    stripped = decode(run(registry, {"type": fmt}, data=data).data)
    kept = decode(run(registry, {"type": fmt}, data=data, keep_metadata=True).data)
    assert "exif-data" not in stripped.get_fields()
    assert "icc-profile-data" not in stripped.get_fields()
    assert "exif-data" in kept.get_fields()


def test_alpha_is_flattened_onto_the_background_for_jpeg(registry):
    out = decode(run(registry, {"type": "jpeg", "background": "#FF0000"}, data=transparent_left_half()).data)
    assert out.bands == 3
    red = out.crop(2, 2, 8, 8).stats()  # inside the transparent half, away from the edge
    assert [red(4, 1)[0], red(4, 2)[0], red(4, 3)[0]] == pytest.approx([255, 0, 0], abs=8)
    assert out(W - 4, 4) == pytest.approx(gradient(W, H)(W - 4, 4), abs=8)  # opaque half untouched


def test_alpha_is_kept_by_formats_that_have_it(registry):
    for fmt in ("png", "webp", "avif"):
        out = decode(run(registry, {"type": fmt}, data=transparent_left_half()).data)
        assert out.bands == 4 and out(2, 2)[3] == 0, fmt


@pytest.mark.parametrize("params, parameter", [
    ({"type": "jpeg", "lossless": True}, "lossless"),
    ({"type": "gif", "lossless": True}, "lossless"),
    ({"type": "webp", "progressive": True}, "progressive"),
    ({"type": "jpeg", "palette": True}, "palette"),
    ({"type": "png", "quality": 50}, "quality"),
    ({"type": "gif", "quality": 50}, "quality"),
    ({"type": "jpeg", "effort": 3}, "effort"),
    ({"type": "webp", "effort": 7}, "effort"),
    ({"type": "auto", "effort": 8}, "effort"),  # fine for avif, too high for the webp candidate
    ({"type": "webp", "lossless": True, "quality": 90}, "quality"),
    ({"type": "webp", "qualities": {"webp": 70}}, "qualities"),
    ({"qualities": {"png": 70}}, "qualities"),
    ({"qualities": {"avif": 0}}, "qualities"),
    ({"qualities": {"bmp": 50}}, "qualities"),
    ({"lossless": True, "qualities": {"webp": 70}}, "qualities"),
    ({"type": "png", "lossless": True, "palette": True}, "palette"),
    ({"type": "jpeg", "candidates": ["webp"]}, "candidates"),
    ({"candidates": []}, "candidates"),
    ({"candidates": ["Bmp"]}, "candidates"),
    ({"type": "image/bmp"}, "type"),
    ({"type": "jpeg", "qualities": {"bmp": 50}}, "qualities"),
    ({"quality": 0}, "quality"),
    ({"quality": 101}, "quality"),
    ({"effort": -1}, "effort"),
    ({"background": "whiteish"}, "background"),
    ({"background": "#12345"}, "background"),
    ({"lossless": "maybe"}, "lossless"),
    ({"qualty": 80}, "qualty"),
    ({"type": "jpeg", "quality": "auto:max"}, "quality"),
    ({"type": "jpeg", "quality": "auto:12"}, "quality"),
    ({"type": "jpeg", "quality": "high"}, "quality"),
    ({"type": "jpeg", "quality": True}, "quality"),
    ({"type": "jpeg", "quality": 80.5}, "quality"),
    ({"type": "png", "quality": "auto"}, "quality"),
    ({"type": "png", "palette": True, "quality": "auto"}, "quality"),
    ({"quality": "auto", "qualities": {"webp": 70}}, "qualities"),
    ({"type": "webp", "lossless": True, "quality": "auto"}, "quality"),
])
def test_invalid_parameters_name_step_and_parameter(registry, params, parameter):
    with pytest.raises(RecipeError) as err:
        recipe(registry, [{"format": params}])
    message = str(err.value)
    assert "(format)" in message and f"parameter '{parameter}" in message


def test_valid_combinations_load(registry):
    for params in ({"type": "png", "palette": True, "quality": 70}, {"type": "avif", "effort": 9},
                   {"type": "auto", "lossless": True, "effort": 5}, {"type": "source", "progressive": True},
                   {"type": "jpeg", "progressive": True, "quality": 90, "background": "#000000"}):
        recipe(registry, [{"format": params}])


@pytest.mark.parametrize("accept, expected", [
    ("image/avif,image/webp,*/*", "avif"),
    ("image/webp,*/*", "webp"),
    ("image/avif;q=0,image/webp,*/*", "webp"),
    ("image/*,*/*", "jpeg"),
    (None, "jpeg"),
])
def test_auto_negotiates_by_accept(registry, accept, expected):
    out = run(registry, {"type": "auto"}, accept=accept)
    assert out.format == expected
    assert decode(out.data).get("vips-loader").startswith(LOADERS[expected])
    assert out.negotiated is True


def test_auto_follows_the_candidates_order(registry):
    out = run(registry, {"candidates": ["webp", "avif"]}, accept="image/avif,image/webp,*/*")
    assert out.format == "webp"


def test_auto_falls_back_to_png_for_alpha(registry):
    assert run(registry, {"type": "auto"}, data=transparent_left_half()).format == "png"


def test_source_keeps_the_source_format(registry):
    out = run(registry, {"type": "source"}, data=png_bytes(gradient(W, H)))
    assert out.format == "png" and not out.negotiated


def test_the_step_leaves_pixels_alone(registry):
    image = gradient(W, H)
    step = registry.step("format")
    assert step.apply(image, step.Params(), Context()) is image
    assert step.output_size(step.Params(), W, H) == (W, H)


def test_auto_takes_a_quality_per_format(registry):
    """imgproxy's format_quality: each negotiated format gets its own number, others the default."""
    params = {"type": "auto", "qualities": {"avif": 40, "webp": 60}}
    low_webp = run(registry, params, accept="image/webp")
    default_webp = run(registry, {"type": "auto"}, accept="image/webp")
    assert low_webp.format == "webp" and len(low_webp.data) < len(default_webp.data)
    jpeg = run(registry, params, accept="image/jpeg")  # no per-format value: jpeg's default
    assert len(jpeg.data) == len(run(registry, {"type": "auto"}, accept="image/jpeg").data)
    with_quality = run(registry, {"type": "auto", "quality": 60}, accept="image/webp")
    assert len(with_quality.data) == len(low_webp.data)  # the per-format value is that quality


def test_jpeg_spends_trellis_quantisation_only_on_outputs_made_ahead_of_time(registry):
    """Eager recipes get mozjpeg's trellis (fewer bytes); on-demand ones do not (less CPU), and the
    choice comes from the recipe, so one recipe always gives the same bytes."""
    photo = Source(pyvips.Image.gaussnoise(256, 192, sigma=40, mean=128).cast("uchar")
                   .bandjoin([pyvips.Image.gaussnoise(256, 192, sigma=20, mean=100).cast("uchar")] * 2)
                   .copy(interpretation="srgb").jpegsave_buffer(Q=95))
    steps = [{"format": {"type": "jpeg", "quality": 80}}]
    eager = recipe(registry, steps, eager=True)
    on_demand = recipe(registry, steps)
    assert eager.output_spec.ahead_of_time and not on_demand.output_spec.ahead_of_time
    small = render(eager, photo, registry).data
    fast = render(on_demand, photo, registry).data
    assert len(small) < len(fast)
    assert render(eager, photo, registry).data == small  # deterministic
    assert decode(small).width == decode(fast).width == 256


# -- formats of other plugins ---------------------------------------------------------------------

class Tiff(Encoder):
    """A third-party encoder, as a plugin would write it."""

    name, media_type, extension = "tiff", "image/tiff", "tif"

    def encode(self, image, spec, keep_metadata, ctx):
        return image.tiffsave_buffer(compression="deflate", keep="none")


@hookimpl
def pixline_register_encoders(register):
    register(Tiff)


@pytest.fixture
def with_tiff() -> Registry:
    reg = Registry()
    reg.add("format", pixline_format, "pixline-format", "test")
    reg.add("tiff", types.SimpleNamespace(pixline_register_encoders=pixline_register_encoders),
            "pixline-tiff", "0.1")
    return reg


def test_a_third_party_encoder_is_chosen_by_name(with_tiff):
    source = Source(jpeg_bytes(gradient(W, H)))
    out = render(recipe(with_tiff, [{"format": {"type": "tiff", "quality": 70}}]), source, with_tiff)
    assert (out.format, out.media_type, out.extension) == ("tiff", "image/tiff", "tif")
    assert decode(out.data).get("vips-loader").startswith("tiffload")
    auto = recipe(with_tiff, [{"format": {"candidates": ["tiff", "webp"], "qualities": {"tiff": 50}}}])
    assert render(auto, source, with_tiff, Context(accept="image/tiff,image/webp")).format == "tiff"
    assert render(auto, source, with_tiff, Context(accept="image/webp")).format == "webp"


@pytest.mark.parametrize("params, message", [
    ({"type": "bmp"}, "step 1 (format): unknown output format 'bmp' (known formats: avif, gif, jpeg, "
                      "png, webp)"),
    ({"candidates": ["webp", "bmp"]}, "step 1 (format): 'auto' candidate 'bmp' is not an installed "
                                      "output format"),
])
def test_formats_are_checked_against_the_installed_encoders_at_load(registry, params, message):
    with pytest.raises(RecipeError, match=re.escape(message)):
        recipe(registry, [{"format": params}])


def test_quality_auto_is_a_target_for_the_pipeline_not_a_number():
    from pixline_format import Format
    spec = Format().output(Format.Params.model_validate({"type": "webp", "quality": "auto:high"}))
    assert (spec.quality, spec.target, spec.metric) == (None, 85.0, "ssimulacra2")
    fixed = Format().output(Format.Params.model_validate({"type": "webp", "quality": "85"}))
    assert (fixed.quality, fixed.target) == (85, None)
    assert pixline_format.JpegEncoder.qualities and pixline_format.AvifEncoder.qualities
    assert pixline_format.PngEncoder.qualities is None

from __future__ import annotations

import time

import pytest
import pyvips

from pixline.engine import (Context, Deadline, Encoder, ParameterError, RenderTimeoutError, Source, Step,
                            StepError, UndecodableImageError, build_recipe, render)
from pixline.engine import testing
from tests import slow
from pixline.engine.negotiate import accepted_types


def recipe(registry, *steps, **extra):
    return testing.recipe(registry, list(steps), **extra)


def test_first_step_shrinks_on_load_and_never_decodes_full_size(toy_registry, photo_bytes, monkeypatch):
    def full_decode(self):
        raise AssertionError("the pipeline decoded the image at full size")

    monkeypatch.setattr(Source, "load", full_decode)
    out = render(recipe(toy_registry, {"half": {"times": 2}}, {"out": {"type": "png"}}),
                 Source(photo_bytes), toy_registry)
    image = testing.decode(out.data)
    assert (image.width, image.height) == (480, 320)


def test_a_first_step_without_open_loads_the_whole_image(toy_registry):
    out = render(recipe(toy_registry, "invert", {"out": {"type": "png"}}),
                 Source(testing.png_bytes(testing.gradient(40, 30))), toy_registry)
    image = testing.decode(out.data)
    assert (image.width, image.height) == (40, 30)
    assert image(0, 0)[0] == 255  # the gradient starts black: inverted, white


def test_exif_orientation_is_applied(toy_registry):
    card = testing.gradient(64, 48)
    data = testing.jpeg_bytes(card, orientation=6)  # "rotate 90° clockwise to display"
    for steps in (("invert",), ({"half": {}},)):
        out = testing.decode(render(recipe(toy_registry, *steps, {"out": {"type": "png"}}),
                                    Source(data), toy_registry).data)
        assert out.width < out.height
        assert "orientation" not in out.get_fields() or out.get("orientation") == 1


@pytest.mark.parametrize("make", [testing.cmyk_jpeg_bytes, testing.rgb16_png_bytes])
def test_output_is_8_bit_srgb_whatever_came_in(toy_registry, make):
    for steps in (("invert",), ({"half": {}},)):
        out = render(recipe(toy_registry, *steps, {"out": {"type": "png"}}), Source(make()), toy_registry)
        image = testing.decode(out.data)
        assert image.format == "uchar" and image.interpretation == "srgb" and image.bands == 3


def test_cmyk_colours_survive_conversion(toy_registry):
    card = testing.gradient(320, 240)
    out = render(recipe(toy_registry, {"half": {"times": 1}}, {"out": {"type": "png"}}),
                 Source(testing.cmyk_jpeg_bytes()), toy_registry)
    # An ICC round trip through a print profile shifts colours a little, never wholesale.
    assert testing.mean_abs_diff(card, testing.decode(out.data)) < 25


def test_alpha_is_flattened_for_formats_without_it(toy_registry):
    transparent = testing.gradient(32, 32, bands=4).copy()
    transparent = transparent[:3].bandjoin(0)  # fully transparent
    src = Source(transparent.pngsave_buffer())
    jpeg = testing.decode(render(recipe(toy_registry, "invert", {"out": {"type": "jpeg"}}), src, toy_registry).data)
    assert jpeg.bands == 3 and min(jpeg(5, 5)) > 245  # white background
    png = testing.decode(render(recipe(toy_registry, "invert", {"out": {"type": "png"}}), src, toy_registry).data)
    assert png.bands == 4


def test_metadata_is_stripped_unless_the_recipe_keeps_it(toy_registry, photo_bytes):
    steps = ({"half": {"times": 3}}, {"out": {"type": "jpeg"}})
    stripped = testing.decode(render(recipe(toy_registry, *steps), Source(photo_bytes), toy_registry).data)
    kept = testing.decode(render(recipe(toy_registry, *steps, keep_metadata=True), Source(photo_bytes),
                                 toy_registry).data)
    assert "exif-data" not in stripped.get_fields()
    assert "exif-data" in kept.get_fields()


def test_source_format_is_kept_when_no_step_chooses(toy_registry):
    out = render(recipe(toy_registry, "invert"), Source(testing.png_bytes()), toy_registry)
    assert out.format == "png" and not out.negotiated
    tiff = testing.gradient(16, 16).tiffsave_buffer()
    assert render(recipe(toy_registry, "invert"), Source(tiff), toy_registry).format == "jpeg"


def test_auto_follows_accept_and_says_so(toy_registry):
    r = recipe(toy_registry, "invert", {"out": {"type": "auto", "candidates": ["webpish"]}})
    src = Source(testing.jpeg_bytes())
    webp = render(r, src, toy_registry, Context(accept="image/avif,image/webp,*/*;q=0.8"))
    assert webp.format == "webpish" and webp.media_type == "image/webp" and webp.negotiated
    assert testing.decode(webp.data).get("vips-loader").startswith("webpload")
    plain = render(r, src, toy_registry, Context(accept="*/*"))
    assert plain.format == "jpeg" and plain.negotiated
    refused = render(r, src, toy_registry, Context(accept="image/webp;q=0"))
    assert refused.format == "jpeg"


def test_accept_parsing():
    assert accepted_types("image/avif, image/webp;q=0.5 ,*/*;q=x") == {
        "image/avif": 1.0, "image/webp": 0.5, "*/*": 0.0}
    assert accepted_types(None) == {}


def test_truncated_input_fails_the_render_with_its_name(toy_registry, photo_bytes):
    src = Source(photo_bytes[: len(photo_bytes) // 2], name="image abc")
    for steps in (("invert",), ({"half": {}},)):
        with pytest.raises(UndecodableImageError, match="image abc"):
            render(recipe(toy_registry, *steps, {"out": {"type": "png"}}), src, toy_registry)


@pytest.mark.parametrize("text, expected", [
    ("white", (255, 255, 255, 255)), ("transparent", (255, 255, 255, 0)), ("#0F0", (0, 255, 0, 255)),
    ("#11223344", (0x11, 0x22, 0x33, 0x44)), (" Black ", (0, 0, 0, 255)),
    ("704214", (0x70, 0x42, 0x14, 255)), ("0f08", (0, 255, 0, 0x88)),  # the "#" left out (URLs)
])
def test_colours_are_read_the_same_everywhere(text, expected):
    from pixline.engine.colour import rgba

    assert rgba(text) == expected


@pytest.mark.parametrize("text", ["whiteish", "#12345", "12345", "##fff", "", "rgb(1,2,3)"])
def test_bad_colours_are_refused(text):
    from pixline.engine.colour import rgba

    with pytest.raises(ValueError, match="is not a colour"):
        rgba(text)


def test_a_colour_parameter_is_stored_in_one_spelling():
    import pydantic

    from pixline.engine.colour import Colour

    adapter = pydantic.TypeAdapter(Colour)
    assert adapter.validate_python("704214") == adapter.validate_python("#704214") == "#704214"
    assert adapter.validate_python(" White ") == "white"


def test_a_time_limit_already_past_stops_the_render_before_anything_is_decoded(toy_registry, photo_bytes,
                                                                               monkeypatch):
    # Checked by the pipeline itself: it does not wait for libvips to report progress (which a
    # small render may never do), and no pixel is decoded for a render that cannot be delivered.
    r = recipe(toy_registry, "invert", {"out": {"type": "png"}})
    with monkeypatch.context() as patch:
        for method in ("load", "thumbnail"):
            patch.setattr(Source, method, lambda *a, **k: pytest.fail("decoded past the deadline"))
        with pytest.raises(RenderTimeoutError, match=r"image x: recipe 'test' took longer than 1e-09 s "
                                                      r"and was stopped before decoding"):
            render(r, Source(photo_bytes, name="image x"), toy_registry, time_limit=1e-9)
    assert render(r, Source(photo_bytes), toy_registry, time_limit=60).width == 1920


# -- failures: the step's, the source's, the client's ------------------------------------------

@pytest.fixture
def faulty(toy_registry):
    from tests.engine import faultyplugin

    toy_registry.add("faulty", faultyplugin, "pixline-faulty", "2.0")
    return toy_registry


@pytest.mark.parametrize("how, detail", [
    ("value", "ValueError: the plugin has a bug"),
    ("vips", "libvips: recomb: bands in must equal matrix width"),
    ("parameter", "ParameterError: this image is too small"),
])
def test_a_failing_step_is_a_step_error_naming_recipe_step_and_plugin(faulty, how, detail):
    r = testing.recipe(faulty, ["invert", {"explode": {"how": how}}, {"out": {"type": "png"}}],
                       name="broken")
    with pytest.raises(StepError) as err:
        render(r, Source(testing.png_bytes(), name="image abc"), faulty)
    message = str(err.value)
    assert message.startswith("image abc: recipe 'broken' failed in step 2 (explode, plugin 'faulty' "
                              "from pixline-faulty 2.0): ")
    assert detail in message
    assert (err.value.recipe, err.value.where.split(" (")[0]) == ("broken", "step 2")
    assert not isinstance(err.value, UndecodableImageError)


def test_a_libvips_error_while_computing_pixels_is_not_the_originals(faulty, photo_bytes):
    r = testing.recipe(faulty, [{"half": {}}, {"explode": {"how": "lazy"}}, {"out": {"type": "png"}}])
    for decoded in (None, Source(photo_bytes).load()):
        with pytest.raises(StepError, match=r"failed in encoder 'png' \(plugin 'toy' from toy-dist 0.0\), "
                                            r"computing the pixels of steps half, explode, out: "
                                            r"libvips: VipsJpeg: premature end of JPEG image"):
            render(r, Source(photo_bytes), faulty, decoded=decoded)


def test_a_truncated_original_is_undecodable_even_when_a_step_reads_it(faulty, photo_bytes):
    """libvips decodes lazily: a cut-off original fails inside whichever step reads pixels first."""
    src = Source(photo_bytes[: len(photo_bytes) // 2], name="image abc")

    class Reader(Step):
        name = "reader"

        def apply(self, image, params, ctx):
            return image.copy_memory()  # reads every pixel now, as smartcrop and trim do

    faulty.add("reader", _plugin(Reader), "reader-dist", "1")
    with pytest.raises(UndecodableImageError, match="image abc: cannot decode image"):
        render(testing.recipe(faulty, ["reader", {"out": {"type": "png"}}]), src, faulty)


def test_a_request_parameter_error_stays_the_clients(faulty):
    steps = [{"explode": {"how": "parameter"}}, {"out": {"type": "png"}}]
    r = build_recipe("adhoc", {"steps": steps}, faulty, from_request=True)
    with pytest.raises(ParameterError, match="too small") as err:
        render(r, Source(testing.png_bytes()), faulty)
    assert not isinstance(err.value, StepError)


def test_an_os_error_in_a_step_stays_transient(faulty):
    r = testing.recipe(faulty, [{"explode": {"how": "oserror"}}, {"out": {"type": "png"}}])
    with pytest.raises(ConnectionError, match="store went away"):
        render(r, Source(testing.png_bytes()), faulty)


def test_a_failing_encoder_is_a_step_error_naming_it(faulty):
    r = testing.recipe(faulty, ["invert", {"out": {"type": "fragile"}}])
    with pytest.raises(StepError, match=r"failed in encoder 'fragile' \(plugin 'faulty' from "
                                        r"pixline-faulty 2.0\): RuntimeError: the encoder has a bug"):
        render(r, Source(testing.png_bytes()), faulty)


def test_encoders_get_the_render_context(toy_registry):
    seen = {}

    class Probe(Encoder):
        name, media_type, extension = "probe", "application/json", "json"

        def encode(self, image, spec, keep_metadata, ctx):
            seen.update(size=ctx.source_size, fields=dict(ctx.fields), recipe=ctx.recipe_name,
                        image=(image.width, image.height), format=ctx.source_format)
            return b"{}"

    toy_registry.add("probe", _plugin(encoders=[Probe]), "probe-dist", "1")
    r = testing.recipe(toy_registry, [{"half": {"times": 2}}, {"out": {"type": "probe"}}], name="p")
    data = testing.jpeg_bytes(testing.gradient(200, 100), orientation=6)
    out = render(r, Source(data), toy_registry, Context(fields={"owner": "Ada"}))
    assert out.data == b"{}" and out.media_type == "application/json"
    # The original's displayed size (upright), not the size the steps made of it.
    assert seen == {"size": (100, 200), "fields": {"owner": "Ada"}, "recipe": "p", "image": (13, 25),
                    "format": "jpeg"}


def _plugin(*steps, encoders=()):
    import types

    from pixline.engine import hookimpl

    @hookimpl
    def pixline_register_steps(register):
        for step in steps:
            register(step)

    @hookimpl
    def pixline_register_encoders(register):
        for encoder in encoders:
            register(encoder)

    return types.SimpleNamespace(pixline_register_steps=pixline_register_steps,
                                 pixline_register_encoders=pixline_register_encoders)
def test_a_slow_step_is_stopped_at_the_time_limit_long_before_it_would_finish(toy_registry, photo_bytes):
    toy_registry.add("slow", slow.module(), "pixline-test-slow", "0.1")
    r = recipe(toy_registry, {"half": {}}, {"slow": {"seconds": 60}}, {"out": {"type": "png"}})
    started = time.monotonic()
    with pytest.raises(RenderTimeoutError, match="took longer than 0.3 s and was stopped in the slow step"):
        render(r, Source(photo_bytes), toy_registry, time_limit=0.3)
    assert time.monotonic() - started < 20  # a bound against a hang, far from the step's 60 s


class ClockedPng(Encoder):
    """PNG, after moving the deadline's clock past it: the deadline passes during the encode."""

    name, media_type, extension, supports_alpha = "png", "image/png", "png", True

    def __init__(self, clock: testing.FakeClock) -> None:
        self.clock = clock

    def encode(self, image, spec, keep_metadata, ctx):
        self.clock.advance(3600)
        return image.pngsave_buffer()


def test_an_encode_running_past_the_deadline_is_killed(toy_registry):
    clock = testing.FakeClock()
    ctx = Context(deadline=Deadline(60, clock))
    big = testing.gradient(4000, 4000)  # lazy: its encode reports progress many times
    with pytest.raises(RenderTimeoutError, match="took longer than 60 s and was stopped while computing"):
        render(recipe(toy_registry, "invert", {"out": {"type": "png"}}), Source(testing.png_bytes()),
               toy_registry, ctx=ctx, decoded=big, encoder=ClockedPng(clock))
    assert ctx.deadline.killed

"""The test kit for plugin authors (issue 20): ``pixline.testing`` and the pytest plugin's fixtures.

The fixtures used here come from pixline's ``pytest11`` entry point, as they do in a plugin's own
test run: nothing imports them.
"""
from __future__ import annotations

import re
import subprocess
import sys
import warnings

import pytest

import pixline.engine.testing as engine_testing
from pixline import testing
from pixline.engine import PluginError, Source
from pixline.engine.frames import frame_count, page_height
from pixline.engine.normalise import is_normal

SHAPE_BANDS = {"grey": 1, "grey-alpha": 2, "rgb": 3, "rgba": 4, "grey16": 1, "rgb16": 3, "rgba16": 4,
               "cmyk": 4, "animated": 3, "animated-alpha": 4}


def test_the_stable_name_offers_every_public_helper():
    assert set(testing.__all__) == set(engine_testing.__all__)
    assert all(getattr(testing, name) is getattr(engine_testing, name) for name in testing.__all__)
    public = {name for name, value in vars(engine_testing).items() if not name.startswith("_")
              and getattr(value, "__module__", None) == engine_testing.__name__}
    assert public - {"LOADERS"} <= set(testing.__all__), "a public helper is missing from __all__"


def test_the_pytest_plugin_is_registered_by_entry_point(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("pixline")
    assert plugin is not None and plugin.__name__ == "pixline.pytest_plugin"


def test_colour_shapes_are_what_their_names_say(colour_shapes):
    assert tuple(colour_shapes) == testing.COLOUR_SHAPES and set(SHAPE_BANDS) == set(colour_shapes)
    for name, image in colour_shapes.items():
        assert image.bands == SHAPE_BANDS[name], name
        assert image.format == ("ushort" if "16" in name else "uchar"), name
        assert frame_count(image) == (3 if name.startswith("animated") else 1), name


def test_every_colour_shape_reaches_a_step_normalised_with_its_frames(colour_shape, rendered_image):
    out = rendered_image([{"resize": {"width": 32}}], colour_shape)
    assert is_normal(out) and out.hasalpha() == (colour_shape.bands in (2, 4) and colour_shape.interpretation != "cmyk")
    assert (out.width, page_height(out), frame_count(out)) == (32, 24, frame_count(colour_shape))


def test_rendered_image_reads_every_frame_unless_told(rendered_image):
    gif = testing.animation_bytes("gif", frames=4, width=40, height=30)
    assert frame_count(rendered_image(["grayscale"], gif)) == 4
    assert frame_count(rendered_image(["grayscale"], gif, every_frame=False)) == 1


@pytest.mark.parametrize("format", ["jpeg", "png", "webp", "gif"])
def test_a_recipe_renders_to_bytes_that_decode_as_they_say(render_recipe, assert_decodes, colour_shape, format):
    out = render_recipe([{"resize": {"width": 32}}, {"format": {"type": format}}], colour_shape)
    animates = format in ("webp", "gif") and frame_count(colour_shape) > 1
    assert (out.format, out.width, out.height, out.frames) == (format, 32, 24, 3 if animates else 1)
    decoded = assert_decodes(out)
    assert frame_count(decoded) == out.frames


def test_render_recipe_takes_fields_and_accept(render_recipe):
    steps = [{"resize": {"width": 200}}, {"watermark": {"text": "© {owner}", "opacity": 1}},
             {"format": {"type": "auto", "candidates": ["webp"]}}]
    ada = render_recipe(steps, testing.gradient(), fields={"owner": "Ada"}, accept="image/webp")
    assert ada.format == "webp"
    assert ada != render_recipe(steps, testing.gradient(), fields={"owner": "Bob"}, accept="image/webp")
    assert render_recipe(steps, testing.jpeg_bytes(), fields={"owner": "Ada"}).format == "jpeg"


def test_assert_decodes_says_what_is_wrong(render_recipe, assert_decodes):
    png = render_recipe([{"format": {"type": "png"}}], testing.gradient(40, 30))
    assert assert_decodes(png).width == 40
    with pytest.raises(AssertionError, match="do not decode"):
        assert_decodes(png[: len(png) // 2])
    with pytest.raises(AssertionError, match="'jpeg' bytes are read by libvips' pngload"):
        assert_decodes(bytes(png), "jpeg")
    with pytest.raises(AssertionError, match="width 40, not 41, frames 1, not 2"):
        assert_decodes(bytes(png), width=41, frames=2)


def test_animation_is_deprecated_for_names_that_say_what_they_return():
    with pytest.warns(DeprecationWarning, match=r"animation\(\) is deprecated: use animation_strip\(\)"):
        old = testing.animation(frames=2, width=20, height=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = testing.animation_strip(frames=2, width=20, height=10)
        for format in ("gif", "webp"):
            source = Source(testing.animation_bytes(format, frames=2, width=20, height=10))
            assert (source.format, source.frames) == (format, 2)
    assert (old.height, old.get("page-height"), old.get("delay")) == (20, 10, [100, 200])
    assert (old == new).min() == 255
    with pytest.raises(ValueError, match="use 'gif' or 'webp'"):
        testing.animation_bytes("png")


def test_plugin_registry_holds_one_plugin_and_the_formats():
    import pixline_blur

    registry = testing.plugin_registry(pixline_blur)
    assert set(registry.plugins) == {"blur", "format"} and "blur" in registry.steps
    assert registry.plugins["blur"].distribution == "pixline-blur" and "jpeg" in registry.encoders
    with pytest.raises(PluginError, match=r"plugin 'nope' is not installed.*pip install pixline-nope"):
        testing.plugin_registry(pixline_blur, installed=["nope"])


def test_the_engine_is_not_imported_when_pytest_starts(tmp_path):
    """The plugin is in every pytest run of this environment: it must cost nothing until used."""
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\ndef test_plain():\n    assert 'pyvips' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr



def test_the_guide_documents_every_helper_and_fixture_and_nothing_else():
    from pathlib import Path

    import pixline.pytest_plugin as plugin

    guide = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    section = guide.split("\n## Testing\n", 1)[1].split("\n## ", 1)[0]
    helpers, fixtures = section.split("### Helpers", 1)[1], section.split("### Helpers", 1)[0]
    documented = {name for cell in re.findall(r"^\| (.+?) \|", helpers, re.M)
                  for name in re.findall(r"`([A-Za-z_]\w*)", cell)} - {"helper"}
    assert documented == set(testing.__all__), "docs/plugins.md, Testing, and testing.__all__ differ"
    provided = {name for name, value in vars(plugin).items() if hasattr(value, "_pytestfixturefunction")
                or type(value).__name__ == "FixtureFunctionDefinition"}
    listed = {re.match(r"`(\w+)", cell).group(1) for cell in re.findall(r"^\| (`\w+.*?) \|", fixtures, re.M)}
    assert provided and listed == provided

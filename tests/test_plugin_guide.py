"""The plugin guide (docs/plugins.md) works as written: its example plugins run, its sepia plugin's own
tests pass, and every member of the contract it describes is in it."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import pyvips

from pixline.engine import Context, Encoder, OutputSpec, Registry, Source, Step, StepParams, render, testing
from pixline.engine.recipefiles import load_recipe

from tests import guide

TEXT = guide.GUIDE.read_text()


def test_the_guide_has_its_examples():
    assert set(guide.files()) == {
        "setup.cfg", "pyproject.toml", "pixline_sepia/__init__.py", "tests/test_sepia.py",
        "recipes/old-photo.yaml", "pixline_tiff/__init__.py", "pixline_placeholder/__init__.py",
        "recipes/placeholder.yaml", "pixline_border/__init__.py", "tests/test_tiff.py"}


@pytest.mark.parametrize("plugin, tests", [("pixline_sepia", 18), ("pixline_tiff", 10)])
def test_the_example_plugins_own_tests_pass(tmp_path, plugin, tests):
    """What an author copies from the guide passes its tests, with the kit's fixtures (pixline's
    pytest plugin): the step over every colour shape and in rendered recipes, the encoder's bytes."""
    name = plugin.removeprefix("pixline_")
    root = guide.write(tmp_path, f"{plugin}/__init__.py", f"tests/test_{name}.py")
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-W", "error::DeprecationWarning", "tests"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests} passed" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The installed plugins and the guide's three."""
    return Registry.load(extra=[(name, guide.module(f"{name}/__init__.py", f"guide_{name}"))
                                for name in ("pixline_sepia", "pixline_tiff", "pixline_placeholder", "pixline_border")])


def recipe_from_guide(path, registry, tmp_path):
    return load_recipe(guide.write(tmp_path, path) / path, registry)


def test_the_old_photo_recipe_renders(registry, tmp_path, photo_bytes):
    recipe = recipe_from_guide("recipes/old-photo.yaml", registry, tmp_path)
    out = render(recipe, Source(photo_bytes), registry, Context(accept="image/webp"))
    image = testing.decode(out.data)
    assert (out.format, image.width) == ("webp", 800)
    red, green, blue = (image[band].avg() for band in range(3))
    assert red > green > blue  # sepia, over a blue-grey sky


def test_the_tiff_encoder_is_chosen_by_name(registry):
    out = render(testing.recipe(registry, [{"format": {"type": "tiff"}}]),
                 Source(testing.sample_inputs()["rgba"]), registry)
    image = testing.decode(out.data)
    assert (out.media_type, out.extension) == ("image/tiff", "tif")
    assert image.get("vips-loader").startswith("tiffload") and image.bands == 4


def test_the_placeholder_is_json_with_the_originals_size_and_colour(registry, tmp_path, photo_bytes):
    recipe = recipe_from_guide("recipes/placeholder.yaml", registry, tmp_path)
    out = render(recipe, Source(photo_bytes), registry)
    body = json.loads(out.data)
    assert out.media_type == "application/json" and (body["width"], body["height"]) == (1920, 1280)
    photo = pyvips.Image.new_from_buffer(photo_bytes, "")
    colour = [int(body["colour"][i:i + 2], 16) for i in (1, 3, 5)]
    assert colour == pytest.approx([photo[band].avg() for band in range(3)], abs=4)


def test_a_colour_parameter_is_text_and_rgba_gives_its_numbers(registry):
    step, = testing.recipe(registry, [{"border": {"colour": "704214", "width": 3}}]).steps
    assert step.params.colour == "#704214"  # one spelling: the "#" added
    for colour, kind, corner in (("704214", "rgb", [0x70, 0x42, 0x14]),
                                 ("#FFFFFF80", "rgba", [255, 255, 255, 0x80]),
                                 ("transparent", "rgba", [255, 255, 255, 0])):
        out = testing.rendered_image(registry, [{"border": {"colour": colour, "width": 3}}],
                                     testing.sample_inputs()[kind])
        assert (out.width, out.height) == (70, 54) and out(0, 0) == corner and out(35, 27) != corner


@pytest.mark.parametrize("owner, members", [
    (Context, [f.name for f in dataclasses.fields(Context)] + ["asset", "metadata"]),
    (OutputSpec, [f.name for f in dataclasses.fields(OutputSpec)]),
    (Step, ["name", "version", "Params", "handles_frames", "apply", "open", "output", "shrink_hint",
            "output_size"]),
    (Encoder, ["name", "media_type", "extension", "supports_alpha", "animated", "version", "encode",
               "unavailable", "max_side", "qualities"]),
    (StepParams, ["url_keys"]),
])
def test_every_member_of_the_contract_is_documented(owner, members):
    public = {m for m in vars(owner) if not m.startswith("_")} | set(getattr(owner, "__dataclass_fields__", {}))
    assert not public - set(members) - {"model_config"}, f"{owner.__name__}: add new members to this test"
    missing = [m for m in members if f"`{m}" not in TEXT]
    assert not missing, f"docs/plugins.md does not describe {owner.__name__}.{missing}"


def test_every_error_a_plugin_meets_is_in_the_errors_table():
    import pixline.engine as engine
    from pixline.engine.errors import PixlineError

    errors = [name for name in engine.__all__ if name.endswith("Error")
              and issubclass(getattr(engine, name), PixlineError)]
    section = TEXT.split("## Errors", 1)[1].split("\n## ", 1)[0]
    assert [name for name in errors if f"`{name}`" not in section] == []

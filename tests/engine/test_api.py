"""The Python API: ``from pixline import render`` — recipes by name, path or dict; clear error types."""
from __future__ import annotations

import pytest
import pyvips

import pixline
from pixline import (ImageTooLargeError, NotFoundError, RecipeError, UndecodableImageError,
                     UnsupportedFormatError, render)
from pixline.engine import Limits, testing
from pixline.engine.recipefiles import default_recipe_dir, load_recipe
from pixline.engine.registry import Registry, default_registry


def test_the_three_lines_of_the_readme(photo_bytes, tmp_path):
    webp = render("feed", photo_bytes, accept="image/webp")
    (tmp_path / "feed.webp").write_bytes(webp)
    image = testing.decode((tmp_path / "feed.webp").read_bytes())
    assert image.get("vips-loader").startswith("webpload") and (image.width, image.height) == (600, 400)
    assert (webp.format, webp.media_type, webp.width, webp.height) == ("webp", "image/webp", 600, 400)


def test_auto_recipes_follow_accept_and_fall_back_to_jpeg(photo_bytes):
    assert render("feed", photo_bytes, accept="image/avif,image/webp").format == "avif"
    assert render("feed", photo_bytes).format == "jpeg"


def test_a_recipe_file_with_an_asset_beside_it_and_an_image_file(tmp_path, photos):
    red = (pyvips.Image.black(40, 40) + [255, 0, 0]).cast("uchar").copy(interpretation="srgb")
    (tmp_path / "logo.png").write_bytes(red.pngsave_buffer())
    (tmp_path / "marked.yaml").write_text(
        "steps:\n  - resize: {width: 200}\n"
        "  - watermark: {image: logo.png, scale: 0.5, opacity: 1, margin: 0}\n  - format: {type: png}\n")
    out = render(tmp_path / "marked.yaml", photos / "Storm.jpg")
    image = testing.decode(out)
    assert out.format == "png" and image.getpoint(image.width - 5, image.height - 5)[:3] == [255, 0, 0]
    assert render(str(tmp_path / "marked.yaml"), str(photos / "Storm.jpg")) == out


def test_a_recipe_as_a_dict_or_a_recipe_object_and_fields_for_templates(photo_bytes):
    steps = {"steps": [{"resize": {"width": 120}}, {"watermark": {"text": "© {owner}"}},
                       {"format": {"type": "png"}}]}
    ada = render(steps, photo_bytes, fields={"owner": "Ada"})
    grace = render(steps, photo_bytes, fields={"owner": "Grace"})
    assert testing.decode(ada).width == 120 and ada != grace  # the text differs
    recipe = load_recipe(default_recipe_dir() / "thumb.yaml", default_registry())
    assert testing.decode(render(recipe, photo_bytes)).width == 200


def test_a_named_recipe_from_another_folder(tmp_path, photo_bytes):
    (tmp_path / "tiny.yaml").write_text("steps:\n  - resize: {width: 16, height: 16, fit: fill}\n")
    assert testing.decode(render("tiny", photo_bytes, recipes=tmp_path)).width == 16
    with pytest.raises(NotFoundError, match="recipe 'thumb' not found in"):
        render("thumb", photo_bytes, recipes=tmp_path)


def test_errors_are_the_documented_types(tmp_path, photo_bytes):
    with pytest.raises(NotFoundError, match="recipe 'nope' not found"):
        render("nope", photo_bytes)
    with pytest.raises(NotFoundError, match="missing.jpg: cannot read input"):
        render("thumb", tmp_path / "missing.jpg")
    with pytest.raises(RecipeError, match=r"step 1 \(resize\): parameter 'width'"):
        render({"steps": [{"resize": {"width": 0}}]}, photo_bytes)
    with pytest.raises(UnsupportedFormatError):
        render("thumb", b"this is not a picture")
    with pytest.raises(UndecodableImageError):
        render("thumb", photo_bytes[: len(photo_bytes) // 3])
    with pytest.raises(ImageTooLargeError):
        render("thumb", photo_bytes, limits=Limits(max_pixels=1000))
    assert all(issubclass(e, pixline.PixlineError) for e in (NotFoundError, RecipeError,
                                                             UnsupportedFormatError))


def test_plugins_are_loaded_once(photo_bytes, monkeypatch):
    render("thumb", photo_bytes)  # loads the process-wide registry if nothing did yet

    def load_again(*args, **kwargs):
        raise AssertionError("plugins were loaded again")

    monkeypatch.setattr(Registry, "load", classmethod(load_again))
    assert render("thumb", photo_bytes).format == "jpeg"


def test_pixline_has_a_version_and_says_what_it_offers():
    assert pixline.__version__ and pixline.__version__ != "0+unknown"
    assert {"render", "RecipeError", "InputError"} <= set(pixline.__all__)
    with pytest.raises(AttributeError):
        pixline.nothing_of_the_sort


def test_the_readme_gives_renders_whole_signature_and_what_the_result_says():
    import inspect
    import re
    from pathlib import Path

    from pixline import EncodedImage

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The Python API", 1)[1].split("\n## ", 1)[0]
    written = re.search(r"`render\((.*?)\)`", section, re.S).group(1)
    documented = [part.split("=")[0].strip() for part in written.replace("\n", " ").split(",")]
    assert [p for p in documented if p != "*"] == list(inspect.signature(render).parameters)
    said = set(re.findall(r"`\.(\w+)`|`webp\.(\w+)`", section))
    assert {a or b for a, b in said} == set(EncodedImage.__annotations__)

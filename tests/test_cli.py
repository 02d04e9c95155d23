"""The command line: ``pixline apply``, ``recipes``, ``plugins``; errors are one line and exit 1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pyvips

from pixline.engine import ParameterError, testing
from pixline.engine.derivatives import Derivatives
from pixline.engine.recipefiles import default_recipe_dir, load_recipes
from pixline.engine.registry import Registry
from pixline.engine.storage import Store
from pixline.server.commands.serve import is_loopback

PIXLINE = [sys.executable, "-m", "pixline.server.commands"]
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECIPES = sorted(p.stem for p in default_recipe_dir().glob("*.yaml"))


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PIXLINE, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pixline: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_default_recipe_set_is_valid_and_modelled_on_a_photo_site():
    recipes = load_recipes(default_recipe_dir(), Registry.load())
    assert len(recipes) >= 5
    assert {"thumb", "feed", "large"} <= {name for name, r in recipes.items() if r.eager}
    assert any(r.output_spec.format == "auto" for r in recipes.values())


def test_recipes_lists_every_recipe():
    result = run("recipes")
    assert result.returncode == 0, result.stderr
    listed = sorted(line.split()[0] for line in result.stdout.splitlines())
    assert listed == DEFAULT_RECIPES


def test_recipes_exits_1_on_an_invalid_recipe(tmp_path):
    (tmp_path / "good.yaml").write_text("steps:\n  - resize: {width: 10}\n")
    (tmp_path / "bad.yaml").write_text("steps:\n  - resize: {width: -10}\n")
    result = run("recipes", "--recipes", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.startswith("good ")
    assert f"{tmp_path / 'bad.yaml'}: step 1 (resize): parameter 'width'" in result.stderr


def test_plugins_lists_the_first_party_distributions_and_their_steps():
    result = run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)}
    first_party = {folder.name for folder in (ROOT / "plugins").iterdir() if (folder / "setup.cfg").is_file()}
    assert {f"pixline-{name}" for name in first_party} <= set(plugins)  # make install took every one
    assert plugins["pixline-resize"]["steps"] == ["resize"]
    assert plugins["pixline-crop"]["steps"] == ["crop"]
    assert plugins["pixline-watermark"]["steps"] == ["watermark"]
    assert plugins["pixline-format"]["steps"] == ["format"]
    assert {"jpeg", "png", "webp", "avif"} <= set(plugins["pixline-format"]["encoders"])
    # The four filter distributions.
    assert plugins["pixline-sharpen"]["steps"] == ["sharpen"]
    assert plugins["pixline-blur"]["steps"] == ["blur"]
    assert plugins["pixline-adjust"]["steps"] == ["adjust"]
    assert plugins["pixline-colour"]["steps"] == ["grayscale", "tint"]


@pytest.mark.parametrize("name", DEFAULT_RECIPES)
def test_apply_renders_every_default_recipe_from_a_real_photo(name, tmp_path, photos):
    recipe = load_recipes(default_recipe_dir(), Registry.load())[name]
    out = tmp_path / f"{name}.jpg"
    result = run("apply", name, str(photos / "Storm.jpg"), str(out))
    assert result.returncode == 0, result.stderr
    image = testing.decode(out.read_bytes())
    assert image.interpretation == "srgb" and image.format == "uchar"
    assert "exif-data" not in image.get_fields()
    resize = next(rs.params for rs in recipe.steps if rs.name == "resize")
    box_w = (resize.width or 10**6) * resize.dpr
    box_h = (resize.height or 10**6) * resize.dpr
    if resize.fit.value == "cover":
        assert (image.width, image.height) == (box_w, box_h)
    else:  # inside: fits the box, keeps 3:2, no enlargement
        assert image.width <= box_w and image.height <= box_h
        assert max(image.width / box_w, image.height / box_h) == pytest.approx(1, abs=0.01) \
            or (image.width, image.height) == (1920, 1280)
        assert image.width / image.height == pytest.approx(1.5, abs=0.01)


def test_apply_auto_recipe_takes_the_format_from_the_output_extension(tmp_path, photos):
    for ext, loader in (("webp", "webpload"), ("avif", "heifload"), ("jpg", "jpegload")):
        out = tmp_path / f"feed.{ext}"
        result = run("apply", "feed", str(photos / "Storm.jpg"), str(out))
        assert result.returncode == 0, result.stderr
        assert testing.decode(out.read_bytes()).get("vips-loader").startswith(loader)


def test_apply_reads_a_recipe_file(tmp_path, photos):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("steps:\n  - resize: {width: 64, height: 64, fit: fill}\n  - format: {type: png}\n")
    out = tmp_path / "tiny.png"
    assert run("apply", str(recipe), str(photos / "LadyBird.jpg"), str(out)).returncode == 0
    image = testing.decode(out.read_bytes())
    assert (image.width, image.height, image.get("vips-loader")) == (64, 64, "pngload_buffer")


def watermark_recipe(folder: Path, image: str) -> Path:
    recipe = folder / "marked.yaml"
    recipe.write_text("steps:\n  - resize: {width: 200}\n"
                      f"  - watermark: {{image: '{image}', scale: 0.5, opacity: 1, margin: 0}}\n"
                      "  - format: {type: png}\n")
    return recipe


def test_apply_reads_assets_next_to_the_recipe_file(tmp_path, photos):
    folder, elsewhere = tmp_path / "recipes", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    red = (pyvips.Image.black(40, 40) + [255, 0, 0]).cast("uchar").copy(interpretation="srgb")
    (folder / "logo.png").write_bytes(red.pngsave_buffer())
    out = tmp_path / "marked.png"
    # Run from another folder: the reference is relative to the recipe file, not the working directory.
    result = run("apply", str(watermark_recipe(folder, "logo.png")), str(photos / "Storm.jpg"), str(out),
                 cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    image = testing.decode(out.read_bytes())
    assert image.getpoint(image.width - 5, image.height - 5)[:3] == [255, 0, 0]  # south-east corner


def test_apply_and_the_server_refuse_an_absolute_asset_path_alike(tmp_path, photos):
    logo = tmp_path / "logo.png"
    logo.write_bytes(testing.png_bytes())
    derivatives = Derivatives(Store(f"file://{tmp_path / 'store'}"), Registry(), {}, asset_dir=tmp_path)
    with pytest.raises(ParameterError) as err:
        derivatives.load_asset(str(logo))
    result = run("apply", str(watermark_recipe(tmp_path, str(logo))), str(photos / "Storm.jpg"),
                 str(tmp_path / "out.png"))
    line = one_line_error(result)
    # The recipe file is at fault, so the message names its step too; a refused asset is an AssetError.
    assert line.startswith("pixline: error: ") and line.endswith(f"AssetError: {err.value}")
    assert "recipe 'marked' failed in step 2 (watermark, plugin 'watermark' from pixline-watermark" in line
    assert "is an absolute path" in str(err.value)


def test_apply_passes_upload_fields_to_the_recipe_as_an_upload_would(tmp_path, photos):
    from pixline import render

    recipe = tmp_path / "credit.yaml"
    recipe.write_text("steps:\n  - resize: {width: 240}\n"
                      "  - watermark: {text: \"© {owner|nobody}\", opacity: 1, margin: 0}\n"
                      "  - format: {type: png}\n")
    photo = str(photos / "LadyBird.jpg")
    outputs = {}
    for owner in ("Ada", "Bob", None):
        out = tmp_path / f"{owner}.png"
        result = run("apply", str(recipe), photo, str(out), *(["--field", f"owner={owner}"] if owner else []),
                     "--field", "album=x")
        assert result.returncode == 0, result.stderr
        outputs[owner] = out.read_bytes()
    # What the Python API renders with those fields, as an upload's meta would give them to the steps.
    assert outputs["Ada"] == render(recipe, photo, fields={"owner": "Ada", "album": "x"})
    assert outputs["Bob"] == render(recipe, photo, fields={"owner": "Bob"})
    assert outputs[None] == render(recipe, photo) != outputs["Ada"]
    out = str(tmp_path / "x.png")
    assert "write NAME=VALUE" in one_line_error(run("apply", str(recipe), photo, out, "--field", "owner"))
    assert "field name 'Owner' is not valid" in one_line_error(
        run("apply", str(recipe), photo, out, "--field", "Owner=Ada"))
    assert "field 'owner' is given more than once" in one_line_error(
        run("apply", str(recipe), photo, out, "--field", "owner=Ada", "--field", "owner=Bob"))


def test_apply_errors_are_one_clear_line(tmp_path, photos, photo_bytes):
    out = str(tmp_path / "out.jpg")
    assert "recipe 'nope' not found" in one_line_error(run("apply", "nope", str(photos / "Storm.jpg"), out))
    assert "missing.jpg: cannot read input" in one_line_error(run("apply", "thumb", str(tmp_path / "missing.jpg"), out))
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    assert "notes.jpg: not an image type pixline takes" in one_line_error(run("apply", "thumb", str(text), out))
    svg = tmp_path / "vector.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>')
    assert "vector.svg: not an image type pixline takes" in one_line_error(run("apply", "thumb", str(svg), out))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo_bytes[: len(photo_bytes) // 3])
    assert "cut.jpg: cannot" in one_line_error(run("apply", "thumb", str(cut), out))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(testing.pixel_flood_png())
    assert "over the limit" in one_line_error(run("apply", "thumb", str(bomb), out))
    assert not Path(out).exists()
    assert "cannot write output" in one_line_error(
        run("apply", "thumb", str(photos / "Storm.jpg"), str(tmp_path / "no" / "dir" / "x.jpg")))


def test_serve_refuses_bad_settings_before_starting_with_one_line(tmp_path):
    (tmp_path / "x.yaml").write_text("steps:\n  - resize: {width: 0}\n")
    assert "x.yaml: step 1 (resize): parameter 'width'" in one_line_error(
        run("serve", "--recipes", str(tmp_path), "--bind", "127.0.0.1:1"))
    assert "name a bucket" in one_line_error(run("serve", "--store", "s3:///", "--bind", "127.0.0.1:1"))
    assert "--workers: 'many' is not a valid int" in one_line_error(run("serve", "--workers", "many"))
    assert "role 'converter' is not one of all, media, resizer" in one_line_error(
        run("serve", "--role", "converter", "--bind", "127.0.0.1:1"))


def test_an_empty_key_or_token_is_refused_at_start():
    # An empty key would sign URLs, an empty token guard uploads, with a secret everybody knows.
    bind = ("--bind", "127.0.0.1:1")
    assert "--upload-token: an empty upload token" in one_line_error(run("serve", "--upload-token", "", *bind))
    assert "--signing-key: an empty signing key" in one_line_error(run("serve", "--signing-key", " ", *bind))
    assert "PIXLINE_SIGNING_KEY: an empty signing key" in one_line_error(
        run("serve", *bind, env={"PIXLINE_SIGNING_KEY": "k1,,k2"}))
    assert "an empty signing key" in one_line_error(run("sign", "--signing-key", "", "x/" + "0" * 32))


def test_serve_refuses_open_uploads_on_an_address_other_machines_reach():
    # Documentation addresses (RFC 5737, 3849): were the check to fail, binding them fails too.
    line = one_line_error(run("serve", "--bind", "192.0.2.1:8080"))
    assert "no --upload-token" in line and "--allow-open-uploads" in line
    line = one_line_error(run("serve", "--bind", "127.0.0.1:1,[2001:db8::1]:2"))
    assert "[2001:db8::1]:2" in line and "127.0.0.1:1" not in line


@pytest.mark.parametrize("bind,loopback", [
    ("127.0.0.1:8080", True), ("127.8.0.1:80", True), ("[::1]:8080", True), ("localhost:8080", True),
    ("unix:/run/pixline.sock", True), ("0.0.0.0:8080", False), (":8080", False), ("[::]:8080", False),
    ("192.168.1.5:80", False), ("example.com:80", False), ("fd://3", False),
])
def test_loopback_binds(bind, loopback):
    assert is_loopback(bind) is loopback

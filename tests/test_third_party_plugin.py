"""A plugin from outside this repository works with no change to the core.

Each test writes a small plugin distribution into a temporary folder (its own setup.cfg and entry
point), pip-installs it into a folder of its own, and uses it through the real ``pixline`` command run
with that folder on its PYTHONPATH. Not into the test environment: other test runs share it, and a
broken or clashing plugin there would stop their plugin loading while this test runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pixline.engine import CONTRACT_VERSION, testing

from tests import guide

PIXLINE = [sys.executable, "-m", "pixline.server.commands"]

#: The plugin guide's own example (docs/plugins.md), so what the guide shows is what is installed here.
SEPIA = guide.files()["pixline_sepia/__init__.py"]


def make_distribution(root: Path, dist: str, module: str, entry: str, code: str,
                      version: str = "1.2.3") -> Path:
    folder = root / f"{dist}-{version}"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n')
    (folder / "setup.cfg").write_text(textwrap.dedent(f"""\
        [metadata]
        name = {dist}
        version = {version}

        [options]
        py_modules = {module}
        install_requires = pixline

        [options.entry_points]
        pixline =
            {entry} = {module}
        """))
    (folder / f"{module}.py").write_text(code)
    return folder


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check", *args],
                   check=True, capture_output=True)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install distributions written into tmp_path into tmp_path/site, which the ``pixline``
    processes of the test (and only they) see on their PYTHONPATH."""
    site = tmp_path / "site"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))

    def install(dist: str, module: str = "", entry: str = "", code: str = "", version: str = "1.2.3",
                folder: Path | None = None, upgrade: bool = False) -> None:
        folder = folder or make_distribution(tmp_path, dist, module, entry, code, version)
        pip("install", "--no-deps", "--no-build-isolation", *(["--upgrade"] if upgrade else []),
            "--target", str(site), str(folder))

    return install


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PIXLINE, *args], capture_output=True, text=True, timeout=120)


def test_an_installed_plugin_is_listed_and_works_in_a_recipe(installed, tmp_path):
    """The plugin guide's distribution (setup.cfg, pyproject.toml, package), installed by pip."""
    folder = guide.write(tmp_path / "pixline-sepia", "setup.cfg", "pyproject.toml", "pixline_sepia/__init__.py")
    installed("pixline-sepia", folder=folder)
    listing = run("plugins")
    assert listing.returncode == 0, listing.stderr
    line = next(l for l in listing.stdout.splitlines() if l.startswith("sepia"))
    assert "pixline-sepia 0.1.0" in line and "steps: sepia" in line
    for first_party in ("pixline-resize", "pixline-crop", "pixline-watermark", "pixline-format",
                        "pixline-sharpen", "pixline-blur", "pixline-adjust", "pixline-colour"):
        assert first_party in listing.stdout

    recipe = tmp_path / "old-photo.yaml"
    recipe.write_text("steps:\n  - resize: {width: 100}\n  - sepia: {strength: 1}\n  - format: {type: png}\n")
    src, out = tmp_path / "in.jpg", tmp_path / "out.png"
    src.write_bytes(testing.jpeg_bytes(testing.gradient(200, 100)))
    result = run("apply", str(recipe), str(src), str(out))
    assert result.returncode == 0, result.stderr
    image = testing.decode(out.read_bytes())
    assert (image.width, image.height) == (100, 50)
    r, g, b = image(30, 25)[:3]
    assert r > g > b  # sepia: warm, where the test card is blue-green there

    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - sepia: {strength: 3}\n")
    refused = run("apply", str(bad), str(src), str(out))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"pixline: error: {bad}: step 1 (sepia): parameter 'strength': "
        "Input should be less than or equal to 1"]


def test_a_plugin_that_fails_to_import_is_listed_broken_and_costs_only_its_recipes(installed, tmp_path):
    installed("pixline-broken", "pixline_broken", "broken", "import no_such_module_anywhere\n")
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    reason = "failed to load: ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    assert f"broken       broken     pixline-broken 1.2.3\n    broken: {reason}" in result.stdout
    assert run("plugins", "--check").returncode == 1
    assert run("recipes").returncode == 0  # the shipped recipes do not need it

    needs_it = tmp_path / "recipes"
    needs_it.mkdir()
    (needs_it / "tinted.yaml").write_text("steps:\n  - tint-ish: {}\n")
    refused = run("recipes", "--recipes", str(needs_it))
    assert refused.returncode == 1
    assert (f"{needs_it / 'tinted.yaml'}: step 1: unknown step 'tint-ish'" in refused.stderr
            and f"it may be from a plugin that did not load: plugin 'broken' from pixline-broken 1.2.3 "
                f"is broken ({reason})" in refused.stderr)


def test_a_plugin_claiming_a_taken_step_name_is_refused(installed):
    clash = SEPIA.replace('name = "sepia"', 'name = "resize"')
    installed("pixline-clash", "pixline_clash", "clash", clash)
    result = run("recipes")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert "step 'resize' is registered by two plugins" in message
    assert "pixline-resize" in message and "pixline-clash" in message


TIFF = '''
"""A TIFF encoder: a third-party pixline plugin that only adds an output format."""
from pixline.engine import Encoder, hookimpl


class Tiff(Encoder):
    name, media_type, extension, supports_alpha = "tiff", "image/tiff", "tif", True

    def encode(self, image, spec, keep_metadata, ctx):
        return image.tiffsave_buffer(compression="deflate", keep="all" if keep_metadata else "none")


@hookimpl
def pixline_register_encoders(register):
    register(Tiff)
'''


def on_path(root: Path, dist: str, module: str, entry: str, code: str, version: str = "1.2.3") -> None:
    """Put a distribution in ``root`` as an installer would leave it (module and dist-info), without
    pip: fast, and nothing changes in the test environment. ``run(..., path=root)`` sees it."""
    root.mkdir(exist_ok=True)
    for old in root.glob(f"{dist.replace('-', '_')}-*.dist-info"):
        shutil.rmtree(old)
    (root / f"{module}.py").write_text(code)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[pixline]\n{entry} = {module}\n")


def run_on(path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run([*PIXLINE, *args], capture_output=True, text=True, timeout=120, env=env)


def digests(site: Path, folder: Path) -> dict[str, str]:
    """Recipe name → digest, as ``pixline recipes`` prints them."""
    result = run_on(site, "recipes", "--recipes", str(folder))
    assert result.returncode == 0, result.stderr
    return {line.split()[0]: line.split()[2] for line in result.stdout.splitlines()}


def test_digests_follow_plugin_versions_and_ignore_unrelated_encoders(tmp_path):
    site, recipes = tmp_path / "site", tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "old-photo.yaml").write_text("steps:\n  - resize: {width: 100}\n  - sepia: {}\n"
                                            "  - format: {type: jpeg}\n")
    (recipes / "feed.yaml").write_text("steps:\n  - resize: {width: 100}\n  - format: {type: auto}\n")
    on_path(site, "pixline-sepia", "pixline_sepia", "sepia", SEPIA, version="1.2.3")
    first = digests(site, recipes)
    on_path(site, "pixline-sepia", "pixline_sepia", "sepia", SEPIA, version="1.2.4")
    bumped = digests(site, recipes)
    assert bumped["old-photo"] != first["old-photo"]  # new sepia bytes: new keys, new ETags
    assert bumped["feed"] == first["feed"]  # feed does not use sepia
    on_path(site, "pixline-tiff", "pixline_tiff", "tiff", TIFF)
    assert digests(site, recipes) == bumped  # an encoder no recipe can produce changes nothing

    # …and the new encoder is chosen by name.
    (recipes / "archive.yaml").write_text("steps:\n  - format: {type: tiff}\n")
    src, out = tmp_path / "in.jpg", tmp_path / "out.tif"
    src.write_bytes(testing.jpeg_bytes(testing.gradient(64, 48)))
    result = run_on(site, "apply", str(recipes / "archive.yaml"), str(src), str(out))
    assert result.returncode == 0, result.stderr
    assert testing.decode(out.read_bytes()).get("vips-loader").startswith("tiffload")


@pytest.mark.parametrize("change, message", [
    (("def pixline_register_steps", "def pixline_register_step"),
     "plugin 'typo' from pixline-typo 1.2.3: pixline_register_step is not a pixline hook (did you mean "
     "pixline_register_steps? the hooks are pixline_register_analysers, pixline_register_encoders, "
     "pixline_register_gravities, pixline_register_metrics, pixline_register_steps)"),
    (("@hookimpl\ndef", "def"),
     "plugin 'typo' from pixline-typo 1.2.3: pixline_register_steps is not marked as a hook: decorate "
     "it with @hookimpl (from pixline.engine import hookimpl)"),
])
def test_a_misspelt_hook_stops_start_up_with_one_line_naming_it(tmp_path, change, message):
    """A typo the author must see: every process refuses to start; ``pixline plugins`` lists it."""
    on_path(tmp_path, "pixline-typo", "pixline_typo", "typo", SEPIA.replace(*change))
    result = run_on(tmp_path, "recipes")
    assert (result.returncode, result.stderr.strip().splitlines()) == (1, [f"pixline: error: {message}"])
    listing = run_on(tmp_path, "plugins")
    assert listing.returncode == 0, listing.stderr
    assert f"typo         broken     pixline-typo 1.2.3\n    broken: {message.split(': ', 1)[1]}" in listing.stdout


@pytest.mark.parametrize("change, reason", [
    (("    register(Sepia)", "    register(Sepia)\n    raise RuntimeError('no licence key')"),
     "failed in pixline_register_steps: RuntimeError: no licence key"),
    (('name = "sepia"', 'name = "my/sepia:x"'),
     "step name 'my/sepia:x' is not valid: use 1-32 lower-case letters, digits, '_' or '-', starting "
     "with a letter"),
    (("def apply(self, image", "def apply(self, image, palette"),
     "step 'sepia': apply() asks for 'palette', which the contract does not have: it passes (self, "
     f"image, params, ctx), by name; take any of them (contract {CONTRACT_VERSION})"),
])
def test_a_broken_plugin_is_named_and_refuses_only_the_recipes_that_need_it(tmp_path, change, reason):
    site, recipes = tmp_path / "site", tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "old-photo.yaml").write_text("steps:\n  - sepia: {}\n")
    (recipes / "small.yaml").write_text("steps:\n  - resize: {width: 10}\n")
    on_path(site, "pixline-typo", "pixline_typo", "typo", SEPIA.replace(*change))
    listing = run_on(site, "plugins")
    assert listing.returncode == 0, listing.stderr
    assert f"\n    broken: {reason}\n" in listing.stdout
    checked = run_on(site, "recipes", "--recipes", str(recipes))
    assert checked.returncode == 1
    assert checked.stdout.startswith("small ")  # every other recipe serves
    refusal = next(line for line in checked.stderr.splitlines() if "old-photo.yaml" in line)
    assert refusal.startswith(f"INVALID  {recipes / 'old-photo.yaml'}: step 1: ")
    # Named by the step's own name when the plugin got as far as registering it, else as the suspect.
    assert (f"step 'sepia' is from plugin 'typo' from pixline-typo 1.2.3, which is broken: {reason}"
            in refusal or f"unknown step 'sepia'" in refusal and
            f"plugin 'typo' from pixline-typo 1.2.3 is broken ({reason})" in refusal)


def test_an_upgrade_that_leaves_the_old_dist_info_keys_on_the_code_that_runs(installed, tmp_path):
    """``pip install --upgrade --target`` keeps 0.1.0's dist-info next to 0.2.0's; importlib.metadata
    may hand out 0.1.0 while 0.2.0's module is what imports. The digest must follow the code."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "old-photo.yaml").write_text("steps:\n  - sepia: {}\n  - format: {type: jpeg}\n")
    installed("pixline-sepia", "pixline_sepia", "sepia", SEPIA, version="0.1.0")
    before = digests(tmp_path / "site", recipes)
    installed("pixline-sepia", "pixline_sepia", "sepia", SEPIA, version="0.2.0", upgrade=True)
    assert len(list((tmp_path / "site").glob("pixline_sepia-*.dist-info"))) == 2  # the trap is set

    listing = run("plugins", "--json")
    assert listing.returncode == 0, listing.stderr
    sepia = next(p for p in json.loads(listing.stdout) if p["name"] == "sepia")
    assert sepia["version"] == "0.2.0"
    assert sepia["warnings"] and sepia["warnings"][0].startswith(
        "2 distributions of pixline-sepia are installed: 0.1.0 (")
    assert "the code that runs is 0.2.0's" in sepia["warnings"][0]
    assert digests(tmp_path / "site", recipes)["old-photo"] != before["old-photo"]

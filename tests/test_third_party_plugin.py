"""A plugin from outside this repository works with no change to the core.

Each test writes a small plugin distribution into a temporary folder (its own setup.cfg and entry
point), pip-installs it into a folder of its own, and uses it through the real ``pixline`` command run
with that folder on its PYTHONPATH. Not into the test environment: other test runs share it, and a
broken or clashing plugin there would stop their plugin loading while this test runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pixline.engine import testing

PIXLINE = [sys.executable, "-m", "pixline.server.commands"]

SEPIA = '''
"""Sepia toning: a third-party pixline plugin."""
import pydantic
from pixline.engine import Step, StepParams, hookimpl


class Sepia(Step):
    name = "sepia"
    version = "1"

    class Params(StepParams):
        strength: float = pydantic.Field(default=1.0, ge=0, le=1)

    def apply(self, image, params, ctx):
        matrix = [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]]
        toned = image[:3].recomb(matrix)
        return (image[:3] * (1 - params.strength) + toned * params.strength).cast("uchar")


@hookimpl
def pixline_register_steps(register):
    register(Sepia)
'''


def make_distribution(root: Path, dist: str, module: str, entry: str, code: str) -> Path:
    folder = root / dist
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n')
    (folder / "setup.cfg").write_text(textwrap.dedent(f"""\
        [metadata]
        name = {dist}
        version = 1.2.3

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

    def install(dist: str, module: str, entry: str, code: str) -> None:
        folder = make_distribution(tmp_path, dist, module, entry, code)
        pip("install", "--no-deps", "--no-build-isolation", "--target", str(site), str(folder))

    return install


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PIXLINE, *args], capture_output=True, text=True, timeout=120)


def test_an_installed_plugin_is_listed_and_works_in_a_recipe(installed, tmp_path):
    installed("pixline-sepia", "pixline_sepia", "sepia", SEPIA)
    listing = run("plugins")
    assert listing.returncode == 0, listing.stderr
    line = next(l for l in listing.stdout.splitlines() if l.startswith("sepia"))
    assert "pixline-sepia 1.2.3" in line and "steps: sepia" in line
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


def test_a_plugin_that_fails_to_import_stops_start_up_with_its_name(installed):
    installed("pixline-broken", "pixline_broken", "broken", "import no_such_module_anywhere\n")
    result = run("plugins")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pixline: error: plugin 'broken' (distribution pixline-broken) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_module_anywhere'"]


def test_a_plugin_claiming_a_taken_step_name_is_refused(installed):
    clash = SEPIA.replace('name = "sepia"', 'name = "resize"')
    installed("pixline-clash", "pixline_clash", "clash", clash)
    result = run("recipes")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert "step 'resize' is registered by two plugins" in message
    assert "pixline-resize" in message and "pixline-clash" in message

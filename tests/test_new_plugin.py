"""``pixline new-plugin NAME`` writes a plugin distribution whose own tests pass as written."""
from __future__ import annotations

import configparser
import os
import subprocess
import sys

from pixline import testing
from pixline.server.commands.cli import main


def test_the_skeleton_is_a_plugin_whose_tests_pass(tmp_path, capsys):
    assert main(["new-plugin", "soft-glow", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "pixline-soft-glow"
    assert "pixline-soft-glow: the 'soft-glow' step" in capsys.readouterr().out
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "README.md", "pixline_soft_glow/__init__.py", "pyproject.toml", "setup.cfg",
        "tests/test_soft_glow.py"]
    setup = configparser.ConfigParser()
    setup.read(root / "setup.cfg")
    assert setup["metadata"]["name"] == "pixline-soft-glow"
    assert setup["options.entry_points"]["pixline"].split() == ["soft-glow", "=", "pixline_soft_glow"]
    # Deprecation warnings are errors: the skeleton uses nothing of the kit that is on its way out.
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-W", "error::DeprecationWarning", "tests"],
                            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # Its tests use pixline's pytest plugin: one run per colour shape, alone and per format.
    shapes = len(testing.COLOUR_SHAPES)
    assert f"{shapes + 3 * shapes + 4} passed" in result.stdout, result.stdout


def test_bad_names_and_existing_folders_are_one_line_errors(tmp_path, capsys):
    assert main(["new-plugin", "Soft/Glow", "--dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        "pixline: error: plugin name 'Soft/Glow' is not valid: use 1-32 lower-case letters, digits, "
        "'_' or '-', starting with a letter")
    (tmp_path / "pixline-glow").mkdir()
    assert main(["new-plugin", "glow", "--dir", str(tmp_path)]) == 1
    assert "pixline-glow already exists" in capsys.readouterr().err

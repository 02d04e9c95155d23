"""The version of a plugin is that of the distribution whose files hold the code that runs."""
from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pixline.engine import distributions


def write_distribution(root: Path, version: str) -> Path:
    folder = root / f"src-{version}"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n')
    (folder / "setup.cfg").write_text(textwrap.dedent(f"""\
        [metadata]
        name = pixline-upgraded
        version = {version}

        [options]
        py_modules = pixline_upgraded
        """))
    (folder / "pixline_upgraded.py").write_text(f"VERSION = {version!r}\n")
    return folder


@pytest.fixture(scope="module")
def upgraded_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.1.0, then ``pip install --upgrade --target`` 0.2.0: both dist-infos stay, 0.2.0's module."""
    root = tmp_path_factory.mktemp("upgrade")
    for version, extra in (("0.1.0", []), ("0.2.0", ["--upgrade"])):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--no-build-isolation", *extra, "--target", str(root / "site"),
                        str(write_distribution(root, version))], check=True, capture_output=True)
    return root / "site"


def test_two_dist_infos_the_version_whose_record_matches_the_module_wins(upgraded_site, monkeypatch):
    monkeypatch.syspath_prepend(str(upgraded_site))
    monkeypatch.delitem(sys.modules, "pixline_upgraded", raising=False)
    assert importlib.import_module("pixline_upgraded").VERSION == "0.2.0"
    found = distributions.installed_by_name(["pixline-upgraded"])["pixline-upgraded"]
    assert sorted(d.version for d in found) == ["0.1.0", "0.2.0"]
    # Whichever one importlib.metadata would hand out first (it depends on the folder's order):
    for fallback in found:
        owner = distributions.owner("pixline_upgraded", list(found), fallback)
        assert (owner.name, owner.version) == ("pixline-upgraded", "0.2.0")
        assert owner.warning.startswith("2 distributions of pixline-upgraded are installed: 0.1.0 (")


def test_one_distribution_is_taken_as_it_is():
    dist = importlib.metadata.distribution("pixline-resize")
    owner = distributions.owner("pixline_resize", [dist], dist)
    assert (owner.name, owner.version, owner.warning) == ("pixline-resize", dist.version, "")

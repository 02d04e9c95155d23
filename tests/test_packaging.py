"""The core distribution installs every module under its namespaced name, and nothing bare."""
from __future__ import annotations

import configparser
import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def declared() -> tuple[dict[str, str], list[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    mapping = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())
    return mapping, cfg["options"]["packages"].split()


def test_every_python_package_folder_is_declared():
    mapping, packages = declared()
    found = []
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.append(".".join((name, *relative)))
    assert sorted(found) == sorted(packages)


def test_nothing_installs_a_bare_top_level_name():
    # "pixline" itself is the package around the others (the Python API: from pixline import render).
    mapping, packages = declared()
    assert all(name == "pixline" or name.startswith("pixline.") for name in list(mapping) + packages)


def test_each_plugin_is_its_own_distribution_with_tests_and_readme():
    for folder in sorted(p.parent for p in (ROOT / "plugins").glob("*/setup.cfg")):
        cfg = configparser.ConfigParser()
        cfg.read(folder / "setup.cfg")
        assert cfg["metadata"]["name"] == f"pixline-{folder.name}"
        assert "pixline" in cfg["options.entry_points"]
        assert (folder / "README.md").is_file() and list((folder / "tests").glob("test_*.py"))


def test_every_data_file_of_a_package_is_package_data():
    """Files a package reads at run time (recipes, the web page's HTML/CSS/JS) ship in the wheel."""
    mapping, packages = declared()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = {name: value.replace(",", " ").split() for name, value in cfg["options.package_data"].items()}
    missing = []
    for package in packages:
        top = max((name for name in mapping if package == name or package.startswith(name + ".")), key=len)
        folder = ROOT / mapping[top] / package[len(top):].lstrip(".").replace(".", "/")
        subpackages = {p.parent for p in folder.rglob("__init__.py")} - {folder}
        for path in folder.rglob("*"):
            relative = path.relative_to(folder).as_posix()
            if (path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts
                    or any(sub in path.parents for sub in subpackages)):
                continue
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in patterns.get(package, [])):
                missing.append(f"{package}: {relative}")
    assert not missing, "not in setup.cfg [options.package_data]: " + ", ".join(missing)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pixline built as a wheel and installed (not editable) into a folder of its own: what
    `pip install .` or `pip install pixline` makes. Built from a copy of the sources (building in
    place would leave build/ in the checkout)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in declared()[0].values():
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True, timeout=300)
    wheel, = (tmp_path / "dist").glob("pixline-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return site


def run_python(script: str, cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """``python -c script`` in ``cwd`` (first on sys.path, as for any ``python -c``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


RENDER = ("from pixline import render\n"
          "import pixline\n"
          "out = render('thumb', %r)\n"
          "print(pixline.__file__, out.format, out.width, out.height)\n" % str(ROOT / "tests/photos/Storm.jpg"))


@pytest.mark.parametrize("where", ["the checkout's root", "another folder"])
def test_the_wheel_installs_pixline_with_its_api_and_package_data(installed_wheel, tmp_path, where):
    # From the root, the current directory comes first on sys.path: no folder of the checkout may
    # be mistaken for the installed package (issue 20: ModuleNotFoundError: pixline.engine).
    cwd = ROOT if where == "the checkout's root" else tmp_path
    script = (
        "import pixline, pixline.engine.api, pixline.server.http.openapi as o\n"
        "from pixline import testing\n"
        "import pixline.pytest_plugin\n"
        "assert testing.render_recipe and testing.__file__.startswith(%r)\n" % str(installed_wheel) +
        "assert o.description()['paths'] and pixline.__version__ == o.description()['info']['version']\n"
        + RENDER)
    result = run_python(script, cwd, pythonpath=installed_wheel)
    assert result.returncode == 0, result.stderr
    where_from, *rendered = result.stdout.split()
    assert where_from.startswith(str(installed_wheel)), where_from
    assert rendered == ["jpeg", "200", "200"]  # the recipes and the plugins were found


@pytest.mark.parametrize("where", ["the checkout's root", "another folder"])
def test_the_editable_install_imports_from_any_folder(tmp_path, where):
    """This venv's own install (make install: pip install -e .)."""
    result = run_python(RENDER, ROOT if where == "the checkout's root" else tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1:] == ["jpeg", "200", "200"]


def test_no_folder_of_the_checkout_is_named_like_an_installed_package():
    mapping, _ = declared()
    top_level = {name.split(".")[0] for name in mapping}
    assert not [name for name in top_level if (ROOT / name).is_dir()]

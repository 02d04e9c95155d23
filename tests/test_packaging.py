"""The core distribution installs every module under its namespaced name, and nothing bare."""
from __future__ import annotations

import configparser
import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_the_wheel_installs_pixline_with_its_api_and_package_data(tmp_path):
    # Built from a copy of the sources (building in place would leave build/ in the checkout) and
    # installed into a folder of its own that comes first on the path: what `pip install pixline` makes.
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
    script = (
        "import pixline, pixline.engine.api, pixline.server.http.openapi as o\n"
        "from pixline import render\n"
        "from pathlib import Path\n"
        "assert pixline.__file__.startswith(%r), pixline.__file__\n"
        "assert o.description()['paths'] and pixline.__version__ == o.description()['info']['version']\n"
        "out = render('thumb', %r)\n"
        "print(out.format, out.width, out.height)\n" % (str(site), str(ROOT / "tests/photos/Storm.jpg")))
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["jpeg", "200", "200"]  # the recipes and the plugins were found

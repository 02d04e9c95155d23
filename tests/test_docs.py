"""docs/recipes.md is what ``pixline docs`` makes of the first-party plugins, so it cannot go stale."""
from __future__ import annotations

import configparser
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pydantic

from pixline.engine import StepParams
from pixline.engine.registry import Registry
from pixline.server.commands.docs import reference
from pixline.server.http.urlsteps import parse_step

from tests.engine import toyplugin

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "recipes.md"
PIXLINE = [sys.executable, "-m", "pixline.server.commands"]


def first_party() -> Registry:
    """The plugins of this repository only (a developer may have others installed)."""
    names = set()
    for cfg_path in ROOT.glob("plugins/*/setup.cfg"):
        cfg = configparser.ConfigParser()
        cfg.read(cfg_path)
        names.add(cfg["metadata"]["name"])
    registry = Registry()
    for ep in sorted(importlib.metadata.entry_points(group="pixline"), key=lambda e: e.name):
        if ep.dist and ep.dist.name in names:
            registry.add(ep.name, ep.load(), ep.dist.name, ep.dist.version)
    assert len(registry.plugins) == len(names), "a first-party plugin is not installed: make install"
    return registry


def rows(text: str, step: str) -> dict[str, list[str]]:
    """The parameter table of ``step``'s section: {parameter: [URL key, type, range, default, notes]}."""
    section = text.split(f"\n## {step}\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells and cells[0].startswith("`"):
            found[cells[0].strip("`")] = cells[1:]
    return found


def test_docs_recipes_md_is_what_the_plugins_say():
    assert PAGE.read_text(encoding="utf-8") == reference(first_party()), (
        "docs/recipes.md is stale: run 'make docs' (pixline docs --output docs/recipes.md)")


def test_every_step_and_parameter_is_there_with_type_range_default_and_short_key():
    registry = first_party()
    text = PAGE.read_text(encoding="utf-8")
    for name, step in registry.steps.items():
        assert set(rows(text, name)) == set(step.Params.model_fields), name
    resize = rows(text, "resize")
    assert resize["width"] == ["`w`", "integer", "1 – 16384", "none", ""]
    assert resize["fit"][3] == "`inside`" and "`cover`" in resize["fit"][1]
    assert rows(text, "format")["quality"][:3] == ["`q`", "integer or text", "1 – 100"]
    assert "auto:high (85)" in rows(text, "format")["quality"][-1]
    assert rows(text, "watermark")["opacity"][1:4] == ["number", "0 – 1", "`0.5`"]
    assert rows(text, "watermark")["colour"][1].startswith("colour")
    # The short key the page gives is the one a URL takes.
    for step, param in (("resize", "width"), ("format", "quality"), ("crop", "gravity")):
        short = rows(text, step)[param][0].strip("`")
        assert parse_step(f"{step}:{short}=1", registry, "test") == {step: {param: "1"}}


def test_the_page_follows_a_plugins_schema():
    registry = Registry()
    registry.add("toy", toyplugin, "pixline-toy", "1")
    assert rows(reference(registry), "half")["times"] == ["", "integer", "1 – 4", "`1`", ""]

    class Described(StepParams):
        strength: float = pydantic.Field(0.5, gt=0, lt=1, description="how strong")

    toyplugin.Half.Params, original = Described, toyplugin.Half.Params
    try:
        assert rows(reference(registry), "half")["strength"] == ["", "number", "> 0 – < 1", "`0.5`",
                                                                 "how strong"]
    finally:
        toyplugin.Half.Params = original


def test_pixline_docs_check_says_when_a_page_is_stale(tmp_path):
    ok = subprocess.run([*PIXLINE, "docs", "--check", str(PAGE)], capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    stale = tmp_path / "recipes.md"
    stale.write_text(PAGE.read_text().replace("1 – 16384", "1 – 9999"))
    result = subprocess.run([*PIXLINE, "docs", "--check", str(stale)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == f"pixline: error: {stale} is stale: run 'pixline docs --output {stale}'"


def test_a_required_parameter_and_a_step_without_a_docstring_are_said_as_such():
    import types

    from pixline.engine import Step, hookimpl
    from pixline.server.commands.docs import NO_DESCRIPTION

    class Spread(Step):  # no docstring: the page must not show Step's
        name = "spread"

        class Params(StepParams):
            amount: float = pydantic.Field(gt=0)                 # required
            limit: float | None = pydantic.Field(None, gt=0)     # optional, no value by default

    class Wider(Spread):
        name = "wider"

    class Narrow(Spread):
        """Spread, narrowly."""

        name = "narrow"

    registry = Registry()
    registry.add("spread", types.SimpleNamespace(pixline_register_steps=hookimpl(
        lambda register: [register(cls) for cls in (Spread, Wider, Narrow)])), "pixline-spread", "1")
    page = reference(registry)
    assert rows(page, "spread")["amount"] == ["", "number", "> 0", "required", ""]
    assert rows(page, "spread")["limit"] == ["", "number", "> 0", "none", ""]
    assert f"| [`spread`](#spread) | pixline-spread | {NO_DESCRIPTION} |" in page
    assert f"| [`wider`](#wider) | pixline-spread | {NO_DESCRIPTION} |" in page
    assert "| [`narrow`](#narrow) | pixline-spread | Spread, narrowly. |" in page
    assert " ".join(Step.__doc__.split())[:40] not in page
    assert rows(PAGE.read_text(encoding="utf-8"), "blur")["sigma"][3] == "required"

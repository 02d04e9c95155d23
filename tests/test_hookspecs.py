"""Every hook is documented (docstring and plugin guide, docs/plugins.md) and has a test of its own
(datasette's rule)."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pixline.engine import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("pixline_"))


def test_there_are_hooks():
    assert HOOKS == ["pixline_register_analysers", "pixline_register_encoders", "pixline_register_gravities",
                     "pixline_register_metrics",
                     "pixline_register_steps"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_says_when_what_and_returns(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "Called" in doc, f"{hook}: say when it is called"
    assert "Return" in doc, f"{hook}: say what it returns"
    assert inspect.signature(getattr(hookspecs, hook)).parameters, f"{hook}: document its arguments"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_in_the_plugin_guide_with_its_spec(hook):
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert f"### `{hook}(" in guide, f"docs/plugins.md: give {hook} a section of its own"
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"def {hook}({params}:" in guide, f"docs/plugins.md: show {hook}'s signature"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test_of_its_own(hook):
    here = Path(__file__).resolve()
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if p != here]
    tests += list((ROOT / "plugins").glob("*/tests/test_*.py"))
    assert any(hook in p.read_text() for p in tests), f"no test mentions {hook}"

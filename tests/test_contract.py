"""The contract's changelog and docstrings match the code (datasette's documentation meta-test,
extended to signatures): every name the changelog gives exists, every public member of the
contract's classes is in it, each contract method's signature is the one docs/plugins.md shows and
engine/contract.py passes, and every class, method and hook says when it came (``versionadded``)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import pixline.engine as engine
from pixline.engine import (Analyser, CONTRACT_VERSION, Context, Encoder, Metric, OutputSpec, SmartGravity, Step,
                            StepParams, contract,
                            hookspecs)

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "plugins.md").read_text()
CHANGELOG = GUIDE.split("\n## Contract changelog\n", 1)[1].split("\n## ", 1)[0]
CLASSES = {cls.__name__: cls for cls in (Step, Encoder, StepParams, Context, OutputSpec, Analyser, SmartGravity,
                                         Metric)}
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("pixline_")]
NAMED = set(re.findall(rf"`({'|'.join(CLASSES)})\.(\w+)`", CHANGELOG))


def public_members(cls: type) -> set[str]:
    members = {m for m in vars(cls) if not m.startswith("_")} | set(getattr(cls, "__dataclass_fields__", {}))
    return members - {"model_config", "model_fields"}


def test_the_changelog_starts_at_the_current_version_and_lists_every_version():
    versions = re.findall(r"^### (\d+\.\d+)$", CHANGELOG, flags=re.M)
    assert versions[0] == CONTRACT_VERSION == engine.CONTRACT_VERSION
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
    assert "CONTRACT_VERSION" in engine.__all__ and "PixlineDeprecationWarning" in engine.__all__


@pytest.mark.parametrize("owner, member", sorted(NAMED))
def test_every_name_in_the_changelog_exists(owner, member):
    assert member in public_members(CLASSES[owner]), f"changelog names {owner}.{member}, which is not there"


@pytest.mark.parametrize("owner", sorted(CLASSES))
def test_every_public_member_is_in_the_changelog(owner):
    missing = sorted(public_members(CLASSES[owner]) - {m for o, m in NAMED if o == owner})
    assert not missing, f"docs/plugins.md, Contract changelog: say when {owner}.{missing} came"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_changelog(hook):
    assert f"`{hook}`" in CHANGELOG


@pytest.mark.parametrize("owner, method", [(o, m) for o, methods in contract.METHODS.items() for m in methods])
def test_each_method_has_the_signature_the_guide_shows_and_the_engine_passes(owner, method):
    arguments = contract.METHODS[owner][method].arguments
    base = list(inspect.signature(getattr(CLASSES[owner], method)).parameters)[1:]
    assert tuple(base) == arguments, f"{owner}.{method}: the base class and engine/contract.py differ"
    assert f"| `{method}({', '.join(arguments)})` |" in GUIDE, f"docs/plugins.md: show {owner}.{method}'s arguments"


@pytest.mark.parametrize("thing", [*CLASSES.values(), *(getattr(CLASSES[o], m) for o, ms in contract.METHODS.items()
                                                          for m in ms), *(getattr(hookspecs, h) for h in HOOKS)],
                         ids=lambda thing: thing.__qualname__)
def test_every_class_method_and_hook_says_when_it_came(thing):
    doc = inspect.getdoc(thing) or ""
    assert ".. versionadded::" in doc, f"{thing.__qualname__}: add '.. versionadded:: X.Y' to its docstring"
    for version in re.findall(r"\.\. version(?:added|changed):: (\S+)", doc):
        assert f"### {version}" in CHANGELOG, f"{thing.__qualname__}: version {version} is not in the changelog"

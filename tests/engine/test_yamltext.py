"""The one YAML loader (engine/yamltext.py) and the bounded quote of error messages (engine/errors.py).

The hostile corpus goes through every way in in tests/hostile/test_yaml.py; here are the bounds
themselves, at their edges, and what a recipe may still write.
"""
from __future__ import annotations

import math
import os
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixline.engine import RecipeError, default_registry, yamltext
from pixline.engine.errors import QUOTE_LIMIT, clip, quote
from pixline.engine.recipefiles import RecipeDocument
from pixline.engine.yamltext import MAX_DEPTH, MAX_DOCUMENT_CHARS, MAX_NODES, MAX_NUMBER_CHARS, parse


def data(text: str) -> Any:
    return parse(text, "t")[1]


def refused(text: str) -> RecipeError:
    with pytest.raises(RecipeError) as err:
        parse(text, "t")
    return err.value


def test_what_a_recipe_is_made_of_still_loads() -> None:
    text = ("box: &box {width: 300, height: 200}\n"
            "steps: [{resize: *box}, {crop: {<<: *box, left: 1_000}}, grayscale]\n"
            "q: 0.5\nexp: 1.5e+3\nhex: 0x1F\nyes: yes\nnone: ~\nratio: 16:9\ntext: '2001-02-30'\n")
    assert data(text) == {"box": {"width": 300, "height": 200},
                          "steps": [{"resize": {"width": 300, "height": 200}},
                                    {"crop": {"width": 300, "height": 200, "left": 1000}}, "grayscale"],
                          "q": 0.5, "exp": 1500.0, "hex": 31, True: True, "none": None,
                          "ratio": 969,  # YAML 1.1's base 60: the crop step explains it
                          "text": "2001-02-30"}
    node, loaded = parse("")
    assert node is None and loaded is None


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_is_bounded_as_nodes_are_composed() -> None:
    assert data(nested(MAX_DEPTH)) is not None
    err = refused("a: 1\nb: " + nested(MAX_DEPTH))
    assert err.line == 2 and f"nested more than {MAX_DEPTH} levels deep" in str(err)
    block = "".join("  " * i + "- \n" for i in range(MAX_DEPTH + 5))
    assert f"more than {MAX_DEPTH} levels" in str(refused(block))


def laughs(levels: int, width: int = 9) -> str:
    text = f"&a0 [{', '.join(['lol'] * width)}]"
    for i in range(1, levels):
        text = f"&a{i} [{', '.join([text] + [f'*a{i - 1}'] * (width - 1))}]"
    return text


def test_aliases_cost_what_they_name() -> None:
    # 3 levels of 9: 9**3 words and 1 + 9 + 81 lists: well inside the budget.
    assert len(data(laughs(3))) == 9
    err = refused("description: " + laughs(10))  # the billion laughs: 505 bytes
    assert err.line == 1 and f"more than {MAX_NODES} values" in str(err)
    tracemalloc.start()
    refused("description: " + laughs(10))
    assert tracemalloc.get_traced_memory()[1] < 1024 * 1024
    tracemalloc.stop()


def test_the_node_budget_counts_each_alias_as_its_size_exactly() -> None:
    # A list of N scalars is N + 1 nodes; its alias used k times adds k * (N + 1).
    size = MAX_NODES // 4 - 1
    items = ", ".join(["1"] * (size - 1))
    fits = f"[&l [{items}], *l, *l, *l]"  # 1 + 4 * size nodes
    assert 1 + 4 * size <= MAX_NODES and len(data(fits)) == 4
    over = f"[&l [{items}, 1], *l, *l, *l]"  # 1 + 4 * (size + 1)
    assert 1 + 4 * (size + 1) > MAX_NODES
    refused(over)
    assert "more than" in str(refused("[" + ", ".join(["1"] * MAX_NODES) + "]"))


def test_a_cycle_and_an_undefined_alias_are_refused() -> None:
    assert "a cycle" in str(refused("a: &s [1, *s]"))
    assert "a cycle" in str(refused("a: &m {b: *m}"))
    assert "undefined alias" in str(refused("a: *nowhere"))


def test_the_document_is_bounded() -> None:
    assert data("# " + "x" * (MAX_DOCUMENT_CHARS - 3)) is None
    assert f"at most {MAX_DOCUMENT_CHARS}" in str(refused("# " + "x" * MAX_DOCUMENT_CHARS))
    assert "single document" in str(refused("a: 1\n---\nb: 2\n"))


@pytest.mark.parametrize("text, words", [
    ("a: 2001-02-30", "reads as a date"),
    ("a: 2001-12-14 21:59:43.10 -5", "reads as a date"),
    ("a: !!timestamp 2001-12-14", "reads as a date"),
    ("a: !!binary aGk=", "the tag !!binary"),
    ("a: !!set {x}", "the tag !!set"),
    ("a: !!omap [b: 1]", "the tag !!omap"),
    ("a: !!pairs [b: 1]", "the tag !!pairs"),
    ("a: !!python/name:os.system", "the tag !!python/name:os.system"),
    ("a: !local x", "the tag '!local'"),
    ("a: !!float 'x'", "!!float 'x' cannot be read"),
    ("a: !!int '0x'", "!!int '0x' cannot be read"),
    ("a: !!int ''", "!!int '' cannot be read"),
    ("a: !!bool maybe", "cannot be read"),
    ("a: !!str [1]", "expected a scalar node"),
    ("a: .nan", "not a finite number"),
    ("a: .Inf", "not a finite number"),
    ("a: -.inf", "not a finite number"),
    ("a: 1.0e+309", "not a finite number"),
    ("a: !!float 1e999", "not a finite number"),
    ("? [1]\n: 2", "unhashable key"),
], ids=lambda v: v if len(v) < 30 else None)
def test_only_recipe_values_are_constructed(text: str, words: str) -> None:
    err = refused("x: 1\n" + text)
    assert words in str(err) and err.line == 2, str(err)


def test_numbers_are_bounded_before_they_are_converted() -> None:
    longest = "9" * MAX_NUMBER_CHARS
    assert data(f"a: {longest}")["a"] == int(longest)
    for spelling in ("9" * (MAX_NUMBER_CHARS + 1), "9" * 5000, "-" + "1_" * 40 + "1", "0x" + "f" * 40,
                     ":".join(["59"] * 5000), "1." + "5" * 40):
        assert f"at most {MAX_NUMBER_CHARS} are read" in str(refused(f"a: {spelling}")), spelling


def test_errors_never_quote_a_problem_at_length() -> None:
    assert len(str(refused("a: !" + "x" * 60_000 + " 1"))) < 500
    assert len(str(refused("a: *" + "y" * 60_000))) < 500


# -- quote ------------------------------------------------------------------------------------------

def billion_laughs(levels: int = 10) -> list[Any]:
    value: list[Any] = ["lol"] * 9
    for _ in range(levels - 1):
        value = [value] * 9
    return value


@pytest.mark.parametrize("value", [
    "x" * 100_000, 10 ** 5000, -(10 ** 200), billion_laughs(), {"k" * 1000: billion_laughs()},
    {i: "v" * 500 for i in range(10_000)}, tuple(range(100_000)), {1.5, 2.5, 3.5} | set(range(1000)),
    b"\0" * 100_000, [[[[[[[["deep"]]]]]]]] * 1000,
], ids=["str", "huge-int", "negative-int", "laughs", "dict", "wide-dict", "tuple", "set", "bytes", "deep"])
def test_quote_is_bounded_while_it_is_built(value: Any) -> None:
    tracemalloc.start()
    text = quote(value)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(text) <= QUOTE_LIMIT and peak < 256 * 1024, (len(text), peak)


def test_quote_reads_like_repr_when_it_is_short() -> None:
    assert quote("16:9") == "'16:9'"
    assert quote({"width": 300, "fit": "cover"}) == "{'width': 300, 'fit': 'cover'}"  # in the order written
    assert quote([1, 2.5, None, True]) == "[1, 2.5, None, True]"
    assert quote(math.inf) == "inf"
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    assert len(quote(cyclic)) <= QUOTE_LIMIT
    assert quote("a" * 500, 20) == "'" + "a" * 18 + "…" and clip("abc", 3) == "abc"


# -- a short fuzz run: whatever the text, a RecipeError or a recipe ----------------------------------

PIECES = ["steps:", "description:", "eager:", " - ", "\n", "  ", "[", "]", "{", "}", ",", ": ", "&a ", "*a",
          "? ", "!!int ", "!!float ", "!!str ", "!!binary ", "!x ", "<<: ", "'", '"', "1", "0x", ".nan", "9" * 40,
          "2001-02-30", "resize", "crop", "width: ", "aspect: ", "16:9", "~", "yes", "---", "#", "\t", "é"]


@settings(max_examples=int(os.environ.get("PIXLINE_FUZZ_EXAMPLES", "200")), deadline=None, database=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_any_text_is_a_recipe_or_a_recipe_error(text: str) -> None:
    try:
        RecipeDocument(text, "fuzz").build("fuzz", REGISTRY)
    except RecipeError as exc:
        assert len(str(exc)) < 2000


REGISTRY = default_registry()


@pytest.mark.parametrize("text", ["a: " + laughs(10), "a: " + "[" * 100 + "]" * 100, "a: 2001-02-30",
                                  "a: !!float x", "a: .nan", "a: " + "9" * 40, "a: &c [*c]", "a: !!set {b}"])
def test_yaml_s_own_parser_has_the_same_bounds(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = str(refused(text))
    monkeypatch.setattr(yamltext, "RecipeLoader", yamltext.loader_class(yamltext.PYTHON_PARSING))
    assert str(refused(text)) == expected
    assert data("box: &b {w: 1}\nsteps: [{resize: *b}]") == {"box": {"w": 1}, "steps": [{"resize": {"w": 1}}]}

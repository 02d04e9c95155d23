from __future__ import annotations

import pytest

from pixline.engine import RecipeError, build_recipe, load_recipe, load_recipes
from pixline.engine.recipefiles import RecipeDocument, check_recipes


def write(tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_recipe_loads_with_defaults(toy_registry, tmp_path):
    path = write(tmp_path, "small", "description: half size\neager: true\nsteps:\n  - half: {times: 2}\n  - invert\n")
    recipe = load_recipe(path, toy_registry)
    assert recipe.name == "small" and recipe.eager and not recipe.keep_metadata
    assert [rs.name for rs in recipe.steps] == ["half", "invert"]
    assert recipe.steps[0].params.times == 2
    assert len(recipe.digest) == 16


@pytest.mark.parametrize("text, expected", [
    ("steps:\n  - blur: {}\n", r"step 1: unknown step 'blur'"),
    ("steps:\n  - half: {times: 9}\n", r"step 1 \(half\): parameter 'times': Input should be less than or equal to 4"),
    ("steps:\n  - half: {times: two}\n", r"step 1 \(half\): parameter 'times': Input should be a valid integer"),
    ("steps:\n  - invert\n  - half: {tims: 2}\n", r"step 2 \(half\): parameter 'tims': unknown parameter"),
    ("steps:\n  - half: 3\n", r"step 1 \(half\): parameters must be a mapping"),
    ("steps:\n  - {half: {}, invert: {}}\n", r"step 1: write a step as"),
    ("steps: []\n", r"'steps' must be a non-empty list"),
    ("description: x\n", r"'steps' must be a non-empty list"),
    ("steps:\n  - invert\nfilters: []\n", r"unknown key\(s\) filters"),
    ("eager: sometimes\nsteps:\n  - invert\n", r"'eager' must be a bool"),
    ("steps: [\n", r"\(line \d+\): not valid YAML"),
    ("- invert\n", r"a recipe is a mapping"),
])
def test_invalid_recipes_name_file_step_and_parameter(toy_registry, tmp_path, text, expected):
    path = write(tmp_path, "bad", text)
    with pytest.raises(RecipeError, match=expected) as err:
        load_recipe(path, toy_registry)
    assert str(err.value).startswith(str(path))


def test_bad_recipe_file_name_is_refused(toy_registry, tmp_path):
    path = write(tmp_path, "Bad Name", "steps:\n  - invert\n")
    with pytest.raises(RecipeError, match="recipe name 'Bad Name' is not valid"):
        load_recipe(path, toy_registry)


def test_digest_follows_params_versions_and_metadata_but_not_description(toy_registry):
    base = build_recipe("r", {"steps": [{"half": {"times": 1}}]}, toy_registry)
    same = build_recipe("r", {"description": "other words", "steps": [{"half": {}}]}, toy_registry)
    other_params = build_recipe("r", {"steps": [{"half": {"times": 2}}]}, toy_registry)
    keep = build_recipe("r", {"keep_metadata": True, "steps": [{"half": {"times": 1}}]}, toy_registry)
    assert base.digest == same.digest  # defaults are normalized in
    assert len({base.digest, other_params.digest, keep.digest}) == 3
    toy_registry.steps["half"].__class__.version = "3"
    try:
        bumped = build_recipe("r", {"steps": [{"half": {"times": 1}}]}, toy_registry)
    finally:
        toy_registry.steps["half"].__class__.version = "2"
    assert bumped.digest != base.digest


def test_folder_load_refuses_the_first_invalid_recipe(toy_registry, tmp_path):
    write(tmp_path, "a", "steps:\n  - invert\n")
    write(tmp_path, "b", "steps:\n  - nope\n")
    results = dict((p.name, r) for p, r in check_recipes(tmp_path, toy_registry))
    assert not isinstance(results["a.yaml"], RecipeError)
    assert isinstance(results["b.yaml"], RecipeError)
    with pytest.raises(RecipeError, match="b.yaml: step 1: unknown step 'nope'"):
        load_recipes(tmp_path, toy_registry)


def test_missing_recipe_folder_is_an_error(toy_registry, tmp_path):
    with pytest.raises(RecipeError, match="recipe folder does not exist"):
        load_recipes(tmp_path / "nope", toy_registry)


def test_to_dict_is_the_normalized_recipe(toy_registry):
    recipe = build_recipe("r", {"steps": ["invert", {"half": None}]}, toy_registry)
    assert recipe.to_dict()["steps"] == [{"invert": {}}, {"half": {"times": 1}}]


# -- digests follow what changes the bytes ------------------------------------------------------

def _toy(dist_version: str = "0.0", extra: tuple = ()):
    from pixline.engine import Registry

    from tests.engine import toyplugin

    registry = Registry()
    registry.add("toy", toyplugin, "toy-dist", dist_version)
    for name, plugin, dist in extra:
        registry.add(name, plugin, dist, "1.0")
    return registry


STEPS = {"steps": [{"half": {}}, {"out": {"type": "jpeg"}}]}
AUTO = {"steps": [{"half": {}}, {"out": {"type": "auto", "candidates": ["webpish"]}}]}
SOURCE = {"steps": [{"half": {}}]}


@pytest.mark.parametrize("data", [STEPS, AUTO, SOURCE])
def test_digest_follows_the_distribution_version_of_the_plugins(data):
    assert build_recipe("r", data, _toy("0.0")).digest != build_recipe("r", data, _toy("0.1")).digest


@pytest.mark.parametrize("data", [STEPS, AUTO, SOURCE])
def test_digest_ignores_encoders_the_recipe_cannot_produce(data):
    import types

    from pixline.engine import Encoder, hookimpl

    class Tiff(Encoder):
        name, media_type, extension = "tiff", "image/tiff", "tif"

    @hookimpl
    def pixline_register_encoders(register):
        register(Tiff)

    tiff = types.SimpleNamespace(pixline_register_encoders=pixline_register_encoders)
    with_tiff = _toy(extra=[("tiff", tiff, "pixline-tiff")])
    assert build_recipe("r", data, _toy()).digest == build_recipe("r", data, with_tiff).digest
    # …and follows the ones it can: a tiff candidate makes the tiff plugin count.
    candidates = {"steps": [{"out": {"type": "auto", "candidates": ["tiff", "webpish"]}}]}
    bumped = _toy(extra=[("tiff", tiff, "pixline-tiff")])
    bumped.plugins["tiff"].version = "2.0"
    assert build_recipe("r", candidates, with_tiff).digest != build_recipe("r", candidates, bumped).digest


def test_digest_follows_the_version_of_an_encoder_the_recipe_uses():
    registry = _toy()
    before = build_recipe("r", STEPS, registry).digest
    unrelated = build_recipe("r", {"steps": [{"out": {"type": "png"}}]}, registry).digest
    type(registry.encoders["jpeg"]).version = "2"
    try:
        assert build_recipe("r", STEPS, registry).digest != before
        assert build_recipe("r", {"steps": [{"out": {"type": "png"}}]}, registry).digest == unrelated
    finally:
        type(registry.encoders["jpeg"]).version = "1"


# -- one step decides the output ---------------------------------------------------------------

def test_two_steps_deciding_the_output_are_refused_naming_both(toy_registry, tmp_path):
    path = write(tmp_path, "twice", "steps:\n  - out: {type: png}\n  - half\n  - out: {type: jpeg}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path, toy_registry)
    assert str(err.value) == (f"{path}: step 1 (out) and step 3 (out) both decide the output format; "
                              "keep one of them")
BLOCK_STYLE = """\
description: two steps
steps:
  - invert
  - half:
      times: {times}
      {extra}
"""


@pytest.mark.parametrize("text, line, step, param, key", [
    # a parameter's value, on its own line in block style
    (BLOCK_STYLE.format(times=9, extra=""), 5, 2, "times", None),
    # an unknown parameter: the line of its key, not of the step
    (BLOCK_STYLE.format(times=2, extra="tims: 3"), 6, 2, "tims", None),
    # flow style: every parameter is on the step's line
    ("steps:\n  - invert\n\n  - half: {times: two}\n", 4, 2, "times", None),
    # an unknown step: the step's line
    ("# comment\nsteps:\n  - invert\n  - blur: {}\n", 4, 2, None, None),
    ("steps:\n  - {half: {}, invert: {}}\n", 2, 1, None, None),
    # top-level keys
    ("steps:\n  - invert\nfilters: []\n", 3, None, None, "filters"),
    ("description: x\n\neager: sometimes\nsteps:\n  - invert\n", 3, None, None, "eager"),
    ("description: x\nsteps: []\n", 2, None, None, "steps"),
    ("description: x\n", 1, None, None, "steps"),
    # YAML syntax: the line yaml's parser names
    ("description: x\nsteps:\n  - invert\n  - half: {times: 2}}\n", 4, None, None, None),
])
def test_recipe_errors_carry_step_parameter_and_line(toy_registry, text, line, step, param, key):
    with pytest.raises(RecipeError) as err:
        RecipeDocument(text, origin="playground").build("p", toy_registry)
    error = err.value
    assert (error.line, error.step, error.param, error.key) == (line, step, param, key), str(error)
    assert str(error).startswith("playground")
    assert error.location() == {name: value for name, value in
                                {"line": line, "step": step, "param": param, "key": key}.items() if value is not None}


def test_a_loaded_recipe_keeps_its_yaml_text(toy_registry, tmp_path):
    text = "# why: a test\nsteps:\n  - half: {times: 2}\n"
    assert load_recipe(write(tmp_path, "r", text), toy_registry).source == text
    assert build_recipe("r", {"steps": ["invert"]}, toy_registry).source == ""


def test_load_recipe_errors_carry_the_line_too(toy_registry, tmp_path):
    path = write(tmp_path, "bad", "steps:\n  - invert\n  - half: {times: 7}\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: step 2 \(half\): parameter 'times'") as err:
        load_recipe(path, toy_registry)
    assert (err.value.line, err.value.step, err.value.param) == (3, 2, "times")

"""Gravities a plugin adds (contract 2.4, engine/gravity.py): registered, checked, named in digests,
and asked by crop and resize, with attention as the fall-back for whatever goes wrong."""
from __future__ import annotations

import logging
import types

import pytest

from pixline.engine import Context, FatalPluginError, Registry, RecipeError, SmartGravity, hookimpl, testing
from pixline.engine.gravity import GravityName, place


class Corner(SmartGravity):
    """Always the bottom-right corner; ``answer`` overrides it (a broken plugin's answers)."""

    name = "corner"
    version = "1"
    analysers = ("spot",)
    answer: object = "corner"

    def place(self, width, height, box_width, box_height, ctx):
        if self.answer == "raise":
            raise ValueError("no corner here")
        if self.answer != "corner":
            return self.answer
        return width - box_width, height - box_height


def plugin(*classes: type) -> types.SimpleNamespace:
    @hookimpl
    def pixline_register_gravities(register):
        for cls in classes:
            register(cls)

    return types.SimpleNamespace(pixline_register_gravities=pixline_register_gravities)


@pytest.fixture
def loaded() -> Registry:
    registry = Registry.load(refuse=False)
    registry.add("corner", plugin(Corner), "pixline-corner", "1.0")
    return registry


def crop_box(registry: Registry, gravity: str) -> tuple[int, int, int, int]:
    recipe = testing.recipe(registry, [{"crop": {"aspect": "1:1", "gravity": gravity}}])
    rs = recipe.steps[0]
    return rs.step.box(testing.gradient(300, 100).copy_memory(), rs.params, Context(gravities=recipe.gravities))


def test_a_plugin_gravity_places_crops_and_resize_fills(loaded):
    assert crop_box(loaded, "corner") == (200, 0, 100, 100)
    recipe = testing.recipe(loaded, [{"resize": {"width": 50, "height": 50, "fit": "cover", "gravity": "corner"}}])
    assert recipe.analysers == ("spot",)
    out = testing.rendered_image(loaded,
                                 [{"resize": {"width": 50, "height": 50, "fit": "cover", "gravity": "corner"}}],
                                 testing.gradient(300, 100))
    assert (out.width, out.height) == (50, 50)
    # The gradient is brightest on the right: the corner crop is brighter than a centred one.
    centred = testing.rendered_image(loaded, [{"resize": {"width": 50, "height": 50, "fit": "cover"}}],
                                     testing.gradient(300, 100))
    assert out.avg() > centred.avg() + 20


@pytest.mark.parametrize("answer", ["raise", (250, 0), (-1, 0), (1.5, 0), None, "nonsense"])
def test_a_gravity_that_fails_or_answers_nonsense_falls_back_to_attention_logged(loaded, answer, caplog, monkeypatch):
    monkeypatch.setattr(Corner, "answer", answer)
    caplog.set_level(logging.WARNING)
    attention = crop_box(loaded, "attention")
    assert crop_box(loaded, "corner") == attention
    if answer is not None:
        assert "falling back to attention" in caplog.text


def test_a_recipe_naming_a_gravity_nobody_adds_is_refused_when_built():
    registry = Registry.load(refuse=False)
    with pytest.raises(RecipeError, match=r"'corner' is not a gravity: use one of centre.*plugins add: ") as err:
        testing.recipe(registry, [{"crop": {"aspect": "1:1", "gravity": "corner"}}])
    assert err.value.param == "gravity"
    with pytest.raises(RecipeError, match="not a gravity"):
        testing.recipe(registry, [{"crop": {"aspect": "1:1", "gravity": "Not A Name!"}}])


def test_the_digest_names_the_gravity_version_and_leaves_other_recipes_alone(loaded, monkeypatch):
    steps = [{"crop": {"aspect": "1:1", "gravity": "corner"}}]
    plain = [{"crop": {"aspect": "1:1", "gravity": "attention"}}]
    before, plain_before = testing.recipe(loaded, steps).digest, testing.recipe(loaded, plain).digest
    assert plain_before == testing.recipe(Registry.load(refuse=False), plain).digest
    monkeypatch.setattr(Corner, "version", "2")
    assert testing.recipe(loaded, steps).digest != before
    assert testing.recipe(loaded, plain).digest == plain_before


def test_a_built_in_name_a_bad_class_or_a_name_claimed_twice_is_refused():
    class Centre(Corner):
        name = "centre"

    class Unversioned(Corner):
        name = "other"
        version = ""

    for cls, problem in ((Centre, "built in"), (Unversioned, "version"), (object, "not a named SmartGravity")):
        registry = Registry()
        info = registry.add("bad", plugin(cls), "pixline-bad", "1.0", strict=False)
        assert problem in info.problem, info.problem
    registry = Registry()
    registry.add("one", plugin(Corner), "pixline-one", "1.0")
    with pytest.raises(FatalPluginError, match="gravity 'corner' is registered by two plugins"):
        registry.add("two", plugin(Corner), "pixline-two", "1.0")


def test_a_context_without_the_gravity_falls_back_rather_than_failing(caplog):
    image = testing.gradient(300, 100).copy_memory()
    caplog.set_level(logging.WARNING)
    assert place(image, 100, 100, GravityName("corner"), Context()) == place(image, 100, 100,
                                                                            GravityName("x"), Context())
    assert "not installed here" in caplog.text

from __future__ import annotations

import re
import types

import pytest

from pixline.engine import PluginError, RecipeError, Registry, Step, hookimpl
from pixline.engine.registry import Registry as _R  # noqa: F401  (import path is public API)

from tests.engine import toyplugin


def _plugin(*steps):
    module = types.SimpleNamespace()

    @hookimpl
    def pixline_register_steps(register):
        for s in steps:
            register(s)

    module.pixline_register_steps = pixline_register_steps
    return module


def test_steps_and_encoders_are_collected_per_plugin(toy_registry):
    info = toy_registry.plugins["toy"]
    assert info.steps == ["invert", "half", "out"]
    assert info.encoders == ["png", "jpeg", "webpish"]
    assert toy_registry.step("half").version == "2"


def test_two_plugins_claiming_a_step_name_are_named(toy_registry):
    class Other(Step):
        name = "invert"

    with pytest.raises(PluginError) as err:
        toy_registry.add("other", _plugin(Other), "other-dist", "1.0")
    assert "'invert'" in str(err.value) and "toy-dist" in str(err.value) and "other-dist" in str(err.value)


def test_registering_a_non_step_is_refused(toy_registry):
    with pytest.raises(PluginError, match="not a named Step subclass"):
        toy_registry.add("bad", _plugin(object), "bad-dist")


def test_unknown_step_lists_the_known_ones(toy_registry):
    with pytest.raises(RecipeError, match="unknown step 'blur' .*half, invert, out"):
        toy_registry.step("blur")


def test_plugin_failing_to_import_is_listed_broken_and_named_by_recipes_that_miss_it(monkeypatch):
    class BrokenEntryPoint:
        name, module = "broken", "pixline_broken"
        dist = types.SimpleNamespace(name="pixline-broken", version="9.9")

        def load(self):
            raise ImportError("No module named 'nonexistent_dependency'")

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [BrokenEntryPoint()])
    registry = Registry.load()  # does not raise: only what needs the plugin fails
    info = registry.plugins["broken"]
    assert info.status == "broken"
    assert info.problem == "failed to load: ImportError: No module named 'nonexistent_dependency'"
    with pytest.raises(RecipeError) as err:
        registry.step("tint")
    assert ("it may be from a plugin that did not load: plugin 'broken' from pixline-broken 9.9 is broken "
            "(failed to load: ImportError: No module named 'nonexistent_dependency')") in str(err.value)


def test_entry_points_are_loaded(monkeypatch):
    class ToyEntryPoint:
        name, module = "toy", "tests.engine.toyplugin"
        dist = types.SimpleNamespace(name="toy-dist", version="0.1")

        def load(self):
            return toyplugin

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [ToyEntryPoint()])
    registry = Registry.load()
    assert list(registry.plugins) == ["toy"]
    assert registry.plugins["toy"].version == "0.1"


def test_pixline_register_encoders_collects_encoders_and_refuses_duplicates(toy_registry):
    from pixline.engine import Encoder

    class Gif(Encoder):
        name, media_type, extension = "gif", "image/gif", "gif"

    class AnotherPng(Encoder):
        name = "png"

    module = types.SimpleNamespace()

    @hookimpl
    def pixline_register_encoders(register):
        register(Gif)

    module.pixline_register_encoders = pixline_register_encoders
    toy_registry.add("gifs", module, "gif-dist")
    assert toy_registry.encoder("gif").media_type == "image/gif"
    assert toy_registry.plugins["gifs"].encoders == ["gif"]

    @hookimpl
    def pixline_register_encoders(register):  # noqa: F811
        register(AnotherPng)

    clash = types.SimpleNamespace(pixline_register_encoders=pixline_register_encoders)
    with pytest.raises(PluginError, match="encoder 'png' is registered by two plugins.*toy-dist.*png-dist"):
        toy_registry.add("png2", clash, "png-dist")


# -- start-up errors that name the plugin ----------------------------------------------------------

def test_a_misspelt_hook_is_refused_naming_plugin_and_hook(toy_registry):
    @hookimpl
    def pixline_register_step(register):  # missing the final "s"
        pass

    with pytest.raises(PluginError) as err:
        toy_registry.add("typo", types.SimpleNamespace(pixline_register_step=pixline_register_step),
                         "pixline-typo", "1.0")
    assert str(err.value) == (
        "plugin 'typo' from pixline-typo 1.0: pixline_register_step is not a pixline hook (did you mean "
        "pixline_register_steps? the hooks are pixline_register_analysers, pixline_register_encoders, "
        "pixline_register_gravities, pixline_register_metrics, "
        "pixline_register_steps)")


def test_a_hook_without_hookimpl_is_refused(toy_registry):
    def pixline_register_steps(register):
        pass

    with pytest.raises(PluginError, match=r"plugin 'bare' from bare-dist 1: pixline_register_steps is "
                                          r"not marked as a hook: decorate it with @hookimpl"):
        toy_registry.add("bare", types.SimpleNamespace(pixline_register_steps=pixline_register_steps),
                         "bare-dist", "1")


def test_an_exception_in_a_register_hook_is_one_line_naming_the_plugin(toy_registry):
    @hookimpl
    def pixline_register_steps(register):
        raise KeyError("config")

    with pytest.raises(PluginError) as err:
        toy_registry.add("raiser", types.SimpleNamespace(pixline_register_steps=pixline_register_steps),
                         "pixline-raiser", "0.3")
    assert str(err.value) == ("plugin 'raiser' from pixline-raiser 0.3 failed in pixline_register_steps: "
                              "KeyError: 'config'")


@pytest.mark.parametrize("name", ["my/step:x", "Sepia", "1st", "sépia", "a b", "x" * 33, "-x"])
def test_step_names_are_url_and_yaml_safe(toy_registry, name):
    class Bad(Step):
        pass

    Bad.name = name
    with pytest.raises(PluginError, match=f"step name {re.escape(repr(name))} is not valid: use 1-32 "
                                          "lower-case letters"):
        toy_registry.add("bad", _plugin(Bad), "bad-dist", "1")


def test_short_url_keys_are_declared_in_the_schema_and_checked(toy_registry):
    from pixline.engine import StepParams

    def step_with(keys):
        class Blur(Step):
            name = "blur"

            class Params(StepParams):
                url_keys = keys
                sigma: float = 1.0

        return Blur

    toy_registry.add("blur", _plugin(step_with({"s": "sigma"})), "blur-dist", "1")
    assert toy_registry.step("blur").Params.url_keys == {"s": "sigma"}
    for keys, problem in (({"S": "sigma"}, "is not a valid URL key"),
                          ({"sigma": "sigma"}, "is already the name of a parameter"),
                          ({"r": "radius"}, "stands for 'radius', which is not a parameter")):
        with pytest.raises(PluginError, match=f"step 'blur': URL key .* {problem}"):
            Registry().add("blur", _plugin(step_with(keys)), "blur-dist", "1")


@pytest.mark.parametrize("attrs, problem", [
    ({"name": "auto"}, "encoder name 'auto' is not valid"),
    ({"name": "Tiff"}, "encoder name 'Tiff' is not valid"),
    ({"extension": ".tif"}, "extension '.tif' is not valid"),
    ({"media_type": "tiff"}, "media type 'tiff' is not a type/subtype"),
    ({"encode": lambda self, image, palette: b""},
     r"encoder 'tiff': encode\(\) asks for 'palette', which the contract does not have: it passes "
     r"\(self, image, spec, keep_metadata, ctx\), by name"),
])
def test_encoders_are_checked_at_registration(toy_registry, attrs, problem):
    from pixline.engine import Encoder

    fields = {"name": "tiff", "media_type": "image/tiff", "extension": "tif",
              "encode": lambda self, image, spec, keep_metadata, ctx: b"", **attrs}
    encoder = type("Tiff", (Encoder,), fields)
    with pytest.raises(PluginError, match=problem):
        toy_registry.add("tiff", _encoders(encoder), "tiff-dist", "1")


def test_an_unavailable_encoder_is_left_out_and_said_why(toy_registry):
    from pixline.engine import Encoder, build_recipe

    class Jxl(Encoder):
        name, media_type, extension = "jxl", "image/jxl", "jxl"

        def unavailable(self):
            return "libvips was built without libjxl"

    toy_registry.add("jxl", _encoders(Jxl), "jxl-dist", "1")
    assert "jxl" not in toy_registry.encoders
    assert toy_registry.unavailable_encoders == {"jxl": "libvips was built without libjxl"}
    assert toy_registry.plugins["jxl"].unavailable == {"jxl": "libvips was built without libjxl"}
    with pytest.raises(RecipeError, match="step 1 \\(out\\): output format 'jxl' is not available here: "
                                          "libvips was built without libjxl"):
        build_recipe("r", {"steps": [{"out": {"type": "jxl"}}]}, toy_registry)
    # As an 'auto' candidate it is skipped, as browsers that do not take it are.
    build_recipe("r", {"steps": [{"out": {"type": "auto", "candidates": ["jxl", "webpish"]}}]},
                 toy_registry)


def _encoders(*encoders):
    module = types.SimpleNamespace()

    @hookimpl
    def pixline_register_encoders(register):
        for encoder in encoders:
            register(encoder)

    module.pixline_register_encoders = pixline_register_encoders
    return module

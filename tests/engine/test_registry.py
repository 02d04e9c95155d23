from __future__ import annotations

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


def test_plugin_failing_to_import_names_plugin_and_distribution(monkeypatch):
    class BrokenEntryPoint:
        name = "broken"
        dist = types.SimpleNamespace(name="pixline-broken", version="9.9")

        def load(self):
            raise ImportError("No module named 'nonexistent_dependency'")

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [BrokenEntryPoint()])
    with pytest.raises(PluginError) as err:
        Registry.load()
    message = str(err.value)
    assert "'broken'" in message and "pixline-broken" in message and "nonexistent_dependency" in message


def test_entry_points_are_loaded(monkeypatch):
    class ToyEntryPoint:
        name = "toy"
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

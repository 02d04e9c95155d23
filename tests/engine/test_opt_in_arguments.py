"""Plugin methods are called with the arguments they declare (engine/contract.py), checked at load."""
from __future__ import annotations

import types
import warnings

import pytest

from pixline.engine import (CONTRACT_VERSION, Context, Encoder, PixlineDeprecationWarning, PluginError, Registry, Source,
                            Step, StepError, StepParams, contract, hookimpl, render, testing)
from pixline.engine.contract import Method

from tests.engine import toyplugin

JPEG = testing.jpeg_bytes(testing.gradient(64, 48))


def plugin(*classes):
    steps = [c for c in classes if issubclass(c, Step)]
    encoders = [c for c in classes if issubclass(c, Encoder)]

    @hookimpl
    def pixline_register_steps(register):
        for cls in steps:
            register(cls)

    @hookimpl
    def pixline_register_encoders(register):
        for cls in encoders:
            register(cls)

    return types.SimpleNamespace(pixline_register_steps=pixline_register_steps,
                                 pixline_register_encoders=pixline_register_encoders)


def registry_with(*classes) -> Registry:
    registry = Registry()
    registry.add("toy", toyplugin, "toy-dist", "0.0")
    registry.add("mine", plugin(*classes), "pixline-mine", "1.0")
    return registry


class Grow(Step):
    """Every method with fewer arguments than the contract passes."""

    name = "grow"

    class Params(StepParams):
        by: int = 2

    def apply(self, image):
        return image.embed(0, 0, image.width + 2, image.height + 2)

    def output_size(self, width, height):
        return width + 2, height + 2

    def shrink_hint(self):
        return None


class Raw(Encoder):
    name, media_type, extension = "raw", "application/octet-stream", "raw"

    def encode(self, image):  # neither spec, keep_metadata nor ctx
        return bytes(image.write_to_memory())


def test_methods_declaring_fewer_arguments_are_called_with_those():
    registry = registry_with(Grow, Raw)
    recipe = testing.recipe(registry, [{"grow": {}}, {"out": {"type": "raw"}}])
    assert recipe.output_sizes(64, 48) == [(66, 50), (66, 50)]
    out = render(recipe, Source(JPEG), registry)
    assert (out.width, out.height, len(out.data)) == (66, 50, 66 * 50 * 3)


@pytest.mark.parametrize("method, source, message", [
    ("apply", "def apply(self, image, palette): return image",
     "step 'odd': apply() asks for 'palette', which the contract does not have: it passes "
     f"(self, image, params, ctx), by name; take any of them (contract {CONTRACT_VERSION})"),
    ("output_size", "def output_size(self, params, width, height, *, dpi): return width, height",
     "step 'odd': output_size() asks for 'dpi'"),
])
def test_a_method_asking_for_an_argument_the_contract_lacks_is_refused_at_load(method, source, message):
    namespace: dict = {}
    exec(source, namespace)
    odd = type("Odd", (Step,), {"name": "odd", method: namespace[method]})
    with pytest.raises(PluginError, match="^plugin 'mine' from pixline-mine 1.0: " + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        registry_with(odd)
    listed = Registry()
    listed.add("mine", plugin(odd), "pixline-mine", "1.0", strict=False)  # as entry points are loaded
    assert listed.plugins["mine"].status == "broken" and "odd" not in listed.steps
    assert listed.plugins["mine"].problem.startswith(message)


def test_an_argument_with_a_default_that_the_contract_lacks_is_left_alone():
    class Defaults(Step):
        name = "defaults"

        def apply(self, image, params, ctx, strength=0.5):
            return image

    assert contract.plans(Defaults)["apply"].passed == (("image", "image"), ("params", "params"), ("ctx", "ctx"))


def test_a_step_returning_something_else_than_an_image_is_blamed_not_the_encoder():
    class Lister(Step):
        name = "lister"

        def apply(self, image, params, ctx):
            return [image]

    registry = registry_with(Lister)
    with pytest.raises(StepError) as err:
        render(testing.recipe(registry, [{"lister": {}}, {"out": {"type": "png"}}]), Source(JPEG), registry)
    assert ("recipe 'test' failed in step 1 (lister, plugin 'mine' from pixline-mine 1.0): TypeError: "
            "apply() returned list, not a pyvips.Image") in str(err.value)


def test_an_encoder_returning_something_else_than_bytes_is_blamed():
    class Text(Encoder):
        name, media_type, extension = "text", "text/plain", "txt"

        def encode(self, image, spec, keep_metadata, ctx):
            return "not bytes"

    registry = registry_with(Text)
    with pytest.raises(StepError, match=r"failed in encoder 'text' \(plugin 'mine' from pixline-mine 1.0\): "
                                        "TypeError: encode\\(\\) returned str, not bytes"):
        render(testing.recipe(registry, [{"out": {"type": "text"}}]), Source(JPEG), registry)


def test_a_renamed_argument_is_still_passed_under_its_old_name_with_a_warning(monkeypatch):
    """How the contract renames: the old name keeps working for a minor version, and warns."""
    methods = {**contract.METHODS["Step"], "apply": Method(("img", "params", "ctx"),
                                                           renamed={"image": ("img", "2.2")})}
    monkeypatch.setitem(contract.METHODS, "Step", methods)

    class OldName(Step):
        name = "oldname"

        def apply(self, image, params, ctx):
            return image.invert()

    registry = Registry()
    with pytest.warns(PixlineDeprecationWarning, match="plugin 'mine' from pixline-mine 1.0: step 'oldname': "
                                                       "apply\\(\\): argument 'image' is deprecated since "
                                                       "contract 2.2: name it 'img'"):
        registry.add("mine", plugin(OldName), "pixline-mine", "1.0")
    assert registry.plugins["mine"].status == "deprecated"
    out = contract.call(registry.step("oldname"), "apply", img=testing.gradient(4, 4), params=None, ctx=None)
    assert out.avg() == pytest.approx(255 - testing.gradient(4, 4).avg(), abs=0.01)


def test_a_hook_may_take_fewer_arguments_than_its_spec():
    @hookimpl
    def pixline_register_steps():
        pass  # pluggy's opt-in arguments: nothing to register, nothing asked for

    registry = Registry()
    registry.add("quiet", types.SimpleNamespace(pixline_register_steps=pixline_register_steps), "quiet-dist", "1")
    assert registry.plugins["quiet"].status == "ok"


def test_context_metadata_outside_a_plugin_call_still_warns():
    ctx = Context(fields={"owner": "Ada"})
    with pytest.warns(PixlineDeprecationWarning, match="^Context.metadata is deprecated since contract 1.1"):
        assert ctx.metadata == {"owner": "Ada"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ctx.fields == {"owner": "Ada"}


@pytest.mark.parametrize("lookup, message", [
    (lambda r: r.step("sepia"), "unknown step 'sepia' (known steps: half, invert, out); is the plugin that "
                                "provides it installed? `pixline plugins` lists the installed ones"),
    (lambda r: r.encoder("tiff"), "unknown output format 'tiff' (known formats: jpeg, png, webpish); is the "
                                  "plugin that provides it installed?"),
])
def test_an_unknown_step_or_format_hints_at_the_missing_plugin(toy_registry, lookup, message):
    from pixline.engine import RecipeError

    with pytest.raises(RecipeError) as err:
        lookup(toy_registry)
    assert str(err.value).startswith(message)

"""The plugin contract's shared parts: gravities, parameter errors, output sizes."""
from __future__ import annotations

import pydantic
import pytest

from pixline.engine import (Gravity, RecipeError, Registry, Step, StepParams, build_step, hookimpl, param_error,
                            testing)


@pytest.mark.parametrize("gravity", list(Gravity))
def test_only_attention_and_entropy_are_smart(gravity: Gravity) -> None:
    assert gravity.is_smart == (gravity.value in ("attention", "entropy"))


class Labelled(Step):
    name = "labelled"

    class Params(StepParams):
        size: int = 1
        label: str = ""

        @pydantic.field_validator("label")
        @classmethod
        def _no_x(cls, value: str) -> str:
            if "x" in value:
                raise param_error(f"{value!r} has an x in {{braces}}")
            return value

        @pydantic.model_validator(mode="after")
        def _label_needs_size(self) -> "Labelled.Params":
            if self.label and self.size < 2:
                raise param_error("needs 'size' of 2 or more", param="label")
            return self


class LabelledPlugin:
    @hookimpl
    def pixline_register_steps(self, register) -> None:
        register(Labelled)


@pytest.mark.parametrize("params, message", [
    # braces are text, not template placeholders; no "Value error, " prefix
    ({"label": "{x}"}, "parameter 'label': '{x}' has an x in {braces}"),
    # a model validator's error names the parameter it gives
    ({"label": "a"}, "parameter 'label': needs 'size' of 2 or more"),
])
def test_param_error_is_shown_as_written(params: dict, message: str) -> None:
    registry = Registry()
    registry.add("labelled", LabelledPlugin())
    with pytest.raises(RecipeError) as err:
        build_step("labelled", params, registry, "here")
    assert str(err.value) == f"here (labelled): {message}"
    # A field's error has its parameter in pydantic's loc, a model validator's in param_error's
    # context: the recipe error names it as a field either way (the playground shows its line).
    assert err.value.param == "label"


def test_steps_keep_the_size_unless_they_say_otherwise(toy_registry: Registry) -> None:
    recipe = testing.recipe(toy_registry, ["invert", {"out": {"type": "png"}}])
    assert recipe.output_sizes(40, 30) == [(40, 30), (40, 30)]


@pytest.mark.parametrize("text", ["yes", "on", "no", "true"])
def test_number_parameters_refuse_yaml_booleans(text: str) -> None:
    """YAML reads ``times: yes`` as true, which pydantic would take as 1."""
    import yaml

    from tests.engine import toyplugin

    registry = Registry()
    registry.add("toy", toyplugin, "toy-dist", "0")
    params = yaml.safe_load(f"times: {text}")
    with pytest.raises(RecipeError, match=r"step 1 \(half\): parameter 'times': must be a number, not "
                                          r"(true|false) \(YAML reads yes/no/on/off as true/false\)"):
        testing.recipe(registry, [{"half": params}])
    # Booleans are still booleans, and optional or constrained numbers are numbers too.

    class Mixed(StepParams):
        flag: bool = False
        maybe: float | None = None
        ranged: pydantic.conint(ge=0) = 0

    assert Mixed(flag=True).flag is True
    for name in ("maybe", "ranged"):
        with pytest.raises(pydantic.ValidationError, match="must be a number"):
            Mixed(**{name: True})

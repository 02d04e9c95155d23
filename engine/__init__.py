"""pixline's engine: the plugin contract, recipes, the pipeline. No HTTP, no AMQP."""
from .errors import (ImageTooLargeError, InputError, NotFoundError, ParameterError, PixlineError,
                     PluginError, RecipeError, RenderError, RenderTimeoutError,
                     UndecodableImageError, UnsupportedFormatError)
from .hookspecs import hookimpl
from .negotiate import choose_encoder
from .pipeline import Rendered, render, to_web_safe
from .recipe import Recipe, build_recipe, build_step, load_recipe, load_recipes
from .registry import Registry, default_registry
from .source import Limits, Source, content_id
from . import reduced  # noqa: E402  (after pipeline and recipe, which it uses)
from .steps import Context, Encoder, Gravity, OutputSpec, Step, StepParams, param_error

__all__ = [
    "Context", "Encoder", "Gravity", "ImageTooLargeError", "InputError", "Limits", "NotFoundError",
    "OutputSpec", "ParameterError", "PixlineError", "PluginError", "Recipe", "RecipeError",
    "Registry", "RenderError", "RenderTimeoutError", "Rendered", "Source", "Step", "StepParams", "UndecodableImageError",
    "UnsupportedFormatError", "build_recipe", "build_step", "choose_encoder", "content_id",
    "default_registry", "hookimpl", "load_recipe", "load_recipes", "param_error", "render", "to_web_safe",
]

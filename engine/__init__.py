"""pixline's engine: the plugin contract, recipes, the pipeline. No HTTP, no AMQP."""
from .deadline import Deadline
from .errors import (ImageTooLargeError, InputError, NotFoundError, ParameterError, PixlineError,
                     PluginError, RecipeError, RenderError, RenderTimeoutError, StepError,
                     UndecodableImageError, UnsupportedFormatError)
from .hookspecs import hookimpl
from .negotiate import choose_encoder
from .normalise import is_normal, normalise
from .pipeline import Rendered, render
from .recipe import Recipe, build_recipe, build_step, load_recipe, load_recipes
from .registry import PluginInfo, Registry, default_registry
from .source import Limits, Source, content_id
from . import reduced  # noqa: E402  (after recipe and source, which it uses)
from .steps import Context, Encoder, Gravity, OutputSpec, Step, StepParams, param_error

__all__ = [
    "Context", "Deadline", "Encoder", "Gravity", "ImageTooLargeError", "InputError", "Limits",
    "NotFoundError", "OutputSpec", "ParameterError", "PixlineError", "PluginError", "PluginInfo", "Recipe",
    "RecipeError", "Registry", "RenderError", "RenderTimeoutError", "Rendered", "Source", "Step",
    "StepError", "StepParams", "UndecodableImageError", "UnsupportedFormatError", "build_recipe",
    "build_step", "choose_encoder", "content_id", "default_registry", "hookimpl", "is_normal",
    "load_recipe", "load_recipes", "normalise", "param_error", "render",
]

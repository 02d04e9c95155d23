"""pixline's engine: the plugin contract, recipes, the pipeline. No HTTP, no AMQP."""
from .memory import limit_arenas, limit_vips_cache

# First, before libvips starts threads that would each take a malloc arena (engine/memory.py).
limit_arenas()
limit_vips_cache()

from .analyser import Analyser  # noqa: E402
from .contract import CONTRACT_VERSION, PixlineDeprecationWarning  # noqa: E402
from .deadline import Deadline  # noqa: E402
from .gravity import AnyGravity, SmartGravity, place  # noqa: E402
from .metric import Metric  # noqa: E402
from .errors import (AssetError, FatalPluginError, ImageTooLargeError, InputError,  # noqa: E402
                     NotFoundError, OutputTooLargeError, ParameterError, PixlineError, PluginError, RecipeError,
                     RenderError, RenderTimeoutError, StepError, UndecodableImageError,
                     UnsupportedFormatError, quote)
from .hookspecs import hookimpl
from .negotiate import choose_encoder
from .normalise import is_normal, normalise
from .pipeline import Rendered, render
from .recipe import Recipe, build_recipe, build_step
from .recipefiles import load_recipe, load_recipes
from .registry import PluginInfo, Registry, default_registry
from .source import Limits, Source, content_id
from . import reduced  # noqa: E402  (after recipe and source, which it uses)
from .steps import Context, Encoder, Gravity, OutputSpec, Step, StepParams, param_error

__all__ = [
    "Analyser", "AnyGravity", "AssetError", "build_recipe", "build_step", "choose_encoder", "content_id",
    "Context", "CONTRACT_VERSION", "Deadline", "default_registry", "Encoder", "FatalPluginError", "Gravity",
    "hookimpl", "ImageTooLargeError", "InputError", "is_normal", "Limits", "load_recipe", "load_recipes",
    "Metric", "normalise", "NotFoundError", "OutputSpec", "OutputTooLargeError", "param_error",
    "ParameterError", "PixlineDeprecationWarning", "PixlineError", "place", "PluginError", "PluginInfo",
    "quote", "Recipe", "RecipeError", "Registry", "render", "Rendered", "RenderError", "RenderTimeoutError",
    "SmartGravity", "Source", "Step", "StepError", "StepParams", "UndecodableImageError",
    "UnsupportedFormatError",
]

"""The Python API: render an image through a recipe in one call, no services needed.

    from pixline import render
    webp = render("feed", open("photo.jpg", "rb").read(), accept="image/webp")
    open("feed.webp", "wb").write(webp)

A recipe is given by name (a file of the recipe folder: the set shipped with pixline unless
``recipes=`` names another), by path (a YAML file), as a dict (what a YAML file holds) or as a
:class:`~pixline.engine.recipe.Recipe`. Plugins are loaded once per process
(:func:`~pixline.engine.registry.default_registry`). What goes wrong raises a
:class:`~pixline.engine.errors.PixlineError` whose message says what to fix:

* :class:`~pixline.engine.errors.NotFoundError` — no such recipe, input file or asset;
* :class:`~pixline.engine.errors.RecipeError` — the recipe is invalid (names the step and parameter);
* :class:`~pixline.engine.errors.InputError` — the image: :class:`UnsupportedFormatError` (not a type
  pixline takes), :class:`UndecodableImageError` (truncated, corrupt), :class:`ImageTooLargeError`
  (over a byte, pixel or frame limit);
* :class:`~pixline.engine.errors.ParameterError` — an asset reference that is refused;
* :class:`~pixline.engine.errors.RenderError` — no encoder for the format the recipe asks for.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Union

from .assets import AssetLoader
from .errors import NotFoundError, quote
from .pipeline import Rendered, render as render_recipe
from .recipe import Recipe, build_recipe
from .recipefiles import default_recipe_dir, load_recipe
from .registry import Registry, default_registry
from .source import Limits, Source
from .steps import Context

#: A recipe as the API takes it: a name, a path to a YAML file, a dict as in YAML, or a Recipe.
RecipeRef = Union[str, "os.PathLike[str]", Mapping[str, Any], Recipe]
#: An image as the API takes it: its bytes, or the path of a file.
ImageRef = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
#: The name of a recipe given as a dict.
INLINE_RECIPE = "inline"


class EncodedImage(bytes):
    """The encoded bytes of a render (write them to a file as they are), with what they are:
    ``format`` (an encoder name: ``webp``…), ``media_type``, ``extension``, ``width`` and ``height``
    (of one frame), and ``frames`` (more than 1 only for an animation into a format that animates)."""

    format: str
    media_type: str
    extension: str
    width: int
    height: int
    frames: int

    def __new__(cls, rendered: Rendered) -> "EncodedImage":
        self = super().__new__(cls, rendered.data)
        self.format, self.media_type = rendered.format, rendered.media_type
        self.extension, self.width, self.height = rendered.extension, rendered.width, rendered.height
        self.frames = rendered.frames
        return self

    def __repr__(self) -> str:
        return f"<EncodedImage {self.format} {self.width}×{self.height}, {len(self)} bytes>"


def _is_path(ref: str | os.PathLike) -> bool:
    path = Path(ref)
    return path.suffix in (".yaml", ".yml") or path.is_file()


def find_recipe(ref: RecipeRef, registry: Registry | None = None,
                recipes: str | Path | None = None) -> tuple[Recipe, Path]:
    """The recipe ``ref`` names, validated, and the folder its assets are looked up in.

    A name is looked up in ``recipes`` (default: the shipped set); a path or dict is used as given,
    its assets being next to the file (for a dict: in the current directory).
    """
    registry = registry or default_registry()
    if isinstance(ref, Recipe):
        return ref, Path(recipes) if recipes else default_recipe_dir()
    if isinstance(ref, Mapping):
        return build_recipe(INLINE_RECIPE, ref, registry, origin="recipe given as a dict"), Path.cwd()
    if isinstance(ref, os.PathLike) or _is_path(ref):
        path = Path(ref)
        return load_recipe(path, registry), path.parent
    folder = Path(recipes) if recipes else default_recipe_dir()
    path = folder / f"{ref}.yaml"
    if not path.is_file():
        raise NotFoundError(f"recipe {quote(ref)} not found in {folder} (and no such file)")
    return load_recipe(path, registry), folder


def _source(image: ImageRef, limits: Limits) -> Source:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return Source(bytes(image), name="image", limits=limits)
    try:
        return Source.from_path(os.fspath(image), limits=limits)
    except OSError as exc:
        raise NotFoundError(f"{image}: cannot read input: {exc.strerror}") from None


def render(recipe: RecipeRef, image: ImageRef, *, accept: str | None = None,
           fields: Mapping[str, str] | None = None, recipes: str | Path | None = None,
           limits: Limits | None = None, registry: Registry | None = None) -> EncodedImage:
    """Render ``image`` (bytes or a file path) through ``recipe``; the encoded bytes.

    ``accept`` is what an HTTP client's ``Accept`` header would say (``image/avif,image/webp``): it
    picks the format of ``format: auto`` recipes (JPEG otherwise). ``fields`` fill templates such as
    ``© {owner}``. ``recipes`` is the folder names are looked up in; ``limits`` bound the input (the
    server's defaults: 50 MiB, 50 MP, 100 frames).
    """
    registry = registry or default_registry()
    found, asset_dir = find_recipe(recipe, registry, recipes)
    source = _source(image, limits or Limits())
    ctx = Context(fields=dict(fields or {}), accept=accept, load_asset=AssetLoader(asset_dir))
    return EncodedImage(render_recipe(found, source, registry, ctx))

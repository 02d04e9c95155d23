"""``pixline apply RECIPE INPUT OUTPUT``: render one file, no services needed.

RECIPE is a recipe name from the recipe folder or a path to a YAML file. With ``format: auto`` the
output's file extension picks the format. Assets the recipe names (watermark images) are files next to
the recipe file.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pixline.engine.assets import AssetLoader
from pixline.engine.errors import NotFoundError, PixlineError, RecipeError
from pixline.engine.pipeline import render
from pixline.engine.recipe import load_recipe
from pixline.engine.registry import Registry
from pixline.engine.source import Source
from pixline.engine.steps import Context

from .flags import add_flags, settings_from
from .wiring import recipe_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="render one image file through a recipe")
    p.add_argument("recipe", help="recipe name or path to a recipe YAML file")
    p.add_argument("input", help="input image file")
    p.add_argument("output", help="output file; its extension picks the format for 'auto' recipes")
    add_flags(p, "recipes", "max_pixels", "max_bytes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    registry = Registry.load()
    folder = recipe_dir(settings)
    candidate = Path(args.recipe)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        path = candidate
    else:
        path = folder / f"{args.recipe}.yaml"
        if not path.is_file():
            raise RecipeError(f"recipe {args.recipe!r} not found in {folder} (and no such file)")
    recipe = load_recipe(path, registry)
    try:
        source = Source.from_path(args.input, limits=settings.limits())
    except OSError as exc:
        raise NotFoundError(f"{args.input}: cannot read input: {exc.strerror}") from None
    # For 'auto', the output file's extension stands in for the client's Accept header.
    ext = Path(args.output).suffix.lower().lstrip(".")
    by_ext = {e.extension: e for e in registry.encoders.values()}
    by_ext.setdefault("jpeg", by_ext.get("jpg"))
    encoder = by_ext.get(ext)
    accept = encoder.media_type if encoder else None
    # Assets are files next to the recipe file (a named recipe's: the recipe folder); there is no store.
    assets = AssetLoader(path.parent)
    rendered = render(recipe, source, registry, Context(accept=accept, load_asset=assets))
    if encoder is not None and rendered.format != encoder.name:
        print(f"pixline: note: recipe {recipe.name!r} renders {rendered.format}, not {ext}")
    try:
        Path(args.output).write_bytes(rendered.data)
    except OSError as exc:
        raise PixlineError(f"{args.output}: cannot write output: {exc.strerror}") from None
    print(f"{args.output}: {rendered.width}×{rendered.height} {rendered.format}, {len(rendered.data)} bytes")
    return 0

"""``pixline recipes``: list and validate the recipe set; exit 1 if any recipe is invalid."""
from __future__ import annotations

import argparse
import sys

from pixline.engine.errors import RecipeError
from pixline.engine.recipefiles import check_recipes
from pixline.engine.registry import Registry

from .flags import add_flags, settings_from
from .wiring import recipe_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="list and validate recipes (exit 1 on an invalid one)",
                       epilog="""\
examples:
  pixline recipes                        # the recipe set shipped with pixline
  pixline recipes --recipes ./recipes    # your own folder: exit 1 if a recipe is invalid
""")
    add_flags(p, "recipes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = recipe_dir(settings_from(args))
    registry = Registry.load()
    invalid = 0
    for path, result in check_recipes(folder, registry):
        if isinstance(result, RecipeError):
            invalid += 1
            print(f"INVALID  {result}", file=sys.stderr)
            continue
        steps = " → ".join(rs.name for rs in result.steps)
        eager = "eager" if result.eager else "lazy "
        print(f"{result.name:<16} {eager} {result.digest}  {steps}  {result.description}")
    if invalid:
        print(f"pixline: error: {invalid} invalid recipe(s) in {folder}", file=sys.stderr)
        return 1
    return 0

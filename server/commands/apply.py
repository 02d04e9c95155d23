"""``pixline apply RECIPE INPUT OUTPUT``: render one file, no services needed.

RECIPE is a recipe name from the recipe folder or a path to a YAML file. With ``format: auto`` the
output's file extension picks the format. Assets the recipe names (watermark images) are files next to
the recipe file.
``--field NAME=VALUE`` (repeatable) gives the render the fields an upload would carry (``?owner=Ada``),
checked as an upload's are, for templates such as ``© {owner}``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pixline.engine.api import render
from pixline.engine.errors import PixlineError
from pixline.engine.registry import default_registry

from ..http.upload import add_field
from .flags import add_flags, settings_from
from .wiring import recipe_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="render one image file through a recipe", epilog="""\
examples:
  pixline apply thumb photo.jpg thumb.jpg          # a recipe of the recipe folder
  pixline apply feed photo.jpg feed.webp           # a 'format: auto' recipe: the extension picks WebP
  pixline apply my-recipe.yaml photo.jpg out.png   # a recipe file; its assets are next to it
  pixline apply large photo.jpg large.jpg --field owner=Ada   # fills the watermark's {owner}
""")
    p.add_argument("recipe", help="recipe name or path to a recipe YAML file")
    p.add_argument("input", help="input image file")
    p.add_argument("output", help="output file; its extension picks the format for 'auto' recipes")
    p.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                   help="an upload field for the recipe's templates, as POST /images?NAME=VALUE gives "
                        "(repeatable; at most 16)")
    add_flags(p, "recipes", "max_pixels", "max_bytes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    registry = default_registry()
    # For 'auto', the output file's extension stands in for the client's Accept header.
    ext = Path(args.output).suffix.lower().lstrip(".")
    by_ext = {e.extension: e for e in registry.encoders.values()}
    by_ext.setdefault("jpeg", by_ext.get("jpg"))
    encoder = by_ext.get(ext)
    # The Python API's render: a name from the recipe folder or a YAML file's path, whose assets are
    # files next to it (a named recipe's: the recipe folder); there is no store.
    rendered = render(args.recipe, args.input, accept=encoder.media_type if encoder else None,
                      fields=upload_fields(args.field), recipes=recipe_dir(settings),
                      limits=settings.limits(), registry=registry)
    if encoder is not None and rendered.format != encoder.name:
        print(f"pixline: note: recipe {args.recipe!r} renders {rendered.format}, not {ext}")
    try:
        Path(args.output).write_bytes(rendered)
    except OSError as exc:
        raise PixlineError(f"{args.output}: cannot write output: {exc.strerror}") from None
    print(f"{args.output}: {rendered.width}×{rendered.height} {rendered.format}, {len(rendered)} bytes")
    return 0


def upload_fields(pairs: list[str]) -> dict[str, str]:
    """``["owner=Ada", …]`` as the fields of an upload, by the upload's rules (names, sizes, count)."""
    fields: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise PixlineError(f"--field {pair!r}: write NAME=VALUE, e.g. --field owner=Ada")
        add_field(fields, name, value)
    return fields

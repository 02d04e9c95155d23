"""Recipes from YAML: a recipe's text (:class:`RecipeDocument`, whose errors name their line), a
recipe file, a folder of them, and the set shipped with pixline. Building a recipe from parsed data
is engine/recipe.py.
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Iterator

import yaml

from . import yamltext
from .errors import LocatedError, RecipeError
from .recipe import Recipe, build_recipe, check_name
from .registry import Registry


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class RecipeDocument:
    """A recipe's YAML text, parsed once, knowing the line where each of its parts starts.

    yaml's composer gives every node its start mark; an error of the recipe loader names a step, a
    parameter or a top-level key, and the document turns that into a line of the text (1-based)::

        document = RecipeDocument(text, origin="recipes/feed.yaml")   # RecipeError(line=…) for bad YAML
        recipe = document.build("feed", registry)                     # RecipeError(step=…, line=…)
    """

    def __init__(self, text: str, origin: str = "<text>") -> None:
        self.text = text
        self.origin = origin
        self.node: yaml.Node | None
        self.data: Any
        self.node, self.data = yamltext.parse(text, origin)  # bounded: docs/security.md

    def line_of(self, step: int | None = None, param: str | None = None, key: str | None = None) -> int:
        """The line of a step's parameter, else of the step, else of a top-level key, else the first."""
        node = self.node
        if not isinstance(node, yaml.MappingNode):
            return _line(node) if node is not None else 1
        top = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
        steps = top.get("steps", (None, None))[1]
        if step is not None and isinstance(steps, yaml.SequenceNode) and 0 < step <= len(steps.value):
            item = steps.value[step - 1]
            if param is not None and isinstance(item, yaml.MappingNode) and len(item.value) == 1:
                params = item.value[0][1]
                if isinstance(params, yaml.MappingNode):
                    for name, _ in params.value:
                        if name.value == param:
                            return _line(name)
            return _line(item)
        if key is not None and key in top:
            return _line(top[key][0])
        return _line(node)

    @contextlib.contextmanager
    def pointing_at_lines(self) -> Iterator[None]:
        """Give any :class:`LocatedError` raised inside the line of this text it concerns."""
        try:
            yield
        except LocatedError as exc:
            raise exc.add_location(line=self.line_of(exc.step, exc.param, exc.key))

    def build(self, name: str, registry: Registry) -> Recipe:
        """The validated recipe named ``name``; its errors carry their line."""
        with self.pointing_at_lines():
            recipe = build_recipe(name, self.data, registry, origin=self.origin)
        return dataclasses.replace(recipe, source=self.text)


def load_recipe(path: str | Path, registry: Registry) -> Recipe:
    """Load and validate one YAML recipe file; its name is the file name without ``.yaml``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc.strerror}") from None
    document = RecipeDocument(text, origin=str(path))
    stem = path.name.rsplit(".", 1)[0]
    try:
        check_name(stem)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    return document.build(stem, registry)


def recipe_files(folder: str | Path) -> list[Path]:
    """The ``*.yaml`` / ``*.yml`` files of a recipe folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecipeError(f"{folder}: recipe folder does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def check_recipes(folder: str | Path, registry: Registry) -> Iterator[tuple[Path, Recipe | RecipeError]]:
    """Each recipe file with its recipe, or the error that makes it invalid."""
    for path in recipe_files(folder):
        try:
            yield path, load_recipe(path, registry)
        except RecipeError as exc:
            yield path, exc


def load_recipes(folder: str | Path, registry: Registry) -> dict[str, Recipe]:
    """Every recipe of a folder by name; the first invalid one raises (a process refuses to start)."""
    recipes: dict[str, Recipe] = {}
    for path, result in check_recipes(folder, registry):
        if isinstance(result, RecipeError):
            raise result
        if result.name in recipes:
            raise RecipeError(f"{path}: recipe {result.name!r} is defined twice in {folder}")
        recipes[result.name] = result
    return recipes


def default_recipe_dir() -> Path:
    """The recipe set shipped with pixline (the repository's ``recipes/`` folder)."""
    from pixline.recipes import DIRECTORY

    return DIRECTORY

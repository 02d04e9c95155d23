"""Recipes: named, validated lists of steps, loaded from YAML.

A recipe file ``recipes/feed.yaml``::

    description: 600 px wide feed image
    eager: true                 # the worker renders it for every upload
    keep_metadata: false        # default: EXIF/XMP/ICC are stripped from the output
    steps:
      - resize: {width: 600, fit: inside}
      - format: {type: auto, quality: 82}

The recipe's name is its file name. Every step name and parameter is checked when the recipe loads; an
error names the file, the step's position and name, the parameter and what is wrong.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pydantic
import yaml

from .errors import RecipeError
from .registry import Registry
from .steps import OutputSpec, Step, StepParams

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TOP_LEVEL_KEYS = {"description", "eager", "keep_metadata", "steps"}
DIGEST_LENGTH = 16


def check_name(name: str, what: str = "recipe name") -> str:
    """Return ``name`` if it is a valid recipe name (lower-case letters, digits, ``-``, ``_``)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RecipeError(
            f"{what} {name!r} is not valid: use 1-64 lower-case letters, digits, '-' or '_'"
        )
    return name


@dataclass(frozen=True)
class RecipeStep:
    """One validated step of a recipe."""

    step: Step
    params: StepParams

    @property
    def name(self) -> str:
        return self.step.name


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: its steps with their parameters, and what it is for."""

    name: str
    steps: tuple[RecipeStep, ...]
    description: str = ""
    eager: bool = False
    keep_metadata: bool = False
    origin: str = "<code>"
    digest: str = field(default="", compare=False)

    @cached_property
    def output_spec(self) -> OutputSpec:
        """The encoding asked for by the last step that decides one (default: the source's format),
        ``ahead_of_time`` when the recipe is eager."""
        for rs in reversed(self.steps):
            spec = rs.step.output(rs.params)
            if spec is not None:
                return replace(spec, ahead_of_time=self.eager)
        return OutputSpec(ahead_of_time=self.eager)

    @property
    def negotiated(self) -> bool:
        """True when the output format follows the client's ``Accept`` (``format: auto``)."""
        return self.output_spec.format == "auto"

    def output_sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        """The size after each step, in order, for a ``width``×``height`` source (no pixels read).

        Each step answers through :meth:`~pixline.engine.steps.Step.output_size`.
        """
        sizes = []
        for rs in self.steps:
            width, height = rs.step.output_size(rs.params, width, height)
            sizes.append((width, height))
        return sizes

    def to_dict(self) -> dict[str, Any]:
        """The normalized recipe, as served by ``GET /recipes/{name}``."""
        return {
            "name": self.name,
            "description": self.description,
            "eager": self.eager,
            "keep_metadata": self.keep_metadata,
            "digest": self.digest,
            "steps": [{rs.name: rs.params.model_dump(mode="json")} for rs in self.steps],
        }


def _digest(steps: Sequence[RecipeStep], keep_metadata: bool, registry: Registry) -> str:
    normalized = {
        "steps": [[rs.name, rs.step.version, rs.params.model_dump(mode="json")] for rs in steps],
        "keep_metadata": keep_metadata,
        # Encoders change output bytes too: their versions take part.
        "encoders": {name: enc.version for name, enc in sorted(registry.encoders.items())},
    }
    blob = json.dumps(normalized, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:DIGEST_LENGTH]


def _describe_validation(err: pydantic.ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown parameter"
        parts.append(f"parameter {loc!r}: {msg}" if loc else msg)
    return "; ".join(parts)


def build_step(name: str, params: Mapping[str, Any] | None, registry: Registry, where: str) -> RecipeStep:
    """Validate one step's parameters. ``where`` prefixes the error (file and position)."""
    try:
        step = registry.step(name)
    except RecipeError as exc:
        raise RecipeError(f"{where}: {exc}") from None
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise RecipeError(f"{where} ({name}): parameters must be a mapping, got {params!r}")
    try:
        validated = step.Params.model_validate(dict(params))
    except pydantic.ValidationError as err:
        raise RecipeError(f"{where} ({name}): {_describe_validation(err)}") from None
    return RecipeStep(step, validated)


def build_recipe(name: str, data: Any, registry: Registry, origin: str = "<code>") -> Recipe:
    """Build a :class:`Recipe` from parsed YAML (or an equivalent dict); raises :class:`RecipeError`."""
    check_name(name)
    if not isinstance(data, Mapping):
        raise RecipeError(f"{origin}: a recipe is a mapping with a 'steps' list, got {type(data).__name__}")
    unknown = set(data) - TOP_LEVEL_KEYS
    if unknown:
        raise RecipeError(
            f"{origin}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
            f"(allowed: {', '.join(sorted(TOP_LEVEL_KEYS))})"
        )
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise RecipeError(f"{origin}: 'steps' must be a non-empty list of steps")
    for key, kind in (("eager", bool), ("keep_metadata", bool), ("description", str)):
        if key in data and not isinstance(data[key], kind):
            raise RecipeError(f"{origin}: {key!r} must be a {kind.__name__}, got {data[key]!r}")
    steps = []
    for index, item in enumerate(raw_steps, start=1):
        where = f"{origin}: step {index}"
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, Mapping) or len(item) != 1:
            raise RecipeError(f"{where}: write a step as '- name: {{param: value}}', got {item!r}")
        (step_name, params), = item.items()
        steps.append(build_step(str(step_name), params, registry, where))
    keep = bool(data.get("keep_metadata", False))
    steps_t = tuple(steps)
    return Recipe(
        name=name,
        steps=steps_t,
        description=str(data.get("description", "")),
        eager=bool(data.get("eager", False)),
        keep_metadata=keep,
        origin=origin,
        digest=_digest(steps_t, keep, registry),
    )


def load_recipe(path: str | Path, registry: Registry) -> Recipe:
    """Load and validate one YAML recipe file; its name is the file name without ``.yaml``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise RecipeError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    stem = path.name.rsplit(".", 1)[0]
    try:
        check_name(stem)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    return build_recipe(stem, data, registry, origin=str(path))


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

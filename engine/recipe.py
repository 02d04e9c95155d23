"""Recipes: named, validated lists of steps, loaded from YAML.

A recipe file ``recipes/feed.yaml``::

    description: 600 px wide feed image
    eager: true                 # the worker renders it for every upload
    keep_metadata: false        # default: EXIF/XMP/ICC are stripped from the output
    steps:
      - resize: {width: 600, fit: inside}
      - format: {type: auto, quality: 82}

The recipe's name is its file name. Every step name and parameter is checked when the recipe loads; an
error names the file, the step's position and name, the parameter and what is wrong, and carries them
as fields (:class:`~pixline.engine.errors.LocatedError`), with the line of the YAML text they concern.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pydantic

from . import contract, gravity
from .errors import OutputTooLargeError, RecipeError, quote
from .negotiate import possible_encoders
from .normalise import PIPELINE_VERSION
from .registry import PluginInfo, Registry
from .steps import Encoder, OutputSpec, Step, StepParams

if TYPE_CHECKING:
    from .gravity import SmartGravity

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TOP_LEVEL_KEYS = {"description", "eager", "keep_metadata", "steps"}
DIGEST_LENGTH = 16
#: Parameter errors a message lists (a mapping of 5000 unknown keys is one message, not 5000).
MAX_ERRORS_SHOWN = 5


def check_name(name: str, what: str = "recipe name") -> str:
    """Return ``name`` if it is a valid recipe name (lower-case letters, digits, ``-``, ``_``)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise RecipeError(
            f"{what} {quote(name)} is not valid: use 1-64 lower-case letters, digits, '-' or '_'"
        )
    return name


@dataclass(frozen=True)
class RecipeStep:
    """One validated step of a recipe, and the plugin it comes from (``None``: built by hand)."""

    step: Step
    params: StepParams
    plugin: PluginInfo | None = field(default=None, compare=False, hash=False)

    @property
    def name(self) -> str:
        return self.step.name


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: its steps with their parameters, and what it is for.

    ``from_request`` marks a recipe written in a request (an ad-hoc URL): a step's
    ``ParameterError`` at render is then the client's (400), not the recipe author's (500).
    """

    name: str
    steps: tuple[RecipeStep, ...]
    description: str = ""
    eager: bool = False
    keep_metadata: bool = False
    origin: str = "<code>"
    digest: str = field(default="", compare=False)
    from_request: bool = False
    #: The YAML text it was loaded from ("" when built from data), served to the page's playground.
    source: str = field(default="", compare=False, repr=False)
    #: The plugin gravities its steps name (engine/gravity.py), as the registry had them.
    gravities: Mapping[str, "SmartGravity"] = field(default_factory=dict, compare=False, repr=False)

    @property
    def analysers(self) -> tuple[str, ...]:
        """The analysers whose results its gravities read: a render makes sure the image has them."""
        return tuple(sorted({name for g in self.gravities.values() for name in g.analysers}))

    @cached_property
    def output_spec(self) -> OutputSpec:
        """The encoding asked for by the one step that decides it (default: the source's format),
        ``ahead_of_time`` when the recipe is eager."""
        spec = next((spec for _, _, spec in output_steps(self.steps)), OutputSpec())
        return replace(spec, ahead_of_time=self.eager)

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
            width, height = contract.call(rs.step, "output_size", params=rs.params, width=width,
                                          height=height)
            sizes.append((width, height))
        return sizes

    def shrink_hint(self, width: int, height: int) -> tuple[int, int] | None:
        """What the first step needs of a ``width``×``height`` source (``Step.shrink_hint``)."""
        first = self.steps[0]
        return contract.call(first.step, "shrink_hint", params=first.params, width=width, height=height)

    def check_output(self, width: int, height: int, max_pixels: int | None,
                     encoder: Encoder | None = None, where: str | None = None) -> None:
        """Refuse, before anything is decoded, what this recipe would make of a ``width``×``height``
        image: a step over ``max_pixels`` (every step counts, not only the last: a 1-pixel strip
        enlarged again is huge on the way), or an output larger than ``encoder.max_side``.

        Raises :class:`~pixline.engine.errors.OutputTooLargeError`; ``where`` starts its message
        (default: ``recipe 'NAME'``).
        """
        where = where or f"recipe {self.name!r}"
        sizes = self.output_sizes(width, height)
        for index, (rs, (out_w, out_h)) in enumerate(zip(self.steps, sizes), 1):
            if max_pixels is not None and out_w * out_h > max_pixels:
                raise OutputTooLargeError(
                    f"{where}: step {index} ({rs.name}) asks for {out_w}×{out_h} = {out_w * out_h} "
                    f"pixels, over the limit of {max_pixels}", step=index)
        out_w, out_h = sizes[-1] if sizes else (width, height)
        if encoder is not None and encoder.max_side is not None and max(out_w, out_h) > encoder.max_side:
            raise OutputTooLargeError(
                f"{where}: makes a {out_w}×{out_h} image of this one; {encoder.name} holds at most "
                f"{encoder.max_side} pixels a side")

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


def output_steps(steps: Sequence[RecipeStep]) -> list[tuple[int, RecipeStep, OutputSpec]]:
    """(position, step, spec) of every step that decides the output (``Step.output``)."""
    found = []
    for index, rs in enumerate(steps, start=1):
        spec = contract.call(rs.step, "output", params=rs.params)
        if spec is not None:
            found.append((index, rs, spec))
    return found


def check_output(steps: Sequence[RecipeStep], registry: Registry, origin: str) -> OutputSpec:
    """The recipe's output spec, checked against the installed encoders; raises :class:`RecipeError`.

    At most one step may decide the output; a named format must be installed and able to write
    here; every ``auto`` candidate must be an installed encoder (one whose codec this libvips lacks
    is skipped when negotiating).
    """
    deciders = output_steps(steps)
    if len(deciders) > 1:
        named = " and ".join(f"step {i} ({rs.name})" for i, rs, _ in deciders)
        raise RecipeError(f"{origin}: {named} both decide the output format; keep one of them",
                          step=deciders[-1][0])
    if not deciders:
        return OutputSpec()
    index, rs, spec = deciders[0]
    where = f"{origin}: step {index} ({rs.name})"
    if spec.format not in ("auto", "source"):
        try:
            registry.encoder(spec.format)
        except RecipeError as exc:
            raise RecipeError(f"{where}: {exc}", step=index) from None
    for name in spec.candidates if spec.format == "auto" else ():
        if name not in registry.encoders and name not in registry.unavailable_encoders:
            known = ", ".join(sorted(registry.encoders)) or "none"
            raise RecipeError(f"{where}: 'auto' candidate {quote(name)} is not an installed output format "
                              f"(known formats: {known})", step=index)
    if spec.target is not None:
        _check_auto_quality(spec, registry, where, index)
    return spec


def _check_auto_quality(spec: OutputSpec, registry: Registry, where: str, index: int) -> None:
    """``quality: auto`` needs its metric, and a named format with a quality to search."""
    if spec.metric not in registry.metrics:
        raise RecipeError(f"{where}: quality: auto needs the {spec.metric} metric, which no installed plugin "
                          "adds (pip install pixline-ssimulacra2)", step=index, param="quality")
    encoder = registry.encoders.get(spec.format)
    if encoder is not None and encoder.qualities is None:
        raise RecipeError(f"{where}: {spec.format} has no quality to search: quality: auto applies to "
                          "lossy formats (jpeg, webp, avif)", step=index, param="quality")


def _plugin_identity(plugin: PluginInfo | None) -> list[str]:
    return [plugin.distribution, plugin.version] if plugin else ["", ""]


def _digest(steps: Sequence[RecipeStep], keep_metadata: bool, spec: OutputSpec, registry: Registry) -> str:
    """The recipe's digest: everything that decides its output bytes (docs/plugins.md, "Digests")."""
    normalized = {
        "pipeline": PIPELINE_VERSION,
        "steps": [[rs.name, rs.step.version, *_plugin_identity(rs.plugin), rs.params.model_dump(mode="json")]
                  for rs in steps],
        "keep_metadata": keep_metadata,
        # Only the encoders this recipe can end in: installing an unrelated one changes nothing.
        "encoders": {name: [registry.encoders[name].version,
                            *_plugin_identity(registry.encoder_plugin(name))]
                     for name in possible_encoders(spec, registry)},
    }
    # Each absent unless used: the digests of other recipes stay as they were.
    if gravities := gravity.digest_part(steps, registry):
        normalized["gravities"] = gravities
    if spec.target is not None and spec.metric in registry.metrics:
        normalized["metric"] = [spec.metric, registry.metrics[spec.metric].version,
                                *registry.identity("metrics", spec.metric)]
    blob = json.dumps(normalized, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:DIGEST_LENGTH]


def _describe_validation(err: pydantic.ValidationError) -> tuple[str, str | None]:
    """The message of every error, and the parameter the first one concerns (when one does)."""
    parts = []
    param = None
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if param is None:
            # A field's own error has it in loc; a model validator's (param_error) in its context.
            param = str(e["loc"][0]) if e["loc"] else (e.get("ctx") or {}).get("param")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown parameter"
        parts.append(f"parameter {quote(loc)}: {msg}" if loc else msg)
    shown = MAX_ERRORS_SHOWN
    more = f"; and {len(parts) - shown} more" if len(parts) > shown else ""
    return "; ".join(parts[:shown]) + more, param


def build_step(name: str, params: Mapping[str, Any] | None, registry: Registry, where: str) -> RecipeStep:
    """Validate one step's parameters. ``where`` prefixes the error (file and position)."""
    try:
        step = registry.step(name)
    except RecipeError as exc:
        raise RecipeError(f"{where}: {exc}") from None
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise RecipeError(f"{where} ({name}): parameters must be a mapping, got {quote(params)}")
    try:
        validated = step.Params.model_validate(dict(params))
    except pydantic.ValidationError as err:
        message, param = _describe_validation(err)
        raise RecipeError(f"{where} ({name}): {message}", param=param) from None
    gravity.check_gravities(validated, registry, f"{where} ({name})")
    return RecipeStep(step, validated, registry.step_plugin(name))


def build_recipe(name: str, data: Any, registry: Registry, origin: str = "<code>",
                 from_request: bool = False) -> Recipe:
    """Build a :class:`Recipe` from parsed YAML (or an equivalent dict); raises :class:`RecipeError`.

    ``from_request``: the recipe was written in a request (see :class:`Recipe`).
    """
    check_name(name)
    if not isinstance(data, Mapping):
        raise RecipeError(f"{origin}: a recipe is a mapping with a 'steps' list, got {type(data).__name__}")
    unknown = [key if isinstance(key, str) and key.isprintable() else quote(key, 40)
               for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        named = ", ".join(key[:40] for key in unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise RecipeError(f"{origin}: unknown key(s) {named} (allowed: {', '.join(sorted(TOP_LEVEL_KEYS))})",
                          key=unknown[0])
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise RecipeError(f"{origin}: 'steps' must be a non-empty list of steps", key="steps")
    for key, kind in (("eager", bool), ("keep_metadata", bool), ("description", str)):
        if key in data and not isinstance(data[key], kind):
            raise RecipeError(f"{origin}: {key!r} must be a {kind.__name__}, got {quote(data[key])}", key=key)
    steps = []
    for index, item in enumerate(raw_steps, start=1):
        where = f"{origin}: step {index}"
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, Mapping) or len(item) != 1:
            raise RecipeError(f"{where}: write a step as '- name: {{param: value}}', got {quote(item)}", step=index)
        (step_name, params), = item.items()
        try:
            steps.append(build_step(str(step_name), params, registry, where))
        except RecipeError as exc:
            raise exc.add_location(step=index)
    keep = bool(data.get("keep_metadata", False))
    steps_t = tuple(steps)
    spec = check_output(steps_t, registry, origin)
    return Recipe(
        name=name,
        steps=steps_t,
        description=str(data.get("description", "")),
        eager=bool(data.get("eager", False)),
        keep_metadata=keep,
        origin=origin,
        digest=_digest(steps_t, keep, spec, registry),
        from_request=from_request,
        gravities={n: registry.gravities[n] for rs in steps_t for n in gravity.named_gravities(rs.params)},
    )


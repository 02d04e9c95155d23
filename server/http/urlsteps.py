"""Recipe steps written in a URL path, for ad-hoc URLs ``/t/<signature>/<steps>/<id>``.

Syntax (one path segment per step, in order; the last segment is the image id)::

    resize:w=300,h=200,fit=cover/format:type=webp/<id>

- a step is ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE…``; NAME and KEY are the names a YAML recipe uses;
- short keys: those a step declares in its schema (``StepParams.url_keys``): ``w`` width, ``h``
  height and ``g`` gravity of resize and crop, ``q`` quality and ``t`` type of format;
- a plain VALUE uses only ``A-Z a-z 0-9 . _ ~ + -``; anything else (spaces, ``©``, ``{owner}``) is
  written ``b64:`` + url-safe base64 of its UTF-8 text, without padding;
- a list parameter joins its items with ``+`` (``background=255+255+255``).

Parsed steps go through :func:`pixline.engine.recipe.build_recipe`, so URLs and YAML recipes share
one schema and one set of error messages. The recipe's name is ``adhoc``, which is reserved: the
server refuses to start with a recipe file of that name.
"""
from __future__ import annotations

import base64
import binascii
import enum
import re
import typing
from typing import Any, Mapping, Sequence

from pixline.engine.errors import ParameterError, quote
from pixline.engine.recipe import Recipe, build_recipe
from pixline.engine.registry import Registry
from pixline.engine.steps import NAME_RE, URL_KEY_RE, Step

ADHOC_RECIPE = "adhoc"
#: How errors name an ad-hoc recipe (its origin).
ADHOC_WHERE = "ad-hoc URL"
MAX_PATH_CHARS = 2048
# Matched with fullmatch: ``^…$`` would also take a trailing newline.
VALUE_RE = re.compile(r"[A-Za-z0-9._~+-]*")
B64_PREFIX = "b64:"


def split_path(path: str) -> tuple[str, str]:
    """``<steps>/<id>`` → (steps, id)."""
    if len(path) > MAX_PATH_CHARS:
        raise ParameterError(f"ad-hoc path is over {MAX_PATH_CHARS} characters")
    steps, sep, image_id = path.rpartition("/")
    if not sep or not steps:
        raise ParameterError("an ad-hoc URL is /t/<signature>/<steps>/<id>: no steps given")
    return steps, image_id


def short_keys(step: Step) -> dict[str, str]:
    """The URL short keys of ``step``'s parameters, ``{short key: parameter}``: what the step
    declares in its schema (``StepParams.url_keys``). The one place short keys are read (the URL
    parser and ``pixline docs`` use it)."""
    return dict(step.Params.url_keys)


def _is_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_is_sequence(arg) for arg in typing.get_args(annotation))


def _decode_value(key: str, text: str, where: str) -> str:
    if text.startswith(B64_PREFIX):
        encoded = text[len(B64_PREFIX):]
        try:
            raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
            return raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ParameterError(f"{where}: parameter {quote(key)}: not valid b64: text") from None
    if not VALUE_RE.fullmatch(text):
        raise ParameterError(f"{where}: parameter {quote(key)}: plain values use A-Z a-z 0-9 . _ ~ + -; "
                             "write other text as b64:<url-safe base64>")
    return text


def parse_step(segment: str, registry: Registry, where: str) -> dict[str, dict[str, Any]]:
    """One ``NAME:KEY=VALUE,…`` segment → ``{name: {key: value}}`` as in a YAML recipe (unvalidated)."""
    name, _, rest = segment.partition(":")
    if not NAME_RE.fullmatch(name):
        raise ParameterError(f"{where}: {quote(segment, 40)} is not a step (write NAME:KEY=VALUE,…)")
    step = registry.steps.get(name)  # unknown steps are reported by build_recipe
    fields = step.Params.model_fields if step is not None else {}
    short = short_keys(step) if step is not None else {}
    params: dict[str, Any] = {}
    for item in rest.split(",") if rest else ():
        key, eq, raw = item.partition("=")
        if not eq or not URL_KEY_RE.fullmatch(key):
            raise ParameterError(f"{where} ({name}): {quote(item, 40)} is not KEY=VALUE")
        key = short.get(key, key)
        if key in params:
            raise ParameterError(f"{where} ({name}): parameter {quote(key)} is given twice")
        value: Any = _decode_value(key, raw, f"{where} ({name})")
        if key in fields and _is_sequence(fields[key].annotation):
            value = value.split("+") if value else []
        params[key] = value
    return {name: params}


def parse_steps(text: str, registry: Registry, max_steps: int) -> list[dict[str, dict[str, Any]]]:
    """The steps of an ad-hoc path, checked for count and syntax (not yet for parameter values)."""
    segments = text.split("/")
    if len(segments) > max_steps:
        raise ParameterError(f"ad-hoc URL has {len(segments)} steps; at most {max_steps} are allowed")
    return [parse_step(seg, registry, f"ad-hoc URL: step {i}") for i, seg in enumerate(segments, 1)]


def adhoc_recipe(text: str, registry: Registry, max_steps: int) -> Recipe:
    """Parse and validate ad-hoc steps into a recipe named ``adhoc`` (its digest keys the output)."""
    return build_recipe(ADHOC_RECIPE, {"steps": parse_steps(text, registry, max_steps)}, registry,
                        origin=ADHOC_WHERE, from_request=True)


def check_output_size(recipe: Recipe, width: int, height: int, max_pixels: int,
                      origin: str = ADHOC_WHERE) -> None:
    """Refuse, before rendering, steps that would make an image of more than ``max_pixels``
    (:meth:`Recipe.check_output <pixline.engine.recipe.Recipe.check_output>`: every step's size
    counts, not only the last). ``origin`` starts the message (the recipe playground checks its
    recipes here too)."""
    recipe.check_output(width, height, max_pixels, where=origin)


def _format_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        items = [_format_value(v) for v in value]
        return "+".join(i for i in items if i is not None)
    text = str(value)
    if VALUE_RE.fullmatch(text) and not text.startswith(B64_PREFIX):
        return text
    return B64_PREFIX + base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def format_steps(steps: Sequence[Mapping[str, Mapping[str, Any] | None]]) -> str:
    """Write steps given as in YAML (``[{"resize": {"width": 300}}]``) in the URL syntax."""
    segments = []
    for item in steps:
        (name, params), = item.items()
        parts = []
        for key, value in (params or {}).items():
            formatted = _format_value(value)
            if formatted is not None:
                parts.append(f"{key}={formatted}")
        segments.append(name + (":" + ",".join(parts) if parts else ""))
    return "/".join(segments)

"""Colours in recipe parameters, written the same way in every plugin.

``white``, ``black``, ``transparent`` or CSS hex (``#rgb``, ``#rgba``, ``#rrggbb``, ``#rrggbbaa``); the
``#`` may be left out (``704214``), since an ad-hoc URL cannot carry one.
Use :data:`Colour` as a parameter's type and :func:`rgba` when applying it.
"""
from __future__ import annotations

import re
from typing import Annotated

import pydantic

from .errors import quote
from .steps import param_error

NAMED_COLOURS = {"white": "#ffffff", "black": "#000000", "transparent": "#ffffff00"}
HEX_RE = re.compile(r"#?([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})")


def rgba(text: str) -> tuple[int, int, int, int]:
    """A colour as 0-255 red, green, blue and alpha; ``ValueError`` if it is not one."""
    value = NAMED_COLOURS.get(text.strip().lower(), text.strip().lower())
    match = HEX_RE.fullmatch(value)
    if not match:
        raise ValueError(f"{quote(text)} is not a colour: use white, black, transparent or #rrggbb[aa]")
    digits = match.group(1)
    if len(digits) <= 4:
        digits = "".join(c * 2 for c in digits)
    channels = [int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)]
    return tuple(channels + [255] * (4 - len(channels)))  # type: ignore[return-value]


def _validate(value: str) -> str:
    try:
        rgba(value)
    except ValueError as exc:
        raise param_error(str(exc)) from None
    value = value.strip().lower()
    # One spelling per colour, so one recipe digest: bare hex gets its "#".
    return value if value in NAMED_COLOURS or value.startswith("#") else "#" + value


#: A parameter type: a valid colour, normalized to lower case. Its JSON schema says "colour" (what
#: ``pixline docs`` shows as the parameter's type).
Colour = Annotated[str, pydantic.AfterValidator(_validate),
                   pydantic.WithJsonSchema({"type": "string", "format": "colour"})]

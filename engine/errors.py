"""The one hierarchy of pixline errors.

Every error a user can cause is a :class:`PixlineError` whose message says what to fix. The server maps
these classes to HTTP statuses in one place; the command line prints the message on one line.
"""
from __future__ import annotations

import builtins
import reprlib
from itertools import islice
from typing import Any, Mapping

#: The longest quote of a value in an error message (:func:`quote`), ellipsis included.
QUOTE_LIMIT = 120


class _BoundedRepr(reprlib.Repr):
    """reprlib with every part bounded while it is built: a value a client sent may be a 60 KB
    string, an alias bomb's billion-item list or a 5000-digit integer (whose ``repr`` raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple = 3, 4, 6, 6
        self.maxset = self.maxfrozenset = self.maxdeque = self.maxarray = 6
        self.maxstring, self.maxlong, self.maxother = 60, 40, 60

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 4 * self.maxlong:  # str() of a huge int is slow, then refused past 4300 digits
            return f"<an integer of about {int(x.bit_length() * 0.30103)} digits>"
        return super().repr_int(x, level)

    def repr_dict(self, x: Mapping[Any, Any], level: int) -> str:
        # In the order written (reprlib sorts every key first), and for any mapping.
        if not x:
            return "{}"
        if level <= 0:
            return "{" + self.fillvalue + "}"
        pieces = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
                  for k, v in islice(x.items(), self.maxdict)]
        if len(x) > self.maxdict:
            pieces.append(self.fillvalue)
        return "{" + ", ".join(pieces) + "}"

    def repr_instance(self, x: Any, level: int) -> str:
        if isinstance(x, Mapping):
            return self.repr_dict(x, level)
        if isinstance(x, (bytes, bytearray)):
            return builtins.repr(x[:self.maxstring]) + (self.fillvalue if len(x) > self.maxstring else "")
        return super().repr_instance(x, level)


_REPR = _BoundedRepr()


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, at most ``limit`` characters (``…`` marks a cut).

    Bounded while it is built, not cut afterwards: every message that shows a value a client or a
    recipe sent goes through here (docs/security.md, "YAML a client sends").
    """
    if isinstance(value, str):  # a name or a path: shown whole up to the limit
        return clip(builtins.repr(value[:limit]), limit)
    return clip(_REPR.repr(value), limit)


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ``…`` marking the cut (an answer's detail, a log
    line: the last bound on what a message can carry, whatever built it)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


class PixlineError(Exception):
    """Base class of every error pixline raises on purpose."""

    #: A short, stable title (used as the problem+json ``title``).
    title = "pixline error"


class PluginError(PixlineError):
    """A plugin failed to load or breaks the contract: the registry lists it as broken, and a recipe
    that needs it is refused."""

    title = "plugin error"


class FatalPluginError(PluginError):
    """A plugin's hooks are misspelt (or not marked), or two plugins claim one name: start-up stops
    even though other broken plugins only cost the recipes that need them (docs/plugins.md, "What
    stops start-up")."""


class LocatedError(PixlineError):
    """An error that may know where in a recipe it is: the step (1-based), the step's parameter, the
    recipe's top-level key, and the line of the recipe's YAML text (1-based).

    Each is ``None`` when unknown. The recipe loader fills in what it knows (step, parameter, key)
    and, for YAML text, the line (:class:`~pixline.engine.recipefiles.RecipeDocument`); the HTTP service
    adds them to the problem+json body, where the page's recipe playground reads the line.
    """

    def __init__(self, message: str, *, step: int | None = None, param: str | None = None,
                 key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.param = param
        self.key = key
        self.line = line

    def add_location(self, *, step: int | None = None, param: str | None = None,
                     key: str | None = None, line: int | None = None) -> "LocatedError":
        """Fill in the parts of the location not known yet; returns the error, to ``raise`` it."""
        self.step = self.step if self.step is not None else step
        self.param = self.param if self.param is not None else param
        self.key = self.key if self.key is not None else key
        self.line = self.line if self.line is not None else line
        return self

    def location(self) -> dict[str, int | str]:
        """The known parts: ``{"line": 7, "step": 2, "param": "width"}``."""
        parts = {"line": self.line, "step": self.step, "param": self.param, "key": self.key}
        return {name: value for name, value in parts.items() if value is not None}


class RecipeError(LocatedError):
    """A recipe is invalid: unknown step, unknown or bad parameter, bad YAML."""

    title = "invalid recipe"


class ParameterError(LocatedError):
    """A request's parameters (ad-hoc steps, query values) are invalid."""

    title = "invalid parameters"


class OutputTooLargeError(ParameterError):
    """A recipe or URL would make an image over the output pixel limit or its format's largest side.

    Known from the steps' parameters and the image's stored size, so it is refused before any pixel
    is decoded (HTTP 400).
    """

    title = "output too large"


class NotFoundError(PixlineError):
    """An image, recipe or stored object does not exist."""

    title = "not found"


class ImageDeletedError(NotFoundError):
    """The image was deleted while a render of it ran: nothing of that render stays stored, the
    request answers 404 and a queue job stops (docs/architecture.md, "A delete")."""


class InputError(PixlineError):
    """Base for problems with an input image."""

    title = "bad input image"


class UnsupportedFormatError(InputError):
    """The bytes are not an image type pixline takes (JPEG, PNG, WebP, AVIF/HEIF, GIF, TIFF)."""

    title = "unsupported image type"


class UndecodableImageError(InputError):
    """The bytes look like a supported type but cannot be decoded (truncated, corrupt)."""

    title = "undecodable image"


class ImageTooLargeError(InputError):
    """The input is over a byte, pixel or frame limit."""

    title = "image too large"


class RenderError(PixlineError):
    """A recipe could not be rendered for a reason other than the input (e.g. no encoder installed)."""

    title = "render failed"


class AssetError(RenderError):
    """An asset a step needs (a watermark image) is missing, refused or not an image.

    Named in a fixed recipe it is the server's set-up: HTTP 500, logged with the recipe, and the
    message never shows a server path. Named in an ad-hoc URL it is the URL's fault: the ad-hoc route
    answers 400.
    """

    title = "asset unavailable"
class StepError(RenderError):
    """A step or an encoder failed while rendering: a plugin bug, or a recipe that cannot work.

    Never the client's fault and never the original's (an original that does not decode is an
    :class:`UndecodableImageError`): the HTTP service answers 500 "render failed" and logs the
    message, which names the recipe, the step and its plugin; a queue job dead-letters this recipe
    and goes on with its others. ``recipe`` and ``where`` (``step 2 (sepia)``, ``encoder 'tiff'``)
    say where it happened.
    """

    def __init__(self, message: str, recipe: str = "", where: str = "") -> None:
        super().__init__(message)
        self.recipe = recipe
        self.where = where


class RenderTimeoutError(RenderError):
    """A render ran past its time limit and was stopped (the HTTP service answers 503)."""

    title = "render timed out"


class StoreUnavailableError(PixlineError):
    """The store (S3, the disk) did not answer as it should: a passing fault, worth retrying later.

    The HTTP service answers 503 with ``Retry-After``; a queue job is retried.
    """

    title = "store unavailable"

    #: Seconds a client should wait before trying again.
    retry_after = 5


class FetchRefusedError(PixlineError):
    """A URL, or where it leads, is not one pixline may fetch: its scheme, its host, its address,
    a redirect, or the server's answer (HTTP 502 on a render: the source is the operator's)."""

    title = "source refused"


class SourceUnavailableError(StoreUnavailableError):
    """A source host did not answer as it should (connection, TLS, a 5xx): worth trying again later
    (HTTP 502; an import counts it failed and tries it again on its next run)."""

    title = "source unavailable"


class SourceTimeoutError(SourceUnavailableError):
    """A source host did not send its answer within the total fetch timeout (HTTP 504)."""

    title = "source timed out"

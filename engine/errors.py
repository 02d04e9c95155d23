"""The one hierarchy of pixline errors.

Every error a user can cause is a :class:`PixlineError` whose message says what to fix. The server maps
these classes to HTTP statuses in one place; the command line prints the message on one line.
"""
from __future__ import annotations


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
    and, for YAML text, the line (:class:`~pixline.engine.recipe.RecipeDocument`); the HTTP service
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

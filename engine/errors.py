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
    """A plugin failed to load, or two plugins claim the same name. Start-up stops."""

    title = "plugin error"


class RecipeError(PixlineError):
    """A recipe is invalid: unknown step, unknown or bad parameter, bad YAML."""

    title = "invalid recipe"


class ParameterError(PixlineError):
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


class RenderTimeoutError(RenderError):
    """A render ran past its time limit and was stopped (the HTTP service answers 503)."""

    title = "render timed out"

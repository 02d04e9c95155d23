"""HTTP-level errors, and the one place where pixline errors become HTTP statuses.

Resources raise :class:`~pixline.engine.errors.PixlineError` subclasses (or ``falcon.HTTP*`` for
purely HTTP-level problems); :func:`install` registers one handler that maps them through
:data:`STATUS_BY_ERROR` and one serializer that writes RFC 9457 ``application/problem+json``::

    {"type": "urn:pixline:problem:image-too-large", "title": "image too large",
     "status": 413, "detail": "upload: 120000000 bytes is over the limit of 52428800 bytes"}
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any

import falcon

from pixline.engine.errors import (ImageTooLargeError, InputError, NotFoundError, OutputTooLargeError,
                                   ParameterError, PixlineError, PluginError, RecipeError, RenderError,
                                   RenderTimeoutError, UndecodableImageError, UnsupportedFormatError)

log = logging.getLogger(__name__)


class AccessError(PixlineError):
    """Base for a request that lacks the right credentials (bearer token or URL signature)."""

    title = "access denied"


class CredentialsMissingError(AccessError):
    """No token or signature was given where one is required (HTTP 401)."""

    title = "credentials required"

    def __init__(self, message: str, challenge: str | None = None) -> None:
        super().__init__(message)
        #: The ``WWW-Authenticate`` challenge to send, e.g. ``Bearer realm="pixline"``.
        self.challenge = challenge


class CredentialsInvalidError(AccessError):
    """A token or signature was given but is wrong (HTTP 403)."""

    title = "invalid credentials"


class SaturatedError(PixlineError):
    """Every render slot is busy and the wait ran out (HTTP 503 with ``Retry-After``)."""

    title = "service saturated"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailableError(PixlineError):
    """The store cannot be reached (health check: HTTP 503)."""

    title = "store unavailable"


PROBLEM_JSON = "application/problem+json"

#: Error class → HTTP status. The most specific class in an error's MRO wins.
STATUS_BY_ERROR: dict[type[PixlineError], int] = {
    # RecipeError reaches a request only through ad-hoc URL steps: bad parameters.
    ParameterError: 400,
    OutputTooLargeError: 400,  # of a recipe URL too: the stored image is fine, the request is not
    RecipeError: 400,
    CredentialsMissingError: 401,
    CredentialsInvalidError: 403,
    AccessError: 403,
    NotFoundError: 404,
    ImageTooLargeError: 413,
    UnsupportedFormatError: 415,
    UndecodableImageError: 422,
    InputError: 422,
    SaturatedError: 503,
    StoreUnavailableError: 503,
    RenderTimeoutError: 503,
    RenderError: 500,
    PluginError: 500,
    PixlineError: 500,
}


def status_for(error: PixlineError) -> int:
    """The HTTP status of a pixline error."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "error"


class ProblemError(falcon.HTTPError):
    """An HTTP error that knows its problem ``type`` (a URN derived from the pixline error's title)."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None,
                 problem_type: str | None = None) -> None:
        super().__init__(status, title=title, description=detail, headers=headers)
        self.problem_type = problem_type or f"urn:pixline:problem:{_slug(title)}"


def handle_pixline_error(req: falcon.Request, resp: falcon.Response, error: PixlineError,
                         params: dict[str, Any]) -> None:
    """Turn any :class:`PixlineError` into its HTTP status (registered with ``add_error_handler``)."""
    status = status_for(error)
    headers: dict[str, str] = {}
    if isinstance(error, SaturatedError):
        headers["Retry-After"] = str(error.retry_after)
    elif isinstance(error, RenderTimeoutError):
        headers["Retry-After"] = "30"  # a less busy moment may finish it; do not hammer
    if isinstance(error, CredentialsMissingError) and error.challenge:
        headers["WWW-Authenticate"] = error.challenge
    if status >= 500:
        log.error("%s %s: %s: %s", req.method, req.path, type(error).__name__, error)
    else:
        log.info("%s %s: %d %s", req.method, req.path, status, error)
    raise ProblemError(status, error.title, str(error), headers)


def serialize_problem(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Write every HTTP error (ours and falcon's own 404/405/400) as problem+json, never cached."""
    body = {
        "type": getattr(error, "problem_type", "about:blank"),
        "title": error.title,
        "status": error.status_code,
        "detail": error.description or error.title,
    }
    resp.content_type = PROBLEM_JSON
    resp.cache_control = ["no-store"]
    resp.data = json.dumps(body).encode()


def install(app: falcon.App) -> None:
    """Register the error handler and the serializer on ``app``."""
    app.add_error_handler(PixlineError, handle_pixline_error)
    app.set_error_serializer(serialize_problem)

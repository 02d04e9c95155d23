"""HTTP-level errors, and the one place where pixline errors become HTTP statuses.

Resources raise :class:`~pixline.engine.errors.PixlineError` subclasses (or ``falcon.HTTP*`` for
purely HTTP-level problems); :func:`install` registers one handler that maps them through
:data:`STATUS_BY_ERROR` and one serializer that writes RFC 9457 ``application/problem+json``::

    {"type": "urn:pixline:problem:image-too-large", "title": "image too large",
     "status": 413, "detail": "upload: 120000000 bytes is over the limit of 52428800 bytes"}

An error that knows where in a recipe it is (:class:`~pixline.engine.errors.LocatedError`) adds
extension members: ``line`` (of the YAML text), ``step`` (1-based), ``param``, ``key``.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any

import falcon

from pixline.engine.errors import (AssetError, FetchRefusedError, ImageTooLargeError, InputError,
                                   LocatedError, NotFoundError, OutputTooLargeError, ParameterError, PixlineError,
                                   PluginError, RecipeError, RenderError, RenderTimeoutError,
                                   SourceTimeoutError, SourceUnavailableError, StepError, clip,
                                   StoreUnavailableError, UndecodableImageError, UnsupportedFormatError)

log = logging.getLogger(__name__)
#: The longest ``detail`` of an answer and error message of a log line: messages quote what a client
#: sent through ``quote()``, and this bounds whatever else they carry (docs/security.md).
MAX_DETAIL_CHARS = 1000
MAX_NAME_CHARS = 100


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


class TooManyRequestsError(PixlineError):
    """This client has as many requests of a kind in progress as it may (HTTP 429 with
    ``Retry-After``): the limit is the client's own, not the server's load (that is 503)."""

    title = "too many requests"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MalformedRequestError(PixlineError):
    """The request does not parse as HTTP/1.1: a bad request line, header or chunked body (HTTP 400)."""

    title = "malformed request"


class RequestTimeoutError(PixlineError):
    """Headers or body did not arrive within their time limit (HTTP 408; the connection is closed)."""

    title = "request timeout"


class LengthRequiredError(PixlineError):
    """A body with neither ``Content-Length`` nor chunked encoding (HTTP 411)."""

    title = "length required"


class BodyTooLargeError(PixlineError):
    """A request body over the limit of its route (HTTP 413); uploads use ``ImageTooLargeError``."""

    title = "request body too large"


class HeadersTooLargeError(PixlineError):
    """The request line and headers are over their byte limit (HTTP 431)."""

    title = "request headers too large"


PROBLEM_JSON = "application/problem+json"

#: Error class → HTTP status. The most specific class in an error's MRO wins.
STATUS_BY_ERROR: dict[type[PixlineError], int] = {
    # RecipeError reaches a request only through ad-hoc URL steps: bad parameters. A step's
    # ParameterError while rendering a recipe file is a StepError (500): the recipe is wrong.
    ParameterError: 400,
    OutputTooLargeError: 400,  # of a recipe URL too: the stored image is fine, the request is not
    RecipeError: 400,
    MalformedRequestError: 400,
    CredentialsMissingError: 401,
    CredentialsInvalidError: 403,
    AccessError: 403,
    NotFoundError: 404,
    RequestTimeoutError: 408,
    LengthRequiredError: 411,
    BodyTooLargeError: 413,
    ImageTooLargeError: 413,
    UnsupportedFormatError: 415,
    UndecodableImageError: 422,
    InputError: 422,
    TooManyRequestsError: 429,
    HeadersTooLargeError: 431,
    # A source host (a URL --source) refused, failed or was too slow: the request was fine, the
    # operator's source was not (docs/security.md, "Fetching from URLs").
    FetchRefusedError: 502,
    SourceUnavailableError: 502,
    SourceTimeoutError: 504,
    SaturatedError: 503,
    StoreUnavailableError: 503,
    RenderTimeoutError: 503,
    StepError: 500,
    # A fixed recipe's asset is the server's set-up (the ad-hoc route answers 400 for its own).
    AssetError: 500,
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
                 problem_type: str | None = None, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(status, title=title, description=detail, headers=headers)
        self.problem_type = problem_type or problem_urn(title)
        self.extensions = extensions or {}  # RFC 9457 extension members, e.g. a recipe error's line


def problem_urn(title: str) -> str:
    """The problem ``type`` URN of an error title: ``image too large`` → ``urn:pixline:problem:image-too-large``."""
    return f"urn:pixline:problem:{_slug(title)}"


def problem_json(status: int, title: str, detail: str, type_: str = "about:blank",
                 extensions: dict[str, Any] | None = None) -> bytes:
    """An RFC 9457 problem document, the body of every error response; ``extensions`` are extra
    members (a recipe error's ``line``, ``step``, ``param``)."""
    return json.dumps({"type": type_, "title": title, "status": status,
                       "detail": clip(detail or title, MAX_DETAIL_CHARS), **_clipped(extensions)}).encode()


def _clipped(extensions: dict[str, Any] | None) -> dict[str, Any]:
    """Extension members with their text bounded: a recipe error's ``param`` or ``key`` is a name a
    client wrote, which may be as long as the recipe."""
    return {name: clip(value, MAX_NAME_CHARS) if isinstance(value, str) else value
            for name, value in (extensions or {}).items()}


def error_headers(error: PixlineError) -> dict[str, str]:
    """The headers an error's response carries besides the content type (Retry-After, a challenge)."""
    headers: dict[str, str] = {}
    if isinstance(error, (SaturatedError, TooManyRequestsError)):
        headers["Retry-After"] = str(error.retry_after)
    elif isinstance(error, RenderTimeoutError):
        headers["Retry-After"] = "30"  # a less busy moment may finish it; do not hammer
    elif isinstance(error, StoreUnavailableError):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, CredentialsMissingError) and error.challenge:
        headers["WWW-Authenticate"] = error.challenge
    return headers


def problem_response(error: PixlineError) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and problem+json body of ``error``, for answers written outside falcon
    (the asynchronous front, the connection): the same document falcon's serializer writes."""
    status = status_for(error)
    headers = {"Content-Type": PROBLEM_JSON, "Cache-Control": "no-store", **error_headers(error)}
    return status, headers, problem_json(status, error.title, str(error), problem_urn(error.title))


def handle_pixline_error(req: falcon.Request, resp: falcon.Response, error: PixlineError,
                         params: dict[str, Any]) -> None:
    """Turn any :class:`PixlineError` into its HTTP status (registered with ``add_error_handler``)."""
    status = status_for(error)
    headers = error_headers(error)
    if status >= 500:
        # A step's failure names recipe, step and plugin; its traceback is the plugin author's clue.
        log.error("%s %s: %s: %s", req.method, req.path, type(error).__name__,
                  clip(str(error), MAX_DETAIL_CHARS), exc_info=error if isinstance(error, StepError) else None)
    else:
        log.info("%s %s: %d %s", req.method, req.path, status, clip(str(error), MAX_DETAIL_CHARS))
    extensions = error.location() if isinstance(error, LocatedError) else None
    raise ProblemError(status, error.title, str(error), headers, extensions=extensions)


def handle_unexpected(req: falcon.Request, resp: falcon.Response, error: Exception,
                      params: dict[str, Any]) -> None:
    """Any other exception is a bug: logged with its traceback, answered 500 without the details.

    falcon's own default would write the traceback to the WSGI error stream, outside the log format.
    """
    rid = req.context.get("request_id")
    log.error("%s %s: unexpected %s: %s", req.method, req.path, type(error).__name__,
              clip(str(error), MAX_DETAIL_CHARS), exc_info=error)
    raise ProblemError(500, "internal error",
                       f"an unexpected error; the server's log has the details (request id {rid})")


def serialize_problem(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Write every HTTP error (ours and falcon's own 404/405/400) as problem+json, never cached."""
    resp.content_type = PROBLEM_JSON
    resp.cache_control = ["no-store"]
    resp.data = problem_json(error.status_code, error.title, error.description or "",
                             getattr(error, "problem_type", "about:blank"),
                             getattr(error, "extensions", None))


def install(app: falcon.App) -> None:
    """Register the error handlers and the serializer on ``app``."""
    app.add_error_handler(Exception, handle_unexpected)  # the most specific handler wins: last resort
    app.add_error_handler(PixlineError, handle_pixline_error)
    app.set_error_serializer(serialize_problem)

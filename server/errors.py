"""Errors only the server raises, in the same :class:`~pixline.engine.errors.PixlineError` hierarchy.

They are mapped to HTTP statuses with the engine's errors in :mod:`pixline.server.http_errors`.
"""
from __future__ import annotations

from pixline.engine.errors import PixlineError


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

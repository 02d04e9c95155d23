"""The bearer token that guards upload and delete, when one is configured.

One check, :func:`check_bearer`, on the ``Authorization`` header's text: the falcon resources call it
through :func:`require_bearer`, and the asynchronous front (``front.py``) calls it before it reads a
byte of an upload's body.
"""
from __future__ import annotations

import hmac

import falcon

from .errors import CredentialsInvalidError, CredentialsMissingError

CHALLENGE = 'Bearer realm="pixline"'


def check_bearer(authorization: str | None, token: str | None) -> None:
    """Pass when no token is configured or ``authorization`` is ``Bearer <token>``.

    :class:`CredentialsMissingError` (401) when the header is missing or not a bearer token,
    :class:`CredentialsInvalidError` (403) when the token is wrong.
    """
    if not token:
        return
    scheme, _, given = (authorization or "").strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise CredentialsMissingError("this endpoint needs 'Authorization: Bearer <upload token>'",
                                      challenge=CHALLENGE)
    # compare_digest: the time taken does not tell how much of the token was right.
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise CredentialsInvalidError("the upload token is not valid")


def require_bearer(req: falcon.Request, token: str | None) -> None:
    """:func:`check_bearer` on a falcon request."""
    check_bearer(req.get_header("Authorization"), token)

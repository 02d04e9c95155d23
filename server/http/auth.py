"""The bearer token that guards upload and delete, when one is configured."""
from __future__ import annotations

import hmac

import falcon

from .errors import CredentialsInvalidError, CredentialsMissingError

CHALLENGE = 'Bearer realm="pixline"'


def require_bearer(req: falcon.Request, token: str | None) -> None:
    """Pass when no token is configured or ``Authorization: Bearer <token>`` matches it.

    401 when the header is missing (or not a bearer token), 403 when the token is wrong.
    """
    if not token:
        return
    header = (req.get_header("Authorization") or "").strip()
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise CredentialsMissingError("this endpoint needs 'Authorization: Bearer <upload token>'",
                                      challenge=CHALLENGE)
    # compare_digest: the time taken does not tell how much of the token was right.
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise CredentialsInvalidError("the upload token is not valid")

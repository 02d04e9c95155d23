"""Signed ad-hoc URLs: ``/t/<signature>/<steps>/<id>``, signed like imgproxy.

The signature is HMAC-SHA256 over the path after the signature segment, *including* its leading
slash (``/resize:w=300/format:type=webp/<id>``), as the client sent it (not percent-decoded: one
signed URL has one spelling, so one entry in a CDN's cache), keyed with a signing key's UTF-8 bytes, written in
url-safe base64 without padding (43 characters). Several keys are accepted so keys can be rotated:
sign with the first, accept any. ``unsafe`` in place of the signature is accepted only when the
server runs with ``allow_unsafe`` (development)::

    sign_path("resize:w=300/0123456789abcdef0123456789abcdef", "secret")
    # → "/t/<43 characters>/resize:w=300/0123456789abcdef0123456789abcdef"
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Sequence

from .errors import CredentialsInvalidError, CredentialsMissingError

UNSAFE = "unsafe"
PREFIX = "/t"


def signature(path: str, key: str) -> str:
    """The url-safe base64 HMAC-SHA256 of ``path`` (which starts with ``/``) under ``key``."""
    digest = hmac.new(key.encode(), path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_path(path: str, key: str) -> str:
    """``/t/<signature>/<path>`` for ``path`` = ``<steps>/<id>`` (a leading slash is optional)."""
    path = "/" + path.lstrip("/")
    return f"{PREFIX}/{signature(path, key)}{path}"


def verify(given: str, path: str, keys: Sequence[str], allow_unsafe: bool) -> bool:
    """Check the signature of ``path``; returns True when the URL is an allowed ``unsafe`` one.

    Raises :class:`CredentialsMissingError` (401) for ``unsafe`` or an empty signature when unsafe
    URLs are not allowed, :class:`CredentialsInvalidError` (403) for a wrong one.
    """
    if given in (UNSAFE, ""):
        if allow_unsafe:
            return True
        raise CredentialsMissingError("ad-hoc URLs must be signed: /t/<signature>/<steps>/<id> "
                                      "(see 'pixline sign')")
    if not keys:
        raise CredentialsInvalidError("no signing key is configured, so no signature can be valid")
    matched = False
    for key in keys:
        # compare_digest against every key: the time taken does not tell which key nor how close.
        matched |= hmac.compare_digest(signature(path, key).encode(), given.encode("utf-8", "replace"))
    if not matched:
        raise CredentialsInvalidError("the URL signature does not match its path")
    return False

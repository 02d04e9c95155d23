"""A library of originals on a web server: a URL prefix (``--source https://host/prefix/``) or, for
``pixline import`` of a file of URLs, whole URLs as keys.

Every fetch goes through :class:`~pixline.engine.fetch.Fetcher` (allowed hosts, checked addresses,
bounded bodies and time: docs/security.md, "Fetching from URLs"). A web server cannot be listed, so
neither can this library. A key's version is the server's validator (``ETag``, else
``Last-Modified``) and its ``Content-Length``, taken the same way from a HEAD (``stat``) and a GET
(``read``), so a changed object is noticed as on S3 (docs/architecture.md, "A recipe URL for a
source key").
"""
from __future__ import annotations

from typing import Iterator, Mapping

from .errors import ParameterError
from .fetch import Fetcher, check_source_url, shown
from .library import Entry, Library, Version, check_source_key


class HttpLibrary(Library):
    """Originals at ``prefix`` + key (``prefix`` ``None``: each key is a whole URL)."""

    def __init__(self, fetcher: Fetcher, prefix: str | None = None) -> None:
        self.fetcher = fetcher
        self.prefix = prefix
        if prefix is not None:
            if not prefix.endswith("/"):
                self.prefix = prefix = prefix + "/"
            target = fetcher.policy.check(prefix)  # a host not allowed stops start-up, not a request
            if "?" in target.path:
                raise ParameterError(f"source {shown(prefix)}: a URL prefix has no query")
        self.url = prefix or "URLs"

    def check_key(self, key: str) -> str:
        if self.prefix is None:
            check_source_url(key)
            return key
        return check_source_key(key)

    def entries(self, after: str | None = None) -> Iterator[Entry]:
        raise ParameterError(f"source {shown(self.url)}: a URL prefix cannot be listed; import a file of "
                             f"its keys instead (pixline import KEYS.txt --source {shown(self.url)})")

    def stat(self, key: str) -> Version:
        return _version(self.fetcher.head(self._url(key)).headers)

    def read(self, key: str, max_bytes: int) -> tuple[bytes, Version]:
        reply = self.fetcher.get(self._url(key), max_bytes)
        return reply.body, _version(reply.headers)

    def _url(self, key: str) -> str:
        if self.prefix is None:
            return key  # the fetch checks it against the policy, as every redirect
        return self.prefix + check_source_key(key)


def _version(headers: Mapping[str, str]) -> Version:
    """A reply's version: its validator and the size it says (0 when it says none)."""
    modified = headers.get("last-modified", "").strip()
    validator = headers.get("etag", "").strip() or (f"modified {modified}" if modified else "")
    said = headers.get("content-length", "")
    return Version(validator.strip('"'), int(said) if said.isdigit() else 0)

"""A bound on one client's requests in progress at once (per process), for work that is never stored.

A recipe URL's render is stored, so asking again is a cheap hit; the playground's output is not
(nothing a client writes is kept), so every request costs a render again. :class:`PerClient` lets one
client address have at most ``limit`` such requests in progress in a process; one more is refused at
once with :class:`TooManyRequestsError` (429 with ``Retry-After``): the limit is the client's, and
other clients are still served. The render slots and their waiters (``render_slots.py``) bound what
all clients together may take; this keeps one client from taking all of it.

The address is ``REMOTE_ADDR``: the connection's peer as the front gives it, which is
``X-Forwarded-For``'s client only when the peer is a proxy uvicorn trusts (``FORWARDED_ALLOW_IPS``,
gunicorn's default ``127.0.0.1,::1``: a proxy on the same machine, as ``make cluster``'s nginx). An
IPv6 client is counted by its /64, which one subscriber usually holds whole.
"""
from __future__ import annotations

import contextlib
import ipaddress
import threading
from typing import Iterator

from .errors import TooManyRequestsError

#: Bits of an IPv6 address that name one client (a /64 is one subscriber's network).
IPV6_CLIENT_BITS = 64


def client_key(address: str | None) -> str:
    """The key one client's requests are counted under: an IPv4 address, an IPv6 /64, or the text
    given when it is not an address (a unix socket's peer)."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_BITS), strict=False))
    return str(ip)


class PerClient:
    """At most ``limit`` requests in progress at once per client (0: no limit)."""

    def __init__(self, limit: int, what: str, retry_after: int = 2) -> None:
        self.limit = max(0, limit)
        self.what = what
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}  # only clients with a request in progress: bounded by them

    def in_progress(self, address: str | None) -> int:
        """Requests of the client at ``address`` in progress now."""
        with self._lock:
            return self._counts.get(client_key(address), 0)

    @contextlib.contextmanager
    def hold(self, address: str | None) -> Iterator[None]:
        """Count the ``with`` block as one of the client's requests; raise
        :class:`TooManyRequestsError` if it has ``limit`` in progress already."""
        key = client_key(address)
        with self._lock:
            count = self._counts.get(key, 0)
            if self.limit and count >= self.limit:
                raise TooManyRequestsError(
                    f"{self.what}: this client has {count} requests in progress, at most "
                    f"{self.limit} at once; wait for them, then retry", self.retry_after)
            self._counts[key] = count + 1
        try:
            yield
        finally:
            with self._lock:
                count = self._counts[key] - 1
                if count:
                    self._counts[key] = count
                else:
                    del self._counts[key]

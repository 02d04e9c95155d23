"""One HTTP/1.1 connection of ``pixline serve``: a request's headers arrive within time and size,
and what cannot be parsed is answered with problem+json.

uvicorn's httptools protocol, which this extends, has neither limit: its keep-alive timeout applies only
between requests and is reset by every byte received, so a client sending one header line a second
holds its connection for as long as it likes; and httptools buffers a header of any length. Here a
timer runs from the connection's start (or a request's first byte) to the end of the headers
(``--header-timeout``), and the headers are held to :data:`MAX_HEADER_BYTES`: counted as bytes
arrive while they are incomplete, and measured once parsed (a large header may come in one read).
Bodies are the front's business (``front.py``). docs/security.md lists the limits. A worker over
its connection limit answers 503 problem+json here too, in place of uvicorn's plain-text answer, and
every answer written here or by the front is counted (``pixline_http_refused`` in ``/metrics``).

A request the front refuses before reading its whole body (401, 403, 413: ``front.py`` asks through
``scope[LINGER]``) closes its connection *lingering*, as nginx does: the answer goes out followed by a
FIN, and what the client still sends is read and dropped for up to :data:`LINGER_SECONDS` and up to a
byte budget (the largest body the worker would buffer) before the socket closes. Closing with unread
bytes makes the kernel send a reset, and a client that writes its whole body before reading (Python's
http.client, most libraries) then got "broken pipe" or "connection reset" instead of the answer, now
and then (tests/server/test_front.py). A client cut off for slowness (408) gets no such grace.
"""
from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Awaitable, Callable

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from pixline.engine.errors import PixlineError

from .errors import (HeadersTooLargeError, MalformedRequestError, RequestTimeoutError, SaturatedError,
                     problem_response)
from .metrics import count_refusal

log = logging.getLogger(__name__)

#: The request line and headers of one request, in bytes (nginx allows 4 buffers of 8 KiB).
MAX_HEADER_BYTES = 32 * 1024
#: Seconds a connection closed before its request's body was read keeps reading (and dropping) it.
LINGER_SECONDS = 5.0
#: The scope key of a callable that makes the connection linger when it closes after this request.
LINGER = "pixline.linger_on_close"
#: Seconds a kept-alive connection may sit idle between requests when ``--header-timeout`` is 0.
IDLE_WITHOUT_HEADER_TIMEOUT = 75


def idle_seconds(header_timeout: float) -> int:
    """How long a kept-alive connection may sit idle between two requests before it is closed:
    ``--header-timeout``, the time a new connection gets to send its first request, rounded up.

    uvicorn's keep-alive timer does this (``timeout_keep_alive``); left to gunicorn's ``keepalive``
    it was 2 s, shorter than a front's pool of kept-alive connections keeps them (nginx here 4 s,
    scripts/nginx.conf.template): nginx sent an upload down a connection as pixline closed it, got
    a reset and answered 502 (a POST is never retried). A front must close its idle ones sooner.
    """
    return math.ceil(header_timeout) if header_timeout > 0 else IDLE_WITHOUT_HEADER_TIMEOUT


async def send_problem(send: Callable[[dict[str, Any]], Awaitable[None]], error: PixlineError) -> None:
    """Answer ``error`` through ASGI ``send`` as problem+json with ``Connection: close``, counted in
    ``/metrics`` (``count_refusal``): the answers the front and the connection give themselves."""
    status, headers, body = problem_response(error)
    count_refusal(status, error.title)
    fields = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    fields += [(b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _too_many_connections(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # In place of uvicorn's plain-text 503 (its service_unavailable) when the worker is full.
    await send_problem(send, SaturatedError("this worker has too many connections open; try again "
                                            "shortly", retry_after=1))


class LingeringTransport:
    """The connection's transport as uvicorn sees it: :meth:`close` lingers while the current
    request's body is still coming (see the module's docstring)."""

    def __init__(self, transport: asyncio.Transport, protocol: "GuardedConnection") -> None:
        self._transport = transport
        self._protocol = protocol
        self._timer: asyncio.TimerHandle | None = None
        self.lingering = False
        # What may still be read and dropped; None: the front did not ask (scope[LINGER]).
        self.linger_bytes: int | None = None

    def ask_to_linger(self, max_bytes: int) -> None:
        """Linger when closing after this request, dropping at most ``max_bytes`` more."""
        self.linger_bytes = max_bytes

    def drop(self, data: bytes) -> None:
        """Bytes that came while lingering: dropped; past the budget the socket closes at once."""
        assert self.linger_bytes is not None  # only called while lingering
        self.linger_bytes -= len(data)
        if self.linger_bytes < 0:
            self._transport.close()

    def close(self) -> None:
        if self.lingering:
            return
        cycle = self._protocol.cycle
        transport = self._transport
        if (self.linger_bytes is not None and cycle is not None and cycle.more_body and not transport.is_closing()
                and transport.can_write_eof()):
            self.lingering = True
            transport.write_eof()  # the answer, then FIN: the client reads it, and its end of file
            transport.resume_reading()  # uvicorn may have paused reading for a large body
            self._timer = self._protocol.loop.call_later(LINGER_SECONDS, transport.close)
            return
        transport.close()

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


class GuardedConnection(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a header size limit and problem+json 400s.

    Build the class for a setting with :meth:`with_header_timeout` and give it to uvicorn's
    ``Config(http=...)``.
    """

    header_timeout: float = 10.0
    max_header_bytes: int = MAX_HEADER_BYTES

    @classmethod
    def with_header_timeout(cls, seconds: float) -> type["GuardedConnection"]:
        return type(cls.__name__, (cls,), {"header_timeout": seconds})

    # -- the header timer --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn's own refusal past --limit-concurrency is plain text: this class answers it instead.
        self.max_concurrency, self.limit_concurrency = self.limit_concurrency, None
        self._header_timer: asyncio.TimerHandle | None = None
        self._refusal: PixlineError | None = None
        self._reading_headers = True
        self._request_begun = False
        self._header_bytes = 0
        super().connection_made(LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_headers:  # the next request on a kept-alive connection
            self._reading_headers = True
            self._header_bytes = 0
        self._request_begun = True
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._request_begun = False
        self._disarm_header_timer()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_header_bytes:
            self._refusal = HeadersTooLargeError(
                f"the request line and headers are over {self.max_header_bytes} bytes")
            # httptools stops parsing and uvicorn calls send_400_response, which answers the refusal.
            raise self._refusal
        self.scope[LINGER] = self.transport.ask_to_linger  # type: ignore[index]
        limit = self.max_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            log.warning("%s: over %d connections or requests in this worker; answered 503",
                        self._peer(), limit)
            # uvicorn takes the app for this request from self.app: the refusal, for this one only.
            app, self.app = self.app, _too_many_connections
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        self.transport.stop()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and self.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A request is being answered while the next one's headers trickle in: close after it.
            self.cycle.keep_alive = False
            return
        if not self._request_begun:  # an idle connection, not a request: nobody to answer
            self.transport.close()
            return
        log.info("%s: request headers incomplete after %g s; closing", self._peer(), self.header_timeout)
        self._refuse(RequestTimeoutError(
            f"the request line and headers did not arrive within {self.header_timeout:g} s"))

    # -- the header size ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.transport.lingering:  # the rest of a body nobody will read
            self.transport.drop(data)
            return
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: when the headers ended in this chunk, the rest of it is body.
        if (self._reading_headers and self._header_bytes > self.max_header_bytes
                and not self.transport.is_closing()):
            log.info("%s: request headers over %d bytes; closing", self._peer(), self.max_header_bytes)
            self._refuse(HeadersTooLargeError(
                f"the request line and headers are over {self.max_header_bytes} bytes"))

    # -- answers written here ------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when httptools stops parsing (uvicorn logs one warning): the request is
        malformed, or a callback here refused it."""
        self._refuse(self._refusal or MalformedRequestError(
            "the request is not valid HTTP/1.1 (request line, a header, or the chunked body)"))

    def _refuse(self, error: PixlineError) -> None:
        """Answer ``error`` as problem+json and close, unless an answer has begun (then just close)."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app is waiting on this request: from now on it sees a disconnected client.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        status, headers, body = problem_response(error)
        count_refusal(status, error.title)
        lines = [STATUS_LINE[status]]
        lines += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        lines += [f"{name.lower()}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
        lines += [b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body]
        self.transport.write(b"".join(lines))
        self.transport.close()

    def _peer(self) -> str:
        return "%s:%d" % self.client if self.client else "client"

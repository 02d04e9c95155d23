"""The asynchronous front of ``pixline serve``: an ASGI app that reads each request whole, within its
limits and timeouts, in the event loop, and only then hands it to the falcon (WSGI) app on a bounded
thread pool.

Why (docs/architecture.md, Processes; docs/security.md): gunicorn's sync and gthread workers read a
request's body in the thread that will serve it, so a few dozen clients sending a byte a second took
every thread, and stored images, ``/healthz`` and ``/metrics`` stopped answering. Here a slow client
holds a coroutine and the bytes it sent, never a thread. In order, for each request:

1. what the headers already decide is answered before a byte of the body is read, and the connection
   is closed (``Connection: close``): upload and delete without a valid token (401/403, the check of
   ``auth.py``), a body with neither ``Content-Length`` nor chunked encoding (411), a
   ``Content-Length`` over the route's limit (413);
2. the body is read with an idle timeout (``--body-idle-timeout``, between chunks) and a total one
   (``--body-timeout``), both 408; a chunked body is counted against the same limit; the bytes of
   every body being read in this process are bounded too (``--max-buffered-bytes``, 503);
3. the complete request, with ``Content-Length`` set, goes to the WSGI app on a pool of ``threads``
   threads (``wsgi_pool.py``); the raw request target goes along as ``RAW_URI`` (signed URLs are
   verified over it). The app's answer comes back whole (or as a file the loop reads in blocks), so a
   thread never waits on a slow reader either.
"""
from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Awaitable, Callable, Iterable, MutableMapping

from pixline.engine.errors import ImageTooLargeError, PixlineError, quote

from ..settings import Settings
from .auth import check_bearer
from .connection import LINGER, send_problem
from .errors import (BodyTooLargeError, LengthRequiredError, MalformedRequestError, RequestTimeoutError,
                     SaturatedError)
from .upload import body_limit
from .wsgi_pool import WsgiPool, build_environ

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The body limit of every route but uploads (their bodies are ignored, or a small form at most).
OTHER_BODY_BYTES = 64 * 1024
UPLOAD_PATH = "/images"
GUARDED_METHODS = ("POST", "PUT", "PATCH", "DELETE")
BODY_METHODS = ("POST", "PUT", "PATCH")


class ClientGone(Exception):
    """The client closed the connection before its body was complete."""


def _header(scope: Scope, name: bytes) -> str | None:
    values = [value for key, value in scope["headers"] if key == name]
    return b",".join(values).decode("latin-1") if values else None


class Front:
    """The ASGI app of a ``pixline serve`` worker, around the falcon app ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], settings: Settings, threads: int) -> None:
        self.settings = settings
        self.wsgi = WsgiPool(app, threads)
        # At least the largest upload fits, whatever the setting says.
        self.max_buffered = max(settings.max_buffered_bytes, body_limit("multipart/form-data",
                                                                        settings.max_bytes))
        self.buffered = 0  # bytes of bodies being read now; one event loop, so no lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        try:
            limit, length = self._admit(scope)
        except PixlineError as exc:
            log.info("%s %s: %s", scope["method"], scope["path"], exc)
            return await self._answer(exc, send, scope)
        has_body = length is not None or _chunked(scope)
        body = b""
        try:
            if has_body:
                body = await self._read_body(receive, limit, length, _is_upload(scope))
        except ClientGone as exc:  # nobody to answer: one line, no traceback
            log.info("%s %s: %s", scope["method"], scope["path"], exc)
            return
        except PixlineError as exc:
            log.info("%s %s: %s", scope["method"], scope["path"], exc)
            return await self._answer(exc, send, scope)
        size, environ = len(body), build_environ(_complete(scope, body, has_body), body)
        del body  # from here on the environ's wsgi.input holds the only reference
        try:
            await self.wsgi(environ, send)
        finally:
            self._release(size)

    # -- 1. what the headers decide ---------------------------------------------------------------

    def _admit(self, scope: Scope) -> tuple[int, int | None]:
        """The body limit and declared length of a request, or the error that refuses it now."""
        method, path = scope["method"], scope["path"]
        if _on_images(path) and method in GUARDED_METHODS:
            check_bearer(_header(scope, b"authorization"), self.settings.upload_token)
        raw_length = _header(scope, b"content-length")
        length = None
        if raw_length is not None:
            try:
                length = int(raw_length)
            except ValueError:
                raise MalformedRequestError(f"Content-Length {quote(raw_length)} is not a number") from None
        if length is None and not _chunked(scope) and method in BODY_METHODS:
            raise LengthRequiredError(f"{method} {path}: send Content-Length or a chunked body")
        upload = _is_upload(scope)
        limit = (body_limit(_header(scope, b"content-type"), self.settings.max_bytes) if upload
                 else OTHER_BODY_BYTES)
        if length is not None and length > limit:
            raise _too_large(upload, f"Content-Length {length} is over the limit of {limit} bytes")
        return limit, length

    # -- 2. the body, within time and bytes --------------------------------------------------------

    async def _read_body(self, receive: Receive, limit: int, length: int | None, upload: bool) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.settings.body_timeout or math.inf)  # 0: no limit
        idle = self.settings.body_idle_timeout or math.inf
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                left = deadline - loop.time()
                wait = min(idle, left)
                try:
                    message = await asyncio.wait_for(receive(), wait) if wait > 0 else None
                except asyncio.TimeoutError:
                    message = None
                if message is None:
                    why = (f"no byte of the body for {idle:g} s" if wait == idle else
                           f"the body took longer than {self.settings.body_timeout:g} s")
                    raise RequestTimeoutError(f"{why} ({size} of {length or 'unknown'} bytes came)")
                if message["type"] == "http.disconnect":
                    raise ClientGone(f"the client went away after {size} of {length or 'unknown'} bytes")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(upload, f"body is over the limit of {limit} bytes")
                self._reserve(len(chunk))
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        except BaseException:
            self._release(sum(len(c) for c in chunks))
            raise

    def _reserve(self, count: int) -> None:
        if self.buffered + count > self.max_buffered:
            raise SaturatedError(f"too many request bodies are being received at once (over "
                                 f"{self.max_buffered} bytes); try again shortly", retry_after=2)
        self.buffered += count

    def _release(self, count: int) -> None:
        self.buffered -= count

    # -- answers given here ------------------------------------------------------------------------

    async def _answer(self, error: PixlineError, send: Send, scope: Scope) -> None:
        """Answer ``error`` as problem+json and close the connection: the rest of the body is not read
        (``Connection: close`` makes uvicorn close once the answer is written). A client still sending
        gets a lingering close (``connection.py``), unless it was cut off for being slow."""
        linger = scope.get(LINGER)
        if linger is not None and not isinstance(error, RequestTimeoutError):
            linger(self.max_buffered)  # at most the largest body this worker would have read
        await send_problem(send, error)


def _on_images(path: str) -> bool:
    return path == UPLOAD_PATH or path.startswith(UPLOAD_PATH + "/")


def _is_upload(scope: Scope) -> bool:
    return scope["method"] == "POST" and _on_images(scope["path"])


def _too_large(upload: bool, what: str) -> PixlineError:
    return ImageTooLargeError(f"upload: {what}") if upload else BodyTooLargeError(
        f"request: {what} (a body is not expected here)")


def _chunked(scope: Scope) -> bool:
    return "chunked" in (_header(scope, b"transfer-encoding") or "").lower()


def _complete(scope: Scope, body: bytes, has_body: bool) -> Scope:
    """The scope of the request as the WSGI app sees it: its body whole, with its length."""
    if not has_body:
        return scope
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"transfer-encoding")]
    return {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}


"""The falcon (WSGI) app on a bounded pool of threads, called from the front's event loop: one hop from
the loop to a thread and one back per request.

Why not a2wsgi, which did this before: it hands every piece of a response back to the loop from the
app's thread and waits for the loop to take it (``run_coroutine_threadsafe`` for the status line, for
each body chunk and for the end), and reads the request body the same way. Three or four round trips
per request, each a wake-up of the loop and of the thread: under a render load on 2 cores the event
loop's share of a worker's Python time was about half, most of it in that traffic (py-spy, issue #10).

Here the front has already read the body whole (``front.py``), so the thread gets it as
``wsgi.input`` and runs the app to the end: a response of bytes (``resp.data``, ``resp.media``,
errors: nearly all of them) comes back whole, and the loop writes it. A stored derivative too large to
hold in memory arrives as ``wsgi.file_wrapper`` (:class:`FileStream`), and the loop reads it in
:data:`STREAM_CHUNK` blocks, one thread hop each, writing each before reading the next (a slow reader
slows the reads, never fills memory).
"""
from __future__ import annotations

import asyncio
import contextvars
import io
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable, MutableMapping

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
WsgiApp = Callable[..., Iterable[bytes]]

#: Bytes read from a streamed file per hop to a thread.
STREAM_CHUNK = 256 * 1024


class FileStream:
    """``wsgi.file_wrapper``: a stream the loop reads in blocks rather than an iterable run in the
    app's thread (PEP 3333, "Optional Platform-Specific File Handling")."""

    def __init__(self, stream: BinaryIO, block_size: int = STREAM_CHUNK) -> None:
        self.stream = stream
        self.block_size = max(block_size, STREAM_CHUNK)

    def __iter__(self):  # only if something other than the pool iterates it
        while chunk := self.stream.read(self.block_size):
            yield chunk

    def read(self) -> bytes:
        return self.stream.read(self.block_size)

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


@dataclass
class Response:
    """What the app answered: its status, headers and whole body, or a stream to read."""

    status: int = 500
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    stream: FileStream | None = None


def build_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP request whose body has been read whole.

    ``RAW_URI`` is the request target as sent (gunicorn's name): signed URLs are verified over it, not
    over the percent-decoded path.
    """
    root = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    path = scope["path"].encode("utf-8").decode("latin-1")
    if root and path.startswith(root):
        path = path[len(root):]
    query = scope.get("query_string", b"")
    target = scope.get("raw_path") or scope["path"].encode("utf-8")
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root,
        "PATH_INFO": path,
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": (target + b"?" + query if query else target).decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 0),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileStream,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            name = "HTTP_" + name
        value = raw_value.decode("latin-1")
        environ[name] = environ[name] + "," + value if name in environ else value
    return environ


def run_app(app: WsgiApp, environ: dict[str, Any]) -> Response:
    """Call ``app`` and collect its answer (in a pool thread)."""
    response = Response()
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        # Nothing has been sent yet (the loop sends after this returns), so a second call with
        # exc_info simply replaces the first, as PEP 3333 allows.
        response.status = int(status.split(" ", 1)[0])
        response.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return written.append

    result = app(environ, start_response)
    if isinstance(result, FileStream):
        response.stream = result
        response.body = b"".join(written)
        return response
    try:
        written.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    response.body = b"".join(written)
    return response


class WsgiPool:
    """An ASGI-side caller of a WSGI app on ``threads`` threads."""

    def __init__(self, app: WsgiApp, threads: int) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")

    async def __call__(self, environ: dict[str, Any], send: Callable[[Message], Any]) -> None:
        """Run the app on ``environ`` (:func:`build_environ`) in a thread and send its answer."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        response = await loop.run_in_executor(self.executor, context.run, run_app, self.app, environ)
        await send({"type": "http.response.start", "status": response.status,
                    "headers": response.headers})
        if response.stream is None:
            await send({"type": "http.response.body", "body": response.body})
            return
        stream = response.stream
        try:
            if response.body:
                await send({"type": "http.response.body", "body": response.body, "more_body": True})
            while chunk := await loop.run_in_executor(self.executor, stream.read):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await loop.run_in_executor(self.executor, stream.close)

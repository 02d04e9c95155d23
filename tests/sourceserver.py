"""A real HTTPS server on a loopback address, standing for a site's origin in the URL-fetch tests
(issue 19, 3): images with ETags, redirects, a body that lies about its length, one with no length,
a server that never answers and one that trickles. Its certificate comes from a ``trustme`` CA whose
PEM file the fetcher is given (``--source-ca-file``).

It listens on 127.0.0.2 (an address the tests allow with ``--allow-source-network 127.0.0.2/32``),
so a redirect to 127.0.0.1 or ``localhost`` is a loopback address the fetcher must refuse.
"""
from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

ADDRESS = "127.0.0.2"
#: Names the certificate is good for (tests map them to ADDRESS with a patched getaddrinfo).
CERT_NAMES = ("photos.example.com", ADDRESS, "localhost", "127.0.0.1")
#: Bytes a lying or unbounded body sends at most (the client stops well before).
FLOOD_BYTES = 8 * 1024 * 1024
#: Seconds the silent route waits at most before it gives up (the test's timeout is far shorter).
SILENT_FOR = 20.0
#: Bytes the trickling routes send at most, one each 0.05 s (10 s: a fetcher without its total
#: deadline gets a whole, wrong answer instead of a timeout, and the test fails instead of hanging).
TRICKLE_BYTES = 200


class SourceServer:
    """``files`` (path → bytes, changeable) served at ``url(path)``; :meth:`stop` ends it."""

    def __init__(self, ca_dir: Path, tls: bool = True) -> None:
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        #: Request path → the path (and query) answered instead: a key under a URL prefix that
        #: redirects, trickles or never answers.
        self.aliases: dict[str, str] = {}
        self.stopping = threading.Event()
        self.ca = trustme.CA()
        self.ca_file = str(ca_dir / "source-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.httpd = ThreadingHTTPServer((ADDRESS, 0), OriginHandler)
        self.httpd.origin = self  # type: ignore[attr-defined]
        self.httpd.daemon_threads = True
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(*CERT_NAMES).configure_cert(context)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = ADDRESS) -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def put(self, name: str, data: bytes, etag: str | None = None) -> str:
        """Serve ``data`` at ``/img/<name>``; returns its URL."""
        self.files[name] = data
        self.etags[name] = etag or f"v{len(self.etags)}-{len(data)}"
        return self.url(f"/img/{name}")

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class OriginHandler(BaseHTTPRequestHandler):
    """The origin's routes, answering from its :class:`SourceServer`."""

    server: Any
    protocol_version = "HTTP/1.1"

    @property
    def origin(self) -> SourceServer:
        return self.server.origin

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self.route(body=False)

    def do_GET(self) -> None:
        self.route(body=True)

    def route(self, body: bool) -> None:
        parts = urlsplit(self.origin.aliases.get(self.path, self.path))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.origin.requests.append((self.command, self.path))
        name = parts.path.rpartition("/")[2]
        routes = {"img": lambda: self.image(name, body), "redirect": lambda: self.redirect(query["to"]),
                  "loop": lambda: self.redirect(f"/loop/{int(name) + 1}"), "lying": self.lying,
                  "unbounded": self.unbounded, "silent": self.silent, "trickle": self.trickle,
                  "slowheaders": self.slow_headers,
                  "status": lambda: self.answer(int(name), b"")}
        kind = parts.path.strip("/").split("/")[0]
        routes.get(kind, lambda: self.answer(404, b""))()

    def answer(self, status: int, data: bytes, headers: dict[str, str] | None = None,
               body: bool = True) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if body and self.command == "GET":
            self.wfile.write(data)

    def image(self, name: str, body: bool) -> None:
        if name not in self.origin.files:
            return self.answer(404, b"")
        self.answer(200, self.origin.files[name], {"Content-Type": "image/jpeg",
                                                   "ETag": f'"{self.origin.etags[name]}"'}, body)

    def redirect(self, to: str) -> None:
        self.answer(302, b"", {"Location": to})

    def lying(self) -> None:
        # Says 1000 bytes, sends chunks until the client hangs up (chunked wins over the length).
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.flood(lambda chunk: b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def unbounded(self) -> None:
        # No length at all: the body ends when the connection does.
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.flood(lambda chunk: chunk)

    def flood(self, frame: Any) -> None:
        chunk = b"\xff" * 65536
        try:
            for _ in range(FLOOD_BYTES // len(chunk)):
                self.wfile.write(frame(chunk))
        except OSError:
            pass  # the client stopped reading: as it should
        self.close_connection = True

    def silent(self) -> None:
        self.origin.stopping.wait(SILENT_FOR)  # never answers (until the server stops)
        self.close_connection = True

    def trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(TRICKLE_BYTES):
                if self.origin.stopping.wait(0.05):
                    break
                self.wfile.write(b"\xff")
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def slow_headers(self) -> None:
        # A header line one byte at a time: each read gets a byte well within any read timeout.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        try:
            for _ in range(TRICKLE_BYTES):
                if self.origin.stopping.wait(0.05):
                    break
                self.wfile.write(b"z")
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

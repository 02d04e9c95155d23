"""The ceilings for stored images: a bare falcon app answering every GET with the same bytes from memory,
or (``--s3``) with an object read from S3 by pixline's own S3 client, one GET per request.

Served by pixline's own gunicorn set-up (same worker class, workers and threads as ``pixline serve``)
and behind the same asynchronous front (server/http/front.py: uvicorn workers, the WSGI app on
its thread pool, server/http/wsgi_pool.py), so the gap between it and a hit on ``pixline serve`` is what
pixline does per hit: verify the URL, look up the image, read the stored derivative, count metrics, log.
The S3 ceiling does the read the same way pixline does (engine/s3reader.py's ``S3Reader``: a presigned
GET on a pooled urllib3 connection), so the gap on SeaweedFS is pixline's own work there too.

    python bench/bare_app.py 127.0.0.1:9000 body.jpg
    python bench/bare_app.py 127.0.0.1:9000 --s3 http://127.0.0.1:8333 bucket/prefix keys.txt

With ``--s3`` each request path maps to one key of ``keys.txt`` (one a line; a path always to the
same key); the credentials come from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
"""
from __future__ import annotations

import os
import sys
import zlib

import falcon

from pixline.engine.s3reader import S3Reader
from pixline.server.commands.gunicorn_app import PixlineGunicorn, effective_threads
from pixline.server.http.front import Front
from pixline.server.settings import Settings

HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def on_get(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        resp.data = self.data
        resp.content_type = "image/jpeg"
        resp.set_headers(HEADERS)


class S3Body:
    """One S3 GET per request, with pixline's client (made in the worker, after the fork)."""

    def __init__(self, endpoint: str, root: str, keys: list[str]) -> None:
        self.reader = S3Reader(root, {"client_kwargs": {"endpoint_url": endpoint},
                                      "key": os.environ.get("AWS_ACCESS_KEY_ID"),
                                      "secret": os.environ.get("AWS_SECRET_ACCESS_KEY")})
        self.keys = keys

    def on_get(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        stream, length = self.reader.open(self.keys[zlib.crc32(path.encode()) % len(self.keys)])
        with stream:
            resp.data = stream.read(length)
        resp.content_type = "image/jpeg"
        resp.set_headers(HEADERS)


class Bare(PixlineGunicorn):
    def __init__(self, settings: Settings, resource: object) -> None:
        self.resource = resource
        super().__init__(settings)

    def load(self) -> Front:
        app = falcon.App()
        app.add_route("/{path:path}", self.resource)
        return Front(app, self.settings, effective_threads(self.settings))


def resource(args: list[str]) -> object:
    if args[0] == "--s3":
        endpoint, root, keys_file = args[1:4]
        with open(keys_file) as fh:
            return S3Body(endpoint, root, [line.strip() for line in fh if line.strip()])
    with open(args[0], "rb") as fh:
        return Body(fh.read())


if __name__ == "__main__":
    bind = sys.argv[1]
    Bare(Settings.load(environ={}, flags={"bind": bind}), resource(sys.argv[2:])).run()

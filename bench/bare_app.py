"""The ceiling for stored images: a bare falcon app answering every GET with the same bytes from memory.

Served by pixline's own gunicorn set-up (same worker class, workers and threads as ``pixline serve``)
and behind the same asynchronous front (server/http/front.py: uvicorn workers, the WSGI app on
its thread pool, server/http/wsgi_pool.py), so the gap between it and a hit on ``pixline serve`` is what pixline does per hit: look up the image,
read the stored derivative, count metrics, log.

    python bench/bare_app.py 127.0.0.1:9000 body.jpg
"""
from __future__ import annotations

import sys

import falcon

from pixline.server.commands.gunicorn_app import PixlineGunicorn, effective_threads
from pixline.server.http.front import Front
from pixline.server.settings import Settings


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def on_get(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        resp.data = self.data
        resp.content_type = "image/jpeg"
        resp.set_header("Cache-Control", "public, max-age=31536000, immutable")


class Bare(PixlineGunicorn):
    def __init__(self, settings: Settings, data: bytes) -> None:
        self.data = data
        super().__init__(settings)

    def load(self) -> Front:
        app = falcon.App()
        app.add_route("/{path:path}", Body(self.data))
        return Front(app, self.settings, effective_threads(self.settings))


if __name__ == "__main__":
    bind, body = sys.argv[1], sys.argv[2]
    with open(body, "rb") as fh:
        Bare(Settings.load(environ={}, flags={"bind": bind}), fh.read()).run()

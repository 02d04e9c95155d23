"""``GET /``: the web page, and ``GET /static/{name}``: its stylesheet and script.

One page for people: upload a photo, see every recipe's output, try recipes in the playground
(``POST /playground``), browse recent uploads (``GET /images``). Plain HTML, CSS and JavaScript from
the package's ``server/http/static/`` folder, read once at start-up; nothing is fetched from elsewhere,
and every URL the page uses is relative, so it works behind a front that routes the media and resizer
roles by path.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import falcon

from pixline.engine.errors import NotFoundError, quote

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: The files under /static/ and their media types: a fixed set, so no path from a request reaches
#: the file system.
STATIC_TYPES = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}
#: The page's own files only: scripts, styles and images from this server, renders as blob: URLs.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def _not_modified(req: falcon.Request, etag: str) -> bool:
    return bool(req.if_none_match) and any(str(t) in ("*", etag.strip('"')) for t in req.if_none_match)


class PageFiles:
    """The page's files, read once. ``version`` is a digest of all of them: the page links
    ``static/page.js?v=<version>``, so after an upgrade a browser fetches the new files."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.files = {name: (directory / name).read_bytes() for name in STATIC_TYPES}
        html = (directory / "index.html").read_text(encoding="utf-8")
        digest = hashlib.sha256(html.encode())
        for name in sorted(self.files):
            digest.update(name.encode() + self.files[name])
        self.version = digest.hexdigest()[:12]
        self.html = html.replace("__VERSION__", self.version).encode()


class Page:
    """``GET /``: ``index.html``, revalidated on every load (``no-cache`` and an ETag)."""

    def __init__(self, files: PageFiles) -> None:
        self.files = files
        self.etag = f'"{files.version}"'

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.etag = self.etag
        resp.cache_control = ["no-cache"]
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        if _not_modified(req, self.etag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.data = self.files.html

    on_head = on_get


class StaticFile:
    """``GET /static/{name}``: cached for a year when asked for with the current ``?v=``."""

    def __init__(self, files: PageFiles) -> None:
        self.files = files
        self.etag = f'"{files.version}"'

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in self.files.files:
            raise NotFoundError(f"no page file {quote(name, 80)}")
        resp.etag = self.etag
        versioned = req.get_param("v") == self.files.version
        resp.cache_control = ["public", "max-age=31536000", "immutable"] if versioned else ["no-cache"]
        resp.set_header("X-Content-Type-Options", "nosniff")
        if _not_modified(req, self.etag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = STATIC_TYPES[name]
        resp.data = self.files.files[name]

    on_head = on_get


def add_page_routes(app: falcon.App) -> None:
    """``/`` and ``/static/{name}`` on ``app``."""
    files = PageFiles()
    app.add_route("/", Page(files))
    app.add_route("/static/{name}", StaticFile(files))

"""``GET /``: the web page, and ``GET /static/{file}``: its stylesheet and script.

One page for people: upload a photo, see every recipe's output, try recipes in the playground
(``POST /playground``), browse recent uploads (``GET /images``). Plain HTML, CSS and JavaScript from
the package's ``server/http/static/`` folder; nothing is fetched from elsewhere, and every URL the page
uses is relative, so it works behind a front that routes the media and resizer roles by path.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import falcon

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: The page's own files only: scripts, styles and images from this server, renders as blob: URLs.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


class Page:
    """``GET /``: ``index.html`` with ``__VERSION__`` replaced by a digest of the static files, so a
    browser fetches the new script and stylesheet after an upgrade rather than a cached old one."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        digest = hashlib.sha256()
        for path in sorted(directory.iterdir()):
            digest.update(path.name.encode() + path.read_bytes())
        version = digest.hexdigest()[:12]
        self.html = (directory / "index.html").read_text(encoding="utf-8").replace("__VERSION__", version)
        self.body = self.html.encode()
        self.etag = f'"{version}"'

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.etag = self.etag
        resp.cache_control = ["no-cache"]
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        if req.if_none_match and any(str(t) in ("*", self.etag.strip('"')) for t in req.if_none_match):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.data = self.body

    on_head = on_get


def add_page_routes(app: falcon.App) -> None:
    """``/`` and ``/static/…`` on ``app``."""
    app.add_route("/", Page())
    app.add_static_route("/static", STATIC_DIR)

"""``GET /openapi.json``: the OpenAPI 3 description of the service.

The one source is ``openapi.yaml`` beside this module (installed as package data): one entry under
``paths`` per route. The served copy adds the installed version and, when ``--public-url`` is set,
the server's URL. tests/server/test_openapi.py keeps it true: it fails on a route the document lacks
(walking falcon's router) and runs schemathesis against the app with it.
"""
from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

import falcon
import yaml

from pixline import __version__

from ..settings import Settings

DOCUMENT = "openapi.yaml"


@functools.cache
def _document() -> dict[str, Any]:
    text = resources.files(__package__).joinpath(DOCUMENT).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def description(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document as served (a fresh copy: callers may change it)."""
    doc = copy.deepcopy(_document())
    doc["info"]["version"] = __version__
    if settings is not None and settings.public_url:
        doc["servers"] = [{"url": settings.public_url.rstrip("/")}]
    return doc


class OpenAPIDocument:
    """``GET /openapi.json``."""

    def __init__(self, settings: Settings) -> None:
        self.body = json.dumps(description(settings), indent=1).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self.body
        resp.content_type = falcon.MEDIA_JSON
        resp.cache_control = ["public", "max-age=300"]

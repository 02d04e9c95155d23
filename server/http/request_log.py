"""One log line per request, and the request id that ties a request's lines together.

Every response carries ``X-Request-ID``: the client's (or the front's) when it is 1-128 characters of
``A-Z a-z 0-9 . _ ~ : + / = -``, else one made here. The line goes to the logger ``pixline.access`` at
info level, with its fields as record attributes (the JSON log format makes them keys)::

    {"level": "INFO", "logger": "pixline.access", "message": "GET /r/thumb/77ca… 200 5123 B 8.1 ms rendered",
     "method": "GET", "route": "/r/{recipe}/{image_id}", "path": "/r/thumb/77ca…", "status": 200,
     "bytes": 5123, "duration_ms": 8.1, "recipe": "thumb", "image_id": "77ca…", "rendered": true,
     "request_id": "4bf9…", "time": "…"}

Resources add what only they know through ``req.context`` (:func:`note`): the recipe of an ad-hoc URL,
the id of a new upload, whether this request rendered. While a request runs, :data:`current_request_id`
holds its id, and :class:`RequestIdFilter` puts it on every other record logged meanwhile.
"""
from __future__ import annotations

import contextvars
import logging
import random
import re
import time
from typing import Any

import falcon

ACCESS_LOG = logging.getLogger("pixline.access")
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._~:+/=-]{1,128}$")
#: What a resource may tell the request log (set with :func:`note`).
NOTED = ("recipe", "image_id", "rendered")

#: The id of the request this thread is answering, if any.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pixline_request_id", default=None)


def request_id(given: str | None) -> str:
    """``given`` when it is a usable id; a new one otherwise (an invalid one is not an error)."""
    if given and REQUEST_ID_RE.match(given):
        return given
    # A uuid4's 128 bits, not from os.urandom: its getrandom(2) lets another thread take the GIL on
    # every request, and an id needs no secrecy (random is reseeded in each forked worker).
    return f"{random.getrandbits(128):032x}"


def note(req: falcon.Request, **fields: Any) -> None:
    """Tell the request log ``recipe``, ``image_id`` or ``rendered`` for this request."""
    for name, value in fields.items():
        if name not in NOTED:
            raise ValueError(f"the request log has no field {name!r}")
        setattr(req.context, f"log_{name}", value)


def printable(text: str) -> str:
    """``text`` with control characters escaped: a path cannot start a new line in a text log."""
    if text.isprintable():  # nearly always: no copy
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _sent_bytes(req: falcon.Request, resp: falcon.Response) -> int | None:
    if req.method == "HEAD" or resp.status_code in (204, 304):
        return 0
    if resp.stream is not None:
        return resp.content_length  # what the resource declared, if anything
    body = resp.render_body()  # serializes resp.media once; falcon reuses the result
    return len(body) if body else 0


class RequestLog:
    """Falcon middleware: the request id in and out, and the request's log line.

    It must come first in the app's middleware, so that it sees the request before the others and the
    response after them.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.log_started = time.perf_counter()
        req.context.request_id = request_id(req.get_header(REQUEST_ID_HEADER))
        req.context.log_token = current_request_id.set(req.context.request_id)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        # Defaults from the route; a resource's note() overrides them.
        for name in ("recipe", "image_id"):
            if name in params and not hasattr(req.context, f"log_{name}"):
                setattr(req.context, f"log_{name}", params[name])

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        ctx = req.context
        rid = ctx.get("request_id") or request_id(None)
        resp.set_header(REQUEST_ID_HEADER, rid)
        if ACCESS_LOG.isEnabledFor(logging.INFO):
            self._log(req, resp, ctx, rid)
        token = ctx.get("log_token")
        if token is not None:
            current_request_id.reset(token)

    @staticmethod
    def _log(req: falcon.Request, resp: falcon.Response, ctx: Any, rid: str) -> None:
        duration = (time.perf_counter() - ctx.get("log_started", time.perf_counter())) * 1000
        sent = _sent_bytes(req, resp)
        rendered = ctx.get("log_rendered")
        fields = {"method": req.method, "route": req.uri_template, "path": req.path,
                  "status": resp.status_code, "bytes": sent, "duration_ms": round(duration, 1),
                  "recipe": ctx.get("log_recipe"), "image_id": ctx.get("log_image_id"),
                  "rendered": rendered, "request_id": rid}
        ACCESS_LOG.info("%s %s %d %s B %.1f ms%s", req.method, printable(req.path), resp.status_code,
                        "-" if sent is None else sent, duration, " rendered" if rendered else "",
                        extra=fields)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on records logged while it runs (as ``request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            rid = current_request_id.get()
            if rid is not None:
                record.request_id = rid
        return True

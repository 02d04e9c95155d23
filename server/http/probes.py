"""Readiness (``GET /readyz``) apart from liveness (``GET /healthz``), and the worker's probe server.

A load balancer or Kubernetes sends traffic to a process only once ``/readyz`` answers 200; ``/healthz``
says only that the process is alive and its store answers. docs/architecture.md, "Processes" says what
each role checks:

* every ``pixline serve`` role: its store answers, its recipes are loaded, and its warm-up (libvips
  started, every encoder of the recipes run once on a tiny image) is done, so no first user pays it;
* ``pixline worker``: its store answers and it consumes from the broker. A serving process only
  *reports* the broker: an upload made while the broker is away is kept in the outbox and queued
  later (queue/outbox.py), so taking the media role out of service would refuse uploads that succeed.

The worker has no HTTP app: :func:`start_probe_server` serves ``/readyz``, ``/healthz`` and
``/metrics`` on its ``--metrics-port`` (one falcon app on a thread of the standard library's WSGI
server, as prometheus-client's own ``start_http_server`` does for ``/metrics`` alone).
"""
from __future__ import annotations

import logging
import socketserver
import threading
from typing import Callable, Mapping
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from pixline.engine.derivatives import Derivatives

from . import errors
from .errors import ProblemError
from .resources.info import Health

log = logging.getLogger(__name__)

#: The most of a check's failure a probe's answer shows (an exception's text can be long).
CHECK_TEXT = 300
#: A check returns a short word on what it saw ("ok", "12 recipes") or raises when not ready.
Check = Callable[[], str]


def run_checks(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    """Run every check; ``(all passed, {name: what it saw or why it failed})``."""
    seen, ready = {}, True
    for name, check in checks.items():
        try:
            seen[name] = check()
        except Exception as exc:  # any failure means "not ready", never a 500
            ready = False
            seen[name] = f"not ready: {type(exc).__name__}: {exc}"[:CHECK_TEXT]
    return ready, seen


class ReadyProbe:
    """``GET /readyz``: 200 ``{status: ready, checks}`` when every required check passes, else 503
    problem+json with ``checks`` and ``Retry-After: 1``. ``reported`` checks are shown, never required."""

    def __init__(self, required: Mapping[str, Check], reported: Mapping[str, Check] | None = None) -> None:
        self.required, self.reported = dict(required), dict(reported or {})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ready, checks = run_checks(self.required)
        checks.update(run_checks(self.reported)[1])
        if not ready:
            failing = ", ".join(name for name in self.required if checks[name].startswith("not ready"))
            raise ProblemError(503, "not ready", f"not ready yet: {failing}", {"Retry-After": "1"},
                               extensions={"checks": checks})
        resp.cache_control = ["no-store"]
        resp.media = {"status": "ready", "checks": checks}

    on_head = on_get


class _Metrics:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data, resp.content_type = generate_latest(REGISTRY), CONTENT_TYPE_LATEST
        resp.cache_control = ["no-store"]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # probes every second: no access log
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def store_check(derivatives: Derivatives) -> Check:
    """The readiness check of a process's store (``/healthz``'s own check, as a :data:`Check`)."""
    def check() -> str:
        derivatives.store.check()
        return "ok"
    return check


def probe_app(required: Mapping[str, Check], derivatives: Derivatives) -> falcon.App:
    """The worker's probe routes: ``/readyz``, ``/healthz`` (the serving processes' own) and
    ``/metrics`` (the default registry)."""
    app = falcon.App()
    errors.install(app)
    app.add_route("/readyz", ReadyProbe(required))
    app.add_route("/healthz", Health(derivatives))
    app.add_route("/metrics", _Metrics())
    return app


def start_probe_server(host: str, port: int, app: falcon.App) -> WSGIServer:
    """Serve ``app`` on ``host:port`` from a daemon thread; returns the server (``shutdown()`` stops it)."""
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="pixline-probes", daemon=True).start()
    return server

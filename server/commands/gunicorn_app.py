"""``pixline serve``: the falcon app under gunicorn, embedded with gunicorn's ``BaseApplication``.

Workers are uvicorn's (:class:`PixlineWorker`): an event loop reads every request whole, within its
limits and timeouts (``http/connection.py`` for headers, ``http/front.py`` for bodies), and only then
runs the falcon app on a bounded thread pool (libvips releases the GIL while it computes, so threads
render in parallel). Slow clients hold coroutines, never the threads that serve stored images, health
and metrics (docs/architecture.md, Processes). The app, its store, its plugins and its job publisher
are built in each worker *after* the fork (gunicorn calls :meth:`PixlineGunicorn.load` there unless
``preload_app`` is set, and it is not): libvips' threads, s3fs' event loop and AMQP connections do
not survive a fork.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import falcon
from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from ..http.connection import GuardedConnection, idle_seconds
from ..http.front import Front
from ..http.render_slots import FREE_THREADS, threads_needed
from ..queue.jobs import JobPublisher
from ..settings import Settings
from .logs import GunicornLogger
from .wiring import make_derivatives, make_events, make_publisher

if TYPE_CHECKING:
    from ..queue.event_delivery import EventDelivery

log = logging.getLogger(__name__)

#: Seconds of silence from a worker's event loop before gunicorn restarts it (not a per-request
#: limit; renders run on the worker's threads).
WORKER_TIMEOUT = 120
GRACEFUL_TIMEOUT = 30
#: On SIGTERM, requests still running after this are cancelled: the rest of GRACEFUL_TIMEOUT is for
#: worker_exit (the publisher finishing or handing back its jobs).
REQUESTS_GRACE = 20
#: Connections per worker before new requests get 503 (gunicorn's worker_connections default).
MAX_CONNECTIONS = 1000
#: Connections a worker's event loop accepts each time the shared listening socket wakes it.
#: asyncio accepts up to its ``backlog`` argument at once (uvicorn passes gunicorn's 2048), so the
#: first worker to wake took a whole burst: at c=32 every connection sat on one worker half the time,
#: whose loop and threads then fought over one GIL on two cores while the other worker idled (0.45
#: vs 0.22 ms CPU per stored image, 2700 vs 7000 req/s; issue #10). One at a time, as nginx's
#: ``multi_accept off``: every worker is woken, and the idle one gets there first.
ACCEPTS_PER_WAKEUP = 1

_publisher: JobPublisher | None = None  # this worker's publisher, closed by worker_exit
_delivery: "EventDelivery | None" = None  # this worker's event delivery loop (in-process queue only)


def build_worker_app(settings: Settings) -> falcon.App:
    """The falcon app and everything it needs, built in the worker process."""
    global _publisher, _delivery
    from ..http.app import create_app
    from ..http.metrics import use_multiprocess_values
    from ..http.warm_up import WarmUp

    use_multiprocess_values()
    derivatives = make_derivatives(settings)
    events = None
    if not settings.amqp and settings.takes_uploads:  # this process runs the upload jobs
        events, _delivery = make_events(settings, derivatives)
        if _delivery is not None:
            _delivery.start()
    _publisher = make_publisher(settings, derivatives, events)
    log.info("worker %d: serving %s with %d recipes", os.getpid(), derivatives.store.url,
             len(derivatives.recipes))
    warm_up = None
    if not settings.skip_warm_up:
        # Before this worker listens: the workers of a process share its socket, so a load balancer
        # whose /readyz reached a warm one would also send users to a cold one still warming up.
        # A worker that answers anything is warm (docs/architecture.md, "Processes").
        warm_up = WarmUp(derivatives, analyse=settings.takes_uploads)
        warm_up.run()
    return create_app(derivatives, settings, _publisher, warm_up=warm_up or False)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the worker: let the publisher finish or hand back its jobs."""
    if _publisher is not None:
        try:
            _publisher.close()
        except Exception:
            log.exception("closing the job publisher failed")
    if _delivery is not None:
        _delivery.close()  # what is not delivered yet stays in the store's outbox for the next start


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master: a dead worker's live gauges leave the multiprocess metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def effective_threads(settings: Settings) -> int:
    """Threads per worker: enough that renders and the requests waiting on them (for a render slot
    or for another request's render) can never take every thread, so requests served from the
    store always find one (``http/render_slots.py`` decides how many that is)."""
    needed = threads_needed(settings)
    if settings.threads < needed:
        log.info("threads per worker raised from %d to %d (render_concurrency %d + "
                 "render_max_waiting %d + %d for stored images)", settings.threads, needed,
                 settings.render_concurrency, settings.render_max_waiting, FREE_THREADS)
    return max(settings.threads, needed)


class SharedListener:
    """A listening socket the master already listens on, as handed to asyncio's ``create_server``:
    asyncio calls ``listen(backlog)`` on it, which must not shrink the kernel's queue (the master's
    ``--backlog``) to :data:`ACCEPTS_PER_WAKEUP`."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def listen(self, backlog: int) -> None:
        """Leave the queue as the master set it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class PixlineWorker(UvicornWorker):
    """A gunicorn worker running uvicorn with pixline's connection protocol.

    The asyncio loop (not uvloop), no lifespan events, ``X-Content-Type-Options: nosniff`` on every
    response uvicorn writes (the app's, the front's and its own errors), and no ``Server`` header.
    """

    CONFIG_KWARGS = {"loop": "asyncio", "http": "httptools", "lifespan": "off", "server_header": False,
                     "headers": [("X-Content-Type-Options", "nosniff")]}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: Settings = self.app.settings
        self.config.http = GuardedConnection.with_header_timeout(settings.header_timeout)
        self.config.timeout_keep_alive = idle_seconds(settings.header_timeout)
        self.config.limit_concurrency = MAX_CONNECTIONS
        self.config.timeout_graceful_shutdown = REQUESTS_GRACE
        self.config.backlog = ACCEPTS_PER_WAKEUP  # what asyncio accepts per wake-up; see SharedListener

    async def _serve(self) -> None:
        self.sockets = [SharedListener(sock) for sock in self.sockets]
        await super()._serve()


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": [b.strip() for b in settings.bind.split(",") if b.strip()],
        "workers": max(1, settings.workers),
        "worker_class": PixlineWorker,
        "timeout": WORKER_TIMEOUT,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "preload_app": False,
        # The app logs one line per request itself (http/request_log.py): gunicorn's access log would
        # be a second one. Its error log goes through pixline's handler, in pixline's format.
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level,
        "logger_class": GunicornLogger,
        "proc_name": "pixline",
        "worker_exit": worker_exit,
        "child_exit": child_exit,
    }


class PixlineGunicorn(BaseApplication):
    """gunicorn configured from :class:`Settings` rather than from gunicorn's own command line."""

    def __init__(self, settings: Settings, options: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.options = options or gunicorn_options(settings)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Front:
        """In the worker, after the fork: the falcon app behind the asynchronous front."""
        return Front(build_worker_app(self.settings), self.settings, effective_threads(self.settings))

"""``pixline worker --amqp URL --store URL``: render eager recipes from the RabbitMQ job queue.

Runs until SIGTERM or SIGINT; then it stops taking jobs, lets the ones in flight finish for
``--worker-shutdown-grace`` seconds and hands the rest back to the queue. ``--metrics-port`` serves
Prometheus metrics (jobs processed, failed, retried, dead-lettered, render seconds; events delivered,
failed attempts, dead-lettered) and the probes ``/healthz`` and ``/readyz``. With ``--webhook-url`` or
``--events-amqp`` it sends each image's ready events (server/queue/event_delivery.py).
"""
from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType

from typing import TYPE_CHECKING

from pixline.engine.errors import PixlineError

from .flags import EVENT_SETTINGS, INPUT_LIMITS, URL_SOURCES, add_flags, settings_from
from .wiring import make_derivatives, running_events

if TYPE_CHECKING:
    from pixline.engine.derivatives import Derivatives

    from ..queue.consumer import AmqpConsumer
    from ..settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="render eager recipes from the RabbitMQ job queue", epilog="""\
examples:
  pixline worker --amqp amqp://guest:guest@127.0.0.1:5672/ --store s3://BUCKET/PREFIX --s3-endpoint URL
  pixline worker --amqp URL --store file://./data --worker-concurrency 4 --metrics-port 9102
""")
    add_flags(p, "amqp", "queue", "store", "s3_endpoint", "source", "recipes", "worker_concurrency",
              "job_retries", "job_delivery_limit", "job_retry_delay", "worker_shutdown_grace", "metrics_port",
              "metrics_host",
              "max_output_pixels", "render_timeout", "job_timeout", "vips_concurrency", "public_url",
              *INPUT_LIMITS, *EVENT_SETTINGS, *URL_SOURCES)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..queue.consumer import AmqpConsumer
    from ..queue.handler import JobHandler

    settings = settings_from(args)
    if not settings.amqp:
        raise PixlineError("pixline worker needs a broker: --amqp URL or PIXLINE_AMQP "
                           "(without one, pixline serve renders eager recipes itself)")
    derivatives = make_derivatives(settings)
    with running_events(settings, derivatives) as events:
        consumer = AmqpConsumer(settings, JobHandler.from_settings(derivatives, settings, events))
        if settings.metrics_port is not None:
            start_probes(settings, derivatives, consumer)

        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("%s: finishing in-flight jobs", signal.Signals(signum).name)
            consumer.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("worker for %s: store %s, %d recipe(s)", settings.queue, derivatives.store.url,
                 len(derivatives.recipes))
        consumer.run()
    return 0


def start_probes(settings: "Settings", derivatives: "Derivatives", consumer: "AmqpConsumer") -> None:
    """``/metrics``, ``/healthz`` and ``/readyz`` (ready: the store answers and jobs are consumed) on
    ``--metrics-port`` (http/probes.py)."""
    from ..http.probes import probe_app, start_probe_server, store_check

    def consuming() -> str:
        if not consumer.consuming.is_set():
            raise RuntimeError("not consuming from the broker (connecting)")
        return "ok"

    app = probe_app({"store": store_check(derivatives), "consuming": consuming}, derivatives)
    start_probe_server(settings.metrics_host, settings.metrics_port, app)
    log.info("metrics and probes on http://%s:%d/ (metrics, healthz, readyz)", settings.metrics_host,
             settings.metrics_port)

"""Start-up wiring: the long-lived parts of a process, built from its settings.

The store, plugins and recipes (:func:`make_derivatives`) of every process, the job publisher of
a ``pixline serve`` process (:func:`make_publisher`), and the events of a process that runs jobs
(:func:`make_events`).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from pixline.engine import memory
from pixline.engine.derivatives import Derivatives
from pixline.engine.fetch import Fetcher, FetchPolicy
from pixline.engine.library import open_library
from pixline.engine.links import Links
from pixline.engine.recipefiles import default_recipe_dir, load_recipes
from pixline.engine.registry import Registry, default_registry
from pixline.engine.storage import Store

from ..queue.jobs import JobPublisher
from ..queue.ready import JobEvents
from ..settings import Settings

if TYPE_CHECKING:
    from ..queue.event_delivery import EventDelivery


def make_store(settings: Settings) -> Store:
    """The store named by ``settings.store``; S3 credentials come from the usual AWS variables."""
    options: dict = {}
    if settings.store.startswith("s3://"):
        if settings.s3_endpoint:
            options["endpoint_url"] = settings.s3_endpoint
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            options.update(key=key, secret=secret)
    return Store(settings.store, meta_cache_ttl=settings.meta_cache_ttl, **options)


def recipe_dir(settings: Settings) -> Path:
    return Path(settings.recipes) if settings.recipes else default_recipe_dir()


def configure_libvips(settings: Settings) -> None:
    """libvips for a process that renders many different images, several at once.

    Its operation cache is already off (the engine turns it off at import, engine/memory.py). Each
    render gets ``vips_concurrency`` threads (0 leaves libvips' default, one per core): with several
    renders running at once in every process, one each keeps the cores busy without threads
    contending. Large buffers go back to the system when freed (:func:`memory.return_large_buffers`).
    """
    import pyvips

    if settings.vips_concurrency:
        pyvips.concurrency_set(settings.vips_concurrency)
    memory.return_large_buffers()


def make_fetcher(settings: Settings) -> Fetcher | None:
    """The fetcher of URL sources, or ``None`` when no host is allowed (fetching is off)."""
    if not settings.allow_source_host:
        return None
    return Fetcher(FetchPolicy(
        allowed_hosts=tuple(settings.allow_source_host), allow_private=settings.allow_private_source_addresses,
        allowed_networks=tuple(settings.allow_source_network),
        allow_http=settings.allow_http_sources, connect_timeout=settings.source_connect_timeout,
        timeout=settings.source_timeout, max_redirects=settings.source_max_redirects,
        ca_file=settings.source_ca_file))


def make_derivatives(settings: Settings, registry: Registry | None = None,
                     store: Store | None = None) -> Derivatives:
    """Plugins, the validated recipe set and the store: refuses to start on an invalid recipe."""
    configure_libvips(settings)
    registry = registry or default_registry()
    folder = recipe_dir(settings)
    library = open_library(settings.source, settings.s3_endpoint, make_fetcher(settings)) if settings.source else None
    derivatives = Derivatives(store or make_store(settings), registry, load_recipes(folder, registry),
                              settings.limits(), asset_dir=folder,
                              max_output_pixels=settings.max_output_pixels, library=library)
    memory.settle()  # set up, no image yet: the size memory.release() trims back towards
    return derivatives


def make_events(settings: Settings, derivatives: Derivatives) -> tuple[JobEvents, EventDelivery | None]:
    """What a process that runs jobs does when one ends: failed recipes recorded (always), and with
    destinations (``--webhook-url``, ``--events-amqp``) events kept in the store's outbox and the
    delivery loop that sends them (not started: call ``start()`` after any fork)."""
    from ..queue.event_delivery import EventDelivery
    from ..queue.event_outbox import EventOutbox
    from ..queue.event_sinks import make_sinks
    from ..queue.events import EventMaker

    sinks = make_sinks(settings)
    if not sinks:
        return JobEvents(derivatives), None
    outbox = EventOutbox(derivatives.store, [sink.destination for sink in sinks])
    delivery = EventDelivery.from_settings(settings, outbox, sinks)
    maker = EventMaker(derivatives, Links(settings.public_url))
    return JobEvents(derivatives, outbox, maker, settings.events_derivatives, delivery.notify), delivery


@contextlib.contextmanager
def running_events(settings: Settings, derivatives: Derivatives, drain: bool = False) -> Iterator[JobEvents]:
    """:func:`make_events` with its delivery loop running until the block ends (commands that run
    jobs in their own process: worker, regenerate and import without a broker); ``drain``: first
    wait (a lease at most) until each of its events was tried once. What is not delivered by then
    stays in the store's outbox, for the next start or any process delivering to the same
    destinations (docs/architecture.md, "Event delivery")."""
    events, delivery = make_events(settings, derivatives)
    if delivery is not None:
        delivery.start()
    try:
        yield events
        if delivery is not None and drain:
            delivery.drain(delivery.lease)
    finally:
        if delivery is not None:
            delivery.close()


def make_publisher(settings: Settings, derivatives: Derivatives,
                   events: JobEvents | None = None) -> JobPublisher | None:
    """The publisher of a ``pixline serve`` process: RabbitMQ when ``settings.amqp`` is set, else an
    in-process queue whose threads render with the same job handler as ``pixline worker``; ``None``
    for the resizer role, which takes no uploads.

    Call it after gunicorn forks: connections and threads do not survive a fork.
    """
    if not settings.takes_uploads:
        return None
    if settings.amqp:
        from ..queue.outbox import OutboxPublisher
        from ..queue.publisher import AmqpJobPublisher

        # Jobs wait in the store's outbox until the broker confirms them: none is lost to an outage.
        return OutboxPublisher(derivatives.store, AmqpJobPublisher(settings), settings.outbox_interval)
    from ..queue.embedded import EmbeddedJobQueue

    return EmbeddedJobQueue.from_settings(settings, derivatives, events)

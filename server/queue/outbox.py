"""The upload outbox: eager jobs the broker has not confirmed yet, kept in the store until it has.

An upload's job is written to ``outbox/<id>.json`` before it is published and deleted once RabbitMQ
confirms it. When the broker is away the publish fails (the upload still succeeds) and the entry
stays; every ``pixline serve`` process that publishes to RabbitMQ drains the outbox every
``--outbox-interval`` seconds, publishing entries older than that and deleting them once confirmed.
So an eager job is lost only if the store *and* the broker fail for the same upload, right after the
store took its original.

Draining lists ``outbox/``, which holds only jobs not yet confirmed (empty while the broker is up),
never anything that grows with the number of images. Several processes may drain at once and publish
an entry twice: jobs are idempotent (a second delivery finds every output stored).
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time

from pixline.engine.errors import NotFoundError, PixlineError
from pixline.engine.storage import Store, check_id

from .jobs import Job, JobPublisher

log = logging.getLogger(__name__)

PREFIX = "outbox/"
#: An entry whose image was never stored (its upload failed after the entry was written) is
#: dropped after this many seconds.
ABANDONED_AFTER = 3600.0


def outbox_key(image_id: str) -> str:
    return f"{PREFIX}{check_id(image_id)}.json"


class OutboxPublisher:
    """A :class:`~pixline.server.queue.jobs.JobPublisher` that keeps each job in the store until the
    wrapped publisher has it, and drains what is left every ``interval`` seconds (0: never)."""

    def __init__(self, store: Store, publisher: JobPublisher, interval: float = 10.0) -> None:
        self.store = store
        self.publisher = publisher
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval > 0:
            self._thread = threading.Thread(target=self._drain_forever, name="pixline-outbox", daemon=True)
            self._thread.start()

    def publish(self, job: Job) -> None:
        """Keep ``job`` in the outbox, publish it, then forget it; raises if the publish failed (the
        entry stays for the drain)."""
        key = outbox_key(job.image_id)
        try:
            self.store.put(key, json.dumps({**json.loads(job.to_json()), "queued_at": time.time()}).encode())
            kept = True
        except PixlineError as exc:  # the store just took the original: publish anyway
            log.warning("could not keep the job for %s in the outbox: %s", job.image_id, exc)
            kept = False
        self.publisher.publish(job)
        if kept:
            self.store.delete(key)

    def check(self) -> str:
        """The wrapped publisher's broker check (``/readyz`` reports it; uploads wait here meanwhile)."""
        check = getattr(self.publisher, "check", None)
        return check() if check else "ok"

    def drain(self, min_age: float = 0.0) -> int:
        """Publish every outbox entry at least ``min_age`` seconds old; returns how many went.

        Stops at the first failed publish (the broker is still away) and leaves the rest.
        """
        published = 0
        for key in self.store.list_keys(PREFIX):
            try:
                body = self.store.get(key)
            except NotFoundError:
                continue  # its upload's publish succeeded meanwhile, or another process drained it
            job, queued_at = Job.from_json(body), float(json.loads(body).get("queued_at", 0))
            age = time.time() - queued_at
            if age < min_age:
                continue
            if not self.store.has_image(job.image_id):
                if age > ABANDONED_AFTER:
                    log.warning("dropping outbox entry %s: its image was never stored", key)
                    self.store.delete(key)
                continue
            self.publisher.publish(job)
            self.store.delete(key)
            published += 1
        if published:
            log.warning("outbox: published %d job(s) the broker had not taken", published)
        return published

    def _drain_forever(self) -> None:
        # Jitter: processes started together do not all drain at the same moment.
        while not self._stop.wait(self.interval * random.uniform(0.8, 1.2)):
            try:
                self.drain(min_age=self.interval)
            except Exception as exc:  # the broker or the store is still away: next round
                log.info("outbox not drained yet: %s", exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.publisher.close()

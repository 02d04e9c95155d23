"""The delivery loop: events from the store's outbox to their destinations, at least once.

One loop thread per process that runs jobs (``pixline worker``, ``pixline serve`` with its in-process
queue) lists ``events/outbox/`` when woken by an emit and at least every :data:`SWEEP_EVERY` seconds,
and hands what is due to ``--events-concurrency`` delivery threads of its own: a receiver that never
answers holds a delivery thread for ``--webhook-timeout``, never a render. A failed attempt is due
again after an exponential back-off with jitter (``--events-retry-delay`` doubling, at most
:data:`MAX_DELAY`); once the next attempt would fall past ``--events-retry-window`` from the first,
the delivery is dead-lettered (``events/failed/``, ``pixline_events_dead_lettered``).
"""
from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterable

from prometheus_client import Counter

from ..settings import Settings
from .event_outbox import Delivery, EventOutbox, destination_tag, tag_of
from .event_sinks import Sink

log = logging.getLogger(__name__)

#: The outbox is listed at least this often (seconds): retries fall due, other processes' leftovers.
SWEEP_EVERY = 5.0
#: The longest back-off between two attempts (seconds).
MAX_DELAY = 3600.0

DELIVERED = Counter("pixline_events_delivered", "Events a destination took", ["type", "destination"])
ATTEMPTS_FAILED = Counter("pixline_events_attempts_failed", "Event deliveries that failed (retried later)",
                          ["type", "destination"])
DEAD_LETTERED = Counter("pixline_events_dead_lettered",
                        "Event deliveries given up on after the retry window (pixline events --failed)",
                        ["type", "destination"])


@dataclass(frozen=True)
class EventRetry:
    """When a failed delivery is tried again: ``first_delay`` doubling per attempt (±20 % jitter, so
    deliveries that failed together do not come back together), up to ``max_delay``, within
    ``window`` seconds of the first attempt."""

    first_delay: float = 5.0
    window: float = 86400.0
    max_delay: float = MAX_DELAY

    @classmethod
    def from_settings(cls, settings: Settings) -> "EventRetry":
        return cls(settings.events_retry_delay, settings.events_retry_window)

    def next_at(self, delivery: Delivery, now: float) -> float | None:
        """When to try ``delivery`` again after ``delivery.attempts`` failures; ``None``: give up."""
        delay = min(self.max_delay, self.first_delay * 2 ** max(0, delivery.attempts - 1))
        due = now + delay * random.uniform(0.8, 1.2)
        return due if due <= delivery.first_at + self.window else None


class EventDelivery:
    """Delivers the outbox's entries for ``sinks`` until :meth:`close`.

    ``lease``: seconds after an entry of another process fell due before this one takes it over (that
    process is gone, or stuck); at least one delivery's timeout.
    """

    def __init__(self, outbox: EventOutbox, sinks: Iterable[Sink], retry: EventRetry = EventRetry(),
                 concurrency: int = 4, lease: float = 15.0) -> None:
        self.outbox = outbox
        self.sinks = {destination_tag(sink.destination): sink for sink in sinks}
        self.retry = retry
        self.lease = lease
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._in_flight: set[str] = set()
        self._known: dict[str, Delivery] = {}  # entry name → as this process last read or wrote it
        self._lock = threading.Lock()
        self._work: queue.Queue[Delivery | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._deliver_forever, name=f"pixline-events-{n}", daemon=True)
                         for n in range(max(1, concurrency))]
        self._loop = threading.Thread(target=self._sweep_forever, name="pixline-events", daemon=True)

    @classmethod
    def from_settings(cls, settings: Settings, outbox: EventOutbox, sinks: Iterable[Sink]) -> "EventDelivery":
        return cls(outbox, sinks, EventRetry.from_settings(settings), settings.events_concurrency,
                   lease=settings.webhook_timeout + 5.0)

    def start(self) -> "EventDelivery":
        for thread in (*self._threads, self._loop):
            thread.start()
        return self

    def notify(self) -> None:
        """Something was emitted: list the outbox now."""
        self._wake.set()

    def due(self, delivery: Delivery, now: float) -> bool:
        """Whether this process should attempt ``delivery`` now."""
        if delivery.owner in ("", self.outbox.owner):
            return delivery.next_at <= now
        return delivery.next_at + self.lease <= now  # its process is gone: take it over

    def _due_in(self, delivery: Delivery, now: float) -> float:
        lease = 0.0 if delivery.owner in ("", self.outbox.owner) else self.lease
        return delivery.next_at + lease - now

    def sweep(self) -> float:
        """Hand every due delivery of a destination of this process to the delivery threads;
        returns the seconds until the next one falls due (at most :data:`SWEEP_EVERY`).

        One listing; an entry is read only when it is new to this process or due by what was last
        read or written of it (a receiver down for hours leaves many entries: they are not all
        read at every sweep). Before an attempt the entry is always read fresh.
        """
        now = time.time()
        wait = SWEEP_EVERY * random.uniform(0.8, 1.2)  # jitter: processes started together list apart
        names = [name for name in self.outbox.pending_names() if tag_of(name) in self.sinks]
        with self._lock:
            for gone in self._known.keys() - set(names):
                del self._known[gone]
            known = dict(self._known)
        for name in names:
            if name in known and not self.due(known[name], now):
                wait = min(wait, self._due_in(known[name], now))
                continue
            with self._lock:  # claimed before it is read: an attempt finishing now cannot be undone
                if name in self._in_flight:  # by one made from what was read before it saved
                    continue
                self._in_flight.add(name)
            delivery = self.outbox.read(name)
            if delivery is not None:
                self._remember(delivery)
            if delivery is None or not self.due(delivery, now):
                with self._lock:
                    self._in_flight.discard(name)
                if delivery is not None:
                    wait = min(wait, self._due_in(delivery, now))
                continue
            if delivery.owner != self.outbox.owner:
                # Held from now on: another process takes it only a lease after this attempt's start.
                delivery = replace(delivery, owner=self.outbox.owner, next_at=now)
                self.outbox.save(delivery)
                self._remember(delivery)
            self._work.put(delivery)
        return max(0.05, wait)

    def _remember(self, delivery: Delivery | None, name: str = "") -> None:
        """What this process last read or wrote of an entry (``None``: it is gone)."""
        with self._lock:
            if delivery is None:
                self._known.pop(name, None)
            else:
                self._known[delivery.name] = delivery

    def attempt(self, delivery: Delivery) -> None:
        """One attempt: delivered (entry deleted), due again later, or dead-lettered."""
        sink = self.sinks[destination_tag(delivery.destination)]
        labels = (delivery.event.type, sink.kind)
        try:
            sink.send(delivery.event)
        except Exception as exc:  # the destination's answer or silence, whatever it was
            ATTEMPTS_FAILED.labels(*labels).inc()
            failed = replace(delivery, attempts=delivery.attempts + 1, last_error=str(exc)[:1000])
            next_at = self.retry.next_at(failed, time.time())
            if next_at is None:
                DEAD_LETTERED.labels(*labels).inc()
                log.error("event %s to %s: given up after %d attempts: %s", delivery.event.id,
                          delivery.destination, failed.attempts, exc)
                self.outbox.dead_letter(failed)
                self._remember(None, delivery.name)
                return
            log.warning("event %s to %s: attempt %d failed (%s); next in %.1f s", delivery.event.id,
                        delivery.destination, failed.attempts, exc, next_at - time.time())
            again = replace(failed, next_at=next_at)
            self.outbox.save(again)
            self._remember(again)
            return
        DELIVERED.labels(*labels).inc()
        log.info("event %s %s delivered to %s", delivery.event.type, delivery.event.id, delivery.destination)
        self.outbox.delivered(delivery)
        self._remember(None, delivery.name)

    def _deliver_forever(self) -> None:
        while True:
            delivery = self._work.get()
            if delivery is None:
                return
            try:
                self.attempt(delivery)
            except Exception:  # the store: the entry stays as it was, due again
                log.exception("event %s: its outbox entry could not be updated", delivery.event.id)
            finally:
                with self._lock:
                    self._in_flight.discard(delivery.name)
                if self._work.empty():
                    self._wake.set()  # list again for what fell due meanwhile, without waiting

    def _sweep_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                wait = self.sweep()
            except Exception as exc:  # the store is away: next sweep
                log.warning("event outbox not listed: %s", exc)
                wait = SWEEP_EVERY
            self._wake.wait(wait)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every delivery this process emitted has been attempted
        once (a one-shot command's events go out before it exits; their retries are left to the
        processes that deliver); True if they were."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while True:
            with self._lock:
                busy = bool(self._in_flight)
            if not busy and not any(d.owner == self.outbox.owner and d.attempts == 0
                                    for d in self.outbox.pending()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)

    def close(self) -> None:
        """Stop: deliveries in flight go on for at most their timeout on daemon threads; what is left
        stays in the outbox for the next start (or another process)."""
        self._stop.set()
        self._wake.set()
        for _ in self._threads:
            self._work.put(None)
        for sink in self.sinks.values():
            try:
                sink.close()
            except Exception:
                log.debug("closing an event sink failed", exc_info=True)

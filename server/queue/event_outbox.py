"""The event outbox: every event, for every destination, kept in the store until it is delivered.

Keys (docs/architecture.md, "Storage keys")::

    events/outbox/<event id>.<destination>.json   a delivery not done yet: the event, its attempts,
                                                  when it is due next, which process holds it
    events/failed/<event id>.<destination>.json   a delivery given up on after --events-retry-window
                                                  (pixline events --failed; --retry puts it back)
    events/sent/<event id>                        (empty) the event was emitted: never again

The job handler emits an image's events before its job is acked (queue/ready.py), so a process
killed at any moment loses none: an entry is deleted only after its destination took the event. The
process that emitted an entry delivers it; an entry whose process went away (its ``next_at`` passed
more than a lease ago) or that ``pixline events --retry`` freed is taken by any delivering process.
Two processes may then send one event twice: delivery is at least once, with the same id.

Listing ``events/outbox/`` sees only deliveries not done yet (empty while receivers answer), never
anything that grows with the number of images.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable

from pixline.engine.errors import NotFoundError
from pixline.engine.storage import Store

from .events import Event

log = logging.getLogger(__name__)

OUTBOX, FAILED, SENT = "events/outbox/", "events/failed/", "events/sent/"
AMQP = "amqp"


def tag_of(name: str) -> str:
    """The destination tag of a delivery's name (``<event id>.<tag>.json``)."""
    return name.split(".")[1] if name.count(".") == 2 else ""


def destination_tag(destination: str) -> str:
    """A destination's name in keys: ``amqp``, or ``hook-`` + 16 hex digits of its URL's SHA-256."""
    if destination == AMQP:
        return AMQP
    return "hook-" + hashlib.sha256(destination.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one destination (``amqp`` or a webhook URL)."""

    event: Event
    destination: str
    first_at: float
    next_at: float
    attempts: int = 0
    owner: str = ""  # the process that delivers it ("": any may)
    last_error: str = ""

    @property
    def name(self) -> str:
        return f"{self.event.id}.{destination_tag(self.destination)}.json"

    def to_bytes(self) -> bytes:
        return json.dumps({**asdict(self), "event": self.event.to_dict()}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Delivery":
        stored: dict[str, Any] = json.loads(data)
        return cls(event=Event.from_dict(stored["event"]), destination=str(stored["destination"]),
                   first_at=float(stored["first_at"]), next_at=float(stored["next_at"]),
                   attempts=int(stored.get("attempts", 0)), owner=str(stored.get("owner", "")),
                   last_error=str(stored.get("last_error", "")))


class EventOutbox:
    """The store's ``events/`` keys for a process sending to ``destinations``; ``owner`` names it."""

    def __init__(self, store: Store, destinations: Iterable[str], owner: str | None = None) -> None:
        self.store = store
        self.destinations = list(destinations)
        self.owner = owner or uuid.uuid4().hex[:12]

    def emitted(self, event_id: str) -> bool:
        """Whether the event of this id was emitted before (then it is never emitted again)."""
        return self.store.exists(f"{SENT}{event_id}")

    def emit(self, event: Event) -> bool:
        """Keep ``event`` for every destination unless it was emitted before; True if it is new.

        Each entry is created only if absent (another process emitting the same event at once keeps
        one), then ``events/sent/<id>`` says it is done: a crash between the two emits it again
        later, with the same id.
        """
        if self.emitted(event.id):
            return False
        now = time.time()
        for destination in self.destinations:
            delivery = Delivery(event, destination, first_at=now, next_at=now, owner=self.owner)
            self.store.put(OUTBOX + delivery.name, delivery.to_bytes(), replace=False)
        self.store.put(f"{SENT}{event.id}", b"")
        return True

    def pending(self) -> list[Delivery]:
        """Every delivery not done yet."""
        return self._read_all(OUTBOX)

    def pending_names(self) -> list[str]:
        """The names of the deliveries not done yet (one listing, nothing read)."""
        return [key[len(OUTBOX):] for key in self.store.list_keys(OUTBOX)]

    def read(self, name: str) -> Delivery | None:
        """One pending delivery as it is now; ``None`` when it is gone or unreadable."""
        return next(iter(self._read([OUTBOX + name])), None)

    def failed(self) -> list[Delivery]:
        """Every delivery given up on."""
        return self._read_all(FAILED)

    def _read_all(self, prefix: str) -> list[Delivery]:
        return self._read(self.store.list_keys(prefix))

    def _read(self, keys: Iterable[str]) -> list[Delivery]:
        deliveries = []
        for key in keys:
            try:
                deliveries.append(Delivery.from_bytes(self.store.get(key)))
            except NotFoundError:
                continue  # delivered (or retried) meanwhile
            except (ValueError, KeyError, TypeError) as exc:
                log.error("event outbox: unreadable entry %s (%s); left as it is", key, exc)
        return deliveries

    def save(self, delivery: Delivery) -> None:
        self.store.put(OUTBOX + delivery.name, delivery.to_bytes())

    def delivered(self, delivery: Delivery) -> None:
        self.store.delete(OUTBOX + delivery.name)

    def dead_letter(self, delivery: Delivery) -> None:
        """Give up on ``delivery``: it moves to ``events/failed/`` (kept first, then removed)."""
        self.store.put(FAILED + delivery.name, delivery.to_bytes())
        self.store.delete(OUTBOX + delivery.name)

    def retry_failed(self) -> list[Delivery]:
        """Put every dead-lettered delivery back in the outbox, due now, with a new retry window,
        for any delivering process to take; returns them."""
        now = time.time()
        retried = []
        for delivery in self.failed():
            again = replace(delivery, first_at=now, next_at=now, attempts=0, owner="")
            self.save(again)
            self.store.delete(FAILED + delivery.name)
            retried.append(again)
        return retried

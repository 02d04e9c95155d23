"""Load shedding: a bounded number of renders at once per process, and a bounded wait for them.

This module owns the one decision of how many of a worker's threads renders may block. Two kinds of
request wait on a render, and both hold a server thread while they do:

* a request waiting for one of ``slots`` (:meth:`RenderSlots.slot`);
* a request waiting for a render of the same output that another request is doing
  (:meth:`RenderSlots.following`, used by :class:`~pixline.server.http.singleflight.SingleFlight`).

Together they are at most ``max_waiting``, and those waiting for one render at most
``max_waiting_per_key`` of them, so that renders and their waiters can block at most
``slots + max_waiting`` threads: :func:`threads_needed` sizes the thread pool above that by
:data:`FREE_THREADS`, which requests served from the store, ``/healthz`` and ``/metrics`` always
find. A request for a slot waits up to ``timeout`` seconds. It is refused with
:class:`SaturatedError` (HTTP 503 with ``Retry-After``) only when the process is really full:

* at once, when the renders queued ahead of it would take longer than ``timeout`` at the pace renders
  have been finishing (so a burst that the slots will work through in time is served, however many
  connections it came on, and a hopeless wait is not made to last ``timeout`` seconds first);
* at once, when ``max_waiting`` requests are already waiting (for a slot or for another's render);
* after ``timeout`` seconds without a slot.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any, Iterator

from ..settings import Settings
from .errors import SaturatedError

#: Weight of the latest render in the running mean of how long a slot is held.
PACE_WEIGHT = 0.2
#: Threads of a worker's pool that renders and their waiters can never take: stored images,
#: ``/healthz`` and ``/metrics`` always find one of them.
FREE_THREADS = 2


def threads_needed(settings: Settings) -> int:
    """Threads a worker's pool needs so that renders and every request waiting on one (for a slot or
    for another's render) leave :data:`FREE_THREADS` free."""
    return settings.render_concurrency + settings.render_max_waiting + FREE_THREADS


class RenderSlots:
    """A semaphore with a bounded, timed queue in front of it, and the count of every request
    that waits on a render."""

    def __init__(self, slots: int, timeout: float, max_waiting: int,
                 max_waiting_per_key: int | None = None, gauge: Any = None) -> None:
        if slots < 1:
            raise ValueError("render slots must be at least 1")
        self.slots = slots
        self.timeout = max(0.0, timeout)
        self.max_waiting = max(0, max_waiting)
        per_key = self.max_waiting if max_waiting_per_key is None else max(0, max_waiting_per_key)
        self.max_waiting_per_key = min(per_key, self.max_waiting)
        self._semaphore = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._waiting = 0  # requests waiting for a slot
        self._following = 0  # requests waiting for a render another request is doing
        self.held_seconds = 0.0  # running mean of how long a slot is held (0: nothing measured yet)
        self._gauge = gauge  # a Prometheus gauge of the requests waiting (pixline_renders_waiting)

    @classmethod
    def from_settings(cls, settings: Settings, gauge: Any = None) -> "RenderSlots":
        return cls(settings.render_concurrency, settings.render_queue_timeout,
                   settings.render_max_waiting, settings.render_max_waiting_per_key, gauge)

    @property
    def retry_after(self) -> int:
        """Seconds a client should wait before retrying (at least 1)."""
        return max(1, math.ceil(self.timeout))

    @property
    def waiting(self) -> int:
        """Requests waiting now, for a slot or for another request's render."""
        with self._lock:
            return self._waiting + self._following

    def expected_wait(self, position: int) -> float:
        """Seconds until the ``position``-th request in the queue gets a slot, at the recent pace."""
        return position * self.held_seconds / self.slots

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one render slot for the ``with`` block; raise :class:`SaturatedError` if none comes."""
        if not self._semaphore.acquire(blocking=False):
            self._wait()
        started = time.monotonic()
        try:
            yield
        finally:
            self._semaphore.release()
            held = time.monotonic() - started
            with self._lock:
                self.held_seconds = held if not self.held_seconds else (
                    PACE_WEIGHT * held + (1 - PACE_WEIGHT) * self.held_seconds)

    def check_followers(self, others: int) -> None:
        """Refuse one more request for a render that ``others`` requests wait for already (called
        under the caller's lock, which guards ``others``)."""
        if others >= self.max_waiting_per_key:
            raise SaturatedError(
                f"{others} requests already wait for this same render (at most "
                f"{self.max_waiting_per_key}); retry later", self.retry_after)

    @contextlib.contextmanager
    def following(self) -> Iterator[None]:
        """Count the ``with`` block as one request waiting for another request's render; raise
        :class:`SaturatedError` if ``max_waiting`` requests wait already."""
        with self._lock:
            self._check_room()
            self._following += 1
        self._count(1)
        try:
            yield
        finally:
            with self._lock:
                self._following -= 1
            self._count(-1)

    def _count(self, change: int) -> None:
        if self._gauge is not None:
            self._gauge.inc(change)

    def _check_room(self) -> None:
        """Refuse one more waiting request when ``max_waiting`` wait already (under the lock)."""
        waiting = self._waiting + self._following
        if waiting >= self.max_waiting:
            raise SaturatedError(
                f"all {self.slots} render slots are busy and {waiting} requests are already "
                "waiting; retry later", self.retry_after)

    def _wait(self) -> None:
        with self._lock:
            self._check_room()
            expected = self.expected_wait(self._waiting + 1)
            if expected > self.timeout:
                raise SaturatedError(
                    f"all {self.slots} render slots are busy and the {self._waiting} renders queued "
                    f"would take about {expected:.1f} s, over the {self.timeout:g} s a request "
                    "waits; retry later", self.retry_after)
            self._waiting += 1
        self._count(1)
        try:
            acquired = self._semaphore.acquire(timeout=self.timeout)
        finally:
            with self._lock:
                self._waiting -= 1
            self._count(-1)
        if not acquired:
            raise SaturatedError(
                f"no render slot came free within {self.timeout:g} s; retry later", self.retry_after)

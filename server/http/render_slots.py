"""Load shedding: a bounded number of renders at once per process, and a bounded wait for a slot.

A request that needs a render waits up to ``timeout`` seconds for one of ``slots``. It is refused with
:class:`SaturatedError` (HTTP 503 with ``Retry-After``) only when the process is really full:

* at once, when the renders queued ahead of it would take longer than ``timeout`` at the pace renders
  have been finishing (so a burst that the slots will work through in time is served, however many
  connections it came on, and a hopeless wait is not made to last ``timeout`` seconds first);
* at once, when ``max_waiting`` requests are already waiting (each waiting request holds a server
  thread; the bound keeps threads free for requests served straight from the store);
* after ``timeout`` seconds without a slot.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Iterator

from .errors import SaturatedError

#: Weight of the latest render in the running mean of how long a slot is held.
PACE_WEIGHT = 0.2


class RenderSlots:
    """A semaphore with a bounded, timed queue in front of it."""

    def __init__(self, slots: int, timeout: float, max_waiting: int) -> None:
        if slots < 1:
            raise ValueError("render slots must be at least 1")
        self.slots = slots
        self.timeout = max(0.0, timeout)
        self.max_waiting = max(0, max_waiting)
        self._semaphore = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._waiting = 0
        self.held_seconds = 0.0  # running mean of how long a slot is held (0: nothing measured yet)

    @property
    def retry_after(self) -> int:
        """Seconds a client should wait before retrying (at least 1)."""
        return max(1, math.ceil(self.timeout))

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

    def _wait(self) -> None:
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise SaturatedError(
                    f"all {self.slots} render slots are busy and {self._waiting} requests are "
                    "already waiting; retry later", self.retry_after)
            expected = self.expected_wait(self._waiting + 1)
            if expected > self.timeout:
                raise SaturatedError(
                    f"all {self.slots} render slots are busy and the {self._waiting} renders queued "
                    f"would take about {expected:.1f} s, over the {self.timeout:g} s a request "
                    "waits; retry later", self.retry_after)
            self._waiting += 1
        try:
            acquired = self._semaphore.acquire(timeout=self.timeout)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise SaturatedError(
                f"no render slot came free within {self.timeout:g} s; retry later", self.retry_after)

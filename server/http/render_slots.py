"""Load shedding: a bounded number of renders at once per process, and a bounded wait for a slot.

A request that needs a render waits up to ``timeout`` seconds for one of ``slots``; if none frees up,
or if ``max_waiting`` requests are already waiting, it gets :class:`SaturatedError` (HTTP 503 with
``Retry-After``) at once. Bounding the waiters too keeps some gunicorn threads free for requests that
are served straight from the store, so a burst of renders never blocks them.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Iterator

from .errors import SaturatedError


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

    @property
    def retry_after(self) -> int:
        """Seconds a client should wait before retrying (at least 1)."""
        return max(1, math.ceil(self.timeout))

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one render slot for the ``with`` block; raise :class:`SaturatedError` if none comes."""
        if not self._semaphore.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.max_waiting:
                    raise SaturatedError(
                        f"all {self.slots} render slots are busy and {self._waiting} requests are "
                        "already waiting; retry later", self.retry_after)
                self._waiting += 1
            try:
                acquired = self._semaphore.acquire(timeout=self.timeout)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not acquired:
                raise SaturatedError(
                    f"no render slot came free within {self.timeout:g} s; retry later", self.retry_after)
        try:
            yield
        finally:
            self._semaphore.release()

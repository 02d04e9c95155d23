"""Single-flight: concurrent calls for the same key share one execution (in-process).

When many requests ask for the same missing derivative at once, one of them (the leader) renders it
and the others (followers) wait for its result instead of rendering it again. The leader's exception
is re-raised in every follower, so a bad input gives every request the same 4xx, and a render that
is shed or stopped gives every request the same 503. Across processes duplicates are still possible;
they are harmless because the store's writes are whole-object and idempotent.

A follower holds a server thread as long as it waits, like a request waiting for a render slot, so
followers are bounded as those are (issue 18, "Requests waiting on one shared render"):

* counted by the :class:`~pixline.server.http.render_slots.RenderSlots` with the requests waiting for
  a slot, at most ``max_waiting_per_key`` per key and ``max_waiting`` in all; a request past either is
  refused at once (:class:`SaturatedError`, 503 with ``Retry-After``);
* a follower waits at most ``follow_seconds`` from the leader's start (what the leader may spend
  waiting for a slot and rendering), then is refused the same way while the leader goes on. Either
  way it leaves the counts as it found them.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

from .errors import SaturatedError
from .render_slots import RenderSlots

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "result", "error", "followers", "started")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.followers = 0  # requests waiting for this call now
        self.started = time.monotonic()


class SingleFlight(Generic[T]):
    """Deduplicate concurrent calls by key; followers are counted by ``slots`` (none: unbounded,
    for tests of the mechanism alone) and wait at most ``follow_seconds`` (None: as long as the
    leader takes)."""

    def __init__(self, slots: RenderSlots | None = None, follow_seconds: float | None = None) -> None:
        self.slots = slots
        self.follow_seconds = follow_seconds
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """Run ``fn`` once for all concurrent callers of ``key``; returns (result, shared).

        ``shared`` is False for the caller that ran ``fn`` and True for those that waited for it.
        """
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = _Call()
            else:
                if self.slots is not None:
                    self.slots.check_followers(call.followers)
                call.followers += 1
        if leader:
            return self._lead(key, call, fn), False
        try:
            return self._follow(call), True
        finally:
            with self._lock:
                call.followers -= 1

    def _lead(self, key: str, call: _Call[T], fn: Callable[[], T]) -> T:
        try:
            call.result = fn()
            return call.result
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    def _follow(self, call: _Call[T]) -> T:
        if self.slots is None:
            call.done.wait()
        else:
            with self.slots.following():
                self._wait(call)
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def _wait(self, call: _Call[T]) -> None:
        if self.follow_seconds is None:
            call.done.wait()
            return
        left = call.started + self.follow_seconds - time.monotonic()
        if not call.done.wait(max(0.0, left)):
            raise SaturatedError(
                f"the render this request waited for, with {call.followers - 1} others, did not "
                f"finish within {self.follow_seconds:g} s of its start; retry later",
                self.slots.retry_after if self.slots else 1)

    def in_flight(self) -> int:
        """How many keys are being computed now."""
        with self._lock:
            return len(self._calls)

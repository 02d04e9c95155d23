"""RenderSlots: shed at once when the queue ahead could not be served in time, else wait."""
from __future__ import annotations

import threading
import time

import pytest

from pixline.server.http.errors import SaturatedError
from pixline.server.http.render_slots import RenderSlots


def hold(slots: RenderSlots, release: threading.Event) -> threading.Thread:
    entered = threading.Event()

    def run() -> None:
        with slots.slot():
            entered.set()
            release.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert entered.wait(10)
    return thread


def test_a_wait_longer_than_the_timeout_at_the_recent_pace_is_refused_at_once():
    slots = RenderSlots(1, timeout=0.2, max_waiting=10)
    with slots.slot():
        time.sleep(0.3)  # renders take ~0.3 s here
    assert slots.held_seconds >= 0.3
    release = threading.Event()
    holder = hold(slots, release)
    started = time.monotonic()
    with pytest.raises(SaturatedError, match="would take about"):
        with slots.slot():
            pass
    assert time.monotonic() - started < 0.15  # refused without waiting out the timeout
    release.set()
    holder.join(10)


def test_a_wait_that_fits_the_timeout_is_served_when_a_slot_frees():
    slots = RenderSlots(1, timeout=5, max_waiting=10)
    with slots.slot():
        time.sleep(0.05)
    release = threading.Event()
    holder = hold(slots, release)
    threading.Timer(0.1, release.set).start()
    with slots.slot():
        pass  # waited for the holder, not refused
    holder.join(10)


def test_the_number_of_waiters_stays_bounded():
    slots = RenderSlots(1, timeout=5, max_waiting=0)
    release = threading.Event()
    holder = hold(slots, release)
    with pytest.raises(SaturatedError, match="already waiting"):
        with slots.slot():
            pass
    release.set()
    holder.join(10)

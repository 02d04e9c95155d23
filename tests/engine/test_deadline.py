"""The render time budget: checks that do not depend on libvips reporting progress, and a kill that
stops a long libvips computation without touching images other renders can share."""
from __future__ import annotations

import math

import pytest
import pyvips

from pixline.engine import Deadline, RenderTimeoutError, testing


def long_computation() -> pyvips.Image:
    """An image whose encode takes long enough (about a second here) to report progress many times."""
    return pyvips.Image.gaussnoise(4000, 4000)


def test_without_a_limit_nothing_expires_and_nothing_is_watched() -> None:
    deadline = Deadline()
    image = testing.gradient(8, 8)
    assert not deadline.expired and deadline.remaining() == math.inf
    deadline.check("anywhere")
    assert deadline.watch(image) is image


def test_check_raises_once_the_deadline_has_passed() -> None:
    clock = testing.FakeClock()
    deadline = Deadline(2, clock)
    deadline.check("before decoding")
    clock.advance(1.5)
    assert deadline.remaining() == 0.5
    clock.advance(0.5)
    with pytest.raises(RenderTimeoutError, match="took longer than 2 s and was stopped before encoding"):
        deadline.check("before encoding")


def test_sooner_keeps_the_earlier_deadline() -> None:
    clock = testing.FakeClock()
    budget = Deadline(10, clock)
    assert budget.sooner(None) is budget and budget.sooner(30) is budget
    assert budget.sooner(3).at == 3 and Deadline(None, clock).sooner(3).seconds == 3


def test_a_watched_computation_is_killed_past_the_deadline() -> None:
    deadline = Deadline(0)  # past from the start: the first progress report asks libvips to stop
    with pytest.raises(pyvips.Error, match="killed"):
        deadline.watch(long_computation()).jpegsave_buffer()
    assert deadline.killed
    with pytest.raises(pyvips.Error, match="killed"):
        Deadline(0).copy_memory(long_computation())


def test_watching_never_reaches_an_image_the_operation_cache_shares() -> None:
    # libvips caches operations: the same operation on the same input hands back the same image. A
    # progress handler on that image (the old approach) killed the next render that reused it.
    shared = testing.gradient(2000, 2000).copy_memory()
    first = shared.invert()
    with pytest.raises(pyvips.Error):
        Deadline(0).watch(first).pngsave_buffer()
    again = shared.invert()
    assert again.pointer == first.pointer  # the cached image, handed out again
    del first
    assert testing.decode(again.pngsave_buffer()).width == 2000

"""The engine's memory policy (engine/memory.py): few arenas, no libvips operation cache, and a trim
only when a process is well over its resting size, at most once a second."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import memory


class FakeLibc:
    def __init__(self) -> None:
        self.trims = 0

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch):
    """A fake libc counting trims, a resident size the test sets, a clock it moves, no timers."""
    libc, resident, clock, timers = FakeLibc(), [500 * 2**20], [1000.0], []

    class Timer:
        def __init__(self, wait, call):
            self.wait, self.call, self.daemon = wait, call, False
            timers.append(self)

        def start(self):
            pass

    monkeypatch.setattr(memory, "_LIBC", libc)
    monkeypatch.setattr(memory, "_rested", 100 * 2**20)  # the size at start
    monkeypatch.setattr(memory, "_trimmed_at", -float("inf"))
    monkeypatch.setattr(memory, "_later", None)
    monkeypatch.setattr(memory, "resident_bytes", lambda: resident[0])
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(memory.threading, "Timer", Timer)
    return libc, resident, clock, timers


def test_release_trims_only_when_the_process_is_well_over_its_resting_size(trims) -> None:
    libc, resident, clock, _ = trims
    resident[0] = 100 * 2**20 + memory.TRIM_ABOVE - 1
    memory.release()  # small renders: no trim, the next one would fault the pages in again
    assert libc.trims == 0
    resident[0] += 1
    memory.release()
    assert libc.trims == 1


def test_a_trim_made_while_memory_was_in_use_does_not_raise_the_bar(trims) -> None:
    libc, resident, clock, _ = trims
    resident[0] = 300 * 2**20  # an upload's check, its buffers still referenced: trimmed to 300
    memory.release()
    assert libc.trims == 1 and memory._rested == 100 * 2**20
    clock[0] += memory.TRIM_INTERVAL
    resident[0] = 230 * 2**20  # its eager job leaves 130 MB over the resting size
    memory.release()
    assert libc.trims == 2


def test_a_release_within_the_interval_trims_at_its_end(trims) -> None:
    libc, resident, clock, timers = trims
    resident[0] = 300 * 2**20
    memory.release()
    clock[0] += memory.TRIM_INTERVAL / 4
    memory.release()  # too soon: put off, not dropped
    memory.release()  # one timer is enough
    assert libc.trims == 1 and len(timers) == 1
    assert timers[0].daemon and timers[0].wait == pytest.approx(memory.TRIM_INTERVAL * 3 / 4)
    clock[0] += memory.TRIM_INTERVAL
    timers[0].call()
    assert libc.trims == 2 and memory._later is None


def test_the_engine_keeps_no_libvips_operations() -> None:
    assert pyvips.cache_get_max() == memory.VIPS_CACHED_OPERATIONS == 0


def test_the_resident_size_is_read() -> None:
    assert memory.resident_bytes() > 10 * 2**20

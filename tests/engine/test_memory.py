"""The engine's memory policy (engine/memory.py): few arenas, no libvips operation cache, and a trim
only when a process has grown since the last one."""
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


def test_release_trims_only_after_the_process_grew(monkeypatch: pytest.MonkeyPatch) -> None:
    libc, resident = FakeLibc(), [500 * 2**20]
    monkeypatch.setattr(memory, "_LIBC", libc)
    monkeypatch.setattr(memory, "_rested", None)
    monkeypatch.setattr(memory, "resident_bytes", lambda: resident[0])
    memory.release()  # the first call sets the resting level
    assert libc.trims == 1 and memory._rested == resident[0]
    resident[0] += memory.TRIM_ABOVE - 1
    memory.release()  # small renders: no trim, the next one would fault the pages in again
    assert libc.trims == 1
    resident[0] += 1
    memory.release()
    assert libc.trims == 2


def test_the_engine_keeps_no_libvips_operations() -> None:
    assert pyvips.cache_get_max() == memory.VIPS_CACHED_OPERATIONS == 0


def test_the_resident_size_is_read() -> None:
    assert memory.resident_bytes() > 10 * 2**20

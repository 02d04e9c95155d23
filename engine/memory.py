"""A process's memory after large images: few malloc arenas, no cached decoders, freed memory handed back.

libvips computes on a pool of threads, and glibc's malloc gives each thread that meets contention an
arena of its own (up to 8 per core), from which freed memory is rarely returned to the system: after
one 49-megapixel decode a process stayed 150-350 MB above its idle size, and every arena that once held
a large image kept its share. Measured on the hostile suite (docs/security.md, "Memory"), three
settings bring it back to within about 50 MB of idle and lower the peak by a quarter:

* :func:`limit_arenas` — at most :data:`ARENAS` arenas (``mallopt(M_ARENA_MAX)``, what the
  ``MALLOC_ARENA_MAX`` variable does, but settable after the process started: ``pixline serve``'s
  workers are forked, and glibc reads the variable only when a process starts).
* :func:`release` — ``malloc_trim(0)`` after a piece of work (an upload check, a render, a job) that
  left the process :data:`TRIM_ABOVE` larger than its resting size, at most once every
  :data:`TRIM_INTERVAL`: glibc returns the free pages of every arena, which ``free`` alone does for
  the main heap's top only. Not after every render: the next one would fault the pages in again
  (15-20% fewer 600 px renders a second when every render trimmed). The resting size is the smallest
  seen after a trim or once the process is set up (:func:`settle`). Measured from the last trim
  instead, a trim made while an upload's buffers were still in use set the bar so high that the
  140 MB its eager job left stayed for good (an 18 MP upload: 230 MB resident afterwards, now 85).
* :func:`limit_vips_cache` — no libvips operation cache. A cached load keeps its decoder, and the
  cache counts only libvips' own allocations, not libjpeg's: a 49 MP progressive JPEG's coefficients
  (145 MB) stayed behind every upload check. A server renders distinct images, so the cache hardly
  ever hits anyway.

jemalloc did as well only with its decay tuned and loaded through ``LD_PRELOAD`` before the process
starts; these calls need nothing installed. Elsewhere than glibc both do nothing.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import math
import os
import threading
import time

log = logging.getLogger(__name__)

#: Arenas per process: libvips' threads mostly allocate large pixel buffers (the contention a
#: per-thread arena avoids is for small allocations), and each arena keeps what it once held.
ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h
M_MMAP_THRESHOLD = -3  # glibc's malloc.h
#: libvips operations kept for reuse (libvips' default: 100).
VIPS_CACHED_OPERATIONS = 0


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()
_trim_lock = threading.Lock()
#: Growth of the resident size over its resting size that makes :func:`release` trim.
TRIM_ABOVE = 64 * 1024 * 1024
#: Seconds between two trims at least: under load the process stays large, and a trim after every
#: render would cost more than it returns.
TRIM_INTERVAL = 1.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_rested = 0  # the smallest resident size seen right after a trim, or once set up (settle() below)
_trimmed_at = -math.inf  # time.monotonic() of the last trim
_later: threading.Timer | None = None  # a trim put off by TRIM_INTERVAL

def resident_bytes() -> int:
    """This process's resident set size (0 where ``/proc`` is not there)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def limit_arenas(count: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``count``; True when it took effect.

    It must run before other threads have asked for arenas of their own: a process calls it first
    thing (the engine does at import), as ``MALLOC_ARENA_MAX`` would.
    """
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, count))


def limit_vips_cache(operations: int = VIPS_CACHED_OPERATIONS) -> None:
    """Keep at most ``operations`` libvips operations (and their images) cached."""
    import pyvips  # after limit_arenas: importing pyvips starts libvips

    pyvips.cache_set_max(operations)


def return_large_buffers(threshold: int = 1 << 20) -> None:
    """Give every buffer over ``threshold`` bytes its own mapping, returned to the system when freed.

    glibc raises its mmap threshold each time a large block is freed, so after one 18 MP decode its
    multi-megabyte buffers come from the heap and stay there: after two 18 MP uploads and 40
    renders a process held 195 MB, with a fixed 1 MiB threshold 90 MB. An explicit
    ``MALLOC_MMAP_THRESHOLD_`` tunable wins.
    """
    if _LIBC is not None and not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        _LIBC.mallopt(M_MMAP_THRESHOLD, threshold)


def release() -> None:
    """Hand the free memory of every malloc arena back to the system (``malloc_trim(0)``) when the
    process is :data:`TRIM_ABOVE` larger than its resting size.

    Call it after work that may have held large images, once they are dropped. At most one trim
    every :data:`TRIM_INTERVAL`: a call within it asks for one at its end instead (a daemon timer),
    so the last piece of work before a quiet spell is trimmed after too. Concurrent callers do not
    queue up behind it (one trim at a time is enough).
    """
    global _rested, _trimmed_at, _later
    if _LIBC is None or not _trim_lock.acquire(blocking=False):
        return
    try:
        if resident_bytes() < _rested + TRIM_ABOVE:
            return
        wait = _trimmed_at + TRIM_INTERVAL - time.monotonic()
        if wait > 0:
            if _later is None:
                _later = threading.Timer(wait, _release_later)
                _later.daemon = True
                _later.start()
            return
        # A render's images can sit in reference cycles (a watched image's progress callback holds
        # its deadline): collect them first, or their memory is still in use when trimmed.
        gc.collect()
        _LIBC.malloc_trim(0)
        _trimmed_at = time.monotonic()
        _rested = min(_rested, resident_bytes())
    finally:
        _trim_lock.release()


def settle() -> None:
    """Take the process's size now as its resting size: call it once set up, before any image (a
    process that renders calls it after loading its plugins and recipes)."""
    global _rested
    _rested = resident_bytes()


def _release_later() -> None:
    global _later
    _later = None
    release()


# Until settle() is called, the size of the process when the engine was imported.
settle()

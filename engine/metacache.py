"""Images' metadata kept in one process's memory, for a bounded time.

An image's metadata never changes (its id is a hash of its bytes), so the hit path of a CDN origin
reads it once rather than once per request. Only a delete removes it, and a delete made through
another process is not seen here: each entry is trusted for ``ttl`` seconds, then read again, so a
process stops serving a deleted image at most ``ttl`` seconds after the delete
(docs/security.md, "A delete racing renders"; ``--meta-cache-ttl``).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

#: Images whose metadata one process keeps (a few hundred bytes each).
META_CACHE_SIZE = 10_000
#: Seconds an entry is trusted by default (``--meta-cache-ttl``).
META_CACHE_TTL = 5.0


class MetaCache:
    """A thread-safe LRU of image id → metadata, each entry trusted for ``ttl`` seconds (0: never kept)."""

    def __init__(self, ttl: float = META_CACHE_TTL, size: int = META_CACHE_SIZE) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, image_id: str) -> dict[str, Any] | None:
        """The metadata kept for ``image_id`` if it was read less than ``ttl`` seconds ago."""
        with self._lock:
            entry = self._entries.get(image_id)
            if entry is None:
                return None
            if time.monotonic() - entry[1] >= self.ttl:
                del self._entries[image_id]
                return None
            self._entries.move_to_end(image_id)
            return entry[0]

    def put(self, image_id: str, meta: dict[str, Any]) -> None:
        """Keep ``meta``, just read from the store, for ``ttl`` seconds."""
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[image_id] = (meta, time.monotonic())
            self._entries.move_to_end(image_id)
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, image_id: str) -> None:
        """Drop ``image_id``: it was written or deleted here, or found gone at serve time."""
        with self._lock:
            self._entries.pop(image_id, None)

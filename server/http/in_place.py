"""Originals served where they are: ``GET /r/<recipe>/<key>`` for a key of the ``--source`` library.

docs/architecture.md, "A recipe URL for a source key". A key (anything in that place of the URL
that is not a 32-hex image id) is held to the library's character set (``check_source_key``), then
named by an image id made of the key and its version (``library.source_id``: ETag and size). The
first request for a version reads the object once, puts it through every check an upload gets
(``ingest_original``, in a render slot, one request per version: the others wait as for a render)
and records its meta and reduced copies in pixline's store, never the original, which stays in the
library; from then on it is an image like any other. pixline never writes to the library, and
never lists it: an unknown key is one failed stat, 404.

A changed object is a new version, so a new id: derivatives of the old one are never served for it.
The key's version is asked again once ``--source-recheck`` seconds have passed since it was last
asked (0: on every request), and at once when a render finds the library's bytes changed
(``SourceChangedError``).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

from pixline.engine.derivatives import Derivatives
from pixline.engine.library import check_source_key, source_id
from pixline.engine.storage import ID_RE

from ..settings import Settings
from .ingest import ingest_original
from .render_slots import RenderSlots
from .singleflight import SingleFlight

#: Keys whose current image a process remembers (an LRU).
KEYS_KEPT = 10_000


class InPlaceImages:
    """Resolves library keys to image ids, recording a new version's image on first use."""

    def __init__(self, derivatives: Derivatives, settings: Settings, slots: RenderSlots) -> None:
        self.derivatives = derivatives
        self.settings = settings
        self.slots = slots
        self.recheck = settings.source_recheck
        self._flights: SingleFlight[str] = SingleFlight(slots)
        self._known: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.derivatives.library is not None

    def image_id(self, given: str) -> str:
        """The image id ``given`` names: itself when it is an id, else the current image of that
        library key (404 when the library has no such key; 400 for a key that is not valid)."""
        if ID_RE.fullmatch(given) or not self.enabled:
            return given  # an id; without a library, whatever it is the caller checks as an id
        key = check_source_key(given)
        now = time.monotonic()
        with self._lock:
            known = self._known.get(key)
            if known and now - known[1] < self.recheck:
                self._known.move_to_end(key)
                return known[0]
        image_id = self._current(key)
        with self._lock:
            self._known[key] = (image_id, now)
            self._known.move_to_end(key)
            while len(self._known) > KEYS_KEPT:
                self._known.popitem(last=False)
        return image_id

    def forget(self, given: str) -> None:
        """Ask the library again next time (a render found the object changed)."""
        with self._lock:
            self._known.pop(given, None)

    def _current(self, key: str) -> str:
        library, store = self.derivatives.library, self.derivatives.store
        assert library is not None
        image_id = source_id(key, library.stat(key))  # NotFoundError: 404, the library unlisted
        if store.has_image(image_id):
            return image_id
        recorded, _ = self._flights.do(f"source:{image_id}", lambda: self._record(key))
        return recorded

    def _record(self, key: str) -> str:
        library = self.derivatives.library
        assert library is not None
        data, version = library.read(key, self.derivatives.limits.max_bytes)
        image_id = source_id(key, version)  # the version read, should it have changed since the stat
        place = {"key": key, **version.as_dict()}
        ingest_original(self.derivatives, self.settings, data, {}, self.slots.slot(), image_id=image_id,
                        keep_original=False, extra_meta={"source_key": key, "in_place": place})
        return image_id

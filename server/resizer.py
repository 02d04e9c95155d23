"""The resizer: a derivative from the store if it is there, else rendered once and stored.

Requests for a stored derivative never touch the render slots, so a burst of renders cannot block
them. A missing derivative is rendered by one request while concurrent requests for the same key
wait for it (:class:`~pixline.server.singleflight.SingleFlight`), and renders take one of a bounded
number of slots (:class:`~pixline.server.render_slots.RenderSlots`). The render itself is the engine's
``Derivatives.render``, the same code path the queue worker uses.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

from pixline.engine.derivatives import Derivatives, Location
from pixline.engine.errors import NotFoundError
from pixline.engine.recipe import Recipe

from .errors import SaturatedError
from .metrics import Metrics
from .render_slots import RenderSlots
from .singleflight import SingleFlight

log = logging.getLogger(__name__)


def etag(recipe: Recipe, image_id: str, location: Location) -> str:
    """A strong ETag: the recipe digest, the image id and the encoder name fix the output's bytes."""
    return f'"{recipe.digest}-{image_id}-{location.encoder.name}"'


@dataclass(frozen=True)
class Delivered:
    data: bytes
    rendered: bool  # True when this request (or one it waited for) rendered it


class Resizer:
    """Fetch-or-render for recipe and ad-hoc URLs."""

    def __init__(self, derivatives: Derivatives, slots: RenderSlots, metrics: Metrics,
                 time_limit: float | None = None) -> None:
        self.derivatives = derivatives
        self.time_limit = time_limit  # seconds a render may compute before libvips is told to stop
        self.store = derivatives.store
        self.slots = slots
        self.metrics = metrics
        self._flights: SingleFlight[bytes] = SingleFlight()

    def deliver(self, recipe: Recipe, image_id: str, meta: Mapping[str, Any], location: Location,
                accept: str | None, cache: bool = True) -> Delivered:
        """The bytes of ``recipe`` for an image: stored ones, or rendered (and stored if ``cache``)."""
        if cache:
            try:
                return Delivered(self.store.get(location.key), rendered=False)
            except NotFoundError:
                pass
        flight = location.key if cache else f"uncached:{location.key}"
        data, _ = self._flights.do(flight, lambda: self._render(recipe, image_id, meta, location,
                                                                accept, cache))
        return Delivered(data, rendered=True)

    def _render(self, recipe: Recipe, image_id: str, meta: Mapping[str, Any], location: Location,
                accept: str | None, cache: bool) -> bytes:
        try:
            with self.slots.slot():
                return self._render_in_slot(recipe, image_id, meta, location, accept, cache)
        except SaturatedError:
            self.metrics.renders_shed.inc()
            raise

    def _render_in_slot(self, recipe: Recipe, image_id: str, meta: Mapping[str, Any],
                        location: Location, accept: str | None, cache: bool) -> bytes:
        if cache:
            # Another process (a queue worker, another gunicorn worker) may have stored it while this
            # request waited for a slot: one GET is cheaper than a render.
            try:
                return self.store.get(location.key)
            except NotFoundError:
                pass
        self.metrics.renders_in_flight.inc()
        started = time.perf_counter()
        try:
            rendered = self.derivatives.render(recipe, image_id, meta, location, accept=accept,
                                               time_limit=self.time_limit, store=cache)
        finally:
            self.metrics.renders_in_flight.dec()
        self.metrics.render_seconds.labels(recipe.name).observe(time.perf_counter() - started)
        return rendered.data

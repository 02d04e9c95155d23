"""On-demand renders: a derivative from the store if it is there, else rendered once and stored.

Requests for a stored derivative never touch the render slots, so a burst of renders cannot block
them. A missing derivative is rendered by one request while concurrent requests for the same key
wait for it (:class:`~pixline.server.http.singleflight.SingleFlight`), and renders take one of a
bounded number of slots (:class:`~pixline.server.http.render_slots.RenderSlots`). Those waiting for
another's render are counted with those waiting for a slot and wait no longer than the leader may
take (:data:`STORE_SECONDS` more than its slot wait and ``--render-timeout``). Fetching, rendering
and storing are the engine's :class:`~pixline.engine.derivatives.Derivatives`, the code path the queue
uses too.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable

from pixline.engine.autoquality import Choice
from pixline.engine.derivatives import Derivative, Derivatives
from pixline.engine.errors import NotFoundError
from pixline.engine.memory import release

from .errors import SaturatedError
from .metrics import Metrics
from .render_slots import RenderSlots
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

#: Stored derivatives larger than this stream to the client (sendfile for a local file); smaller ones,
#: most of a CDN origin's hits, are read and sent in one piece, which bench/ measured cheaper under
#: gunicorn than its sendfile path (0.24 against 0.31 ms of CPU for a 12 KB hit).
STREAM_FROM_BYTES = 512 * 1024
#: Seconds a request waiting for another's render allows, beyond that render's slot wait and time
#: limit, for the store's reads and write around it (which ``--render-timeout`` does not cover).
STORE_SECONDS = 5.0


def read_exactly(stream: BinaryIO, length: int) -> bytes:
    """The ``length`` bytes of a stored object: one ``read`` for a local file (engine/storage.py
    opens it unbuffered), the loop only for a stream that returns less."""
    data = stream.read(length)
    while len(data) < length:
        more = stream.read(length - len(data))
        if not more:
            break
        data += more
    return data


def etag(derivative: Derivative) -> str:
    """A strong ETag: the recipe digest, the image id and the encoder name fix the output's bytes."""
    return f'"{derivative.recipe.digest}-{derivative.image_id}-{derivative.encoder.name}"'


@dataclass(frozen=True)
class Delivered:
    """A derivative for a response: rendered bytes, or a stream of the stored object (``length``
    bytes; the response closes it)."""

    data: bytes | None
    rendered: bool  # True when this request (or one it waited for) rendered it
    seconds: float = 0.0  # from asking to having the bytes (or the stream): the render, or the read
    stream: BinaryIO | None = None
    length: int = 0
    #: ``quality: auto``: what this render's search chose (``None`` for a stored one, or no search).
    choice: Choice | None = None

    @property
    def server_timing(self) -> str:
        """A ``Server-Timing`` header value: ``render;dur=…`` or ``store;dur=…`` (milliseconds).

        The page shows it beside each output; browsers' developer tools show it too.
        """
        return f"{'render' if self.rendered else 'store'};dur={self.seconds * 1000:.1f}"


class OnDemandRenderer:
    """Fetch-or-render for recipe and ad-hoc URLs."""

    def __init__(self, derivatives: Derivatives, slots: RenderSlots, metrics: Metrics,
                 time_limit: float | None = None) -> None:
        self.derivatives = derivatives
        self.time_limit = time_limit  # seconds a render may compute before it is stopped (503)
        self.slots = slots
        self.metrics = metrics
        # A follower waits as long as its leader may: its wait for a slot, its render, the store.
        follow = slots.timeout + time_limit + STORE_SECONDS if time_limit else None
        self._flights: SingleFlight[tuple[bytes, Choice | None]] = SingleFlight(slots, follow)

    def deliver(self, derivative: Derivative, cache: bool = True,
                before_render: Callable[[], None] | None = None) -> Delivered:
        """The bytes of ``derivative``: stored ones, or rendered (and stored if ``cache``).

        ``before_render`` is called when there is nothing stored, before a render slot is taken: the
        checks a stored derivative has passed already (its size limits), which a hit then skips.
        """
        started = time.perf_counter()
        if cache:
            try:
                stream, length = self.derivatives.open(derivative)
            except NotFoundError:
                pass
            else:
                if length > STREAM_FROM_BYTES:
                    return Delivered(None, rendered=False, seconds=time.perf_counter() - started,
                                     stream=stream, length=length)
                with stream:
                    data = read_exactly(stream, length)
                return Delivered(data, rendered=False, seconds=time.perf_counter() - started)
        if before_render is not None:
            before_render()
        flight = derivative.key if cache else f"uncached:{derivative.key}"
        try:
            (data, choice), _ = self._flights.do(flight, lambda: self._render(derivative, cache))
        except SaturatedError:  # no slot, no room to wait, or the render waited for ran out
            self.metrics.renders_shed.inc()
            raise
        return Delivered(data, rendered=True, seconds=time.perf_counter() - started, choice=choice)

    def _render(self, derivative: Derivative, cache: bool) -> tuple[bytes, Choice | None]:
        with self.slots.slot():
            return self._render_in_slot(derivative, cache)

    def _render_in_slot(self, derivative: Derivative, cache: bool) -> tuple[bytes, Choice | None]:
        if cache:
            # Another process (a queue worker, another gunicorn worker) may have stored it while this
            # request waited for a slot: one GET is cheaper than a render.
            try:
                return self.derivatives.fetch(derivative), None
            except NotFoundError:
                pass
        self.metrics.renders_in_flight.inc()
        started = time.perf_counter()
        try:
            rendered = self.derivatives.render(derivative, time_limit=self.time_limit, store=cache)
        finally:
            self.metrics.renders_in_flight.dec()
            release()  # the render's images are gone: hand their memory back (engine/memory.py)
        self.metrics.render_seconds.labels(derivative.recipe.name).observe(time.perf_counter() - started)
        if rendered.choice is not None and rendered.choice.fallback:
            self.metrics.auto_quality_fallbacks.inc()
        return rendered.data, rendered.choice

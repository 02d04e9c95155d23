"""What a job's end means for its image: the state of its presets recorded, and its events emitted.

The job handler (queue/handler.py ``run_job``) calls :meth:`JobEvents.done` when a job stored every
output it had to, and :meth:`JobEvents.dead` when it gives a job up, both before the queue acks the
job. Failed recipes are always recorded (``failures/<id>.json``, engine/presets.py: the page shows
them); events are emitted to the outbox (queue/event_outbox.py) only when destinations are set, and
delivered by queue/event_delivery.py on other threads: a job never waits for a receiver.
"""
from __future__ import annotations

import logging
from typing import Callable

from prometheus_client import Counter

from pixline.engine.derivatives import Derivatives
from pixline.engine.errors import NotFoundError
from pixline.engine.presets import FAILED, READY, clear_failures, preset_status, record_failures

from .event_outbox import EventOutbox
from .events import IMAGE_READY, Event, EventMaker
from .jobs import Job

log = logging.getLogger(__name__)

EVENTS_EMITTED = Counter("pixline_events_emitted", "Events kept in the outbox for delivery", ["type"])


class JobEvents:
    """The failed recipes of every job's image, and with an ``outbox`` its events.

    ``per_output``: a ``derivative.ready`` event for every eager output as it is stored; ``notify``:
    called after events were emitted (wakes this process's delivery loop).
    """

    def __init__(self, derivatives: Derivatives, outbox: EventOutbox | None = None,
                 maker: EventMaker | None = None, per_output: bool = False,
                 notify: Callable[[], None] | None = None) -> None:
        self.derivatives = derivatives
        self.store = derivatives.store
        self.outbox = outbox
        self.maker = maker
        self.per_output = per_output
        self.notify = notify

    def done(self, job: Job) -> None:
        """Every output of ``job`` is stored: its recipes' failures are forgotten, and the image's
        ``derivative.ready`` and (once every eager output is stored) ``image.ready`` events emitted.
        Raises when the store does not answer: the job is retried, and emits then."""
        clear_failures(self.store, job.image_id, job.recipes)
        if self.outbox is None or self.maker is None:
            return
        meta = self.store.get_meta(job.image_id)
        events: list[Event] = []
        # Each id is looked up before its event is made (which reads the outputs): a job of an
        # image already told about (a re-import, a redelivery) reads nothing more.
        if self.per_output:
            for target in self.maker.targets(job.image_id, meta, job.recipes):
                if self.outbox.emitted(self.maker.output_event_id(target)):
                    continue
                output = self.maker.output(target)
                if output is not None:
                    events.append(self.maker.derivative_ready(target, output))
        if (not self.outbox.emitted(self.maker.image_event_id(IMAGE_READY, job.image_id))
                and preset_status(self.derivatives, job.image_id, meta).state == READY):
            events.append(self.maker.image_ready(job.image_id, meta))
        self._emit(events)

    def dead(self, job: Job, failed: dict[str, str]) -> None:
        """``job`` is given up on: record its failed recipes (``{recipe: reason}``) and emit
        ``image.failed``. Never raises: the job is dead either way (a failure here is logged)."""
        try:
            meta = self.store.get_meta(job.image_id)
        except NotFoundError:
            return  # not an image (a poison job naming an unknown id): nothing to tell
        except Exception:
            log.exception("job for image %s: could not record its failed recipes", job.image_id)
            return
        try:
            recipes = self.derivatives.recipes
            record_failures(self.store, job.image_id, failed,
                            {name: recipes[name].digest for name in failed if name in recipes})
            if self.outbox is None or self.maker is None:
                return
            state = preset_status(self.derivatives, job.image_id, meta)
            if state.state == FAILED:
                self._emit([self.maker.image_failed(job.image_id, meta, state.failed())])
        except Exception:
            log.exception("job for image %s: could not record its failure or emit image.failed "
                          "(regenerate the image to try again)", job.image_id)

    def _emit(self, events: list[Event]) -> None:
        assert self.outbox is not None
        emitted = [event for event in events if self.outbox.emit(event)]
        for event in emitted:
            EVENTS_EMITTED.labels(event.type).inc()
            log.info("event %s %s for image %s kept for delivery", event.type, event.id,
                     event.data["image_id"])
        if emitted and self.notify is not None:
            self.notify()

"""Ready events: what pixline tells a site about its images (docs/architecture.md, "Event delivery").

::

    image.ready       every eager output of an image is stored
    image.failed      an eager recipe of the image failed for good (its job was dead-lettered)
    derivative.ready  one eager output is stored (with --events-derivatives)

The body is a published contract (fields are added, never changed)::

    {"type": "image.ready", "timestamp": "2026-12-07T13:40:00.123456Z",
     "data": {"image_id": "…", "source_key": "photos/a.jpg" (pixline import, else absent),
              "placeholders": {"blurhash": "…", "colour": "#2a3134", …} (when the image has any),
              "outputs": [{"recipe", "format", "url", "pinned_url", "width", "height", "bytes"}],
              "failed": [{"recipe", "reason"}] (image.failed only)}}

An event's id is derived from what it says: its type, the image id and every eager recipe's name and
digest (for ``derivative.ready`` the output's recipe, digest and format). The same image with the same
recipes always gives the same id, so a receiver de-duplicates by it, and pixline sends an id once
(event_outbox.py keeps ``events/sent/<id>``): a re-upload or re-import of a ready image sends nothing.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pyvips

from pixline.engine import analysis
from pixline.engine.derivatives import Derivative, Derivatives
from pixline.engine.errors import NotFoundError
from pixline.engine.links import Links

IMAGE_READY, IMAGE_FAILED, DERIVATIVE_READY = "image.ready", "image.failed", "derivative.ready"
TYPES = (IMAGE_READY, IMAGE_FAILED, DERIVATIVE_READY)


@dataclass(frozen=True)
class Event:
    """One event: its stable ``id`` and the body every destination gets."""

    id: str
    type: str
    timestamp: str
    data: dict[str, Any]

    @property
    def body(self) -> dict[str, Any]:
        return {"type": self.type, "timestamp": self.timestamp, "data": self.data}

    def to_bytes(self) -> bytes:
        """The body as sent: the same bytes at every attempt (a webhook signature covers them)."""
        return json.dumps(self.body, sort_keys=True, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.body}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> "Event":
        return cls(str(stored["id"]), str(stored["type"]), str(stored["timestamp"]), dict(stored["data"]))


def event_id(event_type: str, image_id: str, parts: Iterable[str]) -> str:
    """``evt_`` + 32 hex digits of SHA-256 over the type, the image id and ``parts`` (recipe@digest…)."""
    text = "\n".join([event_type, image_id, *sorted(parts)])
    return "evt_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class EventMaker:
    """Builds the events of stored images: their outputs' URLs, sizes and bytes, read from the store."""

    def __init__(self, derivatives: Derivatives, links: Links) -> None:
        self.derivatives = derivatives
        self.links = links

    def _recipe_parts(self) -> list[str]:
        recipes = self.derivatives.recipes
        return [f"{name}@{recipes[name].digest}" for name in self.derivatives.eager_recipes]

    def _data(self, image_id: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"image_id": image_id}
        if meta.get("source_key"):
            data["source_key"] = meta["source_key"]
        # What the site's page shows until the outputs load, so it needs no GET /images/{id}: read
        # from meta, made once at upload (engine/analysis.py); absent rather than {} when none.
        placeholders = analysis.placeholders(meta)
        if placeholders:
            data["placeholders"] = placeholders
        return data

    def targets(self, image_id: str, meta: Mapping[str, Any],
                recipes: Iterable[str] | None = None) -> list[Derivative]:
        """Every output of the eager ``recipes`` (default: all of them), in recipe order."""
        names = self.derivatives.eager_recipes if recipes is None else sorted(recipes)
        return [target for name in names if name in self.derivatives.recipes
                for target in self.derivatives.targets(self.derivatives.recipes[name], image_id, meta)]

    def output(self, target: Derivative) -> dict[str, Any] | None:
        """One stored output as an event lists it; ``None`` when it is not stored."""
        try:
            data = self.derivatives.fetch(target)
        except NotFoundError:
            return None
        name, image_id = target.recipe.name, target.image_id
        width, height = _size(data)
        return {"recipe": name, "format": target.encoder.name, "url": self.links.recipe(name, image_id),
                "pinned_url": self.links.pinned(name, target.recipe.digest, image_id),
                "width": width, "height": height, "bytes": len(data)}

    def image_event_id(self, event_type: str, image_id: str) -> str:
        """The id of the image's ``image.ready`` or ``image.failed``, known before it is made."""
        return event_id(event_type, image_id, self._recipe_parts())

    def output_event_id(self, target: Derivative) -> str:
        """The id of one output's ``derivative.ready``."""
        parts = [f"{target.recipe.name}@{target.recipe.digest}", target.encoder.name]
        return event_id(DERIVATIVE_READY, target.image_id, parts)

    def image_ready(self, image_id: str, meta: Mapping[str, Any]) -> Event:
        outputs = [out for out in map(self.output, self.targets(image_id, meta)) if out is not None]
        return Event(self.image_event_id(IMAGE_READY, image_id), IMAGE_READY, now_iso(),
                     {**self._data(image_id, meta), "outputs": outputs})

    def image_failed(self, image_id: str, meta: Mapping[str, Any], failed: Mapping[str, str]) -> Event:
        outputs = [out for out in map(self.output, self.targets(image_id, meta)) if out is not None]
        return Event(self.image_event_id(IMAGE_FAILED, image_id), IMAGE_FAILED, now_iso(),
                     {**self._data(image_id, meta), "outputs": outputs,
                      "failed": [{"recipe": name, "reason": reason} for name, reason in sorted(failed.items())]})

    def derivative_ready(self, target: Derivative, output: Mapping[str, Any]) -> Event:
        return Event(self.output_event_id(target), DERIVATIVE_READY, now_iso(),
                     {**self._data(target.image_id, target.meta), "outputs": [dict(output)]})


def _size(data: bytes) -> tuple[int, int]:
    """An encoded output's width and height (a frame's, for an animation), from its header."""
    image = pyvips.Image.new_from_buffer(data, "")
    height = image.get("page-height") if image.get_typeof("page-height") else image.height
    return image.width, int(height)

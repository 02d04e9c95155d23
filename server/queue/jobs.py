"""Render jobs: the message an upload hands to the queue, and the interface of a publisher.

This module is all the HTTP side knows of the queue (docs/architecture.md, "Layout").

A job asks for the eager recipes of one stored image to be rendered ahead of the first request.
Publishing is best-effort from the upload's point of view: the original is already safe and recipe
URLs render on demand, so a failed publish is logged and counted, never an upload error.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from pixline.engine.errors import ParameterError
from pixline.engine.storage import check_id

MESSAGE_VERSION = 1
#: Where jobs the broker has not confirmed wait in the store (queue/outbox.py).
OUTBOX_PREFIX = "outbox/"


def outbox_key(image_id: str) -> str:
    """The outbox entry of an image's upload job (a DELETE removes it with the image)."""
    return f"{OUTBOX_PREFIX}{check_id(image_id)}.json"


@dataclass(frozen=True)
class Job:
    """``{version, image_id, recipes, attempt, force}`` as JSON on the wire.

    ``attempt`` counts transient failures so far; ``force`` re-renders outputs that are already
    stored (``pixline regenerate --force``). Readers ignore fields they do not know.
    """

    image_id: str
    recipes: tuple[str, ...]
    attempt: int = 0
    version: int = field(default=MESSAGE_VERSION)
    force: bool = False

    def next_attempt(self) -> "Job":
        """This job as it is sent again after a transient failure."""
        return replace(self, attempt=self.attempt + 1)

    def to_json(self) -> bytes:
        body = asdict(self)
        body["recipes"] = list(self.recipes)
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Job":
        """Parse a message; a malformed one raises :class:`ParameterError` (a poison message)."""
        try:
            body = json.loads(data)
            if body.get("version") != MESSAGE_VERSION:
                raise ValueError(f"unsupported message version {body.get('version')!r}")
            recipes = body["recipes"]
            if not isinstance(recipes, list) or not all(isinstance(r, str) for r in recipes):
                raise ValueError("recipes must be a list of names")
            attempt = int(body.get("attempt", 0))
            if attempt < 0:
                raise ValueError(f"attempt {attempt} is negative")
            return cls(image_id=str(body["image_id"]), recipes=tuple(recipes), attempt=attempt,
                       force=bool(body.get("force", False)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ParameterError(f"malformed job message: {exc}") from None


class JobPublisher(Protocol):
    """Where the server hands jobs: RabbitMQ, or the in-process queue of ``pixline serve``."""

    def publish(self, job: Job) -> None:
        """Queue ``job``; raise on failure (the caller logs and counts it, the upload still succeeds)."""

    def close(self) -> None:
        """Release connections and threads; finish or hand back queued work."""

"""Render jobs: the message an upload hands to the queue, and the interface of a publisher.

A job asks for the eager recipes of one stored image to be rendered ahead of the first request.
Publishing is best-effort from the upload's point of view: the original is already safe and recipe
URLs render on demand, so a failed publish is logged and counted, never an upload error.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Collection, Protocol

from pixline.engine.errors import ParameterError

if TYPE_CHECKING:
    from pixline.engine.derivatives import Derivatives

    from .settings import Settings

MESSAGE_VERSION = 1


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


def make_publisher(settings: "Settings", derivatives: "Derivatives") -> JobPublisher:
    """The publisher of a ``pixline serve`` worker process: RabbitMQ when ``settings.amqp`` is set,
    else an in-process queue whose threads render with the same job handler as ``pixline worker``.

    Call it after gunicorn forks: connections and threads do not survive a fork.
    """
    if settings.amqp:
        from .amqp import AmqpJobPublisher

        return AmqpJobPublisher(settings)
    from .embedded_queue import EmbeddedJobQueue

    return EmbeddedJobQueue.from_settings(settings, derivatives)


def eager_status(derivatives: "Derivatives", image_id: str, meta: dict[str, Any],
                 stored_keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per eager recipe, whether its output for the recipe's current digest is stored.

    ``{"thumb": {"stored": true, "key": "derived/thumb/<digest>/<id>.jpg", "digest": ...}}``; a
    recipe whose format follows Accept also lists each format's object under ``"formats"`` and is
    ``stored`` only when all of them are. ``stored_keys``, when the caller has listed them already,
    saves one existence check per key.
    """
    from .worker import JobHandler

    handler = JobHandler(derivatives)
    status: dict[str, dict[str, Any]] = {}
    for name, recipe in sorted(derivatives.recipes.items()):
        if not recipe.eager:
            continue
        targets = handler.targets(recipe, image_id, meta)
        stored = {t.location.key: (t.location.key in stored_keys if stored_keys is not None
                                   else derivatives.store.exists(t.location.key)) for t in targets}
        entry: dict[str, Any] = {"stored": all(stored.values()), "key": targets[0].location.key,
                                 "digest": recipe.digest}
        if len(targets) > 1:
            entry["formats"] = {t.location.encoder.name: stored[t.location.key] for t in targets}
        status[name] = entry
    return status

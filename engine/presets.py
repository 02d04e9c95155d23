"""The state of an image's presets (its eager recipes): per recipe ``ready`` (every output stored),
``failed`` (the queue gave up on it) or ``pending``; the image's, from them.

Not the readiness of a process (``/readyz``, server/http/readiness.py): this is about one image.

Two things in the store decide it: the outputs stored (:meth:`Derivatives.eager_status`) and the
recipes the queue gave up on, ``failures/<id>.json`` (``{recipe: {digest, reason}}``), written by the
job handler before it hands a dead job back (server/queue/ready.py). A failure counts only for the
digest it was recorded at: a changed recipe is pending again. ``GET /images/{id}`` (the page) and the
ready events read it here, so they never disagree (docs/architecture.md, "Event delivery").
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Collection, Mapping

from .derivatives import Derivatives
from .errors import NotFoundError
from .storage import Store

PENDING, READY, FAILED = "pending", "ready", "failed"


def read_failures(store: Store, image_id: str) -> dict[str, dict[str, str]]:
    """The recipes the queue gave up on for an image: ``{recipe: {digest, reason}}`` (none: ``{}``)."""
    try:
        recorded = json.loads(store.get(store.failures_key(image_id)))
    except NotFoundError:
        return {}
    return recorded if isinstance(recorded, dict) else {}


def record_failures(store: Store, image_id: str, failed: Mapping[str, str],
                    digests: Mapping[str, str]) -> None:
    """Add ``failed`` (``{recipe: reason}``) at each recipe's ``digests`` to the image's failures.

    Read, merged and written whole: two jobs of one image failing at the same moment may keep only
    one's recipes, which the next job of the image (or ``pixline regenerate``) records again.
    """
    recorded = read_failures(store, image_id)
    recorded.update({name: {"digest": digests[name], "reason": reason[:1000]}
                     for name, reason in failed.items() if name in digests})
    store.put(store.failures_key(image_id), json.dumps(recorded, sort_keys=True).encode())


def clear_failures(store: Store, image_id: str, recipes: Collection[str]) -> None:
    """Forget the failures of ``recipes`` (they rendered after all, e.g. after a regenerate)."""
    recorded = read_failures(store, image_id)
    if not recorded.keys() & set(recipes):
        return
    kept = {name: entry for name, entry in recorded.items() if name not in recipes}
    if kept:
        store.put(store.failures_key(image_id), json.dumps(kept, sort_keys=True).encode())
    else:
        store.delete(store.failures_key(image_id))


@dataclass(frozen=True)
class PresetStatus:
    """Per eager recipe ``{"state": pending|ready|failed[, "reason": why]}``, and the image's state:
    ``failed`` when any recipe failed, ``ready`` when every one is, else ``pending``."""

    recipes: dict[str, dict[str, Any]]

    @property
    def state(self) -> str:
        states = {entry["state"] for entry in self.recipes.values()}
        if FAILED in states:
            return FAILED
        return READY if states <= {READY} else PENDING

    def failed(self) -> dict[str, str]:
        """``{recipe: reason}`` of the failed recipes."""
        return {name: entry["reason"] for name, entry in self.recipes.items() if entry["state"] == FAILED}


def preset_status(derivatives: Derivatives, image_id: str, meta: Mapping[str, Any],
              stored_keys: Collection[str] | None = None) -> PresetStatus:
    """The state of the image's presets now; ``stored_keys`` (its derivative index, when the caller listed it)
    saves one existence check per output."""
    failures = read_failures(derivatives.store, image_id)
    recipes: dict[str, dict[str, Any]] = {}
    for name, status in derivatives.eager_status(image_id, meta, stored_keys).items():
        failure = failures.get(name)
        if status["stored"]:
            recipes[name] = {"state": READY}
        elif failure is not None and failure.get("digest") == status["digest"]:
            recipes[name] = {"state": FAILED, "reason": str(failure.get("reason", ""))}
        else:
            recipes[name] = {"state": PENDING}
    return PresetStatus(recipes)

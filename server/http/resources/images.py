"""``POST /images`` (upload), ``GET /images/{id}`` (metadata and derivatives), ``DELETE /images/{id}``.

An upload is idempotent: the id is derived from the bytes, so a second upload of the same bytes
answers ``200`` with the same body as the first ``201`` (metadata and owner fields of the first
upload are kept, and no job is queued again).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import falcon

from pixline.engine.derivatives import Derivatives
from pixline.engine.errors import NotFoundError
from pixline.engine.source import content_id
from pixline.engine.storage import check_id

from ...queue.jobs import Job, JobPublisher
from ...settings import Settings
from ..auth import require_bearer
from ..metrics import Metrics
from ..render_slots import RenderSlots
from ..upload import inspect_image, original_meta, read_upload

log = logging.getLogger(__name__)

UPLOAD_KEYS = ("id", "format", "width", "height", "bytes")


class Links:
    """URLs in response bodies: relative, or under ``settings.public_url`` (e.g. the CDN's origin)."""

    def __init__(self, public_url: str) -> None:
        self.prefix = public_url.rstrip("/")

    def recipe(self, name: str, image_id: str) -> str:
        return f"{self.prefix}/r/{name}/{image_id}"

    def image(self, image_id: str) -> str:
        return f"{self.prefix}/images/{image_id}"

    def recipes(self, derivatives: Derivatives, image_id: str) -> dict[str, str]:
        return {name: self.recipe(name, image_id) for name in sorted(derivatives.recipes)}


class ImageCollection:
    """``POST /images``: store an original, queue its eager recipes, answer with its recipe URLs."""

    def __init__(self, derivatives: Derivatives, settings: Settings, publisher: JobPublisher | None,
                 slots: RenderSlots, metrics: Metrics) -> None:
        self.derivatives = derivatives
        self.store = derivatives.store
        self.settings = settings
        self.publisher = publisher
        self.slots = slots
        self.metrics = metrics
        self.links = Links(settings.public_url)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_bearer(req, self.settings.upload_token)
        limits = self.derivatives.limits
        upload = read_upload(req, limits.max_bytes)
        image_id = content_id(upload.data)
        if self.store.has_image(image_id):
            meta = self.store.get_meta(image_id)
            resp.status = falcon.HTTP_200
        else:
            # Decoding the check thumbnail is CPU work like a render: it takes a render slot.
            with self.slots.slot():
                described, copy = inspect_image(upload.data, limits, self.settings.reduced_size)
            meta = original_meta(image_id, described, upload.fields)
            self.store.put_original(image_id, upload.data, meta, reduced=copy)
            log.info("stored original %s (%s %dx%d, %d bytes)", image_id, meta["format"],
                     meta["width"], meta["height"], meta["bytes"])
            self._publish(image_id)
            resp.status = falcon.HTTP_201
        resp.location = self.links.image(image_id)
        resp.cache_control = ["no-store"]
        resp.media = {**{k: meta[k] for k in UPLOAD_KEYS},
                      "urls": self.links.recipes(self.derivatives, image_id)}

    def _publish(self, image_id: str) -> None:
        eager = self.derivatives.eager_recipes
        if not eager or self.publisher is None:
            return
        try:
            self.publisher.publish(Job(image_id, eager))
        except Exception:  # any failure: the original is stored and recipe URLs render on demand
            self.metrics.publish_failures.inc()
            log.exception("could not queue eager recipes %s for %s; they will render on first request",
                          ", ".join(eager), image_id)


class ImageItem:
    """``GET /images/{id}``: metadata and derivatives; ``DELETE``: the original and everything made of it.

    ``GET`` answers the stored metadata (id, format, width, height, bytes, has_alpha, frames, fields,
    uploaded_at) plus ``urls`` {recipe: url} and ``derivatives`` {recipe: {url, eager, digest, stored,
    formats[, complete]}}: which formats are stored for each recipe's current digest, and for eager
    recipes whether every format the queue renders is (``complete``).
    """

    def __init__(self, derivatives: Derivatives, settings: Settings) -> None:
        self.derivatives = derivatives
        self.store = derivatives.store
        self.settings = settings
        self.links = Links(settings.public_url)

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        check_id(image_id)
        meta = self.store.get_meta(image_id)
        resp.cache_control = ["no-cache"]
        self.store.invalidate()  # another process may have stored derivatives since s3fs listed them
        stored = set(self.store.derived_keys(image_id))
        resp.media = {**meta, "urls": self.links.recipes(self.derivatives, image_id),
                      "derivatives": self._derivatives(image_id, meta, stored)}

    def _derivatives(self, image_id: str, meta: dict[str, Any],
                     stored: set[str]) -> dict[str, dict[str, Any]]:
        """Per recipe: its URL, whether it is eager, which formats are stored for its current digest,
        and for eager recipes whether everything the queue renders is there (``complete``)."""
        eager = self.derivatives.eager_status(image_id, meta, stored)
        encoders: Mapping = self.derivatives.registry.encoders
        out: dict[str, dict[str, Any]] = {}
        for name, recipe in sorted(self.derivatives.recipes.items()):
            formats = sorted(enc.name for enc in encoders.values()
                             if self.store.derived_key(name, recipe.digest, image_id, enc.extension) in stored)
            out[name] = {"url": self.links.recipe(name, image_id), "eager": recipe.eager,
                         "digest": recipe.digest, "stored": bool(formats), "formats": formats}
            if name in eager:
                out[name]["complete"] = eager[name]["stored"]
        return out

    def on_delete(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        require_bearer(req, self.settings.upload_token)
        check_id(image_id)
        if not (self.store.has_image(image_id) or self.store.exists(self.store.original_key(image_id))):
            raise NotFoundError(f"image {image_id} not found")
        removed = self.store.delete_image(image_id)
        self.store.invalidate()
        log.info("deleted image %s (%d objects)", image_id, removed)
        resp.status = falcon.HTTP_204

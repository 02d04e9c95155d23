"""``POST /images`` (upload), ``GET /images`` (recent uploads, newest first, paged),
``GET /images/{id}`` (metadata and derivatives), ``DELETE /images/{id}``.

An upload is idempotent: the id is derived from the bytes, so a second upload of the same bytes
answers ``200`` with the same body as the first ``201`` (metadata and owner fields of the first
upload are kept, and no job is queued again).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import falcon

from pixline.engine import analysis
from pixline.engine.derivatives import Derivatives
from pixline.engine.errors import NotFoundError
from pixline.engine.library import SourceRecord, check_recorded_key
from pixline.engine.links import Links
from pixline.engine.presets import PresetStatus, preset_status
from pixline.engine.storage import check_id, check_recent_entry

from ...queue.jobs import Job, JobPublisher, outbox_key
from ...settings import Settings
from ..auth import require_bearer
from ..metrics import Metrics
from ..render_slots import RenderSlots
from ..request_log import note
from ..ingest import ingest_original
from ..upload import read_upload

log = logging.getLogger(__name__)

UPLOAD_KEYS = ("id", "format", "width", "height", "bytes")
#: What ``GET /images/{id}`` tells anybody when an upload token is set: what the image's public
#: ``/r/`` URLs show anyway. The rest of its meta (the uploader's ``fields``, ``uploaded_at``, the
#: reduced copies, and any key added later) only with the token (docs/security.md, "What is public").
PUBLIC_META = (*UPLOAD_KEYS, "has_alpha", "frames")
GALLERY_PAGE = 24
GALLERY_MAX_PAGE = 100


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
        ingested = ingest_original(self.derivatives, self.settings, upload.data, upload.fields,
                                   self.slots.slot())
        image_id, meta = ingested.image_id, ingested.meta
        note(req, image_id=image_id)
        if ingested.created:
            log.info("stored original %s (%s %dx%d, %d bytes)", image_id, meta["format"],
                     meta["width"], meta["height"], meta["bytes"])
            self._publish(image_id)
            resp.status = falcon.HTTP_201
        else:
            resp.status = falcon.HTTP_200
        resp.location = self.links.image(image_id)
        resp.cache_control = ["no-store"]
        resp.media = {**{k: meta[k] for k in UPLOAD_KEYS}, **analysed(meta),
                      "urls": self.links.recipes(self.derivatives, image_id),
                      "pinned_urls": self.links.pinned_recipes(self.derivatives, image_id)}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Recent uploads, newest first: ``?limit=N`` (1-100, default 24), ``?after=<next>`` pages on;
        ``?source_key=K``: the image a library key (or a URL of a file of URLs) became in
        ``pixline import`` (none or one).

        Answers ``{"images": [{id, format, width, height, bytes, uploaded_at, fields, placeholders,
        url, urls}],
        "next": <cursor or null>}``. It lists the uploads, so it takes the upload token too.
        """
        require_bearer(req, self.settings.upload_token)
        limit = req.get_param_as_int("limit", min_value=1, max_value=GALLERY_MAX_PAGE) or GALLERY_PAGE
        after = check_recent_entry(req.get_param("after"))
        source_key = req.get_param("source_key")
        if source_key is not None:  # one image, or none: limit and after (still checked) do not apply
            resp.cache_control = ["no-store"]
            resp.media = {"images": self._by_source_key(source_key), "next": None}
            return
        entries = self.store.recent_entries(limit + 1, after)
        more, entries = len(entries) > limit, entries[:limit]
        images = []
        for entry in entries:
            image_id = entry.partition("-")[2]
            try:
                meta = self.store.get_meta(image_id)
            except NotFoundError:
                continue  # deleted between the listing and now
            uploaded_at = meta.get("uploaded_at")
            if not uploaded_at or self.store.recent_key(image_id, uploaded_at) != f"recent/{entry}":
                continue  # a second entry left by two processes storing the same bytes at once
            images.append(self._entry(image_id, meta))
        resp.cache_control = ["no-store"]
        resp.media = {"images": images, "next": entries[-1] if more else None}

    def _by_source_key(self, source_key: str) -> list[dict[str, Any]]:
        """The image a library key became (``pixline import``): one entry, or none."""
        record = SourceRecord.find(self.store, check_recorded_key(source_key))
        if record is None or not self.store.has_image(record.image_id):
            return []
        meta = self.store.get_meta(record.image_id)
        return [{**self._entry(record.image_id, meta), "source_key": source_key}]

    def _entry(self, image_id: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        """One image as ``GET /images`` lists it; its ``placeholders`` let the page paint each tile
        before its output loads, without a ``GET /images/{id}`` per tile."""
        return {**{k: meta[k] for k in UPLOAD_KEYS}, "uploaded_at": meta.get("uploaded_at"),
                "fields": meta.get("fields", {}), "placeholders": analysis.placeholders(meta),
                "url": self.links.image(image_id), "urls": self.links.recipes(self.derivatives, image_id)}

    def _publish(self, image_id: str) -> None:
        eager = self.derivatives.eager_recipes
        if not eager or self.publisher is None:
            return
        try:
            self.publisher.publish(Job(image_id, eager))
        except Exception:  # any failure: the original is stored and recipe URLs render on demand
            self.metrics.publish_failures.inc()
            log.exception("could not queue eager recipes %s for %s; they wait in the outbox for the broker "
                          "(without one, they render on first request)",
                          ", ".join(eager), image_id)


def analysed(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What the analysers found of an image (engine/analysis.py), as the API shows it: the
    placeholders a page shows while presets are pending, and every other result by analyser name."""
    found = analysis.values(meta)
    shown = analysis.placeholders(meta)
    return {"placeholders": shown, "analysis": {k: v for k, v in found.items() if k not in shown}}


class ImageItem:
    """``GET``/``HEAD /images/{id}``: metadata and derivatives; ``DELETE``: the original and everything
    made of it.

    ``GET`` answers the stored metadata (id, format, width, height, bytes, has_alpha, frames, fields,
    uploaded_at; when an upload token is set, only :data:`PUBLIC_META` of it without the token) plus
    ``urls`` {recipe: url}, ``pinned_urls`` {recipe: digest-pinned url},
    ``presets`` (the state of the image's eager recipes: pending, ready or failed, engine/presets.py) and
    ``derivatives`` {recipe: {url, pinned_url, eager, digest, stored, formats, outputs[, complete,
    state[, reason]]}}: which formats are stored for each recipe's current digest, every
    output the recipe makes for this image (``outputs``: [{format, media_type[, auto_quality]}], one per format a
    ``format: auto`` recipe negotiates; ask for one with ``Accept: <media_type>``), and for eager
    recipes whether every format the queue renders is (``complete``) and their state (``state``,
    the ``reason`` of a failed one): the state the ready events tell.
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
        stored = set(self.store.derived_keys(image_id))  # the image's index: one small listing
        shown = meta if self._may_see_everything(req) else {k: meta[k] for k in PUBLIC_META if k in meta}
        ready = preset_status(self.derivatives, image_id, meta, stored)  # the state the events tell
        resp.media = {**shown, **analysed(meta), "urls": self.links.recipes(self.derivatives, image_id),
                      "pinned_urls": self.links.pinned_recipes(self.derivatives, image_id),
                      "presets": ready.state,
                      "derivatives": self._derivatives(image_id, meta, stored, ready)}

    on_head = on_get  # falcon sends the headers (Content-Length too) without the body

    def _may_see_everything(self, req: falcon.Request) -> bool:
        """True without an upload token, or with the right one; a wrong one is refused (403)."""
        if not self.settings.upload_token or req.get_header("Authorization") is None:
            return not self.settings.upload_token
        require_bearer(req, self.settings.upload_token)
        return True

    def _derivatives(self, image_id: str, meta: dict[str, Any], stored: set[str],
                     ready: PresetStatus) -> dict[str, dict[str, Any]]:
        """Per recipe: its URL, whether it is eager, which formats are stored for its current digest,
        and for eager recipes whether everything the queue renders is there (``complete``) and its
        state (``state``: pending, ready or failed, with the ``reason``)."""
        eager = self.derivatives.eager_status(image_id, meta, stored)
        encoders: Mapping = self.derivatives.registry.encoders
        out: dict[str, dict[str, Any]] = {}
        for name, recipe in sorted(self.derivatives.recipes.items()):
            formats = sorted(enc.name for enc in encoders.values()
                             if self.store.derived_key(name, recipe.digest, image_id, enc.extension) in stored)
            outputs = [{"format": t.encoder.name, "media_type": t.encoder.media_type,
                        # quality: auto: what the search chose, once the output is stored
                        **({"auto_quality": self.derivatives.chosen(t) or None} if recipe.output_spec.target
                           is not None and t.key in stored else {})}
                       for t in self.derivatives.targets(recipe, image_id, meta)]
            out[name] = {"url": self.links.recipe(name, image_id),
                         "pinned_url": self.links.pinned(name, recipe.digest, image_id),
                         "eager": recipe.eager, "digest": recipe.digest, "stored": bool(formats),
                         "formats": formats, "outputs": outputs}
            if name in eager:
                out[name]["complete"] = eager[name]["stored"]
                out[name].update(ready.recipes[name])
        return out

    def on_delete(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        """Everything of the image goes (``Store.delete_image``; docs/architecture.md, "A delete"),
        and its job waiting in the outbox. Idempotent: a DELETE repeated, or one after a delete cut
        short, removes what is left and answers 204; 404 only when nothing of the image was there."""
        require_bearer(req, self.settings.upload_token)
        check_id(image_id)
        removed = self.store.delete_image(image_id)
        outbox = outbox_key(image_id)
        if self.store.exists(outbox):  # its job is moot: a drain would publish it for nothing
            self.store.delete(outbox)
            removed += 1
        self.store.invalidate()
        if not removed:
            raise NotFoundError(f"image {image_id} not found")
        log.info("deleted image %s (%d objects)", image_id, removed)
        resp.status = falcon.HTTP_204

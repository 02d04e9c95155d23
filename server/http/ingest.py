"""Taking in an original: the one code path of an upload (``POST /images``) and of ``pixline import``.

The id comes from the bytes (a second time, the same image: nothing is checked, stored or queued
again). A new original passes every check an upload gets (``upload.inspect_image``: type, pixel,
frame, band, sample and scan limits, the deadline-bounded check decode, the reduced copies) in a
render slot, then is stored whole, its meta last (meta marks the image complete: a process killed
before that leaves no image, and taking the same bytes in again finishes it). Queueing its eager
recipes is the caller's, which knows its publisher.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Mapping

from pixline.engine import analysis, reduced
from pixline.engine.deadline import Deadline
from pixline.engine.derivatives import Derivatives
from pixline.engine.memory import release
from pixline.engine.source import content_id

from ..settings import Settings
from .upload import inspect_image, original_meta


@dataclass(frozen=True)
class Ingested:
    """An original taken in: its id, its meta, and whether this call stored it (False: it was there)."""

    image_id: str
    meta: dict[str, Any]
    created: bool


def ingest_original(derivatives: Derivatives, settings: Settings, data: bytes, fields: Mapping[str, str],
                    slot: AbstractContextManager, extra_meta: Mapping[str, Any] | None = None,
                    image_id: str | None = None, keep_original: bool = True) -> Ingested:
    """Check and store ``data`` as an original, unless the same image is stored already.

    ``slot``: the render slot the check decode runs in (CPU work like a render). ``extra_meta``:
    more keys for the stored meta (an import's ``source_key``). ``image_id``: the id, when it is not
    the content's (an original served in place is named by its key and version); with
    ``keep_original=False`` only its meta and reduced copies are stored, the bytes staying where they
    are. Raises the input error that refuses the original (413, 415, 422); nothing is stored then.
    """
    store = derivatives.store
    image_id = image_id or content_id(data)
    if store.has_image(image_id):
        return Ingested(image_id, store.get_meta(image_id), False)
    deadline = Deadline(settings.render_timeout or None)
    try:
        with slot:
            described, copies = inspect_image(data, derivatives.limits, deadline,
                                              reduced_size=settings.reduced_size,
                                              reduced_small_size=settings.reduced_small_size)
            meta = {**original_meta(image_id, described, fields), **(extra_meta or {})}
            meta[analysis.META_KEY] = analyse_new(derivatives, data, copies, meta, settings)
    finally:
        release()  # the check decode's memory goes back (engine/memory.py)
    store.put_original(image_id, data if keep_original else None, meta, copies=copies)
    return Ingested(image_id, meta, True)


def analyse_new(derivatives: Derivatives, data: bytes, copies: reduced.Copies, meta: dict[str, Any],
                settings: Settings) -> dict[str, Any]:
    """What every installed analyser finds of a new image (engine/analysis.py), from its smallest
    reduced copy (its pixels, which ``copies`` holds: not decoded again), else the original (then
    small, animated or with alpha: reduced.needs_copy); a failing analyser's entry says why, and the
    image is taken in all the same."""
    analysers = derivatives.registry.analysers
    if not analysers:
        return {}
    source = analysis.smallest_source(data, copies, meta, f"image {meta['id']}", derivatives.limits)
    ctx = analysis.image_context(meta, Deadline(settings.render_timeout or None))
    return analysis.analyse(analysers, source, ctx, pixels=copies.pixels)

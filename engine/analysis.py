"""Per-image analysis: what pixline learns of an image once, when it is taken in (contract 2.3).

An :class:`Analyser` (registered through ``pixline_register_analysers``) looks at a small upright
8-bit sRGB copy of the image and returns a JSON value: a placeholder (a BlurHash, a dominant colour),
the boxes of the faces in it. It runs at upload and import, on the smallest reduced copy (or the
original, when it is small enough to have none: engine/reduced.py), so the original is never decoded
for it again; a render runs one only for an image that lacks a result it needs. What it found is
kept in the image's meta, under ``meta["analysis"][name]``, as ``{"version", "value"}`` or ``{"version", "error"}``, and reaches every
step and encoder as ``ctx.analysis[name]``. An image taken in before an analyser was installed (or at
an older ``version``) is analysed later by :func:`analyse_stored` (``pixline regenerate --analyse``,
or a render that needs the result).

Analysers are strangers' code: one that raises, overruns its deadline or returns what is not a small
JSON value is logged and its failure recorded; the upload goes on (docs/architecture.md, "An upload").
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import pyvips

from . import contract, reduced
from .analyser import Analyser
from .deadline import Deadline
from .errors import clip
from .source import Source
from .steps import Context

if TYPE_CHECKING:
    from .storage import Store

log = logging.getLogger(__name__)

#: The meta key of the analyses.
META_KEY = "analysis"
#: A result's largest JSON form: meta is read on every render, so it must stay small.
MAX_RESULT_BYTES = 16 * 1024


def image_context(meta: Mapping[str, Any], deadline: Deadline) -> Context:
    """The context an analyser gets of an image, from its meta (no recipe, no client)."""
    return Context(fields=dict(meta.get("fields", {})), source_format=meta.get("format"),
                   source_size=(int(meta["width"]), int(meta["height"])), image_id=meta.get("id"),
                   deadline=deadline)


def smallest_source(data: bytes | None, copies: Mapping[str, bytes], meta: Mapping[str, Any],
                    name: str, limits: Any) -> Source | None:
    """What an image is analysed from: its smallest reduced copy (bytes by key suffix), else the
    original's ``data`` (``None`` when neither is at hand)."""
    for level in reversed(reduced.LEVELS):
        if level.key_suffix in copies:
            return reduced.copy_source(copies[level.key_suffix], meta, name, limits)
    return Source(data, name=name, limits=limits) if data is not None else None


def analyse(analysers: Mapping[str, Analyser], source: Source, ctx: Context,
            names: Iterable[str] | None = None, pixels: pyvips.Image | None = None) -> dict[str, dict[str, Any]]:
    """Run ``analysers`` (or those of ``names``) on ``source``: their meta entries, by name.

    Each gets the source thumbnailed to its ``size`` (one decode, at the largest size asked: see
    :func:`_picture`; none when ``pixels``, the source's own pixels normalised, are given: an
    upload's smallest reduced copy, engine/reduced.py); a failure of one is its entry's ``error``,
    logged, and never stops the others.
    """
    images: dict[int, pyvips.Image] = {}
    entries: dict[str, dict[str, Any]] = {}
    chosen = sorted(analysers if names is None else set(names) & set(analysers))
    largest = max((analysers[name].size for name in chosen), default=0)
    # Largest size first, so each smaller picture is made from the smallest one made before it.
    for name in sorted(chosen, key=lambda n: (-analysers[n].size, n)):
        analyser = analysers[name]
        entry: dict[str, Any] = {"version": analyser.version}
        try:
            if analyser.size not in images:
                images[analyser.size] = _picture(source, images, largest, analyser.size, pixels)
            entry["value"] = checked_value(contract.call(analyser, "analyse", image=images[analyser.size],
                                                         ctx=ctx), name)
        except Exception as exc:  # a stranger's code, or an odd image: recorded, never a failed upload
            entry["error"] = clip(f"{type(exc).__name__}: {exc}", 300)
            log.warning("image %s: analyser %r failed (recorded in its meta): %s", ctx.image_id, name,
                        entry["error"])
        if analyser.placeholder:
            entry["placeholder"] = True
        entries[name] = entry
    return dict(sorted(entries.items()))


def _picture(source: Source, images: dict[int, pyvips.Image], largest: int, size: int,
             pixels: pyvips.Image | None = None) -> pyvips.Image:
    """``source`` at most ``size`` px long: one decode (at the largest size asked; from ``pixels``
    when given), each smaller size from the smallest picture made so far that holds it (a decode of
    a 768 px copy, or a pass over its pixels, costs more than the placeholders themselves)."""
    if largest not in images:
        if pixels is not None:
            fits = max(pixels.width, pixels.height) <= largest
            images[largest] = pixels if fits else pixels.thumbnail_image(largest, height=largest,
                                                                         size="down").copy_memory()
        else:
            images[largest] = source.thumbnail(largest, height=largest, size="down").copy_memory()
    if size in images:
        return images[size]
    base = min(made for made in images if made >= size)
    return images[base].thumbnail_image(size, height=size, size="down").copy_memory()


def checked_value(value: Any, name: str) -> Any:
    """``value`` if it is a small JSON value, else a ``ValueError`` saying what is wrong with it."""
    try:
        text = json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"analyser {name!r} returned what is not a JSON value: {exc}") from None
    if len(text) > MAX_RESULT_BYTES:
        raise ValueError(f"analyser {name!r} returned {len(text)} bytes of JSON, over the limit of "
                         f"{MAX_RESULT_BYTES}")
    return json.loads(text)  # a copy: the analyser keeps nothing of what meta holds


def values(meta: Mapping[str, Any], only_placeholders: bool = False) -> dict[str, Any]:
    """What the analysers found of an image, by name (``ctx.analysis``): failed ones left out;
    ``only_placeholders``: those of placeholder analysers."""
    return {name: entry["value"] for name, entry in (meta.get(META_KEY) or {}).items()
            if isinstance(entry, Mapping) and "value" in entry
            and (entry.get("placeholder") or not only_placeholders)}


def placeholders(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The placeholders found of an image, by analyser name (``placeholders`` of the API)."""
    return values(meta, only_placeholders=True)


def missing(analysers: Mapping[str, Analyser], meta: Mapping[str, Any],
            names: Iterable[str] | None = None) -> list[str]:
    """The analysers (of ``names``, or all) that have no entry in ``meta`` at their version."""
    done = meta.get(META_KEY) or {}
    wanted = analysers if names is None else [n for n in names if n in analysers]
    return sorted(n for n in wanted
                  if not isinstance(done.get(n), Mapping) or done[n].get("version") != analysers[n].version)


def analyse_stored(store: "Store", analysers: Mapping[str, Analyser], image_id: str, limits: Any,
                   ctx: Context, names: Iterable[str] | None = None,
                   original: bytes | None = None) -> dict[str, Any]:
    """Analyse a stored image with the analysers it lacks (of ``names``, or all) and store the result
    in its meta; returns the meta (unchanged, and nothing written, when nothing was missing).

    Reads the image's smallest reduced copy from the store, else ``original`` (the caller reads an
    original served in place), else the stored original. The meta is read again just before it is
    written, so a concurrent analysis or delete is not undone (a deleted image stays deleted).
    """
    meta = store.get_meta(image_id)
    todo = missing(analysers, meta, names)
    if not todo:
        return meta
    copies = {}
    for level in reversed(reduced.LEVELS):
        if meta.get(level.meta_key):
            copies[level.key_suffix] = store.get(store.reduced_key(image_id, level.key_suffix))
            break
    if not copies and original is None:
        original = store.get_original(image_id)
    source = smallest_source(original, copies, meta, f"image {image_id}", limits)
    found = analyse(analysers, source, ctx, todo) if source is not None else {}
    meta = store.get_meta(image_id)  # NotFoundError when it was deleted meanwhile
    meta = {**meta, META_KEY: {**(meta.get(META_KEY) or {}), **found}}
    store.put_meta(image_id, meta)
    return meta

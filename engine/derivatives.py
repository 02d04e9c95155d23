"""Derivatives: a recipe's output for one stored image, from locating it to storing it.

The one code path that the HTTP service (on-demand renders) and the queue (eager renders) share
(docs/architecture.md, "Data flow"). :class:`Derivatives` owns a derivative from start to finish:

* :meth:`Derivatives.locate` — where a recipe's output for an image (and a client's ``Accept``) lives
  in the store, and how it is encoded, without rendering anything: a :class:`Derivative`;
* :meth:`Derivatives.check_output` — refuse, before anything is decoded, an output over the pixel
  limit or its format's largest side;
* :meth:`Derivatives.fetch` — its stored bytes;
* :meth:`Derivatives.render` — render it (optionally from an image already decoded) and store it;
* :meth:`Derivatives.targets` / :meth:`Derivatives.eager_status` — every output an eager job makes,
  and which of them are stored.

Callers add only what is theirs: the HTTP side single-flight and render slots, the queue decode-once.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Collection, Mapping

import pyvips

from . import analysis, autoquality, reduced
from .assets import AssetLoader
from .deadline import Deadline
from .errors import ImageDeletedError, NotFoundError, quote
from .library import Library, SourceChangedError, Version
from .negotiate import choose_encoder
from .pipeline import Rendered, prepare, render
from .recipe import Recipe
from .registry import Registry
from .source import Limits, Source
from .steps import Context, Encoder
from .storage import Store

log = logging.getLogger(__name__)
#: Writes of one render tried while a derivative refused as already stored is then not found.
STORE_ATTEMPTS = 3


@dataclass(frozen=True)
class Derivative:
    """One output of a recipe for one image: where it is (or will be) stored and how it is encoded.

    ``meta`` is the image's stored metadata (``meta/<id>.json``); ``accept`` the Accept header it
    was located for (steps see it in their :class:`~pixline.engine.steps.Context`).
    """

    recipe: Recipe
    image_id: str
    meta: Mapping[str, Any]
    key: str
    encoder: Encoder
    accept: str | None = None

    @property
    def negotiated(self) -> bool:
        """True when the format followed ``Accept`` (a response must say ``Vary: Accept``)."""
        return self.recipe.negotiated


class Derivatives:
    """Recipes × stored images → stored derivatives."""

    def __init__(self, store: Store, registry: Registry, recipes: Mapping[str, Recipe],
                 limits: Limits = Limits(), asset_dir: str | Path | None = None,
                 max_output_pixels: int | None = None, library: Library | None = None) -> None:
        self.store = store
        self.library = library  # originals served in place (--source): read there, never copied
        self.registry = registry
        self.recipes = recipes
        self.limits = limits
        self.max_output_pixels = max_output_pixels
        self.asset_dir = Path(asset_dir).resolve() if asset_dir else None
        self.assets = AssetLoader(self.asset_dir, store)

    def recipe(self, name: str) -> Recipe:
        try:
            return self.recipes[name]
        except KeyError:
            raise NotFoundError(f"recipe {quote(name)} not found") from None

    @cached_property
    def eager_recipes(self) -> tuple[str, ...]:
        """The names of the recipes a queue job renders for every upload, sorted."""
        return tuple(sorted(name for name, recipe in self.recipes.items() if recipe.eager))

    def stale_keys(self, keep: Collection[str] = (), recipe: str | None = None) -> list[str]:
        """Stored derivatives under a digest no recipe of this set has (any more): a recipe edited,
        a plugin upgraded, a recipe removed (docs/plugins.md, "Digests"). Nothing serves them:
        a pinned URL to an old digest is redirected to the current one. Derivatives of the recipe
        names in ``keep`` are never stale (ad-hoc outputs, whose digests are their URLs');
        ``recipe`` looks at that recipe's derivatives only."""
        current = {(name, r.digest) for name, r in self.recipes.items()}
        stale = []
        for key in self.store.list_keys(f"derived/{recipe}/" if recipe else "derived/"):
            parts = key.split("/")
            if len(parts) == 4 and parts[1] not in keep and (parts[1], parts[2]) not in current:
                stale.append(key)
        return stale

    def delete_derived(self, keys: Collection[str]) -> None:
        """Delete derivatives, each before its index entry (a run cut short finds the rest again)."""
        for key in keys:
            self.store.delete(key)
            self.store.delete(self.store.index_key(key))

    def load_asset(self, ref: str) -> bytes:
        """``store:NAME`` is the stored object ``assets/NAME``; anything else a file of the recipe folder."""
        return self.assets(ref)

    def context(self, derivative: Derivative, deadline: Deadline | None = None) -> Context:
        deadline = deadline or Deadline()
        meta = self.analysed(derivative, deadline)
        size = (int(meta["width"]), int(meta["height"])) if "width" in meta and "height" in meta else None
        return Context(fields=dict(meta.get("fields", {})), accept=derivative.accept,
                       source_format=meta.get("format"), load_asset=self.load_asset,
                       source_size=size, image_id=derivative.image_id, deadline=deadline,
                       analysis=analysis.values(meta))

    def analysed(self, derivative: Derivative, deadline: Deadline) -> Mapping[str, Any]:
        """The image's meta, holding what the analysers its recipe's gravities read: an image taken
        in before one of them was installed is analysed now, once, and the result stored
        (docs/architecture.md, "A recipe URL"); nothing is run when the meta has them."""
        meta = derivative.meta
        todo = analysis.missing(self.registry.analysers, meta, derivative.recipe.analysers)
        if not todo:
            return meta
        log.info("image %s: analysing it with %s before rendering %s", derivative.image_id,
                 ", ".join(todo), derivative.recipe.name)
        copied = any(meta.get(level.meta_key) for level in reduced.LEVELS)
        original = self.original(derivative.image_id, meta) if meta.get("in_place") and not copied else None
        return analysis.analyse_stored(self.store, self.registry.analysers, derivative.image_id, self.limits,
                                       analysis.image_context(meta, deadline), todo, original)

    # -- one derivative -------------------------------------------------------------------------
    def locate(self, recipe: Recipe, image_id: str, meta: Mapping[str, Any] | None = None,
               accept: str | None = None) -> Derivative:
        """Where ``recipe``'s output for an image lives, for a client sending ``accept``.

        ``meta`` is the image's stored metadata; it is read from the store when not given
        (:class:`NotFoundError` for an unknown image).
        """
        if meta is None:
            meta = self.store.get_meta(image_id, cached=True)
        encoder = choose_encoder(recipe.output_spec, self.registry, accept, meta.get("format"),
                                 bool(meta.get("has_alpha")))
        key = self.store.derived_key(recipe.name, recipe.digest, image_id, encoder.extension)
        return Derivative(recipe, image_id, meta, key, encoder, accept)

    def check_output(self, derivative: Derivative, where: str | None = None) -> None:
        """Refuse ``derivative`` before anything is decoded when a step of its recipe would make more
        than ``max_output_pixels`` of the stored image's size, or the output is larger than its
        encoder can hold (:class:`~pixline.engine.errors.OutputTooLargeError`)."""
        meta = derivative.meta
        derivative.recipe.check_output(int(meta.get("width", 1)), int(meta.get("height", 1)),
                                       self.max_output_pixels, derivative.encoder, where)

    def fetch(self, derivative: Derivative) -> bytes:
        """The stored bytes of ``derivative``; :class:`NotFoundError` when it is not stored yet."""
        return self.store.get(derivative.key)

    def open(self, derivative: Derivative) -> tuple[BinaryIO, int]:
        """A stream of the stored ``derivative`` and its size (the caller closes it);
        :class:`NotFoundError` when it is not stored yet."""
        return self.store.open(derivative.key)

    def source(self, image_id: str, recipes: Collection[Recipe] = (),
               meta: Mapping[str, Any] | None = None) -> Source:
        """What to render ``recipes`` of an image from: the smallest of its reduced copies every one
        of them fits within (``meta`` says which it has), else the original; checked against this
        deployment's limits."""
        name = f"image {image_id}"
        level = reduced.choose(recipes, meta) if recipes and meta is not None else None
        if level is not None:
            try:
                data = self.store.get(self.store.reduced_key(image_id, level.key_suffix))
                return reduced.copy_source(data, meta, name, self.limits)
            except NotFoundError:  # a copy lost on its own: the original still renders everything
                log.warning("image %s: its reduced copy %r is missing; rendering from the original",
                            image_id, level.meta_key)
        return Source(self.original(image_id, meta), name=name, limits=self.limits)

    def original(self, image_id: str, meta: Mapping[str, Any] | None) -> bytes:
        """The original's bytes: from the store, or for an image served in place from its library,
        as long as it is still the version that was recorded (:class:`SourceChangedError`)."""
        place = (meta or {}).get("in_place")
        if not place:
            return self.store.get_original(image_id)
        if self.library is None:
            raise NotFoundError(f"image {image_id} is served in place, and no --source is set")
        data, version = self.library.read(place["key"], self.limits.max_bytes)
        if version != Version(place["etag"], int(place["size"])):
            raise SourceChangedError(f"source key {quote(place['key'])} changed since image {image_id} was made of it")
        return data

    def render(self, derivative: Derivative, source: Source | None = None,
               decoded: pyvips.Image | None = None, time_limit: float | None = None,
               store: bool = True, deadline: Deadline | None = None,
               stepped: pyvips.Image | None = None, replace: bool = False) -> Rendered:
        """Render ``derivative`` and store it under its key (unless ``store`` is False); returns it.

        The first output stored under a key stays (unless ``replace``; on local files, see
        :meth:`Store.put`): a request and the queue rendering the same key at once render different
        bytes (the queue from its one shrunk decode), and a key (and its strong ETag) must name one
        set of bytes. The render that finds an object already stored returns that object's bytes.

        ``source``/``decoded``: the original, or an image already decoded from it (the queue
        decodes once for several recipes); ``stepped``: the recipe's steps already run
        (:meth:`prepare`). ``time_limit``: seconds before the render is stopped
        (:class:`~pixline.engine.errors.RenderTimeoutError`); ``deadline``: a budget the render
        shares with others (a queue job's), narrowed by ``time_limit``.
        """
        if store:
            self.check_not_deleted(derivative)  # a job or request that outlived its image stops here
        source = source or self.source(derivative.image_id, [derivative.recipe], derivative.meta)
        chosen = self.chosen(derivative)
        rendered = render(derivative.recipe, source, self.registry, self.context(derivative, deadline),
                          decoded=decoded, encoder=derivative.encoder, time_limit=time_limit,
                          stepped=stepped, quality=chosen.get("quality"))
        if chosen:  # the search found it before: its record stands
            rendered = dataclasses.replace(rendered, choice=autoquality.Choice(
                chosen["quality"], chosen.get("score"), int(chosen.get("trials") or 0)))
        if rendered.choice is not None and rendered.choice.fallback:
            return rendered  # not the searched output: served, never stored under the key
        return self._store(derivative, rendered, replace) if store else rendered

    def chosen(self, derivative: Derivative) -> dict[str, Any]:
        """What a ``quality: auto`` search chose for this output before ({quality, score, trials},
        kept in its index entry: docs/architecture.md, "Auto quality"); {} when none did."""
        if derivative.recipe.output_spec.target is None:
            return {}
        try:
            entry = self.store.get(self.store.index_key(derivative.key))
            found = json.loads(entry) if entry else {}
        except (NotFoundError, ValueError):
            return {}
        quality = found.get("quality") if isinstance(found, dict) else None
        return found if isinstance(quality, int) and not isinstance(quality, bool) else {}

    def _store(self, derivative: Derivative, rendered: Rendered, replace: bool) -> Rendered:
        """Store ``rendered`` (with its entry in the image's derivative index, so GET and DELETE
        /images/{id} find it without listing every image's derivatives), or answer with the bytes
        stored first; then, should the image have been deleted meanwhile, remove it again.

        docs/architecture.md, "A delete": the index entry, then the derivative, then the metadata
        asked again, uncached. A delete removes the metadata before it lists the index, so either it
        lists this entry and removes the derivative, or this check finds the metadata gone.
        """
        key = derivative.key
        entry = json.dumps(rendered.choice.as_dict()).encode() if rendered.choice is not None else b""
        for _ in range(STORE_ATTEMPTS):
            if self.store.put_derived(key, rendered.data, replace=replace, entry=entry):
                log.info("rendered %s for %s: %d bytes at %s", derivative.recipe.name,
                         derivative.image_id, len(rendered.data), key)
                break
            try:
                rendered = dataclasses.replace(rendered, data=self.store.get(key))
                break
            except NotFoundError:  # removed since the write was refused: by a delete, most likely
                self.check_not_deleted(derivative, written=True)
        self.check_not_deleted(derivative, written=True)
        return rendered

    def check_not_deleted(self, derivative: Derivative, written: bool = False) -> None:
        """:class:`ImageDeletedError` when the image's metadata is gone from the store (asked of
        the store, never of a cache); ``written``: remove the derivative and its index entry first."""
        image_id = derivative.image_id
        if self.store.exists(self.store.meta_key(image_id)):
            return
        if written:
            self.store.remove_derived(derivative.key)
        self.store.forget_meta(image_id)
        raise ImageDeletedError(f"image {image_id} not found: it was deleted while "
                                f"{derivative.recipe.name!r} rendered")

    def prepare(self, derivative: Derivative, source: Source, decoded: pyvips.Image | None = None,
                time_limit: float | None = None, deadline: Deadline | None = None) -> pyvips.Image:
        """``derivative``'s recipe steps over ``source`` (or ``decoded``), in memory: give it to
        :meth:`render` as ``stepped`` for each format of a recipe, and its steps run once."""
        return prepare(derivative.recipe, source, self.context(derivative, deadline), decoded=decoded,
                       time_limit=time_limit)

    # -- every output of an eager job ---------------------------------------------------------
    def targets(self, recipe: Recipe, image_id: str, meta: Mapping[str, Any]) -> list[Derivative]:
        """Every output a request could ask of ``recipe``: one, or one per format for ``auto``.

        An ``auto`` recipe is negotiated by Accept, so each candidate format is a separate object;
        warming only the fallback would leave most browsers with a cold first request.
        """
        accepts: list[str | None] = [None]
        spec = recipe.output_spec
        if recipe.negotiated:
            encoders = self.registry.encoders
            accepts += [encoders[name].media_type for name in spec.candidates if name in encoders]
        targets: dict[str, Derivative] = {}
        for accept in accepts:
            derivative = self.locate(recipe, image_id, meta, accept)
            targets.setdefault(derivative.key, derivative)
        return list(targets.values())

    def eager_status(self, image_id: str, meta: Mapping[str, Any],
                     stored_keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        """Per eager recipe, whether its output for the recipe's current digest is stored.

        ``{"thumb": {"stored": true, "key": "derived/thumb/<digest>/<id>.jpg", "digest": ...}}``; a
        recipe whose format follows Accept also lists each format's object under ``"formats"`` and
        is ``stored`` only when all of them are. ``stored_keys``, when the caller has listed them
        already, saves one existence check per key.
        """
        status: dict[str, dict[str, Any]] = {}
        for name in self.eager_recipes:
            recipe = self.recipes[name]
            targets = self.targets(recipe, image_id, meta)
            stored = {t.key: (t.key in stored_keys if stored_keys is not None
                              else self.store.exists(t.key)) for t in targets}
            entry: dict[str, Any] = {"stored": all(stored.values()), "key": targets[0].key,
                                     "digest": recipe.digest}
            if len(targets) > 1:
                entry["formats"] = {t.encoder.name: stored[t.key] for t in targets}
            status[name] = entry
        return status

"""Rendering recipes for stored images: the one code path the HTTP resizer and the queue worker share.

``Derivatives.locate`` answers, without rendering, where a recipe's output for an image (and a client's
``Accept``) lives in the store; ``Derivatives.render`` renders and stores it. Callers add what is
specific to them: the server single-flight and load shedding, the worker decode-once fan-out.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pyvips

from .assets import AssetLoader
from .errors import NotFoundError
from .negotiate import choose_encoder
from .pipeline import Rendered, render
from .recipe import Recipe
from .registry import Registry
from .source import Limits, Source
from .steps import Context, Encoder
from .storage import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    """Where a derivative is (or will be) stored, and how it is encoded."""

    key: str
    encoder: Encoder
    negotiated: bool


class Derivatives:
    """Recipes × stored images → stored derivatives."""

    def __init__(self, store: Store, registry: Registry, recipes: Mapping[str, Recipe],
                 limits: Limits = Limits(), asset_dir: str | Path | None = None) -> None:
        self.store = store
        self.registry = registry
        self.recipes = recipes
        self.limits = limits
        self.asset_dir = Path(asset_dir).resolve() if asset_dir else None
        self.assets = AssetLoader(self.asset_dir, store)

    def recipe(self, name: str) -> Recipe:
        try:
            return self.recipes[name]
        except KeyError:
            raise NotFoundError(f"recipe {name!r} not found") from None

    def load_asset(self, ref: str) -> bytes:
        """``store:NAME`` is the stored object ``assets/NAME``; anything else a file of the recipe folder."""
        return self.assets(ref)

    def context(self, meta: Mapping[str, Any], accept: str | None) -> Context:
        return Context(metadata=dict(meta.get("fields", {})), accept=accept,
                       source_format=meta.get("format"), load_asset=self.load_asset)

    def locate(self, recipe: Recipe, image_id: str, meta: Mapping[str, Any],
               accept: str | None = None) -> Location:
        """The key and encoder of ``recipe`` for an image whose stored metadata is ``meta``."""
        spec = recipe.output_spec()
        encoder = choose_encoder(spec, self.registry, accept, meta.get("format"),
                                 bool(meta.get("has_alpha")))
        key = self.store.derived_key(recipe.name, recipe.digest, image_id, encoder.extension)
        return Location(key, encoder, spec.format == "auto")

    def source(self, image_id: str) -> Source:
        return Source(self.store.get_original(image_id), name=f"image {image_id}", limits=self.limits)

    def render(self, recipe: Recipe, image_id: str, meta: Mapping[str, Any], location: Location,
               source: Source | None = None, decoded: pyvips.Image | None = None,
               accept: str | None = None, time_limit: float | None = None,
               store: bool = True) -> Rendered:
        """Render ``recipe`` for an image and store it at ``location``; returns the output.

        ``time_limit``: seconds before the render is stopped (:class:`RenderTimeoutError`);
        ``store=False`` renders without storing (unsigned ad-hoc URLs).
        """
        source = source or self.source(image_id)
        rendered = render(recipe, source, self.registry, self.context(meta, accept),
                          decoded=decoded, encoder=location.encoder, time_limit=time_limit)
        if not store:
            return rendered
        self.store.put(location.key, rendered.data)
        log.info("rendered %s for %s: %d bytes at %s", recipe.name, image_id, len(rendered.data),
                 location.key)
        return rendered

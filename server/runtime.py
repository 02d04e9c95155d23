"""Building the long-lived parts of a process from its settings: store, plugins, recipes."""
from __future__ import annotations

import os
from pathlib import Path

from pixline.engine.derivatives import Derivatives
from pixline.engine.recipe import default_recipe_dir, load_recipes
from pixline.engine.registry import Registry, default_registry
from pixline.engine.source import Limits
from pixline.engine.storage import Store

from .settings import Settings


def make_store(settings: Settings) -> Store:
    """The store named by ``settings.store``; S3 credentials come from the usual AWS variables."""
    options: dict = {}
    if settings.store.startswith("s3://"):
        if settings.s3_endpoint:
            options["endpoint_url"] = settings.s3_endpoint
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            options.update(key=key, secret=secret)
    return Store(settings.store, **options)


def recipe_dir(settings: Settings) -> Path:
    return Path(settings.recipes) if settings.recipes else default_recipe_dir()


def limits(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.max_bytes, max_pixels=settings.max_pixels,
                  max_frames=settings.max_frames)


def make_derivatives(settings: Settings, registry: Registry | None = None,
                     store: Store | None = None) -> Derivatives:
    """Plugins, the validated recipe set and the store: refuses to start on an invalid recipe."""
    registry = registry or default_registry()
    folder = recipe_dir(settings)
    return Derivatives(store or make_store(settings), registry, load_recipes(folder, registry),
                       limits(settings), asset_dir=folder)

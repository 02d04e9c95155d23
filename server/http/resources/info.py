"""``GET /recipes``, ``GET /recipes/{name}``, ``GET /healthz`` and ``GET /metrics``."""
from __future__ import annotations

import logging

import falcon
import yaml

from pixline.engine.derivatives import Derivatives
from pixline.engine.errors import StoreUnavailableError

from ...settings import Settings
from ..metrics import Metrics

log = logging.getLogger(__name__)

#: The recipe set changes only when the server restarts with other recipes: caches may keep it briefly.
RECIPES_CACHE_CONTROL = "public, max-age=60"


class RecipeCollection:
    def __init__(self, derivatives: Derivatives, settings: Settings) -> None:
        self.derivatives = derivatives
        self.prefix = settings.public_url.rstrip("/")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = [RECIPES_CACHE_CONTROL]
        resp.media = {"recipes": [
            {"name": r.name, "description": r.description, "eager": r.eager, "digest": r.digest,
             "url": f"{self.prefix}/recipes/{r.name}"}
            for r in sorted(self.derivatives.recipes.values(), key=lambda r: r.name)]}


class RecipeItem:
    """The normalized recipe, and ``source``: the YAML text it was loaded from (the playground's
    starting point), or the normalized recipe written as YAML when it was not loaded from text."""

    def __init__(self, derivatives: Derivatives) -> None:
        self.derivatives = derivatives

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        recipe = self.derivatives.recipe(name)
        normalized = recipe.to_dict()
        source = recipe.source or yaml.safe_dump(
            {k: normalized[k] for k in ("description", "eager", "keep_metadata", "steps")}, sort_keys=False)
        resp.media = {**normalized, "source": source}
        resp.cache_control = [RECIPES_CACHE_CONTROL]


class Health:
    """200 when the store answers, 503 otherwise (a load balancer takes the process out)."""

    def __init__(self, derivatives: Derivatives) -> None:
        self.store = derivatives.store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            self.store.check()
        except Exception as exc:  # any backend failure means unhealthy, never a 500
            log.warning("health check: store %s unavailable: %s: %s", self.store.url,
                        type(exc).__name__, exc)
            raise StoreUnavailableError(f"the store does not answer ({type(exc).__name__})") from None
        resp.cache_control = ["no-store"]
        resp.media = {"status": "ok"}

    on_head = on_get


class MetricsEndpoint:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data, resp.content_type = self.metrics.exposition()
        resp.cache_control = ["no-store"]

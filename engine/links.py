"""The public URLs of a recipe's output: ``/r/<recipe>/<id>`` and the digest-pinned
``/r/<recipe>@<digest>/<id>``, relative or under ``--public-url`` (e.g. the CDN's origin).

The routes' own contract (server/http/app.py serves them, server/http/openapi.yaml describes them),
kept here so that HTTP answers and the queue's ready events (server/queue/events.py) give the same URLs.
"""
from __future__ import annotations

from .derivatives import Derivatives


class Links:
    """URLs in response bodies: relative, or under ``settings.public_url`` (e.g. the CDN's origin)."""

    def __init__(self, public_url: str) -> None:
        self.prefix = public_url.rstrip("/")

    def recipe(self, name: str, image_id: str) -> str:
        return f"{self.prefix}/r/{name}/{image_id}"

    def pinned(self, name: str, digest: str, image_id: str) -> str:
        """The digest-pinned URL of a recipe's output: its bytes never change (served ``immutable``)."""
        return f"{self.prefix}/r/{name}@{digest}/{image_id}"

    def image(self, image_id: str) -> str:
        return f"{self.prefix}/images/{image_id}"

    def recipes(self, derivatives: Derivatives, image_id: str) -> dict[str, str]:
        return {name: self.recipe(name, image_id) for name in sorted(derivatives.recipes)}

    def pinned_recipes(self, derivatives: Derivatives, image_id: str) -> dict[str, str]:
        return {name: self.pinned(name, recipe.digest, image_id)
                for name, recipe in sorted(derivatives.recipes.items())}

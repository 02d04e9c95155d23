"""The HTTP service: ``create_app(derivatives, settings, publisher)`` builds the falcon app.

The routes are described in ``openapi.yaml`` (served at ``/openapi.json``). Like falcon's ``look`` tutorial, the factory receives
its collaborators, so tests build the app with a real store on a temporary folder and call it
through ``falcon.testing.TestClient``.

``settings.role`` decides which routes a process serves (docs/architecture.md, "Processes"):
``media`` uploads, image info and deletes; ``resizer`` recipe and ad-hoc URLs and the recipe set;
``all`` both. Health and metrics are in every role; another role's route answers 404.
"""
from __future__ import annotations

import logging
from typing import Mapping

import falcon

from pixline.engine.derivatives import Derivatives
from pixline.engine.errors import NotFoundError, RecipeError
from pixline.engine.recipe import Recipe

from ..queue.jobs import JobPublisher
from ..settings import Settings
from . import errors
from .in_place import InPlaceImages
from .metrics import Metrics, MetricsMiddleware
from .on_demand import OnDemandRenderer
from .openapi import OpenAPIDocument
from .render_slots import RenderSlots
from .request_log import RequestLog
from .resources.derived import AdhocURL, DerivedImages, RecipeURL
from .resources.images import ImageCollection, ImageItem
from .probes import ReadyProbe, store_check
from .resources.info import Health, MetricsEndpoint, RecipeCollection, RecipeItem
from .resources.page import add_page_routes
from .resources.playground import Playground
from .urlsteps import ADHOC_RECIPE
from .warm_up import WarmUp

log = logging.getLogger(__name__)

#: Path prefixes of each role's routes (besides /healthz and /metrics, which every role serves).
ROLE_PREFIXES = {"media": r"^/(images|playground)(/|$)", "resizer": r"^/(r|t|recipes)(/|$)"}


class OtherRole:
    """A sink for the routes of a role this process does not serve: 404, saying where they are."""

    def __init__(self, role: str, serving: str) -> None:
        self.role, self.serving = role, serving

    def __call__(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        raise NotFoundError(f"{req.path} is served by the {self.role} role; this process serves "
                            f"the {self.serving} role")


def check_recipe_names(recipes: Mapping[str, Recipe]) -> None:
    """Refuse a recipe named like the reserved ad-hoc key (its outputs would mix with ad-hoc ones)."""
    if ADHOC_RECIPE in recipes:
        origin = recipes[ADHOC_RECIPE].origin
        raise RecipeError(f"{origin}: the recipe name {ADHOC_RECIPE!r} is reserved for ad-hoc URLs; "
                          "rename the file")


def ready_probe(derivatives: Derivatives, publisher: JobPublisher | None, warm_up: bool | WarmUp,
                uploads: bool = True) -> ReadyProbe:
    """``/readyz`` of a serving process: store, recipes, warm-up required (``uploads``: the
    analysers too; a :class:`WarmUp` given is one already run or running); the broker reported."""
    required = {"store": store_check(derivatives), "recipes": lambda: f"{len(derivatives.recipes)} loaded"}
    if isinstance(warm_up, WarmUp):
        required["warm_up"] = warm_up.check
    elif warm_up:
        required["warm_up"] = WarmUp(derivatives, analyse=uploads).start().check
    check_broker = getattr(publisher, "check", None)  # RabbitMQ's publishers; the in-process queue has none
    return ReadyProbe(required, {"broker": check_broker} if check_broker else None)


def create_app(derivatives: Derivatives, settings: Settings, publisher: JobPublisher | None,
               metrics: Metrics | None = None, warm_up: bool | WarmUp = False) -> falcon.App:
    """The falcon app over ``derivatives`` (store, plugins, recipes).

    ``publisher`` receives a :class:`~pixline.server.queue.jobs.Job` with the eager recipes of each new
    upload (``None``: nothing is queued, eager recipes render on their first request). ``metrics``
    defaults to a fresh :class:`Metrics` with its own registry. ``warm_up``: render every recipe once
    in the background (http/warm_up.py), ``/readyz`` answering 503 until it is done; or the
    :class:`WarmUp` a gunicorn worker ran before it took its first connection.
    """
    check_recipe_names(derivatives.recipes)
    role = settings.role
    if role != "media" and not settings.signing_key and not settings.allow_unsafe:
        log.warning("no signing key is configured: ad-hoc /t/ URLs are refused (403)")
    metrics = metrics or Metrics()
    slots = RenderSlots.from_settings(settings, metrics.renders_waiting)
    renderer = OnDemandRenderer(derivatives, slots, metrics, time_limit=settings.render_timeout or None)
    images = DerivedImages(derivatives, renderer, InPlaceImages(derivatives, settings, slots))

    # The request log comes first: it sees the request before the others and the response after them.
    app = falcon.App(middleware=[RequestLog(), MetricsMiddleware(metrics)])
    errors.install(app)
    for other in {"media", "resizer"} - ({"media", "resizer"} if role == "all" else {role}):
        app.add_sink(OtherRole(other, role), ROLE_PREFIXES[other])
    if settings.takes_uploads:
        app.add_route("/images", ImageCollection(derivatives, settings, publisher, slots, metrics))
        app.add_route("/images/{image_id}", ImageItem(derivatives, settings))
        # The playground renders any recipe: it goes wherever uploads go, behind the same token.
        app.add_route("/playground", Playground(derivatives, renderer, settings))
    if role in ("all", "resizer"):
        recipe_url = RecipeURL(images, settings)
        app.add_route("/r/{recipe}/{image_id}", recipe_url)
        # A key of the --source library in a folder (http/in_place.py): its first segment and the rest.
        # (falcon needs the same field name at each level: the folder is in image_id.)
        app.add_route("/r/{recipe}/{image_id}/{rest:path}", recipe_url, suffix="in_folder")
        app.add_route("/t/{signature}/{path:path}", AdhocURL(images, settings))
        app.add_route("/recipes", RecipeCollection(derivatives, settings))
        app.add_route("/recipes/{name}", RecipeItem(derivatives))
    app.add_route("/healthz", Health(derivatives))
    app.add_route("/readyz", ready_probe(derivatives, publisher, warm_up, uploads=settings.takes_uploads))
    app.add_route("/metrics", MetricsEndpoint(metrics))
    app.add_route("/openapi.json", OpenAPIDocument(settings))
    add_page_routes(app)
    return app

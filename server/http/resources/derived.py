"""``GET|HEAD /r/{recipe}/{id}`` (recipe-named URLs; ``/r/{recipe}@{digest}/{id}`` pinned) and ``/t/{signature}/{steps}/{id}`` (ad-hoc URLs).

Both answer with the stored derivative, or render it once and store it. Headers: a strong ``ETag``
(recipe digest + id + format; ``If-None-Match`` gives 304 without reading or rendering anything),
``Cache-Control``, ``Content-Type``, ``Content-Length``, ``Server-Timing`` (``render;dur=…`` or
``store;dur=…``, milliseconds), and ``Vary: Accept`` when the format followed the client's ``Accept``;
each negotiated format is stored under its own key.
"""
from __future__ import annotations

import functools

import falcon

from pixline.engine.derivatives import Derivatives
from pixline.engine.errors import NotFoundError, ParameterError, quote
from pixline.engine.library import SourceChangedError, check_source_key
from pixline.engine.links import Links
from pixline.engine.recipe import Recipe
from pixline.engine.storage import DIGEST_RE, ID_RE, check_id

from ...settings import Settings
from ..errors import CredentialsInvalidError
from ..in_place import InPlaceImages
from ..on_demand import OnDemandRenderer, etag
from ..request_log import note
from ..signing import PREFIX, verify
from ..urlsteps import ADHOC_WHERE, adhoc_recipe, split_path

#: Pinned and ad-hoc URLs name their steps and image exactly; only a plugin upgrade changes their bytes.
IMMUTABLE_CACHE_CONTROL = ADHOC_CACHE_CONTROL = "public, max-age=31536000, immutable"
#: ``unsafe`` URLs are a development aid: never stored, so let clients revalidate (a 304 is cheap).
UNSAFE_CACHE_CONTROL = "no-cache"
#: Distinct ad-hoc step strings whose recipes a process keeps.
ADHOC_RECIPES_KEPT = 4096


def _not_modified(req: falcon.Request, tag: str) -> bool:
    given = req.if_none_match
    if not given:
        return False
    value = tag.strip('"')
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    return any(t == "*" or str(t) == value for t in given)


class DerivedImages:
    """The shared response logic of recipe and ad-hoc URLs."""

    def __init__(self, derivatives: Derivatives, renderer: OnDemandRenderer,
                 in_place: InPlaceImages | None = None) -> None:
        self.derivatives = derivatives
        self.renderer = renderer
        self.in_place = in_place

    def respond(self, req: falcon.Request, resp: falcon.Response, recipe: Recipe, image_id: str,
                cache_control: str, cache: bool = True, where: str | None = None) -> None:
        """Answer with ``recipe``'s output for an image (an id, or a key of the ``--source``
        library when ``in_place`` is given); ``where`` names the recipe in errors."""
        if self.in_place is None or not self.in_place.enabled or ID_RE.fullmatch(image_id):
            return self._respond(req, resp, recipe, image_id, cache_control, cache, where)
        resolved = self.in_place.image_id(image_id)
        try:
            return self._respond(req, resp, recipe, resolved, cache_control, cache, where)
        except (SourceChangedError, NotFoundError):
            # The library's object changed since, or its image was deleted from pixline's store (the
            # library keeps the object): the key's current version, recorded again if need be, once.
            self.in_place.forget(image_id)
        return self._respond(req, resp, recipe, self.in_place.image_id(image_id), cache_control,
                             cache, where)

    def check_reference(self, image_id: str) -> None:
        """Refuse (400) what names no image: not an id, nor a valid key of a configured library."""
        if self.in_place is not None and self.in_place.enabled and not ID_RE.fullmatch(image_id):
            check_source_key(image_id)
        else:
            check_id(image_id)

    def _respond(self, req: falcon.Request, resp: falcon.Response, recipe: Recipe, image_id: str,
                 cache_control: str, cache: bool, where: str | None) -> None:
        note(req, recipe=recipe.name, image_id=image_id)
        check_id(image_id)
        meta = self.derivatives.store.get_meta(image_id, cached=True)
        derivative = self.derivatives.locate(recipe, image_id, meta, req.get_header("Accept"))
        tag = etag(derivative)
        if not _not_modified(req, tag):
            # The size limits, from the stored size and the steps' parameters, before anything is
            # decoded; a stored derivative has passed them already.
            check = functools.partial(self.derivatives.check_output, derivative, where)
            try:
                delivered = self.renderer.deliver(derivative, cache=cache, before_render=check)
            except NotFoundError:
                # Its original or its metadata gone: deleted, through this process or another. The
                # cached metadata goes too, so the next request does not try again (404 at once).
                self.derivatives.store.forget_meta(image_id)
                raise
            note(req, rendered=delivered.rendered)
            if delivered.stream is None:
                resp.data = delivered.data
            elif req.method == "HEAD":
                delivered.stream.close()
                resp.content_length = delivered.length
            else:
                # A stored derivative streams from the store: sendfile for a local file when the
                # WSGI server offers wsgi.file_wrapper, block by block otherwise.
                resp.set_stream(delivered.stream, delivered.length)
            resp.content_type = derivative.encoder.media_type
            resp.set_header("Server-Timing", delivered.server_timing)
            if delivered.choice is not None and delivered.choice.quality is not None:
                resp.set_header("X-Pixline-Quality", str(delivered.choice.quality))
            if delivered.choice is not None and delivered.choice.fallback:
                cache_control = "no-store"  # not the searched output: nobody should keep it
        else:
            note(req, rendered=False)
            resp.status = falcon.HTTP_304
        # Headers only now: an error above must not go out with a success's ETag or caching.
        resp.set_header("ETag", tag)
        resp.set_header("Cache-Control", cache_control)
        if derivative.negotiated:
            resp.vary = ["Accept"]


class RecipeURL:
    """``/r/{recipe}/{image_id}``: a recipe's output for an image; ``/r/{recipe}@{digest}/{image_id}``:
    the same, pinned to the recipe's digest.

    A pinned URL names bytes that never change, so it is served ``immutable`` and a CDN keeps it for
    good; when the recipe changes, its digest and so its pinned URLs change. A pinned URL whose digest
    is no longer the recipe's answers ``302 Found`` to the current pinned URL, ``no-cache``: old pages
    keep showing images, and should the recipe go back to that digest the URL serves again.
    """

    def __init__(self, images: DerivedImages, settings: Settings) -> None:
        self.images = images
        self.links = Links(settings.public_url)
        # Recipe URLs stay the same when a recipe changes (its digest and output do not), so the
        # max-age is bounded; revalidation with the ETag is a cheap 304.
        self.cache_control = f"public, max-age={settings.recipe_max_age}"

    def on_get(self, req: falcon.Request, resp: falcon.Response, recipe: str, image_id: str) -> None:
        name, pinned, digest = recipe.partition("@")
        found = self.images.derivatives.recipe(name)
        if not pinned:
            self.images.respond(req, resp, found, image_id, self.cache_control)
            return
        if not DIGEST_RE.fullmatch(digest):
            raise ParameterError(f"{quote(digest)} is not a recipe digest (hex digits)")
        if digest != found.digest:
            self.images.check_reference(image_id)
            raise falcon.HTTPFound(self.links.pinned(name, found.digest, image_id),
                                   headers={"Cache-Control": "no-cache"})
        self.images.respond(req, resp, found, image_id, IMMUTABLE_CACHE_CONTROL)

    on_head = on_get

    def on_get_in_folder(self, req: falcon.Request, resp: falcon.Response, recipe: str, image_id: str,
                         rest: str) -> None:
        """``/r/{recipe}/{folder}/{rest…}``: a key of the ``--source`` library with slashes."""
        self.on_get(req, resp, recipe, f"{image_id}/{rest}")

    on_head_in_folder = on_get_in_folder


def signed_parts(req: falcon.Request, signature: str, path: str) -> tuple[str, str]:
    """The signature and the signed path (``/<steps>/<id>``) as the client spelled them.

    Signatures cover the request target as sent, not falcon's percent-decoded path: otherwise
    ``/t/<sig>/resize:w=300/…`` and ``/t/<sig>/resize%3Aw=300/…`` would both be valid, two cache
    entries for one image at every CDN. The server gives the raw target as ``RAW_URI`` (the front and
    gunicorn) or ``REQUEST_URI``; without either (falcon's test client) the decoded path is all there is.
    """
    raw = req.env.get("RAW_URI") or req.env.get("REQUEST_URI")
    if raw is None:
        return signature, "/" + path
    raw = raw.split("?", 1)[0]
    if not raw.startswith(PREFIX + "/"):
        raise CredentialsInvalidError(f"ad-hoc URLs are spelled {PREFIX}/<signature>/<steps>/<id> "
                                      "exactly as signed")
    given, _, rest = raw[len(PREFIX) + 1:].partition("/")
    return given, "/" + rest


class AdhocURL:
    """``/t/{signature}/{steps…}/{image_id}``: steps written in the URL, signed."""

    def __init__(self, images: DerivedImages, settings: Settings) -> None:
        self.images = images
        self.settings = settings
        registry = images.derivatives.registry
        # The same steps come back for every image and every hit: parse, validate and digest them
        # once (only valid steps are kept; only signed or allowed URLs get this far).
        self.recipe = functools.lru_cache(maxsize=ADHOC_RECIPES_KEPT)(
            lambda steps: adhoc_recipe(steps, registry, settings.max_steps))

    def on_get(self, req: falcon.Request, resp: falcon.Response, signature: str, path: str) -> None:
        # The signature is checked first, over the path as sent; what is parsed is what was signed.
        signature, signed = signed_parts(req, signature, path)
        unsafe = verify(signature, signed, self.settings.signing_key, self.settings.allow_unsafe)
        steps, image_id = split_path(signed[1:])
        recipe = self.recipe(steps)
        self.images.respond(req, resp, recipe, image_id,
                            UNSAFE_CACHE_CONTROL if unsafe else ADHOC_CACHE_CONTROL,
                            cache=not unsafe, where=ADHOC_WHERE)

    on_head = on_get

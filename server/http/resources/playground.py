"""``POST /playground?image=<id>``: render a recipe written in the request body; nothing is stored.

The page's recipe playground sends the YAML it is editing and shows the answer: the image (with
``Server-Timing``, and ``X-Pixline-Quality`` for ``quality: auto``), or a 400 problem+json whose
``line`` is the line of the YAML the error concerns (and ``step``, ``param`` when known). A
playground recipe renders anything, so it has the limits of ad-hoc URLs (``--max-steps``,
``--max-output-pixels`` checked before rendering, the render slots, ``--render-timeout``) and the
upload token: only those who may upload may use it.

Its output is never stored, so a repeated request costs a whole render again: each client address
has at most ``--playground-max-per-client`` requests in progress per process (``per_client.py``;
one more is 429), counted from before its YAML is read. Identical requests in progress at once still
share one render (``SingleFlight``, with its bounded followers): the same text for the same image
(the page's default recipe, say) renders the same bytes, and one render is cheaper than several.
"""
from __future__ import annotations

import falcon

from pixline.engine.derivatives import Derivatives
from pixline.engine.errors import ParameterError
from pixline.engine import yamltext
from pixline.engine.recipefiles import RecipeDocument
from pixline.engine.storage import check_id

from ...settings import Settings
from ..auth import require_bearer
from ..on_demand import OnDemandRenderer
from ..per_client import PerClient
from ..urlsteps import check_output_size

#: The name playground recipes render under (metrics label; their outputs are never stored).
PLAYGROUND_RECIPE = "playground"
#: The body read: as much as the YAML loader reads (a character is one byte or more).
MAX_RECIPE_BYTES = yamltext.MAX_DOCUMENT_CHARS


def read_recipe_text(req: falcon.Request) -> str:
    """The request body as text, at most :data:`MAX_RECIPE_BYTES`."""
    if req.content_length is not None and req.content_length > MAX_RECIPE_BYTES:
        raise falcon.HTTPContentTooLarge(
            description=f"a playground recipe is at most {MAX_RECIPE_BYTES} bytes")
    # A chunked body (no Content-Length) is ended by the server; read one byte past the limit.
    stream = req.bounded_stream if req.content_length is not None else req.stream
    data = stream.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:
        raise falcon.HTTPContentTooLarge(
            description=f"a playground recipe is at most {MAX_RECIPE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParameterError("playground: the recipe is not UTF-8 text") from None


class Playground:
    """Renders the posted recipe over a stored image, with the limits of an ad-hoc URL."""

    def __init__(self, derivatives: Derivatives, renderer: OnDemandRenderer, settings: Settings) -> None:
        self.derivatives = derivatives
        self.renderer = renderer
        self.settings = settings
        self.clients = PerClient(settings.playground_max_per_client, "playground")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_bearer(req, self.settings.upload_token)
        with self.clients.hold(req.remote_addr):
            self._render(req, resp)

    def _render(self, req: falcon.Request, resp: falcon.Response) -> None:
        image_id = check_id(req.get_param("image", required=True))
        meta = self.derivatives.store.get_meta(image_id)
        document = RecipeDocument(read_recipe_text(req), origin="playground")
        with document.pointing_at_lines():
            recipe = document.build(PLAYGROUND_RECIPE, self.derivatives.registry)
            limit = self.settings.max_steps
            if len(recipe.steps) > limit:
                raise ParameterError(f"playground: {len(recipe.steps)} steps; at most {limit} are allowed",
                                     step=limit + 1)
            check_output_size(recipe, int(meta.get("width", 1)), int(meta.get("height", 1)),
                              self.settings.max_output_pixels, origin="playground")
        derivative = self.derivatives.locate(recipe, image_id, meta, req.get_header("Accept"))
        delivered = self.renderer.deliver(derivative, cache=False)
        resp.data = delivered.data
        resp.content_type = derivative.encoder.media_type
        resp.cache_control = ["no-store"]
        resp.set_header("Server-Timing", delivered.server_timing)
        if delivered.choice is not None and delivered.choice.quality is not None:
            resp.set_header("X-Pixline-Quality", str(delivered.choice.quality))  # quality: auto, as /r/ says
        if derivative.negotiated:
            resp.vary = ["Accept"]

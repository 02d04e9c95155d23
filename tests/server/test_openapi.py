"""``/openapi.json`` describes every route, and the app answers as it says.

Two tests keep the document true. One walks falcon's router: a route or method the document lacks (or
describes but nobody routes) fails it, so adding a route means adding its entry to
``server/http/openapi.yaml``. The other runs schemathesis against the app in process (WSGI): requests
generated from the document, a bounded number per operation, derandomized so every run sends the same
ones; each answer must have a status, content type, headers and body the document allows, and no
answer may be a 500. A hook mixes real values (a stored image, a recipe, an image to upload, signed
ad-hoc paths) into the generated ones, so the render paths are exercised, not only the 404s.
"""
from __future__ import annotations

import re

import falcon.inspect
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pixline.engine import testing
from pixline.server.http.openapi import description
from pixline.server.http.signing import signature

HTTP_METHODS = {"get", "head", "post", "put", "delete", "patch", "options", "trace"}
#: Examples per operation: enough to reach every documented status of our routes, few enough that
#: the whole run takes seconds.
MAX_EXAMPLES = 30
#: An invalid request may also be refused for having no length (411) or being too large (413).
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": [
    400, 401, 403, 404, 405, 406, 409, 411, 413, 415, 422, 428, 429]}}})


def routed(app: falcon.App) -> set[tuple[str, str]]:
    """(path template, method) of every responder a resource implements (not falcon's defaults)."""
    found = set()
    for route in falcon.inspect.inspect_routes(app):
        template = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)  # {path:path} → {path}
        found |= {(template, m.method) for m in route.methods if not m.internal}
    return found


def documented(document: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items()
            for method in item if method in HTTP_METHODS}


def test_openapi_json_is_served_with_the_installed_version(service):
    import pixline

    result = service.client.simulate_get("/openapi.json")
    assert result.status_code == 200 and result.headers["content-type"] == "application/json"
    assert result.json["openapi"].startswith("3.") and result.json["info"]["version"] == pixline.__version__


def test_every_route_and_method_is_documented(service):
    document = service.client.simulate_get("/openapi.json").json
    app = service.client.app
    assert routed(app), "no routes found: falcon's inspect module changed?"
    missing = routed(app) - documented(document)
    assert not missing, f"routes missing from server/http/openapi.yaml: {sorted(missing)}"
    stale = documented(document) - routed(app)
    assert not stale, f"server/http/openapi.yaml describes routes the app lacks: {sorted(stale)}"


def test_the_route_walk_sees_a_route_added_later(service):
    # The check above is only as good as the walk: a new route must show up in it.
    class Extra:
        def on_put(self, req, resp):
            pass

    service.client.app.add_route("/extra/{thing}", Extra())
    assert ("/extra/{thing}", "PUT") in routed(service.client.app)


def test_public_url_becomes_the_documents_server(make_service):
    served = make_service(public_url="https://img.example.com/").client.simulate_get("/openapi.json")
    assert served.json["servers"] == [{"url": "https://img.example.com"}]


@pytest.fixture
def api_schema(make_service, mode):
    """The app's own /openapi.json, loaded by schemathesis; for valid requests, with real values mixed
    into the generated ones (an invalid request stays as schemathesis made it)."""
    service = make_service(signing_key=["test-key"], allow_unsafe=True, render_timeout=10)
    stored = service.upload(testing.jpeg_bytes(testing.gradient(64, 48)))
    doomed = service.upload(testing.jpeg_bytes(testing.gradient(48, 64)))  # the one DELETE may remove
    new_upload = testing.png_bytes()
    recipes = sorted(service.derivatives.recipes)
    adhoc = [f"resize:w=32/{stored}", f"resize:w=16,h=16,fit=cover/format:t=webp/{stored}",
             f"crop:w=10,h=10/{stored}", f"format:t=png/{stored}"]
    schema = schemathesis.openapi.from_wsgi("/openapi.json", service.client.app, config=CONFIG)
    if mode is GenerationMode.NEGATIVE:
        return schema

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        generated = st.just(path_parameters)
        if not path_parameters:
            return generated
        operation = context.operation
        real: dict = dict(path_parameters)
        if "image_id" in real:
            real["image_id"] = doomed if operation.method.upper() == "DELETE" else stored
        if "recipe" in real:
            return st.one_of(generated, st.sampled_from(recipes).map(lambda r: {**real, "recipe": r}))
        if "name" in real:
            return st.one_of(generated, st.sampled_from(recipes).map(lambda r: {**real, "name": r}))
        if "signature" in real:
            signed = [{"signature": signature("/" + p, "test-key"), "path": p} for p in adhoc]
            unsafe = [{"signature": "unsafe", "path": p} for p in adhoc]
            return st.one_of(generated, st.sampled_from(signed + unsafe))
        return st.one_of(generated, st.just(real))

    @schema.hook
    def flatmap_body(context, body):
        if isinstance(body, dict) and "file" in body:
            return st.one_of(st.just(body), st.just({**body, "file": new_upload}))
        if isinstance(body, (bytes, str)):
            return st.one_of(st.just(body), st.just(new_upload))
        return st.just(body)

    return schema


def resolve(document: dict, node: dict) -> dict:
    """``node``, or what its ``$ref`` points to."""
    while "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def negatable(document: dict, path: str, method: str) -> bool:
    """Whether schemathesis can write an invalid request: a body, or a parameter schema that says more
    than "a string" (in a path or header, anything is a string)."""
    item = document["paths"][path]
    operation = item[method.lower()]
    if "requestBody" in operation:
        return True
    for parameter in item.get("parameters", []) + operation.get("parameters", []):
        parameter = resolve(document, parameter)
        schema = resolve(document, parameter["schema"])
        if set(schema) - {"type", "example", "description"} or schema.get("type") != "string":
            return True
    return False


def refusable(document: dict, path: str, method: str) -> bool:
    item = document["paths"][path]
    return "x-schema-valid-may-be-refused" in item or "x-schema-valid-may-be-refused" in item[method.lower()]


DOCUMENT = description()
CASES = [(path, method, mode) for path, method in sorted(documented(DOCUMENT))
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or negatable(DOCUMENT, path, method)]


@pytest.mark.parametrize("path, method, mode", CASES, ids=[f"{m} {p} {g}" for p, m, g in CASES])
def test_the_app_answers_as_its_openapi_document_says(api_schema, path, method, mode):
    # Driven by hand rather than by schemathesis' pytest plugin, whose fixture-based loader does not
    # run under pytest 9.2; the checks are schemathesis' own (``call_and_validate``: all of them).
    operation = api_schema[path][method]
    # Where the document cannot say everything a valid request needs (it says why), a request that
    # fits it may still be refused: only that check is left out there.
    excluded = [positive_data_acceptance] if refusable(DOCUMENT, path, method) else []

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def check(case):
        case.call_and_validate(excluded_checks=excluded)

    check()

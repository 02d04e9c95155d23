"""GET|HEAD /r/{recipe}/{id}: stored or rendered once, caching headers, negotiation, single-flight,
load shedding; GET /images/{id}, /recipes, /healthz, /metrics."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from pixline.engine import testing
from pixline.engine.errors import RecipeError
from pixline.engine.pipeline import render
from pixline.engine.source import Source
from pixline.engine.steps import Context
from pixline.server.http.app import create_app
from pixline.server.http.metrics import Metrics
from tests import slow

from .conftest import RenderGate, Service, write_recipe
from .test_http_upload import assert_problem

EXPECTED_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif", "png": "image/png"}


def wait_until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll for a state another thread reaches (a bound against hangs, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


# -- the round trip, on local files and on S3 ---------------------------------------------------

def test_every_recipe_url_renders_stores_and_serves(make_service: Callable[..., Service],
                                                    store_settings: dict[str, Any], small_jpeg: bytes) -> None:
    service = make_service(**store_settings)
    image_id = service.upload(small_jpeg, params={"owner": "Ana"})
    for name, recipe in sorted(service.derivatives.recipes.items()):
        url = f"/r/{name}/{image_id}"
        first = service.client.simulate_get(url)
        assert first.status_code == 200, (name, first.text)
        fmt = testing.decode(first.content).get("vips-loader")[:4]
        assert first.headers["content-type"] == EXPECTED_TYPES[{"jpeg": "jpeg", "webp": "webp", "heif": "avif",
                                                                 "png": "png"}[fmt]]
        assert first.headers["content-length"] == str(len(first.content))
        assert first.headers["etag"].startswith(f'"{recipe.digest}-{image_id}-')
        assert first.headers["cache-control"] == f"public, max-age={service.settings.recipe_max_age}"
        # Stored under the recipe's digest, then served from the store (no second render).
        renders = service.metric("pixline_render_seconds_count", recipe=name)
        assert renders == 1
        key = service.derivatives.locate(recipe, image_id, service.store.get_meta(image_id)).key
        assert key.startswith(f"derived/{name}/{recipe.digest}/{image_id}.")
        assert service.store.get(key) == first.content
        second = service.client.simulate_get(url)
        assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
        assert service.metric("pixline_render_seconds_count", recipe=name) == 1
        not_modified = service.client.simulate_get(url, headers={"If-None-Match": first.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == first.headers["etag"]
        head = service.client.simulate_head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(first.content))
    thumb = testing.decode(service.client.simulate_get(f"/r/thumb/{image_id}").content)
    assert (thumb.width, thumb.height) == (200, 200)


def test_image_info_lists_stored_derivatives(make_service: Callable[..., Service],
                                             store_settings: dict[str, Any], small_jpeg: bytes) -> None:
    service = make_service(**store_settings)
    image_id = service.upload(small_jpeg, params={"owner": "Ana"})
    info = service.client.simulate_get(f"/images/{image_id}").json
    assert (info["id"], info["format"], info["width"], info["height"]) == (image_id, "jpeg", 320, 240)
    assert info["fields"] == {"owner": "Ana"}
    assert set(info["derivatives"]) == set(service.derivatives.recipes)
    assert not any(d["stored"] for d in info["derivatives"].values())
    service.client.simulate_get(f"/r/thumb/{image_id}")
    service.client.simulate_get(f"/r/feed/{image_id}", headers={"Accept": "image/webp"})
    info = service.client.simulate_get(f"/images/{image_id}").json
    thumb = info["derivatives"]["thumb"]
    digest = service.derivatives.recipes["thumb"].digest
    assert thumb == {"url": f"/r/thumb/{image_id}", "pinned_url": f"/r/thumb@{digest}/{image_id}",
                     "eager": True, "complete": True, "digest": digest, "stored": True, "formats": ["jpeg"],
                     "outputs": [{"format": "jpeg", "media_type": "image/jpeg"}], "state": "ready"}
    assert info["derivatives"]["feed"]["formats"] == ["webp"]
    assert info["derivatives"]["social"]["stored"] is False
    eager = {name for name, r in service.derivatives.recipes.items() if r.eager}
    assert {name for name, d in info["derivatives"].items() if "complete" in d} == eager
    assert info["derivatives"]["feed"]["complete"] is False  # only webp of avif/webp/jpeg is there
    assert info["derivatives"]["feed"]["state"] == "pending" and info["presets"] == "pending"


def test_image_info_shows_the_recipes_the_queue_gave_up_on(service: Service, small_jpeg: bytes) -> None:
    from pixline.server.queue.handler import JobHandler, RetryPolicy, run_job
    from pixline.server.queue.jobs import Job

    image_id = service.upload(small_jpeg)
    eager = service.derivatives.eager_recipes
    outcome = run_job(JobHandler(service.derivatives, render_time_limit=1e-9), RetryPolicy(), Job(image_id, eager))
    assert outcome.action == "dead"
    info = service.client.simulate_get(f"/images/{image_id}").json
    assert info["presets"] == "failed"
    states = {name: d["state"] for name, d in info["derivatives"].items() if d["eager"]}
    assert set(states.values()) == {"failed"} and set(states) == set(eager)
    assert all("took longer than 1e-09 s" in info["derivatives"][name]["reason"] for name in eager)

    # Rendered after all (a regenerate): ready, and the failures are forgotten.
    assert run_job(JobHandler(service.derivatives), RetryPolicy(), Job(image_id, eager)).action == "done"
    info = service.client.simulate_get(f"/images/{image_id}").json
    assert info["presets"] == "ready" and not service.derivatives.store.exists(
        service.derivatives.store.failures_key(image_id))


def test_negotiated_formats_follow_accept_and_are_stored_separately(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    answers = {}
    for accept, media in [("image/avif,image/webp,*/*", "image/avif"), ("image/webp,*/*", "image/webp"),
                          ("*/*", "image/jpeg"), (None, "image/jpeg")]:
        headers = {"Accept": accept} if accept else {}
        result = service.client.simulate_get(f"/r/feed/{image_id}", headers=headers)
        assert result.status_code == 200
        assert result.headers["content-type"] == media
        assert result.headers["vary"] == "Accept"
        answers[media] = result.headers["etag"]
    assert len(set(answers.values())) == 3
    keys = service.store.derived_keys(image_id)
    assert sorted(k.rsplit(".", 1)[1] for k in keys) == ["avif", "jpg", "webp"]
    # A recipe with a fixed format does not vary.
    assert "vary" not in service.client.simulate_get(f"/r/thumb/{image_id}").headers


def test_owner_fields_reach_watermark_templates(make_service: Callable[..., Service], tmp_path: Path,
                                                registry: Any, small_jpeg: bytes) -> None:
    folder = tmp_path / "recipes"
    write_recipe(folder, "credit", "steps:\n  - watermark: {text: '© {owner}', size: 0.2, opacity: 1}\n"
                                   "  - format: {type: png}\n")
    service = make_service(recipes=str(folder))
    image_id = service.upload(small_jpeg, params={"owner": "Ana"})
    served = service.client.simulate_get(f"/r/credit/{image_id}").content
    recipe = service.derivatives.recipes["credit"]

    def rendered_for(owner: str) -> bytes:
        ctx = Context(fields={"owner": owner})
        return render(recipe, Source(small_jpeg), registry, ctx).data

    assert testing.mean_abs_diff(testing.decode(served), testing.decode(rendered_for("Ana"))) == 0
    assert testing.mean_abs_diff(testing.decode(served), testing.decode(rendered_for("Zed"))) > 0


# -- errors ------------------------------------------------------------------------------------

def test_unknown_recipe_and_unknown_image_are_404(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    assert_problem(service.client.simulate_get(f"/r/nope/{image_id}"), 404)
    assert_problem(service.client.simulate_get("/r/thumb/0123456789abcdef0123456789abcdef"), 404)
    assert_problem(service.client.simulate_get("/images/0123456789abcdef0123456789abcdef"), 404)
    assert_problem(service.client.simulate_get("/recipes/nope"), 404)


@pytest.mark.parametrize("path", [
    "/r/thumb/..%2F..%2Fetc%2Fpasswd", "/r/..%2F..%2Fthumb/{id}", "/r/thumb/../{id}", "/r/../../etc/passwd",
    "/r/thumb/{id}%00", "/r/thumb%00/{id}", "/r/thumb/%00", "/r/" + "a" * 500 + "/{id}",
    "/r/thumb/" + "a" * 5000, "/r/THUMB/{id}", "/r/thumb/{id}.jpg", "/r/thumb/{ID}", "/r/thumb/{id}/",
    "/r/thumb", "/r/%2e%2e/{id}", "/images/..%2Fmeta%2F{id}.json",
])
def test_path_tricks_are_4xx_never_500(service: Service, small_jpeg: bytes, path: str) -> None:
    image_id = service.upload(small_jpeg)
    path = path.replace("{id}", image_id).replace("{ID}", image_id.upper())
    result = service.client.simulate_get(path)
    assert result.status_code in (400, 404), (path, result.status_code, result.text)
    assert result.headers["content-type"] == "application/problem+json"


def test_a_broken_stored_original_is_422_not_500(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    service.store.put(service.store.original_key(image_id), small_jpeg[: len(small_jpeg) // 2])
    assert_problem(service.client.simulate_get(f"/r/thumb/{image_id}"), 422)
    service.store.put(service.store.original_key(image_id), b"not an image at all")
    assert_problem(service.client.simulate_get(f"/r/feed/{image_id}"), 415)


def test_a_recipe_named_adhoc_is_refused_at_start(make_service: Callable[..., Service], tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    write_recipe(folder, "adhoc", "steps:\n  - resize: {width: 10}\n")
    with pytest.raises(RecipeError, match="reserved"):
        make_service(recipes=str(folder))


# -- single-flight and load shedding ----------------------------------------------------------------

def test_concurrent_requests_for_a_missing_derivative_render_it_once(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    gate = RenderGate(service.derivatives)
    url = f"/r/social/{image_id}"
    leader, leader_out = in_thread(lambda: service.client.simulate_get(url))
    wait_until(gate.entered.is_set, "the first request started rendering")
    followers = [in_thread(lambda: service.client.simulate_get(url)) for _ in range(4)]
    gate.release.set()
    for thread, _ in [(leader, leader_out), *followers]:
        thread.join(60)
    results = [leader_out[0]] + [out[0] for _, out in followers]
    assert [r.status_code for r in results] == [200] * 5
    assert len({r.content for r in results}) == 1
    assert gate.calls == 1
    assert service.metric("pixline_render_seconds_count", recipe="social") == 1


def test_saturated_renders_get_503_with_retry_after_while_stored_ones_are_served(
        make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(render_concurrency=1, render_max_waiting=0, render_queue_timeout=5)
    image_id = service.upload(small_jpeg)
    assert service.client.simulate_get(f"/r/thumb/{image_id}").status_code == 200  # now stored
    gate = RenderGate(service.derivatives)
    busy, busy_out = in_thread(lambda: service.client.simulate_get(f"/r/social/{image_id}"))
    wait_until(gate.entered.is_set, "a render holds the only slot")
    shed = service.client.simulate_get(f"/r/feed/{image_id}")
    body = assert_problem(shed, 503)
    assert int(shed.headers["retry-after"]) >= 1
    assert "render" in body["detail"]
    stored = service.client.simulate_get(f"/r/thumb/{image_id}")  # never waits for a render slot
    assert stored.status_code == 200
    assert service.metric("pixline_renders_shed_total") == 1
    assert service.metric("pixline_renders_in_flight") == 1
    gate.release.set()
    busy.join(60)
    assert busy_out[0].status_code == 200
    assert service.metric("pixline_renders_in_flight") == 0
    assert service.client.simulate_get(f"/r/feed/{image_id}").status_code == 200


def test_a_request_waits_for_a_slot_then_gets_503(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(render_concurrency=1, render_max_waiting=1, render_queue_timeout=0.05)
    image_id = service.upload(small_jpeg)
    gate = RenderGate(service.derivatives)
    busy, busy_out = in_thread(lambda: service.client.simulate_get(f"/r/social/{image_id}"))
    wait_until(gate.entered.is_set, "a render holds the only slot")
    assert_problem(service.client.simulate_get(f"/r/feed/{image_id}"), 503)
    gate.release.set()
    busy.join(60)
    assert busy_out[0].status_code == 200


def test_uploads_are_shed_too_when_every_slot_is_busy(make_service: Callable[..., Service],
                                                      small_jpeg: bytes, other_jpeg: bytes) -> None:
    service = make_service(render_concurrency=1, render_max_waiting=0)
    image_id = service.upload(small_jpeg)
    gate = RenderGate(service.derivatives)
    busy, _ = in_thread(lambda: service.client.simulate_get(f"/r/social/{image_id}"))
    wait_until(gate.entered.is_set, "a render holds the only slot")
    assert_problem(service.client.simulate_post("/images", body=other_jpeg), 503)
    # A re-upload of a stored image needs no decode, so it is answered.
    assert service.client.simulate_post("/images", body=small_jpeg).status_code == 200
    gate.release.set()
    busy.join(60)


# -- info endpoints ---------------------------------------------------------------------------------

def test_recipes_endpoints(service: Service) -> None:
    result = service.client.simulate_get("/recipes")
    listed = result.json["recipes"]
    assert [r["name"] for r in listed] == sorted(service.derivatives.recipes)
    # The set changes only with a restart: caches may keep it a minute.
    assert result.headers["cache-control"] == "public, max-age=60"
    for entry in listed:
        one = service.client.simulate_get(entry["url"])
        assert one.status_code == 200
        recipe = service.derivatives.recipes[entry["name"]]
        assert {k: v for k, v in one.json.items() if k != "source"} == recipe.to_dict()
        assert one.json["source"] == recipe.source  # the YAML text, for the page's playground
        assert one.headers["cache-control"] == "public, max-age=60"


def test_healthz_checks_the_store(make_service: Callable[..., Service], store_settings: dict[str, Any],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    service = make_service(**store_settings)
    ok = service.client.simulate_get("/healthz")
    assert ok.status_code == 200 and ok.json == {"status": "ok"}

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("connection refused")

    # The backend goes away (fsspec shares filesystem instances: monkeypatch undoes this).
    monkeypatch.setattr(service.store.fs, "ls", unreachable)
    assert_problem(service.client.simulate_get("/healthz"), 503)


def test_metrics_count_requests_renders_and_bytes(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    body = service.client.simulate_get(f"/r/thumb/{image_id}").content
    service.client.simulate_get(f"/r/thumb/{image_id}")
    service.client.simulate_get("/r/nope/" + image_id)
    text = service.client.simulate_get("/metrics").text
    assert 'pixline_http_requests_total{method="GET",route="/r/{recipe}/{image_id}",status="200"} 2.0' in text
    assert 'pixline_http_requests_total{method="GET",route="/r/{recipe}/{image_id}",status="404"} 1.0' in text
    assert 'pixline_http_requests_total{method="POST",route="/images",status="201"} 1.0' in text
    assert 'pixline_render_seconds_count{recipe="thumb"} 1.0' in text
    assert "pixline_renders_in_flight 0.0" in text
    assert service.metric("pixline_http_response_bytes_total", route="/r/{recipe}/{image_id}") >= 2 * len(body)


def test_many_apps_in_one_process_keep_separate_metrics(make_service: Callable[..., Service]) -> None:
    first, second = make_service(), make_service()
    first.client.simulate_get("/healthz")
    assert first.metric("pixline_http_requests_total", route="/healthz", method="GET", status="200") == 1
    assert second.metric("pixline_http_requests_total", route="/healthz", method="GET", status="200") == 0
    create_app(first.derivatives, first.settings, None, metrics=Metrics())  # no duplicate-name clash


def test_a_render_past_its_time_limit_is_stopped_with_503(make_service: Callable[..., Service],
                                                           small_jpeg: bytes,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # A limit no render can meet: past before the render starts. The pipeline checks it itself, so
    # the answer never depends on libvips reporting progress in time (for a small image it may not
    # report at all), and nothing is decoded for a response that cannot be sent.
    relaxed = make_service(render_timeout=30)  # the upload's check decode has the same limit
    image_id = relaxed.upload(small_jpeg)
    service = make_service(render_timeout=1e-9)  # the same store
    with monkeypatch.context() as patch:
        for method in ("load", "thumbnail"):
            patch.setattr(Source, method, lambda *a, **k: pytest.fail("decoded past the deadline"))
        timed_out = service.client.simulate_get(f"/r/thumb/{image_id}")
    body = assert_problem(timed_out, 503)
    assert "took longer than" in body["detail"] and timed_out.headers["retry-after"] == "30"
    assert not [k for k in service.store.derived_keys(image_id) if k.startswith("derived/thumb/")]
    assert relaxed.client.simulate_get(f"/r/thumb/{image_id}").status_code == 200


def test_large_stored_derivatives_stream_from_the_store(make_service: Callable[..., Service],
                                                        store_settings: dict[str, Any], small_jpeg: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pixline.server.http import on_demand

    monkeypatch.setattr(on_demand, "STREAM_FROM_BYTES", 100)  # every stored thumb counts as large
    service = make_service(**store_settings)
    image_id = service.upload(small_jpeg)
    rendered = service.client.simulate_get(f"/r/thumb/{image_id}")
    streamed = service.client.simulate_get(f"/r/thumb/{image_id}")
    assert len(rendered.content) > 100
    assert streamed.status_code == 200 and streamed.content == rendered.content
    assert streamed.headers["content-length"] == str(len(rendered.content))
    head = service.client.simulate_head(f"/r/thumb/{image_id}")
    assert head.content == b"" and head.headers["content-length"] == str(len(rendered.content))
    assert service.metric("pixline_http_response_bytes_total", route="/r/{recipe}/{image_id}") == \
        2 * len(rendered.content)


def test_a_slow_step_is_stopped_at_the_time_limit_long_before_it_would_finish(
        make_service: Callable[..., Service], tmp_path: Path, small_jpeg: bytes) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes, "slowthumb", "steps:\n  - resize: {width: 100}\n  - slow: {seconds: 60}\n"
                                       "  - format: {type: jpeg}\n")
    service = make_service(plugins=slow.registry(), recipes=str(recipes), render_timeout=0.5)
    image_id = service.upload(small_jpeg)
    started = time.monotonic()
    timed_out = service.client.simulate_get(f"/r/slowthumb/{image_id}")
    assert time.monotonic() - started < 20  # a bound against a hang, far from the step's 60 s
    body = assert_problem(timed_out, 503)
    assert "took longer than 0.5 s and was stopped in the slow step" in body["detail"]
    assert service.store.derived_keys(image_id) == []


def test_a_stored_hit_is_read_whole_even_from_a_stream_that_returns_less(tmp_path):
    import io

    from pixline.engine.storage import Store
    from pixline.server.http.on_demand import read_exactly

    class Trickle(io.RawIOBase):  # what a socket-like stream does: a few bytes per read
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readinto(self, buffer) -> int:
            chunk, self.data = self.data[:3], self.data[3:]
            buffer[:len(chunk)] = chunk
            return len(chunk)

    assert read_exactly(Trickle(b"0123456789"), 10) == b"0123456789"
    assert read_exactly(Trickle(b"0123"), 10) == b"0123", "a short object ends the read, no hang"
    store = Store(f"file://{tmp_path}")
    store.put("derived/x/0123456789abcdef/" + "0" * 32 + ".jpg", b"stored bytes")
    stream, length = store.open("derived/x/0123456789abcdef/" + "0" * 32 + ".jpg")
    with stream:
        assert read_exactly(stream, length) == b"stored bytes"

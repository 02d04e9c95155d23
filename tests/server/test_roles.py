"""``pixline serve --role``: which routes a process serves; digest-pinned recipe URLs."""
from __future__ import annotations

from typing import Callable

import pytest

from pixline.server.settings import Settings, SettingsError

from .conftest import Service
from .test_http_upload import assert_problem

MEDIA_ROUTES = [("POST", "/images"), ("GET", "/images/{id}"), ("DELETE", "/images/{id}")]
RESIZER_ROUTES = [("GET", "/r/thumb/{id}"), ("HEAD", "/r/thumb/{id}"), ("GET", "/t/unsafe/resize:w=50/{id}"),
                  ("GET", "/recipes"), ("GET", "/recipes/thumb")]


def call(service: Service, method: str, path: str, image_id: str, body: bytes = b""):
    return service.client.simulate_request(method, path.format(id=image_id),
                                           body=body if method == "POST" else None)


@pytest.fixture
def media(make_service: Callable[..., Service]) -> Service:
    return make_service(role="media", allow_unsafe=True)


@pytest.fixture
def resizer(make_service: Callable[..., Service]) -> Service:
    # The same store as the media service (make_service's default folder): roles share the store.
    return make_service(role="resizer", allow_unsafe=True)


@pytest.mark.parametrize("method, path", RESIZER_ROUTES)
def test_the_media_role_answers_404_for_resizer_routes(media, small_jpeg, method, path) -> None:
    image_id = media.upload(small_jpeg)
    result = call(media, method, path, image_id)
    if method == "HEAD":
        assert result.status_code == 404
        return
    body = assert_problem(result, 404)
    assert "served by the resizer role" in body["detail"]


@pytest.mark.parametrize("method, path", MEDIA_ROUTES)
def test_the_resizer_role_answers_404_for_media_routes(media, resizer, small_jpeg, method, path) -> None:
    image_id = media.upload(small_jpeg)
    body = assert_problem(call(resizer, method, path, image_id, small_jpeg), 404)
    assert "served by the media role" in body["detail"]
    assert media.store.has_image(image_id)  # the refused DELETE removed nothing


def test_each_role_serves_its_own_routes_over_one_store(media, resizer, small_jpeg) -> None:
    image_id = media.upload(small_jpeg)
    assert len(media.publisher.jobs) == 1  # the media role queues the eager recipes
    for method, path in RESIZER_ROUTES:
        assert call(resizer, method, path, image_id).status_code == 200, path
    info = media.client.simulate_get(f"/images/{image_id}").json
    assert info["derivatives"]["thumb"]["stored"]  # rendered by the resizer, seen by the media role
    for service in (media, resizer):
        assert service.client.simulate_get("/healthz").status_code == 200
        assert service.client.simulate_get("/metrics").status_code == 200
    assert media.client.simulate_delete(f"/images/{image_id}").status_code == 204
    assert_problem(resizer.client.simulate_get(f"/r/thumb/{image_id}"), 404)


def test_the_default_role_serves_everything(service: Service, small_jpeg: bytes) -> None:
    assert service.settings.role == "all"
    image_id = service.upload(small_jpeg)
    for path in ("/images/{id}", "/r/thumb/{id}", "/recipes"):
        assert service.client.simulate_get(path.format(id=image_id)).status_code == 200


def test_an_unknown_role_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="role 'converter' is not one of all, media, resizer"):
        Settings.load({"role": "converter"}, environ={})
    with pytest.raises(SettingsError, match="PIXLINE_ROLE|role 'x'"):
        Settings.load({}, environ={"PIXLINE_ROLE": "x"})


# -- digest-pinned URLs ---------------------------------------------------------------------------

def test_upload_and_image_info_give_pinned_urls_served_immutable(service: Service, small_jpeg: bytes) -> None:
    upload = service.client.simulate_post("/images", body=small_jpeg).json
    image_id, digest = upload["id"], service.derivatives.recipes["thumb"].digest
    pinned = f"/r/thumb@{digest}/{image_id}"
    assert upload["pinned_urls"]["thumb"] == pinned
    info = service.client.simulate_get(f"/images/{image_id}").json
    assert info["pinned_urls"]["thumb"] == pinned and info["derivatives"]["thumb"]["pinned_url"] == pinned
    assert set(upload["pinned_urls"]) == set(service.derivatives.recipes)

    plain = service.client.simulate_get(f"/r/thumb/{image_id}")
    result = service.client.simulate_get(pinned)
    assert result.status_code == 200 and result.content == plain.content
    assert result.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert plain.headers["cache-control"] == f"public, max-age={service.settings.recipe_max_age}"
    assert result.headers["etag"] == plain.headers["etag"]
    assert service.client.simulate_get(pinned, headers={"If-None-Match": result.headers["etag"]}).status_code == 304


def test_a_pinned_url_with_a_stale_digest_redirects_to_the_current_one(service: Service,
                                                                        small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    digest = service.derivatives.recipes["feed"].digest
    stale = "0" * len(digest)
    result = service.client.simulate_get(f"/r/feed@{stale}/{image_id}")
    assert result.status_code == 302
    assert result.headers["location"] == f"/r/feed@{digest}/{image_id}"
    assert result.headers["cache-control"] == "no-cache"
    assert not service.store.derived_keys(image_id)  # a redirect renders nothing


@pytest.mark.parametrize("path, status", [
    ("/r/thumb@not-hex/{id}", 400), ("/r/nope@abcdef0123456789/{id}", 404), ("/r/thumb@{digest}/{bad}", 400),
    ("/r/thumb@{digest}/{missing}", 404)])
def test_bad_pinned_urls_are_problems(service: Service, small_jpeg: bytes, path: str, status: int) -> None:
    image_id = service.upload(small_jpeg)
    url = path.format(id=image_id, digest=service.derivatives.recipes["thumb"].digest, bad="xyz",
                      missing="0" * 32)
    assert_problem(service.client.simulate_get(url), status)

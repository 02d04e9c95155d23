"""POST /images, DELETE /images/{id}: type by content, byte/pixel/frame limits, idempotent ids,
owner fields, tokens, eager jobs. Every bad input must be its 4xx, with nothing stored."""
from __future__ import annotations

import io
import json
import socket
import uuid
from typing import Any, Callable

import pytest
import pyvips

from pixline.engine import testing
from pixline.engine.source import content_id

from .conftest import FailingPublisher, Service, listing

SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
       b'<rect width="100" height="100" fill="red"/></svg>')


def multipart(fields: dict[str, str], file_name: str, data: bytes, part: str = "file",
              content_type: str = "image/jpeg") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{part}"; filename="{file_name}"\r\n'
              f'Content-Type: {content_type}\r\n\r\n'.encode())
    out.write(data + f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def assert_problem(result: Any, status: int) -> dict[str, Any]:
    assert result.status_code == status, result.text
    assert result.headers["content-type"] == "application/problem+json"
    assert result.headers["cache-control"] == "no-store"
    body = result.json
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def assert_nothing_stored(service: Service) -> None:
    assert service.root is not None
    assert listing(service.root, "originals") == [] and listing(service.root, "meta") == []


class ExplodingStream(io.BytesIO):
    """A request body that must not be read."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the body was read although Content-Length was already over the limit")

    readline = readinto = read


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


# -- success ----------------------------------------------------------------------------------

def test_raw_upload_stores_original_untouched_with_metadata(service: Service, small_jpeg: bytes) -> None:
    result = service.client.simulate_post("/images", body=small_jpeg, params={"owner": "Ana"},
                                          headers={"Content-Type": "application/octet-stream"})
    assert result.status_code == 201, result.text
    body = result.json
    image_id = content_id(small_jpeg)
    assert body["id"] == image_id
    assert (body["format"], body["width"], body["height"], body["bytes"]) == ("jpeg", 320, 240, len(small_jpeg))
    assert body["urls"] == {name: f"/r/{name}/{image_id}" for name in sorted(service.derivatives.recipes)}
    assert result.headers["location"] == f"/images/{image_id}"
    assert service.store.get_original(image_id) == small_jpeg
    meta = service.store.get_meta(image_id)
    assert meta["fields"] == {"owner": "Ana"} and meta["format"] == "jpeg" and meta["id"] == image_id


def test_multipart_upload_with_owner_fields(service: Service, small_jpeg: bytes) -> None:
    body, ctype = multipart({"owner": "Bob", "album": "trip"}, "holiday.png", small_jpeg)
    result = service.client.simulate_post("/images", body=body, headers={"Content-Type": ctype})
    assert result.status_code == 201, result.text
    image_id = result.json["id"]
    assert image_id == content_id(small_jpeg)
    assert result.json["format"] == "jpeg"  # by content, not by the .png name or the part's type
    assert service.store.get_original(image_id) == small_jpeg
    assert service.store.get_meta(image_id)["fields"] == {"owner": "Bob", "album": "trip"}


def test_same_bytes_same_id_second_upload_is_200_with_same_body(service: Service, small_jpeg: bytes) -> None:
    first = service.client.simulate_post("/images", body=small_jpeg, params={"owner": "first"})
    second = service.client.simulate_post("/images", body=small_jpeg, params={"owner": "second"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json == second.json
    assert service.store.get_meta(first.json["id"])["fields"] == {"owner": "first"}
    assert len(service.publisher.jobs) == 1  # no second job for the same image


def test_png_with_alpha_and_gif(service: Service) -> None:
    png = testing.png_bytes()
    result = service.client.simulate_post("/images", body=png)
    assert result.status_code == 201 and result.json["format"] == "png"
    assert service.store.get_meta(result.json["id"])["has_alpha"] is True
    gif = testing.gradient(64, 48).gifsave_buffer()
    result = service.client.simulate_post("/images", body=gif)
    assert result.status_code == 201 and result.json["format"] == "gif"


def test_chunked_upload_without_content_length(service: Service, small_jpeg: bytes) -> None:
    result = service.client.simulate_post("/images", extras={
        "wsgi.input": io.BytesIO(small_jpeg), "wsgi.input_terminated": True})
    assert result.status_code == 201, result.text
    assert service.store.get_original(result.json["id"]) == small_jpeg


def test_eager_recipes_are_published_after_storing(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    eager = tuple(sorted(n for n, r in service.derivatives.recipes.items() if r.eager))
    assert eager, "the default recipe set has eager recipes"
    assert [(j.image_id, j.recipes) for j in service.publisher.jobs] == [(image_id, eager)]


def test_publish_failure_is_counted_and_upload_succeeds(make_service: Callable[..., Service],
                                                        small_jpeg: bytes) -> None:
    service = make_service(publisher=FailingPublisher())
    result = service.client.simulate_post("/images", body=small_jpeg)
    assert result.status_code == 201
    assert service.store.has_image(result.json["id"])
    assert service.metric("pixline_publish_failures_total") == 1
    assert "pixline_publish_failures_total 1.0" in service.client.simulate_get("/metrics").text


# -- limits -----------------------------------------------------------------------------------

def test_body_over_limit_refused_from_content_length_before_reading(make_service: Callable[..., Service]) -> None:
    service = make_service(max_bytes=1000)
    result = service.client.simulate_post("/images", headers={"Content-Length": "5000"},
                                          extras={"wsgi.input": ExplodingStream()})
    assert_problem(result, 413)
    assert_nothing_stored(service)


def test_body_over_limit_refused_while_reading_without_content_length(make_service: Callable[..., Service],
                                                                      small_jpeg: bytes) -> None:
    service = make_service(max_bytes=1000)
    stream = CountingStream(small_jpeg + b"\0" * 100_000)
    result = service.client.simulate_post("/images", extras={"wsgi.input": stream,
                                                             "wsgi.input_terminated": True})
    assert_problem(result, 413)
    assert stream.consumed <= 1001  # stopped one byte past the limit
    assert_nothing_stored(service)


def test_multipart_file_over_limit(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(max_bytes=len(small_jpeg) - 1)
    body, ctype = multipart({"owner": "x"}, "a.jpg", small_jpeg)
    result = service.client.simulate_post("/images", body=body, headers={"Content-Type": ctype})
    assert_problem(result, 413)
    assert_nothing_stored(service)


def test_body_without_length_on_a_server_that_does_not_terminate_input(service: Service) -> None:
    result = service.client.simulate_post("/images", extras={"wsgi.input": io.BytesIO(b"abc")})
    assert_problem(result, 411)


def test_pixel_flood_is_refused_from_its_header(service: Service) -> None:
    flood = testing.pixel_flood_png()
    assert len(flood) < 1000
    body = assert_problem(service.client.simulate_post("/images", body=flood), 413)
    assert "pixels" in body["detail"]
    assert_nothing_stored(service)


def test_pixel_limit_is_a_setting(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(max_pixels=320 * 240 - 1)
    assert_problem(service.client.simulate_post("/images", body=small_jpeg), 413)
    assert_nothing_stored(service)


def test_too_many_frames(make_service: Callable[..., Service]) -> None:
    service = make_service(max_frames=2)
    frames = testing.gradient(16, 16 * 3).copy()  # three 16×16 pages stacked
    frames.set_type(pyvips.GValue.gint_type, "page-height", 16)
    gif = frames.gifsave_buffer()
    body = assert_problem(service.client.simulate_post("/images", body=gif), 413)
    assert "frames" in body["detail"]
    assert_nothing_stored(service)


# -- bad content ------------------------------------------------------------------------------

def test_truncated_jpeg_is_422_and_never_stored(service: Service, small_jpeg: bytes) -> None:
    truncated = small_jpeg[: len(small_jpeg) // 2]
    body = assert_problem(service.client.simulate_post("/images", body=truncated), 422)
    assert "decode" in body["detail"]
    assert_nothing_stored(service)


def test_truncated_png_is_422(service: Service) -> None:
    png = testing.png_bytes(testing.gradient(200, 200, bands=4), compression=0)
    assert_problem(service.client.simulate_post("/images", body=png[: len(png) * 2 // 3]), 422)
    assert_nothing_stored(service)


def test_text_named_jpg_is_415(service: Service) -> None:
    body, ctype = multipart({}, "photo.jpg", b"just some text, not an image\n" * 10)
    assert_problem(service.client.simulate_post("/images", body=body, headers={"Content-Type": ctype}), 415)
    raw = service.client.simulate_post("/images", body=b"hello", headers={"Content-Type": "image/jpeg"})
    assert_problem(raw, 415)
    assert_nothing_stored(service)


def test_svg_is_415(service: Service) -> None:
    assert_problem(service.client.simulate_post("/images", body=SVG,
                                                headers={"Content-Type": "image/svg+xml"}), 415)
    body, ctype = multipart({}, "logo.svg", SVG, content_type="image/svg+xml")
    assert_problem(service.client.simulate_post("/images", body=body, headers={"Content-Type": ctype}), 415)
    assert_nothing_stored(service)


@pytest.mark.parametrize("fmt", ["bmp", "pdf-like"])
def test_other_formats_are_415(service: Service, fmt: str) -> None:
    data = b"BM" + b"\0" * 60 if fmt == "bmp" else b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
    assert_problem(service.client.simulate_post("/images", body=data), 415)


def test_empty_body_is_400(service: Service) -> None:
    assert_problem(service.client.simulate_post("/images", headers={"Content-Length": "0"}), 400)


def test_multipart_without_file_and_with_two_files(service: Service, small_jpeg: bytes) -> None:
    boundary = "b0undary"
    only_field = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"owner\"\r\n\r\nx\r\n"
                  f"--{boundary}--\r\n").encode()
    ctype = f"multipart/form-data; boundary={boundary}"
    assert_problem(service.client.simulate_post("/images", body=only_field,
                                                headers={"Content-Type": ctype}), 400)
    one, ctype = multipart({}, "a.jpg", small_jpeg)
    two = one.replace(b"--\r\n", b"\r\n", 1)  # reopen the form and add a second file
    boundary = ctype.split("=", 1)[1]
    two += (f'--{boundary}\r\nContent-Disposition: form-data; name="other"; filename="b.jpg"\r\n\r\n'
            .encode() + small_jpeg + f"\r\n--{boundary}--\r\n".encode())
    assert_problem(service.client.simulate_post("/images", body=two, headers={"Content-Type": ctype}), 400)
    assert_problem(service.client.simulate_post("/images", body=b"garbage",
                                                headers={"Content-Type": "multipart/form-data"}), 400)
    assert_nothing_stored(service)


@pytest.mark.parametrize("params", [{"Owner": "x"}, {"owner": "x" * 300}, {"owner": "a\x00b"},
                                    {"../x": "y"}, {f"f{i}": "v" for i in range(20)},
                                    {"owner\n": "x"}])
def test_bad_owner_fields_are_400(service: Service, small_jpeg: bytes, params: dict[str, str]) -> None:
    assert_problem(service.client.simulate_post("/images", body=small_jpeg, params=params), 400)
    assert_nothing_stored(service)


# -- tokens and delete ------------------------------------------------------------------------

def test_upload_and_delete_need_the_token_when_configured(make_service: Callable[..., Service],
                                                          small_jpeg: bytes) -> None:
    service = make_service(upload_token="s3cret")
    missing = service.client.simulate_post("/images", body=small_jpeg)
    assert_problem(missing, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_problem(service.client.simulate_post("/images", body=small_jpeg,
                                                headers={"Authorization": "Bearer wrong"}), 403)
    assert_problem(service.client.simulate_post("/images", body=small_jpeg,
                                                headers={"Authorization": "Basic czNjcmV0"}), 401)
    assert_nothing_stored(service)
    ok = service.client.simulate_post("/images", body=small_jpeg, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 201
    image_id = ok.json["id"]
    assert_problem(service.client.simulate_delete(f"/images/{image_id}"), 401)
    assert_problem(service.client.simulate_delete(f"/images/{image_id}",
                                                  headers={"Authorization": "Bearer nope"}), 403)
    assert service.store.has_image(image_id)
    # Reading needs no token.
    assert service.client.simulate_get(f"/r/thumb/{image_id}").status_code == 200
    deleted = service.client.simulate_delete(f"/images/{image_id}", headers={"Authorization": "Bearer s3cret"})
    assert deleted.status_code == 204


def test_head_of_an_image_is_its_get_without_the_body(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    got = service.client.simulate_get(f"/images/{image_id}")
    head = service.client.simulate_head(f"/images/{image_id}")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert head.headers["cache-control"] == "no-cache"
    assert service.client.simulate_head(f"/images/{'0' * 32}").status_code == 404


def test_delete_removes_original_metadata_and_every_derivative(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    for name in ("thumb", "feed"):
        assert service.client.simulate_get(f"/r/{name}/{image_id}").status_code == 200
    assert service.store.derived_keys(image_id)
    assert service.client.simulate_delete(f"/images/{image_id}").status_code == 204
    assert not service.store.has_image(image_id)
    assert service.store.derived_keys(image_id) == []
    assert_nothing_stored(service)
    assert_problem(service.client.simulate_get(f"/images/{image_id}"), 404)
    assert_problem(service.client.simulate_get(f"/r/thumb/{image_id}"), 404)
    assert_problem(service.client.simulate_delete(f"/images/{image_id}"), 404)


@pytest.mark.parametrize("path", ["/images/..%2F..%2Fetc", "/images/%00", "/images/" + "a" * 500,
                                  "/images/0123456789ABCDEF0123456789ABCDEF"])
def test_delete_with_bad_ids_is_a_4xx(service: Service, path: str) -> None:
    result = service.client.simulate_delete(path)
    assert result.status_code in (400, 404), result.text
    assert result.headers["content-type"] == "application/problem+json"


def test_upload_metadata_is_json_in_the_store(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg, params={"owner": "Zoë"})
    raw = service.store.get(service.store.meta_key(image_id))
    assert json.loads(raw)["fields"]["owner"] == "Zoë"


def test_unreachable_broker_does_not_fail_the_upload(make_service: Callable[..., Service],
                                                     small_jpeg: bytes) -> None:
    from pixline.server.queue.publisher import AmqpJobPublisher
    from pixline.server.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens there once the socket closes
    publisher = AmqpJobPublisher(Settings(amqp=f"amqp://guest:guest@127.0.0.1:{closed_port}/"))
    service = make_service(publisher=publisher)
    result = service.client.simulate_post("/images", body=small_jpeg)
    assert result.status_code == 201, result.text
    assert service.store.get_original(result.json["id"]) == small_jpeg
    assert service.metric("pixline_publish_failures_total") == 1


def test_with_a_token_image_info_shows_strangers_only_what_its_urls_show(
        make_service: Callable[..., Service], small_jpeg: bytes, other_jpeg: bytes) -> None:
    service = make_service(upload_token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    image_id = service.client.simulate_post("/images?owner=Ada&camera=x100", body=small_jpeg,
                                            headers=auth).json["id"]
    public = service.client.simulate_get(f"/images/{image_id}")
    assert public.status_code == 200
    assert "Ada" not in public.text and "x100" not in public.text
    assert not {"fields", "uploaded_at", "reduced", "reduced_small"} & set(public.json)
    assert {"id", "format", "width", "height", "bytes", "urls", "pinned_urls", "derivatives"} <= set(public.json)
    full = service.client.simulate_get(f"/images/{image_id}", headers=auth).json
    assert full["fields"] == {"owner": "Ada", "camera": "x100"} and full["uploaded_at"]
    assert {k: v for k, v in full.items() if k in public.json} == public.json
    for headers, status in (({"Authorization": "Bearer wrong"}, 403), ({"Authorization": "Basic x"}, 401)):
        refused = service.client.simulate_get(f"/images/{image_id}", headers=headers)
        assert refused.status_code == status and "Ada" not in refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    # Without a token configured, everything is there for everybody (nothing is kept from anyone).
    open_service = make_service()
    open_id = open_service.upload(other_jpeg, params={"owner": "Ada"})
    assert open_service.client.simulate_get(f"/images/{open_id}").json["fields"] == {"owner": "Ada"}

"""The routes behind the web page: the page and its files, the gallery (``GET /images``), the recipe
playground (``POST /playground``), and what the page reads from the others (outputs per format,
recipe sources, ``Server-Timing``). The page itself runs in a real browser in tests/browser."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import pytest
import pyvips

from pixline.engine import testing
from pixline.engine.storage import Store
from pixline.server.http.resources.page import STATIC_DIR

from .conftest import Service, listing
from .test_http_upload import assert_problem

TOKEN = "page-token"
THUMB_120 = """\
description: a smaller thumb
steps:
  - resize:
      width: 120
      height: 120
      fit: cover
  - format: {type: jpeg, quality: 70}
"""


def photos(count: int) -> list[bytes]:
    """Distinct small JPEGs (distinct bytes: distinct ids)."""
    return [testing.jpeg_bytes(testing.gradient(64 + i, 48)) for i in range(count)]


def playground(service: Service, image_id: str, text: str | bytes, **headers: str) -> Any:
    return service.client.simulate_post("/playground", params={"image": image_id}, body=text,
                                        headers={"Content-Type": "application/yaml", **headers})


# -- the page and its files -------------------------------------------------------------------

def test_the_page_and_its_files_are_served_from_the_package(service: Service) -> None:
    page = service.client.simulate_get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    version = re.search(r'static/page\.js\?v=([0-9a-f]{12})"', page.text).group(1)
    assert f"static/page.css?v={version}" in page.text and "__VERSION__" not in page.text
    assert service.client.simulate_get("/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304
    for name, media_type in (("page.js", "text/javascript"), ("page.css", "text/css")):
        versioned = service.client.simulate_get(f"/static/{name}", params={"v": version})
        assert versioned.status_code == 200 and versioned.headers["content-type"].startswith(media_type)
        assert versioned.content == (STATIC_DIR / name).read_bytes()
        assert "immutable" in versioned.headers["cache-control"]
        # Without the current version (an old page, a hand-typed URL): revalidated each time.
        plain = service.client.simulate_get(f"/static/{name}")
        assert plain.content == versioned.content and plain.headers["cache-control"] == "no-cache"
        assert service.client.simulate_get(f"/static/{name}",
                                           headers={"If-None-Match": plain.headers["etag"]}).status_code == 304
    for name in ("index.html", "..%2Fapp.py", "nope.js"):
        assert_problem(service.client.simulate_get(f"/static/{name}"), 404)
    assert service.metric("pixline_http_requests_total", route="/static/{name}", method="GET", status="200") == 4


def test_the_page_fetches_nothing_from_elsewhere_and_uses_relative_urls() -> None:
    # Behind a front that routes the media and resizer roles by path, under any prefix.
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"\b(https?:)?//[a-z]", text), f"{path.name} names another host"
        assert not re.search(r"""(src|href)=["']/|fetch\(\s*[`'"]/|api\(\s*[`'"]/|url\(""", text), \
            f"{path.name} uses a root-relative URL"


def test_the_page_checks_an_auto_quality_and_draws_face_boxes_through_the_cssom() -> None:
    # The chosen quality: the header of a fresh render, else the stored output's auto_quality,
    # a whole number 1..100 before it is shown.
    script = (STATIC_DIR / "page.js").read_text()
    assert 'headers.get("X-Pixline-Quality")' in script and "auto_quality" in script
    assert "Number.isInteger(n) && n >= 1 && n <= 100" in script
    assert "quality q${quality} (auto)" in script
    # The faces: analysis.faces in fractions, clamped, placed with element.style in percentages
    # (the page's CSP refuses style="" attributes and any inline style).
    assert "(meta.analysis || {}).faces" in script and "Math.min(Math.max(value, 0), 1)" in script
    for side in ("left", "top", "width", "height"):
        assert f"box.style.{side} = `${{" in script
    for path in STATIC_DIR.iterdir():
        assert not re.search(r"""setAttribute\(\s*["']style|\bstyle=["'][^"']|<style""", path.read_text()), path.name
    assert re.search(r"^\.face-box \{[^}]*position: absolute", (STATIC_DIR / "page.css").read_text(), re.M)


# -- the gallery ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_gallery_lists_uploads_newest_first_in_pages(make_service: Callable[..., Service],
                                                     request: pytest.FixtureRequest, backend: str) -> None:
    store: dict[str, Any] = {}
    if backend == "s3":
        store = {"store": request.getfixturevalue("s3_store_url"),
                 "s3_endpoint": request.getfixturevalue("s3_settings")["endpoint_url"]}
    service = make_service(**store)
    assert service.client.simulate_get("/images").json == {"images": [], "next": None}
    ids = [service.upload(data, params={"owner": f"o{i}"}) for i, data in enumerate(photos(5))]
    newest_first = ids[::-1]
    first = service.client.simulate_get("/images", params={"limit": "2"})
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    assert [i["id"] for i in first.json["images"]] == newest_first[:2]
    entry = first.json["images"][0]
    assert entry["fields"] == {"owner": "o4"} and entry["url"] == f"/images/{ids[4]}"
    assert entry["urls"]["thumb"] == f"/r/thumb/{ids[4]}" and (entry["width"], entry["height"]) == (68, 48)
    # The page paints each tile with its placeholder until the output loads: the same as GET /images/{id}.
    assert re.fullmatch(r"#[0-9a-f]{6}", entry["placeholders"]["colour"])
    assert entry["placeholders"] == service.client.simulate_get(f"/images/{ids[4]}").json["placeholders"]
    seen, cursor = [], None
    while True:
        page = service.client.simulate_get("/images", params={"limit": "2", **({"after": cursor} if cursor else {})})
        seen += [i["id"] for i in page.json["images"]]
        cursor = page.json["next"]
        if cursor is None:
            break
    assert seen == newest_first
    # A deleted image leaves the gallery with everything else of it.
    assert service.client.simulate_delete(f"/images/{ids[2]}").status_code == 204
    remaining = service.client.simulate_get("/images").json
    assert [i["id"] for i in remaining["images"]] == [i for i in newest_first if i != ids[2]]


def test_gallery_skips_a_second_entry_of_one_image(service: Service, small_jpeg: bytes) -> None:
    # Two processes storing the same bytes at once each write an entry; meta keeps one time.
    image_id = service.upload(small_jpeg)
    service.store.put(Store.recent_key(image_id, "2001-01-01T00:00:00.000+00:00"), b"")
    assert [i["id"] for i in service.client.simulate_get("/images").json["images"]] == [image_id]


def test_gallery_entries_sort_by_upload_time_to_the_millisecond() -> None:
    image_id = "0" * 32
    earlier = Store.recent_key(image_id, "2024-05-01T10:00:00.001+00:00")
    later = Store.recent_key(image_id, "2024-05-01T10:00:00.002+00:00")
    assert later < earlier  # listed first
    assert Store.recent_key(image_id, "2024-05-01T12:00:00.001+02:00") == earlier


@pytest.mark.parametrize("query, fragment", [
    ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "x"}, "limit"),
    ({"after": "../meta"}, "cursor"), ({"after": "1" * 13 + "-" + "A" * 32}, "cursor"),
])
def test_gallery_bad_paging_is_400(service: Service, query: dict[str, str], fragment: str) -> None:
    body = assert_problem(service.client.simulate_get("/images", params=query), 400)
    assert fragment in body["detail"]


def test_gallery_takes_the_upload_token(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(upload_token=TOKEN)
    service.upload(small_jpeg, headers={"Authorization": f"Bearer {TOKEN}"})
    missing = service.client.simulate_get("/images")
    assert_problem(missing, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_problem(service.client.simulate_get("/images", headers={"Authorization": "Bearer nope"}), 403)
    ok = service.client.simulate_get("/images", headers={"Authorization": f"Bearer {TOKEN}"})
    assert len(ok.json["images"]) == 1


# -- the playground ---------------------------------------------------------------------------

def test_playground_renders_the_posted_recipe_and_stores_nothing(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    result = playground(service, image_id, THUMB_120)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"] == "image/jpeg" and result.headers["cache-control"] == "no-store"
    assert re.fullmatch(r"render;dur=[\d.]+", result.headers["server-timing"])
    image = pyvips.Image.new_from_buffer(result.content, "")
    assert (image.width, image.height) == (120, 120)
    assert listing(service.root, "derived") == []
    assert service.metric("pixline_render_seconds_count", recipe="playground") == 1
    # format: auto follows Accept, as a recipe URL does.
    auto = playground(service, image_id, "steps:\n  - resize: {width: 50}\n  - format: {type: auto}\n",
                      Accept="image/webp,*/*")
    assert auto.headers["content-type"] == "image/webp" and auto.headers["vary"] == "Accept"
    assert "x-pixline-quality" not in result.headers and "x-pixline-quality" not in auto.headers


def test_playground_says_the_quality_a_quality_auto_recipe_chose(service: Service, small_jpeg: bytes) -> None:
    # The page shows it on the playground's result line ("quality q<N> (auto)"), as on the outputs.
    image_id = service.upload(small_jpeg)
    result = playground(service, image_id, "steps:\n  - resize: {width: 50}\n  - format: {type: webp, quality: auto}\n")
    assert result.status_code == 200, result.text
    assert 1 <= int(result.headers["x-pixline-quality"]) <= 100
    assert listing(service.root, "derived") == []


@pytest.mark.parametrize("text, line, step, param, fragment", [
    (THUMB_120.replace("height: 120", "heigth: 120"), 5, 1, "heigth", "unknown parameter"),
    (THUMB_120.replace("quality: 70", "quality: 700"), 7, 2, "quality", "is not a quality: give a whole number 1-100"),
    (THUMB_120.replace("- format", "- fromat"), 7, 2, None, "unknown step 'fromat'"),
    (THUMB_120.replace("      fit: cover", "     fit: cover"), 6, None, None, "not valid YAML"),
    (THUMB_120 + "eager: maybe\n", 8, None, None, "'eager' must be a bool"),
    ("", 1, None, None, "a recipe is a mapping"),
    # the limits of ad-hoc URLs, checked before rendering, at the line of the step
    (THUMB_120.replace("fit: cover", "fit: cover\n  - resize: {width: 9000, enlarge: true}"), 7, 2, None,
     "over the limit of 16000000"),
    ("steps:\n" + "  - resize: {width: 100}\n" * 11, 12, 11, None, "11 steps; at most 10"),
])
def test_playground_errors_point_at_their_line(service: Service, small_jpeg: bytes, text: str, line: int,
                                               step: int | None, param: str | None, fragment: str) -> None:
    image_id = service.upload(small_jpeg)
    body = assert_problem(playground(service, image_id, text), 400)
    assert fragment in body["detail"] and body["detail"].startswith("playground")
    assert (body["line"], body.get("step"), body.get("param")) == (line, step, param)
    assert service.metric("pixline_render_seconds_count", recipe="playground") == 0


def test_playground_bad_requests(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(upload_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    image_id = service.upload(small_jpeg, headers=auth)
    assert_problem(playground(service, image_id, THUMB_120), 401)
    assert_problem(playground(service, image_id, THUMB_120, Authorization="Bearer nope"), 403)
    assert_problem(playground(service, "f" * 32, THUMB_120, **auth), 404)
    assert_problem(playground(service, "../x", THUMB_120, **auth), 400)
    missing = service.client.simulate_post("/playground", body=THUMB_120, headers=auth)
    assert "image" in assert_problem(missing, 400)["detail"]
    assert_problem(playground(service, image_id, "# " + "x" * 70_000, **auth), 413)
    assert "UTF-8" in assert_problem(playground(service, image_id, b"steps: [\xff]", **auth), 400)["detail"]
    assert playground(service, image_id, THUMB_120, **auth).status_code == 200


def test_playground_has_the_render_time_limit(make_service: Callable[..., Service], photo_bytes: bytes) -> None:
    # A limit no render can meet, on a full-size encode: libvips reports progress while it computes
    # one (a small image may be done before its first report).
    relaxed = make_service(render_timeout=30)  # the upload's check decode has the same limit
    image_id = relaxed.upload(photo_bytes)
    service = make_service(render_timeout=1e-9)  # the same store
    body = assert_problem(playground(service, image_id, "steps:\n  - format: {type: png}\n"), 503)
    assert "took longer than" in body["detail"]


def test_playground_output_limit_is_the_setting(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(max_output_pixels=10_000)
    image_id = service.upload(small_jpeg)
    body = assert_problem(playground(service, image_id, THUMB_120), 400)  # 120×120 = 14400
    assert (body["line"], body["step"]) == (3, 1)


# -- what the page reads from the other routes ------------------------------------------------

def test_image_lists_every_output_of_each_recipe(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    derivatives = service.client.simulate_get(f"/images/{image_id}").json["derivatives"]
    assert derivatives["thumb"]["outputs"] == [{"format": "jpeg", "media_type": "image/jpeg"}]
    feed = {o["format"]: o["media_type"] for o in derivatives["feed"]["outputs"]}
    assert feed == {"jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}
    for fmt, media_type in feed.items():
        result = service.client.simulate_get(f"/r/feed/{image_id}", headers={"Accept": media_type})
        assert result.headers["content-type"] == media_type


def test_recipe_source_is_its_yaml_text(service: Service) -> None:
    for name, recipe in service.derivatives.recipes.items():
        body = service.client.simulate_get(f"/recipes/{name}").json
        assert body["source"] == Path(recipe.origin).read_text()


def test_recipe_urls_say_whether_they_rendered_in_server_timing(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    first = service.client.simulate_get(f"/r/thumb/{image_id}")
    again = service.client.simulate_get(f"/r/thumb/{image_id}")
    assert re.fullmatch(r"render;dur=[\d.]+", first.headers["server-timing"])
    assert re.fullmatch(r"store;dur=[\d.]+", again.headers["server-timing"])

"""Originals served where they are (``--source``; issue 19, 2): a recipe URL for a key of a read-only
library renders with no upload, through every check an upload gets; the library is never written
(checked byte for byte); path tricks are refused; a changed object is a new image, so its old
derivatives are never served for it; DELETE forgets pixline's copies only. On a folder and on a real
S3 prefix (SeaweedFS)."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from pixline.engine import testing
from pixline.engine.library import open_library, source_id

from .conftest import Service


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def library_dir(tmp_path: Path, photo_bytes: bytes) -> Path:
    root = tmp_path / "library"
    (root / "photos" / "2024").mkdir(parents=True)
    (root / "photos" / "2024" / "storm.jpg").write_bytes(photo_bytes)
    (root / "flat.jpg").write_bytes(testing.jpeg_bytes(testing.gradient(320, 200)))
    (root / "flood.png").write_bytes(testing.pixel_flood_png())
    (root / "text.jpg").write_bytes(b"not an image")
    (root / "half.jpg").write_bytes(photo_bytes[: len(photo_bytes) // 2])
    (tmp_path / "secret.jpg").write_bytes(photo_bytes)
    (root / "escape.jpg").symlink_to(tmp_path / "secret.jpg")
    return root


def in_place(make_service: Callable[..., Service], source: str, **more: Any) -> Service:
    return make_service(source=source, **{"source_recheck": 0, **more})


def test_a_key_renders_in_place_and_the_library_is_never_written(
        make_service: Callable[..., Service], library_dir: Path) -> None:
    before = snapshot(library_dir)
    service = in_place(make_service, str(library_dir))
    for url in ("/r/thumb/photos/2024/storm.jpg", "/r/thumb/flat.jpg"):
        got = service.client.simulate_get(url)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg", got.text
        assert testing.decode(got.content).width == 200
    again = service.client.simulate_get("/r/thumb/photos/2024/storm.jpg")
    assert again.headers["server-timing"].startswith("store"), "the second request rendered again"
    library = open_library(str(library_dir))
    image_id = source_id("photos/2024/storm.jpg", library.stat("photos/2024/storm.jpg"))
    info = service.client.simulate_get(f"/images/{image_id}").json
    assert info["source_key"] == "photos/2024/storm.jpg" and info["derivatives"]["thumb"]["stored"]
    # Pinned URLs work for keys as for ids; an old digest redirects to the current one.
    digest = info["derivatives"]["thumb"]["digest"]
    pinned = service.client.simulate_get(f"/r/thumb@{digest}/photos/2024/storm.jpg")
    assert pinned.status_code == 200 and "immutable" in pinned.headers["cache-control"]
    moved = service.client.simulate_get("/r/thumb@0123456789abcdef/photos/2024/storm.jpg")
    assert moved.status_code == 302 and moved.headers["location"].endswith("/photos/2024/storm.jpg")
    # pixline keeps meta and reduced copies, never the original.
    assert not (service.root / "originals").exists() or not list((service.root / "originals").iterdir())
    assert snapshot(library_dir) == before


@pytest.mark.parametrize("path,status", [
    ("/r/thumb/missing.jpg", 404), ("/r/thumb/photos/2024/nope.jpg", 404), ("/r/thumb/photos", 404),
    ("/r/thumb/escape.jpg", 404), ("/r/thumb/photos/../flat.jpg", 400), ("/r/thumb/photos/%2e%2e/flat.jpg", 400),
    ("/r/thumb/photos//2024/storm.jpg", 400), ("/r/thumb/a%5Cb.jpg", 400), ("/r/thumb/a%00b.jpg", 400),
    ("/r/thumb/" + "x" * 1100, 400), ("/r/thumb/flood.png", 413), ("/r/thumb/text.jpg", 415),
    ("/r/thumb/half.jpg", 422), ("/r/nosuchrecipe/flat.jpg", 404),
])
def test_path_tricks_and_bad_originals_are_refused_with_their_status(
        make_service: Callable[..., Service], library_dir: Path, path: str, status: int) -> None:
    before = snapshot(library_dir)
    service = in_place(make_service, str(library_dir))
    got = service.client.simulate_get(path)
    assert got.status_code == status, (path, got.status_code, got.text)
    assert got.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in got.text and str(library_dir.parent) not in got.text
    assert snapshot(library_dir) == before
    assert not (service.root / "meta").exists() or not list((service.root / "meta").iterdir())


def test_without_a_source_a_key_is_not_an_image(make_service: Callable[..., Service]) -> None:
    service = make_service()
    assert service.client.simulate_get("/r/thumb/flat.jpg").status_code == 400
    assert service.client.simulate_get("/r/thumb/photos/2024/storm.jpg").status_code in (400, 404)


def test_a_changed_object_is_a_new_image_and_its_old_outputs_are_not_served(
        make_service: Callable[..., Service], library_dir: Path) -> None:
    service = in_place(make_service, str(library_dir))
    first = service.client.simulate_get("/r/thumb/flat.jpg")
    assert first.status_code == 200
    (library_dir / "flat.jpg").write_bytes(testing.jpeg_bytes(testing.gradient(640, 100)))
    second = service.client.simulate_get("/r/thumb/flat.jpg")
    assert second.status_code == 200 and second.headers["etag"] != first.headers["etag"]
    assert second.content != first.content
    image = testing.decode(second.content)
    assert (image.width, image.height) == (200, 100)  # the new 640×100 one, covered without enlarging


def test_a_render_that_finds_the_bytes_changed_takes_the_new_version(
        make_service: Callable[..., Service], library_dir: Path) -> None:
    # Within --source-recheck the key's image is remembered; a render that reads the library and
    # finds another version there is not made of the old image's record.
    service = in_place(make_service, str(library_dir), source_recheck=3600)
    assert service.client.simulate_get("/r/thumb/flat.jpg").status_code == 200
    (library_dir / "flat.jpg").write_bytes(testing.jpeg_bytes(testing.gradient(100, 640)))
    os.utime(library_dir / "flat.jpg", ns=(10**18, 10**18))
    got = service.client.simulate_get("/r/large/flat.jpg")  # not stored yet: renders from the library
    assert got.status_code == 200
    image = testing.decode(got.content)
    assert image.height > image.width, "rendered from the old version's record"


def test_delete_forgets_pixline_s_copies_only(make_service: Callable[..., Service], library_dir: Path) -> None:
    before = snapshot(library_dir)
    service = in_place(make_service, str(library_dir))
    assert service.client.simulate_get("/r/thumb/flat.jpg").status_code == 200
    image_id = source_id("flat.jpg", open_library(str(library_dir)).stat("flat.jpg"))
    assert service.client.simulate_delete(f"/images/{image_id}").status_code == 204
    assert service.client.simulate_get(f"/images/{image_id}").status_code == 404
    assert snapshot(library_dir) == before
    assert service.client.simulate_get("/r/thumb/flat.jpg").status_code == 200  # recorded again


@pytest.mark.s3
def test_an_s3_key_renders_in_place(make_service: Callable[..., Service], s3_settings: dict,
                                    s3_store_url: str, photo_bytes: bytes) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(key=s3_settings["key"], secret=s3_settings["secret"],
                           client_kwargs={"endpoint_url": s3_settings["endpoint_url"]})
    prefix = f"{s3_settings['bucket']}/site-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(f"{prefix}/2024/storm.jpg", photo_bytes)
    service = in_place(make_service, f"s3://{prefix}/", store=s3_store_url,
                       s3_endpoint=s3_settings["endpoint_url"])
    got = service.client.simulate_get("/r/thumb/2024/storm.jpg")
    assert got.status_code == 200 and testing.decode(got.content).width == 200
    assert service.client.simulate_get("/r/thumb/2024/missing.jpg").status_code == 404
    fs.invalidate_cache()
    assert fs.find(prefix) == [f"{prefix}/2024/storm.jpg"] and fs.cat(f"{prefix}/2024/storm.jpg") == photo_bytes

"""The reduced copy through the service: made at upload, rendered from, deleted with the image."""
from __future__ import annotations

from typing import Callable

import pytest

from pixline.engine import testing
from pixline.engine.storage import REDUCED_SMALL, Store
from pixline.server.http.signing import sign_path
from pixline.server.queue.handler import JobHandler
from pixline.server.queue.jobs import Job

from .conftest import Service, listing
from .test_http_upload import assert_nothing_stored, assert_problem

KEY = "copy-key"


def test_upload_keeps_reduced_copies_that_render_what_fits_and_go_with_the_image(
        make_service: Callable[..., Service]) -> None:
    service = make_service(reduced_size=1000, reduced_small_size=640, signing_key=[KEY])
    wood = testing.photo("Wood.jpg").read_bytes()  # 2560×1920
    image_id = service.upload(wood)
    info = service.client.simulate_get(f"/images/{image_id}").json
    assert (info["reduced"]["width"], info["reduced"]["height"]) == (1000, 750)
    assert (info["reduced_small"]["width"], info["reduced_small"]["height"]) == (640, 480)
    copy = testing.decode(service.store.get(Store.reduced_key(image_id)))
    assert (copy.width, copy.height) == (1000, 750)
    small = testing.decode(service.store.get(Store.reduced_key(image_id, REDUCED_SMALL)))
    assert (small.width, small.height) == (640, 480)

    # Without the original, what fits within a copy still renders (from the copy); what does not,
    # cannot. The queue's decode-once starts from a copy too.
    service.store.delete(Store.original_key(image_id))
    feed = service.client.simulate_get(f"/r/feed/{image_id}")
    assert feed.status_code == 200 and testing.decode(feed.content).width == 600
    fits = service.client.simulate_get(sign_path(f"resize:w=900/{image_id}", KEY))
    assert fits.status_code == 200 and testing.decode(fits.content).width == 900
    assert_problem(service.client.simulate_get(sign_path(f"resize:w=1200/{image_id}", KEY)), 404)
    assert_problem(service.client.simulate_get(f"/r/large/{image_id}"), 404)
    report = JobHandler(service.derivatives).handle(Job(image_id, ("thumb",)))
    assert len(report.rendered) == 1

    # What fits within the small copy renders from it alone; the rest needs the large one.
    service.store.delete(Store.reduced_key(image_id))
    small_fit = service.client.simulate_get(sign_path(f"resize:w=500/{image_id}", KEY))
    assert small_fit.status_code == 200 and testing.decode(small_fit.content).width == 500
    assert_problem(service.client.simulate_get(sign_path(f"resize:w=700/{image_id}", KEY)), 404)

    assert service.client.simulate_delete(f"/images/{image_id}").status_code == 204
    assert not service.store.exists(Store.reduced_key(image_id))
    assert not service.store.exists(Store.reduced_key(image_id, REDUCED_SMALL))


def test_an_upload_between_the_two_sizes_gets_the_small_copy_only(make_service: Callable[..., Service]) -> None:
    service = make_service(reduced_size=3072, reduced_small_size=768)
    image_id = service.upload(testing.photo("Wood.jpg").read_bytes())  # 2560×1920
    info = service.client.simulate_get(f"/images/{image_id}").json
    assert "reduced" not in info and (info["reduced_small"]["width"], info["reduced_small"]["height"]) == (768, 576)
    assert not service.store.exists(Store.reduced_key(image_id))
    assert service.store.exists(Store.reduced_key(image_id, REDUCED_SMALL))


def test_small_uploads_get_no_copy(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(reduced_size=1000)
    image_id = service.upload(small_jpeg)
    info = service.client.simulate_get(f"/images/{image_id}").json
    assert "reduced" not in info and "reduced_small" not in info
    assert not service.store.exists(Store.reduced_key(image_id))
    assert not service.store.exists(Store.reduced_key(image_id, REDUCED_SMALL))


@pytest.mark.parametrize("sizes", [
    {"reduced_size": 1000},                               # both copies: the large one's decode checks
    {"reduced_size": 3072, "reduced_small_size": 768},    # the small copy alone: its decode checks
])
def test_a_truncated_large_upload_is_refused_and_nothing_is_stored(make_service: Callable[..., Service],
                                                                   sizes: dict) -> None:
    service = make_service(**sizes)
    wood = testing.photo("Wood.jpg").read_bytes()
    assert_problem(service.client.simulate_post("/images", body=wood[: len(wood) // 2]), 422)
    assert_nothing_stored(service)
    assert listing(service.root, "reduced") == []


def test_a_large_jpeg_is_decoded_once_at_upload_for_its_copy(make_service: Callable[..., Service],
                                                             monkeypatch, small_jpeg: bytes) -> None:
    """The copy's decode reads the whole file, so it is the upload's check: no second decode. Other
    uploads still get the small check decode."""
    from pixline.engine.source import Source

    checked: list[str] = []
    real = Source.verify
    monkeypatch.setattr(Source, "verify", lambda self, deadline=None: (checked.append(self.format),
                                                                       real(self, deadline))[1])
    service = make_service(reduced_size=1000)
    service.upload(testing.photo("Wood.jpg").read_bytes())  # 2560×1920: a copy
    assert checked == []
    service.upload(small_jpeg)  # no copy: the check decode
    service.upload(testing.gradient(1200, 900).pngsave_buffer())  # a copy, but not a JPEG
    assert checked == ["jpeg", "png"]


def test_the_copy_decode_has_the_render_time_limit(make_service: Callable[..., Service]) -> None:
    service = make_service(reduced_size=1000, render_timeout=1e-9)
    body = assert_problem(service.client.simulate_post("/images", body=testing.photo("Wood.jpg").read_bytes()),
                          413)
    assert "costs too much to decode" in body["detail"]
    assert_nothing_stored(service)

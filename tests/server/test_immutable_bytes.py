"""A pinned URL (``/r/<recipe>@<digest>/<id>``, served ``immutable``) never changes bytes once served:
the first derivative stored under a key stays, on local files and on S3 alike. The queue renders from
its one shrunk decode and so makes other bytes than an on-demand render of the same key; whichever
is stored first is what every later request gets (docs/security.md, "Logs, what is public,
immutable bytes")."""
from __future__ import annotations

from typing import Any, Callable

from pixline.server.queue.handler import JobHandler, decode_once
from pixline.server.queue.jobs import Job

from .conftest import Service


def test_a_pinned_url_keeps_its_first_bytes_when_the_queue_renders_it_later(
        make_service: Callable[..., Service], store_settings: dict[str, Any], photo_bytes: bytes) -> None:
    service = make_service(**store_settings)
    image_id = service.upload(photo_bytes)
    info = service.client.simulate_get(f"/images/{image_id}").json
    eager = sorted(name for name, d in info["derivatives"].items() if d["eager"])
    assert eager, "the default recipe set has eager recipes"
    served = {}
    for name in eager:
        first = service.client.simulate_get(info["pinned_urls"][name], headers={"Accept": "image/jpeg"})
        assert first.status_code == 200 and "immutable" in first.headers["cache-control"]
        served[name] = first.content
    # The queue's decode-once render of the same keys, as an upload's eager job does it.
    report = JobHandler(service.derivatives).handle(Job(image_id, tuple(eager)))
    assert not report.failed
    for name in eager:
        again = service.client.simulate_get(info["pinned_urls"][name], headers={"Accept": "image/jpeg"})
        assert again.content == served[name], f"{name}: the pinned URL's bytes changed"


def test_a_render_racing_a_stored_one_answers_with_the_stored_bytes(
        make_service: Callable[..., Service], store_settings: dict[str, Any], photo_bytes: bytes) -> None:
    """The queue's existence check and a request's render can interleave: the job then stores its
    own render of a key a request stored meanwhile. It must keep the first, on S3 too (a conditional
    PUT), and answer with it."""
    service = make_service(**store_settings)
    image_id = service.upload(photo_bytes)
    info = service.client.simulate_get(f"/images/{image_id}").json
    name = next(name for name, d in sorted(info["derivatives"].items()) if d["eager"])
    derivatives = service.derivatives
    recipe = derivatives.recipes[name]
    meta = derivatives.store.get_meta(image_id)
    target = derivatives.targets(recipe, image_id, meta)[0]
    # The job's one decode, from the copy every eager recipe fits within, at the largest size any needs.
    eager = [r for r in derivatives.recipes.values() if r.eager]
    source = derivatives.source(image_id, eager, meta)
    decoded = decode_once(source, eager)
    queue_bytes = derivatives.render(target, source=source, decoded=decoded, store=False).data
    first = service.client.simulate_get(f"/r/{name}@{recipe.digest}/{image_id}",
                                        headers={"Accept": target.encoder.media_type})
    assert first.status_code == 200
    assert first.content != queue_bytes, "the two paths make the same bytes: nothing to race"
    # The job's render, stored after the request's: it is refused, and answers with the first.
    raced = derivatives.render(target, source=source, decoded=decoded)
    assert raced.data == first.content
    assert derivatives.store.get(target.key) == first.content

"""A DELETE racing renders (issue 18, 3; docs/security.md, "A delete racing renders").

Renders are held at a known point by the ``gate`` step below (registered in code, as tests/slow.py
does for ``slow``), so each race is played in one order, not hoped for: a render is inside its steps
when the DELETE lands, then finishes. Two apps over one store stand for two processes (each has its
own metadata cache). Every test runs on local files and on SeaweedFS S3.
"""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pyvips
import pytest

from pixline.engine import Context, Registry, Step, StepParams, hookimpl
from pixline.engine.errors import ImageDeletedError
from pixline.engine.storage import Store
from pixline.server.queue.handler import JobHandler, PoisonJobError
from pixline.server.queue.jobs import Job, outbox_key

from .conftest import Service, write_recipe

#: Set by the test to let held renders go on; ``ENTERED`` is set by each render reaching the step.
RELEASE = threading.Event()
ENTERED = threading.Semaphore(0)


class Gate(Step):
    """Hold the render until the test sets :data:`RELEASE`."""

    name = "gate"
    version = "1"
    Params = StepParams

    def apply(self, image: pyvips.Image, params: StepParams, ctx: Context) -> pyvips.Image:
        ENTERED.release()
        assert RELEASE.wait(60), "the test never released the render"
        return image


@hookimpl
def pixline_register_steps(register: Callable[[type[Step]], None]) -> None:
    register(Gate)


GATED = """description: held by the test's gate step
eager: {eager}
steps:
  - resize: {{width: 160, fit: inside}}
  - gate: {{}}
  - format: {fmt}
"""


@pytest.fixture
def gated(tmp_path: Path, make_service: Callable[..., Service], store_settings: dict[str, Any]):
    """``make()`` → an app over one shared store whose recipes are ``held`` (jpeg, on demand),
    ``eager-held`` (webp and jpeg, eager) and the plain ``quick`` (jpeg, eager)."""
    registry = Registry.load()
    registry.add("gate", sys.modules[__name__], "pixline-test-gate", "1")
    folder = tmp_path / "gated-recipes"
    write_recipe(folder, "held", GATED.format(eager="false", fmt="{type: jpeg}"))
    write_recipe(folder, "eager-held", GATED.format(eager="true",
                                                    fmt="{type: auto, candidates: [webp, jpeg]}"))
    write_recipe(folder, "quick", "eager: true\nsteps:\n  - resize: {width: 80}\n  - format: {type: jpeg}\n")
    RELEASE.clear()
    while ENTERED.acquire(blocking=False):
        pass

    def make(**settings: Any) -> Service:
        return make_service(plugins=registry, recipes=str(folder), **{**store_settings, **settings})

    yield make
    RELEASE.set()  # a failed test leaves no render held


def leftovers(store: Store, image_id: str) -> list[str]:
    """Every key of the store that names ``image_id`` (a write in progress in tmp/ aside)."""
    return [key for key in store.list_keys("") if image_id in key and not key.startswith("tmp/")]


def held_get(pool: ThreadPoolExecutor, service: Service, path: str) -> Future:
    """GET ``path`` on a pool thread; returns once its render is held in the gate step."""
    future = pool.submit(service.client.simulate_get, path)
    assert ENTERED.acquire(timeout=60), "the render never reached the gate"
    return future


def test_a_render_finishing_after_the_delete_stores_nothing(gated, small_jpeg: bytes) -> None:
    service = gated()
    image_id = service.upload(small_jpeg)
    assert service.client.simulate_get(f"/r/quick/{image_id}").status_code == 200
    with ThreadPoolExecutor(2) as pool:
        racing = held_get(pool, service, f"/r/held/{image_id}")
        assert service.client.simulate_delete(f"/images/{image_id}").status_code == 204
        RELEASE.set()
        assert racing.result(60).status_code == 404
    assert leftovers(service.store, image_id) == []
    for path in (f"/r/held/{image_id}", f"/r/quick/{image_id}", f"/images/{image_id}"):
        assert service.client.simulate_get(path).status_code == 404
    assert service.client.simulate_delete(f"/images/{image_id}").status_code == 404


def test_another_process_stops_serving_at_once_and_its_render_stores_nothing(gated, small_jpeg: bytes) -> None:
    """``other`` has the image's metadata cached (it served the image); the DELETE goes to ``media``."""
    media, other = gated(), gated()
    image_id = media.upload(small_jpeg)
    assert other.client.simulate_get(f"/r/quick/{image_id}").status_code == 200  # its meta cached
    with ThreadPoolExecutor(2) as pool:
        racing = held_get(pool, other, f"/r/held/{image_id}")
        assert media.client.simulate_delete(f"/images/{image_id}").status_code == 204
        # Its stored derivative is gone: a render, which finds the image deleted before it starts.
        assert other.client.simulate_get(f"/r/quick/{image_id}").status_code == 404
        RELEASE.set()
        assert racing.result(60).status_code == 404
    assert leftovers(media.store, image_id) == []
    assert media.client.simulate_delete(f"/images/{image_id}").status_code == 404


def test_a_derivative_left_behind_is_served_no_longer_than_the_cache_ttl_and_delete_cleans_it(
        gated, small_jpeg: bytes) -> None:
    """A render killed between storing and its check leaves a derivative: a process with the image's
    metadata cached may serve it for ``--meta-cache-ttl``, never after; a second DELETE removes it."""
    ttl = 0.5
    media, other = gated(meta_cache_ttl=ttl), gated(meta_cache_ttl=ttl)
    image_id = media.upload(small_jpeg)
    assert other.client.simulate_get(f"/r/quick/{image_id}").status_code == 200
    key = next(iter(other.store.derived_keys(image_id)))
    stored = other.store.get(key)
    assert media.client.simulate_delete(f"/images/{image_id}").status_code == 204
    media.store.put_derived(key, stored)  # what the killed render left
    time.sleep(ttl)  # the bound, not a measurement: after it, no process trusts the metadata it read
    assert other.client.simulate_get(f"/r/quick/{image_id}").status_code == 404
    assert media.client.simulate_get(f"/r/quick/{image_id}").status_code == 404
    assert media.client.simulate_delete(f"/images/{image_id}").status_code == 204  # it cleaned up
    assert leftovers(media.store, image_id) == []
    assert media.client.simulate_delete(f"/images/{image_id}").status_code == 404


def test_an_eager_job_racing_a_delete_stops_and_stores_nothing(gated, small_jpeg: bytes) -> None:
    service = gated()
    image_id = service.upload(small_jpeg)
    handler = JobHandler(service.derivatives, output_threads=2)
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(handler.handle, Job(image_id, ("eager-held", "quick")))
        assert ENTERED.acquire(timeout=60), "the job never reached the gate"
        assert service.client.simulate_delete(f"/images/{image_id}").status_code == 204
        RELEASE.set()
        with pytest.raises(PoisonJobError, match="deleted"):
            job.result(60)
    assert leftovers(service.store, image_id) == []
    # The shared steps ran once; neither format was rendered after the delete.
    assert not ENTERED.acquire(blocking=False)
    assert service.client.simulate_delete(f"/images/{image_id}").status_code == 404


def test_a_write_refused_then_found_deleted_is_not_stored_after_all(gated, small_jpeg: bytes) -> None:
    """The first render stored the key; this one's write is refused, and before it reads the stored
    bytes a DELETE removes them: it stores nothing and answers 404 (it used to store after all)."""
    service = gated()
    image_id = service.upload(small_jpeg)
    store = service.store
    recipe = service.derivatives.recipe("quick")
    derivative = service.derivatives.locate(recipe, image_id)
    service.derivatives.render(derivative)
    get = store.get

    def delete_then_get(key: str) -> bytes:
        if key == derivative.key:
            store.delete_image(image_id)  # the DELETE lands between the refused write and this read
        return get(key)

    store.get = delete_then_get  # type: ignore[method-assign]
    with pytest.raises(ImageDeletedError):
        service.derivatives.render(derivative)
    assert leftovers(store, image_id) == []


def test_delete_is_idempotent_and_removes_the_outbox_entry(gated, small_jpeg: bytes) -> None:
    service = gated()
    image_id = service.upload(small_jpeg)
    service.store.put(outbox_key(image_id), b"{}")  # a job the broker has not confirmed
    # A delete cut short after its first two removals (the gallery entry, the metadata): the next
    # one, which has no metadata to go by, finishes it.
    uploaded_at = service.store.get_meta(image_id)["uploaded_at"]
    for key in (Store.recent_key(image_id, uploaded_at), Store.meta_key(image_id)):
        service.store.delete(key)
    assert service.client.simulate_get(f"/images/{image_id}").status_code == 404
    assert service.client.simulate_delete(f"/images/{image_id}").status_code == 204
    assert leftovers(service.store, image_id) == []
    assert service.client.simulate_delete(f"/images/{image_id}").status_code == 404

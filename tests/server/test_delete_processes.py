"""A DELETE racing renders across two real ``pixline serve`` processes on one store (issue 18, 3).

``media`` takes the upload (its in-process queue starts the eager job, each output held 2 s by the
test-only ``slow`` step) and the DELETE; ``other`` has served the image (its metadata cached) and is
rendering a slow recipe when the DELETE lands. After the delete and ``--meta-cache-ttl``: no process
serves anything of the image, nothing in the store names it, and a second DELETE is 404. Both
backends. The in-process tests/server/test_delete_race.py plays each race in a fixed order; this one
shows the same with processes, caches and queues of their own.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from pixline.engine import testing
from pixline.engine.storage import Store
from tests import slow

from .conftest import write_recipe
from .test_gunicorn import TOKEN, Client, pixline_serve, upload
from .test_delete_race import leftovers

pytestmark = pytest.mark.slow
TTL = 1.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECIPES = {
    "quick": "eager: false\nsteps:\n  - resize: {width: 80}\n  - format: {type: jpeg}\n",
    "held": "eager: false\nsteps:\n  - resize: {width: 160}\n  - slow: {seconds: 2}\n  - format: {type: jpeg}\n",
    "eager-held": ("eager: true\nsteps:\n  - resize: {width: 120}\n  - slow: {seconds: 2}\n"
                   "  - format: {type: auto, candidates: [webp, jpeg]}\n"),
}


def metric(client: Client, name: str) -> float:
    """The sum of a metric's samples in ``/metrics`` (0 when it has none yet)."""
    text = client.request("GET", "/metrics")[2].decode()
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def wait_for(check: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Wait until ``check()``; a limit far above the expected time, only so a broken run ends."""
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def store_args(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[str], Store]:
    """The flags naming a fresh store, and a Store over it for the test's own look."""
    if request.param == "file":
        url = f"file://{tmp_path / 'data'}"
        return ["--store", url], Store(url)
    s3: dict[str, Any] = request.getfixturevalue("s3_settings")
    url = request.getfixturevalue("s3_store_url")
    store = Store(url, endpoint_url=s3["endpoint_url"], key=s3["key"], secret=s3["secret"])
    return ["--store", url, "--s3-endpoint", s3["endpoint_url"]], store


def test_two_processes_serve_nothing_of_a_deleted_image_and_leave_nothing(
        tmp_path: Path, store_args: tuple[list[str], Store]) -> None:
    flags, store = store_args
    folder = tmp_path / "recipes"
    for name, text in RECIPES.items():
        write_recipe(folder, name, text)
    common = [*flags, "--recipes", str(folder), "--upload-token", TOKEN, "--workers", "1",
              "--meta-cache-ttl", str(TTL), "--log-level", "info"]
    (tmp_path / "media").mkdir()
    (tmp_path / "other").mkdir()
    with pixline_serve(tmp_path / "media", *common, env=slow.env()) as (media, _), \
            pixline_serve(tmp_path / "other", *common, env=slow.env()) as (other, _), \
            ThreadPoolExecutor(1) as pool:
        status, body = upload(media, testing.jpeg_bytes(testing.gradient(640, 480)))
        assert status == 201, body
        image_id = body["id"]
        assert other.request("GET", f"/r/quick/{image_id}")[0] == 200  # other's meta cached
        racing = pool.submit(other.request, "GET", f"/r/held/{image_id}")
        wait_for(lambda: metric(other, "pixline_renders_in_flight") > 0, "other rendering 'held'")
        assert media.request("DELETE", f"/images/{image_id}", headers=AUTH)[0] == 204
        assert racing.result(60)[0] == 404
        # The eager job ends (dead: its image is gone) before the store is looked at.
        wait_for(lambda: metric(media, "pixline_jobs_dead_lettered_total")
                 + metric(media, "pixline_jobs_processed_total") >= 1, "the eager job done")
        time.sleep(TTL)  # the bound: after it, no process trusts the metadata it read
        for client in (media, other):
            for name in RECIPES:
                status, _, data = client.request("GET", f"/r/{name}/{image_id}", headers={"Accept": "image/webp"})
                assert status == 404, (name, data[:200])
            assert client.request("GET", f"/images/{image_id}")[0] == 404
        assert leftovers(store, image_id) == []
        assert media.request("DELETE", f"/images/{image_id}", headers=AUTH)[0] == 404
        assert other.request("DELETE", f"/images/{image_id}", headers=AUTH)[0] == 404

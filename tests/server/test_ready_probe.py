"""``/readyz`` apart from ``/healthz`` (server/http/probes.py, warm_up.py): a serving process is
ready when its store answers, its recipes are loaded and every recipe has rendered once; its broker is
reported, never required (a worker's readiness: tests/queue/test_worker_probes.py)."""
from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from falcon.testing import TestClient

from pixline.server.commands.wiring import make_derivatives
from pixline.server.http.app import create_app
from pixline.server.settings import Settings
from tests.queue.tcp_proxy import free_port

from .conftest import Service
from .test_gunicorn import pixline_serve


def fetch(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for(condition: Callable[[], bool], what: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_ready_once_every_recipe_has_rendered_and_not_while_the_store_is_away(tmp_path: Path) -> None:
    settings = Settings(store=f"file://{tmp_path / 'store'}")
    derivatives = make_derivatives(settings)
    client = TestClient(create_app(derivatives, settings, None, warm_up=True))
    first = client.simulate_get("/readyz")
    if first.status_code == 503:  # caught while warming up: the problem names what is missing
        assert first.headers["content-type"] == "application/problem+json"
        assert first.headers["retry-after"] == "1"
        assert first.json["checks"]["warm_up"].startswith("not ready")
    wait_for(lambda: client.simulate_get("/readyz").status_code == 200, "the warm-up")
    ready = client.simulate_get("/readyz").json
    assert ready["status"] == "ready"
    assert ready["checks"]["recipes"] == f"{len(derivatives.recipes)} loaded"
    rendered = int(ready["checks"]["warm_up"].split()[0])
    # Every recipe's output, and one per candidate format of each negotiated recipe.
    assert rendered >= len(derivatives.recipes) + sum(
        len(r.output_spec.candidates) for r in derivatives.recipes.values() if r.negotiated)
    assert "not" not in ready["checks"]["warm_up"]  # the shipped recipes all render on the tiny image

    shutil.rmtree(tmp_path / "store")
    away = client.simulate_get("/readyz")
    assert away.status_code == 503 and away.json["checks"]["store"].startswith("not ready")
    assert client.simulate_get("/healthz").status_code == 503


def test_without_warm_up_the_app_is_ready_at_once(make_service: Callable[..., Service]) -> None:
    service = make_service()
    service.upload(open("tests/photos/Storm.jpg", "rb").read())  # the store's folder is made by a write
    answer = service.client.simulate_get("/readyz")
    assert answer.status_code == 200 and "warm_up" not in answer.json["checks"]


def test_a_serving_process_with_its_broker_away_is_ready_and_says_so(tmp_path: Path) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # nothing listens there
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}", "--amqp", dead) as (client, _):
        status, _, text = client.request("GET", "/readyz")
        body = json.loads(text)
        assert status == 200, body
        assert body["checks"]["broker"].startswith("not ready")  # uploads wait in the outbox meanwhile
        assert body["checks"]["warm_up"].endswith("s") and body["checks"]["store"] == "ok"


def test_every_gunicorn_worker_that_answers_has_warmed_up(tmp_path: Path) -> None:
    # The workers share the listening socket: one that accepted while warming up would answer a load
    # balancer's /readyz with 503 after its sibling's 200, and serve users cold. Each warms up before
    # it listens, so from the first answer on (pixline_serve waits for /healthz) every one is ready.
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}") as (client, _):
        answers = [client.request("GET", "/readyz") for _ in range(30)]
        assert [status for status, _, _ in answers] == [200] * 30, [a[2][:200] for a in answers]
        assert all(json.loads(body)["checks"]["warm_up"].endswith("s") for _, _, body in answers)


def test_a_process_that_takes_uploads_runs_its_analysers_in_the_warm_up_and_a_resizer_does_not(tmp_path: Path):
    # Analyser plugins import their heavy parts on first use (OpenCV for faces): the first upload
    # must not pay for that, and a resizer, which never analyses, must not carry it.
    from pixline.engine import Registry
    from pixline.server.http.warm_up import WarmUp
    from tests.engine.analyserplugins import MeanColour, plugin

    registry = Registry.load(extra=[("analysers", plugin(MeanColour))])
    derivatives = make_derivatives(Settings(store=f"file://{tmp_path / 'store'}"), registry=registry)
    for analyse, calls in ((False, 0), (True, 1)):
        MeanColour.calls.clear()
        warm_up = WarmUp(derivatives, analyse=analyse)
        warm_up.run()
        assert len(MeanColour.calls) == calls and warm_up.done.is_set()

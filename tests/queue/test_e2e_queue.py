"""End to end with real processes: ``pixline serve`` publishing uploads' eager recipes, ``pixline
worker`` rendering them into SeaweedFS; and the embedded default, where serve renders them itself."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from pixline.engine.storage import Store
from pixline.server.commands.wiring import make_derivatives
from pixline.server.settings import Settings

from .helpers import RECIPES, metric, queue_counts, wait_until
from .tcp_proxy import free_port

pytestmark = [pytest.mark.amqp, pytest.mark.slow]
EAGER = ("card", "small", "square")


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def up(base: str) -> bool:
    """The server answers (a fresh, still empty S3 prefix may make /healthz say 503)."""
    try:
        return http("GET", f"{base}/healthz")[0] in (200, 503)
    except OSError:
        return False


def upload(base: str, data: bytes) -> str:
    status, body = http("POST", f"{base}/images", data, {"Content-Type": "image/jpeg"})
    assert status == 201, body
    return json.loads(body)["id"]


def eager_stored(derivatives, image_id: str) -> dict:
    derivatives.store.invalidate()
    status = derivatives.eager_status(image_id, derivatives.store.get_meta(image_id))
    return status if all(entry["stored"] for entry in status.values()) else {}


@pytest.mark.s3
def job_lines(log: str) -> list[tuple[str, str]]:
    """(image id, outcome) of each line of the job log (JSON: the log is a file, not a terminal)."""
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [(r["image_id"], r["outcome"]) for r in records if r["logger"] == "pixline.jobs"]


def test_an_upload_s_eager_recipes_are_rendered_by_the_worker_into_s3(
        settings, s3_settings, s3_store_url, photo_bytes, spawn, amqp_url) -> None:
    common = ["--amqp", settings.amqp, "--queue", settings.queue, "--store", s3_store_url,
              "--s3-endpoint", s3_settings["endpoint_url"], "--recipes", str(RECIPES)]
    port, metrics_port = free_port(), free_port()
    serve = spawn("serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", *common, name="serve")
    worker = spawn("worker", "--metrics-port", str(metrics_port), *common, name="worker")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: up(base) or serve.process.poll() is not None, 60, "pixline serve")
    assert serve.process.poll() is None, serve.log()

    image_id = upload(base, photo_bytes)

    s3 = Store(s3_store_url, endpoint_url=s3_settings["endpoint_url"], key=s3_settings["key"],
               secret=s3_settings["secret"])
    derivatives = make_derivatives(Settings(recipes=str(RECIPES)), store=s3)
    status = wait_until(lambda: eager_stored(derivatives, image_id), 90, "every eager derivative in S3",
                        interval=0.5)
    assert set(status) == set(EAGER)
    # The worker made them: it counts each output it rendered (card twice: JPEG and WebP)...
    wait_until(lambda: metric(metrics_port, "pixline_jobs_processed_total", recipe="small") == 1, 30,
               "the worker's count")
    for name, outputs in (("card", 2), ("small", 1), ("square", 1)):
        assert metric(metrics_port, "pixline_job_derivatives_rendered_total", recipe=name) == outputs
    # ...and the server rendered nothing on demand.
    _, server_metrics = http("GET", f"{base}/metrics")
    assert b'pixline_render_seconds_count{recipe="small"}' not in server_metrics
    # GET /images/{id} agrees.
    code, body = http("GET", f"{base}/images/{image_id}")
    assert code == 200
    described = json.loads(body)["derivatives"]
    assert all(described[name]["stored"] for name in EAGER), described
    assert queue_counts(amqp_url, settings.queue)[0] == 0
    assert (image_id, "done") in job_lines(worker.log())


def test_without_a_broker_serve_renders_eager_recipes_itself(store_url, photo_bytes, spawn) -> None:
    port = free_port()
    serve = spawn("serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--store", store_url,
                  "--recipes", str(RECIPES), env={"PIXLINE_AMQP": ""}, name="serve-embedded")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: up(base) or serve.process.poll() is not None, 60, "pixline serve")
    assert serve.process.poll() is None, serve.log()

    image_id = upload(base, photo_bytes)

    derivatives = make_derivatives(Settings(store=store_url, recipes=str(RECIPES)))
    wait_until(lambda: eager_stored(derivatives, image_id), 60, "every eager derivative", interval=0.5)
    # Rendered by the in-process queue's job handler, not by a request, and counted on /metrics.
    assert (image_id, "done") in job_lines(serve.log())
    assert metric(port, "pixline_jobs_processed_total", recipe="small") == 1

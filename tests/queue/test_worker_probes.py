"""A worker's probes on --metrics-port (server/http/probes.py): alive while its store answers,
ready while it consumes from the broker, and /metrics beside them."""
from __future__ import annotations

import urllib.request

import pytest

from tests.queue.tcp_proxy import free_port
from tests.server.test_ready_probe import fetch, wait_for

pytestmark = pytest.mark.amqp


def test_a_worker_is_ready_while_it_consumes(spawn, settings) -> None:
    port = free_port()
    worker = spawn("worker", "--amqp", settings.amqp, "--queue", settings.queue, "--store", settings.store,
                   "--metrics-port", str(port), name="worker")
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return fetch(f"{base}/readyz")[0] in (200, 503)
        except OSError:
            return False

    wait_for(answers, "the worker's probes", 60)
    wait_for(lambda: fetch(f"{base}/readyz")[0] == 200, "the worker to consume", 60)
    assert fetch(f"{base}/readyz")[1]["checks"] == {"store": "ok", "consuming": "ok"}
    assert fetch(f"{base}/healthz") == (200, {"status": "ok"})
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        assert b"pixline_jobs_processed" in response.read()
    assert worker.process.poll() is None


def test_a_worker_without_its_broker_is_alive_but_not_ready(spawn, settings) -> None:
    port = free_port()
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    spawn("worker", "--amqp", dead, "--queue", settings.queue, "--store", settings.store,
          "--metrics-port", str(port), name="worker")
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return fetch(f"{base}/healthz")[0] == 200
        except OSError:
            return False

    wait_for(answers, "the worker's probes", 60)
    status, body = fetch(f"{base}/readyz")
    assert status == 503 and body["checks"]["consuming"].startswith("not ready")
    assert body["type"] == "urn:pixline:problem:not-ready"

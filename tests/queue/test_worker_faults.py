"""``pixline worker`` as a real process under faults: SIGKILL mid-job, SIGTERM with jobs in flight, and
an S3 outage. So that "mid-job" is real, those workers render tests/queue/recipes-slow/, whose ``slow``
step (the test-only plugin in tests/slowplugin/, on the worker's PYTHONPATH) holds each output 2 s."""
from __future__ import annotations

import signal

import pytest

from pixline.engine import testing
from pixline.engine.storage import Store
from pixline.server.queue.publisher import AmqpJobPublisher
from pixline.server.queue.topology import Topology
from pixline.server.queue.jobs import Job
from pixline.server.commands.wiring import make_derivatives
from pixline.server.settings import Settings

from tests import slow

from .helpers import RECIPES, metric, queue_counts, store_photo, wait_until
from .tcp_proxy import TcpProxy, free_port

pytestmark = [pytest.mark.amqp, pytest.mark.slow]
EAGER = ("card", "small", "square")  # four outputs: card is JPEG and WebP


def worker_args(settings: Settings, *extra: str) -> list[str]:
    return ["worker", "--amqp", settings.amqp, "--queue", settings.queue, "--store", settings.store,
            "--recipes", settings.recipes, *extra]


def publish(settings: Settings, job: Job) -> None:
    publisher = AmqpJobPublisher(settings)
    try:
        publisher.publish(job)
    finally:
        publisher.close()


def stored_outputs(derivatives, image_id: str) -> list[str]:
    derivatives.store.invalidate()
    return derivatives.store.derived_keys(image_id)


def status(derivatives, image_id: str) -> dict:
    derivatives.store.invalidate()
    return derivatives.eager_status(image_id, derivatives.store.get_meta(image_id))


def all_stored(derivatives, image_id: str) -> bool:
    return all(entry["stored"] for entry in status(derivatives, image_id).values())


def assert_whole_images(store: Store, keys: list[str]) -> None:
    for key in keys:
        image = testing.decode(store.get(key))
        image.avg()  # decodes every pixel: a truncated object fails here


def test_a_worker_killed_mid_job_leaves_no_partial_object_and_another_completes_it(
        slow_settings, slow_derivatives, store, stored_photo, spawn, amqp_url) -> None:
    settings, derivatives = slow_settings, slow_derivatives
    # Each of the four outputs takes 2 s: killed after the first, three are left (6 s of margin).
    first = spawn(*worker_args(settings, "--worker-concurrency", "1"), env=slow.env(), name="slow-worker")
    publish(settings, Job(stored_photo, EAGER))
    wait_until(lambda: stored_outputs(derivatives, stored_photo), 60, "the first output")
    first.signal(signal.SIGKILL)
    first.wait(10)
    partial = stored_outputs(derivatives, stored_photo)
    assert 1 <= len(partial) < 4, "the worker was not killed mid-job"
    assert_whole_images(store, partial)

    # The unacked job goes back to the queue; a second worker picks it up and finishes it.
    fresh = spawn(*worker_args(settings), env=slow.env(), name="fresh-worker")
    wait_until(lambda: all_stored(derivatives, stored_photo), 60, "the redelivered job")
    wait_until(lambda: "1 rendered" in fresh.log() or "2 rendered" in fresh.log()
               or "3 rendered" in fresh.log(), 30, "the second worker's report")
    outputs = stored_outputs(derivatives, stored_photo)
    assert len(outputs) == 4
    assert_whole_images(store, outputs)
    fresh.signal(signal.SIGTERM)
    assert fresh.wait(40) == 0
    assert queue_counts(amqp_url, settings.queue) == (0, 0)


def test_sigterm_lets_in_flight_jobs_finish(slow_settings, slow_derivatives, stored_photo, spawn,
                                            amqp_url) -> None:
    settings, derivatives = slow_settings, slow_derivatives
    worker = spawn(*worker_args(settings, "--worker-concurrency", "1"), env=slow.env(), name="worker")
    publish(settings, Job(stored_photo, ("small", "square")))
    wait_until(lambda: stored_outputs(derivatives, stored_photo), 60, "the first output")
    worker.signal(signal.SIGTERM)
    assert worker.wait(40) == 0
    assert len(stored_outputs(derivatives, stored_photo)) == 2, worker.log()
    assert "finishing in-flight jobs" in worker.log()
    assert queue_counts(amqp_url, settings.queue) == (0, 0)  # acked, not handed back


def test_sigterm_hands_back_jobs_that_outlast_the_grace(slow_settings, slow_derivatives, stored_photo,
                                                        spawn, amqp_url) -> None:
    settings, derivatives = slow_settings, slow_derivatives
    worker = spawn(*worker_args(settings, "--worker-concurrency", "1", "--worker-shutdown-grace", "0.5"),
                   env=slow.env(), name="worker")
    wait_until(lambda: (queue_counts(amqp_url, settings.queue, missing_ok=True) or (0, 0))[1] == 1, 60,
               "the worker to consume")
    publish(settings, Job(stored_photo, ("stuck",)))  # 300 s: far past the 0.5 s grace
    # Taken (no longer ready) but not acked: it is in flight.
    wait_until(lambda: queue_counts(amqp_url, settings.queue)[0] == 0, 20, "the worker to take the job")
    worker.signal(signal.SIGTERM)
    assert worker.wait(40) == 0
    assert "returning unfinished job" in worker.log()
    assert queue_counts(amqp_url, settings.queue) == (1, 0)
    assert stored_outputs(derivatives, stored_photo) == []


@pytest.mark.s3
def test_a_job_during_an_s3_outage_is_retried_and_completes_when_s3_is_back(
        settings, s3_settings, s3_store_url, photo_bytes, spawn, amqp_url) -> None:
    s3 = Store(s3_store_url, endpoint_url=s3_settings["endpoint_url"], key=s3_settings["key"],
               secret=s3_settings["secret"])
    image_id = store_photo(s3, photo_bytes)
    # The worker reaches S3 only through a proxy that is down for now: connection refused.
    proxy = TcpProxy(int(s3_settings["endpoint_url"].rsplit(":", 1)[1]))
    metrics_port = free_port()
    worker = spawn("worker", "--amqp", settings.amqp, "--queue", settings.queue, "--store", s3_store_url,
                   "--s3-endpoint", f"http://{proxy.url_host}", "--recipes", str(RECIPES),
                   "--job-retries", "6", "--job-retry-delay", "1", "--metrics-port", str(metrics_port),
                   name="worker")
    try:
        publish(settings, Job(image_id, ("small", "card")))
        wait_until(lambda: metric(metrics_port, "pixline_jobs_retried_total", recipe="small") >= 1, 90,
                   "a retry while S3 is down", interval=0.5)
        assert not s3.derived_keys(image_id)
        proxy.up()
        derivatives = make_derivatives(Settings(recipes=str(RECIPES)), store=s3)
        wait_until(lambda: all(status(derivatives, image_id)[name]["stored"] for name in ("small", "card")),
                   120, "the job once S3 is back", interval=0.5)
        wait_until(lambda: metric(metrics_port, "pixline_jobs_processed_total", recipe="small") == 1, 30,
                   "the worker to count the job done")
        assert metric(metrics_port, "pixline_job_derivatives_rendered_total", recipe="card") == 2
        dead = Topology.from_settings(settings).dead_letter_queue
        assert queue_counts(amqp_url, dead)[0] == 0, worker.log()
    finally:
        proxy.down()

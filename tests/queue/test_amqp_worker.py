"""The RabbitMQ publisher and consumer against the real broker, the consumer running in this process
on a thread (the process-level faults are in test_worker_faults.py)."""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from typing import Iterator

import pika
import pika.exceptions
import pytest

from pixline.server.commands.wiring import make_publisher
from pixline.server.queue.consumer import AmqpConsumer
from pixline.server.queue.jobs import Job
from pixline.server.queue.outbox import OutboxPublisher
from pixline.server.queue.publisher import AmqpJobPublisher, JobQueueUnavailable
from pixline.server.queue.topology import Topology
from pixline.server.commands.wiring import make_derivatives
from pixline.server.settings import Settings
from pixline.server.queue.handler import JobHandler

from .helpers import get_messages, publish_raw, queue_counts, wait_until
from .tcp_proxy import TcpProxy, free_port

pytestmark = pytest.mark.amqp
EAGER = ("card", "small", "square")


class RecordingHandler(JobHandler):
    """The real handler, recording each attempt and how many ran at once; can fail on purpose.

    With ``overlap``, a job waits (up to 30 s) until that many have run at once, so a test of the
    concurrency bound does not depend on two deliveries happening to fall within ``delay``."""

    def __init__(self, derivatives, fail_attempts: int = 0, delay: float = 0.0, overlap: int = 1) -> None:
        super().__init__(derivatives)
        self.fail_attempts = fail_attempts
        self.delay = delay
        self.overlap = overlap
        self.attempts: list[tuple[str, int]] = []
        self.running = self.most_at_once = 0
        self._lock = threading.Condition()

    def handle(self, job):
        with self._lock:
            self.attempts.append((job.image_id, job.attempt))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self._lock.notify_all()
            self._lock.wait_for(lambda: self.most_at_once >= self.overlap, timeout=30)
        try:
            time.sleep(self.delay)
            if job.attempt < self.fail_attempts:
                raise ConnectionError("store unreachable (on purpose)")
            return super().handle(job)
        finally:
            with self._lock:
                self.running -= 1


def via(url: str, proxy: TcpProxy, **query: str) -> str:
    parts = urllib.parse.urlparse(url)
    netloc = f"{parts.username}:{parts.password}@{proxy.url_host}" if parts.username else proxy.url_host
    return parts._replace(netloc=netloc, query=urllib.parse.urlencode(query)).geturl()


@pytest.fixture
def derivatives(settings: Settings):
    return make_derivatives(settings)


@pytest.fixture
def run_worker(settings: Settings) -> Iterator:
    """Start an AmqpConsumer on a thread; every one is stopped (and must stop) after the test."""
    started: list[tuple[AmqpConsumer, threading.Thread]] = []

    def start(handler: JobHandler, **changes) -> AmqpConsumer:
        worker = AmqpConsumer(Settings(**{**settings.as_dict(), **changes}), handler)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        # Consuming, not merely connected: only then are the queues declared (a message published
        # before that would find no queue).
        wait_until(worker.consuming.is_set, 20, "the worker to consume")
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(40)
        assert not thread.is_alive(), "the worker did not stop"


def publish(settings: Settings, *jobs: Job) -> None:
    publisher = AmqpJobPublisher(settings)
    try:
        for job in jobs:
            publisher.publish(job)
    finally:
        publisher.close()


def all_stored(derivatives, image_id: str) -> bool:
    status = derivatives.eager_status(image_id, derivatives.store.get_meta(image_id))
    return all(entry["stored"] for entry in status.values())


def test_jobs_are_persistent_json_on_a_durable_queue(settings, derivatives, amqp_url) -> None:
    publisher = make_publisher(settings, derivatives)
    # Through the upload outbox (queue/outbox.py), which keeps nothing once the broker confirmed.
    assert isinstance(publisher, OutboxPublisher) and isinstance(publisher.publisher, AmqpJobPublisher)
    try:
        publisher.publish(Job("a" * 32, EAGER))
    finally:
        publisher.close()
    assert derivatives.store.list_keys("outbox/") == []
    [(properties, body)] = get_messages(amqp_url, settings.queue)
    assert properties.delivery_mode == 2 and properties.content_type == "application/json"
    assert json.loads(body) == json.loads(Job("a" * 32, EAGER).to_json())
    # Declaring it non-durable is refused: the queue is durable.
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="durable"):
            connection.channel().queue_declare(settings.queue, durable=False)
    finally:
        connection.close()


def test_the_worker_renders_every_recipe_and_acks(settings, derivatives, stored_photo, run_worker,
                                                  amqp_url) -> None:
    handler = RecordingHandler(derivatives)
    worker = run_worker(handler)
    publish(settings, Job(stored_photo, EAGER))
    wait_until(lambda: all_stored(derivatives, stored_photo), 30, "every eager derivative")
    wait_until(lambda: handler.attempts and handler.running == 0, 10, "the job to finish")
    worker.stop()
    # Stopping hands unacked jobs back; nothing came back, so the job was acked.
    wait_until(lambda: queue_counts(amqp_url, settings.queue) == (0, 0), 40, "the worker to stop")
    assert handler.attempts == [(stored_photo, 0)]


def test_a_poison_job_is_dead_lettered_after_one_try(settings, derivatives, run_worker, amqp_url) -> None:
    handler = RecordingHandler(derivatives)
    run_worker(handler)
    publish(settings, Job("0" * 32, EAGER))
    dead = Topology.from_settings(settings).dead_letter_queue
    wait_until(lambda: queue_counts(amqp_url, dead)[0] == 1, 20, "a dead letter")
    [(properties, body)] = get_messages(amqp_url, dead)
    assert "not stored" in properties.headers["x-pixline-error"]
    assert Job.from_json(body) == Job("0" * 32, EAGER)
    assert handler.attempts == [("0" * 32, 0)]


def test_a_malformed_message_is_dead_lettered_as_it_came(settings, derivatives, run_worker,
                                                         amqp_url) -> None:
    run_worker(RecordingHandler(derivatives))
    dead = Topology.from_settings(settings).dead_letter_queue
    publish_raw(amqp_url, settings.queue, b"\xffnot json")
    wait_until(lambda: queue_counts(amqp_url, dead)[0] == 1, 20, "a dead letter")
    [(properties, body)] = get_messages(amqp_url, dead)
    assert body == b"\xffnot json" and "malformed" in properties.headers["x-pixline-error"]


def test_a_transient_failure_is_retried_after_a_delay(settings, derivatives, stored_photo, run_worker,
                                                      amqp_url) -> None:
    handler = RecordingHandler(derivatives, fail_attempts=1)
    run_worker(handler)
    publish(settings, Job(stored_photo, EAGER))
    wait_until(lambda: all_stored(derivatives, stored_photo), 30, "the retried job")
    assert handler.attempts == [(stored_photo, 0), (stored_photo, 1)]
    assert queue_counts(amqp_url, Topology.from_settings(settings).dead_letter_queue)[0] == 0


def test_a_job_out_of_retries_is_dead_lettered(settings, derivatives, stored_photo, run_worker,
                                               amqp_url) -> None:
    handler = RecordingHandler(derivatives, fail_attempts=99)
    run_worker(handler)  # job_retries=2: three attempts in all
    publish(settings, Job(stored_photo, EAGER))
    dead = Topology.from_settings(settings).dead_letter_queue
    wait_until(lambda: queue_counts(amqp_url, dead)[0] == 1, 30, "a dead letter")
    [(properties, body)] = get_messages(amqp_url, dead)
    assert [attempt for _, attempt in handler.attempts] == [0, 1, 2]
    assert Job.from_json(body).attempt == 2
    assert "gave up after 3 attempts" in properties.headers["x-pixline-error"]


def test_jobs_at_once_are_bounded_by_the_concurrency(settings, derivatives, stored_photo,
                                                     run_worker) -> None:
    # Each job waits for a second one to run alongside, then holds 0.5 s: room for a third, were
    # the bound not kept.
    handler = RecordingHandler(derivatives, delay=0.5, overlap=2)
    run_worker(handler, worker_concurrency=2)
    publish(settings, *[Job(stored_photo, ("small",)) for _ in range(6)])
    wait_until(lambda: len(handler.attempts) == 6 and handler.running == 0, 30, "six jobs")
    assert handler.most_at_once == 2


def test_heartbeats_flow_while_a_long_render_runs(settings, derivatives, stored_photo, run_worker,
                                                  amqp_url) -> None:
    # A 1 s heartbeat: a connection whose thread is busy rendering for 5 s would be closed by the
    # broker (and the job redelivered over a new connection).
    handler = RecordingHandler(derivatives, delay=5.0)
    worker = run_worker(handler, amqp=f"{amqp_url.rstrip('/')}/?heartbeat=1")
    publish(settings, Job(stored_photo, ("small",)))
    wait_until(lambda: all_stored_small(derivatives, stored_photo) and handler.running == 0, 30,
               "the long job")
    wait_until(lambda: queue_counts(amqp_url, settings.queue)[0] == 0, 10, "an empty queue")
    time.sleep(1.5)  # not a timed assertion: gives a missed-heartbeat close the time to show up
    assert worker.connections == 1 and handler.attempts == [(stored_photo, 0)]


def all_stored_small(derivatives, image_id: str) -> bool:
    return derivatives.eager_status(image_id, derivatives.store.get_meta(image_id))["small"]["stored"]


def test_the_worker_reconnects_when_the_broker_goes_away(settings, derivatives, stored_photo,
                                                         run_worker, amqp_url) -> None:
    proxy = TcpProxy(pika.URLParameters(amqp_url).port).up()
    try:
        worker = run_worker(RecordingHandler(derivatives), amqp=via(amqp_url, proxy))
        proxy.down()
        wait_until(lambda: queue_counts(amqp_url, settings.queue)[1] == 0, 20, "the consumer to go")
        proxy.up()
        wait_until(lambda: worker.connections >= 2, 60, "a reconnect")
        publish(settings, Job(stored_photo, EAGER))
        wait_until(lambda: all_stored(derivatives, stored_photo), 30, "the job after reconnecting")
    finally:
        proxy.down()


def test_the_publisher_fails_fast_while_the_broker_is_unreachable(settings) -> None:
    down = Settings(**{**settings.as_dict(), "amqp": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})
    publisher = AmqpJobPublisher(down, reconnect_pause=60)
    with pytest.raises(JobQueueUnavailable, match="cannot connect"):
        publisher.publish(Job("a" * 32, EAGER))
    with pytest.raises(JobQueueUnavailable, match="moments ago"):
        publisher.publish(Job("a" * 32, EAGER))


def test_the_publisher_survives_a_dropped_connection(settings, amqp_url) -> None:
    proxy = TcpProxy(pika.URLParameters(amqp_url).port).up()
    publisher = AmqpJobPublisher(Settings(**{**settings.as_dict(), "amqp": via(amqp_url, proxy)}))
    try:
        publisher.publish(Job("a" * 32, ("small",)))
        proxy.down()
        proxy.up()
        publisher.publish(Job("b" * 32, ("small",)))  # the stale connection is replaced
    finally:
        publisher.close()
        proxy.down()
    assert proxy.connections == 2
    assert queue_counts(amqp_url, settings.queue)[0] == 2


def test_regenerate_publishes_one_job_per_stored_image(settings, derivatives, stored_photo, amqp_url,
                                                       capsys) -> None:
    from pixline.engine import testing
    from pixline.server.commands.cli import main

    from .helpers import store_photo

    other = store_photo(derivatives.store, testing.jpeg_bytes(testing.gradient(300, 200)))
    assert main(["regenerate", "small", "--amqp", settings.amqp, "--queue", settings.queue,
                 "--store", settings.store, "--recipes", settings.recipes]) == 0
    assert f"queued 2 job(s) for 'small' on {settings.queue}" in capsys.readouterr().out
    jobs = {Job.from_json(body) for _, body in get_messages(amqp_url, settings.queue)}
    assert jobs == {Job(stored_photo, ("small",)), Job(other, ("small",))}


def test_a_queue_declared_with_other_arguments_stops_the_worker_with_a_clear_error(
        settings, derivatives, amqp_url) -> None:
    from pixline.server.queue.topology import QueueMismatchError

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_declare(settings.queue, durable=True)  # no dead-letter arguments
    finally:
        connection.close()
    worker = AmqpConsumer(settings, RecordingHandler(derivatives))
    with pytest.raises(QueueMismatchError, match="--queue"):
        worker.run()

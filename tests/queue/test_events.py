"""Ready events in process, with real parts: jobs on the in-process queue, a real webhook receiver on
127.0.0.1, the store on files, and RabbitMQ for the AMQP destination.

Every event arrives through a receiver's outage, none twice with different ids, signed so that
``standardwebhooks`` verifies it with either secret of a rotation; a receiver that never answers
holds no render; a delivery out of its retry window is dead-lettered, listed and sent again by
``pixline events``; a failed recipe gives ``image.failed``."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pika
import pytest
from prometheus_client import REGISTRY
from standardwebhooks import Webhook, WebhookVerificationError

from pixline.engine.presets import FAILED, READY, preset_status
from pixline.engine.storage import Store
from pixline.server.commands.wiring import make_derivatives, make_events
from pixline.server.queue.embedded import EmbeddedJobQueue
from pixline.server.queue.events import IMAGE_FAILED, IMAGE_READY
from pixline.server.queue.jobs import Job
from pixline.server.settings import Settings, SettingsError

from .helpers import RECIPES, store_photo, wait_until
from .receiver import Receiver

SECRETS = ["whsec_" + base64.b64encode(os.urandom(32)).decode() for _ in range(2)]
#: Every output of the test recipes' eager set: card in JPEG and WebP (format: auto), small, square.
OUTPUTS = {("card", "jpeg"), ("card", "webp"), ("small", "jpeg"), ("square", "png")}


class Running:
    """The store, the in-process queue and the event delivery of one pixline process."""

    def __init__(self, settings: Settings) -> None:
        self.derivatives = make_derivatives(settings)
        self.events, self.delivery = make_events(settings, self.derivatives)
        assert self.delivery is not None
        self.outbox = self.delivery.outbox
        self.queue = EmbeddedJobQueue.from_settings(settings, self.derivatives, self.events)
        self.delivery.start()

    def run(self, *image_ids: str) -> None:
        for image_id in image_ids:
            self.queue.publish(Job(image_id, self.derivatives.eager_recipes))
        assert self.queue.join(120), "the jobs did not finish"

    def close(self) -> None:
        self.queue.close()
        self.delivery.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def start(store_url: str, receiver: Receiver) -> Iterator:
    started: list[Running] = []

    def run(**settings: object) -> Running:
        base = dict(store=store_url, recipes=str(RECIPES), webhook_url=[receiver.url],
                    webhook_secret=SECRETS, webhook_timeout=5.0, events_retry_delay=0.1,
                    events_retry_window=120.0)
        started.append(Running(Settings(**{**base, **settings})))
        return started[-1]

    yield run
    for running in started:
        running.close()


def jpegs(folder: Path, count: int) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.glob("*.jpg"))[:count]]


#: What an upload's analysers would have found (store_photo runs none): a placeholder, an analysis
#: that is not one (never in an event), and a failed placeholder (no value: left out).
ANALYSIS = {"colour": {"version": 1, "value": "#2a3134", "placeholder": True},
            "faces": {"version": 1, "value": []},
            "blurhash": {"version": 1, "error": "ValueError: odd image", "placeholder": True}}


def analysed(store: Store, image_id: str) -> str:
    """Give a stored image the analyses of :data:`ANALYSIS`; returns its id."""
    store.put_meta(image_id, {**store.get_meta(image_id), "analysis": ANALYSIS})
    return image_id


def test_every_event_arrives_through_an_outage_once_per_id_signed_with_both_secrets(
        start, receiver: Receiver, photos: Path) -> None:
    receiver.fail_first = 4  # the first four POSTs get 500: the receiver is down for a while
    running = start()
    image_ids = [store_photo(running.derivatives.store, data) for data in jpegs(photos, 2)]
    analysed(running.derivatives.store, image_ids[0])
    running.run(*image_ids)

    wait_until(lambda: len(receiver.delivered()) >= 2, 60, "both image.ready events delivered")
    wait_until(lambda: not running.outbox.pending(), 30, "the outbox emptied")
    delivered = receiver.delivered()
    assert sorted(r.event["data"]["image_id"] for r in delivered) == sorted(image_ids)
    assert {r.event["type"] for r in delivered} == {IMAGE_READY}
    by_id = {r.event["data"]["image_id"]: r.event["data"] for r in delivered}
    assert by_id[image_ids[0]]["placeholders"] == {"colour": "#2a3134"}
    assert "placeholders" not in by_id[image_ids[1]]  # an image without any: no key, not {}
    assert len([r for r in receiver.requests if r.status == 500]) == 4
    # Every attempt at one image's event carried one id, and the two images' ids differ.
    ids = {}
    for request in receiver.requests:
        ids.setdefault(request.event["data"]["image_id"], set()).add(request.id)
    assert all(len(seen) == 1 for seen in ids.values()) and len({*ids[image_ids[0]], *ids[image_ids[1]]}) == 2
    for request in receiver.requests:
        for secret in SECRETS:  # either secret of the rotation verifies every attempt
            assert Webhook(secret).verify(request.body, request.headers)["data"]["image_id"] in image_ids
        tampered = request.body.replace(b'"image.ready"', b'"image.failed"')
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRETS[0]).verify(tampered, request.headers)
    outputs = delivered[0].event["data"]["outputs"]
    assert {(o["recipe"], o["format"]) for o in outputs} == OUTPUTS
    small = next(o for o in outputs if o["recipe"] == "small")
    image_id = delivered[0].event["data"]["image_id"]
    digest = running.derivatives.recipes["small"].digest
    assert small["url"] == f"/r/small/{image_id}" and small["pinned_url"] == f"/r/small@{digest}/{image_id}"
    assert small["width"] == 160 and small["height"] > 0 and small["bytes"] > 0

    # The same images again (a re-upload, a re-import, a redelivered job): nothing new is emitted.
    asked = len(receiver.requests)
    running.run(*image_ids)
    assert running.outbox.pending() == [] and len(receiver.requests) == asked


def test_a_receiver_that_never_answers_holds_no_render(start, receiver: Receiver, photos: Path) -> None:
    receiver.mode = "hold"
    running = start(events_concurrency=1, webhook_timeout=300.0)
    image_ids = [store_photo(running.derivatives.store, data) for data in jpegs(photos, 3)]
    running.queue.publish(Job(image_ids[0], running.derivatives.eager_recipes))
    wait_until(lambda: receiver.held(), 60, "the receiver holding the first event")
    running.run(*image_ids[1:])  # rendered while the receiver holds the first POST, unanswered
    meta = running.derivatives.store.get_meta
    assert all(preset_status(running.derivatives, i, meta(i)).state == READY for i in image_ids)
    assert len(receiver.held()) == 1 and not receiver.delivered()
    assert len(running.outbox.pending()) == 3  # every event kept, none lost while it waits


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def pixline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixline.server.commands", *args], capture_output=True,
                          text=True, timeout=60)


def test_a_delivery_out_of_its_window_is_dead_lettered_listed_and_sent_again(
        start, receiver: Receiver, store_url: str, photo_bytes: bytes) -> None:
    receiver.mode = "fail"
    labels = {"type": IMAGE_READY, "destination": "webhook"}
    before = sample("pixline_events_dead_lettered_total", **labels)
    running = start(events_retry_delay=0.05, events_retry_window=0.5)
    image_id = store_photo(running.derivatives.store, photo_bytes)
    running.run(image_id)
    wait_until(lambda: running.outbox.failed(), 60, "the delivery dead-lettered")
    assert running.outbox.pending() == []
    assert sample("pixline_events_dead_lettered_total", **labels) == before + 1

    listed = pixline("events", "--failed", "--store", store_url)
    assert listed.returncode == 0, listed.stderr
    [line] = [json.loads(line) for line in listed.stdout.splitlines()]
    event_id = receiver.requests[0].id
    assert line["id"] == event_id and line["image_id"] == image_id and line["destination"] == receiver.url
    assert line["attempts"] == len(receiver.requests) >= 2 and "answered 500" in line["last_error"]

    receiver.mode = "ok"
    retried = pixline("events", "--retry", "--store", store_url)
    assert retried.returncode == 0 and retried.stdout.startswith("1 delivery"), retried.stderr
    wait_until(lambda: receiver.delivered(), 30, "the retried event delivered")
    assert [r.id for r in receiver.delivered()] == [event_id]
    wait_until(lambda: not running.outbox.pending(), 30, "the outbox emptied")
    assert pixline("events", "--failed", "--store", store_url).stdout == ""


def test_a_recipe_that_fails_for_good_gives_image_failed_with_its_reason(
        start, receiver: Receiver, tmp_path: Path, photo_bytes: bytes) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "small.yaml").write_text((RECIPES / "small.yaml").read_text())
    (recipes / "huge.yaml").write_text("eager: true\nsteps:\n  - resize: {width: 8000, enlarge: true}\n")
    running = start(recipes=str(recipes))
    image_id = analysed(running.derivatives.store, store_photo(running.derivatives.store, photo_bytes))
    running.run(image_id)
    [request] = wait_until(lambda: receiver.delivered(), 60, "image.failed delivered")
    data = request.event["data"]
    assert request.event["type"] == IMAGE_FAILED and data["image_id"] == image_id
    assert data["placeholders"] == {"colour": "#2a3134"}
    [failure] = data["failed"]
    assert failure["recipe"] == "huge" and "asks for 8000×5333" in failure["reason"]
    assert [o["recipe"] for o in data["outputs"]] == ["small"]  # what was stored is listed
    state = preset_status(running.derivatives, image_id, running.derivatives.store.get_meta(image_id))
    assert state.state == FAILED and state.recipes["small"] == {"state": READY}


@pytest.mark.amqp
def test_events_on_the_topic_exchange_are_read_by_a_real_consumer(
        start, amqp_url: str, photo_bytes: bytes) -> None:
    exchange = f"pixline.test.events.{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    try:
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, exchange, routing_key="#")
        running = start(webhook_url=[], webhook_secret=[], events_amqp=amqp_url, events_exchange=exchange,
                        events_derivatives=True)
        image_id = store_photo(running.derivatives.store, photo_bytes)
        running.run(image_id)
        messages: list = []

        def take() -> bool:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                messages.append((method.routing_key, properties, json.loads(body)))
            return len(messages) >= len(OUTPUTS) + 1

        wait_until(take, 60, "every event on the exchange", interval=0.05)
        keys = [key for key, _, _ in messages]
        assert sorted(keys) == sorted(["derivative.ready"] * len(OUTPUTS) + ["image.ready"])
        assert {(o["recipe"], o["format"]) for _, _, body in messages if body["type"] == "derivative.ready"
                for o in body["data"]["outputs"]} == OUTPUTS
        key, properties, body = next(m for m in messages if m[0] == "image.ready")
        assert body["data"]["image_id"] == image_id and properties.delivery_mode == 2
        assert properties.message_id.startswith("evt_") and properties.content_type == "application/json"
        assert len({p.message_id for _, p, _ in messages}) == len(messages)
    finally:
        channel.exchange_delete(exchange)
        connection.close()


def test_a_redirect_is_a_failed_attempt_never_followed(start, receiver: Receiver, photo_bytes: bytes) -> None:
    elsewhere = Receiver()
    try:
        receiver.mode, receiver.location = "redirect", elsewhere.url
        running = start(events_retry_delay=60.0)
        running.run(store_photo(running.derivatives.store, photo_bytes))
        [pending] = wait_until(lambda: [d for d in running.outbox.pending() if d.attempts], 30, "one failed attempt")
        assert "answered 307 (redirects are not followed)" in pending.last_error
        assert elsewhere.requests == [] and len(receiver.requests) == 1
    finally:
        elsewhere.close()


@pytest.mark.parametrize("settings, problem", [
    ({"webhook_url": ["http://127.0.0.1:9/hook"]}, "--webhook-url needs --webhook-secret"),
    ({"webhook_url": ["ftp://127.0.0.1/hook"], "webhook_secret": SECRETS}, "give an http:// or https:// URL"),
    ({"webhook_url": ["http:///hook"], "webhook_secret": SECRETS}, "give an http:// or https:// URL"),
    ({"webhook_secret": ["whsec_c2hvcnQ="]}, "the base64 of 24 to 64 random bytes"),
    ({"webhook_secret": ["not-a-secret-but-long-enough-to-look-like-one"]}, "give whsec_"),
])
def test_webhook_settings_that_cannot_work_stop_start_up(settings: dict, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        Settings(**settings)


def test_an_empty_webhook_secret_is_refused_from_the_environment() -> None:
    with pytest.raises(SettingsError, match="an empty webhook secret is not a secret"):
        Settings.load(environ={"PIXLINE_WEBHOOK_SECRET": f"{SECRETS[0]},,"})


class CountingStore(Store):
    """The store on files, counting the objects read."""

    reads = 0

    def get(self, key: str) -> bytes:
        self.reads += 1
        return super().get(key)


def test_a_sweep_reads_only_new_entries_and_those_due(tmp_path: Path, receiver: Receiver) -> None:
    from pixline.server.queue.event_delivery import EventDelivery, EventRetry
    from pixline.server.queue.event_outbox import EventOutbox
    from pixline.server.queue.event_sinks import make_sinks
    from pixline.server.queue.events import Event, now_iso

    receiver.mode = "fail"  # down for a long while: every entry waits a minute for its next attempt
    store = CountingStore(f"file://{tmp_path / 'store'}")
    sinks = make_sinks(Settings(webhook_url=[receiver.url], webhook_secret=SECRETS))
    outbox = EventOutbox(store, [sink.destination for sink in sinks])
    delivery = EventDelivery(outbox, sinks, EventRetry(first_delay=60.0)).start()
    try:
        def emit(n: int) -> None:
            outbox.emit(Event(f"evt_{n:032x}", IMAGE_READY, now_iso(), {"image_id": f"{n:032x}"}))
            delivery.notify()

        for n in range(5):
            emit(n)
        wait_until(lambda: len(receiver.requests) == 5 and all(d.attempts == 1 for d in outbox.pending()),
                   30, "five failed first attempts")
        store.reads = 0
        delivery.sweep()
        assert store.reads == 0  # none is due: nothing read
        emit(5)
        wait_until(lambda: len(receiver.requests) == 6, 30, "the new event's first attempt")
        assert store.reads >= 1  # the new one was read, and only it was attempted
        assert sorted({r.id for r in receiver.requests}) == [f"evt_{n:032x}" for n in range(6)]
    finally:
        delivery.close()

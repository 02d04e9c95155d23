"""The upload outbox: no eager job is lost while the broker is away.

In process with a publisher that fails on demand; then with real processes: ``pixline serve --role
media`` reaching RabbitMQ through a TCP proxy that is cut while uploads continue, a ``pixline worker``
on the broker itself, and every upload of the outage fully rendered soon after the proxy is back."""
from __future__ import annotations

import json
import time

import pytest

from pixline.engine.storage import Store
from pixline.server.commands.wiring import make_derivatives
from pixline.server.queue.jobs import Job
from pixline.server.queue.outbox import ABANDONED_AFTER, OutboxPublisher, outbox_key
from pixline.server.settings import Settings

from .helpers import RECIPES, store_photo, wait_until
from .tcp_proxy import TcpProxy, free_port
from .test_e2e_queue import http, up, upload

IMAGE = "0123456789abcdef0123456789abcdef"


class FlakyPublisher:
    def __init__(self) -> None:
        self.down = True
        self.jobs: list[Job] = []

    def publish(self, job: Job) -> None:
        if self.down:
            raise ConnectionError("broker away")
        self.jobs.append(job)

    def close(self) -> None:
        pass


def test_a_job_the_broker_refused_stays_in_the_outbox_until_a_drain_publishes_it(store, stored_photo) -> None:
    inner = FlakyPublisher()
    outbox = OutboxPublisher(store, inner, interval=0)
    job = Job(stored_photo, ("small", "square"))
    with pytest.raises(ConnectionError):
        outbox.publish(job)
    assert store.list_keys("outbox/") == [outbox_key(stored_photo)]
    with pytest.raises(ConnectionError):  # still away: the drain stops at the first failure
        outbox.drain()
    assert store.exists(outbox_key(stored_photo))
    inner.down = False
    assert outbox.drain(min_age=3600) == 0  # too young: its upload may still be publishing it
    assert outbox.drain() == 1
    assert inner.jobs == [job] and store.list_keys("outbox/") == []


def test_a_confirmed_publish_leaves_nothing_in_the_outbox(store, stored_photo) -> None:
    inner = FlakyPublisher()
    inner.down = False
    OutboxPublisher(store, inner, interval=0).publish(Job(stored_photo, ("small",)))
    assert len(inner.jobs) == 1 and store.list_keys("outbox/") == []


def test_an_entry_whose_image_was_never_stored_is_not_published_and_dropped_late(store) -> None:
    inner = FlakyPublisher()
    inner.down = False
    outbox = OutboxPublisher(store, inner, interval=0)
    entry = {**json.loads(Job(IMAGE, ("small",)).to_json()), "queued_at": time.time()}
    store.put(outbox_key(IMAGE), json.dumps(entry).encode())
    assert outbox.drain() == 0 and store.exists(outbox_key(IMAGE))
    entry["queued_at"] -= ABANDONED_AFTER + 1
    store.put(outbox_key(IMAGE), json.dumps(entry).encode())
    assert outbox.drain() == 0 and not store.exists(outbox_key(IMAGE)) and inner.jobs == []


@pytest.mark.amqp
@pytest.mark.slow
def test_uploads_during_a_broker_outage_get_their_eager_presets_once_it_is_back(
        settings, store_url, photos, spawn, amqp_url) -> None:
    proxy = TcpProxy(int(amqp_url.rsplit(":", 1)[1].split("/")[0])).up()
    broker_via_proxy = amqp_url.replace(amqp_url.rsplit("@", 1)[1].split("/")[0], proxy.url_host)
    port = free_port()
    common = ["--queue", settings.queue, "--store", store_url, "--recipes", str(RECIPES)]
    media = spawn("serve", "--role", "media", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                  "--amqp", broker_via_proxy, "--outbox-interval", "1", *common, name="media")
    spawn("worker", "--amqp", amqp_url, *common, name="worker")
    base = f"http://127.0.0.1:{port}"
    derivatives = make_derivatives(settings)
    try:
        wait_until(lambda: up(base), 60, "the media role to listen")
        before = upload(base, (photos / "Storm.jpg").read_bytes())  # the broker is up: queued at once
        proxy.down()  # the broker is away: connections cut, new ones refused
        during = [upload(base, (photos / name).read_bytes())
                  for name in ("LadyBird.jpg", "Wood.jpg")]
        assert len(derivatives.store.list_keys("outbox/")) == 2, media.log()
        time.sleep(2)  # drains meanwhile fail: the entries stay
        assert len(derivatives.store.list_keys("outbox/")) == 2
        proxy.up()
        back = time.monotonic()
        for image_id in [before, *during]:
            wait_until(lambda: all(e["stored"] for e in derivatives.eager_status(
                image_id, derivatives.store.get_meta(image_id)).values()), 60, f"the presets of {image_id}")
        print(f"every upload of the outage rendered {time.monotonic() - back:.1f}s after the broker was back")
        assert derivatives.store.list_keys("outbox/") == []
        assert "outbox: published" in media.log()
        assert http("GET", f"{base}/images/{during[0]}")[0] == 200
    finally:
        proxy.down()

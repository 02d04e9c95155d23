"""Events with real processes: ``pixline serve`` (its in-process queue) killed with SIGKILL while a
webhook POST is in flight, started again on the same store: the event still arrives, with the id it
had; and the README's receiver (verifying with ``standardwebhooks``) gets an upload's image.ready
from a ``pixline serve`` configured by environment, as ``make run`` is in the README's tour."""
from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from .helpers import RECIPES, wait_until
from .receiver import Receiver
from .tcp_proxy import free_port
from .test_e2e_queue import up, upload

pytestmark = pytest.mark.slow
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(mode="hold")
    yield receiver
    receiver.close()


def test_an_event_in_flight_when_pixline_is_killed_arrives_after_it_starts_again(
        spawn, store_url: str, receiver: Receiver, photo_bytes: bytes) -> None:
    port = free_port()
    args = ["serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--store", store_url,
            "--recipes", str(RECIPES), "--webhook-url", receiver.url, "--webhook-secret", SECRET,
            "--webhook-timeout", "2", "--events-retry-delay", "0.2"]
    base = f"http://127.0.0.1:{port}"
    first = spawn(*args, name="serve-first")
    wait_until(lambda: up(base) or first.process.poll() is not None, 60, "pixline serve")
    image_id = upload(base, photo_bytes)
    [held] = wait_until(receiver.held, 60, "the webhook POST in flight")

    first.signal(signal.SIGKILL)  # mid-delivery: the POST is not answered yet
    first.wait(10)
    receiver.mode = "ok"
    second = spawn(*args, name="serve-second")
    wait_until(lambda: up(base) or second.process.poll() is not None, 60, "pixline serve again")

    [delivered] = wait_until(receiver.delivered, 60, "the event delivered after the restart")
    assert delivered.id == held.id and delivered.event["data"]["image_id"] == image_id
    assert {r.id for r in receiver.requests} == {held.id}  # tried again, never as another event


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_receiver() -> str:
    """The README's ``receiver.py`` code block."""
    return re.search(r"^```python\n# receiver.py\n(.*?)^```$", README.read_text(), re.M | re.S).group(1)


def test_the_readme_receiver_verifies_and_prints_an_uploads_image_ready(
        spawn, store_url: str, tmp_path: Path, photo_bytes: bytes) -> None:
    hook_port, port = free_port(), free_port()
    script = tmp_path / "receiver.py"
    script.write_text(readme_receiver().replace('("127.0.0.1", 9000)', f'("127.0.0.1", {hook_port})'))
    printed = tmp_path / "receiver.out"
    with open(printed, "wb") as out:
        receiver = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "PIXLINE_WEBHOOK_SECRET": SECRET})
    try:
        env = {"PIXLINE_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/", "PIXLINE_WEBHOOK_SECRET": SECRET}
        serve = spawn("serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--store", store_url,
                      env=env, name="serve")
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: up(base) or serve.process.poll() is not None, 60, "pixline serve")
        image_id = upload(base, photo_bytes)
        line = wait_until(lambda: printed.read_text().strip(), 60, "the receiver's line")
        assert re.fullmatch(rf"evt_[0-9a-f]{{32}} image\.ready {image_id}", line), printed.read_text()
    finally:
        receiver.terminate()
        receiver.wait(10)


def test_pixline_import_sends_each_image_ready_once_and_nothing_when_run_again(
        store_url: str, tmp_path: Path, photos: Path) -> None:
    library = tmp_path / "old-site"
    (library / "2024").mkdir(parents=True)
    for path in sorted(photos.glob("*.jpg"))[:2]:
        (library / "2024" / path.name).write_bytes(path.read_bytes())
    receiver = Receiver()
    try:
        command = [sys.executable, "-m", "pixline.server.commands", "import", str(library), "--store", store_url,
                   "--recipes", str(RECIPES), "--webhook-url", receiver.url, "--webhook-secret", SECRET]
        for run in range(2):
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            if run == 0:
                first = list(receiver.requests)
        assert receiver.requests == first  # the second import sent nothing
        assert sorted(r.event["data"]["source_key"] for r in first) == sorted(
            f"2024/{path.name}" for path in sorted(photos.glob("*.jpg"))[:2])
        assert {r.event["type"] for r in first} == {"image.ready"} and all(r.status == 200 for r in first)
    finally:
        receiver.close()


@pytest.mark.amqp
def test_pixline_worker_sends_an_uploads_events_to_a_webhook_and_the_topic_exchange(
        spawn, settings, store_url: str, amqp_url: str, photo_bytes: bytes) -> None:
    import json
    import uuid

    import pika

    exchange = f"pixline.test.events.{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    hook = Receiver()
    try:
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, exchange, routing_key="image.*")
        common = ["--amqp", amqp_url, "--queue", settings.queue, "--store", store_url, "--recipes", str(RECIPES)]
        port = free_port()
        serve = spawn("serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", *common, name="serve")
        spawn("worker", *common, "--webhook-url", hook.url, "--webhook-secret", SECRET,
              "--events-amqp", amqp_url, "--events-exchange", exchange, name="worker")
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: up(base) or serve.process.poll() is not None, 60, "pixline serve")
        image_id = upload(base, photo_bytes)
        [delivered] = wait_until(hook.delivered, 90, "the webhook from the worker")
        assert delivered.event["type"] == "image.ready" and delivered.event["data"]["image_id"] == image_id
        method, properties, body = wait_until(lambda: (lambda m: m if m[0] else None)(
            channel.basic_get(queue, auto_ack=True)), 30, "the event on the exchange")
        assert method.routing_key == "image.ready" and properties.message_id == delivered.id
        assert json.loads(body) == delivered.event  # one event, the same body both ways
    finally:
        hook.close()
        channel.exchange_delete(exchange)
        connection.close()

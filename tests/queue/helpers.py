"""Helpers of the queue tests: bounded waits, stored photos, queues on the test broker, processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar

import pika
import pika.exceptions

from pixline.engine.source import Source, content_id
from pixline.engine.storage import Store

RECIPES = Path(__file__).parent / "recipes"
#: The same eager recipes held 2 s each by the test-only ``slow`` step, and ``stuck`` (300 s).
SLOW_RECIPES = Path(__file__).parent / "recipes-slow"
T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def store_photo(store: Store, data: bytes) -> str:
    """Store an original and its metadata as an upload does; returns its id."""
    image_id = content_id(data)
    store.put_original(image_id, data, Source(data).describe())
    return image_id


def queue_counts(amqp_url: str, queue: str, missing_ok: bool = False) -> tuple[int, int] | None:
    """(messages ready, consumers) of a queue, by a passive declare; ``None`` for a missing queue
    if ``missing_ok`` (a worker not started yet)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ok = connection.channel().queue_declare(queue, passive=True).method
        return ok.message_count, ok.consumer_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        if missing_ok and exc.reply_code == 404:
            return None
        raise
    finally:
        if connection.is_open:
            connection.close()


def get_messages(amqp_url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take every message now in ``queue`` (acked: they are gone afterwards)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    messages = []
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append((properties, body))
    finally:
        connection.close()


def publish_raw(amqp_url: str, queue: str, body: bytes) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()


def delete_queues(amqp_url: str, names: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)
    finally:
        connection.close()


def metric(port: int, name: str, **labels: str) -> float:
    """A sample's value from a process's /metrics (0 when it has none yet, or is not serving yet)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:  # still starting: a wait_until keeps asking
        return 0.0
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


class PixlineProcess:
    """A ``pixline`` command run as a real process, its output going to a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pixline.server.commands", "--log-level", "info", *args],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, a bounded wait, then SIGKILL: never leave a process behind."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(10)
        self._log.close()

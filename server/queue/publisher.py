"""Publishing to RabbitMQ: jobs (what ``pixline serve --amqp`` and ``pixline regenerate --amqp``
use) and, through the same confirmed channel, events (queue/event_sinks.py).

Messages are persistent and confirmed by the broker (publisher confirms); jobs go to the durable work
queue of :class:`~pixline.server.queue.topology.Topology`.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from ..settings import Settings
from .jobs import Job
from .topology import Topology, connection_parameters, message_properties


class JobQueueUnavailable(Exception):
    """The broker could not be reached; publishing (jobs or events) is not tried again for a few seconds."""


class ConfirmedPublisher:
    """One AMQP channel with publisher confirms, safe to share between a process's threads.

    The connection is opened on first use (so it is made after gunicorn forks) and ``declare`` runs on
    each new channel. An idle connection misses heartbeats and is closed by the broker, so a failed
    publish is tried once more on a fresh connection. After the broker could not be reached,
    publishing fails fast for ``reconnect_pause`` seconds instead of holding every caller up for a
    connection timeout.
    """

    def __init__(self, url: str, declare: Callable[[BlockingChannel], None], reconnect_pause: float = 5.0,
                 connect_timeout: float = 3.0) -> None:
        self.params = connection_parameters(url, socket_timeout=connect_timeout,
                                            blocked_connection_timeout=10, connection_attempts=1)
        self.declare = declare
        self.reconnect_pause = reconnect_pause
        self._lock = threading.Lock()
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._down_until = 0.0

    def send(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties,
             mandatory: bool = True) -> None:
        """Publish ``body``; raises if the broker did not confirm it."""
        with self._lock:
            if time.monotonic() < self._down_until:
                raise JobQueueUnavailable("the broker was unreachable moments ago")
            for attempt in (1, 2):
                try:
                    channel = self._open_channel()
                except pika.exceptions.AMQPError as exc:
                    self._down_until = time.monotonic() + self.reconnect_pause
                    raise JobQueueUnavailable(f"cannot connect to the broker: {exc!r}") from exc
                try:
                    channel.basic_publish(exchange, routing_key, body, properties, mandatory=mandatory)
                    return
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
                    raise  # the broker answered: a fresh connection would not change its mind
                except pika.exceptions.AMQPError:
                    self._drop_connection()
                    if attempt == 2:
                        raise

    def check(self) -> str:
        """``/readyz``'s broker check: the connection answers (opened if need be); raises if not."""
        with self._lock:
            if time.monotonic() < self._down_until:
                raise JobQueueUnavailable("the broker was unreachable moments ago")
            try:
                self._open_channel()
                self._connection.process_data_events(time_limit=0)  # a dead connection raises here
            except pika.exceptions.AMQPError as exc:
                self._drop_connection()
                self._down_until = time.monotonic() + self.reconnect_pause
                raise JobQueueUnavailable(f"cannot reach the broker: {exc!r}") from exc
        return "ok"

    def _open_channel(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._drop_connection()
        connection = pika.BlockingConnection(self.params)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            self.declare(channel)
        except BaseException:
            if connection.is_open:
                connection.close()
            raise
        self._connection, self._channel = connection, channel
        return channel

    def _drop_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass

    def close(self) -> None:
        with self._lock:
            self._drop_connection()


class AmqpJobPublisher:
    """Publishes jobs, persistent and confirmed, to the work queue (one :class:`ConfirmedPublisher`)."""

    def __init__(self, settings: Settings, reconnect_pause: float = 5.0,
                 connect_timeout: float = 3.0) -> None:
        if not settings.amqp:
            raise ValueError("AmqpJobPublisher needs settings.amqp")
        self.topology = Topology.from_settings(settings)
        self.channel = ConfirmedPublisher(settings.amqp, self.topology.declare, reconnect_pause,
                                          connect_timeout)

    def publish(self, job: Job) -> None:
        """Queue ``job`` durably; raises if the broker did not confirm it."""
        self.channel.send("", self.topology.queue, job.to_json(), message_properties())

    def check(self) -> str:
        """``/readyz``'s broker check (:meth:`ConfirmedPublisher.check`)."""
        return self.channel.check()

    def close(self) -> None:
        self.channel.close()

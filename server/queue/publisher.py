"""Publishing jobs to RabbitMQ: what ``pixline serve --amqp`` and ``pixline regenerate --amqp`` use.

Messages are persistent and confirmed by the broker (publisher confirms) on the durable work queue of
:class:`~pixline.server.queue.topology.Topology`.
"""
from __future__ import annotations

import threading
import time

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from ..settings import Settings
from .jobs import Job
from .topology import Topology, connection_parameters, message_properties


class JobQueueUnavailable(Exception):
    """The broker could not be reached; publishing is not tried again for a few seconds."""


class AmqpJobPublisher:
    """Publishes jobs with publisher confirms; safe to share between a process's threads.

    The connection is opened on first use (so it is made after gunicorn forks). An idle connection
    misses heartbeats and is closed by the broker, so a failed publish is tried once more on a fresh
    connection. After the broker could not be reached, publishing fails fast for ``reconnect_pause``
    seconds instead of holding every upload up for a connection timeout.
    """

    def __init__(self, settings: Settings, reconnect_pause: float = 5.0,
                 connect_timeout: float = 3.0) -> None:
        if not settings.amqp:
            raise ValueError("AmqpJobPublisher needs settings.amqp")
        self.params = connection_parameters(settings.amqp, socket_timeout=connect_timeout,
                                            blocked_connection_timeout=10, connection_attempts=1)
        self.topology = Topology.from_settings(settings)
        self.reconnect_pause = reconnect_pause
        self._lock = threading.Lock()
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._down_until = 0.0

    def publish(self, job: Job) -> None:
        """Queue ``job`` durably; raises if the broker did not confirm it."""
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
                    channel.basic_publish("", self.topology.queue, job.to_json(),
                                          message_properties(), mandatory=True)
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
            self.topology.declare(channel)
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

"""RabbitMQ: the queue topology, the publisher ``pixline serve`` uses, and the ``pixline worker`` consumer.

Topology (all durable, on the default exchange; ``Q`` is ``settings.queue``)::

    Q                     work queue; consumers ack after every output is stored.
                          x-dead-letter-routing-key=Q.dead: a rejected message is kept, not lost
    Q.retry.<ms>ms        one delay queue per retry: no consumer, x-message-ttl=<ms>, dead-letters
                          back to Q when the time is up (the message carries attempt+1)
    Q.dead                dead letters: poison jobs, and jobs out of retries; headers say why

One delay queue per delay (rather than one queue with per-message TTLs) because RabbitMQ expires only
the message at a queue's head: a 20 s retry would hold back a 5 s one queued behind it. The delay is in
the queue's name, so changing ``job_retry_delay`` declares new queues instead of clashing with old ones.

The consumer follows pika 1.4.4's threaded consumer example: a ``BlockingConnection`` on the main
thread keeps heartbeats flowing while renders run on other threads, which hand their acks back through
``connection.add_callback_threadsafe``; prefetch equals the number of work slots.
"""
from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from pixline.engine.errors import PixlineError

from .jobs import Job
from .settings import Settings
from .worker import JobHandler, Outcome, RetryPolicy, run_message

log = logging.getLogger(__name__)

PERSISTENT = pika.DeliveryMode.Persistent
JSON = "application/json"


@dataclass(frozen=True)
class Topology:
    """The names and arguments of the queues behind one work queue."""

    queue: str
    retry_delays: tuple[float, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> "Topology":
        return cls(settings.queue, tuple(retry_policy(settings).delays))

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead"

    def retry_queue(self, delay: float) -> str:
        return f"{self.queue}.retry.{round(delay * 1000)}ms"

    @property
    def queue_names(self) -> list[str]:
        return [self.queue, self.dead_letter_queue] + [self.retry_queue(d) for d in self.retry_delays]

    def declare(self, channel: BlockingChannel) -> None:
        """Declare every queue (idempotent: same names, same arguments).

        A queue that exists with other arguments cannot be changed by declaring it: that is a
        :class:`QueueMismatchError`, not something to retry.
        """
        try:
            channel.queue_declare(self.dead_letter_queue, durable=True)
            channel.queue_declare(self.queue, durable=True, arguments={
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.dead_letter_queue})
            for delay in self.retry_delays:
                channel.queue_declare(self.retry_queue(delay), durable=True, arguments={
                    "x-message-ttl": round(delay * 1000),
                    "x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.queue})
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 406:  # PRECONDITION_FAILED: declared before with other arguments
                raise QueueMismatchError(
                    f"RabbitMQ refused the queues of {self.queue!r}: {exc.reply_text}; delete the old "
                    "queue or pick another name with --queue") from None
            raise


class QueueMismatchError(PixlineError):
    """A queue of the topology exists with other arguments (made by another version or by hand)."""

    title = "queue mismatch"


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(retries=settings.job_retries, first_delay=settings.job_retry_delay)


def connection_parameters(url: str, **overrides: object) -> pika.URLParameters:
    params = pika.URLParameters(url)
    for name, value in overrides.items():
        setattr(params, name, value)
    return params


def message_properties(headers: dict[str, str] | None = None) -> pika.BasicProperties:
    return pika.BasicProperties(delivery_mode=PERSISTENT, content_type=JSON, headers=headers)


class JobQueueUnavailable(Exception):
    """The broker could not be reached; publishing is not tried again for a few seconds."""


class AmqpJobPublisher:
    """Publishes jobs with publisher confirms; safe to share between a process's threads.

    The connection is opened on first use (so it is made after gunicorn forks). An idle connection
    misses heartbeats and is closed by the broker, so a failed publish is tried once more on a fresh
    connection. After the broker could not be reached, publishing fails fast for ``retry_after``
    seconds instead of holding every upload up for a connection timeout.
    """

    def __init__(self, settings: Settings, retry_after: float = 5.0, connect_timeout: float = 3.0) -> None:
        if not settings.amqp:
            raise ValueError("AmqpJobPublisher needs settings.amqp")
        self.params = connection_parameters(settings.amqp, socket_timeout=connect_timeout,
                                            blocked_connection_timeout=10, connection_attempts=1)
        self.topology = Topology.from_settings(settings)
        self.retry_after = retry_after
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
                    self._down_until = time.monotonic() + self.retry_after
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


class Backoff:
    """Capped exponential backoff with jitter, for reconnecting."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first, self.cap, self.current = first, cap, first

    def next(self) -> float:
        delay, self.current = self.current, min(self.cap, self.current * 2)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.current = self.first


class _Session:
    """One connection's consumer: its in-flight deliveries, settled on the connection's thread."""

    def __init__(self, worker: "AmqpWorker", connection: BlockingConnection,
                 channel: BlockingChannel) -> None:
        self.worker = worker
        self.connection = connection
        self.channel = channel
        self.in_flight: set[int] = set()
        self.closed = False  # set when this connection is gone: late results are dropped

    def on_message(self, channel: BlockingChannel, method: pika.spec.Basic.Deliver,
                   properties: pika.BasicProperties, body: bytes) -> None:
        self.in_flight.add(method.delivery_tag)
        self.worker.start_job(self, method.delivery_tag, body)

    def hand_back(self, tag: int, outcome: Outcome, body: bytes) -> None:
        """Called on a job's thread: marshal the settlement to the connection's thread."""
        try:
            self.connection.add_callback_threadsafe(functools.partial(self.settle, tag, outcome, body))
        except pika.exceptions.AMQPError:
            log.warning("connection closed before job %s was acked; the broker redelivers it", tag)

    def settle(self, tag: int, outcome: Outcome, body: bytes) -> None:
        """Ack, retry or dead-letter one delivery (on the connection's thread)."""
        if self.closed or not self.channel.is_open or tag not in self.in_flight:
            return
        self.in_flight.discard(tag)
        topology = self.worker.topology
        if outcome.action == "done":
            self.channel.basic_ack(tag)
            return
        if outcome.action == "retry" and outcome.job is not None:
            queue, body = topology.retry_queue(outcome.delay), outcome.job.next_attempt().to_json()
            headers = None
        else:
            # The message as it came (a malformed one cannot be re-encoded), and why it died.
            queue, headers = topology.dead_letter_queue, {"x-pixline-error": outcome.reason[:1000]}
        try:
            self.channel.basic_publish("", queue, body, message_properties(headers), mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            # Reject instead: the work queue's dead-letter routing keeps the message.
            log.error("could not move job %s to %s (%s); rejecting it to the dead-letter queue",
                      tag, queue, exc)
            self.channel.basic_nack(tag, requeue=False)
            return
        self.channel.basic_ack(tag)


class AmqpWorker:
    """Consumes jobs until :meth:`stop`; reconnects with capped backoff when the broker goes away."""

    def __init__(self, settings: Settings, handler: JobHandler) -> None:
        if not settings.amqp:
            raise ValueError("AmqpWorker needs settings.amqp")
        self.params = connection_parameters(settings.amqp)
        # Named connections are easy to find in the management UI and rabbitmqctl list_connections.
        self.params.client_properties = {"connection_name": f"pixline worker {settings.queue} "
                                                            f"pid {os.getpid()}"}
        self.topology = Topology.from_settings(settings)
        self.policy = retry_policy(settings)
        self.handler = handler
        self.concurrency = max(1, settings.worker_concurrency)
        self.shutdown_grace = settings.worker_shutdown_grace
        self.connections = 0  # opened so far: more than one means it reconnected
        self._stopping = threading.Event()
        self._running_jobs = 0
        self._jobs_done = threading.Condition()

    def stop(self) -> None:
        """Ask :meth:`run` to finish: in-flight jobs complete (or are requeued after the grace)."""
        self._stopping.set()

    def run(self) -> None:
        """Consume until stopped, reconnecting whenever the connection is lost."""
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                self._consume(backoff)
            except pika.exceptions.AMQPError as exc:
                if self._stopping.is_set():
                    break
                delay = backoff.next()
                log.warning("broker connection lost or refused (%r); reconnecting in %.1fs", exc, delay)
                # Jobs of the lost connection finish first (their outputs are stored; the broker
                # redelivers them and the redelivered jobs find everything stored), which keeps the
                # number of renders at once within worker_concurrency.
                self._wait_for_jobs(timeout=None)
                self._stopping.wait(delay)
        log.info("worker stopped")

    def start_job(self, session: _Session, tag: int, body: bytes) -> None:
        with self._jobs_done:
            self._running_jobs += 1
        # Daemon threads: a job still rendering after the shutdown grace must not hold up the exit
        # (its message was requeued).
        threading.Thread(target=self._work, args=(session, tag, body), daemon=True,
                         name=f"pixline-job-{tag}").start()

    def _work(self, session: _Session, tag: int, body: bytes) -> None:
        try:
            outcome = run_message(self.handler, self.policy, body)
            session.hand_back(tag, outcome, body)
        finally:
            with self._jobs_done:
                self._running_jobs -= 1
                self._jobs_done.notify_all()

    def _wait_for_jobs(self, timeout: float | None) -> None:
        with self._jobs_done:
            self._jobs_done.wait_for(lambda: self._running_jobs == 0, timeout)

    def _consume(self, backoff: Backoff) -> None:
        connection = pika.BlockingConnection(self.params)
        self.connections += 1
        session: _Session | None = None
        try:
            channel = connection.channel()
            self.topology.declare(channel)
            channel.confirm_delivery()  # retries and dead letters are published, then the job acked
            channel.basic_qos(prefetch_count=self.concurrency)
            session = _Session(self, connection, channel)
            consumer_tag = channel.basic_consume(self.topology.queue, session.on_message)
            backoff.reset()
            log.info("consuming %s with %d job slots", self.topology.queue, self.concurrency)
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=0.5)
            self._shut_down(connection, channel, session, consumer_tag)
        finally:
            if session is not None:
                session.closed = True
            if connection.is_open:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    pass

    def _shut_down(self, connection: BlockingConnection, channel: BlockingChannel, session: _Session,
                   consumer_tag: str) -> None:
        """Stop taking jobs, let in-flight ones finish for the grace period, requeue the rest."""
        channel.basic_cancel(consumer_tag)
        deadline = time.monotonic() + self.shutdown_grace
        if session.in_flight:
            log.info("stopping: waiting up to %.0fs for %d job(s)", self.shutdown_grace,
                     len(session.in_flight))
        while session.in_flight and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
        for tag in sorted(session.in_flight):
            log.warning("stopping: returning unfinished job %s to the queue", tag)
            channel.basic_nack(tag, requeue=True)
        session.in_flight.clear()

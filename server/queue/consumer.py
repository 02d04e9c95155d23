"""The RabbitMQ consumer of ``pixline worker``: jobs from the work queue, through the job handler.

It follows pika 1.4.4's threaded consumer example: a ``BlockingConnection`` on the main thread keeps
heartbeats flowing while renders run on other threads, which hand their acks back through
``connection.add_callback_threadsafe``; prefetch equals the number of job slots. Retries and dead
letters go to the queues of :class:`~pixline.server.queue.topology.Topology`.
"""
from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from ..settings import Settings
from .handler import JobHandler, Outcome, RetryPolicy, run_message
from .topology import Topology, connection_parameters, message_properties

log = logging.getLogger(__name__)


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

    def __init__(self, consumer: "AmqpConsumer", connection: BlockingConnection,
                 channel: BlockingChannel) -> None:
        self.consumer = consumer
        self.connection = connection
        self.channel = channel
        self.in_flight: set[int] = set()
        self.closed = False  # set when this connection is gone: late results are dropped

    def on_message(self, channel: BlockingChannel, method: pika.spec.Basic.Deliver,
                   properties: pika.BasicProperties, body: bytes) -> None:
        self.in_flight.add(method.delivery_tag)
        self.consumer.start_job(self, method.delivery_tag, body)

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
        topology = self.consumer.topology
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


class AmqpConsumer:
    """Consumes jobs until :meth:`stop`; reconnects with capped backoff when the broker goes away."""

    def __init__(self, settings: Settings, handler: JobHandler) -> None:
        if not settings.amqp:
            raise ValueError("AmqpConsumer needs settings.amqp")
        self.params = connection_parameters(settings.amqp)
        # Named connections are easy to find in the management UI and rabbitmqctl list_connections.
        self.params.client_properties = {"connection_name": f"pixline worker {settings.queue} "
                                                            f"pid {os.getpid()}"}
        self.topology = Topology.from_settings(settings)
        self.policy = RetryPolicy.from_settings(settings)
        self.handler = handler
        self.concurrency = max(1, settings.worker_concurrency)
        self.shutdown_grace = settings.worker_shutdown_grace
        self.connections = 0  # opened so far: more than one means it reconnected
        #: Set while a connection consumes (its queues are declared); cleared when it is lost.
        self.consuming = threading.Event()
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
        log.info("consumer stopped")

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
            self.consuming.set()
            log.info("consuming %s with %d job slots", self.topology.queue, self.concurrency)
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=0.5)
            self._shut_down(connection, channel, session, consumer_tag)
        finally:
            self.consuming.clear()
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

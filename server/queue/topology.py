"""RabbitMQ: the queues behind one work queue, and what publisher and consumer share.

Topology (all durable, on the default exchange; ``Q`` is ``settings.queue``)::

    Q                     work queue; consumers ack after every output is stored.
                          x-dead-letter-routing-key=Q.dead: a rejected message is kept, not lost
    Q.retry.<ms>ms        one delay queue per retry: no consumer, x-message-ttl=<ms>, dead-letters
                          back to Q when the time is up (the message carries attempt+1)
    Q.dead                dead letters: poison jobs, and jobs out of retries; headers say why

One delay queue per delay (rather than one queue with per-message TTLs) because RabbitMQ expires only
the message at a queue's head: a 20 s retry would hold back a 5 s one queued behind it. The delay is in
the queue's name, so changing ``job_retry_delay`` declares new queues instead of clashing with old ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from pixline.engine.errors import PixlineError

from ..settings import Settings
from .handler import RetryPolicy

PERSISTENT = pika.DeliveryMode.Persistent
JSON = "application/json"


@dataclass(frozen=True)
class Topology:
    """The names and arguments of the queues behind one work queue."""

    queue: str
    retry_delays: tuple[float, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> "Topology":
        return cls(settings.queue, tuple(RetryPolicy.from_settings(settings).delays))

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


def connection_parameters(url: str, **overrides: object) -> pika.URLParameters:
    params = pika.URLParameters(url)
    for name, value in overrides.items():
        setattr(params, name, value)
    return params


def message_properties(headers: dict[str, str] | None = None) -> pika.BasicProperties:
    return pika.BasicProperties(delivery_mode=PERSISTENT, content_type=JSON, headers=headers)

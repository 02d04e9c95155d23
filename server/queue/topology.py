"""RabbitMQ: the queues behind one work queue, and what publisher and consumer share.

Topology (all quorum queues, durable, on the default exchange; ``Q`` is ``settings.queue``)::

    Q                     work queue; consumers ack after every output is stored.
                          x-dead-letter-routing-key=Q.dead: a rejected message is kept, not lost;
                          x-delivery-limit=--job-delivery-limit: a job handed out that many times
                          more without being settled (its worker was killed on it, lost its
                          connection, or handed it back at shutdown) is dead-lettered by the broker
    Q.retry.<ms>ms        one delay queue per retry: no consumer, x-message-ttl=<ms>, dead-letters
                          back to Q when the time is up (the message carries attempt+1)
    Q.dead                dead letters: poison jobs, jobs out of retries (headers say why), and jobs
                          over the delivery limit (the broker's x-death header: delivery_limit)

Two counts, two causes. A job's ``attempt`` (in the message) counts transient failures the handler
reported: the worker acks the message and publishes attempt+1 to a delay queue, so the next try waits
(``--job-retries``, ``--job-retry-delay``). The broker's delivery count counts deliveries that were
never settled, which only a worker that dies or disconnects on a job causes: a job that kills its
worker every time (a crash in libvips, the OOM killer) would otherwise loop forever, and the worker
never gets to count it. A retried job is a new message, so its delivery count starts again.

Quorum queues are replicated (a queue survives the loss of a minority of the cluster's nodes) and
need RabbitMQ 3.10 or later here: message TTL on a quorum queue (the delay queues) and
at-least-once dead-lettering came in 3.10. Dead-lettering (from Q to Q.dead, from a delay queue back
to Q) is ``at-least-once`` with ``overflow: reject-publish``: the broker keeps a message in its queue
until the target queue has confirmed it, so a dead letter is not lost to a node failing mid-move.

One delay queue per delay (rather than one queue with per-message TTLs) because RabbitMQ expires only
the message at a queue's head: a 20 s retry would hold back a 5 s one queued behind it. The delay is in
the queue's name, so changing ``job_retry_delay`` declares new queues instead of clashing with old ones.

A queue's type and arguments are fixed when it is made. Queues an earlier pixline made (classic ones)
are refused, not migrated, with what to do (docs/deploy.md, "RabbitMQ").
"""
from __future__ import annotations

from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from pixline.engine.errors import PixlineError

from ..settings import Settings
from .handler import RetryPolicy

PERSISTENT = pika.DeliveryMode.Persistent
JSON = "application/json"

QUORUM = {"x-queue-type": "quorum"}
#: Dead letters move only once the target queue has them (RabbitMQ 3.10+, quorum queues only).
SAFE_DEAD_LETTERS = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
#: What a classic queue of an earlier pixline lacks; the rest of the arguments are the same.
QUORUM_ONLY = {*QUORUM, *SAFE_DEAD_LETTERS, "x-delivery-limit"}


def dead_letters_to(queue: str) -> dict[str, object]:
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue, **SAFE_DEAD_LETTERS}


@dataclass(frozen=True)
class Topology:
    """The names and arguments of the queues behind one work queue."""

    queue: str
    retry_delays: tuple[float, ...] = ()
    delivery_limit: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> "Topology":
        return cls(settings.queue, tuple(RetryPolicy.from_settings(settings).delays),
                   settings.job_delivery_limit)

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead"

    def retry_queue(self, delay: float) -> str:
        return f"{self.queue}.retry.{round(delay * 1000)}ms"

    @property
    def queue_names(self) -> list[str]:
        return [name for name, _ in self.declarations()]

    def declarations(self) -> list[tuple[str, dict[str, object]]]:
        """Each queue's name and arguments, in the order they are declared (a dead letter's target
        before the queue that sends it there)."""
        work = {**QUORUM, "x-delivery-limit": self.delivery_limit, **dead_letters_to(self.dead_letter_queue)}
        return [(self.dead_letter_queue, dict(QUORUM)), (self.queue, work)] + [
            (self.retry_queue(delay), {**QUORUM, "x-message-ttl": round(delay * 1000),
                                       **dead_letters_to(self.queue)})
            for delay in self.retry_delays]

    def declare(self, channel: BlockingChannel) -> None:
        """Declare every queue (idempotent: same names, same arguments).

        A queue that exists with other arguments cannot be changed by declaring it: that is a
        :class:`QueueMismatchError`, not something to retry. The broker closes ``channel`` then.
        """
        for name, arguments in self.declarations():
            try:
                channel.queue_declare(name, durable=True, arguments=arguments)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 406:  # PRECONDITION_FAILED: declared before with other arguments
                    raise
                raise self._mismatch(channel.connection, name, arguments, exc.reply_text) from None

    def _mismatch(self, connection: BlockingConnection, name: str, arguments: dict[str, object],
                  reply: str) -> "QueueMismatchError":
        """The error for a queue that exists with other arguments, saying what to do about it.

        The broker's reply names the first argument that differs, not the queue's type, so whether
        it is the classic queue an earlier pixline made is asked by declaring exactly that (a no-op
        when it is; a declare is the only question AMQP can ask about a queue's arguments).
        """
        classic = {key: value for key, value in arguments.items() if key not in QUORUM_ONLY}
        if _declares(connection, name, classic):
            return QueueMismatchError(
                f"queue {name!r}: this queue was made as a classic queue by an earlier pixline; drain "
                f"and delete it (rabbitmqctl delete_queue {name}) or use --queue NEW "
                "(docs/deploy.md, \"RabbitMQ\")")
        return QueueMismatchError(
            f"queue {name!r}: RabbitMQ refused its arguments ({reply}); it was made by hand, by another "
            f"pixline version or with another --job-delivery-limit: drain and delete it (rabbitmqctl "
            f"delete_queue {name}) or use --queue NEW")


def _declares(connection: BlockingConnection, name: str, arguments: dict[str, object]) -> bool:
    """Whether a durable ``name`` with exactly ``arguments`` is accepted (on a channel of its own)."""
    try:
        channel = connection.channel()
    except pika.exceptions.AMQPError:
        return False
    try:
        channel.queue_declare(name, durable=True, arguments=arguments)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    channel.close()
    return True


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

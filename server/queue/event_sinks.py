"""Where events go: webhooks (Standard Webhooks) and a RabbitMQ topic exchange.

A **webhook** is a POST of the event's body to an operator's URL, signed as the Standard Webhooks
specification says, with the ``standardwebhooks`` package (the receiver verifies with the same):
``webhook-id`` (the event id), ``webhook-timestamp`` (this attempt's time: receivers refuse one more
than 5 minutes off, so every retry is signed anew) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>``,
one per ``--webhook-secret``, space-separated: a receiver holding either secret of a rotation
verifies). Any 2xx is delivered; anything else, a redirect included (never followed), a refused
connection or no answer within ``--webhook-timeout`` is a failed attempt.

**AMQP**: the durable topic exchange ``--events-exchange`` (``pixline.events``), the event type as
routing key, persistent JSON with the event id as ``message_id``, publisher confirms. Not
``mandatory``: an exchange nobody has bound a queue to yet takes the event and drops it, as a topic
with no subscriber does.
"""
from __future__ import annotations

import datetime
from typing import Protocol

import pika
import urllib3
from pika.adapters.blocking_connection import BlockingChannel
from standardwebhooks import Webhook

from pixline.engine.errors import PixlineError

from ..settings import Settings
from .event_outbox import AMQP
from .events import Event
from .publisher import ConfirmedPublisher
from .topology import JSON, PERSISTENT

USER_AGENT = "pixline-webhooks"
#: Bytes of a receiver's answer read (and dropped); past it the connection is closed.
ANSWER_LIMIT = 64 * 1024


class DeliveryError(PixlineError):
    """A destination did not take an event; it is tried again later."""

    title = "event not delivered"


class Sink(Protocol):
    """A destination of events."""

    destination: str  # "amqp" or the webhook URL (event_outbox.py names entries after it)
    kind: str  # "webhook" or "amqp": the metrics' label

    def send(self, event: Event) -> None:
        """Deliver ``event``; raise :class:`DeliveryError` (or any error) when it was not taken."""

    def close(self) -> None:
        """Release connections."""


class WebhookSink:
    """POSTs events to one URL, signed with every secret."""

    kind = "webhook"

    def __init__(self, url: str, secrets: list[str], timeout: float, pool: urllib3.PoolManager) -> None:
        self.destination = url
        self.signers = [Webhook(secret) for secret in secrets]
        self.timeout = urllib3.Timeout(total=timeout)
        self.pool = pool

    def headers(self, event: Event, body: bytes, when: datetime.datetime) -> dict[str, str]:
        signatures = " ".join(signer.sign(event.id, when, body.decode()) for signer in self.signers)
        return {"content-type": JSON, "user-agent": USER_AGENT, "webhook-id": event.id,
                "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": signatures}

    def send(self, event: Event) -> None:
        body = event.to_bytes()
        headers = self.headers(event, body, datetime.datetime.now(datetime.timezone.utc))
        try:
            response = self.pool.request("POST", self.destination, body=body, headers=headers,
                                         timeout=self.timeout, retries=False, redirect=False,
                                         preload_content=False)
            # The answer's body is not used: read a little of it, so the connection can be reused;
            # a receiver that says more loses its connection, not pixline's memory.
            if len(response.read(ANSWER_LIMIT + 1)) > ANSWER_LIMIT:
                response.close()
            else:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(f"POST {self.destination}: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status < 300:
            extra = " (redirects are not followed)" if 300 <= response.status < 400 else ""
            raise DeliveryError(f"POST {self.destination} answered {response.status}{extra}")

    def close(self) -> None:
        pass  # the pool is shared: closed by whoever made it


class AmqpSink:
    """Publishes events to the topic exchange, confirmed."""

    kind = "amqp"
    destination = AMQP

    def __init__(self, url: str, exchange: str) -> None:
        self.exchange = exchange
        self.channel = ConfirmedPublisher(url, self.declare, reconnect_pause=1.0)

    def declare(self, channel: BlockingChannel) -> None:
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)

    def send(self, event: Event) -> None:
        properties = pika.BasicProperties(delivery_mode=PERSISTENT, content_type=JSON, message_id=event.id,
                                          type=event.type, app_id="pixline")
        self.channel.send(self.exchange, event.type, event.to_bytes(), properties, mandatory=False)

    def close(self) -> None:
        self.channel.close()


def make_sinks(settings: Settings, pool: urllib3.PoolManager | None = None) -> list[Sink]:
    """Every destination the settings name: each ``--webhook-url``, and ``--events-amqp``."""
    sinks: list[Sink] = []
    if settings.webhook_url:
        pool = pool or urllib3.PoolManager(maxsize=max(1, settings.events_concurrency))
        sinks += [WebhookSink(url, settings.webhook_secret, settings.webhook_timeout, pool)
                  for url in settings.webhook_url]
    if settings.events_amqp:
        sinks.append(AmqpSink(settings.events_amqp, settings.events_exchange))
    return sinks

"""The work queues are quorum queues (server/queue/topology.py): replicated, poison messages bounded by
the broker's delivery limit, and a classic queue of an earlier pixline refused with what to do."""
from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest

from pixline.server.queue.jobs import Job
from pixline.server.queue.topology import QueueMismatchError, Topology
from tests.queue.helpers import delete_queues

pytestmark = pytest.mark.amqp


def channel_of(amqp_url: str):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    return connection, connection.channel()


def test_every_queue_of_the_topology_is_a_quorum_queue(amqp_url: str, queue_name: str) -> None:
    topology = Topology(queue_name, (0.5, 1.0))
    connection, channel = channel_of(amqp_url)
    try:
        topology.declare(channel)
        declared = dict(topology.declarations())
        assert set(declared) == set(topology.queue_names)
        for name, arguments in declared.items():
            # A declare is AMQP's only question about a queue's type: the same, as classic, is refused.
            probe = connection.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                probe.queue_declare(name, durable=True, arguments={**arguments, "x-queue-type": "classic"})
            assert refused.value.reply_code == 406 and "x-queue-type" in refused.value.reply_text, name
    finally:
        connection.close()


def test_a_job_no_worker_settles_is_dead_lettered_by_the_delivery_limit(amqp_url: str, queue_name: str) -> None:
    topology = Topology(queue_name, (0.5,), delivery_limit=2)
    connection, channel = channel_of(amqp_url)
    try:
        topology.declare(channel)
        channel.basic_publish("", queue_name, Job("0" * 32, ("small",)).to_json())
        deliveries = 0
        deadline = time.monotonic() + 30
        # A worker that dies on the job every time: it is handed back unsettled (as a lost connection).
        while time.monotonic() < deadline:
            method, _, _ = channel.basic_get(queue_name)
            if method is None:
                if channel.queue_declare(topology.dead_letter_queue, passive=True).method.message_count:
                    break
                time.sleep(0.1)
                continue
            deliveries += 1
            channel.basic_nack(method.delivery_tag, requeue=True)
        assert deliveries == 3  # the first delivery and two more: then the broker gives up
        method, properties, body = channel.basic_get(topology.dead_letter_queue, auto_ack=True)
        assert method is not None and Job.from_json(body).image_id == "0" * 32
        assert properties.headers["x-death"][0]["reason"] == "delivery_limit"
        assert channel.queue_declare(queue_name, passive=True).method.message_count == 0
    finally:
        connection.close()


def test_a_classic_queue_of_an_earlier_pixline_is_refused_saying_what_to_do(amqp_url: str) -> None:
    name = f"pixline.test.classic.{time.time_ns()}"
    connection, channel = channel_of(amqp_url)
    try:
        # What pixline declared before its queues were quorum queues.
        channel.queue_declare(f"{name}.dead", durable=True)
        channel.queue_declare(name, durable=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{name}.dead"})
        with pytest.raises(QueueMismatchError) as refused:
            Topology(name, ()).declare(connection.channel())
        message = str(refused.value)
        assert "made as a classic queue by an earlier pixline" in message
        assert f"rabbitmqctl delete_queue {name}" in message and "--queue NEW" in message
    finally:
        connection.close()
        delete_queues(amqp_url, [name, f"{name}.dead"])

"""The queue: render jobs for eager recipes, on RabbitMQ (``pixline worker``) or in process.

``jobs`` (the message and the publisher interface) is all the HTTP side imports; the rest is the
job handler and its two queues (docs/architecture.md, "The queue"), and the ready events a job's end
emits and their delivery (``ready``, ``events``, ``event_outbox``, ``event_sinks``, ``event_delivery``:
"Event delivery"). Nothing here imports ``pixline.server.http``.
"""

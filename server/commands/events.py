"""``pixline events``: the events that are not delivered yet, or were given up on, and sending those again.

Each line of ``--pending`` and ``--failed`` is one delivery as JSON: ``{id, type, image_id,
destination, attempts, first_at, next_at, last_error}``. ``--retry`` puts every dead-lettered
delivery back in the outbox with a new retry window; a running ``pixline worker`` or ``pixline
serve`` with the same destinations sends it (docs/architecture.md, "Event delivery").
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..queue.event_outbox import Delivery, EventOutbox
from .flags import add_flags, settings_from
from .wiring import make_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help="list events not delivered yet or given up on; send those again",
                       epilog="""\
examples:
  pixline events --failed                          # dead-lettered deliveries, one JSON line each
  pixline events --retry                           # send them again (a worker or serve delivers)
  pixline events --pending --store s3://photos/pixline --s3-endpoint http://127.0.0.1:8333
""")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--failed", action="store_true",
                      help="list the deliveries given up on after --events-retry-window")
    what.add_argument("--pending", action="store_true", help="list the deliveries not done yet")
    what.add_argument("--retry", action="store_true",
                      help="put every dead-lettered delivery back in the outbox, due now")
    add_flags(p, "store", "s3_endpoint")
    p.set_defaults(func=run)


def describe(delivery: Delivery) -> dict[str, Any]:
    event = delivery.event
    return {"id": event.id, "type": event.type, "image_id": event.data.get("image_id"),
            "destination": delivery.destination, "attempts": delivery.attempts,
            "first_at": delivery.first_at, "next_at": delivery.next_at, "last_error": delivery.last_error}


def run(args: argparse.Namespace) -> int:
    outbox = EventOutbox(make_store(settings_from(args)), destinations=())
    if args.retry:
        retried = outbox.retry_failed()
        print(f"{len(retried)} delivery(ies) back in the outbox: a pixline worker or serve with the "
              "same destinations sends them")
        return 0
    for delivery in outbox.failed() if args.failed else outbox.pending():
        sys.stdout.write(json.dumps(describe(delivery), sort_keys=True) + "\n")
    return 0

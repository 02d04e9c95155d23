"""Slow clients against a real ``pixline serve`` (issue 8, "Slow clients"; the target is the issue's).

For 15 s, 64 clients send an upload's headers with ``Content-Length: 10485760`` and then one byte a
second, while 64 more send a chunked body that never ends, one 1-byte chunk a second; then, for 15 s,
64 clients send request headers one line a second. Every second of both phases, ``/healthz`` and a
stored ``/r/`` image must answer 200 within 2 s. Before the asynchronous front, ~25 slow uploads were
enough to take every gthread thread of both workers. Attackers that the server cuts off (408) come
back at once, as an attacker would. Loopback only, bounded (~40 s); marked slow.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

import pytest

from pixline.engine import testing

from .test_gunicorn import pixline_serve

pytestmark = pytest.mark.slow
TOKEN = "slow-clients-token"
CLIENTS = 64
PHASE_SECONDS = 15.0
ANSWER_WITHIN = 2.0


@dataclass
class Attack:
    """What the slow clients of one phase saw."""

    connections: int = 0
    bytes_sent: int = 0
    answers: list[str] = field(default_factory=list)  # status lines the server answered with
    errors: list[str] = field(default_factory=list)


async def trickle(port: int, head: bytes, piece: bytes, until: float, attack: Attack) -> None:
    """Connect, send ``head``, then ``piece`` once a second until ``until``; reconnect when cut off."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            attack.errors.append(f"connect: {exc}")
            await asyncio.sleep(0.5)
            continue
        attack.connections += 1
        try:
            writer.write(head)
            while time.monotonic() < until:
                try:  # a second of silence from the server, or its answer
                    answer = await asyncio.wait_for(reader.read(200), 1.0)
                except asyncio.TimeoutError:
                    writer.write(piece)
                    await writer.drain()
                    attack.bytes_sent += len(piece)
                    continue
                attack.answers.append(answer.split(b"\r\n", 1)[0].decode("latin-1") or "closed")
                break
        except OSError as exc:  # cut off while writing
            attack.answers.append(f"cut: {type(exc).__name__}")
        finally:
            writer.close()


def launch(clients: list[Callable[[float], Awaitable[None]]], seconds: float) -> threading.Thread:
    """Run the clients on an event loop in a thread, for ``seconds``."""

    async def main() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(client(until) for client in clients))

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    return thread


def probe_while(attackers: threading.Thread, port: int, paths: list[str]) -> list[tuple[str, str, float]]:
    """Every second while ``attackers`` run: GET each path on a fresh connection; (path, result, s)."""
    results = []
    while attackers.is_alive():
        started = time.monotonic()
        for path in paths:
            begin = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_WITHIN)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                outcome = str(response.status)
            except OSError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            finally:
                conn.close()
            results.append((path, outcome, time.monotonic() - begin))
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return results


def assert_answered(results: list[tuple[str, str, float]], phase: str) -> None:
    late = [r for r in results if r[1] != "200" or r[2] > ANSWER_WITHIN]
    assert len(results) >= 2 * (PHASE_SECONDS - 2), (phase, results)
    assert not late, f"{phase}: {len(late)} of {len(results)} probes failed or were late: {late[:6]}"


def test_slow_clients_never_stall_health_and_stored_images(tmp_path: Path) -> None:
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}", "--upload-token", TOKEN) as (
            client, _):
        status, _, body = client.request("POST", "/images", body=testing.jpeg_bytes(testing.gradient(320, 240)),
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 201, body
        image = f"/r/thumb/{json.loads(body)['id']}"
        assert client.request("GET", image)[0] == 200  # rendered and stored: later probes only read it
        paths = ["/healthz", image]
        port = client.port

        upload = (f"POST /images HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Content-Type: image/jpeg\r\n")
        by_length = (upload + "Content-Length: 10485760\r\n\r\n").encode()
        chunked = (upload + "Transfer-Encoding: chunked\r\n\r\n").encode()
        bodies = Attack()
        attackers = launch([lambda until: trickle(port, by_length, b"x", until, bodies)] * CLIENTS
                           + [lambda until: trickle(port, chunked, b"1\r\nx\r\n", until, bodies)] * CLIENTS,
                           PHASE_SECONDS)
        assert_answered(probe_while(attackers, port, paths), "slow bodies")
        # The attack held: every client kept its connection, sending all along.
        assert bodies.connections == 2 * CLIENTS and not bodies.errors, bodies
        assert bodies.bytes_sent >= 2 * CLIENTS * (PHASE_SECONDS - 3), bodies

        headers = Attack()
        attackers = launch([lambda until: trickle(port, b"GET /healthz HTTP/1.1\r\n", b"X-Slow: 1\r\n",
                                                  until, headers)] * CLIENTS, PHASE_SECONDS)
        assert_answered(probe_while(attackers, port, paths), "slow headers")
        assert not headers.errors, headers
        # Cut off at the header timeout (10 s by default) with 408, each of them.
        assert headers.answers.count("HTTP/1.1 408 Request Timeout") >= CLIENTS, headers.answers[:5]

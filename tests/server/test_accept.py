"""A worker's event loop takes one connection from the shared listening socket per wake-up
(``gunicorn_app.SharedListener``, ``ACCEPTS_PER_WAKEUP``), leaving the rest of a burst to the other
workers, and never shrinks the listen queue the master set."""
from __future__ import annotations

import asyncio
import socket
import subprocess

from pixline.server.commands.gunicorn_app import ACCEPTS_PER_WAKEUP, SharedListener

BACKLOG = 64
BURST = 10


def _listen_queue(port: int) -> tuple[int, int]:
    """(connections waiting to be accepted, the queue's limit) of the listening socket on ``port``."""
    fields = subprocess.run(["ss", "-ltnH", f"( sport = :{port} )"], capture_output=True, text=True,
                            check=True).stdout.split()
    return int(fields[1]), int(fields[2])


def _accepted_in_one_wakeup(listener: socket.socket, wrap: bool, accepts: int) -> tuple[int, int]:
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
    try:
        assert _listen_queue(port) == (BURST, BACKLOG)

        async def serve() -> tuple[int, int]:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(asyncio.Protocol, sock=SharedListener(listener) if wrap
                                              else listener, backlog=accepts)
            try:
                for _ in range(100):  # loop iterations until the socket's readiness is handled once
                    await asyncio.sleep(0)
                    waiting, limit = _listen_queue(port)
                    if waiting < BURST:
                        return BURST - waiting, limit
                raise AssertionError("the server never accepted")
            finally:
                server.close()

        return asyncio.run(serve())
    finally:
        for client in clients:
            client.close()


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(BACKLOG)
    return listener


def test_one_connection_per_wakeup_and_the_masters_queue_kept() -> None:
    assert ACCEPTS_PER_WAKEUP == 1
    with _listener() as listener:
        assert _accepted_in_one_wakeup(listener, wrap=True, accepts=ACCEPTS_PER_WAKEUP) == (1, BACKLOG)


def test_asyncio_alone_takes_the_whole_burst_and_shrinks_the_queue() -> None:
    """Why the wrapper and the setting exist: asyncio's defaults do both."""
    with _listener() as listener:
        assert _accepted_in_one_wakeup(listener, wrap=False, accepts=100) == (BURST, 100)
    with _listener() as listener:
        taken, limit = _accepted_in_one_wakeup(listener, wrap=False, accepts=1)
        assert (taken, limit) == (1, 1)

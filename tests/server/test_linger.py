"""The lingering close of a connection whose request was refused before its body was read
(``connection.LingeringTransport``), against a real asyncio transport pair: the answer and a FIN go
out, what the client still sends is dropped, and the socket closes at the byte budget or the time
limit, whichever comes first."""
from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import pytest

from pixline.server.http import connection
from pixline.server.http.connection import LingeringTransport


class Recorder(asyncio.Protocol):
    """The server side's protocol: passes what arrives to the lingering transport, as
    GuardedConnection.data_received does."""

    def __init__(self, made: asyncio.Future) -> None:
        self.transport: LingeringTransport | None = None
        self.made = made
        self.closed = asyncio.get_running_loop().create_future()
        self.loop = asyncio.get_running_loop()
        self.cycle = SimpleNamespace(more_body=True)  # uvicorn's: the body is still coming

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = LingeringTransport(transport, self)  # type: ignore[arg-type]
        self.made.set_result(self)

    def data_received(self, data: bytes) -> None:
        if self.transport.lingering:
            self.transport.drop(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport.stop()
        if not self.closed.done():
            self.closed.set_result(self.loop.time())


async def _pair() -> tuple[Recorder, socket.socket, asyncio.AbstractServer]:
    made: asyncio.Future = asyncio.get_running_loop().create_future()
    server = await asyncio.get_running_loop().create_server(lambda: Recorder(made), "127.0.0.1", 0)
    client = socket.create_connection(server.sockets[0].getsockname())
    client.setblocking(False)
    return await made, client, server


async def _read_until_eof(client: socket.socket) -> bytes:
    loop, got = asyncio.get_running_loop(), b""
    while chunk := await loop.sock_recv(client, 65536):
        got += chunk
    return got


def test_the_answer_and_eof_reach_a_client_that_keeps_sending_and_the_budget_ends_it() -> None:
    async def scenario() -> None:
        protocol, client, server = await _pair()
        loop = asyncio.get_running_loop()
        try:
            protocol.transport.ask_to_linger(100_000)
            protocol.transport.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
            protocol.transport.close()
            assert protocol.transport.lingering and protocol.transport.is_closing()
            assert await _read_until_eof(client) == b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
            await loop.sock_sendall(client, b"x" * 60_000)  # within the budget: still open
            await asyncio.sleep(0.2)
            assert not protocol.closed.done()
            with pytest.raises(OSError):  # past it: closed, and the client's writes fail
                for _ in range(50):
                    await loop.sock_sendall(client, b"x" * 60_000)
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(protocol.closed, 2)
        finally:
            client.close()
            server.close()

    asyncio.run(scenario())


def test_a_quiet_client_is_closed_at_the_time_limit(monkeypatch) -> None:
    monkeypatch.setattr(connection, "LINGER_SECONDS", 0.3)

    async def scenario() -> None:
        protocol, client, server = await _pair()
        try:
            protocol.transport.ask_to_linger(100_000)
            started = asyncio.get_running_loop().time()
            protocol.transport.close()
            closed_at = await asyncio.wait_for(protocol.closed, 3)
            assert 0.25 < closed_at - started < 2
        finally:
            client.close()
            server.close()

    asyncio.run(scenario())


def test_without_a_request_to_linger_close_is_immediate() -> None:
    async def scenario() -> None:
        protocol, client, server = await _pair()
        try:
            protocol.transport.close()
            assert not protocol.transport.lingering
            await asyncio.wait_for(protocol.closed, 2)
        finally:
            client.close()
            server.close()

    asyncio.run(scenario())

"""A worker over its connection limit answers problem+json 503 with ``Retry-After``, as every other
refusal (uvicorn's own answer was plain text), and the refusals the front and the connection make
themselves are counted in ``/metrics`` (``pixline_http_refused``). A real uvicorn server with
pixline's connection protocol, in process, with a limit of three connections (uvicorn counts the one asking)."""
from __future__ import annotations

import asyncio
import json
import socket

import uvicorn
from prometheus_client import REGISTRY

from pixline.server.http.connection import GuardedConnection


def refused(status: str, problem: str) -> float:
    return REGISTRY.get_sample_value("pixline_http_refused_total",
                                     {"status": status, "problem": problem}) or 0.0


async def _start(app, **options) -> tuple[uvicorn.Server, int]:
    """A uvicorn server with pixline's connection protocol on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=GuardedConnection, lifespan="off", loop="asyncio",
                            log_level="critical", **options)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)  # what Server.serve sets before startup
    await server.startup(sockets=[sock])
    return server, sock.getsockname()[1]


async def _request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_over_the_connection_limit_is_a_problem_json_503_and_counted() -> None:
    release = asyncio.Event()

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        await release.wait()  # hold the request, and so its connection
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> None:
        server, port = await _start(app, limit_concurrency=3)
        before = refused("503", "service saturated")
        try:
            hold = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            held = [asyncio.create_task(_request(port, hold)) for _ in range(2)]
            await asyncio.sleep(0.3)
            status, headers, body = await _request(port, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == 503 and headers["content-type"] == "application/problem+json"
            assert headers["retry-after"] == "1" and headers["connection"] == "close"
            problem = json.loads(body)
            assert problem["status"] == 503 and "too many connections" in problem["detail"]
            assert refused("503", "service saturated") == before + 1
            release.set()
            assert [s for s, _, _ in await asyncio.gather(*held)] == [204, 204]
        finally:
            release.set()
            server.should_exit = True
            await server.shutdown()

    asyncio.run(scenario())


def test_a_malformed_request_refused_by_the_connection_is_counted() -> None:
    async def app(scope, receive, send) -> None:  # never reached
        raise AssertionError("the app saw a malformed request")

    async def scenario() -> None:
        server, port = await _start(app)
        before = refused("400", "malformed request")
        try:
            status, headers, _ = await _request(port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            assert status == 400 and headers["content-type"] == "application/problem+json"
            assert refused("400", "malformed request") == before + 1
        finally:
            server.should_exit = True
            await server.shutdown()

    asyncio.run(scenario())

"""The front (``server/http/front.py``) through its ASGI interface, around the real falcon app: a body
still arriving holds no thread of the pool, and the bytes of bodies being read at once are bounded.
(The front over real sockets, with uvicorn, is tests/server/test_front.py.)"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from pixline.server.http.front import Front

from .conftest import Service


def scope(method: str, path: str, *headers: tuple[str, str]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}


class Exchange:
    """One request: its body comes as ``chunks``; with ``hold`` the client then waits (sending
    nothing) until the event is set, and leaves."""

    def __init__(self, chunks: list[bytes], hold: asyncio.Event | None = None) -> None:
        self.chunks = list(chunks)
        self.hold = hold
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.chunks:
            chunk = self.chunks.pop(0)
            return {"type": "http.request", "body": chunk,
                    "more_body": bool(self.chunks) or self.hold is not None}
        if self.hold is not None:
            await self.hold.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    def header(self, name: str) -> str | None:
        return dict(self.sent[0]["headers"]).get(name.encode(), b"").decode() or None

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_a_body_still_arriving_holds_no_thread(make_service: Callable[..., Service]) -> None:
    service = make_service()
    front = Front(service.client.app, service.settings, threads=1)  # one thread for everything

    async def main() -> None:
        hold = asyncio.Event()
        slow = Exchange([b"x" * 10], hold)
        uploading = asyncio.create_task(front(scope("POST", "/images", ("Content-Length", "5000")),
                                              slow.receive, slow.send))
        await asyncio.sleep(0.1)
        health = Exchange([])
        await front(scope("GET", "/healthz"), health.receive, health.send)
        assert health.status == 200 and health.json() == {"status": "ok"}
        assert not slow.sent  # still reading its body
        hold.set()  # the uploader leaves: nothing to answer, nothing held
        await uploading
        assert slow.sent == [] and front.buffered == 0

    run(main())


def test_bodies_being_read_at_once_are_bounded(make_service: Callable[..., Service]) -> None:
    service = make_service(max_bytes=1000, max_buffered_bytes=1)  # raised to one largest upload
    front = Front(service.client.app, service.settings, threads=2)
    form = ("Content-Type", "multipart/form-data; boundary=b")
    assert front.max_buffered == 1000 + 64 * 1024

    async def main() -> None:
        hold = asyncio.Event()
        first = Exchange([b"x" * 60_000], hold)
        reading = asyncio.create_task(front(scope("POST", "/images", form, ("Content-Length", "65000")),
                                            first.receive, first.send))
        await asyncio.sleep(0.1)
        assert front.buffered == 60_000
        second = Exchange([b"y" * 10_000, b"y"])
        await front(scope("POST", "/images", form, ("Content-Length", "10001")), second.receive,
                    second.send)
        assert second.status == 503 and second.header("retry-after") == "2"
        assert second.header("connection") == "close"
        assert "too many request bodies" in second.json()["detail"]
        hold.set()
        await reading
        assert front.buffered == 0
        third = Exchange([b"z" * 10_000])  # room again: it reaches the app (which finds no image)
        await front(scope("POST", "/images", form, ("Content-Length", "10000")), third.receive, third.send)
        assert third.status == 400 and third.header("connection") is None
        assert front.buffered == 0

    run(main())


def test_a_chunked_body_reaches_the_app_with_its_length(make_service: Callable[..., Service],
                                                        small_jpeg: bytes) -> None:
    service = make_service()
    front = Front(service.client.app, service.settings, threads=2)
    parts = [small_jpeg[:1000], small_jpeg[1000:5000], small_jpeg[5000:]]
    upload = Exchange(parts)
    run(front(scope("POST", "/images", ("Transfer-Encoding", "chunked")), upload.receive, upload.send))
    assert upload.status == 201
    assert upload.json()["bytes"] == len(small_jpeg)
    assert service.store.get_original(upload.json()["id"]) == small_jpeg

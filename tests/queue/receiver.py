"""A real webhook receiver on 127.0.0.1 for the event tests: it records every POST and answers as
told: ``ok`` (200), ``fail`` (500), ``redirect`` (307 to ``location``), or ``hold`` (never answers
until released: a receiver that hangs)."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    headers: dict[str, str]
    body: bytes
    status: int | None  # what it was answered; None: held, never answered

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """``mode`` is read at each request; ``fail_first`` requests get 500 before the mode applies."""

    def __init__(self, mode: str = "ok", fail_first: int = 0) -> None:
        self.mode = mode
        self.fail_first = fail_first
        self.location = ""
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.answer()
                with receiver.lock:
                    receiver.requests.append(Request(headers, body, status))
                if status is None:
                    receiver.released.wait()
                    self.close_connection = True
                    return
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pixline"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self) -> int | None:
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return 500
        return {"ok": 200, "fail": 500, "redirect": 307, "hold": None}[self.mode]

    def delivered(self, event_type: str | None = None) -> list[Request]:
        """Requests answered 200 (of ``event_type``)."""
        with self.lock:
            return [r for r in self.requests if r.status == 200
                    and (event_type is None or r.event["type"] == event_type)]

    def held(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.status is None]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

"""The processes the bench talks to: ``pixline serve``, ``pixline worker``, the bare falcon app.

Every one listens on 127.0.0.1 only, runs in its own process group, and is stopped by its pid.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIGNING_KEY = "pixline-bench-signing-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 120) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Process:
    """A child process in its own session, stopped with SIGTERM then SIGKILL to its group."""

    name = "process"

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        # stderr goes to a file, never a pipe nobody reads while the bench runs: a server logging a
        # line per request fills a pipe's 64 KiB and then blocks on its next log line (it stalled).
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                     stderr=self.log, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def failure(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace")[-2000:]
        self.stop()
        return tail


class HttpProcess(Process):
    """A process serving HTTP on 127.0.0.1:``port``; waits for ``health`` to answer 200."""

    health = "/healthz"

    def __init__(self, cmd: list[str], port: int, env: dict[str, str] | None = None,
                 timeout: float = 90) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        super().__init__(cmd, env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.failure()}")
            try:
                if request(port, "GET", self.health, timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not come up: {self.failure()}")

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        return request(self.port, "GET", path, headers=headers)


class PixlineServer(HttpProcess):
    name = "pixline serve"

    def __init__(self, store: str, *flags: str, env: dict[str, str] | None = None) -> None:
        port = free_port()
        cmd = [sys.executable, "-m", "pixline.server.commands", "serve", "--bind", f"127.0.0.1:{port}",
               "--store", store, "--signing-key", SIGNING_KEY, *flags]
        super().__init__(cmd, port, {"PIXLINE_LOG_LEVEL": "warning", **(env or {})})

    def upload(self, data: bytes) -> str:
        status, body = request(self.port, "POST", "/images", data,
                               {"Content-Type": "application/octet-stream"})
        if status not in (200, 201):
            raise RuntimeError(f"upload failed: {status} {body[:300]!r}")
        return json.loads(body)["id"]


class PixlineWorker(Process):
    name = "pixline worker"

    def __init__(self, store: str, amqp: str, queue: str, env: dict[str, str] | None = None) -> None:
        super().__init__([sys.executable, "-m", "pixline.server.commands", "worker", "--store", store,
                          "--amqp", amqp, "--queue", queue],
                         {"PIXLINE_LOG_LEVEL": "warning", **(env or {})})


class BareApp(HttpProcess):
    name = "bare falcon app"
    health = "/healthz"

    def __init__(self, body: Path) -> None:
        port = free_port()
        super().__init__([sys.executable, str(HERE / "bare_app.py"), f"127.0.0.1:{port}", str(body)], port)


class BareS3App(HttpProcess):
    """The bare falcon app reading each answer from S3 with pixline's client (bench/bare_app.py)."""

    name = "bare falcon app on S3"

    def __init__(self, endpoint: str, root: str, keys: Path, env: dict[str, str]) -> None:
        port = free_port()
        super().__init__([sys.executable, str(HERE / "bare_app.py"), f"127.0.0.1:{port}", "--s3", endpoint,
                          root, str(keys)], port, env)


def adhoc_path(steps: str, image_id: str) -> str:
    """A signed ``/t/`` URL (the real miss path: verified, rendered and stored)."""
    from pixline.server.http.signing import sign_path

    return sign_path(f"{steps}/{image_id}", SIGNING_KEY)

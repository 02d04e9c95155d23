"""``pixline serve`` as a real gunicorn process (2 gthread workers): upload over HTTP, fetch every recipe
URL, check formats, sizes and caching headers, then stop it. Marked slow: it renders real photos."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from pixline.engine import testing
from pixline.engine.source import content_id
from pixline.server.http.signing import sign_path

from .test_http_upload import multipart

pytestmark = pytest.mark.slow
TOKEN = "upload-token-for-tests"
KEY = "signing-key-for-tests"
#: recipe → (format, width, height) for the 1920×1280 Storm.jpg, with Accept: image/webp
EXPECTED = {
    "thumb": ("jpeg", 200, 200),
    "feed": ("webp", 600, 400),
    "feed-2x": ("webp", 1200, 800),
    "large": ("jpeg", 1920, 1280),
    "social": ("jpeg", 1200, 630),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {}, **kwargs)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()


@contextlib.contextmanager
def pixline_serve(tmp_path: Path, *args: str,
                  env: dict[str, str] | None = None) -> Iterator[tuple[Client, list[int]]]:
    """Start ``pixline serve`` on a free port, wait for /healthz, stop it afterwards.

    Yields the client and a one-item list with the number of /healthz requests answered so far.
    ``env`` is added to this process's environment (``PIXLINE_LOG_LEVEL``, say); the log is
    ``tmp_path / "serve.log"``.
    """
    port = free_port()
    log_path = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "pixline.server.commands", "serve", "--bind", f"127.0.0.1:{port}",
           "--workers", "2", *args]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **(env or {})})
    client, healthy = Client(port), [0]
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"pixline serve exited: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no /healthz: {log_path.read_text()[-3000:]}"
            try:
                status, _, _ = client.request("GET", "/healthz")
                if status == 200:
                    healthy[0] += 1
                    break
            except OSError:
                pass
            time.sleep(0.3)
        yield client, healthy
    finally:
        process.send_signal(signal.SIGTERM)  # the gunicorn master stops its workers
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        assert process.returncode == 0 or process.returncode == -signal.SIGKILL, log_path.read_text()[-3000:]


def upload(client: Client, data: bytes, query: str = "", **headers: str) -> tuple[int, dict]:
    status, _, body = client.request("POST", f"/images{query}", body=data,
                                     headers={"Authorization": f"Bearer {TOKEN}", **headers})
    return status, json.loads(body)


def test_serve_uploads_and_serves_every_recipe(tmp_path: Path, photo_bytes: bytes) -> None:
    store = tmp_path / "data"
    with pixline_serve(tmp_path, "--store", f"file://{store}", "--upload-token", TOKEN,
                       "--signing-key", KEY) as (client, healthy):
        # Token first: nothing is stored without it.
        status, _, _ = client.request("POST", "/images", body=photo_bytes)
        assert status == 401
        status, body = upload(client, photo_bytes, "?owner=Ana")
        assert status == 201, body
        image_id = body["id"]
        assert image_id == content_id(photo_bytes)
        assert (body["format"], body["width"], body["height"]) == ("jpeg", 1920, 1280)
        assert set(body["urls"]) == set(EXPECTED)
        assert (store / "originals" / image_id).read_bytes() == photo_bytes

        for name, (fmt, width, height) in EXPECTED.items():
            status, headers, data = client.request("GET", body["urls"][name], headers={"Accept": "image/webp,*/*"})
            assert status == 200, (name, data[:300])
            assert headers["content-type"] == f"image/{fmt}"
            assert int(headers["content-length"]) == len(data)
            assert headers["cache-control"] == "public, max-age=86400"
            assert ("vary" in headers) == (fmt == "webp")
            image = testing.decode(data)
            assert (image.width, image.height) == (width, height), name
            status, again, empty = client.request("GET", body["urls"][name], headers={
                "Accept": "image/webp,*/*", "If-None-Match": headers["etag"]})
            assert (status, empty, again["etag"]) == (304, b"", headers["etag"])
            status, head, empty = client.request("HEAD", body["urls"][name], headers={"Accept": "image/webp"})
            assert (status, head["content-length"], empty) == (200, headers["content-length"], b"")

        url = sign_path(f"resize:w=320,h=320,fit=cover/format:type=png/{image_id}", KEY)
        status, headers, data = client.request("GET", url)
        assert status == 200 and headers["content-type"] == "image/png"
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert (testing.decode(data).width, testing.decode(data).height) == (320, 320)
        assert client.request("GET", url.replace("w=320", "w=321"))[0] == 403

        # Without the token only the public part of the record is shown (issue 18).
        status, _, info = client.request("GET", f"/images/{image_id}")
        assert "fields" not in json.loads(info)
        status, _, info = client.request("GET", f"/images/{image_id}",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        info = json.loads(info)
        assert info["fields"] == {"owner": "Ana"}
        assert info["derivatives"]["thumb"]["stored"] is True


def test_serve_takes_chunked_and_multipart_uploads_and_refuses_bad_ones(tmp_path: Path) -> None:
    small = testing.jpeg_bytes(testing.gradient(160, 120))
    other = testing.jpeg_bytes(testing.gradient(120, 160))
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}", "--upload-token", TOKEN,
                       "--max-bytes", "200000") as (client, healthy):
        chunks = iter([small[:1000], small[1000:]])
        status, _, body = client.request("POST", "/images?owner=chunked", body=chunks, encode_chunked=True,
                                         headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Transfer-Encoding": "chunked"})
        assert status == 201, body
        assert json.loads(body)["id"] == content_id(small)

        form, ctype = multipart({"owner": "form"}, "photo.jpg", other)
        status, body = upload(client, form, **{"Content-Type": ctype})
        assert status == 201 and body["id"] == content_id(other)
        status, body = upload(client, small)
        assert status == 200  # the same bytes again

        over = small + b"\0" * 250_000
        status, _, problem = client.request("POST", "/images", body=iter([over[:100_000], over[100_000:]]),
                                            encode_chunked=True,
                                            headers={"Authorization": f"Bearer {TOKEN}",
                                                     "Transfer-Encoding": "chunked"})
        assert status == 413, problem
        for data, expected in [(testing.pixel_flood_png(), 413), (small[: len(small) // 2], 422),
                               (b"plain text named photo.jpg", 415)]:
            status, body = upload(client, data, **{"Content-Type": "image/jpeg"})
            assert status == expected, body
            assert body["status"] == expected and body["detail"]
        assert sorted(p.name for p in (tmp_path / "data" / "originals").iterdir()) == sorted(
            [content_id(small), content_id(other)])

        # Requests are counted across both workers (prometheus multiprocess mode).
        for _ in range(5):
            assert client.request("GET", "/healthz")[0] == 200
        _, headers, text = client.request("GET", "/metrics")
        assert headers["content-type"].startswith("text/plain")
        line = 'pixline_http_requests_total{method="GET",route="/healthz",status="200"}'
        values = [float(l.rsplit(" ", 1)[1]) for l in text.decode().splitlines() if l.startswith(line)]
        assert values == [healthy[0] + 5]


@pytest.mark.s3
def test_serve_on_s3(tmp_path: Path, s3_settings: dict[str, str], s3_store_url: str) -> None:
    small = testing.jpeg_bytes(testing.gradient(320, 240))
    with pixline_serve(tmp_path, "--store", s3_store_url, "--s3-endpoint", s3_settings["endpoint_url"],
                       "--upload-token", TOKEN) as (client, _):
        status, body = upload(client, small, "?owner=s3")
        assert status == 201, body
        image_id = body["id"]
        status, headers, data = client.request("GET", f"/r/thumb/{image_id}")
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert (testing.decode(data).width, testing.decode(data).height) == (200, 200)
        info = json.loads(client.request("GET", f"/images/{image_id}")[2])
        assert info["derivatives"]["thumb"]["stored"] is True
        status, _, _ = client.request("DELETE", f"/images/{image_id}",
                                      headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 204
        assert client.request("GET", f"/images/{image_id}")[0] == 404


def _established_by_pid(port: int) -> dict[int, int]:
    """Connections to ``port`` held by each server process (from ``ss``)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    counts: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def _wait_for_both_workers(port: int) -> None:
    """Until both workers have served a request (the second may still be building its app)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 2:
        assert time.monotonic() < deadline, f"only workers {seen} ever answered"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            seen.update(_established_by_pid(port))
        finally:
            conn.close()
        time.sleep(0.05)


def test_a_burst_of_connections_is_spread_over_the_workers(tmp_path: Path) -> None:
    """32 keep-alive connections opened at once land on both workers, not all on the first one that
    woke (asyncio accepts a whole burst per wake-up unless told otherwise: it took all 32 four times
    in five), and the listening queue keeps gunicorn's backlog."""
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}") as (client, _):
        listening = subprocess.run(["ss", "-ltnH", f"( sport = :{client.port} )"], capture_output=True,
                                   text=True, check=True).stdout.split()
        assert listening[2] == "2048", listening  # Send-Q of a listening socket: its backlog
        _wait_for_both_workers(client.port)
        conns = [http.client.HTTPConnection("127.0.0.1", client.port, timeout=30) for _ in range(32)]
        try:
            for conn in conns:
                conn.connect()
            for conn in conns:  # every connection accepted and served before counting
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                assert response.status == 200, response.read()
                response.read()
            counts = _established_by_pid(client.port)
            assert sum(counts.values()) == 32, counts
            assert len(counts) == 2 and min(counts.values()) >= 2, counts
        finally:
            for conn in conns:
                conn.close()


def test_a_kept_alive_connection_stays_open_while_idle_as_long_as_the_front_may_keep_it(tmp_path: Path) -> None:
    """A worker closed a connection idle for 2 s (gunicorn's keepalive, which uvicorn's keep-alive
    timer took), nginx keeps its upstream ones for 4 s: an upload sent down one as it closed was
    reset and answered 502 (the cluster soak, 2026-12-08). Idle for 5 s, it still answers; with
    --header-timeout 1 it is closed after about a second."""
    with pixline_serve(tmp_path, "--header-timeout", "1") as (client, _):
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read()
        time.sleep(2.5)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.request("GET", "/healthz")
            conn.getresponse()
        conn.close()
    with pixline_serve(tmp_path) as (client, _):
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
        try:
            conn.request("GET", "/healthz")
            assert conn.getresponse().read()
            sock = conn.sock
            time.sleep(5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            assert response.status == 200 and response.read()
            assert conn.sock is sock  # the same connection, not a new one
        finally:
            conn.close()

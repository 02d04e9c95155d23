"""The HTTP front of a real ``pixline serve`` (issue 8), spoken to over raw sockets: requests refused
from their headers are answered and closed without reading the body; headers and bodies arrive
within their time and size limits or get 408/431; broken requests get problem+json, never a 500 or
a traceback; every response says ``nosniff``; signed URLs have one spelling. Marked slow: it runs the
real server (once for the module, with short timeouts)."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from pixline.engine import testing
from pixline.server.http.signing import sign_path

from .test_gunicorn import Client, pixline_serve

pytestmark = pytest.mark.slow
TOKEN = "front-token"
KEY = "front-key"
MAX_BYTES = 200_000
HEADER_TIMEOUT, IDLE_TIMEOUT, BODY_TIMEOUT = 1.5, 1.5, 3.0


@dataclass
class Server:
    client: Client
    log: Path
    image_id: str

    def new_log(self, since: int) -> str:
        return self.log.read_text(errors="replace")[since:]

    def log_size(self) -> int:
        return len(self.log.read_text(errors="replace"))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection (EOF or reset) within the wait
    seconds: float  # from the last byte sent to the end of the wait

    def problem(self) -> dict:
        assert self.headers.get("content-type") == "application/problem+json", self
        body = json.loads(self.body)
        assert body["status"] == self.status and body["title"] and body["detail"]
        return body


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def exchange(port: int, *parts: bytes, pause: float = 0.0, wait: float = 5.0) -> Reply:
    """Send ``parts`` (``pause`` seconds apart, stopping if the server closes), then read until the
    server closes the connection or ``wait`` seconds pass."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    raw, closed = b"", False
    try:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed already
                break
        sent = time.monotonic()
        deadline = sent + wait
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            raw += chunk
    finally:
        sock.close()
    assert raw, "no answer at all"
    status, headers, body = parse(raw)
    return Reply(status, headers, body, closed, time.monotonic() - sent)


def request(method: str, target: str, *headers: str) -> bytes:
    return (f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(h + "\r\n" for h in headers)
            + "\r\n").encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("front")
    with pixline_serve(tmp, "--store", f"file://{tmp / 'data'}", "--upload-token", TOKEN,
                       "--signing-key", KEY, "--max-bytes", str(MAX_BYTES),
                       "--header-timeout", str(HEADER_TIMEOUT), "--body-idle-timeout", str(IDLE_TIMEOUT),
                       "--body-timeout", str(BODY_TIMEOUT),
                       env={"PIXLINE_LOG_LEVEL": "info"}) as (client, _):
        status, _, body = client.request("POST", "/images", body=testing.jpeg_bytes(testing.gradient(64, 48)),
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 201, body
        yield Server(client, tmp / "serve.log", json.loads(body)["id"])


# -- B: refused from the headers, answered, closed, the body never read ---------------------------

@pytest.mark.parametrize("method,target,headers,status", [
    ("POST", "/images", ["Content-Length: 10485760"], 401),
    ("POST", "/images", ["Content-Length: 10485760", "Authorization: Bearer wrong"], 403),
    ("POST", "/images", ["Content-Length: 10485760", f"Authorization: Bearer {TOKEN}"], 413),
    ("DELETE", "/images/{id}", ["Content-Length: 10485760"], 401),
    ("GET", "/healthz", ["Content-Length: 10485760"], 413),
])
def test_a_request_refused_from_its_headers_is_answered_and_closed_unread(
        server: Server, method: str, target: str, headers: list[str], status: int) -> None:
    # Headers and one byte of a 10 MiB body: the answer comes at once, and the connection closes
    # although the rest of the body never comes.
    reply = exchange(server.client.port, request(method, target.replace("{id}", server.image_id), *headers)
                     + b"x", wait=3)
    assert reply.status == status
    reply.problem()
    assert reply.headers["connection"] == "close"
    assert reply.closed and reply.seconds < 2
    assert server.client.request("GET", f"/images/{server.image_id}")[0] == 200  # nothing deleted


def refusals(server: Server) -> dict[tuple[str, str], float]:
    """``pixline_http_refused_total`` from ``/metrics``, by (status, problem)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = server.client.request("GET", "/metrics")
    assert status == 200
    return {(s.labels["status"], s.labels["problem"]): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples if s.name == "pixline_http_refused_total"}


def test_refusals_of_the_front_are_counted_in_metrics(server: Server) -> None:
    before = refusals(server)
    for headers in (["Content-Length: 10"], ["Content-Length: 10", "Authorization: Bearer wrong"]):
        assert exchange(server.client.port, request("POST", "/images", *headers), wait=3).status in (401, 403)
    assert exchange(server.client.port, request("POST", "/images", f"Authorization: Bearer {TOKEN}"),
                    wait=3).status == 411
    after = refusals(server)
    for key in (("401", "credentials required"), ("403", "invalid credentials"), ("411", "length required")):
        assert after.get(key, 0) == before.get(key, 0) + 1, (key, before, after)


@pytest.mark.parametrize("token,status", [(None, 401), (TOKEN, 413)])
def test_a_client_that_sends_its_whole_body_before_reading_still_gets_the_answer(
        server: Server, token: str | None, status: int) -> None:
    """Most HTTP libraries write the whole body, then read. The server answers from the headers and
    stops reading, but closes lingering (connection.py): the rest of the body is dropped, not
    answered with a reset that made the client lose the answer, now and then."""
    body = b"x" * 4_000_000
    auth = [f"Authorization: Bearer {token}"] if token else []
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.client.port), timeout=10) as sock:
            sock.sendall(request("POST", "/images", f"Content-Length: {len(body)}", *auth) + body)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        assert parse(raw)[0] == status


def test_a_post_with_neither_length_nor_chunks_is_411(server: Server) -> None:
    reply = exchange(server.client.port, request("POST", "/images", f"Authorization: Bearer {TOKEN}"))
    assert reply.status == 411
    assert "Content-Length" in reply.problem()["detail"]


# -- C: broken and abandoned bodies: 400 / one log line, never a 500 or a traceback ---------------

def test_a_broken_chunked_body_is_400_with_one_log_line(server: Server) -> None:
    since = server.log_size()
    reply = exchange(server.client.port,
                     request("POST", "/images", f"Authorization: Bearer {TOKEN}", "Transfer-Encoding: chunked")
                     + b"5\r\nabcde\r\nzz-not-a-size\r\n")
    assert reply.status == 400 and reply.closed
    assert "chunked" in reply.problem()["detail"]
    time.sleep(0.5)
    log = server.new_log(since)
    assert "Traceback" not in log and 'HTTP/1.1" 500' not in log
    assert log.count("Invalid HTTP request") == 1, log


def test_a_client_leaving_mid_body_is_one_log_line(server: Server) -> None:
    since = server.log_size()
    with socket.create_connection(("127.0.0.1", server.client.port)) as sock:
        sock.sendall(request("POST", "/images", f"Authorization: Bearer {TOKEN}", "Content-Length: 5000")
                     + b"x" * 100)
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while "went away" not in server.new_log(since) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.new_log(since)
    assert log.count("went away after 100 of 5000 bytes") == 1, log
    assert "Traceback" not in log and 'HTTP/1.1" 500' not in log


def test_a_malformed_request_is_answered_with_problem_json(server: Server) -> None:
    reply = exchange(server.client.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.status == 400 and reply.closed
    reply.problem()
    assert reply.headers["x-content-type-options"] == "nosniff"


# -- slow and oversized headers and bodies ----------------------------------------------------------

def test_headers_sent_a_line_at_a_time_are_cut_with_408(server: Server) -> None:
    lines = [request("GET", "/healthz")[:-2]] + [f"X-Slow-{i}: {i}\r\n".encode() for i in range(20)]
    reply = exchange(server.client.port, *lines, pause=0.25, wait=3)
    assert reply.status == 408 and reply.closed
    assert "headers" in reply.problem()["detail"]


def test_an_idle_connection_is_closed_after_the_header_timeout(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.client.port), timeout=HEADER_TIMEOUT + 3) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed, without an answer: there was no request
        assert time.monotonic() - started < HEADER_TIMEOUT + 2


@pytest.mark.parametrize("how", ["one read", "many reads"])
def test_headers_over_the_size_limit_are_431(server: Server, how: str) -> None:
    big = request("GET", "/healthz", "X-Big: " + "a" * 40_000)
    parts = [big] if how == "one read" else [big[i:i + 8000] for i in range(0, len(big), 8000)]
    reply = exchange(server.client.port, *parts, pause=0.05 if how == "many reads" else 0)
    assert reply.status == 431 and reply.closed
    reply.problem()


def test_a_body_that_stops_is_cut_with_408(server: Server) -> None:
    reply = exchange(server.client.port, request("POST", "/images", f"Authorization: Bearer {TOKEN}",
                                                 "Content-Length: 1000") + b"xx", wait=IDLE_TIMEOUT + 3)
    assert reply.status == 408 and reply.closed
    assert f"no byte of the body for {IDLE_TIMEOUT:g} s (2 of 1000 bytes came)" in reply.problem()["detail"]


def test_a_body_that_trickles_is_cut_with_408_at_the_total_timeout(server: Server) -> None:
    head = request("POST", "/images", f"Authorization: Bearer {TOKEN}", "Transfer-Encoding: chunked")
    started = time.monotonic()
    reply = exchange(server.client.port, head, *[b"1\r\nx\r\n"] * 40, pause=0.2, wait=3)
    assert reply.status == 408 and reply.closed
    assert f"longer than {BODY_TIMEOUT:g} s" in reply.problem()["detail"]
    assert time.monotonic() - started < BODY_TIMEOUT + 3


def test_a_chunked_body_over_the_limit_is_413_before_it_ends(server: Server) -> None:
    head = request("POST", "/images", f"Authorization: Bearer {TOKEN}", "Transfer-Encoding: chunked")
    chunk = b"%x\r\n" % 100_000 + b"x" * 100_000 + b"\r\n"
    reply = exchange(server.client.port, head, chunk, chunk, chunk, pause=0.1)
    assert reply.status == 413 and reply.closed
    reply.problem()


# -- D: headers on every response, HEAD, one spelling per signed URL ------------------------------

def test_every_response_says_nosniff(server: Server) -> None:
    image = server.image_id
    for method, path in [("GET", "/healthz"), ("GET", "/metrics"), ("GET", f"/r/thumb/{image}"),
                         ("GET", f"/images/{image}"), ("GET", "/recipes"), ("GET", "/nope"),
                         ("POST", "/images"), ("HEAD", f"/r/thumb/{image}")]:
        status, headers, _ = server.client.request(method, path)
        assert headers.get("x-content-type-options") == "nosniff", (method, path, status)


def test_head_of_an_image_answers_its_headers_only(server: Server) -> None:
    status, headers, body = server.client.request("GET", f"/images/{server.image_id}")
    head_status, head_headers, head_body = server.client.request("HEAD", f"/images/{server.image_id}")
    assert (status, head_status, head_body) == (200, 200, b"")
    assert head_headers["content-length"] == headers["content-length"] == str(len(body))
    assert head_headers["content-type"] == "application/json"
    status, _, _ = server.client.request("HEAD", f"/images/{'0' * 32}")
    assert status == 404


def test_a_signed_url_is_valid_in_the_spelling_it_was_signed_in_only(server: Server) -> None:
    url = sign_path(f"resize:w=40/format:type=png/{server.image_id}", KEY)
    assert server.client.request("GET", url)[0] == 200
    sig = url.split("/")[2]
    respellings = [url.replace("resize:", "resize%3A"), url.replace("/format", "/%66ormat"),
                   url.replace("/t/", "/%74/"), url.replace(sig, sig[:5] + "%%%02X" % ord(sig[5]) + sig[6:])]
    for spelling in respellings:
        status, _, body = server.client.request("GET", spelling)
        assert status == 403, (spelling, body)
        assert json.loads(body)["type"] == "urn:pixline:problem:invalid-credentials"


def test_serving_without_a_token_says_so_loudly(tmp_path: Path) -> None:
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}") as (client, _):
        status, _, _ = client.request("POST", "/images", body=testing.jpeg_bytes(testing.gradient(32, 24)))
        assert status == 201  # open, on purpose: loopback
    log = (tmp_path / "serve.log").read_text()
    assert log.count("pixline: warning: no --upload-token: anyone who reaches 127.0.0.1:") == 1, log

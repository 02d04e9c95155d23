"""Originals served in place from a URL prefix (``--source https://HOST/PREFIX/``; issue 19, 3): a key
renders from a real HTTPS origin on 127.0.0.2 (tests/sourceserver.py) when its address is allowed;
a changed ETag is a new image; every refusal of the fetch is problem+json with its status: 502 for
what the source did or where it led (a refused address, a redirect to one, endless redirects, a
5xx), 504 for a source that never answers, 413 for a body over the limit, 404 for a missing key."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pixline.engine import testing
from pixline.engine.errors import ParameterError
from pixline.engine.errors import FetchRefusedError
from tests.sourceserver import ADDRESS, SourceServer

from .conftest import Service


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[SourceServer]:
    server = SourceServer(tmp_path)
    yield server
    server.stop()


def from_origin(make_service: Callable[..., Service], origin: SourceServer, host: str = ADDRESS,
                **more: Any) -> Service:
    settings = {"source": origin.url("/img/", host=host), "source_recheck": 0, "source_timeout": 1.0,
                "allow_source_host": [ADDRESS, "photos.example.com"], "allow_source_network": [f"{ADDRESS}/32"],
                "source_ca_file": origin.ca_file}
    return make_service(**{**settings, **more})


def test_a_key_renders_from_the_url_and_is_stored_like_any_image(
        make_service: Callable[..., Service], origin: SourceServer) -> None:
    origin.put("2024/storm.jpg", testing.jpeg_bytes(testing.gradient(640, 400)))
    origin.files["storm.jpg"] = origin.files.pop("2024/storm.jpg")  # served at /img/<last segment>
    origin.etags["storm.jpg"] = "one"
    origin.aliases["/img/2024/storm.jpg"] = "/img/storm.jpg"
    service = from_origin(make_service, origin)
    got = service.client.simulate_get("/r/thumb/2024/storm.jpg")
    assert got.status_code == 200 and testing.decode(got.content).width == 200, got.text
    gets = [m for m, _ in origin.requests].count("GET")  # the record's read, and the render's
    again = service.client.simulate_get("/r/thumb/2024/storm.jpg")
    assert again.headers["server-timing"].startswith("store") and again.content == got.content
    assert [m for m, _ in origin.requests].count("GET") == gets, "a stored output fetched the original again"
    assert origin.requests[-1] == ("HEAD", "/img/2024/storm.jpg")  # --source-recheck 0: its version asked
    # A changed object (another ETag) is a new image: the old thumbnail is not served for it.
    origin.files["storm.jpg"] = testing.jpeg_bytes(testing.gradient(100, 640))
    origin.etags["storm.jpg"] = "two"
    changed = service.client.simulate_get("/r/thumb/2024/storm.jpg")
    assert changed.status_code == 200 and changed.headers["etag"] != got.headers["etag"]
    image = testing.decode(changed.content)
    assert image.height > image.width


@pytest.mark.parametrize("alias,status,detail", [
    ("/redirect?to=https://127.0.0.1:{port}/img/a.jpg", 502, "loopback"),
    ("/redirect?to=https://localhost:{port}/img/a.jpg", 502, "loopback"),
    ("/redirect?to=https://elsewhere.example.org/a.jpg", 502, "not allowed"),
    ("/redirect?to=https://[::ffff:127.0.0.1]:{port}/img/a.jpg", 502, "canonical"),
    ("/redirect?to=https://0x7f.1:{port}/img/a.jpg", 502, "dotted-quad"),
    ("/loop/0", 502, "more than 3 redirects"),
    ("/status/503", 502, "HTTP 503"),
    ("/status/403", 502, "HTTP 403"),
    ("/silent", 504, "no answer within 1 s"),
    ("/slowheaders", 504, "no answer within 1 s"),
    ("/lying", 413, "over the limit"),
    ("/unbounded", 413, "over the limit"),
    ("/img/missing.jpg", 404, "not found"),
])
def test_each_refused_fetch_is_problem_json_with_its_status(
        make_service: Callable[..., Service], origin: SourceServer, alias: str, status: int,
        detail: str) -> None:
    origin.put("a.jpg", testing.jpeg_bytes(testing.gradient(64, 64)))
    origin.aliases["/img/k.jpg"] = alias.format(port=origin.port)
    service = from_origin(make_service, origin, max_bytes=200_000, allow_source_host=[
        ADDRESS, "127.0.0.1", "localhost", "::ffff:127.0.0.1", "0x7f.1"])
    got = service.client.simulate_get("/r/thumb/k.jpg")
    assert got.status_code == status, got.text
    assert got.headers["content-type"] == "application/problem+json" and detail in got.json["detail"]
    assert "Traceback" not in got.text and len(got.json["detail"]) < 400
    if status == 502 and "503" in detail:
        assert got.headers["retry-after"]
    assert not (service.root / "meta").exists() or not list((service.root / "meta").iterdir())
    assert origin.requests and ("GET", "/img/a.jpg") not in origin.requests  # where it led: not fetched


def test_without_the_network_allowed_the_origin_itself_is_refused(
        make_service: Callable[..., Service], origin: SourceServer, monkeypatch: pytest.MonkeyPatch) -> None:
    origin.put("a.jpg", testing.jpeg_bytes(testing.gradient(64, 64)))
    service = from_origin(make_service, origin, allow_source_network=[])
    got = service.client.simulate_get("/r/thumb/a.jpg")
    assert got.status_code == 502 and "127.0.0.2, a loopback address" in got.json["detail"]
    # A name that resolves to 127.0.0.1 (no /etc/hosts: getaddrinfo answers so) is refused too.
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: real(
        "127.0.0.1" if host == "photos.example.com" else host, port, *a, **k))
    named = from_origin(make_service, origin, host="photos.example.com")
    got = named.client.simulate_get("/r/thumb/a.jpg")
    assert got.status_code == 502 and "photos.example.com resolves to 127.0.0.1" in got.json["detail"]
    assert origin.requests == []


def test_a_url_source_needs_its_host_allowed(make_service: Callable[..., Service], origin: SourceServer,
                                            tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="fetching from URLs is off"):
        make_service(source=origin.url("/img/"))
    with pytest.raises(FetchRefusedError, match="host 127.0.0.2 is not allowed"):
        make_service(source=origin.url("/img/"), allow_source_host=["photos.example.com"])
    # pixline serve says so before it starts any worker, on one line.
    served = subprocess.run([sys.executable, "-m", "pixline.server.commands", "serve", "--source", origin.url("/img/"),
                             "--store", f"file://{tmp_path / 'store'}", "--bind", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=120)
    assert served.returncode == 1 and served.stderr.strip().splitlines() == [
        f"pixline: error: source {origin.url('/img/')!r}: fetching from URLs is off; --allow-source-host HOST "
        "allows a host"]

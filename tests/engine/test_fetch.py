"""Fetching originals from URLs, safely (issue 19, 3; docs/security.md, "Fetching from URLs"): a real
HTTPS server on 127.0.0.2 (tests/sourceserver.py), fetched when its address is allowed, and every
way around the checks refused: names resolving to loopback, redirects to it or to a host not
allowed, IPv6 and numeric spellings of 127.0.0.1, bodies over the limit whatever their length says,
servers that never answer or trickle, endless redirects."""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any, Iterator

import hypothesis
import hypothesis.strategies as st
import pytest

from pixline.engine.errors import ImageTooLargeError, NotFoundError
from pixline.engine.fetch import (Fetcher, FetchPolicy, FetchRefusedError, SourceTimeoutError,
                                  SourceUnavailableError, address_refusal, host_allowed)
from pixline.engine.library import HttpLibrary
from tests.sourceserver import ADDRESS, SourceServer


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[SourceServer]:
    server = SourceServer(tmp_path)
    yield server
    server.stop()


def fetcher(origin: SourceServer, **policy: Any) -> Fetcher:
    """A fetcher that may reach the origin's address (and nothing else not public)."""
    options: dict[str, Any] = {"allowed_hosts": (ADDRESS, "photos.example.com", "127.0.0.1", "localhost", "::1"),
                               "allowed_networks": (f"{ADDRESS}/32",), "ca_file": origin.ca_file,
                               "timeout": 5.0}
    return Fetcher(FetchPolicy(**{**options, **policy}))


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host names resolved as this mapping says (no /etc/hosts), the rest as usual; counts calls."""
    mapping: dict[str, list[str]] = {}
    real = socket.getaddrinfo
    calls: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list:
        calls.append(host)
        if host in mapping:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, port) if ":" not in a else (a, port, 0, 0)) for a in mapping[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    mapping["__calls__"] = calls  # type: ignore[assignment]
    return mapping


def test_an_allowed_address_is_fetched_over_tls_with_its_version(origin: SourceServer) -> None:
    url = origin.put("a.jpg", b"\xff\xd8 image bytes", etag="abc")
    got = fetcher(origin).get(url, 1000)
    assert got.body == b"\xff\xd8 image bytes" and got.headers["etag"] == '"abc"'
    library = HttpLibrary(fetcher(origin), origin.url("/img/"))
    assert library.stat("a.jpg").as_dict() == {"etag": "abc", "size": 14}
    data, version = library.read("a.jpg", 1000)
    assert data == b"\xff\xd8 image bytes" and version == library.stat("a.jpg")
    # With the blanket setting instead of the one network, loopback is fetched too.
    assert Fetcher(FetchPolicy((ADDRESS,), allow_private=True, ca_file=origin.ca_file)).get(url, 1000).body


def test_a_name_connects_to_the_address_checked_with_its_certificate_checked(
        origin: SourceServer, names: dict[str, list[str]]) -> None:
    origin.put("a.jpg", b"bytes")
    names["photos.example.com"] = [ADDRESS]
    got = fetcher(origin).get(origin.url("/img/a.jpg", host="photos.example.com"), 100)
    assert got.body == b"bytes"
    assert names["__calls__"].count("photos.example.com") == 1  # resolved once: no second lookup to rebind
    # An address that does not answer (an AAAA record without IPv6, say) is passed over for the next.
    names["photos.example.com"] = ["127.0.0.3", ADDRESS]
    got = fetcher(origin, allowed_networks=("127.0.0.0/29",)).get(
        origin.url("/img/a.jpg", host="photos.example.com"), 100)
    assert got.body == b"bytes"
    # A name the certificate is not for fails the TLS check, though its address is allowed.
    names["other.example.com"] = [ADDRESS]
    with pytest.raises(SourceUnavailableError, match="certificate|hostname"):
        fetcher(origin, allowed_hosts=("other.example.com",)).get(origin.url("/img/a.jpg", "other.example.com"), 100)
    # And a CA that is not the origin's fails it too.
    with pytest.raises(SourceUnavailableError, match="certificate"):
        fetcher(origin, ca_file=None).get(origin.url("/img/a.jpg"), 100)


@pytest.mark.parametrize("host,mapped,reason", [
    ("localhost", None, "loopback"),  # the real resolver
    ("photos.example.com", ["127.0.0.1"], "loopback"),
    ("photos.example.com", [ADDRESS, "10.0.0.7"], "private"),  # any refused address refuses the name
    ("photos.example.com", ["::ffff:127.0.0.1"], r"loopback \(127.0.0.1, spelled as IPv6\)"),
    ("photos.example.com", ["169.254.169.254"], "link-local"),
    ("photos.example.com", ["100.64.1.1"], "shared"),
])
def test_a_name_resolving_to_a_refused_address_is_refused(
        origin: SourceServer, names: dict[str, list[str]], host: str, mapped: list[str] | None,
        reason: str) -> None:
    if mapped:
        names[host] = mapped
    origin.put("a.jpg", b"bytes")
    with pytest.raises(FetchRefusedError, match=f"resolves to .*{reason}"):
        fetcher(origin).get(origin.url("/img/a.jpg", host=host), 100)
    assert origin.requests == []  # refused before connecting


@pytest.mark.parametrize("to,reason", [
    ("https://127.0.0.1:{port}/img/a.jpg", "loopback"),
    ("https://localhost:{port}/img/a.jpg", "loopback"),
    ("https://[::1]:{port}/img/a.jpg", "loopback"),
    ("https://elsewhere.example.org/a.jpg", "not allowed"),
    ("https://[::ffff:127.0.0.1]:{port}/img/a.jpg", "canonical"),
    ("https://2130706433:{port}/img/a.jpg", "dotted-quad"),
    ("http://{address}:{port}/img/a.jpg", "only https"),
    ("file:///etc/passwd", "only https"),
])
def test_a_redirect_to_a_refused_place_is_refused(origin: SourceServer, to: str, reason: str) -> None:
    origin.put("a.jpg", b"bytes")
    target = to.format(port=origin.port, address=ADDRESS)
    with pytest.raises(FetchRefusedError, match=reason):
        fetcher(origin).get(origin.url(f"/redirect?to={target}"), 100)
    assert [path for _, path in origin.requests] == [f"/redirect?to={target}"]


def test_redirects_are_followed_a_bounded_number_of_times(origin: SourceServer) -> None:
    origin.put("a.jpg", b"bytes")
    assert fetcher(origin).get(origin.url("/redirect?to=/img/a.jpg"), 100).body == b"bytes"
    origin.requests.clear()
    with pytest.raises(FetchRefusedError, match="more than 3 redirects"):
        fetcher(origin).get(origin.url("/loop/0"), 100)
    assert [path for _, path in origin.requests] == [f"/loop/{n}" for n in range(4)]


@pytest.mark.parametrize("host", [
    "2130706433", "0177.0.0.1", "0x7f.1", "0x7f000001", "127.1", "017700000001", "127.0.0.01",
    "[::ffff:127.0.0.1]", "[::FFFF:7F00:1]", "[0:0:0:0:0:0:0:1]", "[fe80::1%25lo]",
])
def test_non_canonical_ip_spellings_are_refused_outright(origin: SourceServer, host: str) -> None:
    allowed = (host.strip("[]").lower(), "*")
    with pytest.raises(FetchRefusedError, match="canonical|dotted-quad|zone"):
        fetcher(origin, allowed_hosts=allowed, allow_private=True).get(f"https://{host}:{origin.port}/", 100)
    assert origin.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[::ffff:7f00:1]", "0.0.0.0"])
def test_canonical_literals_of_refused_addresses_are_refused(origin: SourceServer, host: str) -> None:
    with pytest.raises(FetchRefusedError, match="loopback|unspecified"):
        fetcher(origin, allowed_hosts=(host,)).get(f"https://{host}:{origin.port}/img/a.jpg", 100)
    assert origin.requests == []


@pytest.mark.parametrize("path", ["/lying", "/unbounded"])
def test_a_body_over_the_limit_is_stopped_whatever_its_length_says(origin: SourceServer, path: str) -> None:
    with pytest.raises(ImageTooLargeError, match="over the limit of 100000 bytes"):
        fetcher(origin).get(origin.url(path), 100_000)


def test_a_length_over_the_limit_is_refused_before_reading(origin: SourceServer) -> None:
    url = origin.put("big.jpg", b"x" * 5000)
    with pytest.raises(ImageTooLargeError, match="5000 bytes, over the limit of 4999"):
        fetcher(origin).get(url, 4999)
    assert fetcher(origin).get(url, 5000).body == b"x" * 5000


@pytest.mark.parametrize("path", ["/silent", "/trickle", "/slowheaders"])
def test_a_server_that_never_finishes_answering_times_out(origin: SourceServer, path: str) -> None:
    with pytest.raises(SourceTimeoutError, match=r"no answer within 0.5 s"):
        fetcher(origin, timeout=0.5).get(origin.url(path), 10_000_000)


def test_statuses_and_schemes(origin: SourceServer) -> None:
    with pytest.raises(NotFoundError):
        fetcher(origin).get(origin.url("/img/missing.jpg"), 100)
    with pytest.raises(SourceUnavailableError, match="HTTP 503"):
        fetcher(origin).get(origin.url("/status/503"), 100)
    with pytest.raises(FetchRefusedError, match="HTTP 403"):
        fetcher(origin).get(origin.url("/status/403"), 100)
    for url in ("https://user:pw@photos.example.com/a.jpg", "https://photos.example.com/a.jpg#x",
                "https://evil.example.org/a.jpg", "https://photos.example.com/a b.jpg"):
        with pytest.raises(FetchRefusedError):
            fetcher(origin).get(url, 100)


def test_plain_http_only_when_allowed(tmp_path: Path) -> None:
    server = SourceServer(tmp_path, tls=False)
    try:
        url = server.put("a.jpg", b"bytes")
        with pytest.raises(FetchRefusedError, match="allow-http-sources"):
            Fetcher(FetchPolicy((ADDRESS,), allowed_networks=(f"{ADDRESS}/32",))).get(url, 100)
        policy = FetchPolicy((ADDRESS,), allowed_networks=(f"{ADDRESS}/32",), allow_http=True)
        assert Fetcher(policy).get(url, 100).body == b"bytes"
    finally:
        server.stop()


def test_a_url_prefix_is_not_listed_and_its_host_is_checked_at_once(origin: SourceServer) -> None:
    with pytest.raises(Exception, match="cannot be listed"):
        HttpLibrary(fetcher(origin), origin.url("/img/")).entries()
    with pytest.raises(FetchRefusedError, match="not allowed"):
        HttpLibrary(fetcher(origin), "https://evil.example.org/img/")


@pytest.mark.parametrize("address,reason", [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "shared"), ("192.0.0.8", "not public"), ("198.18.0.1", "private"),
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("fd12:3456::1", "private"), ("ff02::1", "multicast"), ("ff0e::1", "multicast"), ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::127.0.0.1", "loopback"),
    ("2002:7f00:1::", "loopback"), ("2002:a9fe:a9fe::", "link-local"), ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a00:1", "private"), ("64:ff9b:1::a00:1", "private"), ("::ffff:0:7f00:1", "loopback"),
    ("2001:db8::1", "private"),
    ("8.8.8.8", None), ("2606:4700::1111", None), ("::ffff:8.8.8.8", None), ("2002:808:808::1", None),
])
def test_address_refusals(address: str, reason: str | None) -> None:
    got = address_refusal(ipaddress.ip_address(address))
    assert (got is None) if reason is None else (got is not None and got.startswith(reason)), got


@hypothesis.settings(max_examples=300, deadline=None, derandomize=True, database=None)
@hypothesis.given(st.one_of(st.text(max_size=80), st.from_regex(
    r"\Ahttps?://[\[\]0-9a-fA-FxX.:%@A-Za-z_-]{0,40}(:[0-9]{0,6})?(/[ -~]{0,20})?\Z")))
def test_any_url_text_is_taken_or_refused_with_a_reason(url: str) -> None:
    # Never another exception: whatever a line of a file or a redirect says, the answer is one line.
    policy = FetchPolicy(("*.example.com", "example.com"))
    try:
        target = policy.check(url)
    except FetchRefusedError as exc:
        assert str(exc).startswith("source URL ") and len(str(exc)) < 400
    else:
        assert target.host and 0 < target.port < 65536 and target.path.startswith("/")


def test_host_patterns() -> None:
    assert host_allowed("a.example.com", ("*.example.com",)) and host_allowed("b.a.example.com", ("*.example.com",))
    assert not host_allowed("example.com", ("*.example.com",)) and not host_allowed("badexample.com", ("*.example.com",))
    assert host_allowed("example.com", ("Example.COM.",)) and not host_allowed("a.example.com", ("example.com",))

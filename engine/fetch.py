"""Originals fetched from URLs, safely (issue 19, 3): off unless hosts are allowed.

``--allow-source-host`` names the hosts ``pixline import`` and a URL ``--source`` may fetch from.
What a URL reaches is decided here, once, as imgproxy does it (docs/security.md, "Fetching from
URLs"):

- The URL: ``https`` only (``http`` when :attr:`FetchPolicy.allow_http`), no user name or password,
  a host that is allowed, and an IP literal only in its one canonical spelling (``2130706433``,
  ``0177.0.0.1``, ``0x7f.1`` or ``[::ffff:127.0.0.1]`` are refused before any resolver's leniency
  can read them as 127.0.0.1).
- The addresses: the name is resolved here (``socket.getaddrinfo``) and every address it gives is
  checked (:func:`address_refusal`): loopback, private, link-local, multicast, unspecified,
  reserved, shared (100.64/10), and an IPv4 address spelled as IPv6 (mapped, compatible, 6to4,
  NAT64, Teredo) is judged as the IPv4 address it carries. Any refused address refuses the URL,
  unless :attr:`FetchPolicy.allow_private`.
- The connection goes to the checked address itself (no second resolution, so no DNS rebinding),
  with TLS SNI and the certificate checked against the host name.
- Redirects: at most :attr:`FetchPolicy.max_redirects`, each one checked as the first URL was.
- The body: at most ``max_bytes``, counted as it is read (a ``Content-Length`` over it is refused
  before; one under it is not trusted); one total deadline over connect, headers and body, kept by a
  timer that shuts the socket.

urllib3 (already a dependency) makes the connections; one per fetch, so no pooled connection can be
reused for another address.
"""
from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urljoin, urlsplit

from .errors import (FetchRefusedError, ImageTooLargeError, NotFoundError, ParameterError, SourceTimeoutError,
                     SourceUnavailableError, clip)

#: Longest URL taken, in bytes (a URL is a source key of an import too).
MAX_URL_BYTES = 2048
#: Characters of a URL an error message shows.
SHOWN_URL_CHARS = 160
READ_CHUNK = 256 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
#: Nets no fetch should reach that ``ipaddress`` (Python 3.11) calls global: IETF protocol
#: assignments (192.0.0.0/24) and the retired 6to4 relay anycast (192.88.99.0/24).
EXTRA_REFUSED = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("192.88.99.0/24"))
SHARED = ipaddress.ip_network("100.64.0.0/10")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
#: The last label of a host that URL parsers (WHATWG, inet_aton) read as an IPv4 number.
NUMERIC_LABEL_RE = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
HOST_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
UNSAFE_URL_RE = re.compile(r"[\x00-\x20\x7f\\]")


def shown(url: str) -> str:
    """``url`` as error messages show it: bounded, without control characters."""
    return clip(UNSAFE_URL_RE.sub("?", url[:SHOWN_URL_CHARS + 1]), SHOWN_URL_CHARS)


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # lower case, no brackets, no trailing dot
    port: int
    path: str  # path and query, as sent

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def check_source_url(url: str) -> Target:
    """``url`` parsed if it is a URL pixline could fetch at all (whatever hosts are allowed):
    ``http(s)``, a host, no user name, password or fragment, at most :data:`MAX_URL_BYTES`, an IP
    literal only in its canonical spelling. :class:`FetchRefusedError` says why not."""
    if len(url.encode("utf-8", "surrogatepass")) > MAX_URL_BYTES:
        raise FetchRefusedError(f"source URL {shown(url)}: longer than {MAX_URL_BYTES} bytes")
    if UNSAFE_URL_RE.search(url) or not url.isascii():
        raise FetchRefusedError(f"source URL {shown(url)}: spaces, control characters, backslashes and "
                                "non-ASCII characters are not taken (percent-encode them; IDNA hosts as xn--)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefusedError(f"source URL {shown(url)}: {exc}") from None
    if port == 0:
        raise FetchRefusedError(f"source URL {shown(url)}: port 0 is no port")
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise FetchRefusedError(f"source URL {shown(url)}: only https:// URLs are fetched")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise FetchRefusedError(f"source URL {shown(url)}: a user name or password in a URL is not taken")
    if parts.fragment or url.endswith("#"):
        raise FetchRefusedError(f"source URL {shown(url)}: a fragment (#) is not taken")
    host = _canonical_host(parts.hostname or "", parts.netloc, url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, scheme, host, port or (443 if scheme == "https" else 80), path)


def _canonical_host(host: str, netloc: str, url: str) -> str:
    """The host of ``url``, refused unless it is a DNS name or an IP address in canonical form."""
    host = host.lower().rstrip(".")
    if not host:
        raise FetchRefusedError(f"source URL {shown(url)}: no host")
    if "%" in host:
        raise FetchRefusedError(f"source URL {shown(url)}: a host with a zone id or a percent sign is not taken")
    if netloc.startswith("[") or ":" in host:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise FetchRefusedError(f"source URL {shown(url)}: {host!r} is not an IPv6 address") from None
        if str(address) != netloc.rpartition("]")[0].lstrip("["):  # [::ffff:127.0.0.1], [::FFFF:7F00:1]
            raise FetchRefusedError(f"source URL {shown(url)}: the IPv6 address {host} is not in its "
                                    f"canonical form ({address}); refused")
        return host
    if NUMERIC_LABEL_RE.fullmatch(host.rsplit(".", 1)[-1]):
        # An IPv4 address: only the dotted-quad spelling (2130706433, 0177.0.0.1, 0x7f.1 are 127.0.0.1).
        try:
            if str(ipaddress.IPv4Address(host)) == host:
                return host
        except ValueError:
            pass
        raise FetchRefusedError(f"source URL {shown(url)}: {host!r} is not an IPv4 address in "
                                "dotted-quad form; other spellings are refused")
    if not HOST_RE.fullmatch(host) or len(host) > 253:
        raise FetchRefusedError(f"source URL {shown(url)}: {host!r} is not a host name")
    return host


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` is not one to fetch from (``"loopback"``…), or ``None`` for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = _carried_ipv4(address)
        if carried is not None:
            reason = address_refusal(carried)
            return f"{reason} ({carried}, spelled as IPv6)" if reason else None
    for name in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private", "site_local"):
        if getattr(address, f"is_{name}", False):
            return name.replace("_", "-")
    if address in SHARED:
        return "shared (carrier-grade NAT)"
    if any(address in net for net in EXTRA_REFUSED if net.version == address.version) or not address.is_global:
        return "not public"
    return None


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one spells: mapped, compatible (``::a.b.c.d``), 6to4, NAT64, Teredo."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    value = int(address)
    # NAT64, IPv4-compatible (::a.b.c.d, not :: or ::1) and IPv4-translated (::ffff:0:a.b.c.d).
    if any(address in net for net in NAT64) or (value >> 32 == 0 and value > 1) or value >> 32 == 0xFFFF0000:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """``host`` is one of ``patterns``: an exact name, or ``*.example.com`` for names below it."""
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern.strip("[]"):
            return True
    return False


@dataclass(frozen=True)
class FetchPolicy:
    """What may be fetched, and how long it may take (the ``sources`` settings)."""

    allowed_hosts: tuple[str, ...]
    allow_private: bool = False
    allow_http: bool = False
    connect_timeout: float = 5.0
    timeout: float = 30.0
    max_redirects: int = 3
    ca_file: str | None = None
    #: Networks (CIDR text) fetched from although not public: an internal origin, narrower than
    #: ``allow_private``.
    allowed_networks: tuple[str, ...] = ()
    networks: tuple[Any, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        try:
            networks = tuple(ipaddress.ip_network(net, strict=False) for net in self.allowed_networks)
        except ValueError as exc:
            raise ParameterError(f"--allow-source-network: {exc}") from None
        object.__setattr__(self, "networks", networks)

    def check(self, url: str) -> Target:
        """``url`` parsed if it may be fetched (its addresses are checked when it is)."""
        target = check_source_url(url)
        if target.scheme == "http" and not self.allow_http:
            raise FetchRefusedError(f"source URL {shown(url)}: only https:// URLs are fetched "
                                    "(--allow-http-sources allows http://)")
        if not host_allowed(target.host, self.allowed_hosts):
            raise FetchRefusedError(f"source URL {shown(url)}: host {target.host} is not allowed "
                                    "(--allow-source-host names the hosts that are)")
        return target

    def addresses(self, target: Target) -> list[str]:
        """The addresses to connect to for ``target``, in the resolver's order, once every one is
        checked."""
        try:
            found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise SourceUnavailableError(f"source URL {shown(target.url)}: {target.host} does not resolve "
                                         f"({exc})") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in found]
        if not addresses:
            raise SourceUnavailableError(f"source URL {shown(target.url)}: {target.host} has no address")
        if not self.allow_private:
            for address in addresses:
                reason = None if self._allowed_network(address) else address_refusal(address)
                if reason:
                    raise FetchRefusedError(
                        f"source URL {shown(target.url)}: {target.host} resolves to {address}, a {reason} "
                        "address (--allow-source-network or --allow-private-source-addresses allows it)")
        return list(dict.fromkeys(str(address) for address in addresses))

    def _allowed_network(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == net.version and address in net
                   for net in self.networks)


@dataclass
class Reply:
    """A fetch's final answer: the URL it came from, its headers, and the body (empty for HEAD)."""

    url: str
    headers: Mapping[str, str]
    body: bytes = b""


class Fetcher:
    """Fetches URLs under a :class:`FetchPolicy`: ``head`` and ``get`` (bounded), from any thread."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy

    def head(self, url: str) -> Reply:
        """The headers of ``url`` (after redirects); :class:`NotFoundError` on 404/410."""
        return self._fetch("HEAD", url, 0)

    def get(self, url: str, max_bytes: int) -> Reply:
        """``url``'s body, at most ``max_bytes`` (past it :class:`ImageTooLargeError`)."""
        return self._fetch("GET", url, max_bytes)

    def _fetch(self, method: str, url: str, max_bytes: int) -> Reply:
        deadline = time.monotonic() + self.policy.timeout
        first = url
        for _ in range(self.policy.max_redirects + 1):
            target = self.policy.check(url)
            status, headers, body = _Exchange(self.policy, target, deadline).run(method, max_bytes)
            if status in REDIRECTS and headers.get("location"):
                url = urljoin(url, headers["location"])
                continue
            if status == 200:
                return Reply(url, headers, body)
            if status in (404, 410):
                raise NotFoundError(f"source URL {shown(first)}: not found (HTTP {status})")
            if status >= 500 or status == 429:
                raise SourceUnavailableError(f"source URL {shown(first)}: answered HTTP {status}")
            raise FetchRefusedError(f"source URL {shown(first)}: answered HTTP {status}")
        raise FetchRefusedError(f"source URL {shown(first)}: more than {self.policy.max_redirects} "
                                "redirects (--source-max-redirects)")


class _Exchange:
    """One request on its own connection to a checked address, within the fetch's deadline."""

    def __init__(self, policy: FetchPolicy, target: Target, deadline: float) -> None:
        self.policy, self.target, self.deadline = policy, target, deadline
        self.timed_out = False
        self.conn: Any = None
        self.sock: Any = None

    def run(self, method: str, max_bytes: int) -> tuple[int, dict[str, str], bytes]:
        import urllib3.exceptions

        addresses = self.policy.addresses(self.target)
        watchdog = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._expire)
        watchdog.daemon = True
        try:
            watchdog.start()
            self._connect(addresses)
            # Kept: http.client drops conn.sock once a reply that closes the connection has come.
            self.sock = self.conn.sock
            self.sock.settimeout(self._left())
            self.conn.request(method, self.target.path, headers={
                "Host": self.target.host_header, "User-Agent": "pixline", "Accept": "image/*",
                "Accept-Encoding": "identity"}, preload_content=False)
            reply = self.conn.getresponse()
            headers = {k.lower(): v for k, v in reply.headers.items()}
            body = self._body(reply, headers, max_bytes) if method == "GET" and reply.status == 200 else b""
            return reply.status, headers, body
        except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError, ValueError) as exc:
            # (urllib3's NewConnectionError, a refused connection, is a ConnectTimeoutError too.)
            timed_out = isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)) and not isinstance(
                exc, urllib3.exceptions.NewConnectionError)
            if self.timed_out or timed_out:
                raise SourceTimeoutError(f"source URL {shown(self.target.url)}: no answer within "
                                         f"{self.policy.timeout:g} s (--source-timeout)") from None
            raise SourceUnavailableError(f"source URL {shown(self.target.url)}: {type(exc).__name__}: "
                                         f"{str(exc)[:200]}") from None
        finally:
            watchdog.cancel()
            if self.conn is not None:
                self.conn.close()

    def _connect(self, addresses: list[str]) -> None:
        """Connect to the first of ``addresses`` that answers (an AAAA record on a host without
        IPv6 must not fail a name that has an A record too)."""
        import urllib3.exceptions

        for index, address in enumerate(addresses):
            self.conn = self._connection(address)
            try:
                self.conn.connect()
                return
            except (OSError, urllib3.exceptions.HTTPError):
                self.conn.close()
                if index == len(addresses) - 1 or self.timed_out:
                    raise

    def _connection(self, address: str) -> Any:
        from urllib3.connection import HTTPConnection, HTTPSConnection

        timeout = min(self.policy.connect_timeout, self._left())
        if self.target.scheme == "http":
            return HTTPConnection(address, self.target.port, timeout=timeout)
        # The connection goes to the address checked; TLS names and checks the host.
        return HTTPSConnection(address, self.target.port, timeout=timeout, server_hostname=self.target.host,
                               assert_hostname=self.target.host, cert_reqs="CERT_REQUIRED",
                               ca_certs=self.policy.ca_file)

    def _body(self, reply: Any, headers: dict[str, str], max_bytes: int) -> bytes:
        said = headers.get("content-length", "")
        if said.isdigit() and int(said) > max_bytes:  # said so already: read nothing
            raise ImageTooLargeError(f"source URL {shown(self.target.url)}: {said} bytes, over the limit "
                                     f"of {max_bytes}")
        chunks, size = [], 0
        while True:
            self.sock.settimeout(self._left())
            chunk = reply.read1(min(READ_CHUNK, max_bytes + 1 - size), decode_content=False)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise ImageTooLargeError(f"source URL {shown(self.target.url)}: over the limit of "
                                         f"{max_bytes} bytes")

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.timed_out = True
            raise TimeoutError("deadline")
        return left

    def _expire(self) -> None:
        """The deadline passed: shut the socket, so a read blocked in it returns at once."""
        self.timed_out = True
        if self.sock is not None:
            try:
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
            except OSError:
                pass

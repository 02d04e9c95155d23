"""S3 GETs for the hot path of hits: a presigned URL (botocore) fetched on a pooled urllib3 connection.

Used by :class:`pixline.engine.storage.Store` for reads on S3; writes, listings and deletes stay on
s3fs.
"""
from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from .errors import NotFoundError

#: Seconds a presigned GET URL is valid; it is reused for half of that.
URL_LIFE = 600
URLS_KEPT = 10_000


class S3Reader:
    """S3 GETs for the hot path: botocore signs, urllib3 fetches; thread-safe, pooled connections.

    s3fs runs every call as a coroutine on one event-loop thread, which a threaded server's hits all
    queue behind (~4 ms of CPU per GET, measured); botocore's ``get_object`` still spends ~2 ms in
    its event hooks and response parsing. A presigned GET URL (botocore: addressing, credentials,
    signature) fetched with urllib3 costs ~0.7 ms; on the pool of its host, with the URL split once
    when it is signed, 0.33 ms (from 0.44 through a PoolManager, which parses every URL again; a
    12 KB object on SeaweedFS over loopback, in process). The client and the pools are made on first
    use, in the process that uses them (connections do not survive a fork).
    """

    def __init__(self, root: str, options: dict[str, Any]) -> None:
        self.bucket, _, prefix = root.partition("/")
        self.prefix = f"{prefix}/" if prefix else ""
        client_kwargs = dict(options.get("client_kwargs") or {})
        self.client_options = {"endpoint_url": client_kwargs.get("endpoint_url"),
                               "region_name": client_kwargs.get("region_name"),
                               "aws_access_key_id": options.get("key"),
                               "aws_secret_access_key": options.get("secret"),
                               "aws_session_token": options.get("token")}
        self._client: Any = None
        self._pools: dict[str, Any] = {}  # a connection pool per scheme://host:port signed URLs name
        self._lock = threading.Lock()
        self._urls: OrderedDict[str, tuple[Any, str, float]] = OrderedDict()

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                import botocore.config
                import botocore.session

                config = botocore.config.Config(signature_version="s3v4")
                self._client = botocore.session.get_session().create_client(
                    "s3", config=config, **{k: v for k, v in self.client_options.items() if v})
            return self._client

    def _pool(self, origin: str) -> Any:
        """The pool of ``origin``: urllib3's PoolManager would parse each URL again to find it (~30 µs
        of the ~0.4 ms a GET costs)."""
        with self._lock:
            if origin not in self._pools:
                import urllib3

                self._pools[origin] = urllib3.connection_from_url(
                    origin, maxsize=64, retries=urllib3.Retry(3, backoff_factor=0.1),
                    timeout=urllib3.Timeout(connect=5, read=60))
            return self._pools[origin]

    def url(self, key: str) -> tuple[Any, str]:
        """The pool and request target of a presigned GET of ``key``, signed once and reused for half
        its life: a hot object's hits skip the signing (a third of their CPU)."""
        now = time.monotonic()
        with self._lock:
            found = self._urls.get(key)
            if found and found[2] > now:
                self._urls.move_to_end(key)
                return found[0], found[1]
        url = self._connect().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=URL_LIFE)
        parts = urlsplit(url)
        pool = self._pool(f"{parts.scheme}://{parts.netloc}")
        target = urlunsplit(("", "", parts.path, parts.query, ""))
        with self._lock:
            self._urls[key] = (pool, target, now + URL_LIFE / 2)
            if len(self._urls) > URLS_KEPT:
                self._urls.popitem(last=False)
        return pool, target

    def open(self, key: str) -> tuple[BinaryIO, int]:
        pool, target = self.url(key)
        reply = pool.urlopen("GET", target, preload_content=False)
        if reply.status == 403:  # signed with credentials that have expired since: sign again
            reply.drain_conn()
            reply.release_conn()
            with self._lock:
                self._urls.pop(key, None)
            pool, target = self.url(key)
            reply = pool.urlopen("GET", target, preload_content=False)
        if reply.status != 200:
            reply.drain_conn()
            reply.release_conn()
            if reply.status == 404:
                raise NotFoundError(f"no object at {key}")
            raise OSError(f"S3 GET {key}: HTTP {reply.status} {reply.reason}")
        return PooledBody(reply), int(reply.headers["Content-Length"])


class PooledBody(io.RawIOBase):
    """A urllib3 response body that goes back to its pool when closed (keep-alive is kept)."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self.reply.read(None if size is None or size < 0 else size)

    def close(self) -> None:
        if not self.closed:
            self.reply.drain_conn()
            self.reply.release_conn()
        super().close()

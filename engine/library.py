"""A site's own library of originals, read where it is: a local folder, an S3 prefix, or a URL prefix
(when hosts are allowed: every fetch through ``fetch.py``).

``pixline import`` lists one and stores each original as an upload (docs/architecture.md, "An
import"); ``--source`` renders from one in place ("A recipe URL for a source key"). pixline never
writes to a library. Keys come from strangers (a URL's path, a line of a file): :func:`check_source_key`
holds them to a defined character set before they reach a path or an S3 request, and a local key
must stay inside its folder once symbolic links are followed.

A listing is paged (S3 ``list_objects_v2`` pages, a folder walked one directory at a time, in key
order), so a library of millions of keys never sits in memory, and ``after`` resumes a listing past a
key.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from .errors import (FetchRefusedError, ImageTooLargeError, NotFoundError, ParameterError, StoreUnavailableError,
                     quote)
from .fetch import Fetcher, check_source_url, shown

if TYPE_CHECKING:
    from .storage import Store

#: Longest source key, in bytes (S3 allows 1024; the key is a URL path too).
MAX_KEY_BYTES = 1024
#: Letters, digits and ``. _ - ~ + = , @`` in ``/``-separated segments: what sites name their
#: originals with, and nothing a path, a URL or a log line treats specially (no ``%``, ``?``, ``#``,
#: ``\``, spaces or control characters).
KEY_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~+=,@-]+")
LIST_PAGE = 1000
READ_CHUNK = 256 * 1024


class SourceChangedError(NotFoundError):
    """A library object is no longer the version an image was made of: that image is gone, and the
    key names a new one."""


def check_source_key(key: str) -> str:
    """``key`` if it is a valid source key, else :class:`ParameterError` saying why.

    Relative (no leading ``/``), no empty, ``.`` or ``..`` segment, at most :data:`MAX_KEY_BYTES`,
    every segment matching :data:`KEY_SEGMENT_RE` whole.
    """
    if not isinstance(key, str) or not key:
        raise ParameterError("a source key must not be empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ParameterError(f"a source key is at most {MAX_KEY_BYTES} bytes (this one has {len(key)} characters)")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ParameterError("a source key has no empty, '.' or '..' segment and does not start "
                                 "or end with '/'")
        if not KEY_SEGMENT_RE.fullmatch(segment):
            raise ParameterError("a source key has only letters, digits and . _ - ~ + = , @ between "
                                 "its slashes")
    return key


def check_recorded_key(key: str) -> str:
    """``key`` if an import could have recorded it: a source key, or a URL of a file of URLs
    (:func:`~pixline.engine.fetch.check_source_url`'s syntax); else :class:`ParameterError`."""
    if not isinstance(key, str) or not key.lower().startswith(("https://", "http://")):
        return check_source_key(key)
    try:
        check_source_url(key)
    except FetchRefusedError as exc:
        raise ParameterError(str(exc)) from None
    return key


@dataclass(frozen=True)
class Version:
    """What identifies one version of a library object: its ETag (an S3 ETag; on files, the
    modification time and inode) and its size. A changed object has another version."""

    etag: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"etag": self.etag, "size": self.size}


@dataclass(frozen=True)
class Entry:
    """One key of a listing, with its version when the listing tells it (S3 does; a folder too)."""

    key: str
    version: Version | None = None


def source_id(key: str, version: Version) -> str:
    """The image id of one version of a library object served in place: 32 hex digits, like an
    upload's content id, derived from the key and its version (not the bytes, which would have to be
    read to name them). A changed object gets a new id, so its old derivatives are never served for
    it."""
    text = f"source\0{key}\0{version.etag}\0{version.size}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class SourceRecord:
    """What pixline's store knows of a source key: the image it became, and the version it was
    then (``sources/<hash of the key>.json``). An import writes one per original it took in, so a
    site can ask ``GET /images?source_key=…`` for the id, and a second import skips what it took."""

    source_key: str
    image_id: str
    version: Version | None = None

    @staticmethod
    def store_key(source_key: str) -> str:
        digest = hashlib.sha256(source_key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"sources/{digest}.json"

    @classmethod
    def find(cls, store: "Store", source_key: str) -> "SourceRecord | None":
        try:
            raw = json.loads(store.get(cls.store_key(source_key)))
        except NotFoundError:
            return None
        version = raw.get("version")
        return cls(raw["source_key"], raw["image_id"],
                   Version(version["etag"], int(version["size"])) if version else None)

    def save(self, store: "Store") -> None:
        store.put(self.store_key(self.source_key), json.dumps({
            "source_key": self.source_key, "image_id": self.image_id,
            "version": self.version.as_dict() if self.version else None}).encode())


class Library:
    """The read-only interface of a library: list, stat and read keys."""

    url: str

    def check_key(self, key: str) -> str:
        """``key`` if it is a valid key of this library (:func:`check_source_key`), else
        :class:`ParameterError` (or, for a library of URLs, ``FetchRefusedError``)."""
        return check_source_key(key)

    def entries(self, after: str | None = None) -> Iterator[Entry]:
        """Every key in key order (past ``after`` when given), one page at a time."""
        raise NotImplementedError

    def stat(self, key: str) -> Version:
        """The current version of ``key``; :class:`NotFoundError` when there is none."""
        raise NotImplementedError

    def read(self, key: str, max_bytes: int) -> tuple[bytes, Version]:
        """The bytes of ``key`` and the version they are, read within ``max_bytes`` (past it,
        :class:`ImageTooLargeError`); :class:`NotFoundError` when there is none."""
        raise NotImplementedError


def open_library(url: str, s3_endpoint: str | None = None, fetcher: Fetcher | None = None) -> Library:
    """The library at ``url``: ``s3://BUCKET/PREFIX/``, ``file://DIR``, a folder path, or with a
    ``fetcher`` (hosts allowed) an ``https://HOST/PREFIX/`` URL."""
    if url.startswith("s3://"):
        return S3Library(url, s3_endpoint)
    if url.lower().startswith(("https://", "http://")):
        if fetcher is None:
            raise ParameterError(f"source {quote(url)}: fetching from URLs is off; --allow-source-host HOST "
                                 "allows a host")
        return HttpLibrary(fetcher, url)
    path = url[len("file://"):] if url.startswith("file://") else url
    if "://" in path:
        raise ParameterError(f"source {quote(url)}: use s3://BUCKET/PREFIX/, https://HOST/PREFIX/, file://DIR "
                             "or a folder")
    return LocalLibrary(path)


class LocalLibrary(Library):
    """A folder of originals; keys are paths relative to it, with ``/``."""

    def __init__(self, folder: str) -> None:
        self.root = os.path.realpath(folder)
        self.url = f"file://{self.root}"
        if not os.path.isdir(self.root):
            raise ParameterError(f"source {quote(folder)}: no such folder")

    def _path(self, key: str) -> str:
        path = os.path.realpath(os.path.join(self.root, check_source_key(key)))
        # A symbolic link inside the folder may point anywhere: what it reaches must be inside too.
        if not path.startswith(self.root + os.sep):
            raise NotFoundError(f"source key {quote(key)}: not found")
        return path

    def entries(self, after: str | None = None) -> Iterator[Entry]:
        yield from self._walk("", after)

    def _walk(self, prefix: str, after: str | None) -> Iterator[Entry]:
        folder = os.path.join(self.root, prefix) if prefix else self.root
        try:
            with os.scandir(folder) as found:
                # Sorted as keys sort: a folder's keys go on with "/", so "a/x" comes after "a-b".
                names = sorted((e.name + "/" if e.is_dir(follow_symlinks=False) else e.name,
                                e.is_dir(follow_symlinks=False), e.is_file()) for e in found)
        except OSError:
            return
        for name, is_dir, is_file in names:
            name = name.rstrip("/")
            key = f"{prefix}{name}"
            if is_dir:
                # Keys below come after the folder's name plus "/": skip folders wholly before ``after``.
                if after is None or not after >= key + "/\uffff":
                    yield from self._walk(key + "/", after)
            elif is_file and (after is None or key > after):
                yield Entry(key, _file_version(os.stat(os.path.join(folder, name))))

    def stat(self, key: str) -> Version:
        path = self._path(key)
        try:
            stat = os.stat(path)
        except OSError:
            raise NotFoundError(f"source key {quote(key)}: not found") from None
        if not os.path.isfile(path):
            raise NotFoundError(f"source key {quote(key)}: not found")
        return _file_version(stat)

    def read(self, key: str, max_bytes: int) -> tuple[bytes, Version]:
        path = self._path(key)
        if not os.path.isfile(path):  # before opening: opening a FIFO would wait for a writer
            raise NotFoundError(f"source key {quote(key)}: not found")
        try:
            with open(path, "rb") as f:
                stat = os.fstat(f.fileno())
                data = _read_within(f, max_bytes, key)
        except OSError:
            raise NotFoundError(f"source key {quote(key)}: not found") from None
        return data, _file_version(stat)


class S3Library(Library):
    """An S3 prefix (any S3-compatible service); credentials from the usual AWS variables."""

    def __init__(self, url: str, endpoint: str | None = None) -> None:
        self.url = url
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise ParameterError(f"source {quote(url)}: name a bucket, as in s3://BUCKET/PREFIX/")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.endpoint = endpoint
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:  # made on first use, in the process that uses it
            import botocore.config
            import botocore.session

            config = botocore.config.Config(signature_version="s3v4", retries={"max_attempts": 3},
                                            connect_timeout=5, read_timeout=60)
            self._client = botocore.session.get_session().create_client(
                "s3", config=config, endpoint_url=self.endpoint,
                aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        return self._client

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise NotFoundError(f"source {what}: not found") from None
            raise StoreUnavailableError(f"source {self.url}: {what}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(f"source {self.url}: {what}: {exc}") from None

    def entries(self, after: str | None = None) -> Iterator[Entry]:
        token: str | None = None
        start = self.prefix + after if after else None
        while True:
            kwargs: dict[str, Any] = {"Prefix": self.prefix, "MaxKeys": LIST_PAGE}
            if token:
                kwargs["ContinuationToken"] = token
            elif start:
                kwargs["StartAfter"] = start
            page = self._call(f"listing {self.prefix or '/'}", self.client.list_objects_v2, **kwargs)
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                if key and not key.endswith("/"):
                    yield Entry(key, Version(item.get("ETag", "").strip('"'), int(item.get("Size", 0))))
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def stat(self, key: str) -> Version:
        head = self._call(f"key {quote(key)}", self.client.head_object, Key=self.prefix + check_source_key(key))
        return Version(head.get("ETag", "").strip('"'), int(head.get("ContentLength", 0)))

    def read(self, key: str, max_bytes: int) -> tuple[bytes, Version]:
        reply = self._call(f"key {quote(key)}", self.client.get_object, Key=self.prefix + check_source_key(key))
        version = Version(reply.get("ETag", "").strip('"'), int(reply.get("ContentLength", 0)))
        body = reply["Body"]
        try:
            if version.size > max_bytes:  # said so already: read nothing
                raise ImageTooLargeError(f"source key {quote(key)}: {version.size} bytes, over the limit of "
                                         f"{max_bytes}")
            return _read_within(body, max_bytes, key), version
        finally:
            body.close()


class HttpLibrary(Library):
    """Originals on a web server, at ``prefix`` + key (``--source https://HOST/PREFIX/``), or with
    ``prefix`` ``None`` (``pixline import`` of a file of URLs) each key a whole URL.

    Every fetch goes through :class:`~pixline.engine.fetch.Fetcher` (allowed hosts, checked
    addresses, bounded bodies and time). A web server cannot be listed, so neither can this. A key's
    version is the server's validator (``ETag``, else ``Last-Modified``) and its ``Content-Length``,
    taken alike from a HEAD (``stat``) and a GET (``read``), so a changed object is noticed as on S3.
    """

    def __init__(self, fetcher: Fetcher, prefix: str | None = None) -> None:
        self.fetcher = fetcher
        self.prefix = prefix
        if prefix is not None:
            if not prefix.endswith("/"):
                self.prefix = prefix = prefix + "/"
            target = fetcher.policy.check(prefix)  # a host not allowed stops start-up, not a request
            if "?" in target.path:
                raise ParameterError(f"source {shown(prefix)}: a URL prefix has no query")
        self.url = prefix or "URLs"

    def check_key(self, key: str) -> str:
        if self.prefix is None:
            check_source_url(key)
            return key
        return check_source_key(key)

    def entries(self, after: str | None = None) -> Iterator[Entry]:
        raise ParameterError(f"source {shown(self.url)}: a URL prefix cannot be listed; import a file of "
                             f"its keys instead (pixline import KEYS.txt --source {shown(self.url)})")

    def stat(self, key: str) -> Version:
        return _http_version(self.fetcher.head(self._url(key)).headers)

    def read(self, key: str, max_bytes: int) -> tuple[bytes, Version]:
        reply = self.fetcher.get(self._url(key), max_bytes)
        return reply.body, _http_version(reply.headers)

    def _url(self, key: str) -> str:
        if self.prefix is None:
            return key  # the fetch checks it against the policy, as every redirect
        return self.prefix + check_source_key(key)


def _http_version(headers: Mapping[str, str]) -> Version:
    """A reply's version: its validator and the size it says (0 when it says none)."""
    modified = headers.get("last-modified", "").strip()
    validator = headers.get("etag", "").strip() or (f"modified {modified}" if modified else "")
    said = headers.get("content-length", "")
    return Version(validator.strip('"'), int(said) if said.isdigit() else 0)


def _file_version(stat: os.stat_result) -> Version:
    return Version(f"{stat.st_mtime_ns:x}-{stat.st_ino:x}", stat.st_size)


def _read_within(stream: Any, max_bytes: int, key: str) -> bytes:
    """Read ``stream`` to its end, refusing it once more than ``max_bytes`` came (a length said
    before is not trusted)."""
    out = io.BytesIO()
    while chunk := stream.read(min(READ_CHUNK, max_bytes + 1 - out.tell())):
        out.write(chunk)
        if out.tell() > max_bytes:
            raise ImageTooLargeError(f"source key {quote(key)}: over the limit of {max_bytes} bytes")
    return out.getvalue()

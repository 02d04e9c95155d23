"""One store over fsspec: local files (the embedded default) or any S3-compatible service.

Keys (docs/architecture.md, "Storage keys")::

    originals/<id>                                the uploaded bytes, untouched
    reduced/<id>.jpg                              the reduced copy of a large original (reduced.py)
    meta/<id>.json                                what was learned at upload
    derived/<recipe>/<digest>/<id>.<ext>          rendered outputs

Keys are built only from validated parts, so nothing from a request reaches the backend unchecked.
Writes are whole-object: on S3 a PUT is atomic; on local files the bytes go to ``tmp/`` first and are
renamed into place, so a reader (or a crash) never leaves half an image under a real key.

Reads are the hot path of a CDN origin, so they skip fsspec: local files are opened directly (a
stream a WSGI server can ``sendfile``), and an S3 object is one GET of a presigned URL on a pooled
urllib3 connection (:class:`S3Reader`), not a call through s3fs' single event loop. An image's metadata never changes (the
id is a hash of the bytes; only a delete removes it), so the hit path reads it once per process.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any, BinaryIO, Iterator

import fsspec

from .errors import NotFoundError, ParameterError
from .recipe import check_name

log = logging.getLogger(__name__)

ID_RE = re.compile(r"^[0-9a-f]{32}$")
DIGEST_RE = re.compile(r"^[0-9a-f]{8,64}$")
EXT_RE = re.compile(r"^[a-z0-9]{1,5}$")
#: Images whose metadata one process keeps (a few hundred bytes each).
META_CACHE_SIZE = 10_000


def check_id(image_id: str) -> str:
    """Return ``image_id`` if it is a well-formed image id (32 lower-case hex digits)."""
    if not isinstance(image_id, str) or not ID_RE.match(image_id):
        raise ParameterError(f"image id {image_id!r} is not valid: ids are 32 lower-case hex digits")
    return image_id


class Store:
    """Originals, metadata and derivatives under one fsspec URL (``file://DIR`` or ``s3://BUCKET/PREFIX``).

    ``options`` go to the fsspec filesystem (for s3fs: ``endpoint_url``, ``key``, ``secret``…).
    """

    def __init__(self, url: str = "file://./data", **options: Any) -> None:
        self.url = url
        if "://" not in url:
            url = f"file://{url}"
        protocol, _, path = url.partition("://")
        if protocol not in ("file", "s3"):
            raise ParameterError(f"store {self.url!r}: use file://DIR or s3://BUCKET/PREFIX")
        if protocol == "s3" and not path.strip("/"):
            raise ParameterError(f"store {self.url!r}: name a bucket, as in s3://BUCKET/PREFIX")
        if protocol == "file":
            path = os.path.abspath(path or ".")
            options.setdefault("auto_mkdir", True)
        elif protocol == "s3" and "endpoint_url" in options:
            # s3fs takes the endpoint through client_kwargs; accept the flat spelling too.
            options.setdefault("client_kwargs", {})["endpoint_url"] = options.pop("endpoint_url")
        self.local = protocol == "file"
        self.fs = fsspec.filesystem(protocol, **options)
        self.root = path.rstrip("/")
        if self.local:
            self.fs.makedirs(self.root, exist_ok=True)
        self._reader = None if self.local else S3Reader(self.root, options)
        self._meta: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._meta_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- keys ---------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    @staticmethod
    def original_key(image_id: str) -> str:
        return f"originals/{check_id(image_id)}"

    @staticmethod
    def reduced_key(image_id: str) -> str:
        return f"reduced/{check_id(image_id)}.jpg"

    @staticmethod
    def meta_key(image_id: str) -> str:
        return f"meta/{check_id(image_id)}.json"

    @staticmethod
    def derived_key(recipe: str, digest: str, image_id: str, extension: str) -> str:
        check_name(recipe)
        if not DIGEST_RE.match(digest) or not EXT_RE.match(extension):
            raise ParameterError(f"bad derivative key parts: digest {digest!r}, extension {extension!r}")
        return f"derived/{recipe}/{digest}/{check_id(image_id)}.{extension}"

    # -- bytes --------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` as a whole object."""
        if self.local:
            tmp = self._path(f"tmp/{uuid.uuid4().hex}")
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, self._path(key))
        else:
            self.fs.pipe_file(self._path(key), data)

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`NotFoundError` if there are none."""
        stream, _ = self.open(key)
        with stream:
            return stream.read()

    def open(self, key: str) -> tuple[BinaryIO, int]:
        """A readable stream of the object under ``key`` and its size in bytes; the caller closes it.

        :class:`NotFoundError` if there is none. A local file is the open file itself (``sendfile``
        material); an S3 object is the body of one GET, read as it arrives.
        """
        if self._reader is not None:
            return self._reader.open(key)
        try:
            stream = open(self._path(key), "rb")  # noqa: SIM115 (the caller closes it)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no object at {key}") from None
        return stream, os.fstat(stream.fileno()).st_size

    def exists(self, key: str) -> bool:
        try:
            return bool(self.fs.exists(self._path(key)))
        except FileNotFoundError:
            return False

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def invalidate(self) -> None:
        """Forget cached listings (s3fs caches directory listings)."""
        self.fs.invalidate_cache()

    # -- originals and metadata ---------------------------------------------------------------
    def put_original(self, image_id: str, data: bytes, meta: dict[str, Any],
                     reduced: bytes | None = None) -> None:
        """Store an original, its reduced copy if any, and its metadata (last: it marks the image
        complete)."""
        self.put(self.original_key(image_id), data)
        if reduced is not None:
            self.put(self.reduced_key(image_id), reduced)
        self.put(self.meta_key(image_id), json.dumps(meta, sort_keys=True).encode())
        self._forget_meta(image_id)

    def get_original(self, image_id: str) -> bytes:
        try:
            return self.get(self.original_key(image_id))
        except NotFoundError:
            raise NotFoundError(f"image {image_id} not found") from None

    def get_meta(self, image_id: str, cached: bool = False) -> dict[str, Any]:
        """An image's metadata; :class:`NotFoundError` for an unknown image.

        ``cached``: from this process's memory when it was read before (the render and hit paths;
        the dict is shared, do not change it). A delete through another process is then noticed
        only when the original or a derivative is read, which is where those paths find it gone.
        """
        if cached:
            with self._meta_lock:
                meta = self._meta.get(image_id)
                if meta is not None:
                    self._meta.move_to_end(image_id)
                    return meta
        try:
            meta = json.loads(self.get(self.meta_key(image_id)))
        except NotFoundError:
            raise NotFoundError(f"image {image_id} not found") from None
        with self._meta_lock:
            self._meta[image_id] = meta
            if len(self._meta) > META_CACHE_SIZE:
                self._meta.popitem(last=False)
        return meta

    def _forget_meta(self, image_id: str) -> None:
        with self._meta_lock:
            self._meta.pop(image_id, None)

    def has_image(self, image_id: str) -> bool:
        return self.exists(self.meta_key(image_id))

    def image_ids(self) -> Iterator[str]:
        """Every stored image id (those whose metadata was written)."""
        try:
            names = self.fs.ls(self._path("meta"), detail=False)
        except FileNotFoundError:
            return
        for name in sorted(names):
            stem = name.rsplit("/", 1)[-1].removesuffix(".json")
            if ID_RE.match(stem):
                yield stem

    def derived_keys(self, image_id: str) -> list[str]:
        """Keys of every stored derivative of an image, whatever recipe or digest made it."""
        check_id(image_id)
        pattern = self._path(f"derived/*/*/{image_id}.*")
        root = self.root + "/"
        return sorted(p[len(root):] if p.startswith(root) else p for p in self.fs.glob(pattern))

    def delete_image(self, image_id: str) -> int:
        """Delete an original, its reduced copy, its metadata and every derivative; returns how many
        objects went."""
        keys = self.derived_keys(image_id)
        if self.exists(self.reduced_key(image_id)):
            keys.append(self.reduced_key(image_id))
        keys += [self.original_key(image_id), self.meta_key(image_id)]
        self._forget_meta(image_id)
        for key in keys:
            self.delete(key)
        return len(keys)

    def check(self) -> None:
        """Raise if the backend cannot be reached (used by the health check).

        On S3 a prefix holds no objects until the first upload, and S3 then says it does not
        exist: the bucket answering is what counts.
        """
        if self.local:
            self.fs.ls(self.root, detail=False)
            return
        try:
            self.fs.ls(self.root, detail=False, refresh=True)
        except FileNotFoundError:
            self.fs.ls(self.root.split("/", 1)[0], detail=False, refresh=True)


#: Seconds a presigned GET URL is valid; it is reused for half of that.
URL_LIFE = 600
URLS_KEPT = 10_000


class S3Reader:
    """S3 GETs for the hot path: botocore signs, urllib3 fetches; thread-safe, pooled connections.

    s3fs runs every call as a coroutine on one event-loop thread, which a threaded server's hits all
    queue behind (~4 ms of CPU per GET, measured); botocore's ``get_object`` still spends ~2 ms in
    its event hooks and response parsing. A presigned GET URL (botocore: addressing, credentials,
    signature) fetched with urllib3 costs ~0.7 ms. The client and pool are made on first use, in the
    process that uses them (connections do not survive a fork).
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
        self._pool: Any = None
        self._lock = threading.Lock()
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def _connect(self) -> tuple[Any, Any]:
        with self._lock:
            if self._client is None:
                import botocore.config
                import botocore.session
                import urllib3

                config = botocore.config.Config(signature_version="s3v4")
                self._client = botocore.session.get_session().create_client(
                    "s3", config=config, **{k: v for k, v in self.client_options.items() if v})
                self._pool = urllib3.PoolManager(maxsize=64, retries=urllib3.Retry(3, backoff_factor=0.1),
                                                 timeout=urllib3.Timeout(connect=5, read=60))
            return self._client, self._pool

    def url(self, key: str) -> str:
        """A presigned GET URL for ``key``, signed once and reused for half its life: a hot object's
        hits skip the signing (a third of their CPU)."""
        now = time.monotonic()
        with self._lock:
            found = self._urls.get(key)
            if found and found[1] > now:
                self._urls.move_to_end(key)
                return found[0]
        client, _ = self._connect()
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=URL_LIFE)
        with self._lock:
            self._urls[key] = (url, now + URL_LIFE / 2)
            if len(self._urls) > URLS_KEPT:
                self._urls.popitem(last=False)
        return url

    def open(self, key: str) -> tuple[BinaryIO, int]:
        _, pool = self._connect()
        reply = pool.request("GET", self.url(key), preload_content=False)
        if reply.status == 403:  # signed with credentials that have expired since: sign again
            reply.drain_conn()
            reply.release_conn()
            with self._lock:
                self._urls.pop(key, None)
            reply = pool.request("GET", self.url(key), preload_content=False)
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

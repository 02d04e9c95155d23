"""One store over fsspec: local files (the embedded default) or any S3-compatible service.

Keys (docs/architecture.md, "Storage keys")::

    originals/<id>                                the uploaded bytes, untouched
    reduced/<id>.jpg, reduced/<id>.small.jpg      an original's large and small reduced copies (reduced.py)
    meta/<id>.json                                what was learned at upload
    derived/<recipe>/<digest>/<id>.<ext>          rendered outputs
    recent/<countdown>-<id>                       an empty object per upload: the gallery's index
    index/<id>/<recipe>/<digest>.<ext>            (empty) the image's derivative index, one entry each

Keys are built only from validated parts, so nothing from a request reaches the backend unchecked.
Writes are whole-object: on S3 a PUT is atomic; on local files the bytes go to ``tmp/`` first and are
renamed into place, so a reader (or a crash) never leaves half an image under a real key.

The derivative index answers "which derivatives does this image have" with a listing of one image's
prefix, whose cost does not grow with the number of images (listing ``derived/*/*/<id>.*`` walks every
derivative of every image). One empty object per derivative rather than one JSON document per image:
processes that store derivatives of the same image at once never overwrite each other's entries, and
each entry is written *before* its derivative, so a derivative is never stored without its entry (a
failed write can leave an entry without its derivative; deleting it is harmless).

A backend that does not answer (S3 down, a full disk) raises :class:`StoreUnavailableError`, a passing
fault: the HTTP service answers 503 with ``Retry-After``, a queue job is retried. Reads are the hot
path of a CDN origin, so they skip fsspec: local files are opened directly (a stream a WSGI server
can ``sendfile``), and an S3 object is one GET of a presigned URL on a pooled urllib3 connection
(:class:`~pixline.engine.s3reader.S3Reader`), not a call through s3fs' single event loop. An image's
metadata never changes (the id is a hash of the bytes; only a delete removes it), so the hit path
reads it once per process.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator, Mapping

import fsspec

from . import localfiles
from .errors import NotFoundError, ParameterError, PixlineError, StoreUnavailableError, quote
from .recipe import check_name
from .s3reader import S3Reader
from .steps import EXTENSION_RE as EXT_RE

#: Key suffixes of an image's reduced copies (reduced.py): ``reduced/<id>.jpg``, ``reduced/<id>.small.jpg``.
REDUCED_SUFFIXES = REDUCED_LARGE, REDUCED_SMALL = "", ".small"

log = logging.getLogger(__name__)

# Matched with fullmatch: ``^…$`` would also take a trailing newline.
ID_RE = re.compile(r"[0-9a-f]{32}")
DIGEST_RE = re.compile(r"[0-9a-f]{8,64}")
#: ``recent/`` entries: 13 digits of countdown (below), a dash, the image id.
RECENT_RE = re.compile(r"[0-9]{13}-[0-9a-f]{32}")
#: An upload's time in milliseconds is written as this minus the time, so listing ``recent/`` in
#: key order (the only order S3 lists in) gives the newest upload first.
RECENT_COUNTDOWN_FROM = 10**13 - 1
#: Images whose metadata one process keeps (a few hundred bytes each).
META_CACHE_SIZE = 10_000


def check_id(image_id: str) -> str:
    """Return ``image_id`` if it is a well-formed image id (32 lower-case hex digits)."""
    if not isinstance(image_id, str) or not ID_RE.fullmatch(image_id):
        raise ParameterError(f"image id {quote(image_id)} is not valid: ids are 32 lower-case hex digits")
    return image_id


def check_recent_entry(entry: str | None) -> str | None:
    """``entry`` if it is None or a valid gallery cursor (an entry of ``recent/``), else ParameterError."""
    if entry is not None and not RECENT_RE.fullmatch(entry):
        raise ParameterError(f"gallery cursor {quote(entry, 80)} is not valid: pass back a 'next' value")
    return entry


def _precondition_failed(error: OSError) -> bool:
    """A conditional PUT refused because the key exists. s3fs makes that FileExistsError only when
    the answer names the ``If-None-Match`` condition (AWS does; SeaweedFS answers a bare 412)."""
    response = getattr(error.__cause__, "response", None) or {}
    return response.get("Error", {}).get("Code") == "PreconditionFailed"


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

    def _key(self, path: str) -> str:
        root = self.root + "/"
        return path[len(root):] if path.startswith(root) else path

    @contextmanager
    def _backend(self, what: str) -> Iterator[None]:
        """Backend failures other than a missing object become :class:`StoreUnavailableError`."""
        try:
            yield
        except (FileNotFoundError, PixlineError):
            raise
        except Exception as exc:  # botocore, aiohttp and OS errors alike: the backend is the problem
            raise StoreUnavailableError(f"store {self.url}: {what}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def original_key(image_id: str) -> str:
        return f"originals/{check_id(image_id)}"

    @staticmethod
    def reduced_key(image_id: str, suffix: str = REDUCED_LARGE) -> str:
        return f"reduced/{check_id(image_id)}{suffix}.jpg"

    @staticmethod
    def meta_key(image_id: str) -> str:
        return f"meta/{check_id(image_id)}.json"

    @staticmethod
    def derived_key(recipe: str, digest: str, image_id: str, extension: str) -> str:
        check_name(recipe)
        if not DIGEST_RE.fullmatch(digest) or not EXT_RE.fullmatch(extension):
            raise ParameterError(f"bad derivative key parts: digest {quote(digest)}, extension {quote(extension)}")
        return f"derived/{recipe}/{digest}/{check_id(image_id)}.{extension}"

    @staticmethod
    def recent_key(image_id: str, uploaded_at: str) -> str:
        """The gallery entry of an upload made at ``uploaded_at`` (ISO 8601, as in its meta)."""
        when = datetime.datetime.fromisoformat(uploaded_at)
        millis = round(when.timestamp() * 1000)
        return f"recent/{RECENT_COUNTDOWN_FROM - millis:013d}-{check_id(image_id)}"

    @staticmethod
    def index_key(derived_key: str) -> str:
        """The index entry of a derivative: ``derived/<r>/<d>/<id>.<ext>`` → ``index/<id>/<r>/<d>.<ext>``."""
        _, recipe, digest, name = derived_key.split("/")
        image_id, _, extension = name.partition(".")
        return f"index/{image_id}/{recipe}/{digest}.{extension}"

    @staticmethod
    def _derived_key_of_entry(entry: str) -> str:
        _, image_id, recipe, name = entry.split("/")
        digest, _, extension = name.partition(".")
        return f"derived/{recipe}/{digest}/{image_id}.{extension}"

    # -- bytes --------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, replace: bool = True) -> bool:
        """Write ``data`` under ``key`` as a whole object; True if written.

        ``replace=False`` keeps an object already there and returns False, atomically on both
        backends: on local files a hard link of the whole file, refused when the name exists; on S3
        a conditional PUT (``If-None-Match: *``, s3fs' ``mode="create"``; AWS S3 and SeaweedFS
        answer 412 when the key exists). A check before the write would race another writer.
        """
        with self._backend(f"writing {key}"):
            if not self.local:
                try:
                    self.fs.pipe_file(self._path(key), data, mode="overwrite" if replace else "create")
                except OSError as exc:
                    if isinstance(exc, FileExistsError) or _precondition_failed(exc):
                        return False
                    raise
                return True
            return localfiles.write_whole(self._path(key), data, self._path("tmp"), replace)

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
        with self._backend(f"reading {key}"):
            if self._reader is not None:
                return self._reader.open(key)
            try:
                stream = open(self._path(key), "rb")  # noqa: SIM115 (the caller closes it)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFoundError(f"no object at {key}") from None
        return stream, os.fstat(stream.fileno()).st_size

    def exists(self, key: str) -> bool:
        try:
            with self._backend(f"looking up {key}"):
                return bool(self.fs.exists(self._path(key)))
        except FileNotFoundError:
            return False

    def delete(self, key: str) -> None:
        try:
            with self._backend(f"deleting {key}"):
                self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def invalidate(self) -> None:
        """Forget cached listings (s3fs caches directory listings)."""
        self.fs.invalidate_cache()

    # -- originals and metadata ---------------------------------------------------------------
    def put_original(self, image_id: str, data: bytes | None, meta: dict[str, Any],
                     copies: Mapping[str, bytes] | None = None) -> None:
        """Store an original (``None``: it stays in its library, served in place), its reduced
        copies if any (by key suffix), and its metadata (after them: metadata marks the image
        complete), then, when the metadata has ``uploaded_at``, its entry in the gallery's index."""
        if data is not None:
            self.put(self.original_key(image_id), data)
        for suffix, copy in (copies or {}).items():
            self.put(self.reduced_key(image_id, suffix), copy)
        self.put(self.meta_key(image_id), json.dumps(meta, sort_keys=True).encode())
        self._forget_meta(image_id)
        if meta.get("uploaded_at"):
            self.put(self.recent_key(image_id, meta["uploaded_at"]), b"")

    def recent_entries(self, limit: int, after: str | None = None) -> list[str]:
        """Up to ``limit`` entries of ``recent/`` (``<countdown>-<id>``), newest upload first,
        starting after the entry ``after`` (the last one of the previous page).

        On S3 this is one ListObjectsV2 call with ``MaxKeys`` and ``StartAfter``: a page costs the
        same however many images there are. A local folder is listed whole (names only).
        """
        check_recent_entry(after)
        if self.local:
            try:
                names = sorted(p.rsplit("/", 1)[-1] for p in self.fs.ls(self._path("recent"), detail=False))
            except FileNotFoundError:
                return []
        else:
            bucket, _, root = self.root.partition("/")
            prefix = f"{root}/recent/" if root else "recent/"
            options = {"StartAfter": prefix + after} if after else {}
            listed = self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=limit,
                                     **options)
            names = [item["Key"][len(prefix):] for item in listed.get("Contents", [])]
        return [n for n in names if RECENT_RE.fullmatch(n) and (after is None or n > after)][:limit]

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
            with self._backend("listing meta/"):
                names = self.fs.ls(self._path("meta"), detail=False, refresh=True)
        except FileNotFoundError:
            return
        for name in sorted(names):
            stem = name.rsplit("/", 1)[-1].removesuffix(".json")
            if ID_RE.fullmatch(stem):
                yield stem

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder, ending in ``/``), fresh from the backend, sorted."""
        path = self._path(prefix)
        try:
            with self._backend(f"listing {prefix}"):
                self.fs.invalidate_cache(path.rstrip("/"))  # s3fs caches listings; another process writes
                found = self.fs.find(path)
        except FileNotFoundError:
            return []
        return sorted(self._key(p) for p in found)

    # -- derivatives and their index ------------------------------------------------------------
    def put_derived(self, key: str, data: bytes, replace: bool = True) -> bool:
        """Store a derivative under its ``derived/…`` key, its index entry first; True if written
        (``replace=False``: an object already there is kept, and this returns False)."""
        self.put(self.index_key(key), b"")
        return self.put(key, data, replace=replace)

    def derived_keys(self, image_id: str) -> list[str]:
        """Keys of every derivative of an image in its index, whatever recipe or digest made it.

        One listing of ``index/<id>/``: its cost depends on this image's derivatives only.
        """
        # s3fs can list the folder itself (``index/<id>``) among its objects: entries only.
        return [self._derived_key_of_entry(entry)
                for entry in self.list_keys(f"index/{check_id(image_id)}/") if entry.count("/") == 3]

    def delete_image(self, image_id: str) -> int:
        """Delete an original, its reduced copies, its metadata, every derivative and its index;
        returns how many objects went (index entries not counted).

        Its gallery entry goes first, so the gallery never lists an image half deleted; derivatives
        go before their index entries, so a DELETE interrupted half-way and tried again still finds
        what is left.
        """
        try:
            uploaded_at = self.get_meta(image_id).get("uploaded_at")
        except NotFoundError:
            uploaded_at = None
        self._forget_meta(image_id)
        recent = [self.recent_key(image_id, uploaded_at)] if uploaded_at else []
        for key in recent:
            self.delete(key)
        derived = self.derived_keys(image_id)
        for key in derived:
            self.delete(key)
        for key in derived:
            self.delete(self.index_key(key))
        if self.local:  # empty folders stay behind on files
            try:
                self.fs.rm(self._path(f"index/{image_id}"), recursive=True)
            except FileNotFoundError:
                pass
        reduced = [k for k in (self.reduced_key(image_id, s) for s in REDUCED_SUFFIXES) if self.exists(k)]
        for key in (*reduced, self.original_key(image_id), self.meta_key(image_id)):
            self.delete(key)
        self._forget_meta(image_id)
        return len(recent) + len(derived) + len(reduced) + 2

    def check(self) -> None:
        """Raise if the backend cannot be reached (used by the health check).

        On S3 a prefix holds no objects until the first upload, and S3 then says it does not
        exist: the bucket answering is what counts.
        """
        with self._backend("checking the store"):
            if self.local:
                self.fs.ls(self.root, detail=False)
                return
            try:
                self.fs.ls(self.root, detail=False, refresh=True)
            except FileNotFoundError:
                self.fs.ls(self.root.split("/", 1)[0], detail=False, refresh=True)

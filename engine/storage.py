"""One store over fsspec: local files (the embedded default) or any S3-compatible service.

Keys (docs/architecture.md, "Storage keys")::

    originals/<id>                                the uploaded bytes, untouched
    reduced/<id>.jpg, reduced/<id>.small.jpg      an original's large and small reduced copies (reduced.py)
    meta/<id>.json                                what was learned at upload
    failures/<id>.json                            recipes the queue gave up on (presets.py)
    derived/<recipe>/<digest>/<id>.<ext>          rendered outputs
    recent/<countdown>-<id>                       an empty object per upload: the gallery's index
    index/<id>/<recipe>/<digest>.<ext>            (empty) the image's derivative index, one entry each

Keys are built only from validated parts. Writes are whole-object: an S3 PUT is atomic; local files go
to ``tmp/`` first and are renamed into place: a reader (or a crash) never sees half an object.

The derivative index answers "which derivatives does this image have" with a listing of one image's
prefix, whose cost does not grow with the number of images (listing ``derived/*/*/<id>.*`` walks every
derivative of every image). One empty object per derivative rather than one JSON document per image:
processes that store derivatives of the same image at once never overwrite each other's entries, and
each entry is written *before* its derivative, so a derivative is never stored without its entry (a
failed write can leave an entry without its derivative; deleting it is harmless).

A backend that does not answer (S3 down, a full disk) raises :class:`StoreUnavailableError`: 503 with
``Retry-After``, a queue job retried. Reads, the CDN origin's hot path, skip fsspec: local files are
opened directly (a stream to ``sendfile``), an S3 object is one GET of a presigned URL on a pooled
urllib3 connection (s3reader.py). What an image's metadata says never changes (only a delete removes
it; analysis.py adds to it), so the hit path reads it once per process, again after ``meta_cache_ttl``
seconds (metacache.py): a delete through another process is noticed within that time.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator, Mapping

import fsspec

from . import localfiles
from .errors import NotFoundError, ParameterError, PixlineError, StoreUnavailableError, quote
from .metacache import META_CACHE_TTL, MetaCache
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

    ``options`` go to the fsspec filesystem (for s3fs: ``endpoint_url``, ``key``, ``secret``…);
    ``meta_cache_ttl``: seconds this process trusts metadata it has read (:class:`MetaCache`).
    """

    def __init__(self, url: str = "file://./data", meta_cache_ttl: float = META_CACHE_TTL,
                 **options: Any) -> None:
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
        self._meta = MetaCache(meta_cache_ttl)

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
    def failures_key(image_id: str) -> str:
        return f"failures/{check_id(image_id)}.json"  # the queue's failed recipes (presets.py)

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

        :class:`NotFoundError` if there is none. A local file is the file opened unbuffered (fewer system
        calls, each a GIL hand-off: on_demand.read_exactly); an S3 object is one GET's body, as it comes.
        """
        with self._backend(f"reading {key}"):
            if self._reader is not None:
                return self._reader.open(key)
            try:
                stream = open(self._path(key), "rb", buffering=0)  # noqa: SIM115 (the caller closes it)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFoundError(f"no object at {key}") from None
        return stream, os.fstat(stream.fileno()).st_size

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored now: asked of the backend, never of s3fs' cached listings."""
        try:
            with self._backend(f"looking up {key}"):
                self.fs.invalidate_cache(self._path(key))  # another process may have written or deleted it
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
        """Store an original (``None``: served in place), its reduced copies (by key suffix), its meta
        (after them: meta marks the image complete), then, given ``uploaded_at``, its gallery entry."""
        if data is not None:
            self.put(self.original_key(image_id), data)
        for suffix, copy in (copies or {}).items():
            self.put(self.reduced_key(image_id, suffix), copy)
        self.put_meta(image_id, meta)
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

    def put_meta(self, image_id: str, meta: dict[str, Any]) -> None:
        """Write an image's metadata whole (at upload; then only by engine/analysis.py), uncached."""
        self.put(self.meta_key(image_id), json.dumps(meta, sort_keys=True).encode())
        self.forget_meta(image_id)

    def get_original(self, image_id: str) -> bytes:
        try:
            return self.get(self.original_key(image_id))
        except NotFoundError:
            raise NotFoundError(f"image {image_id} not found") from None

    def get_meta(self, image_id: str, cached: bool = False) -> dict[str, Any]:
        """An image's metadata; :class:`NotFoundError` for an unknown image.

        ``cached``: from this process's memory when it was read less than ``meta_cache_ttl``
        seconds ago (the render and hit paths; the dict is shared, do not change it). A delete
        through another process is noticed when that time is up, or sooner where a path finds the
        original or a derivative gone (it calls :meth:`forget_meta`).
        """
        meta = self._meta.get(image_id) if cached else None
        if meta is not None:
            return meta
        try:
            meta = json.loads(self.get(self.meta_key(image_id)))
        except NotFoundError:
            self._meta.forget(image_id)
            raise NotFoundError(f"image {image_id} not found") from None
        self._meta.put(image_id, meta)
        return meta

    def forget_meta(self, image_id: str) -> None:
        """Read ``image_id``'s metadata from the store next time (it was found deleted)."""
        self._meta.forget(image_id)

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
    def put_derived(self, key: str, data: bytes, replace: bool = True, entry: bytes = b"") -> bool:
        """Store a derivative under its ``derived/…`` key, its index entry (``entry``: what it says of
        it) first; True if written (``replace=False``: an object already there is kept: False)."""
        self.put(self.index_key(key), entry)
        return self.put(key, data, replace=replace)

    def derived_keys(self, image_id: str) -> list[str]:
        """Keys of every derivative of an image in its index, whatever recipe or digest made it.

        One listing of ``index/<id>/``: its cost depends on this image's derivatives only.
        """
        # s3fs can list the folder itself (``index/<id>``) among its objects: entries only.
        return [self._derived_key_of_entry(entry)
                for entry in self.list_keys(f"index/{check_id(image_id)}/") if entry.count("/") == 3]

    def remove_derived(self, key: str) -> None:
        """Remove a derivative, then its index entry (a removal cut short is found again by a DELETE)."""
        self.delete(key)
        self.delete(self.index_key(key))
        if self.local:  # empty folders stay behind on files
            localfiles.remove_empty_folders(self._path(self.index_key(key)), self._path("index"))

    def delete_image(self, image_id: str) -> int:
        """Delete an image and everything made of it; how many of its objects were there (0: none).

        docs/architecture.md, "A delete": the gallery entry and metadata first (then the image does not
        exist, and a render that stores after that removes what it stored), then the index, uncached,
        each derivative with its entry, the reduced copies, the original; the next delete finishes one
        cut short."""
        try:
            uploaded_at = self.get_meta(image_id).get("uploaded_at")
        except NotFoundError:
            uploaded_at = None
        recent = self.recent_key(image_id, uploaded_at) if uploaded_at else None
        first = [key for key in (recent, self.meta_key(image_id)) if key and self.exists(key)]
        for key in first:
            self.delete(key)
        self.forget_meta(image_id)
        derived = self.derived_keys(image_id)
        for key in derived:
            self.remove_derived(key)
        if self.local and not derived:  # empty folders another removal left behind
            localfiles.remove_empty_folders(self._path(f"index/{image_id}/-"), self._path("index"))
        copies = [self.reduced_key(image_id, s) for s in REDUCED_SUFFIXES] + [
            self.failures_key(image_id), self.original_key(image_id)]
        last = [key for key in copies if self.exists(key)]
        for key in last:
            self.delete(key)
        return len(first) + len(derived) + len(last)

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

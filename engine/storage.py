"""One store over fsspec: local files (the embedded default) or any S3-compatible service.

Keys (docs/architecture.md, "Storage keys")::

    originals/<id>                                the uploaded bytes, untouched
    meta/<id>.json                                what was learned at upload
    derived/<recipe>/<digest>/<id>.<ext>          rendered outputs
    recent/<countdown>-<id>                       an empty object per upload: the gallery's index

Keys are built only from validated parts, so nothing from a request reaches the backend unchecked.
Writes are whole-object: on S3 a PUT is atomic; on local files the bytes go to ``tmp/`` first and are
renamed into place, so a reader (or a crash) never leaves half an image under a real key.
"""
from __future__ import annotations

import datetime
import json
import logging
import re
import uuid
from typing import Any, Iterator

import fsspec

from .errors import NotFoundError, ParameterError
from .recipe import check_name
from .steps import EXTENSION_RE as EXT_RE

log = logging.getLogger(__name__)

ID_RE = re.compile(r"^[0-9a-f]{32}$")
DIGEST_RE = re.compile(r"^[0-9a-f]{8,64}$")
#: ``recent/`` entries: 13 digits of countdown (below), a dash, the image id.
RECENT_RE = re.compile(r"^[0-9]{13}-[0-9a-f]{32}$")
#: An upload's time in milliseconds is written as this minus the time, so listing ``recent/`` in
#: key order (the only order S3 lists in) gives the newest upload first.
RECENT_COUNTDOWN_FROM = 10**13 - 1


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
            import os

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

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- keys ---------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    @staticmethod
    def original_key(image_id: str) -> str:
        return f"originals/{check_id(image_id)}"

    @staticmethod
    def meta_key(image_id: str) -> str:
        return f"meta/{check_id(image_id)}.json"

    @staticmethod
    def derived_key(recipe: str, digest: str, image_id: str, extension: str) -> str:
        check_name(recipe)
        if not DIGEST_RE.match(digest) or not EXT_RE.match(extension):
            raise ParameterError(f"bad derivative key parts: digest {digest!r}, extension {extension!r}")
        return f"derived/{recipe}/{digest}/{check_id(image_id)}.{extension}"

    @staticmethod
    def recent_key(image_id: str, uploaded_at: str) -> str:
        """The gallery entry of an upload made at ``uploaded_at`` (ISO 8601, as in its meta)."""
        when = datetime.datetime.fromisoformat(uploaded_at)
        millis = round(when.timestamp() * 1000)
        return f"recent/{RECENT_COUNTDOWN_FROM - millis:013d}-{check_id(image_id)}"

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
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise NotFoundError(f"no object at {key}") from None

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
    def put_original(self, image_id: str, data: bytes, meta: dict[str, Any]) -> None:
        """Store an original and its metadata (the original first: metadata marks it complete),
        then, when the metadata has ``uploaded_at``, its entry in the gallery's index."""
        self.put(self.original_key(image_id), data)
        self.put(self.meta_key(image_id), json.dumps(meta, sort_keys=True).encode())
        if meta.get("uploaded_at"):
            self.put(self.recent_key(image_id, meta["uploaded_at"]), b"")

    def recent_entries(self, limit: int, after: str | None = None) -> list[str]:
        """Up to ``limit`` entries of ``recent/`` (``<countdown>-<id>``), newest upload first,
        starting after the entry ``after`` (the last one of the previous page).

        On S3 this is one ListObjectsV2 call with ``MaxKeys`` and ``StartAfter``: a page costs the
        same however many images there are. A local folder is listed whole (names only).
        """
        if after is not None and not RECENT_RE.match(after):
            raise ParameterError(f"gallery cursor {after[:80]!r} is not valid: pass back a 'next' value")
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
        return [n for n in names if RECENT_RE.match(n) and (after is None or n > after)][:limit]

    def get_original(self, image_id: str) -> bytes:
        try:
            return self.get(self.original_key(image_id))
        except NotFoundError:
            raise NotFoundError(f"image {image_id} not found") from None

    def get_meta(self, image_id: str) -> dict[str, Any]:
        try:
            return json.loads(self.get(self.meta_key(image_id)))
        except NotFoundError:
            raise NotFoundError(f"image {image_id} not found") from None

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
        """Delete an original, its metadata and every derivative; returns how many objects went.

        Its gallery entry goes first, so the gallery never lists an image half deleted.
        """
        try:
            uploaded_at = self.get_meta(image_id).get("uploaded_at")
        except NotFoundError:
            uploaded_at = None
        recent = [self.recent_key(image_id, uploaded_at)] if uploaded_at else []
        keys = recent + self.derived_keys(image_id) + [self.original_key(image_id), self.meta_key(image_id)]
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

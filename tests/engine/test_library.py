"""A site's library of originals, read in place (engine/library.py): keys held to their character
set, a folder and an S3 prefix (a real SeaweedFS) listed in key order a page at a time and resumed
past a key, reads within a byte limit, and nothing outside the library reachable."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pixline.engine import library
from pixline.engine.errors import ImageTooLargeError, NotFoundError, ParameterError
from pixline.engine.library import (LocalLibrary, S3Library, Version, check_source_key, open_library,
                                    source_id)

KEYS = ["a-b.jpg", "a/x.jpg", "a/y/z.png", "b.jpg", "photos/2024/IMG_0001.JPG", "photos/2024/IMG_0002.JPG"]


@pytest.mark.parametrize("key", ["a.jpg", "photos/2024/IMG_0001.JPG", "a~b+c=d,e@f-g_h.webp",
                                 "x" * 1000])
def test_a_valid_key_passes(key: str) -> None:
    assert check_source_key(key) == key


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../secret.jpg", "a/../../b.jpg", "a/./b.jpg", "a//b.jpg",
                                 "a/", "a\\..\\b.jpg", "a b.jpg", "a%2e%2e/b.jpg", "a?b.jpg", "a#b", "a\nb",
                                 "a\x00b", "ph\u00f6to.jpg", "x" * 1025, "C:/x.jpg", "a/.."])
def test_a_bad_key_is_refused_with_a_reason(key: str) -> None:
    with pytest.raises(ParameterError, match="source key"):
        check_source_key(key)


def _folder(root: Path) -> Path:
    for key in KEYS:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.encode())
    return root


def test_a_folder_lists_in_key_order_and_resumes_past_a_key(tmp_path: Path) -> None:
    lib = LocalLibrary(str(_folder(tmp_path / "lib")))
    assert [e.key for e in lib.entries()] == sorted(KEYS)
    assert [e.key for e in lib.entries(after="a/x.jpg")] == sorted(KEYS)[2:]
    assert [e.key for e in lib.entries(after="a/y/z.png")] == sorted(KEYS)[3:]
    assert all(e.version.size == len(e.key) for e in lib.entries())


def test_a_folder_reads_and_stats_within_its_limits(tmp_path: Path) -> None:
    lib = open_library(f"file://{_folder(tmp_path / 'lib')}")
    data, version = lib.read("a/x.jpg", 100)
    assert data == b"a/x.jpg" and version == lib.stat("a/x.jpg")
    with pytest.raises(ImageTooLargeError):
        lib.read("photos/2024/IMG_0001.JPG", 10)
    for missing in ("nope.jpg", "a", "a/y"):
        with pytest.raises(NotFoundError):
            lib.read(missing, 100)
        with pytest.raises(NotFoundError):
            lib.stat(missing)
    before = lib.stat("b.jpg")
    os.utime(tmp_path / "lib" / "b.jpg", ns=(1, 1))
    assert lib.stat("b.jpg") != before, "a changed file has a new version"


def test_a_link_out_of_the_folder_or_a_fifo_reaches_nothing(tmp_path: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    lib_dir = _folder(tmp_path / "lib")
    (lib_dir / "escape.jpg").symlink_to(tmp_path / "secret.jpg")
    (lib_dir / "dir").symlink_to(tmp_path)
    os.mkfifo(lib_dir / "pipe.jpg")
    lib = LocalLibrary(str(lib_dir))
    for key in ("escape.jpg", "dir/secret.jpg", "pipe.jpg"):
        with pytest.raises(NotFoundError):
            lib.read(key, 100)
    assert "pipe.jpg" not in [e.key for e in lib.entries()]


def test_a_source_id_names_one_version_of_one_key() -> None:
    one = source_id("a.jpg", Version("e1", 10))
    assert len(one) == 32 and int(one, 16) >= 0
    assert one == source_id("a.jpg", Version("e1", 10))
    assert len({one, source_id("a.jpg", Version("e2", 10)), source_id("a.jpg", Version("e1", 11)),
                source_id("b.jpg", Version("e1", 10))}) == 4


@pytest.mark.s3
def test_an_s3_prefix_lists_a_page_at_a_time_and_reads(s3_settings: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_settings["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_settings["secret"])
    fs = s3fs.S3FileSystem(key=s3_settings["key"], secret=s3_settings["secret"],
                           client_kwargs={"endpoint_url": s3_settings["endpoint_url"]})
    prefix = f"{s3_settings['bucket']}/lib-{uuid.uuid4().hex[:8]}"
    keys = sorted(f"k{n:03d}.jpg" for n in range(25)) + ["sub/one.jpg"]
    for key in keys:
        fs.pipe_file(f"{prefix}/{key}", key.encode())
    fs.pipe_file(f"{prefix}-other/k000.jpg", b"not in the library")  # a neighbouring prefix
    monkeypatch.setattr(library, "LIST_PAGE", 10)
    lib = open_library(f"s3://{prefix}/", s3_endpoint=s3_settings["endpoint_url"])
    assert isinstance(lib, S3Library)
    pages: list[int] = []
    real = lib.client.list_objects_v2
    monkeypatch.setattr(lib.client, "list_objects_v2", lambda **kw: pages.append(kw["MaxKeys"]) or real(**kw))
    assert [e.key for e in lib.entries()] == keys
    assert pages == [10, 10, 10], "three pages of ten, not one listing of everything"
    assert [e.key for e in lib.entries(after="k020.jpg")] == keys[21:]
    data, version = lib.read("sub/one.jpg", 100)
    assert data == b"sub/one.jpg" and version == lib.stat("sub/one.jpg") and version.size == 11
    with pytest.raises(ImageTooLargeError):
        lib.read("sub/one.jpg", 5)
    with pytest.raises(NotFoundError):
        lib.read("missing.jpg", 100)
    with pytest.raises(NotFoundError):
        lib.stat("missing.jpg")
    with pytest.raises(ParameterError):
        lib.read("../lib-other/k000.jpg", 100)

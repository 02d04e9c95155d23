"""The one Store, on local files and on a real S3 server (SeaweedFS): keys, whole-object writes, deletes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pixline.engine.errors import NotFoundError, ParameterError, RecipeError
from pixline.engine.storage import REDUCED_LARGE, REDUCED_SMALL, Store
from pixline.server.commands.wiring import make_store
from pixline.server.settings import Settings

IMAGE_ID = "0123456789abcdef0123456789abcdef"
OTHER_ID = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def store(store_settings: dict[str, Any]) -> Store:
    return make_store(Settings(**store_settings))


def test_original_and_meta_round_trip(store: Store) -> None:
    store.put_original(IMAGE_ID, b"original bytes", {"format": "jpeg", "fields": {"owner": "ana"}})
    assert store.get_original(IMAGE_ID) == b"original bytes"
    assert store.get_meta(IMAGE_ID) == {"format": "jpeg", "fields": {"owner": "ana"}}
    assert store.has_image(IMAGE_ID)
    assert not store.has_image(OTHER_ID)


def test_missing_objects_are_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get_original(OTHER_ID)
    with pytest.raises(NotFoundError):
        store.get_meta(OTHER_ID)
    with pytest.raises(NotFoundError):
        store.get(Store.derived_key("thumb", "abcdef0123456789", OTHER_ID, "jpg"))


def test_overwrite_is_whole_object(store: Store) -> None:
    key = Store.derived_key("thumb", "abcdef0123456789", IMAGE_ID, "jpg")
    store.put(key, b"first version, longer than the second")
    store.put(key, b"second")
    assert store.get(key) == b"second"


def test_a_write_that_must_not_replace_keeps_the_first_object(store: Store) -> None:
    # On both backends: an immutable (pinned) URL names the first bytes stored under its key.
    key = Store.derived_key("thumb", "abcdef0123456789", IMAGE_ID, "jpg")
    assert store.put_derived(key, b"the first render", replace=False) is True
    assert store.put_derived(key, b"a second, other render", replace=False) is False
    assert store.get(key) == b"the first render"
    assert store.derived_keys(IMAGE_ID) == [key]
    assert store.put_derived(key, b"forced", replace=True) is True
    assert store.get(key) == b"forced"


def test_first_writer_wins_among_threads(store: Store, tmp_path: Path) -> None:
    """The keep-the-first write is atomic (a hard link; a conditional PUT on S3): of many writers at
    once, exactly one writes."""
    from concurrent.futures import ThreadPoolExecutor

    key = Store.derived_key("thumb", "abcdef0123456789", IMAGE_ID, "jpg")
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda n: store.put(key, b"render %d" % n, replace=False), range(32)))
    assert written.count(True) == 1
    assert store.get(key) == b"render %d" % written.index(True)
    if store.local:
        assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_delete_image_removes_everything_of_it_and_nothing_else(store: Store) -> None:
    for image_id in (IMAGE_ID, OTHER_ID):
        store.put_original(image_id, b"x", {"format": "png"},
                           copies={REDUCED_LARGE: b"smaller x", REDUCED_SMALL: b"smallest x"})
        store.put_derived(Store.derived_key("thumb", "abcdef0123456789", image_id, "jpg"), b"t")
        store.put_derived(Store.derived_key("feed", "0123456789abcdef", image_id, "webp"), b"f")
        store.put_derived(Store.derived_key("adhoc", "1111111111111111", image_id, "png"), b"a")
    assert len(store.derived_keys(IMAGE_ID)) == 3
    assert store.get(Store.reduced_key(IMAGE_ID)) == b"smaller x"
    assert store.get(Store.reduced_key(IMAGE_ID, REDUCED_SMALL)) == b"smallest x"
    assert store.delete_image(IMAGE_ID) == 7
    store.invalidate()
    assert not store.has_image(IMAGE_ID)
    assert not store.exists(Store.reduced_key(IMAGE_ID))
    assert not store.exists(Store.reduced_key(IMAGE_ID, REDUCED_SMALL))
    assert store.exists(Store.reduced_key(OTHER_ID)) and store.exists(Store.reduced_key(OTHER_ID, REDUCED_SMALL))
    assert store.derived_keys(IMAGE_ID) == []
    assert store.has_image(OTHER_ID)
    assert len(store.derived_keys(OTHER_ID)) == 3


def test_check_answers_for_a_reachable_store_even_before_the_first_object(store: Store) -> None:
    store.check()  # an S3 prefix with no objects yet is healthy
    store.put_original(IMAGE_ID, b"x", {})
    store.check()


@pytest.mark.s3
def test_check_fails_for_a_missing_bucket(s3_settings: dict[str, str], s3_store_url: str) -> None:
    store = make_store(Settings(store="s3://no-such-bucket-pixline/x", s3_endpoint=s3_settings["endpoint_url"]))
    with pytest.raises(FileNotFoundError):
        store.check()


@pytest.mark.parametrize("image_id", [
    "../../etc/passwd", "0123456789abcdef0123456789abcde/", "0123456789abcdef0123456789abcdef\x00",
    "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdef0", "", "a" * 4096,
    "..%2F..%2Fetc", "0123456789abcdef0123456789abcdef\n",
])
def test_keys_refuse_bad_ids(image_id: str) -> None:
    with pytest.raises(ParameterError):
        Store.original_key(image_id)
    with pytest.raises(ParameterError):
        Store.meta_key(image_id)


@pytest.mark.parametrize("recipe", ["..", "../x", "a/b", "a%2Fb", "x\x00", "UPPER", "a" * 65, "",
                                    "thumb\n"])
def test_keys_refuse_bad_recipe_names(recipe: str) -> None:
    with pytest.raises(RecipeError):
        Store.derived_key(recipe, "abcdef0123456789", IMAGE_ID, "jpg")


@pytest.mark.parametrize("digest,ext", [("../x", "jpg"), ("abcdef0123456789", "j/g"), ("abc", "jpg"),
                                        ("abcdef0123456789\n", "jpg"), ("abcdef0123456789", "jpg\n")])
def test_keys_refuse_bad_digests_and_extensions(digest: str, ext: str) -> None:
    with pytest.raises(ParameterError):
        Store.derived_key("thumb", digest, IMAGE_ID, ext)


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = Store(f"file://{tmp_path}")
    store.put_original(IMAGE_ID, b"x" * 1000, {})
    store.put(Store.derived_key("thumb", "abcdef0123456789", IMAGE_ID, "jpg"), b"y")
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (tmp_path / "originals" / IMAGE_ID).read_bytes() == b"x" * 1000


@pytest.mark.s3
def test_s3_store_url_selects_s3fs(s3_settings: dict[str, str], s3_store_url: str) -> None:
    store = make_store(Settings(store=s3_store_url, s3_endpoint=s3_settings["endpoint_url"]))
    assert not store.local
    store.put_original(IMAGE_ID, b"bytes", {"format": "gif"})
    # The object is really in the bucket, under the prefix of the URL.
    import s3fs

    fs = s3fs.S3FileSystem(key=s3_settings["key"], secret=s3_settings["secret"],
                           client_kwargs={"endpoint_url": s3_settings["endpoint_url"]})
    assert fs.cat_file(f"{s3_store_url[len('s3://'):]}/originals/{IMAGE_ID}") == b"bytes"


@pytest.mark.parametrize("url, message", [
    ("ftp://example/x", "use file://DIR or s3://BUCKET/PREFIX"),
    ("s3:///", "name a bucket"),
    ("s3://", "name a bucket"),
])
def test_a_store_url_we_do_not_take_is_a_clear_error(url, message):
    from pixline.engine.errors import ParameterError
    from pixline.engine.storage import Store

    with pytest.raises(ParameterError, match=message):
        Store(url)


def test_open_streams_an_object_with_its_size(store: Store) -> None:
    key = Store.derived_key("thumb", "abcdef0123456789", IMAGE_ID, "jpg")
    store.put(key, b"x" * 100_000)
    stream, size = store.open(key)
    with stream:
        assert size == 100_000
        assert stream.read(10) == b"x" * 10  # read as it arrives, not all at once
        assert len(stream.read()) == 99_990
    with pytest.raises(NotFoundError):
        store.open(Store.derived_key("thumb", "abcdef0123456789", OTHER_ID, "jpg"))


def test_cached_metadata_is_read_once_and_forgotten_on_delete_and_upload(store: Store) -> None:
    store.put_original(IMAGE_ID, b"original", {"format": "jpeg", "fields": {"owner": "ana"}})
    first = store.get_meta(IMAGE_ID, cached=True)
    # Overwritten behind the store's back: the cached copy answers, an uncached read does not.
    store.put(Store.meta_key(IMAGE_ID), b'{"format": "png"}')
    assert store.get_meta(IMAGE_ID, cached=True) is first
    assert store.get_meta(IMAGE_ID) == {"format": "png"}
    store.delete_image(IMAGE_ID)
    with pytest.raises(NotFoundError):
        store.get_meta(IMAGE_ID, cached=True)
    store.put_original(IMAGE_ID, b"again", {"format": "webp"})
    assert store.get_meta(IMAGE_ID, cached=True) == {"format": "webp"}


def test_cached_metadata_is_trusted_for_meta_cache_ttl_only(store_settings: dict[str, Any]) -> None:
    """--meta-cache-ttl: a process reads an image's metadata again once its copy is that old; 0
    keeps none. (How an image deleted elsewhere stops being served: tests/server/test_delete_race.py.)"""
    import time

    ttl = 0.3
    store = make_store(Settings(**store_settings, meta_cache_ttl=ttl))
    uncached = make_store(Settings(**store_settings, meta_cache_ttl=0))
    store.put_original(IMAGE_ID, b"original", {"format": "jpeg"})
    first = store.get_meta(IMAGE_ID, cached=True)
    assert uncached.get_meta(IMAGE_ID, cached=True) == first
    store.put(Store.meta_key(IMAGE_ID), b'{"format": "png"}')  # behind both stores' backs
    assert uncached.get_meta(IMAGE_ID, cached=True) == {"format": "png"}
    time.sleep(ttl)  # the bound itself: after it the copy is not trusted
    assert store.get_meta(IMAGE_ID, cached=True) == {"format": "png"}


def test_s3_reads_sign_a_key_once_and_reuse_the_url(store: Store) -> None:
    if store.local:
        pytest.skip("S3 only")
    key = Store.derived_key("thumb", "abcdef0123456789", IMAGE_ID, "jpg")
    store.put(key, b"abc")
    url = store._reader.url(key)
    assert store._reader.url(key) == url
    assert store._reader.url(Store.derived_key("thumb", "abcdef0123456789", OTHER_ID, "jpg")) != url
    assert store.get(key) == b"abc" and store.get(key) == b"abc"


def test_s3_reads_sign_again_when_a_kept_url_is_refused(store: Store) -> None:
    # A URL signed with credentials that have expired since answers 403: the read signs afresh.
    if store.local:
        pytest.skip("S3 only")
    import re
    import time

    key = Store.derived_key("thumb", "abcdef0123456789", IMAGE_ID, "jpg")
    store.put(key, b"abc")
    pool, target = store._reader.url(key)
    forged = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "0" * 64, target)
    assert forged != target
    store._reader._urls[key] = (pool, forged, time.monotonic() + 300)
    assert store.get(key) == b"abc"
    assert store._reader.url(key)[1] != forged

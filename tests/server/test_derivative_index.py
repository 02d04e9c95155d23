"""GET and DELETE /images/{id} read the image's derivative index: their store cost (backend requests,
keys listed) is the same with 3 images as with 40. Counted at the backend: S3 requests through
botocore's event hooks, directory entries read on local files."""
from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest

from pixline.engine.storage import Store

from .conftest import Service


class BackendCounter:
    """Requests made and keys listed by a store's backend while :meth:`counting` is active."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.requests: Counter[str] = Counter()
        self.listed = 0
        self.active = False
        if store.local:
            real = os.scandir

            def scandir(path: Any = ".") -> Any:
                entries = list(real(path))
                if self.active:
                    self.requests["scandir"] += 1
                    self.listed += len(entries)
                return _Entries(entries)

            monkeypatch.setattr(os, "scandir", scandir)
        else:
            from fsspec.asyn import sync

            client = sync(store.fs.loop, store.fs.set_session)
            client.meta.events.register("after-call.s3", self._after_s3_call)

    def _after_s3_call(self, http_response: Any, parsed: dict, model: Any, **kwargs: Any) -> None:
        if self.active:
            self.requests[model.name] += 1
            self.listed += len(parsed.get("Contents", [])) + len(parsed.get("CommonPrefixes", []))

    @contextmanager
    def counting(self) -> Iterator["BackendCounter"]:
        self.requests, self.listed, self.active = Counter(), 0, True
        try:
            yield self
        finally:
            self.active = False

    def cost(self) -> tuple[int, int]:
        return sum(self.requests.values()), self.listed


class _Entries(list):
    """os.scandir's result is a context manager too."""

    def __enter__(self) -> "_Entries":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def add_images(service: Service, count: int, tag: str) -> list[str]:
    """``count`` images with meta, an original and two derivatives each (tiny bytes: the cost of
    listing is what is measured, not rendering)."""
    meta = {"format": "jpeg", "width": 320, "height": 240, "bytes": 4, "has_alpha": False}
    ids = []
    recipes = service.derivatives.recipes
    for n in range(count):
        image_id = f"{tag}{n:0{32 - len(tag)}x}"
        service.store.put_original(image_id, b"orig", {**meta, "id": image_id})
        for name in ("thumb", "large"):
            service.store.put_derived(Store.derived_key(name, recipes[name].digest, image_id, "jpg"), b"d")
        ids.append(image_id)
    return ids


def cost_of(counter: BackendCounter, request: Callable[[], Any]) -> tuple[int, int]:
    with counter.counting():
        result = request()
    assert result.status_code in (200, 204), result.text
    return counter.cost()


def test_image_info_and_delete_cost_the_same_with_many_images(
        make_service: Callable[..., Service], store_settings: dict[str, Any], small_jpeg: bytes,
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = make_service(**store_settings)
    counter = BackendCounter(service.store, monkeypatch)
    first, second = add_images(service, 2, "a")
    client = service.client

    info_few = cost_of(counter, lambda: client.simulate_get(f"/images/{first}"))
    delete_few = cost_of(counter, lambda: client.simulate_delete(f"/images/{first}"))
    with counter.counting():
        service.store.list_keys("derived/")  # the walk the index replaces
    walk_few = counter.cost()

    add_images(service, 40, "b")
    info_many = cost_of(counter, lambda: client.simulate_get(f"/images/{second}"))
    assert client.simulate_get(f"/images/{second}").json["derivatives"]["thumb"]["stored"]
    delete_many = cost_of(counter, lambda: client.simulate_delete(f"/images/{second}"))
    with counter.counting():
        service.store.list_keys("derived/")
    walk_many = counter.cost()

    assert info_many == info_few, (info_few, info_many, counter.requests)
    assert delete_many == delete_few, (delete_few, delete_many)
    assert info_few[1] <= 8  # the image's index entries (and, on files, its folders)
    # The counter does see a listing grow: walking derived/ reads every image's derivatives.
    assert walk_many[1] >= walk_few[1] + 40, (walk_few, walk_many)
    assert not service.store.has_image(second) and service.store.derived_keys(second) == []


def test_every_stored_derivative_is_in_the_index_and_delete_removes_it(service: Service,
                                                                      small_jpeg: bytes) -> None:
    from pixline.server.http.signing import sign_path

    image_id = service.upload(small_jpeg)
    for url in (f"/r/thumb/{image_id}", f"/r/feed/{image_id}", sign_path(f"resize:w=40/{image_id}", "test-key")):
        assert service.client.simulate_get(url, headers={"Accept": "image/webp"}).status_code == 200, url
    assert service.root is not None
    on_disk = sorted(str(p.relative_to(service.root)) for p in (service.root / "derived").rglob("*")
                     if p.is_file())
    assert service.store.derived_keys(image_id) == on_disk == service.store.list_keys("derived/")
    assert len(on_disk) == 3
    assert service.client.simulate_delete(f"/images/{image_id}").status_code == 204
    left = [p for p in service.root.rglob("*") if p.is_file() and image_id in str(p)]
    assert left == []


def test_two_processes_adding_entries_at_once_lose_none(tmp_path) -> None:
    """Entries are one object each: writers never read-modify-write a shared document."""
    import threading

    stores = [Store(f"file://{tmp_path}") for _ in range(2)]
    image_id = "e" * 32
    keys = [Store.derived_key("r", f"{n:016x}", image_id, "jpg") for n in range(40)]
    threads = [threading.Thread(target=lambda s=s, part=keys[i::2]: [s.put_derived(k, b"x") for k in part])
               for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stores[0].derived_keys(image_id) == sorted(keys)
    # Only what was there counts: 40 derivatives, no original or meta were stored.
    assert stores[0].delete_image(image_id) == 40


def test_reindex_indexes_derivatives_stored_before_the_index_so_delete_finds_them(tmp_path) -> None:
    import subprocess
    import sys

    store = Store(f"file://{tmp_path}")
    image_id = "f" * 32
    store.put_original(image_id, b"x", {"format": "jpeg"})
    old = [Store.derived_key("thumb", f"{n:016x}", image_id, "jpg") for n in range(3)]
    for key in old:
        store.put(key, b"old")  # as an older pixline stored them: no index entry
    assert store.derived_keys(image_id) == []

    def reindex(*extra: str) -> str:
        result = subprocess.run([sys.executable, "-m", "pixline.server.commands", "reindex", "--store",
                                 f"file://{tmp_path}", *extra], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "3 of 3 derivative(s) have no index entry" in reindex("--dry-run")
    assert store.derived_keys(image_id) == []
    assert "indexed 3 of 3" in reindex()
    assert "indexed 0 of 3" in reindex()
    assert store.derived_keys(image_id) == sorted(old)
    store.delete_image(image_id)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and image_id in str(p)] == []

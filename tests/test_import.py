"""``pixline import``: a library of originals taken in as uploads (issue 19): every check an upload
gets, refused ones reported with their reason, each key's id answerable, idempotent, and resumable
after a SIGKILL with nothing duplicated or half-stored. Real processes, real files and a real S3
(SeaweedFS)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pixline.engine import analysis, testing
from pixline.engine.library import SourceRecord
from pixline.engine.source import content_id
from pixline.engine.storage import Store

PIXLINE = [sys.executable, "-m", "pixline.server.commands"]


def pixline(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PIXLINE, *args], capture_output=True, text=True, timeout=300, input=stdin,
                          env={**os.environ, "PIXLINE_LOG_LEVEL": "error", **(env or {})})


def distinct_jpeg(n: int) -> bytes:
    return testing.jpeg_bytes(testing.gradient(40 + n % 50, 30 + n // 50))


def library(root: Path, good: int, bad: bool = True) -> dict[str, bytes]:
    """``good`` distinct small JPEGs (some in sub-folders), and with ``bad`` the hostile ones."""
    files = {f"{'sub/' if n % 3 == 0 else ''}img-{n:03d}.jpg": distinct_jpeg(n) for n in range(good)}
    if bad:
        files.update({"bad/text.jpg": b"not an image at all",
                      "bad/truncated.jpg": distinct_jpeg(999)[:300],
                      "bad/flood.png": testing.pixel_flood_png(),
                      "bad/empty.jpg": b""})
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    return files


def summary(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def stored_images(store_dir: Path) -> set[str]:
    return {p.stem for p in (store_dir / "meta").glob("*.json")} if (store_dir / "meta").exists() else set()


def test_a_folder_is_taken_in_with_every_refusal_reported(tmp_path: Path) -> None:
    files = library(tmp_path / "lib", good=6)
    store = tmp_path / "store"
    result = pixline("import", str(tmp_path / "lib"), "--store", f"file://{store}",
                     "--report", str(tmp_path / "refused.jsonl"), "--ids", str(tmp_path / "ids.jsonl"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("pixline: error: 4 original(s) refused")
    assert "Traceback" not in result.stderr
    counts = summary(result)
    assert (counts["imported"], counts["refused"], counts["failed"]) == (6, 4, 0)
    refused = {r["source_key"]: r for r in map(json.loads, (tmp_path / "refused.jsonl").read_text().splitlines())}
    assert {k: r["status"] for k, r in refused.items()} == {
        "bad/text.jpg": 415, "bad/truncated.jpg": 422, "bad/flood.png": 413, "bad/empty.jpg": 415}
    assert all(r["reason"] for r in refused.values())
    lines = {r["source_key"]: r for r in map(json.loads, (tmp_path / "ids.jsonl").read_text().splitlines())}
    ids = {key: line["id"] for key, line in lines.items()}
    assert set(ids) == {k for k in files if not k.startswith("bad/")} and set(ids.values()) == stored_images(store)
    s = Store(f"file://{store}")
    for key, image_id in ids.items():
        assert s.get_meta(image_id)["source_key"] == key
        # Each line has the placeholders made as it was taken in (pixline-placeholders), as GET /images/{id}.
        assert lines[key]["placeholders"] == analysis.placeholders(s.get_meta(image_id))
        assert lines[key]["placeholders"]["colour"].startswith("#")
        assert SourceRecord.find(s, key).image_id == image_id
        # Its eager presets were rendered here (no --amqp), as an upload's would be by the queue.
        assert [k for k in s.derived_keys(image_id) if "/thumb/" in k]
    # Again: nothing new, nothing read again, nothing duplicated, and now no refusal (resumed past them).
    objects = sorted(p for p in store.rglob("*") if p.is_file() and "imports" not in p.parts)
    again = pixline("import", str(tmp_path / "lib"), "--store", f"file://{store}")
    assert again.returncode == 0, again.stderr
    assert summary(again)["imported"] == 0
    assert sorted(p for p in store.rglob("*") if p.is_file() and "imports" not in p.parts) == objects
    assert not list((store / "tmp").iterdir())
    # From the start again (its position gone): keys known at their version, nothing read of them,
    # and their lines have the placeholders all the same.
    shutil.rmtree(store / "imports")
    known = pixline("import", str(tmp_path / "lib"), "--store", f"file://{store}",
                    "--ids", str(tmp_path / "again.jsonl"))
    assert known.returncode == 1, known.stderr  # the bad keys are refused again
    assert (summary(known)["imported"], summary(known)["existing"]) == (0, 6)
    again_lines = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert {line["source_key"]: line["placeholders"] for line in again_lines} == {
        key: line["placeholders"] for key, line in lines.items()}


def test_a_killed_import_goes_on_where_it_stopped(tmp_path: Path) -> None:
    library(tmp_path / "lib", good=40, bad=False)
    store = tmp_path / "store"
    args = ["import", str(tmp_path / "lib"), "--store", f"file://{store}", "--concurrency", "1"]
    process = subprocess.Popen([*PIXLINE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PIXLINE_LOG_LEVEL": "error"})
    try:
        deadline = time.monotonic() + 120
        while len(stored_images(store)) < 8 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the import ended before it could be killed: make the library larger"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(10)
    halfway = stored_images(store)
    assert 8 <= len(halfway) < 40
    result = pixline(*args)
    assert result.returncode == 0, result.stderr
    counts = summary(result)
    assert counts["resumed_after"] is not None, "the second run started from the beginning"
    assert counts["imported"] + len(halfway) >= 40 and counts["imported"] < 40
    s = Store(f"file://{store}")
    assert len(stored_images(store)) == 40
    originals = {p.name for p in (store / "originals").iterdir()}
    assert originals == stored_images(store), "an original without meta: a half-stored image"
    for image_id in originals:
        assert content_id((store / "originals" / image_id).read_bytes()) == image_id, "a partial original"
        assert [k for k in s.derived_keys(image_id) if "/thumb/" in k], image_id
    # A write the kill cut short may be left in tmp/, never under a real key (checked above).


def test_keys_on_standard_input_and_bad_keys(tmp_path: Path) -> None:
    files = library(tmp_path / "lib", good=3, bad=False)
    store = tmp_path / "store"
    keys = [*files, "../outside.jpg", "/etc/passwd", "sub/../img-001.jpg", "missing.jpg", "a b.jpg", ""]
    (tmp_path / "outside.jpg").write_bytes(distinct_jpeg(500))
    result = pixline("import", "-", "--source", str(tmp_path / "lib"), "--store", f"file://{store}",
                     "--report", str(tmp_path / "refused.jsonl"), stdin="\n".join(keys) + "\n")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert summary(result)["imported"] == 3
    refused = {r["source_key"]: r["status"] for r in
               map(json.loads, (tmp_path / "refused.jsonl").read_text().splitlines())}
    assert refused == {"../outside.jpg": 400, "/etc/passwd": 400, "sub/../img-001.jpg": 400,
                       "missing.jpg": 404, "a b.jpg": 400}
    assert len(stored_images(store)) == 3
    no_source = pixline("import", "-", "--store", f"file://{store}", stdin="a.jpg\n")
    assert no_source.returncode == 1 and "needs --source" in no_source.stderr


@pytest.mark.s3
def test_an_s3_prefix_is_taken_in_page_by_page(tmp_path: Path, s3_settings: dict) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(key=s3_settings["key"], secret=s3_settings["secret"],
                           client_kwargs={"endpoint_url": s3_settings["endpoint_url"]})
    prefix = f"{s3_settings['bucket']}/site-{uuid.uuid4().hex[:8]}"
    for n in range(12):
        fs.pipe_file(f"{prefix}/originals/{n:02d}.jpg", distinct_jpeg(n))
    fs.pipe_file(f"{prefix}/originals/broken.jpg", b"GIF89a broken")
    env = {"AWS_ACCESS_KEY_ID": s3_settings["key"], "AWS_SECRET_ACCESS_KEY": s3_settings["secret"]}
    store_url = f"s3://{prefix}/pixline"
    before = {path: fs.cat(path) for path in fs.find(f"{prefix}/originals")}
    result = pixline("import", f"s3://{prefix}/originals/", "--store", store_url,
                     "--s3-endpoint", s3_settings["endpoint_url"], env=env)
    assert result.returncode == 1, result.stderr
    counts = summary(result)
    assert (counts["imported"], counts["refused"]) == (12, 1)
    fs.invalidate_cache()
    assert {path: fs.cat(path) for path in fs.find(f"{prefix}/originals")} == before, "the library was written"
    assert len([p for p in fs.find(f"{prefix}/pixline/meta")]) == 12


def test_the_site_can_ask_which_image_a_key_became(tmp_path: Path) -> None:
    from falcon.testing import TestClient

    from pixline.server.commands.wiring import make_derivatives
    from pixline.server.http.app import create_app
    from pixline.server.settings import Settings

    library(tmp_path / "lib", good=2, bad=False)
    store = tmp_path / "store"
    assert pixline("import", str(tmp_path / "lib"), "--store", f"file://{store}").returncode == 0
    settings = Settings(store=f"file://{store}", upload_token="tok")
    client = TestClient(create_app(make_derivatives(settings), settings, None))
    auth = {"Authorization": "Bearer tok"}
    found = client.simulate_get("/images", params={"source_key": "img-001.jpg"}, headers=auth).json
    image, = found["images"]
    assert image["source_key"] == "img-001.jpg" and image["id"] == SourceRecord.find(
        Store(f"file://{store}"), "img-001.jpg").image_id and image["urls"]["thumb"].endswith(image["id"])
    assert client.simulate_get("/images", params={"source_key": "nope.jpg"}, headers=auth).json["images"] == []
    assert client.simulate_get("/images", params={"source_key": "img-001.jpg"}).status_code == 401
    bad = client.simulate_get("/images", params={"source_key": "../img-001.jpg"}, headers=auth)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"

"""Metadata bombs on every path that decodes an original: refused at upload (413 problem+json, from the
bytes, before libvips sees them), and refused again when such an original is already stored (a recipe
URL, a signed ad-hoc URL, a queue job, ``pixline regenerate``); the limits are settings; and a short
fuzz run of the walk. The other spellings go through every route in the hostile manifest."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import pyvips
from falcon.testing import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixline.engine import PixlineError, Source, content_id, metadata
from pixline.server.commands.wiring import make_derivatives
from pixline.server.http.app import create_app
from pixline.server.http.signing import sign_path
from pixline.server.queue.handler import JobHandler, RetryPolicy, run_job
from pixline.server.queue.jobs import Job
from pixline.server.settings import Settings

from . import metadata_corpus as mc

KEY = "metadata-test-key"
LIMIT = Settings().max_metadata_bytes


def app(tmp_path: Path, **values: Any) -> tuple[TestClient, Any]:
    config = Settings(store=f"file://{tmp_path / 'store'}", signing_key=[KEY], **values)
    derivatives = make_derivatives(config)
    return TestClient(create_app(derivatives, config, None)), derivatives


def never_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        pytest.fail("libvips was given the bytes")

    for name in ("new_from_buffer", "thumbnail_buffer", "jpegload_buffer"):
        monkeypatch.setattr(pyvips.Image, name, never)


def assert_413(result: Any, *details: str) -> None:
    assert result.status_code == 413, result.text
    assert result.headers["content-type"] == "application/problem+json"
    assert len(result.text) < 2000 and all(detail in result.json["detail"] for detail in details)


def test_the_issues_upload_is_refused_from_the_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, derivatives = app(tmp_path)
    flood = mc.ztxt_flood()  # 490 zTXt chunks, 50 MB: 5.3 s of CPU and 2.4 GB to upload before
    never_parse(monkeypatch)
    assert_413(client.simulate_post("/images", body=flood),
               "upload: a PNG whose metadata chunks (tEXt, zTXt, iTXt, iCCP, eXIf) hold more than "
               f"{LIMIT} bytes once decompressed, over the limit of {LIMIT} bytes of metadata")
    assert not derivatives.store.has_image(content_id(flood))


@pytest.mark.parametrize("make, detail", [
    (mc.text_flood, "a PNG of more than 256 metadata chunks"),
    (lambda: mc.jpeg_with_segments(150, 65_000), "a JPEG whose metadata segments (APP0-APP15, COM) hold"),
    (lambda: mc.webp_with(xmp_data=mc.xmp(9 * mc.MB)), "a WebP whose metadata chunks (ICCP, EXIF, XMP)"),
], ids=["png", "jpeg", "webp"])
def test_every_walked_format_is_refused_at_upload_from_the_bytes(
        make: Any, detail: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = app(tmp_path)
    data = make()
    never_parse(monkeypatch)
    assert_413(client.simulate_post("/images", body=data), detail)


def test_a_stored_bomb_is_refused_on_every_path_that_decodes_it(tmp_path: Path) -> None:
    # As if an older pixline had taken it: the limit holds at every decode, not only at the door.
    client, derivatives = app(tmp_path)
    bomb = mc.ztxt_flood(490, 512 * 1024, 4000)
    image_id = content_id(bomb)
    derivatives.store.put_original(image_id, bomb, {"id": image_id, "fields": {}, "format": "png",
                                                    "width": 64, "height": 64, "bytes": len(bomb)})
    assert_413(client.simulate_get(f"/r/thumb/{image_id}"), "metadata chunks")
    assert_413(client.simulate_get(sign_path(f"resize:w=32/{image_id}", KEY)), "metadata chunks")
    config = Settings(store=f"file://{tmp_path / 'store'}")
    outcome = run_job(JobHandler.from_settings(derivatives, config), RetryPolicy(), Job(image_id, ("thumb",)))
    assert outcome.action == "dead" and "metadata chunks" in outcome.reason
    assert list(derivatives.store.derived_keys(image_id)) == []


def test_regenerate_has_the_metadata_limits_and_their_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from pixline.server.commands.cli import main

    monkeypatch.delenv("PIXLINE_AMQP", raising=False)
    _, derivatives = app(tmp_path)
    flood = mc.text_flood(chunks=300)  # over the count, and harmless: the flag lets it through
    image_id = content_id(flood)
    derivatives.store.put_original(image_id, flood, {"id": image_id, "fields": {}, "format": "png",
                                                     "width": 64, "height": 64, "bytes": len(flood)})
    args = ["regenerate", "thumb", "--store", f"file://{tmp_path / 'store'}"]
    assert main(args) == 1
    assert "rendered 'thumb' for 0 of 1 image(s)" in capsys.readouterr().out
    assert main(args + ["--max-metadata-chunks", "300"]) == 0
    assert "rendered 'thumb' for 1 of 1 image(s)" in capsys.readouterr().out


def test_the_limits_are_settings(tmp_path: Path) -> None:
    loaded = Settings.load({}, {"PIXLINE_MAX_METADATA_BYTES": "1000", "PIXLINE_MAX_METADATA_CHUNKS": "2"})
    assert (loaded.limits().max_metadata_bytes, loaded.limits().max_metadata_chunks) == (1000, 2)
    assert Settings.load({"max_metadata_chunks": "7"}, {}).limits().max_metadata_chunks == 7
    client, _ = app(tmp_path, max_metadata_chunks=300)
    assert client.simulate_post("/images", body=mc.text_flood(chunks=300)).status_code == 201
    client, _ = app(tmp_path / "small", max_metadata_bytes=100_000)
    assert_413(client.simulate_post("/images", body=mc.png_xmp(200_000)), "over the limit of 100000 bytes")


# -- a short fuzz run of the walks ---------------------------------------------------------------

SEEDS = [mc.png_with([mc.ztxt(b"k", mc.deflate_bomb(2 * mc.MB)), mc.png_chunk(b"tEXt", b"a\0b"),
                      mc.png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + mc.deflate_bomb(mc.MB))]),
         mc.webp_with(b"Exif\0\0II*\0" + bytes(64), mc.xmp(64))]
EXAMPLES = int(os.environ.get("PIXLINE_FUZZ_EXAMPLES", "100"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(12, len(data) - 1))  # the signature stays: the walk is what is fuzzed
        data[at:at + 4] = draw(st.binary(min_size=0, max_size=4))
    return bytes(data[:draw(st.integers(12, len(data)))])


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.integers(0, 4), st.integers(0, 3 * mc.MB))
def test_the_walk_never_fails_and_stays_within_its_limits(data: bytes, max_chunks: int, max_bytes: int) -> None:
    found = metadata.measure(data, max_chunks, max_bytes)
    assert found is not None and found.chunks <= max_chunks + 1
    assert found.size <= max_bytes + len(data) + 1  # a chunk past the limit counts whole, inflated no further
    try:
        Source(data).header
    except PixlineError:
        pass

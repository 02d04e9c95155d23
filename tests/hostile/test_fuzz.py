"""A short fuzz run (hypothesis) over what reads hostile bytes and text: the upload reader and the ad-hoc
URL parser. Whatever comes in, the answer is a pixline error (a 4xx), never a libvips error, a crash or
a 500; and the cost stays bounded (every example runs under the check decode's time limit).

Bounded: 100 examples per property (``PIXLINE_FUZZ_EXAMPLES`` for a longer run by hand), no example
database, so every run draws afresh; hypothesis keeps only its caches in ``.hypothesis/``, which
ignores itself.
"""
from __future__ import annotations

import functools
import io
import os
import uuid
from typing import Any

import pytest
from falcon.testing import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixline.engine import Deadline, PixlineError, Registry, testing
from pixline.engine.jpegscans import count_scans
from pixline.engine.source import Limits
from pixline.server.commands.wiring import make_derivatives
from pixline.server.http.app import create_app
from pixline.server.http.upload import inspect_image
from pixline.server.http.urlsteps import adhoc_recipe, split_path
from pixline.server.settings import Settings

from . import corpus
from .corpus import TiffSpec

EXAMPLES = int(os.environ.get("PIXLINE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SEEDS = [
    testing.jpeg_bytes(testing.gradient(48, 32)),
    testing.jpeg_bytes(testing.gradient(48, 32), interlace=True),
    testing.png_bytes(testing.gradient(48, 32, bands=4)),
    testing.gradient(48, 32).webpsave_buffer(),
    testing.gradient(48, 32).gifsave_buffer(),
    testing.gradient(48, 32).tiffsave_buffer(compression="deflate"),
    corpus.tiff(TiffSpec(64, 48, 5, photometric="cmyk")),
    corpus.progressive_scan_flood(64, 48, 20),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed image with a few bytes changed, some cut off, or some repeated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()) and len(data) > 8:
        start = draw(st.integers(0, len(data) - 2))
        end = draw(st.integers(start + 1, min(len(data), start + 64)))
        data[start:start] = data[start:end] * draw(st.integers(1, 20))
    return bytes(data)


ANY_BYTES = st.one_of(mutated(), st.binary(max_size=512))


@FUZZ
@given(ANY_BYTES)
def test_the_upload_check_answers_with_a_pixline_error_or_a_description(data: bytes) -> None:
    try:
        meta, _ = inspect_image(data, Limits(), Deadline(10))
    except PixlineError:
        return
    assert meta["width"] > 0 and meta["height"] > 0 and meta["format"]


@FUZZ
@given(ANY_BYTES)
def test_the_scan_count_never_fails(data: bytes) -> None:
    found = count_scans(data, stop_after=100)
    assert 0 <= found.scans <= 101


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    settings_ = Settings(store=f"file://{tmp_path_factory.mktemp('fuzz') / 'store'}", allow_unsafe=True,
                         max_output_pixels=250_000, render_timeout=10)
    return TestClient(create_app(make_derivatives(settings_), settings_, None))


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str) -> bytes:
    out = io.BytesIO()
    for name, filename, body in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + body + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


PART_NAMES = st.one_of(st.sampled_from(["file", "image", "owner", "Owner", "a" * 40]),
                       st.text(max_size=12))
PARTS = st.lists(st.tuples(PART_NAMES, st.one_of(st.none(), st.just("x.jpg")), ANY_BYTES), max_size=3)
UPLOAD_STATUSES = {200, 201, 400, 411, 413, 415, 422}


@FUZZ
@given(PARTS, st.booleans(), st.binary(max_size=64))
def test_an_upload_of_any_form_is_answered_without_a_500(client: TestClient, parts: list[Any],
                                                          cut: bool, tail: bytes) -> None:
    boundary = uuid.uuid4().hex
    body = multipart(parts, boundary)
    if cut:
        body = body[: len(body) // 2] + tail
    result = client.simulate_post("/images", body=body,
                                  headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert result.status_code in UPLOAD_STATUSES, result.text


@functools.lru_cache(maxsize=1)
def installed() -> Registry:
    return Registry.load()


STEP_NAMES = st.sampled_from(["resize", "crop", "watermark", "format", "nosuch", "Resize", ""])
KEYS = st.sampled_from(["w", "h", "q", "t", "g", "fit", "enlarge", "dpr", "text", "image", "size", "trim",
                        "aspect", "left", "top", "width", "height", "unit", "tile", "x"])
VALUES = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(
    ["cover", "fill", "true", "attention", "jpeg", "webp", "16:9", "b64:", "b64:AAAA", "b64:e30", "", "1e9",
     "nan", "0.5", "b64:" + "V" * 40, "png", "fraction"]), st.text(max_size=8))


@st.composite
def step_paths(draw: st.DrawFn) -> str:
    segments = []
    for _ in range(draw(st.integers(1, 4))):
        items = draw(st.lists(st.tuples(KEYS, VALUES), max_size=4))
        params = ",".join(f"{k}={v}" for k, v in items)
        segments.append(draw(STEP_NAMES) + (":" + params if params else ""))
    return "/".join(segments)


@FUZZ
@given(st.one_of(step_paths(), st.text(max_size=80)))
def test_the_adhoc_parser_answers_with_a_pixline_error_or_a_recipe(text: str) -> None:
    registry = installed()
    try:
        steps, image_id = split_path(text + "/0123")
        recipe = adhoc_recipe(steps, registry, 10)
        recipe.check_output(1920, 1280, 16_000_000)
    except PixlineError:
        return
    assert recipe.steps


@FUZZ
@given(step_paths())
def test_an_adhoc_url_of_any_steps_is_answered_without_a_500(client: TestClient, steps: str) -> None:
    stored = getattr(client, "_fuzz_image", None)
    if stored is None:
        stored = client.simulate_post("/images", body=testing.jpeg_bytes(testing.gradient(64, 48))).json["id"]
        client._fuzz_image = stored  # type: ignore[attr-defined]
    result = client.simulate_get(f"/t/unsafe/{steps}/{stored}")
    assert result.status_code in (200, 400, 404, 413), result.text

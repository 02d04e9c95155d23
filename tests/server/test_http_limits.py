"""Hostile inputs over HTTP: decode-cost limits at upload, output sizes refused before decoding (recipe
and ad-hoc URLs alike), format side limits as 400 instead of 422, and watermark assets that blame the
right party without showing where the server keeps its files."""
from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Callable

import pytest

from pixline.engine import Source, testing
from pixline.server.http.signing import sign_path
from tests.hostile import corpus
from tests.hostile.corpus import TiffSpec

from .conftest import Service, write_recipe
from .test_http_upload import assert_nothing_stored, assert_problem

KEY = "test-key"


def b64(text: str) -> str:
    return "b64:" + base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def never_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    for method in ("load", "thumbnail"):
        monkeypatch.setattr(Source, method, lambda *a, **k: pytest.fail("decoded an image"))


def adhoc(service: Service, steps: str, image_id: str):  # noqa: ANN201
    return service.client.simulate_get(sign_path(f"{steps}/{image_id}", KEY))


@pytest.mark.parametrize("data, status, detail", [
    (corpus.tiff(TiffSpec(7000, 7000, 16, 32, "float")), 413, "16 bands, over the limit of 5"),
    (corpus.tiff(TiffSpec(7000, 7000, 1, 32, "float")), 415, "float samples"),
    (corpus.progressive_scan_flood(4000, 4000, 300), 413, "more than 100 scans"),
    # Five bands pass the band limit, but five grey bands do not make an RGB image: every recipe
    # would fail at its watermark ("images do not have same numbers of bands"), so it is refused now.
    (corpus.tiff(TiffSpec(640, 480, 5)), 415, "5 bands (b-w) that do not make a web image"),
])
def test_decode_bombs_are_refused_at_upload(service: Service, data: bytes, status: int, detail: str) -> None:
    body = assert_problem(service.client.simulate_post("/images", body=data), status)
    assert detail in body["detail"]
    assert_nothing_stored(service)


def test_the_new_limits_are_settings(make_service: Callable[..., Service]) -> None:
    service = make_service(max_bands=16, max_sample_bits=16, max_scans=400)
    assert service.client.simulate_post("/images", body=corpus.tiff(TiffSpec(640, 480, 16))).status_code == 415
    assert service.client.simulate_post(
        "/images", body=corpus.progressive_scan_flood(640, 480, 300)).status_code == 201


def test_a_cmyk_tiff_with_alpha_renders_every_default_recipe(service: Service) -> None:
    image_id = service.upload(corpus.tiff(TiffSpec(640, 480, 5, photometric="cmyk")))
    for recipe in ("thumb", "feed", "large", "social"):
        assert service.client.simulate_get(f"/r/{recipe}/{image_id}").status_code == 200, recipe


def test_the_upload_check_decode_has_the_render_time_limit(make_service: Callable[..., Service],
                                                         small_jpeg: bytes) -> None:
    service = make_service(render_timeout=1e-9)
    body = assert_problem(service.client.simulate_post("/images", body=small_jpeg), 413)
    assert "costs too much to decode" in body["detail"]
    assert_nothing_stored(service)


def test_a_recipe_url_over_the_output_limit_is_400_before_anything_is_decoded(
        make_service: Callable[..., Service], tmp_path: Path, small_jpeg: bytes,
        monkeypatch: pytest.MonkeyPatch) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes, "strip", "steps:\n  - resize: {width: 1, fit: fill}\n"
                                   "  - resize: {width: 200, enlarge: true}\n")
    service = make_service(recipes=str(recipes), max_output_pixels=1_000_000)
    image_id = service.upload(small_jpeg)
    never_decode(monkeypatch)
    body = assert_problem(service.client.simulate_get(f"/r/strip/{image_id}"), 400)
    assert body["detail"] == ("recipe 'strip': step 2 (resize) asks for 200×48000 = 9600000 pixels, over "
                              "the limit of 1000000")
    assert body["title"] == "output too large"


@pytest.mark.parametrize("steps, upload, detail", [
    ("format:t=jpeg", corpus.wide_png(), "makes a 66000×2 image of this one; jpeg holds at most 65500"),
    ("resize:w=16384,h=16,fit=fill,enlarge=true/format:t=webp", None, "webp holds at most 16383"),
])
def test_an_output_over_its_format_limit_is_400_not_undecodable(
        service: Service, small_jpeg: bytes, monkeypatch: pytest.MonkeyPatch, steps: str,
        upload: bytes | None, detail: str) -> None:
    image_id = service.upload(upload or small_jpeg)
    never_decode(monkeypatch)
    body = assert_problem(adhoc(service, steps, image_id), 400)
    assert detail in body["detail"] and body["detail"].startswith("ad-hoc URL: ")


@pytest.mark.parametrize("image, detail", [
    ("store:missing.png", "no object at assets/missing.png"),
    ("missing.png", "asset 'missing.png' not found in the asset folder"),
    ("logo\0.png", "contains control characters"),
    ("junk.png", "not an image type pixline takes"),
])
def test_an_unusable_watermark_named_in_a_url_is_the_urls_fault(
        make_service: Callable[..., Service], tmp_path: Path, small_jpeg: bytes, image: str,
        detail: str) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes, "plain", "steps:\n  - resize: {width: 100}\n")
    (recipes / "junk.png").write_text("not an image")
    service = make_service(recipes=str(recipes), signing_key=[KEY])
    image_id = service.upload(small_jpeg)
    body = assert_problem(adhoc(service, f"resize:w=100/watermark:image={b64(image)}", image_id), 400)
    assert detail in body["detail"]
    assert str(tmp_path) not in body["detail"]


@pytest.mark.parametrize("logo", ["missing.png", "junk.png"])
def test_an_unusable_watermark_of_a_fixed_recipe_is_the_servers_fault(
        make_service: Callable[..., Service], tmp_path: Path, small_jpeg: bytes, logo: str,
        caplog: pytest.LogCaptureFixture) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes, "marked", f"steps:\n  - resize: {{width: 100}}\n  - watermark: {{image: {logo}}}\n")
    (recipes / "junk.png").write_text("not an image")
    service = make_service(recipes=str(recipes))
    image_id = service.upload(small_jpeg)
    with caplog.at_level(logging.ERROR):
        body = assert_problem(service.client.simulate_get(f"/r/marked/{image_id}"), 500)
    # A StepError: it names the recipe, the step and its plugin (and the asset), never a server path.
    assert "recipe 'marked' failed in step 2 (watermark" in body["detail"] and logo in body["detail"]
    assert str(tmp_path) not in body["detail"]
    assert any("recipe 'marked'" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_watermark_text_of_too_many_lines_is_400(service: Service, small_jpeg: bytes,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    image_id = service.upload(small_jpeg)
    never_decode(monkeypatch)
    text = b64("\n".join(["W" * 10] * 14))
    body = assert_problem(adhoc(service, f"resize:w=3600,enlarge=true/watermark:text={text},size=0.5",
                                image_id), 400)
    assert "parameter 'text': at most 4 lines" in body["detail"]


def test_a_large_watermark_text_renders_at_the_size_it_is_fitted_to(service: Service,
                                                                   small_jpeg: bytes) -> None:
    # Set at 0.5 × 3600 px it was a 505 MP overlay (13 s, 3.3 GB) shrunk to fit the image afterwards.
    image_id = service.upload(small_jpeg)
    text = b64("\n".join(["W" * 10] * 4))
    result = adhoc(service, f"resize:w=3600,enlarge=true/watermark:text={text},size=0.5", image_id)
    assert result.status_code == 200
    assert testing.decode(result.content).width == 3600

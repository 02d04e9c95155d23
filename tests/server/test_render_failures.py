"""A step failing at render time is the server's problem, said once: 500 "render failed" and a log
line naming recipe, step and plugin — never 422 "undecodable image" for an original that decoded
at upload, never the client's 400 for a recipe file's own parameters."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import pytest

from pixline.engine import Registry
from pixline.server.http.signing import sign_path

from tests.engine import faultyplugin

from .conftest import Service, write_recipe
from .test_http_upload import assert_problem


@pytest.fixture(scope="module")
def plugins() -> Registry:
    return Registry.load(extra=[("faulty", faultyplugin)])


@pytest.fixture
def broken(make_service: Callable[..., Service], plugins: Registry, tmp_path: Path) -> Service:
    folder = tmp_path / "recipes"
    for how in ("value", "vips", "lazy", "parameter"):
        write_recipe(folder, f"broken-{how}", f"steps:\n  - resize: {{width: 50}}\n"
                                              f"  - explode: {{how: {how}}}\n  - format: {{type: jpeg}}\n")
    write_recipe(folder, "fine", "steps:\n  - resize: {width: 50}\n  - format: {type: jpeg}\n")
    return make_service(plugins=plugins, recipes=str(folder), signing_key=["test-key"])


@pytest.mark.parametrize("how, detail", [
    ("value", "ValueError: the plugin has a bug"),
    ("vips", "libvips: recomb: bands in must equal matrix width"),
    ("lazy", "libvips: VipsJpeg: premature end of JPEG image"),
    ("parameter", "ParameterError: this image is too small"),  # the recipe file's fault, not the client's
])
def test_a_failing_step_is_500_render_failed_with_a_log_line_naming_it(broken: Service, small_jpeg: bytes,
                                                                       caplog, how: str, detail: str):
    image_id = broken.upload(small_jpeg)
    with caplog.at_level(logging.ERROR, logger="pixline.server.http.errors"):
        result = broken.client.simulate_get(f"/r/broken-{how}/{image_id}")
    body = assert_problem(result, 500)
    assert body["title"] == "render failed"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    line = record.getMessage()
    if how == "lazy":  # found only while the encoder computes pixels: every step is named
        assert f"recipe 'broken-{how}' failed in encoder 'jpeg' (plugin 'format' from pixline-format " in line
        assert "), computing the pixels of steps resize, explode, format: " in line
    else:
        assert (f"recipe 'broken-{how}' failed in step 2 (explode, plugin 'faulty' from (registered in "
                "code)): ") in line
    assert detail in line and detail in body["detail"]
    assert not [k for k in broken.store.derived_keys(image_id) if "broken" in k]
    assert broken.client.simulate_get(f"/r/fine/{image_id}").status_code == 200


def test_an_ad_hoc_steps_parameter_error_is_still_the_clients_400(broken: Service, small_jpeg: bytes):
    image_id = broken.upload(small_jpeg)
    url = sign_path(f"explode:how=parameter/format:t=jpeg/{image_id}", "test-key")
    body = assert_problem(broken.client.simulate_get(url), 400)
    assert "this image is too small" in body["detail"]
    crash = sign_path(f"explode:how=value/format:t=jpeg/{image_id}", "test-key")
    assert assert_problem(broken.client.simulate_get(crash), 500)["title"] == "render failed"


def test_a_recipe_files_missing_asset_is_500_naming_the_recipe_and_the_asset(
        make_service: Callable[..., Service], tmp_path: Path, small_jpeg: bytes):
    """The recipe file names the asset: the server's set-up is wrong (500), not the request."""
    folder = tmp_path / "recipes"
    write_recipe(folder, "logo", "steps:\n  - resize: {width: 50}\n  - watermark: {image: missing.png}\n"
                                 "  - format: {type: jpeg}\n")
    service = make_service(recipes=str(folder))
    image_id = service.upload(small_jpeg)
    body = assert_problem(service.client.simulate_get(f"/r/logo/{image_id}"), 500)
    assert body["title"] == "render failed"
    assert "recipe 'logo' failed in step 2 (watermark" in body["detail"]
    assert "asset 'missing.png' not found" in body["detail"]

"""Animated uploads over HTTP: recipe and ad-hoc URLs keep every frame where the format animates,
and the first frame elsewhere; the filter steps work in ad-hoc URLs by their parameter names."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import frames, testing
from pixline.server.http.signing import sign_path

from .conftest import Service
from .test_http_upload import assert_problem


@pytest.fixture(scope="module")
def animated_gif() -> bytes:
    return testing.animation_strip(frames=3, width=120, height=80, delays=[100, 200, 300], loop=0).gifsave_buffer()


def all_frames(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "", n=-1)


def test_an_animated_upload_renders_animated_and_still_outputs(service: Service, animated_gif: bytes) -> None:
    image_id = service.upload(animated_gif)
    assert service.client.simulate_get(f"/images/{image_id}").json["format"] == "gif"
    gif = service.client.simulate_get(sign_path(f"resize:w=60/format:type=gif/{image_id}", "test-key"))
    assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    out = all_frames(gif.content)
    assert (out.width, frames.page_height(out), frames.frame_count(out)) == (60, 40, 3)
    assert out.get("delay") == [100, 200, 300]
    feed = service.client.simulate_get(f"/r/feed/{image_id}", headers={"Accept": "image/webp"})
    assert feed.headers["content-type"] == "image/webp" and frames.frame_count(all_frames(feed.content)) == 3
    thumb = service.client.simulate_get(f"/r/thumb/{image_id}")
    assert thumb.headers["content-type"] == "image/jpeg"
    still = testing.decode(thumb.content)
    assert (still.width, still.height) == (120, 80)  # never enlarged
    assert still[0].avg() > still[1].avg() + 50  # the first frame: the red one


@pytest.mark.parametrize("steps", ["sharpen:sigma=0.8,amount=1.5", "blur:sigma=2", "adjust:contrast=1.2,gamma=0.9",
                                   "grayscale", "tint:colour=704214,strength=0.7"])
def test_filters_in_ad_hoc_urls_by_parameter_name(service: Service, animated_gif: bytes, steps: str) -> None:
    image_id = service.upload(animated_gif)
    result = service.client.simulate_get(sign_path(f"resize:w=60/{steps}/format:type=webp/{image_id}", "test-key"))
    assert result.status_code == 200, result.text
    assert frames.frame_count(all_frames(result.content)) == 3


@pytest.mark.parametrize("steps, parameter", [("blur", "sigma"), ("sharpen:amount=11", "amount"),
                                              ("tint:colour=sepia", "colour"), ("adjust:shine=2", "shine")])
def test_bad_filter_parameters_in_ad_hoc_urls_are_400(service: Service, animated_gif: bytes, steps: str,
                                                      parameter: str) -> None:
    image_id = service.upload(animated_gif)
    body = assert_problem(service.client.simulate_get(sign_path(f"{steps}/{image_id}", "test-key")), 400)
    assert f"'{parameter}'" in body["detail"]

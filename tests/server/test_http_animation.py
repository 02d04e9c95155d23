"""Animated uploads over HTTP: recipe and ad-hoc URLs keep every frame where the format animates,
and the first frame elsewhere."""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import frames, testing
from pixline.server.http.signing import sign_path

from .conftest import Service


@pytest.fixture(scope="module")
def animated_gif() -> bytes:
    return testing.animation(frames=3, width=120, height=80, delays=[100, 200, 300], loop=0).gifsave_buffer()


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

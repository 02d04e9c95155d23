"""pixline-placeholders: each placeholder made at upload, from the reduced copy, and shown by the API."""
from __future__ import annotations

import base64
import re
from pathlib import Path

import blurhash
import pytest
import pyvips
import thumbhash

from pixline.engine import Context, Registry, Source, analysis, testing

PHOTO = Path(__file__).resolve().parents[3] / "tests" / "photos"


@pytest.fixture(scope="module")
def analysers():
    loaded = Registry()
    import pixline_placeholders
    loaded.add("placeholders", pixline_placeholders, "pixline-placeholders", "0.1.0")
    return loaded.analysers


def found(analysers, image: pyvips.Image) -> dict:
    source = Source(image.pngsave_buffer())
    entries = analysis.analyse(analysers, source, Context(source_size=(image.width, image.height)))
    assert all("value" in e and e["placeholder"] for e in entries.values()), entries
    return analysis.placeholders({"analysis": entries})


def test_every_placeholder_describes_the_picture(analysers):
    # Left half red, right half blue, the red side a little larger: the dominant colour is red.
    image = pyvips.Image.black(220, 100).new_from_image([0, 0, 255]).insert(
        pyvips.Image.black(120, 100).new_from_image([255, 0, 0]), 0, 0).cast("uchar")
    shown = found(analysers, image)
    assert shown["colour"] == "#ff0000"
    assert blurhash.is_valid_blurhash(shown["blurhash"])
    decoded = blurhash.decode(shown["blurhash"], 40, 20)  # a picture: red on the left, blue on the right
    assert decoded.getpixel((2, 10))[0] > 150 and decoded.getpixel((37, 10))[2] > 150
    width, height, _ = thumbhash.thumb_hash_to_rgba(base64.b64decode(shown["thumbhash"]))
    assert width > height  # ThumbHash keeps the aspect
    header, _, data = shown["lqip"].partition(",")
    assert header == "data:image/webp;base64"
    tiny = pyvips.Image.new_from_buffer(base64.b64decode(data), "")
    assert max(tiny.width, tiny.height) == 20 and len(shown["lqip"]) < 1000


#: Evan Wallace's reference Python port (thumbhash-python's rgba_to_thumbhash, which this plugin
#: used before) on the picture of the test below: the known answer the Rust crate must give too.
REFERENCE_THUMBHASH = "20088a9c9a0f888880888878085888808f0811031012213304"


def test_the_thumbhash_is_the_reference_algorithm_s(analysers):
    # A picture built byte by byte: a red-to-blue gradient across, green down, a transparent corner.
    width, height, rgba = 32, 24, bytearray()
    for y in range(height):
        for x in range(width):
            rgba += bytes((255 * x // (width - 1), 255 * y // (height - 1), 255 - 255 * x // (width - 1),
                           0 if x < 4 and y < 4 else 255))
    image = pyvips.Image.new_from_memory(bytes(rgba), width, height, 4, "uchar")
    assert base64.b64decode(analysers["thumbhash"].analyse(image)).hex() == REFERENCE_THUMBHASH


def test_an_image_with_alpha_and_a_grey_one_get_placeholders_too(analysers):
    grey = testing.gradient(64, 64).colourspace("b-w")
    alpha = testing.gradient(64, 32).bandjoin(128)
    for image in (grey, alpha):
        assert re.fullmatch(r"#[0-9a-f]{6}", found(analysers, image)["colour"])


def test_an_upload_answers_its_placeholders_and_get_lists_them(tmp_path):
    from falcon.testing import TestClient

    from pixline.server.commands.wiring import make_derivatives
    from pixline.server.http.app import create_app
    from pixline.server.settings import Settings

    settings = Settings(store=f"file://{tmp_path}")
    app = create_app(make_derivatives(settings), settings, None)
    client = TestClient(app)
    photo = next(PHOTO.glob("*.jpg")).read_bytes()
    created = client.simulate_post("/images", body=photo)
    assert created.status_code == 201, created.text
    assert set(created.json["placeholders"]) >= {"blurhash", "thumbhash", "colour", "lqip"}
    got = client.simulate_get(f"/images/{created.json['id']}").json
    assert got["placeholders"] == created.json["placeholders"]
    assert "analysis" in got and "blurhash" not in got["analysis"]

"""Golden output: every default recipe against an independent rendition with plain pyvips calls.

Compared as pixels with a tolerance (JPEG/AVIF artefacts differ run to run across libvips builds),
never as bytes.
"""
from __future__ import annotations

import pytest
import pyvips

from pixline.engine import Context, Source, render, testing
from pixline.engine.recipefiles import default_recipe_dir, load_recipes
from pixline.engine.registry import Registry

JPEG_ONLY = "image/jpeg"


@pytest.fixture(scope="module")
def recipes():
    return load_recipes(default_recipe_dir(), Registry.load())


def rendered(recipes, name: str, data: bytes, fields: dict | None = None) -> pyvips.Image:
    out = render(recipes[name], Source(data), Registry.load(), Context(accept=JPEG_ONLY, fields=fields or {}))
    image = testing.decode(out.data)
    assert image.interpretation == "srgb" and image.format == "uchar" and image.bands == 3
    return image


@pytest.mark.parametrize("name, reference", [
    ("thumb", lambda d: pyvips.Image.thumbnail_buffer(d, 200, height=200, crop="attention")),
    ("feed", lambda d: pyvips.Image.thumbnail_buffer(d, 600).sharpen(sigma=0.5, x1=2, m1=0, m2=1.5)),
    ("feed-2x", lambda d: pyvips.Image.thumbnail_buffer(d, 1200)),
    ("social", lambda d: pyvips.Image.thumbnail_buffer(d, 1200, height=630, crop="entropy")),
])
def test_recipe_matches_plain_pyvips(recipes, photo_bytes, name, reference):
    ours = rendered(recipes, name, photo_bytes)
    theirs = reference(photo_bytes)
    assert (ours.width, ours.height) == (theirs.width, theirs.height)
    assert testing.mean_abs_diff(ours, theirs) < 2.5


def test_large_is_the_photo_with_a_credit_in_the_south_east_corner(recipes, photo_bytes):
    ours = rendered(recipes, "large", photo_bytes, {"owner": "Ada Lovelace"})
    plain = pyvips.Image.new_from_buffer(photo_bytes, "")
    assert (ours.width, ours.height) == (1920, 1280)  # smaller than 2048: never enlarged
    w, h = ours.width, ours.height
    rest = (0, 0, w, h * 3 // 4)
    corner = (w * 3 // 4, h * 9 // 10, w // 4, h // 10)
    assert testing.mean_abs_diff(ours.crop(*rest), plain.crop(*rest)) < 2.5
    assert testing.mean_abs_diff(ours.crop(*corner), plain.crop(*corner)) > 3


def test_exif_orientation_golden(recipes, photos):
    upright = pyvips.Image.new_from_file(str(photos / "LadyBird.jpg"))
    # Store it rotated 90° anticlockwise and tagged 6 ("rotate 90° clockwise to display").
    stored = testing.jpeg_bytes(upright.rot270(), orientation=6, Q=95)
    ours = rendered(recipes, "feed", stored)
    theirs = upright.thumbnail_image(600).sharpen(sigma=0.5, x1=2, m1=0, m2=1.5)
    assert (ours.width, ours.height) == (theirs.width, theirs.height) == (600, 375)
    assert testing.mean_abs_diff(ours, theirs) < 3

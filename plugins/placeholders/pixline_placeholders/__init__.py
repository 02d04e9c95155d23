"""Placeholders for pixline, made once per image at upload from its reduced copy (contract 2.3).

Four analysers, each a key of the image's ``placeholders`` (``GET /images/{id}``, the upload's 201,
the ready events), known before any preset is ready:

- ``blurhash``: a `BlurHash <https://blurha.sh>`_ string (4×3 components, 3×4 for a portrait);
- ``thumbhash``: a `ThumbHash <https://evanw.github.io/thumbhash/>`_, base64 (keeps alpha and aspect);
- ``colour``: the dominant colour, ``#rrggbb``;
- ``lqip``: a ~20 px WebP as a ``data:`` URI, for an ``<img>`` or a CSS background.

Each works on a tiny thumbnail (``size``), so all four cost a few milliseconds per upload (the
plugin's README has the measurement).
"""
from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import blurhash
import pyvips
import thumbhash
from PIL import Image

from pixline.engine import Analyser, Context, hookimpl


def rgb(image: pyvips.Image) -> pyvips.Image:
    """The colour bands of a normal image, alpha flattened on white (a placeholder has no holes)."""
    return image.flatten(background=[255, 255, 255]) if image.bands == 4 else image


def pillow(image: pyvips.Image) -> Image.Image:
    """A 3-band image as the Pillow image blurhash-python takes."""
    return Image.frombytes("RGB", (image.width, image.height), image.write_to_memory())


class BlurHash(Analyser):
    name = "blurhash"
    version = "1"
    size = 32
    placeholder = True

    def analyse(self, image: pyvips.Image) -> str:
        # More components along the longer side: the hash keeps the picture's layout.
        x, y = (4, 3) if image.width >= image.height else (3, 4)
        return blurhash.encode(pillow(rgb(image)), x, y)


class ThumbHash(Analyser):
    name = "thumbhash"
    version = "1"
    size = 32
    placeholder = True

    def analyse(self, image: pyvips.Image) -> str:
        rgba = image if image.bands == 4 else image.bandjoin(255)
        packed = thumbhash.rgba_to_thumb_hash(rgba.width, rgba.height, bytes(rgba.write_to_memory()))
        return base64.b64encode(bytes(packed)).decode("ascii")


class DominantColour(Analyser):
    """The mean of the most common colour cell (each channel in 8 steps), not the mean of the image:
    a red flower on green leaves is green, not brown."""

    name = "colour"
    version = "1"
    size = 32
    placeholder = True

    def analyse(self, image: pyvips.Image) -> str:
        data = bytes(rgb(image).write_to_memory())
        pixels = [tuple(data[i:i + 3]) for i in range(0, len(data), 3)]
        cells = Counter((r >> 5, g >> 5, b >> 5) for r, g, b in pixels)
        cell = cells.most_common(1)[0][0]
        chosen = [p for p in pixels if (p[0] >> 5, p[1] >> 5, p[2] >> 5) == cell]
        mean = [round(sum(p[i] for p in chosen) / len(chosen)) for i in range(3)]
        return "#{:02x}{:02x}{:02x}".format(*mean)


class TinyWebP(Analyser):
    """A low-quality image placeholder: the picture at 20 px, as a WebP data URI (~200-400 bytes)."""

    name = "lqip"
    version = "1"
    size = 20
    placeholder = True

    def analyse(self, image: pyvips.Image, ctx: Context) -> str:
        data = image.webpsave_buffer(Q=40, effort=4, keep="none")
        return "data:image/webp;base64," + base64.b64encode(data).decode("ascii")


@hookimpl
def pixline_register_analysers(register: Any) -> None:
    for cls in (BlurHash, ThumbHash, DominantColour, TinyWebP):
        register(cls)

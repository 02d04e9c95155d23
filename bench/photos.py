"""The bench's photos: the repository's own, plus inputs built from them at run time.

* miss photos: tests/photos/*.jpg and bench/TwoWings.jpg (2.5–4.9 MP baseline JPEGs);
* an 18 MP progressive JPEG (what cameras and phones upload), built from LadyBird.jpg: scaled ×2.1
  with a little grain so it compresses like a photo, not like an upscale (the repository holds no
  such file, and the bench cites none outside it);
* stream photos for the converter: each miss photo at three scales (1–5 MP), re-encoded with a
  quality that depends on the round, so every round uploads new bytes (new ids).
"""
from __future__ import annotations

from pathlib import Path

import pyvips

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MISS_PHOTOS = sorted((ROOT / "tests" / "photos").glob("*.jpg")) + [HERE / "TwoWings.jpg"]
LARGE_NAME = "large-18mp-progressive.jpg"


def copy_miss_photos(folder: Path) -> list[Path]:
    out = []
    for photo in MISS_PHOTOS:
        target = folder / photo.name
        target.write_bytes(photo.read_bytes())
        out.append(target)
    return out


def build_large(folder: Path) -> Path:
    """An 18 MP (5376×3360) progressive JPEG, quality 92, from LadyBird.jpg."""
    base = pyvips.Image.new_from_file(str(ROOT / "tests" / "photos" / "LadyBird.jpg"))
    big = base.resize(2.1, kernel="lanczos3")
    grain = pyvips.Image.gaussnoise(big.width, big.height, sigma=12, mean=0)
    big = (big + grain).cast("uchar").copy(interpretation="srgb")
    target = folder / LARGE_NAME
    big.jpegsave(str(target), Q=92, interlace=True, optimize_coding=True, keep="none")
    return target


def stream_photos(round_no: int) -> list[bytes]:
    """12 JPEGs of 1–5 MP (four photos at three scales); ``round_no`` changes every file's bytes."""
    out = []
    for photo in MISS_PHOTOS:
        image = pyvips.Image.new_from_file(str(photo))
        for scale in (1.0, 0.8, 0.65):
            scaled = image if scale == 1.0 else image.resize(scale, kernel="lanczos3")
            out.append(scaled.jpegsave_buffer(Q=90 - round_no, optimize_coding=True, keep="none"))
    return out

"""What a hand-written pyvips converter does for one upload: the default eager presets, one decode.

The same outputs and encoder options as pixline's default recipes (large: 2048 px with a text
credit, JPEG 85 progressive; feed: 600 px, sharpened as the recipe's ``sharpen`` step does, as AVIF
55 effort 3, WebP 80 effort 4 and JPEG 82; thumb:
200×200 attention crop, JPEG 80), from one shrink-on-load decode per photo, and nothing else: no
upload verification, no store, no queue. Run in worker processes (spawned: libvips threads do not
survive a fork).
"""
from __future__ import annotations

import time

import pyvips

JPEG = dict(optimize_coding=True, trellis_quant=True, overshoot_deringing=True, keep="none")


def _credit(width: int) -> pyvips.Image:
    mask = pyvips.Image.text("© pixline", font=f"sans {max(8, round(0.04 * width))}", dpi=72)
    rgb = mask.new_from_image([255, 255, 255])
    return rgb.bandjoin((mask * 0.4).cast("uchar")).copy(interpretation="srgb")


def presets(data: bytes) -> tuple[float, int]:
    """Render every preset of one photo; (CPU seconds this process spent, bytes written)."""
    started = time.process_time()
    image = pyvips.Image.thumbnail_buffer(data, 2048, height=2048, size="down").copy_memory()
    credit = _credit(image.width)
    large = image.composite2(credit, "over", x=image.width - credit.width - 10,
                             y=image.height - credit.height - 10)[:3]
    out = [large.jpegsave_buffer(Q=85, interlace=True, optimize_scans=True, **JPEG)]
    feed = image.thumbnail_image(600, height=100_000, size="down")
    # recipes/feed.yaml's sharpen {sigma: 0.5, amount: 1.5}, as plugins/sharpen applies it; once for
    # the three formats
    feed = feed.sharpen(sigma=0.5, x1=2.0, m1=0, m2=1.5, y2=10.0, y3=20.0).copy_memory()
    out.append(feed.heifsave_buffer(compression="av1", Q=55, effort=3, keep="none"))
    out.append(feed.webpsave_buffer(Q=80, effort=4, keep="none"))
    out.append(feed.jpegsave_buffer(Q=82, **JPEG))
    thumb = image.thumbnail_image(200, height=200, crop="attention")
    out.append(thumb.jpegsave_buffer(Q=80, **JPEG))
    return time.process_time() - started, sum(len(o) for o in out)


def warm(_: int) -> int:
    pyvips.Image.black(8, 8).avg()
    return 0

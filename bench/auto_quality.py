"""The auto-quality scenario (issue 21 §1): ``quality: auto`` against fixed qualities, per format.

For each photo (the miss photos, plus ../shared/photos beside the checkout when it is there) at each
output width, in process, with the installed plugins:

- **auto**: an eager recipe ``resize`` + ``format: {type: F, quality: auto}`` (target 80): bytes, its
  SSIMULACRA 2 score against the same steps' unencoded output (a PNG recipe), CPU of the render;
- **q80**: the same recipe at quality 80: bytes, score, CPU;
- **one fixed quality**: the lowest quality at which *every* photo of the set reaches the target
  with the fixed-quality encoder (each photo's lowest found by the same search, then their maximum):
  what a site must set for its hardest photo; the goal is auto's bytes ≤ 0.85× this one's;
- **thumbor q80** (with ``--peer thumbor``): thumbor's fit-in output of the same width, JPEG and WebP
  at quality 80, bytes and score (against pixline's unencoded output: thumbor resamples with Pillow,
  so its score also counts that difference).

The scores are the pixline-ssimulacra2 metric's (the ``ssimulacra2`` package's number).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pyvips

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "photos"
FORMATS = ("jpeg", "webp", "avif")
TARGET = 80.0


def photos() -> list[Path]:
    from photos import MISS_PHOTOS

    found = {p.name: p for p in MISS_PHOTOS}
    if SHARED.is_dir():
        found.update({p.name: p for p in sorted(SHARED.glob("*.jpg"))})
    return [found[name] for name in sorted(found)]


class Bench:
    """The engine's render of one photo through small recipes, timed in CPU seconds."""

    def __init__(self) -> None:
        from pixline.engine import Registry

        self.registry = Registry.load()
        self.metric = self.registry.metrics["ssimulacra2"]

    def recipe(self, width: int, fmt: str, quality: Any) -> Any:
        from pixline.engine.testing import recipe

        return recipe(self.registry, [{"resize": {"width": width}}, {"format": {"type": fmt, "quality": quality}}],
                      name="feed", eager=True)

    def render(self, data: bytes, recipe: Any) -> tuple[Any, float]:
        from pixline.engine import Context, Source, render

        start = time.process_time()
        out = render(recipe, Source(data), self.registry, Context())
        return out, time.process_time() - start

    def reference(self, data: bytes, width: int) -> Any:
        from pixline.engine import normalise
        from pixline.engine.testing import recipe

        plain = recipe(self.registry, [{"resize": {"width": width}}, {"format": {"type": "png"}}])
        out, _ = self.render(data, plain)
        return self.metric.prepare(normalise(pyvips.Image.new_from_buffer(out.data, "")).copy_memory())

    def score(self, reference: Any, data: bytes) -> float:
        from pixline.engine import normalise

        return float(self.metric.score(reference, normalise(pyvips.Image.new_from_buffer(data, ""))))


def one_photo(bench: Bench, data: bytes, width: int, fmt: str) -> dict[str, Any]:
    from pixline.engine import Deadline
    from pixline.engine.autoquality import search

    reference = bench.reference(data, width)
    auto, auto_cpu = bench.render(data, bench.recipe(width, fmt, "auto"))
    fixed, fixed_cpu = bench.render(data, bench.recipe(width, fmt, 80))

    def at(quality: int) -> bytes:
        return bench.render(data, bench.recipe(width, fmt, quality))[0].data

    qualities = bench.registry.encoders[fmt].qualities
    image = pyvips.Image.new_from_buffer(bench.render(data, bench.recipe(width, "png", None))[0].data, "")
    lowest = search(at, image, bench.metric, TARGET, qualities, Deadline())[1].quality
    return {"auto_bytes": len(auto.data), "auto_score": bench.score(reference, auto.data),
            "auto_quality": auto.choice.quality, "auto_trials": auto.choice.trials, "auto_cpu": auto_cpu,
            "q80_bytes": len(fixed.data), "q80_score": bench.score(reference, fixed.data), "q80_cpu": fixed_cpu,
            "lowest_fixed": lowest, "at": at, "reference": reference}


def thumbor_outputs(thumbor: Any, names: list[str], width: int, fmt: str) -> dict[str, bytes]:
    from peer_thumbor import sign

    found = {}
    for name in names:
        status, body = thumbor.get(sign(f"fit-in/{width}x10000/filters:format({fmt}):quality(80)/{name}"))
        if status == 200:
            found[name] = body
    return found


def bench_auto_quality(widths: tuple[int, ...] = (600,), thumbor: Any = None) -> dict[str, Any]:
    """Per width and format: totals and worst scores of auto, q80, the one fixed quality, thumbor."""
    bench = Bench()
    pictures = {p.name: p.read_bytes() for p in photos()}
    results: dict[str, Any] = {"target": TARGET, "photos": sorted(pictures), "rows": []}
    for width in widths:
        for fmt in FORMATS:
            per = {name: one_photo(bench, data, width, fmt) for name, data in pictures.items()}
            fixed_q = max(p["lowest_fixed"] for p in per.values())
            fixed = {name: p["at"](fixed_q) for name, p in per.items()}
            row = {"width": width, "format": fmt, "fixed_quality": fixed_q,
                   "auto_bytes": sum(p["auto_bytes"] for p in per.values()),
                   "auto_min_score": min(p["auto_score"] for p in per.values()),
                   "auto_qualities": {n: p["auto_quality"] for n, p in per.items()},
                   "auto_trials_median": statistics.median(p["auto_trials"] for p in per.values()),
                   "fixed_bytes": sum(len(b) for b in fixed.values()),
                   "fixed_min_score": min(bench.score(per[n]["reference"], b) for n, b in fixed.items()),
                   "q80_bytes": sum(p["q80_bytes"] for p in per.values()),
                   "q80_min_score": min(p["q80_score"] for p in per.values()),
                   "auto_cpu": sum(p["auto_cpu"] for p in per.values()),
                   "q80_cpu": sum(p["q80_cpu"] for p in per.values())}
            row["ratio_to_fixed"] = row["auto_bytes"] / row["fixed_bytes"]
            if thumbor is not None and fmt in ("jpeg", "webp"):
                theirs = thumbor_outputs(thumbor, sorted(pictures), width, fmt)
                row["thumbor_bytes"] = sum(len(b) for b in theirs.values()) if len(theirs) == len(per) else None
                row["thumbor_min_score"] = min((bench.score(per[n]["reference"], b) for n, b in theirs.items()),
                                               default=None)
            results["rows"].append(row)
            print(f"auto-quality {width} px {fmt}: auto {row['auto_bytes']} B (min score "
                  f"{row['auto_min_score']:.1f}) vs one fixed q{fixed_q} {row['fixed_bytes']} B: "
                  f"{row['ratio_to_fixed']:.3f}×; CPU {row['auto_cpu'] / row['q80_cpu']:.1f}× q80's", flush=True)
    return results

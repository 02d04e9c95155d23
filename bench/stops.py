"""How soon after its time limit a render stops, for the steps that compute pixels early.

    .venv/bin/python bench/stops.py [LIMIT_SECONDS] [RUNS]

Renders each recipe over a generated 6000×6000 noisy JPEG (nothing downloaded) once without a limit and
RUNS times with one, and prints wall and CPU seconds: a render past its limit must stop near it, not
run to the end. A measurement to read, not a test (docs/security.md, "The time budget").
"""
from __future__ import annotations

import sys
import time

import pyvips

from pixline.engine import Registry, RenderTimeoutError, Source, render, testing

TEXT = "\n".join(["W" * 10] * 4)
RECIPES = {
    "crop attention": [{"crop": {"aspect": "1:1", "gravity": "attention"}}, {"format": {"type": "jpeg"}}],
    "crop trim": [{"crop": {"trim": True}}, {"format": {"type": "jpeg"}}],
    "resize 3000, jpeg": [{"resize": {"width": 3000}}, {"format": {"type": "jpeg"}}],
    "text watermark": [{"resize": {"width": 6000}}, {"watermark": {"text": TEXT, "size": 0.5}},
                       {"format": {"type": "jpeg"}}],
}


def noisy_jpeg(side: int = 6000) -> Source:
    noise = pyvips.Image.gaussnoise(side, side, sigma=60, mean=128).cast("uchar")
    return Source(noise.bandjoin([noise, noise]).copy(interpretation="srgb").jpegsave_buffer(Q=90),
                  name=f"noise {side}²")


def once(recipe, source: Source, registry: Registry, limit: float | None) -> str:  # noqa: ANN001
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        render(recipe, source, registry, time_limit=limit)
        outcome = "finished"
    except RenderTimeoutError:
        outcome = "stopped"
    return f"{time.perf_counter() - wall:5.2f} s wall, {time.process_time() - cpu:5.2f} s CPU, {outcome}"


def main(limit: float, runs: int) -> None:
    registry = Registry.load()
    source = noisy_jpeg()
    for name, steps in RECIPES.items():
        recipe = testing.recipe(registry, steps)
        print(f"{name:18} no limit:  {once(recipe, source, registry, None)}", flush=True)
        for _ in range(runs):
            print(f"{name:18} limit {limit:g} s: {once(recipe, source, registry, limit)}", flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0, int(sys.argv[2]) if len(sys.argv) > 2 else 3)

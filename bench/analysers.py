"""What the analysers cost an upload (issue 21 §2: "<= 10 ms per upload"), in process, CPU time.

Each photo gets its reduced copies as an upload makes them (engine/reduced.py's ``make_copies`` at
the server's default sizes, the 768 px one from the 3072 px one when the original is longer), then
``analysis.analyse`` runs on the smallest copy as ``server/http/ingest.py`` does: from the copy's
pixels, which making it left in memory (not decoded again), inside the timed region. Measured,
interleaved, ``repeats`` times: the placeholder analysers together, every installed analyser
together (what an upload runs) and each analyser alone, after one untimed round (a server loads its
analysers' models once). ``time.process_time`` counts every thread's CPU; libvips gets the server's
one thread per render and no operation cache.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pyvips

import photos

#: More photos, when the shared folder is there (its Elephants is an 18 MP progressive JPEG).
SHARED_PHOTOS = photos.ROOT.parent / "shared" / "photos"


def bench_photos() -> list[Path]:
    """``photos.MISS_PHOTOS`` and the shared folder's JPEGs, one of each file name."""
    found = {p.name: p for p in photos.MISS_PHOTOS}
    if SHARED_PHOTOS.is_dir():
        for path in sorted(SHARED_PHOTOS.glob("*.jpg")):
            found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


def upload_copies(data: bytes, settings: Any) -> tuple[dict[str, Any], Any]:
    """The meta (size, copies) and the reduced copies (bytes by key suffix, the smallest one's
    pixels) an upload makes: ``upload.inspect_image``, the upload's own check."""
    from pixline.server.http.upload import inspect_image

    meta, copies = inspect_image(data, settings.limits(), reduced_size=settings.reduced_size,
                                 reduced_small_size=settings.reduced_small_size)
    return {**meta, "id": "bench"}, copies


def _summary(samples: list[float]) -> dict[str, float]:
    return {"median_ms": 1000 * statistics.median(samples), "max_ms": 1000 * max(samples),
            "n": len(samples)}


def analyser_sets(analysers: dict[str, Any]) -> dict[str, list[str]]:
    """What is timed: the placeholders together, every analyser together, each alone."""
    sets = {"placeholders": sorted(n for n, a in analysers.items() if a.placeholder),
            "all installed": sorted(analysers)}
    sets.update({name: [name] for name in sorted(analysers)})
    return {label: names for label, names in sets.items() if names}


def time_sets(analysers: dict[str, Any], photo_inputs: dict[str, tuple], sets: dict[str, list[str]],
              repeats: int, limits: Any) -> dict[str, dict[str, list[float]]]:
    """CPU seconds of each set on each photo, ``repeats`` times, interleaved (set, photo, round);
    raises when an analyser fails (a failure would be timed as a cheap upload)."""
    from pixline.engine import analysis
    from pixline.engine.deadline import Deadline

    samples: dict[str, dict[str, list[float]]] = {label: {p: [] for p in photo_inputs} for label in sets}
    for rep in range(repeats + 1):  # round 0 untimed: models load once, as at a server's start
        for photo, (data, meta, copies) in photo_inputs.items():
            for label, names in sets.items():
                start = time.process_time()
                source = analysis.smallest_source(data, copies, meta, "image bench", limits)
                ctx = analysis.image_context(meta, Deadline())
                found = analysis.analyse(analysers, source, ctx, names, pixels=copies.pixels)
                if rep:
                    samples[label][photo].append(time.process_time() - start)
                failed = [n for n, entry in found.items() if "error" in entry]
                if failed:
                    raise RuntimeError(f"{photo}: analysers {failed} failed: {found}")
    return samples


def bench_analysers(repeats: int = 9) -> dict[str, Any]:
    """CPU ms per upload of the installed analysers, by set: median and max per photo and overall."""
    from pixline.engine.registry import Registry
    from pixline.server.settings import Settings

    settings = Settings()
    registry = Registry.load()
    analysers = dict(registry.analysers)
    sets = analyser_sets(analysers)
    paths = bench_photos()
    inputs = {}
    for path in paths:
        data = path.read_bytes()
        meta, copies = upload_copies(data, settings)
        inputs[path.name] = (data, meta, copies)
    before = pyvips.concurrency_get()
    pyvips.concurrency_set(settings.vips_concurrency or before)
    pyvips.cache_set_max(0)
    try:
        samples = time_sets(analysers, inputs, sets, repeats, settings.limits())
    finally:
        pyvips.concurrency_set(before)
    sizes = {name: f"{meta['width']}×{meta['height']}" for name, (_, meta, _) in inputs.items()}
    out: dict[str, Any] = {"repeats": repeats, "photos": sizes, "sets": sets, "results": {}}
    for label, by_photo in samples.items():
        every = [s for values in by_photo.values() for s in values]
        out["results"][label] = {"overall": _summary(every),
                                 "per_photo": {p: _summary(v) for p, v in by_photo.items()}}
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(bench_analysers(), indent=2))

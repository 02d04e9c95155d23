"""The converter's scenarios: a stream of uploads to every eager preset stored, and one 18 MP upload.

``eager-stream``: 12 photos POSTed one after another to ``pixline serve --amqp`` with one ``pixline
worker`` on RabbitMQ, timed from the first POST until every eager output is in the store; against
raw pyvips making the same presets from one decode per photo in two spawned processes.
``upload``: one 18 MP progressive JPEG: time to 201, and until every eager preset is stored (the
in-process queue of ``pixline serve``).
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import photos
import raw_converter
from procs import Group
from servers import PixlineServer, PixlineWorker


def eager_outputs_per_image() -> int:
    """How many objects an upload's eager job stores with the default recipes (auto: each format)."""
    import tempfile

    from pixline.engine.derivatives import Derivatives
    from pixline.engine.recipefiles import default_recipe_dir, load_recipes
    from pixline.engine.registry import Registry
    from pixline.engine.storage import Store

    registry = Registry.load()
    with tempfile.TemporaryDirectory() as scratch:
        d = Derivatives(Store(f"file://{scratch}"), registry, load_recipes(default_recipe_dir(), registry))
        meta = {"format": "jpeg", "has_alpha": False}
        return sum(len(d.targets(d.recipes[name], "0" * 32, meta)) for name in d.eager_recipes)


def count_derived(store_dir: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(store_dir / "derived"))


def wait_for_outputs(store_dir: Path, expected: int, timeout: float) -> float | None:
    """Monotonic time when ``expected`` derivatives are stored (polled every 20 ms), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_derived(store_dir) >= expected:
            return time.monotonic()
        time.sleep(0.02)
    return None


def pixline_stream(server: PixlineServer, group: Group, store_dir: Path, uploads: list[bytes],
                   per_image: int) -> dict:
    before = count_derived(store_dir)
    group.wait_idle()
    group.start()
    started = time.monotonic()
    for data in uploads:
        server.upload(data)
    posted = time.monotonic()
    done = wait_for_outputs(store_dir, before + per_image * len(uploads), timeout=300)
    if done is None:
        raise RuntimeError("eager-stream: not every eager output was stored within 300 s")
    cpu = group.cpu_since_start()
    return {"seconds": done - started, "uploads_answered_s": posted - started,
            "images_per_s": len(uploads) / (done - started), "cpu_s_per_image": cpu / len(uploads),
            "peak_rss_mb": sorted((round(v / 2**20) for v in group.peak_rss().values()), reverse=True)}


def raw_stream(pool: ProcessPoolExecutor, uploads: list[bytes]) -> dict:
    started = time.monotonic()
    results = list(pool.map(raw_converter.presets, uploads))
    seconds = time.monotonic() - started
    return {"seconds": seconds, "images_per_s": len(uploads) / seconds,
            "cpu_s_per_image": sum(cpu for cpu, _ in results) / len(uploads)}


def raw_pool() -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(raw_converter.warm, range(4)))  # start both processes before any timing
    return pool


def eager_stream(server: PixlineServer, worker: PixlineWorker, store_dir: Path, rounds: int) -> dict:
    per_image = eager_outputs_per_image()
    group = Group("pixline", [server.pid, worker.pid])
    ours, raw = [], []
    with raw_pool() as pool:
        # Warm both sides first (plugins, encoders, fonts for the credit): rounds measure the stream.
        warm = photos.stream_photos(10)[:2]
        pixline_stream(server, group, store_dir, warm, per_image)
        raw_stream(pool, warm)
        for round_no in range(rounds):
            uploads = photos.stream_photos(round_no)
            pair = [("pixline", lambda: pixline_stream(server, group, store_dir, uploads, per_image)),
                    ("raw", lambda: raw_stream(pool, uploads))]
            for name, run in (pair if round_no % 2 == 0 else pair[::-1]):
                (ours if name == "pixline" else raw).append(run())
                last = (ours if name == "pixline" else raw)[-1]
                print(f"  eager-stream {name:<8} round {round_no + 1}: {last['images_per_s']:.2f} images/s",
                      flush=True)
    return {"pixline": ours, "raw": raw, "photos": len(uploads), "outputs_per_image": per_image}


def upload_large(server: PixlineServer, store_dir: Path, large: Path, rounds: int) -> list[dict]:
    """18 MP uploads (a new quality each round, so new bytes): time to 201 and to every preset."""
    import pyvips

    per_image = eager_outputs_per_image()
    group = Group("pixline", [server.pid])
    base = pyvips.Image.new_from_file(str(large))
    out = []
    for round_no in range(rounds):
        data = base.jpegsave_buffer(Q=91 - round_no, interlace=True, optimize_coding=True, keep="none")
        before = count_derived(store_dir)
        group.wait_idle()
        group.start()
        started = time.monotonic()
        server.upload(data)
        answered = time.monotonic()
        done = wait_for_outputs(store_dir, before + per_image, timeout=120)
        out.append({"answered_s": answered - started,
                    "presets_stored_s": (done - started) if done else None,
                    "cpu_s": group.cpu_since_start(),
                    "peak_rss_mb": sorted((round(v / 2**20) for v in group.peak_rss().values()),
                                          reverse=True)})
        print(f"  upload 18 MP round {round_no + 1}: 201 after {out[-1]['answered_s']:.2f} s, presets "
              f"after {out[-1]['presets_stored_s']} s", flush=True)
    return out


def one_upload_presets(photo: Path, rounds: int = 3) -> dict:
    """In process: one upload's eager job (every preset from one decode, outputs side by side)
    against its largest preset alone, in CPU and in wall time (the issue's target: all of them
    within 1.5× the largest alone)."""
    import tempfile

    import pyvips

    from pixline.engine.source import content_id
    from pixline.server.commands.wiring import make_derivatives
    from pixline.server.queue.handler import JobHandler
    from pixline.server.queue.jobs import Job
    from pixline.server.settings import Settings

    base = pyvips.Image.new_from_file(str(photo))
    every, largest, every_wall, largest_wall = [], [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        derivatives = make_derivatives(Settings(store=f"file://{scratch}"))
        handler = JobHandler(derivatives)
        for round_no in range(rounds):
            data = base.jpegsave_buffer(Q=90 - round_no, keep="none")
            image_id = content_id(data)
            width, height = base.width, base.height
            derivatives.store.put_original(image_id, data, {"format": "jpeg", "width": width,
                                                            "height": height, "fields": {}})
            started, wall = time.process_time(), time.monotonic()
            handler.handle(Job(image_id, derivatives.eager_recipes))
            every.append(time.process_time() - started)
            every_wall.append(time.monotonic() - wall)
            target = derivatives.locate(derivatives.recipes["large"], image_id)
            started, wall = time.process_time(), time.monotonic()
            derivatives.render(target, store=False)
            largest.append(time.process_time() - started)
            largest_wall.append(time.monotonic() - wall)
    every.sort(), largest.sort()
    every_wall.sort(), largest_wall.sort()
    return {"every_preset_cpu_s": every[rounds // 2], "largest_alone_cpu_s": largest[rounds // 2],
            "every_preset_wall_s": every_wall[rounds // 2], "largest_alone_wall_s": largest_wall[rounds // 2],
            "presets": list(derivatives.eager_recipes)}

"""Run one route of the hostile manifest in this process; print one JSON line per case, then a summary.

    python -m tests.hostile.run ROUTE WORKDIR

The app is the real one (falcon, the installed plugins, a file store under WORKDIR, the recipes of
tests/hostile/recipes), called in-process like falcon's test client does, so that the CPU and memory
measured are the request's own: CPU seconds of this process (every thread) and its peak RSS (VmHWM,
reset before each case through ``/proc/self/clear_refs``). After the last case the summary gives the
RSS against the idle level measured after a warm-up render, which says whether memory came back.
"""
from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import pyvips
from falcon.testing import TestClient

from pixline.engine import Limits, PixlineError, Source, content_id, testing
from pixline.engine.derivatives import Derivatives
from pixline.server.commands.wiring import make_derivatives
from pixline.server.http.app import create_app
from pixline.server.http.signing import sign_path
from pixline.server.queue.handler import JobHandler, RetryPolicy, run_job
from pixline.server.queue.jobs import Job
from pixline.server.settings import Settings

from . import manifest
from .manifest import Case

RECIPES = Path(__file__).parent / "recipes"
KEY = "hostile-suite-key"
WARM_UP = testing.jpeg_bytes(testing.gradient(320, 240))
NO_LIMITS = Limits(max_bytes=None, max_pixels=None, max_frames=None, max_bands=None,
                   max_sample_bits=None, max_scans=None, max_metadata_chunks=None, max_metadata_bytes=None)


def status_kb(field: str) -> int:
    """A ``kB`` line of /proc/self/status (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


def header_meta(image_id: str, data: bytes) -> dict[str, Any]:
    """Metadata to store an original with, without the limits an upload would apply."""
    meta = {"id": image_id, "fields": {}, "format": "jpeg", "width": 1, "height": 1, "bytes": len(data)}
    try:
        return {**meta, **Source(data, name="stored", limits=NO_LIMITS).describe()}
    except PixlineError:
        pass
    try:
        header = pyvips.Image.new_from_buffer(data, "")
        return {**meta, "format": "tiff", "width": header.width, "height": header.height}
    except pyvips.Error:
        return meta


class Runner:
    """The app over a store in ``workdir`` and the cases of one route."""

    def __init__(self, workdir: Path) -> None:
        self.settings = Settings(store=f"file://{workdir / 'store'}", recipes=str(RECIPES),
                                 signing_key=[KEY])
        self.derivatives: Derivatives = make_derivatives(self.settings)
        self.client = TestClient(create_app(self.derivatives, self.settings, None))
        self.handler = JobHandler.from_settings(self.derivatives, self.settings)
        self.data = {name: f.make() for name, f in manifest.FILES.items()}

    def stored(self, name: str) -> str:
        """The id of corpus file ``name``, stored as an original directly (no upload checks)."""
        data = self.data[name]
        image_id = content_id(data)
        if not self.derivatives.store.has_image(image_id):
            self.derivatives.store.put_original(image_id, data, header_meta(image_id, data))
        return image_id

    def request(self, case: Case) -> tuple[int | str, str]:
        """What the route answered: a status or a queue outcome, and the problem detail or reason."""
        if case.route == "upload":
            result = self.client.simulate_post("/images", body=self.data[case.file])
        elif case.route == "recipe":
            result = self.client.simulate_get(f"/r/{case.target}/{self.stored(case.file)}")
        elif case.route == "adhoc":
            result = self.client.simulate_get(sign_path(f"{case.target}/{self.stored(case.file)}", KEY))
        else:
            job = Job(self.stored(case.file), self.derivatives.eager_recipes, force=True)
            outcome = run_job(self.handler, RetryPolicy(), job)
            return outcome.action, outcome.reason
        detail = result.json.get("detail", "") if result.status_code >= 400 else ""
        return result.status_code, detail

    def warm_up(self) -> int:
        """Upload and render a photo as every route does; the idle RSS (kB) after it."""
        image_id = self.client.simulate_post("/images", body=WARM_UP).json["id"]
        for recipe in ("large", "thumb"):
            self.client.simulate_get(f"/r/{recipe}/{image_id}")
        gc.collect()
        return status_kb("VmRSS")

    def run(self, case: Case) -> dict[str, Any]:
        if case.route != "upload":
            self.stored(case.file)  # storing is not the case's cost
        gc.collect()
        reset_peak()
        cpu, wall = time.process_time(), time.perf_counter()
        got, detail = self.request(case)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        peak = status_kb("VmHWM")
        gc.collect()
        return {"case": case.name, "route": case.route, "got": got, "expect": case.expect,
                "detail": detail, "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
                "peak_mb": round(peak / 1024), "rss_after_mb": round(status_kb("VmRSS") / 1024),
                "cpu_bound": case.cpu_seconds,
                "peak_bound": case.peak_mb}


def main(argv: list[str]) -> int:
    route, workdir = argv[0], Path(argv[1])
    runner = Runner(workdir)
    idle = runner.warm_up()
    for case in manifest.cases(route):
        print(json.dumps(runner.run(case)), flush=True)
    gc.collect()
    print(json.dumps({"summary": route, "idle_mb": round(idle / 1024),
                      "after_mb": round(status_kb("VmRSS") / 1024),
                      "recipes_dir": str(RECIPES.resolve()), "workdir": str(workdir.resolve())}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

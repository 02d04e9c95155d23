"""pixline against raw pyvips on the same work: ratios of medians, measured in one run.

Scenarios (each request is a cache miss unless said otherwise, so the render path is measured):

1. engine:    ``pixline.engine.render`` of a 600 px JPEG recipe, in process, vs raw pyvips
              (``thumbnail_buffer`` + ``jpegsave_buffer`` with the same encoder options);
2. http-miss: ``GET /t/unsafe/resize:w=N/format:t=jpeg/<id>`` on a real ``pixline serve``, one request
              at a time, vs the raw pyvips render of the same width (original read from disk);
3. http-load: the same with ``--concurrency`` clients against the server's gunicorn workers, vs raw
              pyvips on a thread pool of the same size: throughput and median latency;
4. http-hit:  ``GET /r/feed/<id>`` once stored (no render): what the CDN origin does most.

Everything talks to 127.0.0.1 only and every loop is bounded.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyvips

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHOTO = HERE / "TwoWings.jpg"
SLOW_PHOTO = ROOT.parent / "shared" / "photos" / "Elephants_5640x3172.jpg"
JPEG_OPTIONS = dict(Q=82, optimize_coding=True, trellis_quant=True, overshoot_deringing=True, keep="none")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_render(path: Path, width: int) -> bytes:
    """What a hand-written pyvips service does: read, shrink-on-load, encode."""
    data = path.read_bytes()
    image = pyvips.Image.thumbnail_buffer(data, width, height=100_000, size="down")
    return image.jpegsave_buffer(**JPEG_OPTIONS)


class Server:
    def __init__(self, workers: int, store: str) -> None:
        self.port = free_port()
        env = dict(os.environ, PIXLINE_LOG_LEVEL="warning")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pixline.server.commands", "serve", "--bind", f"127.0.0.1:{self.port}",
             "--store", store, "--allow-unsafe", "--workers", str(workers),
             "--render-concurrency", os.environ.get("BENCH_RENDER_CONCURRENCY", "2"),
             "--render-queue-timeout", "60"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("pixline serve did not come up: " + self.proc.stderr.read().decode()[-2000:])

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def upload(self, path: Path) -> str:
        status, body = self.request("POST", "/images", path.read_bytes(),
                                    {"Content-Type": "application/octet-stream"})
        if status not in (200, 201):
            raise RuntimeError(f"upload failed: {status} {body[:200]!r}")
        return json.loads(body)["id"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def summary(ours: list[float], raw: list[float]) -> dict:
    m_ours, m_raw = statistics.median(ours), statistics.median(raw)
    return {"median_ms": round(m_ours * 1000, 1), "raw_median_ms": round(m_raw * 1000, 1),
            "ratio": round(m_ours / m_raw, 2), "n": len(ours),
            "p95_ms": round(sorted(ours)[int(0.95 * (len(ours) - 1))] * 1000, 1)}


def bench_engine(photo: Path, n: int) -> dict:
    from pixline.engine import Source, render
    from pixline.engine.registry import Registry
    from pixline.engine.testing import recipe

    registry = Registry.load()
    ours, raw = [], []
    for i in range(n):  # interleaved, distinct widths: no cache anywhere helps either side
        width = 600 + i
        r = recipe(registry, [{"resize": {"width": width}}, {"format": {"type": "jpeg", "quality": 82}}])
        ours.append(timed(lambda: render(r, Source(photo.read_bytes()), registry)))
        raw.append(timed(raw_render, photo, width))
    return summary(ours, raw)


def bench_http_miss(server: Server, image_id: str, photo: Path, n: int, offset: int) -> dict:
    ours, raw = [], []
    for i in range(n):
        width = 600 + offset + i
        path = f"/t/unsafe/resize:w={width}/format:t=jpeg,q=82/{image_id}"
        start = time.perf_counter()
        status, _ = server.request("GET", path)
        ours.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"{path}: {status}")
        raw.append(timed(raw_render, photo, width))
    return summary(ours, raw)


def bench_http_load(server: Server, image_id: str, photo: Path, n: int, concurrency: int, offset: int) -> dict:
    def ours_one(i: int) -> float:
        path = f"/t/unsafe/resize:w={600 + offset + i}/format:t=jpeg,q=82/{image_id}"
        start = time.perf_counter()
        status, _ = server.request("GET", path)
        if status != 200:
            raise RuntimeError(f"{path}: {status}")
        return time.perf_counter() - start

    def raw_one(i: int) -> float:
        return timed(raw_render, photo, 600 + offset + i)

    results = {}
    for name, fn in (("ours", ours_one), ("raw", raw_one)):
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(fn, range(n)))
        results[name] = (time.perf_counter() - start, latencies)
    (t_ours, l_ours), (t_raw, l_raw) = results["ours"], results["raw"]
    out = summary(l_ours, l_raw)
    out.update({"throughput_rps": round(n / t_ours, 1), "raw_throughput_rps": round(n / t_raw, 1),
                "throughput_ratio": round((n / t_ours) / (n / t_raw), 2), "concurrency": concurrency})
    return out


def bench_http_hit(server: Server, image_id: str, photo: Path, n: int) -> dict:
    server.request("GET", f"/r/feed/{image_id}")  # render and store it once
    ours, raw = [], []
    for _ in range(n):
        start = time.perf_counter()
        status, body = server.request("GET", f"/r/feed/{image_id}")
        ours.append(time.perf_counter() - start)
        raw.append(timed(raw_render, photo, 600))
    return summary(ours, raw) | {"note": "ratio < 1: serving a stored derivative beats rendering"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    pyvips.cache_set_max(0)  # neither side may be helped by libvips' operation cache
    results: dict = {"machine": {"cores": os.cpu_count(), "libvips": ".".join(map(str, (pyvips.version(i) for i in range(3))))}}
    photos = [PHOTO] + ([SLOW_PHOTO] if SLOW_PHOTO.exists() else [])
    with tempfile.TemporaryDirectory() as data:
        server = Server(args.workers, f"file://{data}")
        try:
            for photo in photos:
                n = args.requests if photo == PHOTO else max(5, args.requests // 4)
                image_id = server.upload(photo)
                key = photo.stem
                results[f"{key}/engine"] = bench_engine(photo, n)
                results[f"{key}/http-miss"] = bench_http_miss(server, image_id, photo, n, offset=0)
                results[f"{key}/http-load"] = bench_http_load(server, image_id, photo, n, args.concurrency,
                                                              offset=1000)
                results[f"{key}/http-hit"] = bench_http_hit(server, image_id, photo, n)
        finally:
            server.stop()
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"{'scenario':<30} {'ours ms':>9} {'raw ms':>9} {'ratio':>6} {'p95 ms':>8}  extra")
    for name, r in results.items():
        if name == "machine":
            continue
        extra = ""
        if "throughput_rps" in r:
            extra = (f"{r['throughput_rps']} vs {r['raw_throughput_rps']} req/s "
                     f"(×{r['throughput_ratio']}) at concurrency {r['concurrency']}")
        print(f"{name:<30} {r['median_ms']:>9} {r['raw_median_ms']:>9} {r['ratio']:>6} {r['p95_ms']:>8}  {extra}")
    print(f"medians of {args.requests} requests per scenario (18 MP: a quarter); machine: {results['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

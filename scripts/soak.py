"""A bounded soak of a running cluster (scripts/cluster.py), on loopback only.

    .venv/bin/python scripts/soak.py --state DIR/cluster.json --duration 180 --concurrency 32 \
        --report docs/results/soak-DATE.md

First it uploads ``--seed`` images and waits until their eager presets are stored; then
``--concurrency`` threads send a mix of requests for ``--duration`` seconds (or ``--max-requests``,
whichever comes first) and it reports requests, errors by status, p50/p95/p99 per route (split into
answers from the front's cache and from the origin) and every cluster process's memory over time.

Routes: ``upload`` (a new image each time: the photos of tests/photos with a unique JPEG comment),
``r eager`` (eager presets through the front), ``r pinned`` (digest-pinned URLs), ``r lazy`` (recipes
rendered on first request), ``t signed`` (signed ad-hoc URLs, a few dozen sizes: misses, then hits),
``image info`` (GET /images/{id}), and ``origin stored`` (eager presets of seeded images asked of the
resizers directly, as a CDN's miss would: the resizer's own latency for stored images).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = sorted((ROOT / "tests" / "photos").glob("*.jpg"))
ACCEPTS = ["image/avif,image/webp,*/*", "image/webp,*/*", "*/*"]
#: Mostly reads of stored images, as a CDN origin sees them; renders on demand and uploads (each
#: upload makes the workers render its eager presets) are a few percent, as on a photo site.
MIX = {"r eager": 30, "r pinned": 15, "r lazy": 5, "t signed": 8, "image info": 5, "upload": 1,
       "origin stored": 36}


class Client:
    """One keep-alive connection per host for one thread; loopback only."""

    def __init__(self) -> None:
        self.connections: dict[str, http.client.HTTPConnection] = {}

    def request(self, base: str, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        host = base.split("://", 1)[1]
        if not host.startswith("127.0.0.1:"):
            raise ValueError(f"the soak sends to 127.0.0.1 only, not {host}")
        for attempt in (1, 2):
            connection = self.connections.get(host) or http.client.HTTPConnection(host, timeout=60)
            self.connections[host] = connection
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                self.connections.pop(host, None)
                if attempt == 2 or method != "GET":  # an idle keep-alive connection closed: once more
                    raise
        raise AssertionError("unreachable")


class Bodies:
    """Distinct uploads without re-encoding: a photo with a unique JPEG comment after its SOI."""

    def __init__(self) -> None:
        self.photos = [p.read_bytes() for p in PHOTOS]
        self.count = 0
        self.lock = threading.Lock()

    def next(self) -> bytes:
        with self.lock:
            self.count += 1
            n = self.count
        text = f"pixline soak {os.getpid()} {time.time_ns()} {n}".encode()
        photo = self.photos[n % len(self.photos)]
        return photo[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + photo[2:]


class Soak:
    def __init__(self, state: dict, args: argparse.Namespace) -> None:
        self.state, self.args = state, args
        self.front = state["front"]
        self.origins = [f"http://127.0.0.1:{p}" for p in state["resizers"]]
        self.bodies = Bodies()
        self.images: list[dict] = []  # upload responses
        self.seeded: list[dict] = []
        self.lock = threading.Lock()
        self.results: dict[str, list[tuple[int, float, str]]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.requests = 0
        self.widths = [64 + 32 * n for n in range(24)]
        from pixline.server.http.signing import sign_path  # the same signing as pixline sign

        self.sign = lambda path: sign_path(path, state["signing_key"])

    def upload(self, client: Client) -> tuple[int, dict]:
        status, headers, body = client.request(self.front, "POST", "/images", self.bodies.next(),
                                               {"Content-Type": "image/jpeg"})
        if status in (200, 201):
            with self.lock:
                self.images.append(json.loads(body))
        return status, headers

    def seed(self, count: int, timeout: float = 120) -> None:
        client = Client()
        for _ in range(count):
            status, _ = self.upload(client)
            if status != 201:
                raise SystemExit(f"soak: a seed upload answered {status}")
        deadline = time.monotonic() + timeout
        for image in list(self.images):
            while True:
                _, _, body = client.request(self.front, "GET", f"/images/{image['id']}")
                derivatives = json.loads(body)["derivatives"]
                if all(d.get("complete", True) for d in derivatives.values()):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("soak: the workers did not store the seed images' presets in time")
                time.sleep(0.5)
        self.seeded = list(self.images)

    def one(self, client: Client, route: str) -> tuple[int, dict]:
        with self.lock:
            image = random.choice(self.images)
        seeded = random.choice(self.seeded)
        accept = {"Accept": random.choice(ACCEPTS)}
        eager = random.choice(["thumb", "feed", "large"])
        if route == "upload":
            return self.upload(client)
        if route == "r eager":
            return client.request(self.front, "GET", image["urls"][eager], headers=accept)[:2]
        if route == "r pinned":
            return client.request(self.front, "GET", image["pinned_urls"][eager], headers=accept)[:2]
        if route == "r lazy":
            return client.request(self.front, "GET", image["urls"][random.choice(["social", "feed-2x"])],
                                  headers=accept)[:2]
        if route == "t signed":
            path = self.sign(f"resize:w={random.choice(self.widths)}/format:t=webp,q=70/{image['id']}")
            return client.request(self.front, "GET", path)[:2]
        if route == "image info":
            return client.request(self.front, "GET", f"/images/{image['id']}")[:2]
        if route == "origin stored":
            return client.request(random.choice(self.origins), "GET", seeded["urls"][eager], headers=accept)[:2]
        raise ValueError(route)

    def run_thread(self, deadline: float, first: bool = False) -> None:
        mix = {route: weight for route, weight in MIX.items() if route in self.args.routes}
        client, routes, weights = Client(), list(mix), list(mix.values())
        every = list(routes) if first else []  # one thread starts with each route once: all are covered
        while time.monotonic() < deadline:
            with self.lock:
                if self.requests >= self.args.max_requests:
                    return
                self.requests += 1
            route = every.pop(0) if every else random.choices(routes, weights)[0]
            started = time.perf_counter()
            try:
                status, headers = self.one(client, route)
                cache = headers.get("x-cache-status", "-") if route != "origin stored" else "origin"
            except (OSError, http.client.HTTPException) as exc:
                status, cache = 0, type(exc).__name__
                client = Client()
            elapsed = time.perf_counter() - started
            with self.lock:
                self.results[route].append((status, elapsed, cache))


def process_tree(root: int) -> dict[int, str]:
    """Every process under ``root`` (honcho) with a short label from its command line."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                children[ppid].append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            found[child] = label(cmd)
            todo.append(child)
    for pid, name in found.items():  # gunicorn: the master's children are its workers
        parent = next((p for p, kids in children.items() if pid in kids), None)
        if parent in found and found[parent] == name and name.startswith(("media", "resizer")):
            found[pid] = f"{name} (gunicorn worker)"
    return {pid: name for pid, name in found.items() if not name.startswith("python")}


def label(cmd: str) -> str:
    for key in ("--role media", "--role resizer", "pixline worker", "nginx", "weed", "honcho"):
        if key in cmd:
            name = key.replace("--role ", "").replace("pixline ", "")
            port = next((part for part in cmd.split() if part.startswith("127.0.0.1:")), "")
            return f"{name} {port}".strip()
    return "python helper" if "python" in cmd.split(" ")[0] else cmd[:40]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def report(soak: Soak, memory: list[tuple[float, dict[int, float]]], names: dict[int, str], seconds: float) -> str:
    lines = [f"{soak.requests} requests in {seconds:.0f} s ({soak.requests / seconds:.0f}/s) at concurrency "
             f"{soak.args.concurrency}; {len(soak.images)} images ({len(soak.seeded)} seeded)", "",
             "| route | answered by | requests | statuses | p50 ms | p95 ms | p99 ms |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
    for route in soak.args.routes:
        by_cache: dict[str, list] = defaultdict(list)
        for status, elapsed, cache in soak.results.get(route, []):
            by_cache["front cache" if cache == "HIT" else "origin"].append((status, elapsed))
        for where, rows in sorted(by_cache.items()):
            statuses = Counter(s for s, _ in rows)
            times = [e for _, e in rows]
            lines.append(f"| {route} | {where} | {len(rows)} | "
                         f"{', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))} | "
                         f"{percentile(times, .5):.0f} | {percentile(times, .95):.0f} | {percentile(times, .99):.0f} |")
    lines += ["", "Memory (RSS, MiB) of every cluster process, sampled through the run:", "",
              "| process | pid | start | " + " | ".join(f"{t:.0f} s" for t, _ in memory[1:-1]) + " | end |",
              "| --- | ---: | ---: | " + " | ".join("---:" for _ in memory[1:-1]) + " | ---: |"]
    for pid, name in sorted(names.items(), key=lambda kv: kv[1]):
        values = [sample.get(pid) for _, sample in memory]
        lines.append(f"| {name} | {pid} | " + " | ".join("-" if v is None else f"{v:.0f}" for v in values) + " |")
    return "\n".join(lines) + "\n"


def summary(soak: Soak) -> dict:
    statuses: Counter[int] = Counter()
    for rows in soak.results.values():
        statuses.update(status for status, _, _ in rows)
    origin = [e for s, e, _ in soak.results.get("origin stored", []) if s == 200]
    return {"requests": soak.requests, "statuses": {str(k): v for k, v in statuses.items()},
            "routes": {route: len(rows) for route, rows in soak.results.items()},
            "origin_stored_p95_ms": percentile(origin, .95)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A bounded soak of a running pixline cluster (loopback only).")
    parser.add_argument("--state", required=True, help="the cluster's cluster.json")
    parser.add_argument("--duration", type=float, default=180)
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=30, help="images uploaded and rendered before the clock starts")
    parser.add_argument("--routes", default=",".join(MIX),
                        help=f"comma-separated routes of the mix to send (default: all of {', '.join(MIX)})")
    parser.add_argument("--report", help="also write the report (markdown) here")
    parser.add_argument("--json", help="write a machine-readable summary here")
    args = parser.parse_args(argv)
    args.routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if not args.routes or set(args.routes) - set(MIX):
        parser.error(f"--routes: choose among {', '.join(MIX)}")
    state = json.loads(Path(args.state).read_text())
    soak = Soak(state, args)
    soak.seed(args.seed)
    names = process_tree(state["honcho_pid"])
    memory = [(0.0, {pid: rss_mib(pid) for pid in names})]
    started = time.monotonic()
    deadline = started + args.duration
    threads = [threading.Thread(target=soak.run_thread, args=(deadline, n == 0), daemon=True)
               for n in range(args.concurrency)]
    for thread in threads:
        thread.start()
    step = max(5.0, args.duration / 6)
    while time.monotonic() < deadline - 1:
        time.sleep(min(step, deadline - time.monotonic()))
        memory.append((time.monotonic() - started, {pid: rss_mib(pid) for pid in names}))
    for thread in threads:  # requests in flight at the deadline finish (60 s timeout each)
        thread.join(timeout=max(0.0, deadline + 70 - time.monotonic()))
    memory.append((time.monotonic() - started, {pid: rss_mib(pid) for pid in names}))
    text = report(soak, memory, names, time.monotonic() - started)
    print(text)
    if args.report:
        Path(args.report).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(summary(soak), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

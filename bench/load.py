"""The load generator: wrk (Debian's package), driven with a Lua script that walks a list of paths.

wrk is a C client on epoll: at c=32 it costs a few percent of a core where a Python client would eat
the server's CPU. Every request takes the next path of its list (threads take interleaved slices), so
a miss scenario never asks for the same URL twice. Its own CPU is measured and reported too.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


LUA = r"""
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local nthreads = tonumber(os.getenv("BENCH_THREADS"))
local header_lines = os.getenv("BENCH_HEADERS") or ""
local headers = {}
for name, value in string.gmatch(header_lines, "([^:|]+):([^|]*)") do headers[name] = value end
local made = 0
setup = function(thread) thread:set("tid", made); made = made + 1 end
local sent = 0
request = function()
  local i = (tid + sent * nthreads) % #paths + 1
  sent = sent + 1
  return wrk.format("GET", paths[i], headers)
end
done = function(summary, latency, requests)
  local p = {}
  for _, q in ipairs({50, 90, 95, 99}) do p[tostring(q)] = latency:percentile(q) end
  io.write("BENCH-JSON ", string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "p50_us": %d, "p90_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.status, summary.errors.timeout,
    summary.errors.connect, summary.errors.read, p["50"], p["90"], p["95"], p["99"],
    latency.max, latency.mean))
end
"""


def ensure_wrk() -> str:
    """The wrk binary; installed from Debian with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing Debian's wrk (the load generator)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env,
                          stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("bench: the load generator wrk is missing: sudo apt-get install wrk "
                     "(Debian/Ubuntu) or brew install wrk (macOS)")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LoadResult:
    requests: int
    ok: int
    seconds: float
    bytes: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int            # non-2xx/3xx responses (503s included)
    socket_errors: int     # timeouts, connect and read errors
    client_cpu: float      # CPU seconds wrk used

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


class Wrk:
    def __init__(self) -> None:
        self.binary = ensure_wrk()
        self.dir = Path(tempfile.mkdtemp(prefix="pixline-bench-wrk-"))
        (self.dir / "walk.lua").write_text(LUA)

    def run(self, base_url: str, paths: list[str], connections: int, seconds: float,
            threads: int = 1, headers: dict[str, str] | None = None, timeout: float = 30) -> LoadResult:
        """``paths`` against ``base_url`` with ``connections`` kept-alive connections for ``seconds``."""
        listing = self.dir / f"paths-{time.monotonic_ns()}.txt"
        listing.write_text("\n".join(paths) + "\n")
        env = dict(os.environ, BENCH_PATHS=str(listing), BENCH_THREADS=str(threads),
                   BENCH_HEADERS="|".join(f"{k}:{v}" for k, v in (headers or {}).items()))
        cmd = [self.binary, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
               f"--timeout={timeout:g}s", "-s", str(self.dir / "walk.lua"), base_url]
        before = children_cpu()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        cpu = children_cpu() - before  # wrk is the only child reaped meanwhile
        out, err = proc.stdout, proc.stderr
        listing.unlink()
        line = next((l for l in out.splitlines() if l.startswith("BENCH-JSON ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {err[-1000:]} {out[-1000:]}")
        r = json.loads(line.split(" ", 1)[1])
        socket_errors = r["timeouts"] + r["connect_errors"] + r["read_errors"]
        return LoadResult(
            requests=r["requests"], ok=r["requests"] - r["status_errors"],
            seconds=r["duration_us"] / 1e6, bytes=r["bytes"],
            p50_ms=r["p50_us"] / 1000, p95_ms=r["p95_us"] / 1000, p99_ms=r["p99_us"] / 1000,
            max_ms=r["max_us"] / 1000, errors=r["status_errors"], socket_errors=socket_errors,
            client_cpu=cpu)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

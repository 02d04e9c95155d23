"""The scenarios: each runs its sides in interleaved rounds and returns plain dicts for the report.

A *side* is one server measured as a process group (CPU from /proc, peak RSS per process) under wrk.
Miss scenarios give every request a URL never asked before on either side (width × a fit-inside box
height that never binds), so no cache anywhere can answer one.
"""
from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import Callable

from load import LoadResult, Wrk
from procs import Group


@dataclass
class Side:
    name: str
    base_url: str
    group: Group
    path: Callable[[int], str]   # the n-th request's path
    headers: dict[str, str] | None = None


def _run_side(wrk: Wrk, side: Side, paths: list[str], connections: int, seconds: float,
              distinct: bool) -> dict:
    side.group.wait_idle()
    side.group.start()
    result: LoadResult = wrk.run(side.base_url, paths, connections, seconds, headers=side.headers)
    if distinct and result.requests > len(paths):
        # wrk walks its list round and round: past its end a "miss" round measures stored outputs.
        raise RuntimeError(f"{side.name}: {result.requests} requests but {len(paths)} distinct paths; "
                           "give the scenario more paths per round")
    cpu = side.group.cpu_since_start()
    peaks = side.group.peak_rss()
    return {"ok": result.ok, "errors": result.errors, "socket_errors": result.socket_errors,
            "seconds": result.seconds, "rps": result.throughput, "p50_ms": result.p50_ms,
            "p95_ms": result.p95_ms, "p99_ms": result.p99_ms, "cpu_s": cpu,
            "client_cpu_s": result.client_cpu, "bytes": result.bytes, "requests": result.requests,
            "peak_rss": sorted(peaks.values(), reverse=True)}


def _summarise(rounds: list[dict]) -> dict:
    ok = sum(r["ok"] for r in rounds)
    requests = sum(r["requests"] for r in rounds)
    return {
        "rounds": len(rounds),
        "ok": ok,
        "errors": sum(r["errors"] for r in rounds),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
        "rps": statistics.median(r["rps"] for r in rounds),
        "rps_range": [round(min(r["rps"] for r in rounds), 1), round(max(r["rps"] for r in rounds), 1)],
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p95_ms": statistics.median(r["p95_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "cpu_ms_per_ok": 1000 * sum(r["cpu_s"] for r in rounds) / ok if ok else None,
        "client_cpu_ms_per_request": 1000 * sum(r["client_cpu_s"] for r in rounds) / requests
        if requests else None,
        "bytes_per_response": sum(r["bytes"] for r in rounds) / requests if requests else None,
        "peak_rss_mb": [round(max(r["peak_rss"][i] for r in rounds if len(r["peak_rss"]) > i) / 2**20)
                        for i in range(max(len(r["peak_rss"]) for r in rounds))],
    }


def interleaved(wrk: Wrk, sides: list[Side], rounds: int, connections: int, seconds: float,
                paths_per_round: int, distinct: bool = True) -> dict[str, dict]:
    """Run every side once per round, the order rotating each round; summaries by side name."""
    results: dict[str, list[dict]] = {s.name: [] for s in sides}
    counter = itertools.count()
    for round_no in range(rounds):
        order = sides[round_no % len(sides):] + sides[:round_no % len(sides)]
        for side in order:
            if distinct:
                start = next(counter) * paths_per_round
                paths = [side.path(start + i) for i in range(paths_per_round)]
            else:
                paths = [side.path(i) for i in range(paths_per_round)]
            results[side.name].append(_run_side(wrk, side, paths, connections, seconds, distinct))
            print(f"  {side.name:<22} round {round_no + 1}: {results[side.name][-1]['rps']:.1f} req/s, "
                  f"p95 {results[side.name][-1]['p95_ms']:.0f} ms, errors "
                  f"{results[side.name][-1]['errors']}", flush=True)
    return {name: _summarise(r) for name, r in results.items()}


def miss_path(names: list[str], path_for: Callable[[str, int, int], str], widths: range,
              box_start: int) -> Callable[[int], str]:
    """The n-th miss URL: photo n mod k, then the next width of ``widths``, then the next fit-inside
    box height from ``box_start`` (taller than any output: it changes the URL, not the image)."""
    def path(n: int) -> str:
        name = names[n % len(names)]
        width = widths[(n // len(names)) % len(widths)]
        box = box_start + n // (len(names) * len(widths))
        return path_for(name, width, box)
    return path

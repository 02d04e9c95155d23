"""The hostile suite: every file and request of tests/hostile/manifest.py through upload, a recipe URL,
an ad-hoc URL and the queue handler, each answered as the manifest says within its CPU and memory
bounds, and memory back near idle after each route.

Each route runs in a process of its own (``python -m tests.hostile.run``) so that its peak RSS is the
requests' and not the test session's. The bounds are resources spent (CPU seconds, megabytes), not
elapsed time: a loaded machine does not move them.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from .manifest import ROUTES, Case, cases

ROOT = Path(__file__).resolve().parents[2]
#: RSS a route may keep after its last case above the idle level of its warm-up: the byte-bounded
#: watermark cache (64 MB) and what malloc keeps of its arenas.
AFTER_MB = 128
ALL_CASES = [case for route in ROUTES for case in cases(route)]


def run_route(route: str, workdir: Path) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "tests.hostile.run", route, str(workdir)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {"cases": {row["case"]: row for row in rows if "case" in row},
            "summary": next(row for row in rows if "summary" in row), "log": result.stderr}


@pytest.fixture(scope="module")
def route_results(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """The results of a route, run once per test module."""
    done: dict[str, dict[str, Any]] = {}

    def get(route: str) -> dict[str, Any]:
        if route not in done:
            done[route] = run_route(route, tmp_path_factory.mktemp(f"hostile-{route}"))
        return done[route]

    return get


def test_every_route_has_cases_and_every_file_is_tried() -> None:
    from .manifest import FILES, REQUESTS

    assert {case.route for case in ALL_CASES} == set(ROUTES)
    assert {case.file for case in ALL_CASES if case.route == "upload"} == set(FILES)
    assert all(r.file in FILES for r in REQUESTS.values())


@pytest.mark.parametrize("case", ALL_CASES, ids=[f"{c.route}:{c.name}" for c in ALL_CASES])
def test_hostile_case(case: Case, route_results: Callable[[str], dict[str, Any]]) -> None:
    results = route_results(case.route)
    row = results["cases"][case.name]
    assert row["got"] == case.expect, f"{case.name}: {row['detail']}"
    assert row["cpu_seconds"] <= case.cpu_seconds, row
    assert row["peak_mb"] <= case.peak_mb, row
    # Answers never show where the server keeps its files.
    summary = results["summary"]
    for path in (summary["recipes_dir"], summary["workdir"]):
        assert path not in row["detail"]


@pytest.mark.parametrize("route", ROUTES)
def test_memory_comes_back_near_idle(route: str, route_results: Callable[[str], dict[str, Any]]) -> None:
    summary = route_results(route)["summary"]
    assert summary["after_mb"] <= summary["idle_mb"] + AFTER_MB, summary


def test_a_job_that_cannot_succeed_is_dead_lettered_with_its_reason(
        route_results: Callable[[str], dict[str, Any]]) -> None:
    rows = route_results("queue")["cases"]
    assert "over the limit of 5" in rows["float-bands"]["detail"]
    assert "more than 100 scans" in rows["scan-flood"]["detail"]

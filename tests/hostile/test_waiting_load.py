"""Identical requests waiting on one shared render, against a real ``pixline serve`` (issue 18,
"Requests waiting on one shared render"; docs/security.md).

Two workers, default limits. In three waves two seconds apart, each of 180 requests at once: 90
identical GETs of a not-yet-rendered ``/r/`` URL whose render takes 6 s (the test-only ``slow`` step),
45 identical playground POSTs of a 6 s recipe from one client, and 45 of the same from 45 client
addresses (``X-Forwarded-For``, which uvicorn takes from a proxy on loopback). Before the fix, the
identical requests waited on the one render without a slot or a deadline and took every thread of
both workers: ``/healthz`` and stored images timed out for seconds. Now, every half second
throughout, ``/healthz`` and a stored ``/r/`` image must answer 200 within 2 s; the identical requests
past the waiting bounds must get 503 (problem+json, ``Retry-After``) at once, the one client's past
its playground bound 429, and every request an answer (no hang). Loopback only, about 15 s.
"""
from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from pixline.engine import testing
from tests import slow
from tests.server.test_gunicorn import pixline_serve

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "waiting-load-token"
RENDER_SECONDS = 6
SLOW_STEPS = f"steps:\n  - slow: {{seconds: {RENDER_SECONDS}}}\n  - resize: {{width: 64}}\n  - format: {{type: jpeg}}\n"
WAVES = (0.0, 2.0, 4.0)
IDENTICAL_GETS = 90
PLAYGROUND_ONE_CLIENT = 45
PLAYGROUND_MANY_CLIENTS = 45
ANSWER_WITHIN = 2.0
#: An attacker's request unanswered after this is a hang (a follower waits at most its leader's
#: slot wait + render time limit + store allowance: 45 s by default; these renders take 6 s).
HANG_SECONDS = 30.0


@dataclass(frozen=True)
class Answer:
    kind: str
    status: int  # 0: no answer (the error is in ``error``)
    retry_after: str | None = None
    content_type: str | None = None
    seconds: float = 0.0
    error: str = ""


def attack(port: int, kind: str, method: str, path: str, body: bytes | None = None,
           headers: dict[str, str] | None = None) -> Answer:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_SECONDS)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return Answer(kind, response.status, response.getheader("Retry-After"),
                      response.getheader("Content-Type"), time.monotonic() - started)
    except OSError as exc:
        return Answer(kind, 0, seconds=time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def fire_waves(pool: ThreadPoolExecutor, port: int, image_id: str) -> list[Future]:
    """Each wave at its time: the identical GETs and the playground POSTs, all at once."""
    futures: list[Future] = []
    playground = f"/playground?image={image_id}"
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/yaml"}
    body = SLOW_STEPS.encode()
    start = time.monotonic()
    for wave, at in enumerate(WAVES):
        time.sleep(max(0.0, start + at - time.monotonic()))
        for _ in range(IDENTICAL_GETS):
            futures.append(pool.submit(attack, port, "get", "GET", f"/r/sluggish/{image_id}"))
        for _ in range(PLAYGROUND_ONE_CLIENT):
            futures.append(pool.submit(attack, port, "one-client", "POST", playground, body, auth))
        for n in range(PLAYGROUND_MANY_CLIENTS):
            address = {"X-Forwarded-For": f"198.51.{wave}.{n + 1}"}
            futures.append(pool.submit(attack, port, "many-clients", "POST", playground, body,
                                       {**auth, **address}))
    return futures


def probe_until(done: threading.Event, port: int, paths: list[str]) -> list[tuple[str, str, float]]:
    """Every half second until ``done``: GET each path on a fresh connection; (path, result, s)."""
    results = []
    while not done.is_set():
        started = time.monotonic()
        for path in paths:
            begin = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_WITHIN)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                outcome = str(response.status)
            except OSError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            finally:
                conn.close()
            results.append((path, outcome, time.monotonic() - begin))
        done.wait(max(0.0, 0.5 - (time.monotonic() - started)))
    return results


def summary(answers: list[Answer]) -> dict[str, dict[int, int]]:
    """How many answers of each status each kind of request got (printed: ``pytest -s``)."""
    counts: dict[str, dict[int, int]] = {}
    for answer in answers:
        kind = counts.setdefault(answer.kind, {})
        kind[answer.status] = kind.get(answer.status, 0) + 1
    return counts


def assert_refusals(answers: list[Answer], status: int) -> None:
    for answer in answers:
        assert answer.status == status, answer
        assert answer.content_type == "application/problem+json", answer
        assert answer.retry_after is not None and int(answer.retry_after) >= 1, answer
        assert answer.seconds < ANSWER_WITHIN + 1, answer  # refused at once, not after waiting


def test_identical_requests_never_stall_health_and_stored_images(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for recipe in (ROOT / "recipes").glob("*.yaml"):
        shutil.copy(recipe, recipes)
    (recipes / "sluggish.yaml").write_text("eager: false\n" + SLOW_STEPS)
    env = {**slow.env(), "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}", "--upload-token", TOKEN,
                       "--recipes", str(recipes), env=env) as (client, _):
        status, _, body = client.request("POST", "/images", body=testing.jpeg_bytes(testing.gradient(320, 240)),
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 201, body
        image_id = json.loads(body)["id"]
        stored = f"/r/thumb/{image_id}"
        assert client.request("GET", stored)[0] == 200  # rendered and stored: later probes only read it

        done = threading.Event()
        futures: list[Future] = []

        def run_attack() -> None:
            futures.extend(fire_waves(pool, client.port, image_id))
            for future in list(futures):
                future.result()
            done.set()

        with ThreadPoolExecutor(max_workers=256) as pool:
            attacker = threading.Thread(target=run_attack, daemon=True)
            attacker.start()
            probes = probe_until(done, client.port, ["/healthz", stored])
            attacker.join(HANG_SECONDS)
            answers = [f.result() for f in futures]

    print(summary(answers))
    late = [p for p in probes if p[1] != "200" or p[2] > ANSWER_WITHIN]
    assert len(probes) >= 2 * 2 * RENDER_SECONDS, probes  # probed all along the renders
    assert not late, f"{len(late)} of {len(probes)} probes failed or were late: {late[:6]}"

    hung = [a for a in answers if a.status == 0]
    assert not hung, f"{len(hung)} requests got no answer: {hung[:3]}"
    by_kind = {kind: [a for a in answers if a.kind == kind] for kind in ("get", "one-client", "many-clients")}
    statuses = {kind: {a.status for a in group} for kind, group in by_kind.items()}
    assert statuses["get"] <= {200, 503} and statuses["many-clients"] <= {200, 503}, statuses
    assert statuses["one-client"] <= {200, 429, 503}, statuses
    # The excess is refused at once: per worker one render, 8 followers of it, and (one client) 2 in
    # progress; the 90 GETs of the first wave alone leave 72 over.
    assert len([a for a in by_kind["get"] if a.status == 503]) >= IDENTICAL_GETS - 2 * 9, statuses
    assert len([a for a in by_kind["many-clients"] if a.status == 503]) >= PLAYGROUND_MANY_CLIENTS - 2 * 9
    assert_refusals([a for a in by_kind["get"] + by_kind["many-clients"] if a.status == 503], 503)
    # The one client has at most 2 in progress per worker: the rest of its requests are refused, most
    # with 429 (its own bound), some with 503 (the render's followers were full when it came).
    refused = [a for a in by_kind["one-client"] if a.status != 200]
    assert len(refused) >= len(WAVES) * (PLAYGROUND_ONE_CLIENT - 2 * 2)
    too_many = [a for a in refused if a.status == 429]
    assert len(too_many) >= PLAYGROUND_ONE_CLIENT
    assert_refusals(too_many, 429)
    assert_refusals([a for a in refused if a.status == 503], 503)
    # The work the bounds let in was done: the shared renders answered 200 to their leaders and
    # followers.
    assert any(a.status == 200 for a in by_kind["get"]) and any(a.status == 200 for a in by_kind["many-clients"])

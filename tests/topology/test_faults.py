"""Faults on the real processes of the topology (docs/deploy.md): a resizer killed under load behind
the front, a converter killed mid-job, S3 going away and coming back, a job delivered twice.

The broker outage (uploads during it get every eager preset afterwards) is tests/queue/test_outbox.py.
"""
from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from pixline.engine import testing
from pixline.engine.errors import NotFoundError
from pixline.engine.storage import Store
from pixline.server.commands.wiring import make_derivatives
from pixline.server.queue.handler import JobHandler
from pixline.server.queue.jobs import Job
from pixline.server.queue.publisher import AmqpJobPublisher

from tests import slow
from tests.queue.helpers import RECIPES, store_photo, wait_until
from tests.queue.tcp_proxy import TcpProxy, free_port

from .conftest import answers, get

pytestmark = [pytest.mark.slow]
EAGER = ("card", "small", "square")  # four outputs: card is WebP and JPEG


def serve(spawn, role: str, store: str, *extra: str, name: str | None = None, env: dict | None = None):
    port = free_port()
    process = spawn("serve", "--role", role, "--bind", f"127.0.0.1:{port}", "--workers", "1",
                    "--store", store, "--recipes", str(RECIPES), *extra, name=name or role, env=env)
    wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 60, f"the {role} role to listen")
    return process, port


def assert_whole(store: Store, keys: list[str]) -> None:
    """Every object of ``keys`` that exists decodes whole. An index entry is written before its object
    (so a DELETE finds it): a write cut off by the fault leaves the entry without an object, which is
    absent, not partial, and the job's retry writes it later."""
    for key in keys:
        try:
            data = store.get(key)
        except NotFoundError:
            continue
        testing.decode(data).avg()  # decodes every pixel: a truncated object fails here


def test_a_resizer_killed_under_load_costs_at_most_the_requests_in_flight(
        spawn, front, store, store_url, photo_bytes) -> None:
    image_id = store_photo(store, photo_bytes)
    (one, port_one), (_, port_two) = (serve(spawn, "resizer", store_url, name=f"resizer{n}") for n in (1, 2))
    media_port = free_port()  # nothing listens: this test sends no uploads
    nginx = front(media_port, [port_one, port_two])
    assert get(f"{nginx.url}/r/small/{image_id}")[0] == 200  # rendered and stored once
    concurrency, results, lock = 8, [], threading.Lock()
    stop_at = time.monotonic() + 8
    killed_at: list[float] = []

    def load(n: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            # A distinct query string per request: a miss at the front, a stored read at a resizer.
            status, headers, _ = get(f"{nginx.url}/r/small/{image_id}?n={n}-{i}", timeout=20)
            with lock:
                results.append((time.monotonic(), status, headers.get("x-upstream", "")))

    threads = [threading.Thread(target=load, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    one.signal(signal.SIGKILL)  # the gunicorn master and its worker: the whole process group
    killed_at.append(time.monotonic())
    for thread in threads:
        thread.join(30)
    failures = [r for r in results if r[1] != 200]
    after = [r for r in results if r[0] > killed_at[0] + 0.5 and r[1] == 200]
    assert len(failures) <= concurrency, failures
    assert len(after) >= 10, f"only {len(after)} requests succeeded after the kill"
    assert all(f":{port_two}" in r[2] for r in after[-10:]), after[-10:]
    assert any(f":{port_one}" in r[2] for r in results if r[0] < killed_at[0])  # both served before


@pytest.mark.amqp
def test_a_converter_killed_mid_job_leaves_nothing_partial_and_the_other_finishes_it(
        spawn, slow_settings, slow_derivatives, store, stored_photo) -> None:
    # The slow recipes hold each of the four outputs 2 s (the test-only slow plugin), so "mid-job"
    # is real: killed after the first output, three are left.
    settings, derivatives = slow_settings, slow_derivatives
    common = ["worker", "--amqp", settings.amqp, "--queue", settings.queue, "--store", settings.store,
              "--recipes", settings.recipes, "--worker-concurrency", "1"]
    workers = [spawn(*common, env=slow.env(), name=f"converter{n}") for n in (1, 2)]
    publisher = AmqpJobPublisher(settings)
    publisher.publish(Job(stored_photo, EAGER))
    publisher.close()
    wait_until(lambda: store.derived_keys(stored_photo), 60, "the first output")
    busy = wait_until(lambda: next((w for w in workers if "rendered" in w.log()), None), 10, "the busy one")
    other = next(w for w in workers if w is not busy)
    busy.signal(signal.SIGKILL)
    busy.wait(10)
    partial = [k for k in store.derived_keys(stored_photo) if store.exists(k)]
    assert 1 <= len(partial) < 4, "the converter was not killed mid-job"
    assert_whole(store, partial)
    wait_until(lambda: all(e["stored"] for e in derivatives.eager_status(
        stored_photo, store.get_meta(stored_photo)).values()), 60, "the other converter")
    wait_until(lambda: "done" in other.log(), 10, "the other converter's report")
    keys = store.derived_keys(stored_photo)
    assert len(keys) == 4
    assert_whole(store, keys)


@pytest.mark.amqp
def test_a_job_delivered_twice_produces_the_same_objects(spawn, settings, store, stored_photo, photo_bytes,
                                                         tmp_path) -> None:
    # What one delivery makes: the same job handled once, in this process, on a store of its own.
    reference = make_derivatives(settings, store=Store(f"file://{tmp_path / 'reference'}"))
    store_photo(reference.store, photo_bytes)
    JobHandler(reference).handle(Job(stored_photo, EAGER))
    expected = {key: reference.store.get(key) for key in reference.store.derived_keys(stored_photo)}
    assert len(expected) == 4
    common = ["worker", "--amqp", settings.amqp, "--queue", settings.queue, "--store", settings.store,
              "--recipes", str(RECIPES), "--worker-concurrency", "1"]
    workers = [spawn(*common, name=f"converter{n}") for n in (1, 2)]
    publisher = AmqpJobPublisher(settings)
    for job in (Job(stored_photo, EAGER), Job(stored_photo, EAGER, force=True)):
        publisher.publish(job)  # the second copy renders everything again, on the other converter
    publisher.close()
    done = re.compile(rf"job {stored_photo} \[[^\]]*\] attempt \d+ done")  # the job log's line (pixline.jobs)
    wait_until(lambda: sum(len(done.findall(w.log())) for w in workers) == 2, 90,
               "both deliveries")
    assert store.derived_keys(stored_photo) == sorted(expected)  # each object once in the index
    assert {key: store.get(key) for key in expected} == expected  # byte for byte what one render makes


@pytest.mark.s3
def test_s3_away_answers_503_with_retry_after_never_500_and_leaves_nothing_partial(
        spawn, s3_settings, s3_store_url, photo_bytes, photos) -> None:
    proxy = TcpProxy(int(s3_settings["endpoint_url"].rsplit(":", 1)[1])).up()
    # botocore's own retries, fewer: a request fails within seconds while S3 is away.
    process, port = serve(spawn, "all", s3_store_url, "--s3-endpoint", f"http://{proxy.url_host}",
                          env={"AWS_MAX_ATTEMPTS": "2"})
    base = f"http://127.0.0.1:{port}"
    try:
        image_id = json.loads(_post(f"{base}/images", photo_bytes)[2])["id"]
        assert get(f"{base}/r/small/{image_id}")[0] == 200
        proxy.down()
        other = (photos / "Wood.jpg").read_bytes()
        for method, path, body in [("GET", f"/r/square/{image_id}", None), ("GET", f"/images/{image_id}", None),
                                   ("POST", "/images", other), ("DELETE", f"/images/{image_id}", None),
                                   ("GET", "/healthz", None)]:
            status, headers, text = _request(method, f"{base}{path}", body)
            assert status == 503, (method, path, status, text)
            assert headers.get("retry-after") and headers["content-type"] == "application/problem+json"
        proxy.up()
        wait_until(lambda: get(f"{base}/healthz")[0] == 200, 30, "the store to answer again")
        assert _post(f"{base}/images", other)[0] == 201
        assert get(f"{base}/r/square/{image_id}")[0] == 200
        info = json.loads(get(f"{base}/images/{image_id}")[2])
        assert info["derivatives"]["small"]["stored"] and info["derivatives"]["square"]["stored"]
        store = Store(s3_store_url, endpoint_url=s3_settings["endpoint_url"], key=s3_settings["key"],
                      secret=s3_settings["secret"])
        assert_whole(store, store.derived_keys(image_id))
        for stored in store.image_ids():
            assert store.get_original(stored)  # meta is written after its original: never alone
        # The request log (JSON off a terminal): every answer's status, none a 500. (A plain
        # " 500 " search also matched a job line's "in 500 ms".)
        statuses = [json.loads(line).get("status") for line in process.log().splitlines()
                    if line.startswith("{") and '"pixline.access"' in line]
        assert statuses and 500 not in statuses
    finally:
        proxy.down()


def _request(method: str, url: str, body: bytes | None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _post(url: str, body: bytes) -> tuple[int, dict, bytes]:
    return _request("POST", url, body)


def test_a_rolling_restart_of_the_resizers_under_load_loses_no_request(
        spawn, front, store, store_url, photo_bytes) -> None:
    # Each resizer in turn is stopped gracefully (SIGTERM: it finishes what it has, stops accepting)
    # and started again on its port once the other serves; nginx retries a refused or reset
    # connection on the other resizer (proxy_next_upstream error). Every response is counted.
    image_id = store_photo(store, photo_bytes)
    resizers = [serve(spawn, "resizer", store_url, name=f"resizer{n}") for n in (1, 2)]
    ports = [port for _, port in resizers]
    nginx = front(free_port(), ports)  # nothing listens on the media port: no uploads here
    assert get(f"{nginx.url}/r/small/{image_id}")[0] == 200  # rendered and stored once
    results, lock, stop = [], threading.Lock(), threading.Event()

    def load(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1  # a distinct URL per request: a miss at the front, a stored read at a resizer
            status, headers, body = get(f"{nginx.url}/r/small/{image_id}?n={n}-{i}", timeout=30)
            with lock:
                results.append((status, headers.get("x-upstream", ""), len(body)))

    threads = [threading.Thread(target=load, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    try:
        for index, (process, port) in enumerate(resizers):
            time.sleep(1)
            process.signal(signal.SIGTERM)
            assert process.wait(60) == 0, process.log()[-2000:]
            restarted = spawn("serve", "--role", "resizer", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                              "--store", store_url, "--recipes", str(RECIPES), name=f"resizer{index + 1}-again")
            wait_until(lambda: answers(f"http://127.0.0.1:{port}/readyz")
                       and get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 60, "the restarted resizer")
            # Ready is not yet in service: nginx tries a server it marked failed again only after
            # fail_timeout. The next one stops once the front has sent the restarted one traffic.
            since = len(results)
            wait_until(lambda: any(r[0] == 200 and r[1].endswith(f":{port}") for r in results[since:]),
                       30, "the front to send the restarted resizer traffic")
            resizers[index] = (restarted, port)
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    statuses = [status for status, _, _ in results]
    assert len(statuses) > 50 and set(statuses) == {200}, [r for r in results if r[0] != 200][:10]
    served_by = {upstream.rsplit(":", 1)[-1] for _, upstream, _ in results}
    assert {str(p) for p in ports} <= served_by  # both took traffic (and the restarted ones too)

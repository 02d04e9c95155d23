"""Requests waiting on one shared render are bounded like the render (issue 18, "Requests waiting on one
shared render"): counted with the requests waiting for a render slot, per key and in all, refused at
once with 503 and ``Retry-After`` past either bound; timed out with the leader's own deadline; woken
with the leader's error; never leaking their count; never holding a thread that stored images need.
The playground is bounded per client too (429). The load test against a real ``pixline serve`` is
tests/hostile/test_waiting_load.py.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from pixline.server.commands.gunicorn_app import effective_threads
from pixline.server.http import on_demand
from pixline.server.http.errors import SaturatedError, TooManyRequestsError
from pixline.server.http.per_client import PerClient, client_key
from pixline.server.http.render_slots import FREE_THREADS, RenderSlots, threads_needed
from pixline.server.http.singleflight import SingleFlight
from pixline.server.settings import Settings
from tests import slow

from .conftest import RenderGate, Service, write_recipe
from .test_http_render import in_thread, wait_until
from .test_http_upload import assert_problem

PLAYGROUND = "steps:\n  - resize: {width: 64}\n  - format: {type: jpeg}\n"


# -- the mechanism: SingleFlight with RenderSlots ------------------------------------------------

def start_leader(flight: SingleFlight, key: str, release: threading.Event,
                 outcome: Callable[[], Any] = lambda: "done") -> tuple[threading.Thread, list]:
    """A leader for ``key`` that runs until ``release``; its result or error lands in the list."""
    out: list = []
    entered = threading.Event()

    def lead() -> Any:
        entered.set()
        assert release.wait(30)
        return outcome()

    def run() -> None:
        try:
            out.append(flight.do(key, lead))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert entered.wait(10)
    return thread, out


def follow(flight: SingleFlight, key: str, count: int) -> list[tuple[threading.Thread, list]]:
    """``count`` followers of ``key`` in threads (their result or error lands in each list)."""
    followers = []
    for _ in range(count):
        out: list = []

        def run(out: list = out) -> None:
            try:
                out.append(flight.do(key, lambda: "a second render"))
            except BaseException as exc:
                out.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        followers.append((thread, out))
    return followers


def test_followers_of_one_key_are_bounded_and_the_excess_is_refused_at_once():
    slots = RenderSlots(1, timeout=5, max_waiting=10, max_waiting_per_key=3)
    flight: SingleFlight[str] = SingleFlight(slots)
    release = threading.Event()
    leader, leader_out = start_leader(flight, "k", release)
    followers = follow(flight, "k", 3)
    wait_until(lambda: slots.waiting == 3, "three followers waiting")
    started = time.monotonic()
    with pytest.raises(SaturatedError, match="already wait for this same render") as refused:
        flight.do("k", lambda: "never")
    assert time.monotonic() - started < 0.5 and refused.value.retry_after == 5
    # Another key is not held back by this one's followers.
    other_release = threading.Event()
    other, _ = start_leader(flight, "other", other_release)
    assert len(follow(flight, "other", 1)) == 1
    wait_until(lambda: slots.waiting == 4, "a follower of the other key")
    release.set()
    other_release.set()
    for thread, _ in [(leader, leader_out), *followers]:
        thread.join(10)
    assert leader_out == [("done", False)]
    assert [out for _, out in followers] == [[("done", True)]] * 3
    other.join(10)
    wait_until(lambda: slots.waiting == 0, "every count back to zero")
    assert flight.in_flight() == 0


def test_followers_and_slot_waiters_share_one_bound():
    slots = RenderSlots(1, timeout=5, max_waiting=2, max_waiting_per_key=2)
    flight: SingleFlight[str] = SingleFlight(slots)
    release = threading.Event()
    held = threading.Event()

    def in_slot() -> None:
        with slots.slot():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=in_slot, daemon=True)
    holder.start()
    assert held.wait(10)
    waiter = threading.Thread(target=in_slot, daemon=True)  # waits for the only slot
    waiter.start()
    wait_until(lambda: slots.waiting == 1, "a request waiting for a slot")
    leader, _ = start_leader(flight, "k", release)
    followers = follow(flight, "k", 1)
    wait_until(lambda: slots.waiting == 2, "one follower")
    with pytest.raises(SaturatedError, match="2 requests are already waiting"):
        flight.do("k", lambda: "never")  # under its key's bound, over the process's
    with pytest.raises(SaturatedError, match="already waiting"):
        with slots.slot():  # and a slot waiter is refused because of the follower
            pass
    release.set()
    for thread in (holder, waiter, leader, followers[0][0]):
        thread.join(10)
    assert slots.waiting == 0


def test_a_follower_times_out_with_the_leaders_deadline_and_leaves_no_count():
    slots = RenderSlots(1, timeout=0.2, max_waiting=4, max_waiting_per_key=2)
    flight: SingleFlight[str] = SingleFlight(slots, follow_seconds=0.5)
    release = threading.Event()
    leader, leader_out = start_leader(flight, "k", release)
    started = time.monotonic()
    with pytest.raises(SaturatedError, match="did not finish within 0.5 s") as timed_out:
        flight.do("k", lambda: "never")
    # Measured from the leader's start: a later follower waits less, never more.
    assert 0.3 < time.monotonic() - started < 2.0 and timed_out.value.retry_after == 1
    assert slots.waiting == 0
    with pytest.raises(SaturatedError, match="did not finish"):
        flight.do("k", lambda: "never")  # joined late, refused at once: the time is up
    assert slots.waiting == 0
    # Two followers at once fit the per-key bound again: the timed-out ones left nothing counted.
    late = follow(flight, "k", 2)
    for thread, _ in late:
        thread.join(10)
    assert all(isinstance(out[0], SaturatedError) for _, out in late)
    release.set()
    leader.join(10)
    assert leader_out == [("done", False)]  # the leader went on and finished
    assert flight.do("k", lambda: "fresh") == ("fresh", False)


@pytest.mark.parametrize("error", [SaturatedError("no slot came free", 7), ValueError("broken input")])
def test_the_leaders_failure_wakes_every_follower_with_the_same_error(error: Exception):
    slots = RenderSlots(1, timeout=5, max_waiting=8, max_waiting_per_key=8)
    flight: SingleFlight[str] = SingleFlight(slots, follow_seconds=60)
    release = threading.Event()

    def fail() -> str:
        raise error

    leader, leader_out = start_leader(flight, "k", release, fail)
    followers = follow(flight, "k", 5)
    wait_until(lambda: slots.waiting == 5, "five followers")
    woken = time.monotonic()
    release.set()
    for thread, _ in [(leader, leader_out), *followers]:
        thread.join(10)
    assert time.monotonic() - woken < 2.0  # woken by the failure, not by their time limit
    assert leader_out == [error]
    assert [out for _, out in followers] == [[error]] * 5
    assert slots.waiting == 0 and flight.in_flight() == 0


def test_threads_leave_room_for_stored_images_whatever_waits():
    settings = Settings(render_concurrency=3, render_max_waiting=10, render_max_waiting_per_key=4)
    assert threads_needed(settings) == 3 + 10 + FREE_THREADS
    assert effective_threads(settings) == 15
    assert effective_threads(Settings(threads=40, render_concurrency=3, render_max_waiting=10)) == 40
    # The per-key bound is within the total.
    assert RenderSlots.from_settings(Settings(render_max_waiting=3, render_max_waiting_per_key=8)
                                     ).max_waiting_per_key == 3


def test_the_new_settings_come_from_the_environment():
    settings = Settings.load(environ={"PIXLINE_RENDER_MAX_WAITING_PER_KEY": "5",
                                      "PIXLINE_PLAYGROUND_MAX_PER_CLIENT": "1"})
    assert (settings.render_max_waiting_per_key, settings.playground_max_per_client) == (5, 1)
    defaults = Settings()
    assert (defaults.render_max_waiting_per_key, defaults.playground_max_per_client) == (8, 2)


# -- per client ----------------------------------------------------------------------------------

def test_client_keys_group_an_ipv6_network_and_unmap_ipv4():
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2::5") == client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::5") != client_key("2001:db8:1:2::5")
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "" and client_key("unix-peer") == "unix-peer"


def test_per_client_counts_are_bounded_and_released():
    limit = PerClient(2, "playground", retry_after=3)
    with limit.hold("10.0.0.1"), limit.hold("10.0.0.1"):
        with pytest.raises(TooManyRequestsError, match="2 requests in progress") as refused:
            with limit.hold("10.0.0.1"):
                pass
        assert refused.value.retry_after == 3
        with limit.hold("10.0.0.2"):
            assert limit.in_progress("10.0.0.1") == 2
    with pytest.raises(RuntimeError):
        with limit.hold("10.0.0.1"):
            raise RuntimeError("the request failed")
    assert limit.in_progress("10.0.0.1") == 0 and not limit._counts
    unlimited = PerClient(0, "playground")
    with unlimited.hold("a"), unlimited.hold("a"), unlimited.hold("a"):
        assert unlimited.in_progress("a") == 3


# -- the app: recipe URLs ------------------------------------------------------------------------

def test_identical_requests_past_the_per_key_bound_get_503_and_the_rest_share_one_render(
        make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(render_max_waiting_per_key=3)
    image_id = service.upload(small_jpeg)
    gate = RenderGate(service.derivatives)
    url = f"/r/social/{image_id}"
    leader = in_thread(lambda: service.client.simulate_get(url))
    wait_until(gate.entered.is_set, "the leader rendering")
    followers = [in_thread(lambda: service.client.simulate_get(url)) for _ in range(3)]
    wait_until(lambda: waiting(service) == 3, "three followers waiting")
    refused = [service.client.simulate_get(url) for _ in range(5)]
    for result in refused:
        body = assert_problem(result, 503)
        assert int(result.headers["retry-after"]) >= 1
        assert "same render" in body["detail"]
    gate.release.set()
    results = []
    for thread, out in [leader, *followers]:
        thread.join(60)
        results.append(out[0])
    assert [r.status_code for r in results] == [200] * 4
    assert len({r.content for r in results}) == 1 and gate.calls == 1
    assert service.metric("pixline_renders_shed_total") == 5
    assert waiting(service) == 0
    assert service.client.simulate_get(url).status_code == 200  # stored now: a hit


def waiting(service: Service) -> float:
    """Requests waiting now for a render slot or for another's render (the app's gauge)."""
    return service.metric("pixline_renders_waiting")


def test_the_leaders_timeout_wakes_its_followers_with_the_same_503(
        make_service: Callable[..., Service], tmp_path: Path, small_jpeg: bytes) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes, "sluggish", "steps:\n  - slow: {seconds: 20}\n  - format: {type: jpeg}\n")
    service = make_service(plugins=slow.registry(), recipes=str(recipes), render_timeout=1.0)
    image_id = service.upload(small_jpeg)
    url = f"/r/sluggish/{image_id}"
    started = time.monotonic()
    leader = in_thread(lambda: service.client.simulate_get(url))
    wait_until(lambda: service.metric("pixline_renders_in_flight") == 1, "the leader rendering")
    followers = [in_thread(lambda: service.client.simulate_get(url)) for _ in range(4)]
    wait_until(lambda: waiting(service) == 4 or not leader[0].is_alive(), "followers")
    details = set()
    for thread, out in [leader, *followers]:
        thread.join(30)
        body = assert_problem(out[0], 503)
        assert out[0].headers["retry-after"] == "30"
        details.add(body["detail"])
    assert len(details) == 1 and "took longer than 1 s" in details.pop()
    assert time.monotonic() - started < 10  # the render's 1 s, not the slow step's 20 s
    assert waiting(service) == 0


def test_a_follower_gives_up_at_the_leaders_deadline_while_the_leader_goes_on(
        make_service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch, small_jpeg: bytes) -> None:
    monkeypatch.setattr(on_demand, "STORE_SECONDS", 0.0)  # the deadline: slot wait + render only
    service = make_service(render_queue_timeout=0.3, render_timeout=0.4)
    image_id = service.upload(small_jpeg)
    gate = RenderGate(service.derivatives)  # holds the leader before its render's clock starts
    url = f"/r/social/{image_id}"
    leader = in_thread(lambda: service.client.simulate_get(url))
    wait_until(gate.entered.is_set, "the leader rendering")
    started = time.monotonic()
    follower = service.client.simulate_get(url)
    body = assert_problem(follower, 503)
    assert "did not finish within 0.7 s" in body["detail"] and follower.headers["retry-after"] == "1"
    assert time.monotonic() - started < 5
    assert waiting(service) == 0
    gate.release.set()
    leader[0].join(60)
    assert leader[1][0].status_code == 200


def test_waiters_never_take_the_threads_stored_images_need(
        make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    """The app on a pool of exactly ``effective_threads`` threads, as ``pixline serve`` runs it: many
    identical and many different renders held, and still ``/healthz`` and a stored image answer."""
    service = make_service(render_concurrency=1, render_max_waiting=3, render_max_waiting_per_key=2,
                           render_queue_timeout=30)
    image_id = service.upload(small_jpeg)
    stored = f"/r/thumb/{image_id}"
    assert service.client.simulate_get(stored).status_code == 200
    gate = RenderGate(service.derivatives)
    pool = ThreadPoolExecutor(max_workers=effective_threads(service.settings))
    get = service.client.simulate_get
    try:
        identical = [pool.submit(get, f"/r/social/{image_id}") for _ in range(12)]
        wait_until(gate.entered.is_set, "a render holding the only slot")
        different = [pool.submit(get, f"/r/{name}/{image_id}", headers={"Accept": accept})
                     for name in ("feed", "feed-2x", "large") for accept in ("image/webp", "*/*")]
        time.sleep(0.3)  # let them reach their waits
        for path in ("/healthz", stored, "/healthz", stored):
            assert pool.submit(get, path).result(timeout=5).status_code == 200
        assert waiting(service) <= service.settings.render_max_waiting
        gate.release.set()
        statuses = [f.result(timeout=60).status_code for f in identical + different]
    finally:
        gate.release.set()
        pool.shutdown(wait=True)
    assert set(statuses) <= {200, 503} and statuses.count(503) >= 12 - 1 - 2
    assert waiting(service) == 0


# -- the app: the playground ---------------------------------------------------------------------

def finished(requests: list[tuple[threading.Thread, list]]) -> list[Any]:
    """The results of requests run with ``in_thread``, once each has finished."""
    for thread, _ in requests:
        thread.join(60)
    return [out[0] for _, out in requests]


def post_playground(service: Service, image_id: str, address: str, text: str = PLAYGROUND) -> Any:
    return service.client.simulate_post("/playground", params={"image": image_id}, body=text,
                                        remote_addr=address)


def test_the_playground_is_bounded_per_client_with_429(
        make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(playground_max_per_client=2)
    image_id = service.upload(small_jpeg)
    gate = RenderGate(service.derivatives)
    wider = PLAYGROUND.replace("64", "65")  # another recipe: a render of its own
    mine = [in_thread(lambda: post_playground(service, image_id, "2001:db8::1")),
            in_thread(lambda: post_playground(service, image_id, "2001:db8::1", wider))]
    wait_until(lambda: gate.calls == 2, "two renders of one client")
    for address in ("2001:db8::1", "2001:db8::2"):  # the same /64 is the same client
        refused = post_playground(service, image_id, address, PLAYGROUND.replace("64", "66"))
        body = assert_problem(refused, 429)
        assert refused.headers["retry-after"] == "2" and "at most 2 at once" in body["detail"]
    # Another client is served, and its identical recipe shares the render in progress.
    other = in_thread(lambda: post_playground(service, image_id, "203.0.113.9"))
    wait_until(lambda: waiting(service) == 1, "the other client following")
    gate.release.set()
    results = finished([*mine, other])
    assert [r.status_code for r in results] == [200] * 3
    assert results[0].content == results[2].content and gate.calls == 2
    assert post_playground(service, image_id, "2001:db8::1").status_code == 200  # counts released
    assert service.metric("pixline_http_requests_total", route="/playground", method="POST",
                          status="429") == 2


def test_identical_playground_requests_past_the_per_key_bound_get_503(
        make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(render_max_waiting_per_key=2)
    image_id = service.upload(small_jpeg)
    gate = RenderGate(service.derivatives)
    sharing = [in_thread(lambda n=n: post_playground(service, image_id, f"198.51.100.{n}"))
               for n in range(3)]
    wait_until(lambda: gate.calls == 1 and waiting(service) == 2, "a render and 2 followers")
    refused = post_playground(service, image_id, "198.51.100.50")
    assert_problem(refused, 503)
    assert int(refused.headers["retry-after"]) >= 1
    gate.release.set()
    assert [r.status_code for r in finished(sharing)] == [200] * 3
    assert gate.calls == 1

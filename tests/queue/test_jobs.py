"""The job message, the job handler (decode once, fan out, poison vs transient) and the in-process
queue: no broker needed."""
from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from pixline.engine import testing
from pixline.engine.errors import ParameterError
from pixline.engine.storage import Store
from pixline.server.queue.embedded import EmbeddedJobQueue, EmbeddedQueueFull
from pixline.server.commands.wiring import make_publisher
from pixline.server.queue.jobs import Job
from pixline.server.commands.wiring import make_derivatives
from pixline.server.settings import Settings
from pixline.server.queue.handler import (JobHandler, PoisonJobError, RetryPolicy, decode_size, run_job,
                                   run_message)

from .helpers import RECIPES, store_photo
from .tcp_proxy import free_port

EAGER = ("card", "small", "square")
#: Mean absolute difference (0-255) allowed between a decode-once output and an on-demand one:
#: shrinking twice (once for all recipes, then per recipe) differs from one shrink by resampling only.
TOLERANCE = 3.0


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def derivatives(store_url: str):
    return make_derivatives(Settings(store=store_url, recipes=str(RECIPES)))


@pytest.fixture
def handler(derivatives) -> JobHandler:
    return JobHandler(derivatives)


# -- the message ------------------------------------------------------------------------------

def test_job_round_trips_as_versioned_json() -> None:
    job = Job("a" * 32, ("small", "card"), attempt=2)
    body = json.loads(job.to_json())
    assert body == {"image_id": "a" * 32, "recipes": ["small", "card"], "attempt": 2, "version": 1,
                    "force": False}
    assert Job.from_json(job.to_json()) == job
    assert job.next_attempt().attempt == 3


def test_job_reader_ignores_fields_it_does_not_know() -> None:
    body = json.dumps({"version": 1, "image_id": "a" * 32, "recipes": ["small"], "later": 1})
    assert Job.from_json(body.encode()) == Job("a" * 32, ("small",))


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"version": 2, "image_id": "x", "recipes": []}',
    b'{"version": 1, "recipes": ["small"]}', b'{"version": 1, "image_id": "x", "recipes": "small"}',
    b'{"version": 1, "image_id": "x", "recipes": ["small"], "attempt": -1}',
])
def test_malformed_messages_are_parameter_errors(body: bytes) -> None:
    with pytest.raises(ParameterError):
        Job.from_json(body)


# -- decode once, fan out ---------------------------------------------------------------------

def test_decode_size_is_what_the_most_demanding_recipe_needs(derivatives) -> None:
    recipes = [derivatives.recipes[name] for name in EAGER]
    # card is 240 px wide: the largest of the three, so a 1920x1280 photo decodes at 240x160.
    assert decode_size(recipes, 1920, 1280) == (240, 160)
    # small (160x107) and square (64x64 cover → 96x64): at least 160x107, rounding up by a pixel at most.
    width, height = decode_size(recipes[1:], 1920, 1280)
    assert 160 <= width <= 161 and 107 <= height <= 108
    # An original smaller than every recipe needs: no shrink at all.
    assert decode_size(recipes, 100, 80) is None


def test_decode_size_is_full_when_a_recipe_cannot_say(derivatives) -> None:
    full = testing.recipe(derivatives.registry, [{"crop": {"width": 50, "height": 50}},
                                                 {"format": {"type": "jpeg"}}], name="cropped")
    if full.steps[0].step.shrink_hint(full.steps[0].params, 1920, 1280) is not None:
        pytest.skip("the crop step gives a shrink hint now: pick another full-size step")
    assert decode_size([derivatives.recipes["small"], full], 1920, 1280) is None


@pytest.mark.parametrize("original", ["photo", "rotated", "cmyk"])
def test_fan_out_matches_what_the_on_demand_path_renders(derivatives, handler, photo_bytes,
                                                         original: str) -> None:
    data = {"photo": photo_bytes,
            "rotated": testing.jpeg_bytes(testing.gradient(360, 240), orientation=6),
            "cmyk": testing.cmyk_jpeg_bytes(360, 240)}[original]
    image_id = store_photo(derivatives.store, data)
    report = handler.handle(Job(image_id, EAGER))
    meta = derivatives.store.get_meta(image_id)
    assert len(report.rendered) == 4  # card as JPEG and WebP, small, square
    for name in EAGER:
        recipe = derivatives.recipes[name]
        for target in derivatives.targets(recipe, image_id, meta):
            ahead = testing.decode(derivatives.fetch(target))
            on_demand = testing.decode(derivatives.render(target, store=False).data)
            assert (ahead.width, ahead.height) == (on_demand.width, on_demand.height), target
            assert testing.mean_abs_diff(ahead, on_demand) < TOLERANCE, target


def test_a_job_decodes_the_original_once_for_all_its_recipes(derivatives, handler, photo_bytes) -> None:
    image_id = store_photo(derivatives.store, photo_bytes)
    before = sample("pixline_job_decode_seconds_count")
    handler.handle(Job(image_id, EAGER))
    assert sample("pixline_job_decode_seconds_count") - before == 1


def test_an_animated_original_keeps_its_frames_where_the_format_animates(derivatives, handler) -> None:
    import pyvips

    from pixline.engine import frames

    gif = testing.animation(frames=3, width=360, height=240).gifsave_buffer()
    image_id = store_photo(derivatives.store, gif)
    before = sample("pixline_job_decode_seconds_count")
    report = handler.handle(Job(image_id, EAGER))
    assert len(report.rendered) == 4
    assert sample("pixline_job_decode_seconds_count") - before == 1  # once, for the stills
    meta = derivatives.store.get_meta(image_id)
    counts = {}
    for name in EAGER:
        for target in derivatives.targets(derivatives.recipes[name], image_id, meta):
            data = derivatives.fetch(target)
            image = pyvips.Image.new_from_buffer(data, "", **({"n": -1} if target.encoder.animated else {}))
            counts[(name, target.encoder.name)] = frames.frame_count(image)
    # card: WebP animates, its fallback (PNG: a GIF has alpha) does not; small is JPEG, square PNG.
    assert counts == {("card", "png"): 1, ("card", "webp"): 3, ("small", "jpeg"): 1, ("square", "png"): 1}


def test_the_same_job_twice_leaves_the_same_objects(derivatives, handler, photo_bytes) -> None:
    image_id = store_photo(derivatives.store, photo_bytes)
    first = handler.handle(Job(image_id, EAGER))
    objects = {key: derivatives.store.get(key) for key in derivatives.store.derived_keys(image_id)}
    second = handler.handle(Job(image_id, EAGER))
    assert second.rendered == [] and sorted(second.skipped) == sorted(first.rendered)
    assert {key: derivatives.store.get(key) for key in derivatives.store.derived_keys(image_id)} == objects
    forced = handler.handle(Job(image_id, ("small",), force=True))
    assert len(forced.rendered) == 1


def test_eager_status_says_which_eager_derivatives_are_stored(derivatives, handler, photo_bytes) -> None:
    image_id = store_photo(derivatives.store, photo_bytes)
    meta = derivatives.store.get_meta(image_id)
    before = derivatives.eager_status(image_id, meta)
    assert set(before) == set(EAGER)  # "lazy" is not eager
    assert not any(entry["stored"] for entry in before.values())
    assert before["card"]["formats"] == {"jpeg": False, "webp": False}
    handler.handle(Job(image_id, ("small", "card")))
    after = derivatives.eager_status(image_id, meta)
    assert after["small"]["stored"] and after["card"]["stored"] and not after["square"]["stored"]
    assert after["small"]["key"] == f"derived/small/{derivatives.recipes['small'].digest}/{image_id}.jpg"


# -- poison or transient ----------------------------------------------------------------------

def test_unknown_and_invalid_images_are_poison(handler) -> None:
    with pytest.raises(PoisonJobError, match="not stored"):
        handler.handle(Job("0" * 32, EAGER))
    with pytest.raises(PoisonJobError, match="not valid"):
        handler.handle(Job("../etc/passwd", EAGER))


def test_an_undecodable_original_is_poison(derivatives, handler) -> None:
    data = testing.jpeg_bytes(testing.gradient(320, 240))
    image_id = store_photo(derivatives.store, data)
    derivatives.store.put(Store.original_key(image_id), data[: len(data) // 2])  # truncated
    with pytest.raises(PoisonJobError, match="decode"):
        handler.handle(Job(image_id, EAGER))
    assert derivatives.store.derived_keys(image_id) == []


def test_an_unknown_recipe_is_poison_after_the_known_ones_are_rendered(derivatives, handler,
                                                                       photo_bytes) -> None:
    image_id = store_photo(derivatives.store, photo_bytes)
    with pytest.raises(PoisonJobError, match="nosuch"):
        handler.handle(Job(image_id, ("nosuch", "small")))
    assert len(derivatives.store.derived_keys(image_id)) == 1


@pytest.mark.parametrize("how", ["value", "vips", "lazy", "parameter"])
def test_a_recipe_failing_on_an_image_is_dead_without_stopping_the_others(store_url, tmp_path, photo_bytes,
                                                                          how: str) -> None:
    """Deterministic: not retried as if transient; the job's other recipes are stored; the reason
    names the recipe and the step."""
    import shutil

    from pixline.engine import Registry

    from tests.engine import faultyplugin

    folder = tmp_path / "recipes"
    shutil.copytree(RECIPES, folder)
    (folder / "broken.yaml").write_text(f"steps:\n  - resize: {{width: 100}}\n  - explode: {{how: {how}}}\n"
                                        "  - format: {type: auto, candidates: [webp]}\n")
    derivatives = make_derivatives(Settings(store=store_url, recipes=str(folder)),
                                   registry=Registry.load(extra=[("faulty", faultyplugin)]))
    image_id = store_photo(derivatives.store, photo_bytes)
    before = sample("pixline_jobs_retried_total", recipe="broken")
    outcome = run_job(JobHandler(derivatives), RetryPolicy(), Job(image_id, ("broken", *EAGER)))
    assert outcome.action == "dead" and sample("pixline_jobs_retried_total", recipe="broken") == before
    assert outcome.reason.startswith(f"poison: image {image_id}: recipe 'broken' failed in ")
    assert "step 2 (explode" in outcome.reason or "computing the pixels of steps resize, explode" in outcome.reason
    assert outcome.reason.count("recipe 'broken'") == 1  # its second format was not tried again
    status = derivatives.eager_status(image_id, derivatives.store.get_meta(image_id))
    assert all(status[name]["stored"] for name in EAGER), status
    assert not [key for key in derivatives.store.derived_keys(image_id) if "/broken/" in key]


def test_an_unreachable_store_is_transient_then_dead_after_the_retries() -> None:
    # A real S3 client pointed at a port where nothing listens: connection refused.
    # (botocore's own retries are cut to one attempt: the queue's retries are what is tested.)
    store = Store("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{free_port()}", key="k", secret="s",
                  config_kwargs={"retries": {"max_attempts": 1}})
    derivatives = make_derivatives(Settings(recipes=str(RECIPES)), store=store)
    handler = JobHandler(derivatives)
    policy = RetryPolicy(retries=2, first_delay=1.0)
    job = Job("a" * 32, ("small",))
    first = run_job(handler, policy, job)
    assert (first.action, first.delay) == ("retry", 1.0)
    assert "connect" in first.reason.lower()
    assert policy.delay_for(job.next_attempt()) == 2.0
    last = run_job(handler, policy, job.next_attempt().next_attempt())
    assert last.action == "dead" and "gave up after 3 attempts" in last.reason


def test_a_malformed_message_is_dead_at_once(handler) -> None:
    before = sample("pixline_jobs_dead_lettered_total", recipe="(malformed)")
    outcome = run_message(handler, RetryPolicy(), b'{"nope": 1}')
    assert outcome.action == "dead" and outcome.reason.startswith("poison")
    assert sample("pixline_jobs_dead_lettered_total", recipe="(malformed)") == before + 1


# -- the in-process queue ---------------------------------------------------------------------

def test_without_a_broker_the_publisher_is_the_in_process_queue(store_url, derivatives,
                                                                 photo_bytes) -> None:
    settings = Settings(store=store_url, recipes=str(RECIPES), worker_concurrency=2)
    publisher = make_publisher(settings, derivatives)
    try:
        assert isinstance(publisher, EmbeddedJobQueue)
        ids = [store_photo(derivatives.store, data) for data in
               (photo_bytes, testing.jpeg_bytes(testing.gradient(300, 200)))]
        before = sample("pixline_job_derivatives_rendered_total", recipe="small")
        for image_id in ids:
            publisher.publish(Job(image_id, EAGER))
        assert publisher.join(timeout=60), "in-process jobs did not finish"
        for image_id in ids:
            status = derivatives.eager_status(image_id, derivatives.store.get_meta(image_id))
            assert all(entry["stored"] for entry in status.values()), status
        assert sample("pixline_job_derivatives_rendered_total", recipe="small") == before + 2
    finally:
        publisher.close()


def test_the_in_process_queue_is_bounded(slow_derivatives, photo_bytes) -> None:
    derivatives = slow_derivatives  # "small" is held 2 s by the test-only slow step
    image_id = store_photo(derivatives.store, photo_bytes)
    # One thread, busy with a slow job, and room for one more: the third publish is refused.
    queue = EmbeddedJobQueue(JobHandler(derivatives), threads=1, maxsize=1, shutdown_grace=10)
    try:
        queue.publish(Job(image_id, ("small",)))
        refused = 0
        for _ in range(3):
            try:
                queue.publish(Job(image_id, ("small",)))
            except EmbeddedQueueFull:
                refused += 1
        assert refused >= 1
    finally:
        queue.close()
    with pytest.raises(EmbeddedQueueFull):
        queue.publish(Job(image_id, ("small",)))


def test_the_in_process_queue_retries_transient_failures(store_url, derivatives, photo_bytes) -> None:
    image_id = store_photo(derivatives.store, photo_bytes)
    failures = []

    class FlakyHandler(JobHandler):
        """Fails its first attempt as an unreachable store would."""

        def handle(self, job):
            if not failures:
                failures.append(job.attempt)
                raise ConnectionError("store unreachable")
            return super().handle(job)

    queue = EmbeddedJobQueue(FlakyHandler(derivatives), threads=1,
                             policy=RetryPolicy(retries=2, first_delay=0.2))
    try:
        queue.publish(Job(image_id, ("small",)))
        assert queue.join(timeout=30)
    finally:
        queue.close()
    assert failures == [0]
    assert derivatives.eager_status(image_id, derivatives.store.get_meta(image_id))["small"]["stored"]


# -- pixline regenerate without a broker ------------------------------------------------------

def test_regenerate_dry_run_counts_the_images(store_url, derivatives, photo_bytes, capsys,
                                              monkeypatch) -> None:
    from pixline.server.commands.cli import main

    monkeypatch.delenv("PIXLINE_AMQP", raising=False)
    store_photo(derivatives.store, photo_bytes)
    store_photo(derivatives.store, testing.jpeg_bytes(testing.gradient(300, 200)))
    assert main(["regenerate", "small", "--dry-run", "--store", store_url, "--recipes", str(RECIPES)]) == 0
    assert "for 2 image(s) in this process" in capsys.readouterr().out
    assert all(not derivatives.store.derived_keys(i) for i in derivatives.store.image_ids())


def test_regenerate_without_a_broker_renders_here(store_url, derivatives, photo_bytes, capsys,
                                                  monkeypatch) -> None:
    from pixline.server.commands.cli import main

    monkeypatch.delenv("PIXLINE_AMQP", raising=False)
    ids = [store_photo(derivatives.store, data)
           for data in (photo_bytes, testing.jpeg_bytes(testing.gradient(300, 200)))]
    args = ["regenerate", "lazy", "--store", store_url, "--recipes", str(RECIPES)]
    assert main(args) == 0
    assert "rendered 'lazy' for 2 of 2 image(s)" in capsys.readouterr().out
    key = derivatives.locate(derivatives.recipes["lazy"], ids[0], derivatives.store.get_meta(ids[0])).key
    first = derivatives.store.get(key)
    assert all(len(derivatives.store.derived_keys(i)) == 1 for i in ids)
    assert main(args) == 0  # stored already: kept
    before = sample("pixline_job_derivatives_rendered_total", recipe="lazy")
    assert main(args + ["--force"]) == 0
    assert sample("pixline_job_derivatives_rendered_total", recipe="lazy") == before + 2
    assert derivatives.store.get(key) == first  # rendered again, to the same bytes
    assert main(["regenerate", "nosuch", "--store", store_url, "--recipes", str(RECIPES)]) == 1


def test_a_jobs_outputs_render_side_by_side_in_order_and_every_one_is_tried():
    import threading

    from pixline.server.queue.handler import side_by_side

    both_running = threading.Barrier(2, timeout=10)  # breaks (fails the test) unless two run at once
    tried = []

    def render(item: int) -> int:
        if item < 2:
            both_running.wait()
        tried.append(item)
        if item == 3:
            raise ValueError("output 3 failed")
        return item * 10

    assert side_by_side(render, [0, 1, 2], threads=2) == [0, 10, 20]
    tried.clear()
    with pytest.raises(ValueError, match="output 3"):
        side_by_side(render, [2, 3, 4, 5], threads=2)
    assert sorted(tried) == [2, 3, 4, 5]  # a failure does not stop the others; stored ones stay


def test_a_recipe_in_several_formats_runs_its_steps_once(derivatives, handler, photo_bytes,
                                                         monkeypatch) -> None:
    from pixline.engine import pipeline

    runs: list[str] = []
    real = pipeline.run_steps

    def counting(recipe, *args, **kwargs):
        runs.append(recipe.name)
        return real(recipe, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_steps", counting)
    image_id = store_photo(derivatives.store, photo_bytes)
    report = handler.handle(Job(image_id, EAGER))
    assert len(report.rendered) == 4  # card as JPEG and WebP, small, square
    assert sorted(runs) == ["card", "small", "square"]  # card's resize ran once for both formats


def test_an_output_stored_first_stays_and_a_later_render_answers_with_it(derivatives, handler,
                                                                         photo_bytes) -> None:
    """A request and the queue rendering one key at once make different bytes (the queue renders
    from its one shrunk decode): the first stored stays, so the key's strong ETag names one object."""
    image_id = store_photo(derivatives.store, photo_bytes)
    meta = derivatives.store.get_meta(image_id)
    target = derivatives.targets(derivatives.recipes["small"], image_id, meta)[0]
    derivatives.store.put_derived(target.key, b"stored first")
    assert derivatives.render(target).data == b"stored first"
    report = handler.handle(Job(image_id, ("small",), force=False))
    assert report.skipped == [target.key]
    assert derivatives.store.get(target.key) == b"stored first"
    handler.handle(Job(image_id, ("small",), force=True))  # regenerate: replaces it
    assert derivatives.store.get(target.key) != b"stored first"

"""A queue job's limits: its time budget (decode once, then every render), outputs over the size limits
refused before decoding, and both dead-lettered with their reason instead of retried. Also for
``pixline regenerate``, which runs the same handler."""
from __future__ import annotations

from pathlib import Path

import pytest

from pixline.engine import Deadline, testing
from pixline.engine.source import Source
from pixline.server.commands.wiring import make_derivatives
from pixline.server.queue.handler import JobHandler, PoisonJobError, RetryPolicy, decode_once, run_job
from pixline.server.queue.jobs import Job
from pixline.server.settings import Settings
from tests.hostile import corpus
from tests.hostile.corpus import TiffSpec

from .helpers import RECIPES, store_photo

EAGER = ("card", "small", "square")


@pytest.fixture
def derivatives(store_url: str):
    return make_derivatives(Settings(store=store_url, recipes=str(RECIPES)))


def test_a_handler_takes_its_limits_from_the_settings(derivatives) -> None:
    handler = JobHandler.from_settings(derivatives, Settings(job_timeout=40, render_timeout=7))
    assert (handler.time_limit, handler.render_time_limit) == (40, 7)
    off = JobHandler.from_settings(derivatives, Settings(job_timeout=0, render_timeout=0))
    assert (off.time_limit, off.render_time_limit) == (None, None)


def test_a_job_out_of_time_is_dead_lettered_with_the_reason_not_retried(derivatives, photo_bytes) -> None:
    image_id = store_photo(derivatives.store, photo_bytes)
    outcome = run_job(JobHandler(derivatives, time_limit=1e-9), RetryPolicy(retries=3), Job(image_id, EAGER))
    assert outcome.action == "dead"
    assert "took longer than 1e-09 s and was stopped before decoding" in outcome.reason
    assert not derivatives.store.derived_keys(image_id)


def test_a_decode_past_the_job_deadline_is_stopped_by_libvips() -> None:
    # The checks pass; the deadline passes while libvips decodes: it is told to stop.
    source = Source(corpus.tiff(TiffSpec(7000, 7000, 4, 16, photometric="rgb")), name="image x")
    deadline = Deadline(30, testing.FakeClock(expire_after=4))
    with pytest.raises(PoisonJobError, match="image x: took longer than 30 s and was stopped while decoding"):
        decode_once(source, [], deadline)
    assert deadline.killed


def test_every_render_of_a_job_has_the_render_time_limit(derivatives, photo_bytes) -> None:
    image_id = store_photo(derivatives.store, photo_bytes)
    outcome = run_job(JobHandler(derivatives, render_time_limit=1e-9), RetryPolicy(), Job(image_id, EAGER))
    assert outcome.action == "dead" and "took longer than 1e-09 s" in outcome.reason


def test_an_output_over_the_limit_is_dead_lettered_and_the_others_are_rendered(
        store_url: str, tmp_path: Path, photo_bytes: bytes) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "small.yaml").write_text((RECIPES / "small.yaml").read_text())
    (recipes / "huge.yaml").write_text("eager: true\nsteps:\n  - resize: {width: 8000, enlarge: true}\n")
    derivatives = make_derivatives(Settings(store=store_url, recipes=str(recipes)))
    image_id = store_photo(derivatives.store, photo_bytes)
    outcome = run_job(JobHandler(derivatives), RetryPolicy(), Job(image_id, ("huge", "small")))
    assert outcome.action == "dead"
    assert "recipe 'huge': step 1 (resize) asks for 8000×5333" in outcome.reason
    assert [key.split("/")[1] for key in derivatives.store.derived_keys(image_id)] == ["small"]


def test_regenerate_has_the_job_time_limit(store_url, derivatives, photo_bytes, capsys, monkeypatch) -> None:
    from pixline.server.commands.cli import main

    monkeypatch.delenv("PIXLINE_AMQP", raising=False)
    store_photo(derivatives.store, photo_bytes)
    args = ["regenerate", "small", "--store", store_url, "--recipes", str(RECIPES)]
    assert main(args + ["--job-timeout", "0.000000001"]) == 1
    captured = capsys.readouterr()
    assert "rendered 'small' for 0 of 1 image(s)" in captured.out
    assert main(args) == 0

"""The job log: one line per job attempt (image, recipes, outcome, attempt, duration), a traceback only
for a failure nobody foresaw."""
from __future__ import annotations

import logging

import pytest

from pixline.engine.storage import Store
from pixline.server.commands.wiring import make_derivatives
from pixline.server.queue.handler import JobHandler, RetryPolicy, run_job, run_message
from pixline.server.queue.jobs import Job
from pixline.server.settings import Settings

from .helpers import RECIPES, store_photo
from .tcp_proxy import free_port


def job_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pixline.jobs"]


@pytest.fixture
def handler(store_url: str) -> JobHandler:
    return JobHandler(make_derivatives(Settings(store=store_url, recipes=str(RECIPES))))


def test_a_done_job_is_one_info_line_with_its_fields(handler, photo_bytes, caplog):
    caplog.set_level(logging.INFO)
    image_id = store_photo(handler.derivatives.store, photo_bytes)
    assert run_job(handler, RetryPolicy(), Job(image_id, ("small", "square"))).action == "done"
    line, = job_lines(caplog)
    assert line.levelno == logging.INFO and not line.exc_info
    assert (line.image_id, line.recipes, line.outcome, line.attempt) == (image_id, ["small", "square"],
                                                                         "done", 1)
    assert (line.rendered, line.skipped) == (2, 0) and line.duration_ms > 0
    caplog.clear()
    run_job(handler, RetryPolicy(), Job(image_id, ("small",), attempt=2))
    line, = job_lines(caplog)
    assert (line.attempt, line.rendered, line.skipped) == (3, 0, 1)


def test_a_poison_job_is_one_error_line_without_traceback(handler, caplog):
    assert run_job(handler, RetryPolicy(), Job("0" * 32, ("small",))).action == "dead"
    line, = job_lines(caplog)
    assert (line.levelno, line.outcome) == (logging.ERROR, "dead") and not line.exc_info
    assert "not stored" in line.reason and "not stored" in line.getMessage()
    caplog.clear()
    run_message(handler, RetryPolicy(), b"{not json")
    line, = job_lines(caplog)
    assert line.outcome == "dead" and not line.exc_info


def test_a_transient_failure_warns_then_gives_up_with_its_traceback(caplog):
    store = Store("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{free_port()}", key="k", secret="s",
                  config_kwargs={"retries": {"max_attempts": 1}})
    handler = JobHandler(make_derivatives(Settings(recipes=str(RECIPES)), store=store))
    policy = RetryPolicy(retries=1, first_delay=1.0)
    job = Job("a" * 32, ("small",))
    run_job(handler, policy, job)
    run_job(handler, policy, job.next_attempt())
    retry, dead = job_lines(caplog)
    assert (retry.levelno, retry.outcome, retry.attempt, retry.retry_in) == (logging.WARNING, "retry", 1, 1.0)
    assert not retry.exc_info
    assert (dead.levelno, dead.outcome, dead.attempt) == (logging.ERROR, "dead", 2)
    assert dead.exc_info and "gave up after 2 attempts" in dead.reason

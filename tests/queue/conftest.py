"""Fixtures of the queue tests: a uniquely named queue topology on the test broker (deleted after),
settings that point at it, a store and a stored photo; slow variants whose recipes use the test-only
``slow`` step (tests/slowplugin/), for tests that need a render to be in progress."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from pixline.engine.derivatives import Derivatives
from pixline.engine.storage import Store
from pixline.server.commands.wiring import make_derivatives
from pixline.server.queue.topology import Topology
from pixline.server.settings import Settings
from tests import slow

from .helpers import RECIPES, SLOW_RECIPES, PixlineProcess, delete_queues, store_photo


@pytest.fixture
def queue_name(amqp_url: str) -> Iterator[str]:
    """A fresh work queue name; it and its retry and dead-letter queues are deleted after the test."""
    name = f"pixline.test.{uuid.uuid4().hex[:10]}"
    yield name
    # Retry queues carry their delay in the name: delete every delay the tests use, and the
    # defaults (5 s doubling) that processes started without --job-retry-delay declare.
    delays = {first * 2 ** n for first in (0.5, 1.0, Settings.job_retry_delay) for n in range(8)}
    topology = Topology(name, tuple(sorted(delays)))
    delete_queues(amqp_url, topology.queue_names)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'store'}"


@pytest.fixture
def settings(amqp_url: str, queue_name: str, store_url: str) -> Settings:
    return Settings(amqp=amqp_url, queue=queue_name, store=store_url, recipes=str(RECIPES),
                    worker_concurrency=2, job_retries=2, job_retry_delay=0.5, worker_shutdown_grace=30)


@pytest.fixture
def slow_settings(settings: Settings) -> Settings:
    """``settings`` with the slow recipes: a ``pixline`` process needs ``slow.env()`` to load them."""
    return Settings(**{**settings.as_dict(), "recipes": str(SLOW_RECIPES)})


@pytest.fixture
def slow_derivatives(store_url: str) -> Derivatives:
    """The slow recipes on the test store, with the ``slow`` plugin registered in this process."""
    return make_derivatives(Settings(store=store_url, recipes=str(SLOW_RECIPES)), registry=slow.registry())


@pytest.fixture
def store(store_url: str) -> Store:
    return Store(store_url)


@pytest.fixture
def stored_photo(store: Store, photo_bytes: bytes) -> str:
    return store_photo(store, photo_bytes)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., PixlineProcess]]:
    """Start ``pixline`` processes; every one is stopped after the test."""
    started: list[PixlineProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, name: str = "pixline") -> PixlineProcess:
        process = PixlineProcess(list(args), tmp_path / f"{name}-{len(started)}.log", env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()

"""Fixtures for the HTTP service tests: apps built with real collaborators (store, plugins, recipes).

``store_url`` runs a test once on local files and once on the SeaweedFS S3 server of tests/conftest.py.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from falcon.testing import TestClient

from pixline.engine import Registry, testing
from pixline.engine.derivatives import Derivatives
from pixline.engine.storage import Store
from pixline.server.http.app import create_app
from pixline.server.queue.jobs import Job
from pixline.server.http.metrics import Metrics
from pixline.server.commands.wiring import make_derivatives
from pixline.server.settings import Settings


class RecordingPublisher:
    """A JobPublisher that keeps what it was given (the queue itself is tested in tests/queue)."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.closed = False

    def publish(self, job: Job) -> None:
        self.jobs.append(job)

    def close(self) -> None:
        self.closed = True


class FailingPublisher(RecordingPublisher):
    def publish(self, job: Job) -> None:
        raise ConnectionError("broker went away")


@dataclass
class Service:
    """One app and its collaborators."""

    client: TestClient
    settings: Settings
    derivatives: Derivatives
    publisher: Any
    metrics: Metrics
    root: Path | None = None  # the store's folder for file:// stores

    @property
    def store(self) -> Store:
        return self.derivatives.store

    def upload(self, data: bytes, **kwargs: Any) -> str:
        result = self.client.simulate_post("/images", body=data, **kwargs)
        assert result.status_code in (200, 201), result.text
        return result.json["id"]

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The installed plugins (resize, crop, format, watermark and the filters) from their entry points."""
    return Registry.load()


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings that select a fresh store: a local folder, or a fresh prefix on SeaweedFS S3."""
    if request.param == "file":
        return {"store": f"file://{tmp_path / 'store'}"}
    s3 = request.getfixturevalue("s3_settings")
    return {"store": request.getfixturevalue("s3_store_url"), "s3_endpoint": s3["endpoint_url"]}


@pytest.fixture
def make_service(tmp_path: Path, registry: Registry) -> Callable[..., Service]:
    """Build an app: ``make_service(publisher=..., plugins=REGISTRY, recipes=DIR, **settings)``; default
    store on tmp_path, default plugins the installed ones."""

    def make(publisher: Any = None, plugins: Registry | None = None, **overrides: Any) -> Service:
        overrides.setdefault("store", f"file://{tmp_path / 'store'}")
        settings = Settings(**overrides)
        derivatives = make_derivatives(settings, registry=plugins or registry)
        publisher = RecordingPublisher() if publisher is None else publisher
        metrics = Metrics()
        app = create_app(derivatives, settings, publisher, metrics=metrics)
        root = Path(derivatives.store.root) if derivatives.store.local else None
        return Service(TestClient(app), settings, derivatives, publisher, metrics, root)

    return make


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    """An app on local files with a signing key and the default recipe set."""
    return make_service(signing_key=["test-key"])


@pytest.fixture(scope="session")
def small_jpeg() -> bytes:
    return testing.jpeg_bytes(testing.gradient(320, 240))


@pytest.fixture(scope="session")
def other_jpeg() -> bytes:
    return testing.jpeg_bytes(testing.gradient(240, 320), Q=70)


def write_recipe(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


class RenderGate:
    """Wraps ``Derivatives.render`` so a test can hold renders and count them."""

    def __init__(self, derivatives: Derivatives, hold: bool = True) -> None:
        self.original = derivatives.render
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.calls = 0
        self._lock = threading.Lock()
        derivatives.render = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        self.entered.set()
        assert self.release.wait(60), "test never released the render"
        return self.original(*args, **kwargs)


def listing(root: Path, prefix: str) -> list[str]:
    """Files under a local store's ``prefix`` folder."""
    folder = root / prefix
    return sorted(str(p.relative_to(root)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []

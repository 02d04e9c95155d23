"""Shared fixtures: real photos, a real SeaweedFS S3 server, the local RabbitMQ.

SeaweedFS is started once per test session on free 127.0.0.1 ports (or reused from
``PIXLINE_TEST_S3_ENDPOINT`` with ``PIXLINE_TEST_S3_KEY``/``PIXLINE_TEST_S3_SECRET``). RabbitMQ is the
one at ``PIXLINE_TEST_AMQP`` (default ``amqp://guest:guest@127.0.0.1:5672/``); ``make test`` starts
it where it is installed but not running, and says how to install it where it is not.
"""
from __future__ import annotations

import os
import socket
import urllib.parse
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests import seaweedfs

PHOTOS = Path(__file__).parent / "photos"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="session")
def photos() -> Path:
    return PHOTOS


@pytest.fixture(scope="session")
def photo_bytes() -> bytes:
    """A real 1920×1280 baseline JPEG with EXIF."""
    return (PHOTOS / "Storm.jpg").read_bytes()


@pytest.fixture(scope="session")
def s3_settings() -> Iterator[dict[str, str]]:
    """A running S3-compatible server: {endpoint_url, key, secret, bucket}."""
    import s3fs

    endpoint = os.environ.get("PIXLINE_TEST_S3_ENDPOINT")
    server = None
    if endpoint:
        key = os.environ.get("PIXLINE_TEST_S3_KEY", "")
        secret = os.environ.get("PIXLINE_TEST_S3_SECRET", "")
    else:
        server = seaweedfs.start()
        endpoint, key, secret = server.endpoint_url, server.key, server.secret
    bucket = f"pixline-test-{uuid.uuid4().hex[:8]}"
    fs = s3fs.S3FileSystem(key=key, secret=secret, client_kwargs={"endpoint_url": endpoint})
    fs.mkdir(bucket)
    try:
        yield {"endpoint_url": endpoint, "key": key, "secret": secret, "bucket": bucket}
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def s3_store_url(s3_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``s3://bucket/prefix`` for one test; AWS_* credentials set in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_settings["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_settings["secret"])
    return f"s3://{s3_settings['bucket']}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The RabbitMQ URL for tests; fails with how to get one if nothing listens there."""
    url = os.environ.get("PIXLINE_TEST_AMQP", DEFAULT_AMQP)
    parts = urllib.parse.urlparse(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=3).close()
    except OSError:
        pytest.fail(
            f"no RabbitMQ at {url}: run 'make rabbitmq' (starts rabbitmq-server, installing Debian's "
            "package if needed), or set PIXLINE_TEST_AMQP to a broker you have"
        )
    return url

"""Fixtures of the topology tests: real ``pixline`` processes by role, the cluster's nginx front, and
the queue fixtures (a fresh queue on the test broker, processes stopped after each test)."""
from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

from scripts import cluster
from tests.queue.conftest import (queue_name, settings, slow_derivatives, slow_settings, spawn, store,  # noqa: F401
                                  store_url, stored_photo)
from tests.queue.helpers import wait_until
from tests.queue.tcp_proxy import free_port


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def answers(url: str) -> bool:
    try:
        return get(url, timeout=3)[0] in (200, 503)
    except OSError:
        return False


class Front:
    """nginx with the cluster's configuration (scripts/nginx.conf.template)."""

    def __init__(self, directory: Path, media_port: int, resizer_ports: list[int]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "nginx.conf"
        config.write_text(cluster.nginx_config(directory, self.port, media_port, resizer_ports))
        self.log = open(directory / "nginx.out", "wb")
        self.process = subprocess.Popen(
            [cluster.nginx_binary(), "-p", str(directory / "nginx"), "-c", str(config), "-g", "daemon off;"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: answers(f"{self.url}/healthz"), 20, "nginx to listen")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Callable[[int, list[int]], Front]]:
    started: list[Front] = []

    def start(media_port: int, resizer_ports: list[int]) -> Front:
        started.append(Front(tmp_path / f"front-{len(started)}", media_port, resizer_ports))
        return started[-1]

    yield start
    for f in started:
        f.stop()

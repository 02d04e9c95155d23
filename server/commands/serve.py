"""``pixline serve``: the HTTP service (upload, recipe URLs, ad-hoc URLs) under gunicorn.

    pixline serve --bind 127.0.0.1:8080 --store file://./data
    pixline serve --store s3://BUCKET/PREFIX --s3-endpoint URL     # AWS_ACCESS_KEY_ID / _SECRET_ACCESS_KEY
    pixline serve --signing-key KEY --upload-token TOKEN --amqp amqp://guest:guest@127.0.0.1:5672/

Every flag is also a ``PIXLINE_*`` environment variable (``--signing-key`` → ``PIXLINE_SIGNING_KEY``).
Without ``--amqp`` eager recipes are rendered by an in-process queue in each worker.
"""
from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import glob
import ipaddress
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile

from gunicorn.util import parse_address

from pixline.engine.errors import PixlineError

from ..settings import Settings, SettingsError
from .flags import EVENT_SETTINGS, INPUT_LIMITS, URL_SOURCES, add_flags, settings_from

log = logging.getLogger(__name__)

SERVE_SETTINGS = (
    "bind", "role", "store", "s3_endpoint", "recipes", "workers", "threads", "signing_key", "allow_unsafe",
    "upload_token", "amqp", "queue", "outbox_interval", "max_steps", "max_output_pixels",
    "skip_warm_up", "render_concurrency", "render_queue_timeout", "render_timeout", "render_max_waiting",
    "render_max_waiting_per_key", "playground_max_per_client", "recipe_max_age", "worker_concurrency",
    "queue_size", "public_url", "job_timeout", "allow_open_uploads", "header_timeout", "body_idle_timeout",
    "body_timeout", "max_buffered_bytes", "vips_concurrency", "reduced_size", "reduced_small_size",
    "source", "source_recheck", "meta_cache_ttl", *INPUT_LIMITS, *EVENT_SETTINGS, *URL_SOURCES,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP service under gunicorn", epilog="""\
examples:
  pixline serve                                   # 127.0.0.1:8080, files in ./data, in-process queue
  pixline serve --bind 0.0.0.0:8080 --signing-key KEY --upload-token TOKEN
  pixline serve --store s3://BUCKET/PREFIX --s3-endpoint URL --amqp amqp://guest:guest@127.0.0.1:5672/
  pixline serve --log-level info --log-format json

S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
""")
    add_flags(p, *SERVE_SETTINGS)
    p.set_defaults(func=run)


def _preflight_problem(settings: Settings) -> str | None:
    """In a spawned process: the store URL, the source, plugins and recipes; the error message, or None."""
    from pixline.engine.errors import PixlineError
    from pixline.engine.recipefiles import load_recipes
    from pixline.engine.registry import Registry

    from pixline.engine.library import open_library

    from ..http.app import check_recipe_names
    from .wiring import make_fetcher, make_store, recipe_dir

    try:
        make_store(settings)  # a malformed store URL stops start-up here, not in every worker
        if settings.source:  # and a source that is no folder, or a URL whose host is not allowed
            open_library(settings.source, settings.s3_endpoint, make_fetcher(settings))
        check_recipe_names(load_recipes(recipe_dir(settings), Registry.load()))
    except PixlineError as exc:
        return str(exc)
    return None


def preflight(settings: Settings) -> None:
    """Check the store URL, plugins and recipes before forking workers, so a bad recipe stops
    start-up with one clear error instead of every worker failing to boot.

    It runs in a *spawned* process: loading plugins may run libvips (the format plugin probes its
    AVIF encoder), and libvips' worker threads do not survive a fork — a master that had used
    libvips would fork workers that hang at their first render.
    """
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        problem = pool.submit(_preflight_problem, settings).result()
    if problem:
        raise PixlineError(problem)


def prepare_metrics_dir(workers: int) -> None:
    """Prometheus multiprocess mode for several workers: a fresh directory for their metric files.

    An existing ``PROMETHEUS_MULTIPROC_DIR`` is used as given, with its stale ``*.db`` files removed
    (prometheus-client's instructions: wipe it between runs).
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        return
    if workers <= 1:
        return
    path = tempfile.mkdtemp(prefix="pixline-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    master = os.getpid()
    # Workers are forked and run atexit handlers too: only the master removes the directory.
    atexit.register(lambda: os.getpid() == master and shutil.rmtree(path, ignore_errors=True))


def is_loopback(bind: str) -> bool:
    """True when only this machine can reach ``bind`` (gunicorn's syntax: ``HOST:PORT``, ``[::1]:PORT``,
    ``unix:PATH``, ``fd://N``). A host name other than ``localhost`` counts as reachable from outside."""
    address = parse_address(bind)
    if isinstance(address, str):  # a unix socket: the file's permissions decide
        return True
    if isinstance(address, int):  # a descriptor opened by someone else: unknown
        return False
    host = address[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_open_uploads(settings: Settings) -> None:
    """With no upload token anyone who reaches the server can upload and delete: refuse to run so on
    an address other machines reach, unless ``--allow-open-uploads`` says so."""
    if settings.upload_token or settings.allow_open_uploads:
        return
    exposed = [b.strip() for b in settings.bind.split(",") if b.strip() and not is_loopback(b.strip())]
    if exposed:
        raise SettingsError(f"no --upload-token, and {', '.join(exposed)} is reachable from other "
                            "machines: anyone could upload and delete images. Set --upload-token "
                            "(PIXLINE_UPLOAD_TOKEN), or pass --allow-open-uploads to run open on purpose")


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    check_open_uploads(settings)
    preflight(settings)
    prepare_metrics_dir(settings.workers)
    from .gunicorn_app import PixlineGunicorn

    if not settings.upload_token:  # said loudly, whatever the log level
        print(f"pixline: warning: no --upload-token: anyone who reaches {settings.bind} can upload and "
              "delete images", file=sys.stderr, flush=True)
    print(f"pixline: serving http://{settings.bind} (store {settings.store}, "
          f"{'RabbitMQ' if settings.amqp else 'in-process queue'}); Ctrl-C stops", flush=True)
    PixlineGunicorn(settings).run()
    return 0

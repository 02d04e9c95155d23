"""Settings: command-line flags, then ``PIXLINE_*`` environment variables, then an optional YAML
config file (``--config`` / ``PIXLINE_CONFIG``), then safe defaults — first found wins.

Every setting is a field of :class:`Settings`; its environment variable is ``PIXLINE_`` + the field name
in capitals (``store`` → ``PIXLINE_STORE``), its flag ``--`` + the name with dashes (``--s3-endpoint``).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from pixline.engine import yamltext
from pixline.engine.errors import PixlineError, RecipeError, quote
from pixline.engine.metacache import META_CACHE_TTL
from pixline.engine.source import Limits


class SettingsError(PixlineError):
    """A setting has a value that cannot be used."""

    title = "invalid setting"


#: The parts ``pixline serve --role`` can serve (docs/architecture.md, "Processes").
ROLES = ("all", "media", "resizer")
#: Settings that are secrets: an empty one would sign URLs or guard uploads with nothing secret.
SECRETS = ("signing_key", "upload_token", "webhook_secret")


#: The groups of ``--help``, in order: a setting's ``group`` is one of them.
GROUPS = ("service", "storage", "sources", "security", "queue", "events", "limits", "rendering", "timeouts",
          "logs and metrics")


#: A container's CPU limit under cgroup v2: "<quota> <period>" in µs, or "max <period>" for none.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process can use: those it may run on (its affinity, which a cpuset narrows), at
    most its container's CPU limit rounded up. ``os.cpu_count()`` counts the host's: a pod limited
    to one CPU on a 64-core node would start 64 workers and 64 × 100 MB (docs/deploy.md). A pod with
    a CPU request but no limit has no quota to read: its manifest sets ``PIXLINE_WORKERS``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, -(-int(quota) // int(period)))
    except (OSError, ValueError):  # no cgroup v2 here, or a line we do not know
        pass
    return max(1, cpus)


def _default_workers() -> int:
    return available_cpus()


def setting(group: str, help: str, default: Any = None, unit: str = "",
            factory: Callable[[], Any] | None = None) -> Any:
    """A :class:`Settings` field with what its flag's ``--help`` says: the group it is listed in
    (:data:`GROUPS`), a line on what it does, and the unit of its value (``s``, ``bytes``…).

    ``tests/test_command_line.py`` fails on a flag without help.
    """
    if group not in GROUPS:
        raise ValueError(f"setting group {group!r} is not one of {GROUPS}")
    metadata = {"group": group, "help": help, "unit": unit}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Settings:
    """Every pixline setting with its safe default."""

    store: str = setting(
        "storage", "where originals, meta and derivatives are kept: file://DIR or s3://BUCKET/PREFIX",
        default="file://./data")
    s3_endpoint: str | None = setting(
        "storage", "S3-compatible endpoint URL (default: AWS); credentials from the AWS_* variables")
    recipes: str | None = setting(
        "storage", "folder of recipe YAML files (default: the set shipped with pixline)")
    meta_cache_ttl: float = setting(
        "storage", "how long a process trusts an image's metadata it has read; an image deleted through "
        "another process is served no longer than this (0: read it on every request)",
        default=5.0, unit="s")
    source: str | None = setting(
        "sources", "a read-only library of originals rendered in place: s3://BUCKET/PREFIX/ or a folder")
    source_recheck: float = setting(
        "sources", "how long a source key's version is trusted before the library is asked again (0: every request)",
        default=10.0, unit="s")
    allow_source_host: list[str] = setting(
        "sources", "a host pixline import and --source may fetch https:// URLs from: a name, or *.example.com "
        "for the names below it; repeat it for more (default: none, no URL is fetched)", factory=list)
    allow_private_source_addresses: bool = setting(
        "sources", "fetch from loopback, private, link-local and other non-public addresses too (tests, "
        "an internal network)", default=False)
    allow_source_network: list[str] = setting(
        "sources", "a network (CIDR) fetched from even though it is not public, e.g. 10.1.2.0/24 for an "
        "internal origin; narrower than --allow-private-source-addresses; repeatable (default: none)",
        factory=list)
    allow_http_sources: bool = setting(
        "sources", "fetch http:// URLs too (no TLS: tests, an internal network)", default=False)
    source_ca_file: str | None = setting(
        "sources", "CA bundle that source hosts' certificates are checked against (default: the system's)")
    source_max_redirects: int = setting(
        "sources", "redirects a URL fetch follows, each checked as the URL was", default=3, unit="redirects")
    bind: str = setting("service", "address to listen on: HOST:PORT or unix:PATH", default="127.0.0.1:8080")
    role: str = setting(
        "service", "routes to serve: media (uploads, info, delete), resizer (/r/, /t/, recipes) or all",
        default="all")
    workers: int = setting(
        "service", "gunicorn worker processes (default: one per CPU this process can use, its container's "
        "limit included)", factory=_default_workers)
    threads: int = setting(
        "service", "threads per worker running the app (raised to what renders and their waiters need, plus 2)",
        default=4)
    signing_key: list[str] = setting(
        "security", "HMAC key for signed /t/ URLs; repeat it to rotate (default: none, /t/ refused)",
        factory=list)
    allow_unsafe: bool = setting(
        "security", "accept /t/unsafe/... URLs with no signature (development only)", default=False)
    upload_token: str | None = setting(
        "security", "bearer token for uploads, deletes, the gallery and the playground (default: none, open)")
    allow_open_uploads: bool = setting(
        "security", "start without an upload token on an address other than loopback", default=False)
    amqp: str | None = setting("queue", "RabbitMQ URL (default: none, the in-process queue)")
    queue: str = setting(
        "queue", "name of the work queue (its retry and dead-letter queues are named after it)",
        default="pixline.render")
    outbox_interval: float = setting(
        "queue", "with --amqp: how often serve publishes the upload jobs the broker did not confirm (0: never)",
        default=10.0, unit="s")
    webhook_url: list[str] = setting(
        "events", "an http(s) URL that gets a signed POST (Standard Webhooks) for every event",
        factory=list)
    webhook_secret: list[str] = setting(
        "events", "whsec_... secret the webhooks are signed with; give two while rotating (both sign)",
        factory=list)
    webhook_timeout: float = setting(
        "events", "how long one webhook POST may take, connecting and answering; then it is retried",
        default=10.0, unit="s")
    events_amqp: str | None = setting(
        "events", "RabbitMQ URL the events are published to, on --events-exchange (default: none)")
    events_exchange: str = setting(
        "events", "durable topic exchange of the events (routing keys image.ready, image.failed, derivative.ready)",
        default="pixline.events")
    events_derivatives: bool = setting(
        "events", "also send a derivative.ready event for every eager output once it is stored", default=False)
    events_retry_delay: float = setting(
        "events", "delay before an event's first retry; it doubles with each retry (with jitter), up to 1 hour",
        default=5.0, unit="s")
    events_retry_window: float = setting(
        "events", "how long an event is retried before it is dead-lettered (pixline events --failed)",
        default=86400.0, unit="s")
    events_concurrency: int = setting(
        "events", "event deliveries at once per process (each on its own thread, never a render's)",
        default=4, unit="deliveries")
    max_bytes: int = setting("limits", "largest upload or original", default=50 * 1024 * 1024, unit="bytes")
    max_pixels: int = setting(
        "limits", "largest image (width x height), from its header", default=50_000_000, unit="pixels")
    max_frames: int = setting("limits", "most frames or pages of an input", default=100, unit="frames")
    max_bands: int = setting("limits", "most bands of an input (CMYK + alpha)", default=5, unit="bands")
    max_sample_bits: int = setting(
        "limits", "most bits per sample of an input (float samples never)", default=16, unit="bits")
    max_scans: int = setting(
        "limits", "most scans of a progressive JPEG, counted before decoding", default=100, unit="scans")
    max_metadata_chunks: int = setting(
        "limits", "most text, EXIF, XMP and ICC chunks or segments of an input", default=256, unit="chunks")
    max_metadata_bytes: int = setting(
        "limits", "most bytes of those, decompressed, counted from the bytes before decoding",
        default=8 * 1024 * 1024, unit="bytes")
    max_steps: int = setting("limits", "most steps of an ad-hoc URL", default=10, unit="steps")
    max_output_pixels: int = setting(
        "limits", "most pixels any step of a recipe or ad-hoc URL may make, checked before rendering",
        default=16_000_000, unit="pixels")
    reduced_size: int = setting(
        "rendering", "originals longer than this get a reduced copy to render from (0: none)",
        default=3072, unit="px")
    reduced_small_size: int = setting(
        "rendering", "and a small copy of this size for small outputs (0: none)", default=768, unit="px")
    skip_warm_up: bool = setting(
        "rendering", "ready at once, without rendering every recipe once on a tiny image first "
        "(the first request of each output then pays libvips' and the encoders' start)", default=False)
    render_concurrency: int = setting("rendering", "renders at once per process", default=4, unit="renders")
    render_queue_timeout: float = setting(
        "timeouts", "how long a request waits for a render slot, then 503", default=10.0, unit="s")
    render_timeout: float = setting(
        "timeouts", "how long a render or an upload's check decode may compute, then 503/413 (0: no limit)",
        default=30.0, unit="s")
    render_max_waiting: int = setting(
        "rendering", "requests waiting at once for a render slot or for another's render; more get 503 at once",
        default=32, unit="requests")
    render_max_waiting_per_key: int = setting(
        "rendering", "of those, requests waiting for one render (one output); more get 503 at once",
        default=8, unit="requests")
    vips_concurrency: int = setting(
        "rendering", "libvips threads per render (0: libvips' default, one per core)",
        default=1, unit="threads")
    playground_max_per_client: int = setting(
        "limits", "playground requests at once per client address (IPv6: /64), per process; more get 429 (0: no bound)",
        default=2, unit="requests")
    recipe_max_age: int = setting(
        "service", "Cache-Control max-age of /r/ responses", default=86400, unit="s")
    worker_concurrency: int = setting(
        "queue", "jobs at once per worker (and the AMQP prefetch)", default=2, unit="jobs")
    job_retries: int = setting(
        "queue", "how often a job that failed for a passing reason is retried before it is dead-lettered",
        default=3, unit="retries")
    job_retry_delay: float = setting(
        "queue", "delay before the first retry; it doubles with each retry", default=5.0, unit="s")
    job_delivery_limit: int = setting(
        "queue", "how often RabbitMQ hands a job out again that no worker settled (the worker died or "
        "lost its connection on it) before it dead-letters the job; fixed when the queue is made",
        default=5, unit="deliveries")
    job_timeout: float = setting(
        "timeouts", "how long one job (its decode and every recipe) may compute, then dead-lettered (0: no limit)",
        default=120.0, unit="s")
    source_connect_timeout: float = setting(
        "timeouts", "how long a URL fetch may take to connect (and its TLS handshake)", default=5.0, unit="s")
    source_timeout: float = setting(
        "timeouts", "how long a whole URL fetch may take: connect, headers, body, every redirect", default=30.0,
        unit="s")
    worker_shutdown_grace: float = setting(
        "timeouts", "how long SIGTERM waits for a worker's jobs in flight before handing them back",
        default=30.0, unit="s")
    queue_size: int = setting(
        "queue", "bound of the in-process queue (no broker); past it, outputs render on first request",
        default=1000, unit="jobs")
    metrics_port: int | None = setting(
        "logs and metrics",
        "pixline worker: serve Prometheus /metrics, /healthz and /readyz on this port (default: none)")
    metrics_host: str = setting("logs and metrics", "address of the worker's /metrics", default="127.0.0.1")
    public_url: str = setting(
        "service", "prefix of the URLs in responses, e.g. a CDN's (default: relative URLs)", default="")
    header_timeout: float = setting(
        "timeouts", "time to receive a request's line and headers, then 408 (0: no limit); a kept-alive "
        "connection idle that long between requests is closed",
        default=10.0, unit="s")
    body_idle_timeout: float = setting(
        "timeouts", "how long a request body may pause, then 408 (0: no limit)", default=15.0, unit="s")
    body_timeout: float = setting(
        "timeouts", "time to receive a whole request body, then 408 (0: no limit)", default=120.0, unit="s")
    max_buffered_bytes: int = setting(
        "limits", "request bodies held at once per worker (at least one largest upload); past it 503",
        default=256 * 1024 * 1024, unit="bytes")
    log_level: str = setting(
        "logs and metrics", "debug, info, warning or error: every process, gunicorn too", default="warning")
    log_format: str = setting(
        "logs and metrics", "text, json, or auto: text on a terminal, JSON otherwise", default="auto")

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise SettingsError(f"role {self.role!r} is not one of {', '.join(ROLES)}")
        _check_webhooks(self.webhook_url, self.webhook_secret)

    @classmethod
    def load(cls, flags: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "Settings":
        """Merge ``flags`` (unset ones are ``None``), the environment and the config file."""
        flags = {k: v for k, v in (flags or {}).items() if v is not None and v != []}
        environ = os.environ if environ is None else environ
        config_path = flags.pop("config", None) or environ.get("PIXLINE_CONFIG")
        from_file: dict[str, Any] = {}
        if config_path:
            try:
                # The bounded loader every YAML pixline reads goes through (docs/security.md).
                from_file = yamltext.parse(Path(config_path).read_text(), f"config file {config_path}")[1] or {}
            except OSError as exc:
                raise SettingsError(f"config file {config_path}: {exc}") from None
            except RecipeError as exc:
                raise SettingsError(str(exc)) from None
            if not isinstance(from_file, dict):
                raise SettingsError(f"config file {config_path}: expected a mapping of settings")
            from_file = {str(k).replace("-", "_"): v for k, v in from_file.items()}
        known = {f.name: f for f in fields(cls)}
        unknown = set(from_file) - set(known)
        if unknown:
            raise SettingsError(f"config file {config_path}: unknown setting(s) {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, f in known.items():
            env = environ.get(f"PIXLINE_{name.upper()}")
            if name in flags:
                raw, where = flags[name], f"--{name.replace('_', '-')}"
            elif env is not None:
                raw, where = env, f"PIXLINE_{name.upper()}"
            elif from_file.get(name) is not None:  # ``key: ~`` in the file leaves the default
                raw, where = from_file[name], f"{config_path}: {name}"
            else:
                continue
            if name in SECRETS:
                _check_secret(f, raw, where)
            values[name] = _coerce(f, raw, where)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def takes_uploads(self) -> bool:
        """Whether this process's role takes uploads (media or all), and so runs the analysers and
        publishes the eager jobs; a resizer only renders."""
        return self.role != "resizer"

    def limits(self) -> Limits:
        """The input limits every process checks originals against (upload, renders, jobs)."""
        return Limits(max_bytes=self.max_bytes, max_pixels=self.max_pixels, max_frames=self.max_frames,
                      max_bands=self.max_bands, max_sample_bits=self.max_sample_bits,
                      max_scans=self.max_scans, max_metadata_chunks=self.max_metadata_chunks,
                      max_metadata_bytes=self.max_metadata_bytes)


def _check_webhooks(urls: list[str], secrets: list[str]) -> None:
    """Webhook URLs are http(s) with a host, and signed: Standard Webhooks' ``whsec_`` + base64 secrets."""
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"--webhook-url {url!r}: give an http:// or https:// URL with a host")
    if urls and not secrets:
        raise SettingsError("--webhook-url needs --webhook-secret whsec_... to sign with (receivers verify "
                            "it); make one with: python3 -c \"import base64, secrets; "
                            "print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\"")
    for secret in secrets:
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            key = b""
        if not secret.startswith("whsec_") or len(key) < 24:
            raise SettingsError("--webhook-secret: give whsec_ followed by the base64 of 24 to 64 random bytes")


def _check_secret(f: dataclasses.Field, raw: Any, where: str) -> None:
    """Refuse an empty key or token (``--upload-token ''``, ``PIXLINE_SIGNING_KEY=a,,b``): it would
    be accepted as a secret that everybody knows."""
    if isinstance(raw, list):
        parts = raw
    elif str(f.type).startswith("list") and isinstance(raw, str):
        parts = raw.split(",")
    else:
        parts = [raw]
    if any(not str(part).strip() for part in parts):
        raise SettingsError(f"{where}: an empty {f.name.replace('_', ' ')} is not a secret; give one, "
                            "or leave the setting out")


def _coerce(f: dataclasses.Field, raw: Any, where: str) -> Any:
    kind = str(f.type)
    try:
        if kind.startswith("list"):
            if isinstance(raw, str):
                return [part for part in raw.split(",") if part]
            return [str(x) for x in raw]
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            value = int(raw)
            if value < 0:
                raise ValueError(raw)
            return value
        if kind.startswith("float"):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: {quote(raw)} is not a valid {kind}") from None

"""Settings: command-line flags, then ``PIXLINE_*`` environment variables, then an optional YAML
config file (``--config`` / ``PIXLINE_CONFIG``), then safe defaults — first found wins.

Every setting is a field of :class:`Settings`; its environment variable is ``PIXLINE_`` + the field name
in capitals (``store`` → ``PIXLINE_STORE``), its flag ``--`` + the name with dashes (``--s3-endpoint``).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from pixline.engine.errors import PixlineError
from pixline.engine.source import Limits


class SettingsError(PixlineError):
    """A setting has a value that cannot be used."""

    title = "invalid setting"


#: The parts ``pixline serve --role`` can serve (docs/architecture.md, "Processes").
ROLES = ("all", "media", "resizer")
#: Settings that are secrets: an empty one would sign URLs or guard uploads with nothing secret.
SECRETS = ("signing_key", "upload_token")


def _default_workers() -> int:
    return os.cpu_count() or 1


@dataclass
class Settings:
    """Every pixline setting with its safe default."""

    store: str = "file://./data"
    s3_endpoint: str | None = None        # S3-compatible endpoint URL; credentials: AWS_* variables
    recipes: str | None = None            # recipe folder; default: the set shipped with pixline
    source: str | None = None             # a read-only library of originals: s3://BUCKET/PREFIX/ or a folder
    source_recheck: float = 10.0          # seconds before a source key's version is asked again (0: always)
    bind: str = "127.0.0.1:8080"
    role: str = "all"                     # serve: media (uploads), resizer (/r/, /t/) or all (both)
    workers: int = field(default_factory=_default_workers)
    threads: int = 4                      # threads per worker running the falcon app (pyvips releases the GIL)
    signing_key: list[str] = field(default_factory=list)   # several keys: rotation
    allow_unsafe: bool = False            # accept /t/unsafe/... URLs with no signature
    upload_token: str | None = None       # bearer token for POST/DELETE /images
    allow_open_uploads: bool = False      # no upload token on a non-loopback bind: start anyway
    amqp: str | None = None               # RabbitMQ URL; none: the in-process queue
    queue: str = "pixline.render"
    outbox_interval: float = 10.0         # serve --amqp: seconds between drains of the upload outbox
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_frames: int = 100
    max_bands: int = 5                    # bands of an input image (CMYK + alpha)
    max_sample_bits: int = 16             # bits per sample of an input (float samples never)
    max_scans: int = 100                  # scans of a progressive JPEG, counted before decoding
    max_metadata_chunks: int = 256        # text, EXIF, XMP, ICC chunks or segments of an input
    max_metadata_bytes: int = 8 * 1024 * 1024  # and their bytes, decompressed: both from the bytes
    max_steps: int = 10                   # ad-hoc URLs
    max_output_pixels: int = 16_000_000   # every step of a recipe or ad-hoc URL, before rendering
    reduced_size: int = 3072              # originals longer than this get a reduced copy to render from (0: none)
    reduced_small_size: int = 768         # and a small one of this size for small outputs (0: none)
    render_concurrency: int = 4           # renders at once per process
    render_queue_timeout: float = 10.0    # seconds a request waits for a render slot, then 503
    render_timeout: float = 30.0          # seconds a render or an upload's check decode may compute
    render_max_waiting: int = 32          # requests waiting at once for a render slot or for the same render; more get 503 now
    render_max_waiting_per_key: int = 8   # of those, requests waiting for one render (one output); more get 503 now
    vips_concurrency: int = 1             # libvips threads per render (0: libvips' default, a core each)
    playground_max_per_client: int = 2    # playground requests at once per client address (IPv6: /64), per process; more get 429
    recipe_max_age: int = 86400           # Cache-Control max-age of /r/ responses (recipes can change)
    worker_concurrency: int = 2           # jobs at once per worker (and the AMQP prefetch)
    job_retries: int = 3                  # transient job failures retried this often, then dead-lettered
    job_retry_delay: float = 5.0          # seconds before the first retry; doubles with each retry
    job_timeout: float = 120.0            # seconds one job (decode once + every recipe) may compute
    worker_shutdown_grace: float = 30.0   # seconds SIGTERM waits for in-flight jobs before requeueing
    queue_size: int = 1000                # the in-process queue's bound (no broker): past it, on demand
    metrics_port: int | None = None       # pixline worker: serve Prometheus /metrics on this port
    metrics_host: str = "127.0.0.1"
    public_url: str = ""                  # prefix for URLs in responses ("" = relative)
    header_timeout: float = 10.0          # seconds to receive a request's line and headers, then 408
    body_idle_timeout: float = 15.0       # seconds a request body may pause, then 408
    body_timeout: float = 120.0           # seconds to receive a whole request body, then 408
    max_buffered_bytes: int = 256 * 1024 * 1024  # request bodies held at once per worker; past it 503
    log_level: str = "warning"            # debug, info, warning, error: every process, gunicorn too
    log_format: str = "auto"              # text, json; auto: text on a terminal, JSON otherwise

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise SettingsError(f"role {self.role!r} is not one of {', '.join(ROLES)}")

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
                from_file = yaml.safe_load(Path(config_path).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise SettingsError(f"config file {config_path}: {exc}") from None
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

    def limits(self) -> Limits:
        """The input limits every process checks originals against (upload, renders, jobs)."""
        return Limits(max_bytes=self.max_bytes, max_pixels=self.max_pixels, max_frames=self.max_frames,
                      max_bands=self.max_bands, max_sample_bits=self.max_sample_bits,
                      max_scans=self.max_scans, max_metadata_chunks=self.max_metadata_chunks,
                      max_metadata_bytes=self.max_metadata_bytes)


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
        raise SettingsError(f"{where}: {raw!r} is not a valid {kind}") from None

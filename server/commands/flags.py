"""Command-line flags that are settings: one ``--flag`` per :class:`Settings` field a command takes."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..settings import GROUPS, Settings
from .logs import LOG_FORMATS, configure_logging


#: The limits every original is checked against (``Settings.limits``): flags of every command that
#: reads originals.
INPUT_LIMITS = ("max_bytes", "max_pixels", "max_frames", "max_bands", "max_sample_bits", "max_scans",
                "max_metadata_chunks", "max_metadata_bytes")
#: The events' destinations and delivery: flags of every command that runs jobs (serve, worker).
EVENT_SETTINGS = ("webhook_url", "webhook_secret", "webhook_timeout", "events_amqp", "events_exchange",
                  "events_derivatives", "events_retry_delay", "events_retry_window", "events_concurrency")


#: How a URL source is fetched (engine/fetch.py): flags of every command that takes ``--source``.
URL_SOURCES = ("allow_source_host", "allow_private_source_addresses", "allow_source_network", "allow_http_sources",
               "source_ca_file",
               "source_max_redirects", "source_connect_timeout", "source_timeout")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from a command's parsed flags (flag names match Settings fields).

    The log level and format are settings like any other (flag, ``PIXLINE_LOG_LEVEL``, config file,
    default): once they are known, the process logs at that level in that format.
    """
    flags: dict[str, Any] = {k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__}
    flags["config"] = getattr(args, "config", None)
    settings = Settings.load(flags)
    configure_logging(settings.log_level, settings.log_format)
    return settings


def add_log_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """``--log-level`` and ``--log-format``. Commands get them with ``default=argparse.SUPPRESS``, so
    that a command's unset flag does not overwrite the value given before the command."""
    parser.add_argument("--log-level", default=default, metavar="LEVEL",
                        help="debug, info, warning (default), error (PIXLINE_LOG_LEVEL)")
    parser.add_argument("--log-format", default=default, choices=LOG_FORMATS,
                        help="text, json, or auto (default): text on a terminal, JSON otherwise "
                             "(PIXLINE_LOG_FORMAT)")


def add_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add ``--name`` flags for the named settings (and ``--config``), defaulting to unset, each with
    its help line, default and unit, listed in ``--help`` under its group (``settings.GROUPS``)."""
    parser.add_argument("--config", metavar="FILE", help="a YAML file of settings (PIXLINE_CONFIG)")
    groups: dict[str, Any] = {}
    for name in sorted(names, key=lambda n: GROUPS.index(Settings.__dataclass_fields__[n].metadata["group"])):
        f = Settings.__dataclass_fields__[name]
        group = f.metadata["group"]
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        target = groups[group]
        flag = "--" + name.replace("_", "-")
        kind = str(f.type)
        if kind.startswith("bool"):
            target.add_argument(flag, dest=name, action="store_const", const=True, default=None,
                                help=flag_help(f))
        elif kind.startswith("list"):
            target.add_argument(flag, dest=name, action="append", default=None, metavar="VALUE",
                                help=flag_help(f, "repeatable; PIXLINE_{} comma-separated"))
        else:
            target.add_argument(flag, dest=name, default=None, metavar=_metavar(f), help=flag_help(f))


def flag_help(f: dataclasses.Field, variable: str = "PIXLINE_{}") -> str:
    """A setting's one line of ``--help``: what it does, its default with its unit, its variable."""
    text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
    where = variable.format(f.name.upper())
    if "default:" in text:  # the help says what the default means
        return f"{text} ({where})"
    return f"{text} (default: {default_text(f)}; {where})"


def default_text(f: dataclasses.Field) -> str:
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    unit = f.metadata.get("unit", "")
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if unit == "bytes" and isinstance(value, int) and value >= 1024 * 1024 and value % (1024 * 1024) == 0:
        return f"{value // (1024 * 1024)} MiB"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value} {unit}".strip() if unit else str(value)


def _metavar(f: dataclasses.Field) -> str:
    unit = f.metadata.get("unit", "")
    return {"s": "SECONDS", "bytes": "BYTES", "px": "PIXELS", "pixels": "PIXELS"}.get(unit) or (
        "N" if str(f.type).startswith(("int", "float")) else f.name.split("_")[-1].upper())

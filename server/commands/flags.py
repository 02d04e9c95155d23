"""Command-line flags that are settings: one ``--flag`` per :class:`Settings` field a command takes."""
from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings
from .logs import LOG_FORMATS, configure_logging


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
    """Add ``--name`` flags for the named settings (and ``--config``), defaulting to unset."""
    parser.add_argument("--config", help="YAML config file (or PIXLINE_CONFIG)")
    for name in names:
        f = Settings.__dataclass_fields__[name]
        flag = "--" + name.replace("_", "-")
        kind = str(f.type)
        if kind.startswith("bool"):
            parser.add_argument(flag, dest=name, action="store_const", const=True, default=None,
                                help=f"(PIXLINE_{name.upper()})")
        elif kind.startswith("list"):
            parser.add_argument(flag, dest=name, action="append", default=None,
                                help=f"repeatable (PIXLINE_{name.upper()}, comma-separated)")
        else:
            parser.add_argument(flag, dest=name, default=None, help=f"(PIXLINE_{name.upper()})")

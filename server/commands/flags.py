"""Command-line flags that are settings: one ``--flag`` per :class:`Settings` field a command takes."""
from __future__ import annotations

import argparse
import logging
from typing import Any

from ..settings import Settings, SettingsError


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from a command's parsed flags (flag names match Settings fields).

    The log level is a setting like any other (flag, ``PIXLINE_LOG_LEVEL``, config file, default):
    once it is known, the process logs at it.
    """
    flags: dict[str, Any] = {k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__}
    flags["config"] = getattr(args, "config", None)
    settings = Settings.load(flags)
    apply_log_level(settings.log_level)
    return settings


def apply_log_level(level: str) -> None:
    """Log at ``level``; libvips and pika say less unless it is DEBUG.

    libvips reports a bad file as warnings *and* an error (the error is the one line a command
    prints), so it logs errors only; pika logs every connection step, so it logs warnings and up.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise SettingsError(f"log level {level!r} is not one of debug, info, warning, error")
    logging.getLogger().setLevel(numeric)
    debug = numeric <= logging.DEBUG
    logging.getLogger("pyvips").setLevel(numeric if debug else max(logging.ERROR, numeric))
    logging.getLogger("pika").setLevel(numeric if debug else max(logging.WARNING, numeric))


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

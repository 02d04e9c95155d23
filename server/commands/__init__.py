"""One module per ``pixline`` command, each with ``register(subparsers)``."""
from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from a command's parsed flags (flag names match Settings fields)."""
    flags: dict[str, Any] = {k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__}
    flags["config"] = getattr(args, "config", None)
    return Settings.load(flags)


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

"""The ``pixline`` command line. Each command lives in ``pixline.server.commands.<name>``.

Errors a user can act on print one line, ``pixline: error: …``, and exit 1.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from pixline.engine.errors import PixlineError

from .flags import settings_from

COMMANDS = ("apply", "recipes", "plugins", "serve", "worker", "regenerate", "reindex", "sign", "new_plugin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixline", description="Plugin-based image pipeline over libvips.")
    parser.add_argument("--log-level", default=None,
                        help="debug, info (default), warning, error (PIXLINE_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"pixline.server.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings_from(args)  # the log level, from its flag, environment or config file
        return int(args.func(args) or 0)
    except PixlineError as exc:
        print(f"pixline: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

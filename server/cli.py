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

COMMANDS = ("apply", "recipes", "plugins", "serve", "worker", "regenerate", "sign")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixline", description="Plugin-based image pipeline over libvips.")
    parser.add_argument("--log-level", default="warning", help="debug, info, warning (default), error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"pixline.server.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pixline.server.commands.{name}":
                continue  # a command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level.lower() != "debug":
        # libvips reports a bad file as warnings *and* an error; the error is the one line we print.
        logging.getLogger("pyvips").setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except PixlineError as exc:
        print(f"pixline: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

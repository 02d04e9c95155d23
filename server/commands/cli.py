"""The ``pixline`` command line. Each command lives in ``pixline.server.commands.<name>``.

Exit codes (also in ``pixline --help`` and the README): 0 done; 1 an error the user can act on, printed
as one line, ``pixline: error: …``; 2 a bad command line (argparse's usage message); 70 an internal
error, a bug (its traceback is logged); 130 interrupted; 141 the output's reader went away.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import sys
from typing import Any, Sequence

from pixline.engine.errors import PixlineError

from .flags import add_log_flags, settings_from

log = logging.getLogger(__name__)

COMMANDS = ("apply", "recipes", "plugins", "docs", "serve", "worker", "regenerate", "reindex", "sign",
            "new_plugin", "import_library", "events")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 70, 130, 141

EPILOG = """\
examples:
  pixline serve                                   # http://127.0.0.1:8080, files in ./data
  pixline apply thumb photo.jpg thumb.jpg         # one file through a recipe, no services
  pixline COMMAND --help                          # a command's flags and examples

exit codes:
  0    done
  1    an error you can act on, said in one line: "pixline: error: ..."
  2    a bad command line (the usage says what is wrong)
  70   an internal error: a bug (the traceback is logged; please report it)
  130  interrupted (Ctrl-C)
  141  the output's reader went away (pixline recipes | head): stopped quietly

Every flag is also a PIXLINE_* environment variable (--max-bytes: PIXLINE_MAX_BYTES) or a key of the
YAML file given with --config. --log-level and --log-format go before or after the command.
"""


class VersionAction(argparse.Action):
    """``--version``: pixline's version, and libvips' and Python's (imported only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version of pixline, libvips and Python, and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        import pyvips

        import pixline

        libvips = ".".join(str(pyvips.version(i)) for i in range(3))
        print(f"pixline {pixline.__version__} (libvips {libvips}, Python {platform.python_version()})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixline", description="The image pipeline of a photo site: "
                                     "uploads in, every size and format out, libvips underneath.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=VersionAction)
    add_log_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"pixline.server.commands.{name}").register(sub)
    for command in sub.choices.values():
        command.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' lines
        add_log_flags(command, default=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings_from(args)  # the log level and format, from flags, environment or config file
        return int(args.func(args) or 0)
    except PixlineError as exc:
        print(f"pixline: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (pixline recipes | head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_BROKEN_PIPE
    except Exception:  # not a user's mistake: a bug, so the traceback matters
        log.critical("pixline %s: internal error (a bug; please report it with this traceback)",
                     args.command, exc_info=True)
        return EXIT_BUG

"""``pixline plugins``: each installed plugin, its status, distribution and version, and what it provides.

It lists broken plugins too (with the reason) rather than stopping at the first, and exits 0;
``--check`` exits 1 when any plugin is broken or deprecated, for a plugin author's CI.
"""
from __future__ import annotations

import argparse
import json

from pixline.engine.contract import CONTRACT_VERSION
from pixline.engine.registry import PluginInfo, Registry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list installed plugins, their status and the steps they provide",
                       epilog="""\
examples:
  pixline plugins           # name, status (ok, deprecated, broken), distribution, version, what it provides
  pixline plugins --json    # the same, for scripts
  pixline plugins --check   # exit 1 if a plugin is broken or uses something deprecated (for CI)
""")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when any plugin is broken or deprecated")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = Registry.load(refuse=False)
    plugins = list(registry.plugins.values())
    if args.json:
        print(json.dumps([info.as_dict() for info in plugins], indent=2))
    elif not plugins:
        print("no plugins installed: pip install pixline-resize pixline-crop pixline-watermark pixline-format")
    else:
        print(f"plugin contract {CONTRACT_VERSION}")
        for info in plugins:
            print(describe(info))
    failing = [info for info in plugins if info.status != "ok"]
    return 1 if args.check and failing else 0


def describe(info: PluginInfo) -> str:
    """The plugin's line, then an indented line for each reason it is not ``ok``."""
    provides = [f"steps: {', '.join(info.steps)}" if info.steps else "",
                f"encoders: {', '.join(info.encoders)}" if info.encoders else "",
                f"analysers: {', '.join(info.analysers)}" if info.analysers else "",
                f"gravities: {', '.join(info.gravities)}" if info.gravities else "",
                *(f"{name} unavailable ({reason})" for name, reason in info.unavailable.items())]
    lines = [f"{info.name:<12} {info.status:<10} {info.distribution} {info.version}  "
             + "; ".join(p for p in provides if p)]
    lines += [f"    broken: {info.problem}"] if info.problem else []
    lines += [f"    deprecated: {message}" for message in info.deprecations]
    lines += [f"    warning: {message}" for message in info.warnings]
    return "\n".join(line.rstrip() for line in lines)

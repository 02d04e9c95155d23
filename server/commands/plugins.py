"""``pixline plugins``: each installed plugin, its distribution and version, and what it provides."""
from __future__ import annotations

import argparse
import json

from pixline.engine.registry import Registry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list installed plugins and the steps they provide", epilog="""\
examples:
  pixline plugins           # name, distribution, version, steps and encoders of each plugin
  pixline plugins --json    # the same, for scripts
""")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = Registry.load()
    rows = [vars(info) for info in registry.plugins.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no plugins installed: pip install pixline-resize pixline-crop pixline-watermark pixline-format")
        return 0
    for info in registry.plugins.values():
        provides = [f"steps: {', '.join(info.steps)}" if info.steps else "",
                    f"encoders: {', '.join(info.encoders)}" if info.encoders else "",
                    *(f"{name} unavailable ({reason})" for name, reason in info.unavailable.items())]
        print(f"{info.name:<12} {info.distribution} {info.version}  " + "; ".join(p for p in provides if p))
    return 0

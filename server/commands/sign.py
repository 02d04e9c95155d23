"""``pixline sign PATH``: print the signed ad-hoc URL of ``<steps>/<id>``.

    $ pixline sign --signing-key KEY 'resize:w=300,h=200,fit=cover/format:type=webp/<id>'
    /t/<signature>/resize:w=300,h=200,fit=cover/format:type=webp/<id>

The first signing key signs (the server accepts every configured key, so keys can be rotated). The
steps are validated with the installed plugins first, so a typo fails here rather than as a 400.
"""
from __future__ import annotations

import argparse

from pixline.engine.errors import ParameterError
from pixline.engine.registry import Registry
from pixline.engine.storage import check_id

from .flags import add_flags, settings_from
from ..http.signing import sign_path
from ..http.urlsteps import adhoc_recipe, split_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign", help="sign an ad-hoc URL path (<steps>/<id>)", epilog="""\
examples:
  pixline sign --signing-key KEY 'resize:w=300,h=200,fit=cover/format:t=webp/<id>'
  PIXLINE_SIGNING_KEY=KEY pixline sign --public-url https://img.example.com 'resize:w=600/<id>'
""")
    p.add_argument("path", help="steps and image id, e.g. 'resize:w=300/format:type=webp/<id>'")
    p.add_argument("--no-check", action="store_true", help="do not validate the steps")
    add_flags(p, "signing_key", "public_url", "max_steps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not settings.signing_key:
        raise ParameterError("no signing key: pass --signing-key KEY or set PIXLINE_SIGNING_KEY")
    path = args.path.strip().lstrip("/")
    if path.startswith("t/"):
        raise ParameterError("give the path after the signature: <steps>/<id>, not /t/...")
    if not args.no_check:
        steps, image_id = split_path(path)
        check_id(image_id)
        adhoc_recipe(steps, Registry.load(), settings.max_steps)
    print(settings.public_url.rstrip("/") + sign_path(path, settings.signing_key[0]))
    return 0

"""``pixline reindex``: write the derivative index of a store written before there was one.

``GET`` and ``DELETE /images/{id}`` find an image's derivatives through ``index/<id>/``
(docs/architecture.md, "Storage keys"); derivatives stored by an older pixline have no entries there,
so a DELETE would leave them behind. This walks ``derived/`` once (a listing of every derivative: a
one-off, never a request) and writes each missing entry. Running it again writes nothing new.
"""
from __future__ import annotations

import argparse

from tqdm import tqdm

from .flags import add_flags, settings_from
from .wiring import make_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reindex", help="index the derivatives of a store written before the index",
                       epilog="""\
examples:
  pixline reindex --dry-run                                # how many entries it would write
  pixline reindex --store s3://photos/pixline --s3-endpoint http://127.0.0.1:8333
""", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="only say how many entries are missing")
    add_flags(p, "store", "s3_endpoint")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = make_store(settings_from(args))
    keys = [k for k in store.list_keys("derived/") if k.count("/") == 3]
    missing = [k for k in tqdm(keys, desc="checking", unit="derivative", disable=len(keys) < 100)
               if not store.exists(store.index_key(k))]
    if args.dry_run:
        print(f"{len(missing)} of {len(keys)} derivative(s) have no index entry")
        return 0
    for key in tqdm(missing, desc="indexing", unit="derivative", disable=len(missing) < 100):
        store.put(store.index_key(key), b"")
    print(f"indexed {len(missing)} of {len(keys)} derivative(s)")
    return 0

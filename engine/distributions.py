"""Which installed distribution a plugin's code comes from, and so which version goes in digests.

``pip install --upgrade --target DIR`` can leave both ``pixline_x-0.1.0.dist-info`` and
``pixline_x-0.2.0.dist-info`` in one folder; ``importlib.metadata`` then hands out whichever it finds
first, while Python imports the one module file both describe (0.2.0's code). A recipe keyed on 0.1.0
would keep serving bytes stored for 0.1.0 after the upgrade. So the version is taken from the
distribution whose ``RECORD`` lists the imported module's file *with that file's hash*, and two
distributions of one name are reported (docs/plugins.md, "Digests").
"""
from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

Distribution = importlib.metadata.Distribution


def normalise_name(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Pixline_Sepia`` is ``pixline-sepia``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Owner:
    """The distribution a plugin's code is from, and a warning when that took a choice."""

    name: str
    version: str
    warning: str = ""


def installed_by_name(names: Iterable[str]) -> dict[str, list[Distribution]]:
    """Every installed distribution of each of ``names`` (normalised), duplicates included."""
    wanted = {normalise_name(n) for n in names}
    found: dict[str, list[Distribution]] = {}
    for dist in importlib.metadata.distributions():
        name = normalise_name(dist.metadata["Name"] or "")
        if name in wanted:
            found.setdefault(name, []).append(dist)
    return found


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _records(dist: Distribution, module_file: Path) -> bool | None:
    """True if ``dist``'s RECORD lists ``module_file`` with its current hash, False if it lists it
    with another, ``None`` if it does not list it (or has no RECORD: an editable install)."""
    for entry in dist.files or ():
        try:
            if Path(dist.locate_file(entry)).resolve() != module_file:
                continue
        except (OSError, ValueError):
            continue
        if entry.hash is None or entry.hash.mode != "sha256":
            return None
        return entry.hash.value == _file_hash(module_file)
    return None


def owner(module_name: str, candidates: list[Distribution], fallback: Distribution | None) -> Owner:
    """The distribution of ``candidates`` (one name, maybe several installs) that holds the code of
    ``module_name`` (already imported); ``fallback`` (the entry point's) when none can tell."""
    chosen = fallback
    module = sys.modules.get(module_name.split(":")[0])
    path = getattr(module, "__file__", None)
    if path and len(candidates) > 1:
        module_file = Path(path).resolve()
        matching = [d for d in candidates if _records(d, module_file)]
        chosen = matching[0] if len(matching) == 1 else fallback
    if chosen is None:
        return Owner("unknown distribution", "?")
    version = chosen.version
    warning = ""
    if len(candidates) > 1:
        listed = ", ".join(sorted(f"{d.version} ({Path(str(d.locate_file(''))).resolve()})"
                                  for d in candidates))
        warning = (f"{len(candidates)} distributions of {chosen.name} are installed: "
                   f"{listed}; the code that runs is {version}'s, so that is the version used. "
                   "Remove the stale .dist-info folder (pip uninstall, then install again)")
    return Owner(chosen.name or "unknown distribution", version, warning)

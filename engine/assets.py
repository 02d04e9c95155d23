"""Assets of recipes (watermark images…): one loader, one set of rules for what a recipe may read.

A reference is ``store:NAME``, the stored object ``assets/NAME``, or a path relative to the asset
folder: the server's recipe folder, or for ``pixline apply`` the recipe file's folder. Absolute paths
and paths that lead out of the folder are refused, so a recipe (or an ad-hoc URL) cannot read any
other file of the machine.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import NotFoundError, ParameterError, quote
from .storage import Store

ASSET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
STORE_PREFIX = "store:"


class AssetLoader:
    """Loads asset references; an instance is what :class:`~pixline.engine.steps.Context` calls.

    ``folder``: where file references are looked up (``None``: files cannot be used);
    ``store``: where ``store:NAME`` references are (``None``: they cannot be used).
    """

    def __init__(self, folder: str | Path | None, store: Store | None = None) -> None:
        self.folder = Path(folder).resolve() if folder else None
        self.store = store

    def __call__(self, ref: str) -> bytes:
        """The bytes of asset ``ref``.

        Raises :class:`ParameterError` for a reference that is refused and :class:`NotFoundError`
        for one that does not exist or cannot be looked up here. Messages name the reference, never
        the folder's path on this machine (they reach HTTP responses).
        """
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in ref):
            raise ParameterError(f"asset name {quote(ref)} is not valid: it contains control characters")
        if ref.startswith(STORE_PREFIX):
            return self._stored(ref, ref[len(STORE_PREFIX):])
        return self._file(ref)

    def _stored(self, ref: str, name: str) -> bytes:
        if not ASSET_RE.fullmatch(name) or ".." in name:
            raise ParameterError(f"asset name {quote(name)} is not valid")
        if self.store is None:
            where = "; use a file of the asset folder (the recipe's folder)" if self.folder else ""
            raise NotFoundError(f"asset {quote(ref)}: no store is configured, so 'store:' assets cannot be "
                                f"loaded{where}")
        return self.store.get(f"assets/{name}")

    def _file(self, ref: str) -> bytes:
        # Refused even without a folder, so a recipe means the same thing wherever it runs.
        if Path(ref).is_absolute():
            raise ParameterError(f"asset {quote(ref)} is an absolute path: give a path relative to the asset "
                                 "folder (the recipe's folder)")
        if self.folder is None:
            raise NotFoundError(f"asset {quote(ref)}: no asset folder is configured")
        path = (self.folder / ref).resolve()  # resolved: '..' and symlinks cannot lead out
        if self.folder not in path.parents:
            raise ParameterError(f"asset {quote(ref)} is outside the asset folder")
        try:
            return path.read_bytes()
        except OSError:
            raise NotFoundError(f"asset {quote(ref)} not found in the asset folder (the recipe's folder)") from None

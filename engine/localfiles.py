"""Whole-file writes on the local file system, for :class:`~pixline.engine.storage.Store`.

A file is written under a temporary name in the store's ``tmp/`` folder and then given its real name,
so a reader (or a crash) never finds half of it under that name. Plain ``os`` calls rather than
fsspec's ``pipe_file`` and ``mv``: those cost ~0.3 ms a write, a tenth of a small on-demand render,
and every render writes twice (its index entry and the derivative).
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Callable


def write_whole(path: str, data: bytes, tmp_folder: str, replace: bool = True) -> bool:
    """Write ``data`` as the file ``path``; True if written.

    ``replace=False`` keeps a file already at ``path`` and returns False: the whole file is hard-linked
    to its name, which the file system refuses when the name exists, so of several writers the first
    wins and a reader only ever sees one of them.
    """
    tmp = os.path.join(tmp_folder, uuid.uuid4().hex)
    _with_folder(tmp, lambda: _write(tmp, data))
    if replace:
        _with_folder(path, lambda: os.replace(tmp, path))
        return True
    try:
        _with_folder(path, lambda: os.link(tmp, path))
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: check, then rename (not atomic)
        if os.path.exists(path):
            return False
        os.replace(tmp, path)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def remove_empty_folders(path: str, root: str) -> None:
    """Remove the folders of the file ``path`` that are empty, up to ``root`` (kept): a removed
    derivative's index folders. ``rmdir`` refuses a folder another writer has just put a file in."""
    folder = os.path.dirname(path)
    while folder.startswith(root + os.sep) and folder != root:
        try:
            os.rmdir(folder)
        except OSError:  # not empty (or gone already): its files are someone else's
            return
        folder = os.path.dirname(folder)


def _with_folder(path: str, write: Callable[[], Any], attempts: int = 3) -> None:
    """``write()`` the file ``path``, making its folder first when it is missing (again, should a
    delete remove the empty folder between the two)."""
    for attempt in range(attempts):
        try:
            write()
            return
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
            os.makedirs(os.path.dirname(path), exist_ok=True)

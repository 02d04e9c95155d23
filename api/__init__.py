"""pixline: the image pipeline of a photo site.

The Python API, in three lines::

    from pixline import render
    webp = render("feed", open("photo.jpg", "rb").read(), accept="image/webp")
    open("feed.webp", "wb").write(webp)

:func:`render` is :func:`pixline.engine.api.render` (recipes by name, path or dict; plugins loaded
once per process). The library itself is :mod:`pixline.engine`, the services :mod:`pixline.server`.
Names are imported on first use, so ``import pixline.server…`` does not load the engine through here.
:mod:`pixline.testing` is the test kit for plugin authors; :mod:`pixline.pytest_plugin` its fixtures.
"""
from __future__ import annotations

from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("pixline")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

#: What ``from pixline import …`` offers, and the engine module each name comes from.
_API = {name: "pixline.engine.api" for name in ("render", "EncodedImage", "find_recipe")}
_API.update({name: "pixline.engine.errors" for name in (
    "PixlineError", "RecipeError", "NotFoundError", "InputError", "UnsupportedFormatError",
    "UndecodableImageError", "ImageTooLargeError", "PluginError", "RenderError", "ParameterError")})

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'pixline' has no attribute {name!r}")

"""The test-only ``slow`` plugin (tests/slowplugin/), for tests that need a render to take long.

In this process it is registered in code (:func:`registry`), so no other test sees a ``slow`` step;
a subprocess finds it through its entry point when started with :func:`env`.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from types import ModuleType

from pixline.engine import Registry

PLUGIN_DIR = Path(__file__).parent / "slowplugin"


@functools.lru_cache(maxsize=1)
def module() -> ModuleType:
    """``pixline_test_slow``, imported from its file (it is not on ``sys.path`` here)."""
    spec = importlib.util.spec_from_file_location("pixline_test_slow", PLUGIN_DIR / "pixline_test_slow.py")
    assert spec and spec.loader
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


def registry() -> Registry:
    """The installed plugins plus ``slow``, under the distribution a subprocess finds it in: recipe
    digests cover each step's distribution and version, so both processes must agree on them."""
    registry = Registry.load()
    dist = next(importlib.metadata.PathDistribution(info) for info in PLUGIN_DIR.glob("*.dist-info"))
    registry.add("slow", module(), dist.metadata["Name"], dist.version)
    return registry


def env() -> dict[str, str]:
    """Environment additions that let a ``pixline`` subprocess load the ``slow`` plugin."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), *([path] if path else [])])}

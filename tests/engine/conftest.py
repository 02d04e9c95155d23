from __future__ import annotations

import pytest

from pixline.engine import Registry

from tests.engine import toyplugin


@pytest.fixture
def toy_registry() -> Registry:
    """A registry with only the toy plugin (no entry points)."""
    registry = Registry()
    registry.add("toy", toyplugin, "toy-dist", "0.0")
    return registry

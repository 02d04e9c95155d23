"""pixline's pytest plugin: the test kit (:mod:`pixline.testing`) as fixtures for a plugin's tests.

Registered through the ``pytest11`` entry point (as pytest's own ``pytester`` is), so every pytest
run where pixline is installed has these fixtures, with nothing to import (``-p no:pixline`` turns
them off). docs/plugins.md, "Testing", shows them in use:

- ``pixline_registry``: every installed plugin, as pixline loads them. Override it (a fixture of the
  same name in your test module or conftest) with ``testing.plugin_registry(your_module)`` to test
  your plugin alone;
- ``render_recipe(recipe, image, accept=None, fields=None)``: the bytes a recipe makes, encoder and
  all (:func:`~pixline.engine.testing.render_recipe` over ``pixline_registry``);
- ``rendered_image(steps, image, ctx=None, every_frame=True)``: the normal image steps make, no
  encoder needed;
- ``colour_shapes``: an image of every colour shape by name; ``colour_shape``: one of them, the test
  running once per shape (ids ``grey``, ``rgba16``, ``animated``…);
- ``assert_decodes(data, format=None, width=…, height=…, frames=…)``: the bytes decode, whole, as that.

The engine is imported when a fixture is first used, not when pytest starts.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "colour_shape" in metafunc.fixturenames:
        from pixline.engine.testing import COLOUR_SHAPES

        metafunc.parametrize("colour_shape", COLOUR_SHAPES, indirect=True)


@pytest.fixture(scope="session")
def pixline_registry() -> Any:
    """Every installed plugin (``Registry.load()``); override it to test a plugin alone."""
    from pixline.engine.registry import Registry

    return Registry.load()


@pytest.fixture
def render_recipe(pixline_registry: Any) -> Callable[..., Any]:
    """``render_recipe(recipe, image, accept=None, fields=None)``: the encoded result (bytes that say
    their ``format``, ``width``, ``height`` and ``frames``)."""
    from pixline.engine import testing

    return functools.partial(testing.render_recipe, pixline_registry)


@pytest.fixture
def rendered_image(pixline_registry: Any) -> Callable[..., Any]:
    """``rendered_image(steps, image, ctx=None, every_frame=True)``: the normal image, in memory."""
    from pixline.engine import testing

    return functools.partial(testing.rendered_image, pixline_registry)


@pytest.fixture(scope="session")
def colour_shapes() -> dict[str, Any]:
    """``testing.colour_shapes()``: an image of every colour shape, by name."""
    from pixline.engine import testing

    return testing.colour_shapes()


@pytest.fixture
def colour_shape(request: pytest.FixtureRequest, colour_shapes: dict[str, Any]) -> Any:
    """One image of :func:`colour_shapes` per test run (the run's id names the shape)."""
    return colour_shapes[request.param]


@pytest.fixture
def assert_decodes() -> Callable[..., Any]:
    """``testing.assert_decodes``: the bytes decode whole as the image they should be."""
    from pixline.engine import testing

    return testing.assert_decodes

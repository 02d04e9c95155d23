"""The test kit for pixline's plugins, under its stable name: ``from pixline import testing``.

Synthetic inputs of every colour shape, renders through a step or a whole recipe, decoding checks
and image comparison (docs/plugins.md, "Testing"). The helpers live in the engine
(:mod:`pixline.engine.testing`, importable under that name too); what ``__all__`` lists is the
public API. pixline's pytest plugin gives the same as fixtures (:mod:`pixline.pytest_plugin`).
"""
from pixline.engine.testing import *  # noqa: F401,F403  (the public names: __all__)
from pixline.engine.testing import __all__  # noqa: F401

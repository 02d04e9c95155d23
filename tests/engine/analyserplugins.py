"""Analyser plugins for the tests of engine/analysis.py: one that measures, some that misbehave."""
from __future__ import annotations

import types
from typing import Any

import pyvips

from pixline.engine import Analyser, Context, hookimpl


class MeanColour(Analyser):
    """The mean colour, and what it was given: the size of its image and the source's."""

    name = "mean"
    size = 32
    placeholder = True
    calls: list[tuple[int, int]] = []

    def analyse(self, image: pyvips.Image, ctx: Context) -> Any:
        MeanColour.calls.append((image.width, image.height))
        return {"rgb": [round(image[i].avg()) for i in range(3)], "given": [image.width, image.height],
                "source": list(ctx.source_size)}


class Exploding(Analyser):
    name = "exploding"

    def analyse(self, image: pyvips.Image) -> Any:
        raise RuntimeError("the detector fell over")


class NotJson(Analyser):
    name = "notjson"

    def analyse(self, image: pyvips.Image) -> Any:
        return {"image": image}


class Huge(Analyser):
    name = "huge"

    def analyse(self) -> Any:
        return ["x" * 1000] * 100


def plugin(*classes: type[Analyser]) -> types.SimpleNamespace:
    """A plugin object registering ``classes`` through pixline_register_analysers."""

    @hookimpl
    def pixline_register_analysers(register):
        for cls in classes:
            register(cls)

    return types.SimpleNamespace(pixline_register_analysers=pixline_register_analysers)

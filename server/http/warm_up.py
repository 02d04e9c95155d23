"""Warming a serving process up before it says it is ready (docs/architecture.md, "Processes").

A fresh process pays once for libvips' start, each loader's and encoder's first use (the AVIF encoder's
first call costs the most), the plugins' first imports and the recipes' assets. Without a warm-up the
first user of each paid it (issue 22: the first upload after a start had its presets ~0.8 s later
than the next one). :class:`WarmUp` renders every output of every recipe once over a tiny image in a
thread of its own, and in a process that takes uploads runs the analysers over it once (their
plugins import what they need on first use: OpenCV for faces); ``/readyz`` answers 503 until it has
finished.
"""
from __future__ import annotations

import logging
import threading
import time

import pyvips

from pixline.engine import analysis
from pixline.engine.derivatives import Derivatives
from pixline.engine.pipeline import render
from pixline.engine.steps import Context
from pixline.engine.source import Source

log = logging.getLogger(__name__)

#: The tiny image every recipe renders once: a JPEG (the loader uploads use most), with colour in it.
SIZE = (96, 64)


def tiny_jpeg() -> bytes:
    width, height = SIZE
    image = pyvips.Image.xyz(width, height)
    return image.extract_band(0).bandjoin([image.extract_band(1), image.extract_band(0)]) \
        .cast("uchar").copy(interpretation="srgb").jpegsave_buffer(Q=80)


class WarmUp:
    """Render each recipe's outputs once, in a daemon thread; :meth:`check` is ``/readyz``'s check."""

    def __init__(self, derivatives: Derivatives, analyse: bool = False) -> None:
        self.derivatives = derivatives
        self.analyse = analyse
        self.done = threading.Event()
        self.summary = ""

    def start(self) -> "WarmUp":
        threading.Thread(target=self.run, name="pixline-warm-up", daemon=True).start()
        return self

    def run(self) -> None:
        started, rendered, failed = time.monotonic(), 0, 0
        data = tiny_jpeg()
        registry = self.derivatives.registry
        try:
            if self.analyse and registry.analysers:
                # Failures are recorded in the result, never raised: nothing to catch here.
                analysis.analyse(registry.analysers, Source(data, name="warm-up"),
                                 Context(source_format="jpeg", source_size=SIZE))
            for recipe in self.derivatives.recipes.values():
                accepts = [None] + [registry.encoders[name].media_type for name in recipe.output_spec.candidates
                                    if name in registry.encoders] if recipe.negotiated else [None]
                for accept in accepts:
                    ctx = Context(fields={}, accept=accept, source_format="jpeg",
                                  load_asset=self.derivatives.load_asset, source_size=SIZE)
                    try:
                        render(recipe, Source(data, name="warm-up"), registry, ctx)
                        rendered += 1
                    except Exception as exc:  # a recipe that needs an upload's fields: its first user pays
                        failed += 1
                        log.info("warm-up: recipe %r (%s) not rendered: %s", recipe.name, accept, exc)
        finally:
            self.summary = (f"{rendered} outputs rendered in {time.monotonic() - started:.2f}s"
                            + (f", {failed} not" if failed else ""))
            log.info("warm-up: %s", self.summary)
            self.done.set()

    def check(self) -> str:
        if not self.done.is_set():
            raise RuntimeError("warming up (every recipe's outputs rendered once)")
        return self.summary

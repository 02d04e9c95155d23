"""A render's time budget: one object that the pipeline and the steps check, and that stops libvips.

Why libvips' progress signal alone is not a time limit (libvips 8.18, ``iofuncs/threadpool.c`` and
``iofuncs/sink.c``): libvips emits ``eval`` from the main loop of a computation's thread pool, each
time a worker reports a finished unit of work, and that loop stops looking at reports as soon as the
last unit has been handed out. A small image is often handed out completely before the first report
is looked at, so no ``eval`` is emitted at all and a kill is never asked for. A kill set *before* a
computation is no help either: every sink clears the flag as it starts (``vips_sink_base_init``).
And a handler connected to an image that came from libvips' operation cache stays on that shared
image, where it kills the next render that reuses it (or crashes once its Python wrapper is gone).

So a :class:`Deadline` works two ways:

* :meth:`Deadline.check` — the pipeline (``engine/pipeline.py``) calls it before anything is
  decoded, after every step and before encoding; a step calls it before work it does eagerly. Past
  the deadline it raises :class:`~pixline.engine.errors.RenderTimeoutError` at once, whatever the
  image size.
* :meth:`Deadline.watch` / :meth:`Deadline.copy_memory` — for one long libvips computation (the
  encode, a step's ``copy_memory``, ``smartcrop`` or ``find_trim``): a private copy of the image that
  libvips abandons ("killed") at its next progress report past the deadline. Such a computation is
  long, so it reports progress; one too short to report is over soon anyway.

Every render has one, in :attr:`Context.deadline <pixline.engine.steps.Context>`; without a limit it
never expires and ``watch`` adds nothing. The same object can span more than one render (a job's whole
budget: decode once, then every recipe) by putting it in each render's context.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import pyvips

from .errors import RenderTimeoutError


class Deadline:
    """A point in time (on ``clock``) by which a render must be done; ``seconds=None``: never."""

    def __init__(self, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.at = math.inf if seconds is None else clock() + seconds
        #: True once libvips was told to stop a computation watched by this deadline.
        self.killed = False
        # The Python wrappers of watched images hold the callbacks libvips calls: they must live as
        # long as the render (pyvips aborts the process on a callback whose wrapper is gone).
        self._watched: list[pyvips.Image] = []

    @property
    def limited(self) -> bool:
        return self.seconds is not None

    def remaining(self) -> float:
        """Seconds left (negative once past; ``inf`` without a limit)."""
        return self.at - self.clock() if self.limited else math.inf

    @property
    def expired(self) -> bool:
        return self.limited and self.clock() >= self.at

    def sooner(self, seconds: float | None) -> "Deadline":
        """This deadline, or one ``seconds`` from now if that comes first (``None``: this one)."""
        if seconds is None:
            return self
        other = Deadline(seconds, self.clock)
        return other if other.at < self.at else self

    def exceeded(self, stage: str) -> RenderTimeoutError:
        """The error for a render stopped ``stage`` (e.g. "before encoding")."""
        return RenderTimeoutError(f"took longer than {self.seconds:g} s and was stopped {stage}")

    def check(self, stage: str) -> None:
        """Raise :class:`RenderTimeoutError` if the deadline has passed; ``stage`` says where."""
        if self.expired:
            raise self.exceeded(stage)

    def watch(self, image: pyvips.Image) -> pyvips.Image:
        """``image``, as a private copy that libvips stops computing once the deadline has passed.

        Compute the returned image (encode it, ``copy_memory`` it…), not ``image``: the kill and the
        progress reports belong to the copy. ``copy`` is never cached by libvips ("to stop sharing"),
        so no other render can be handed this image, and the progress handler dies with the render.
        Never watch an image that outlives the render (one a step keeps in a cache).
        """
        if not self.limited:
            return image
        private = image.copy()
        # It may have inherited an upstream image's progress reporting: report on itself instead.
        private.set_progress(False)
        private.set_progress(True)
        private.signal_connect("eval", self._on_eval)
        self._watched.append(private)
        return private

    def copy_memory(self, image: pyvips.Image) -> pyvips.Image:
        """``image.copy_memory()``, stopped past the deadline (``pyvips.Error``; :attr:`killed` says why)."""
        if not self.limited:
            return image.copy_memory()
        memory = self.watch(image).copy_memory()
        # A memory image does not keep the watched copy alive: images made from it must not report
        # progress to the copy.
        memory.set_progress(False)
        return memory

    def _on_eval(self, image: pyvips.Image, progress: Any) -> None:
        if self.expired:
            self.killed = True
            image.set_kill(True)

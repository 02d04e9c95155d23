"""Running a recipe over an image: shrink-on-load, one normalisation, lazy steps, one encode.

The first step may load the source itself (a resize does, with libvips' ``thumbnail`` so the image is
never decoded at full size); whatever loaded it, the image is normalised at once (engine/normalise.py:
upright, 8-bit sRGB, 3 bands plus alpha), so every step can rely on that. Every later step is a lazy
libvips operation; pixels are computed once, when the encoder runs.

Failures are told apart (docs/plugins.md, "Errors"): an original that does not decode is the input's
(:class:`UndecodableImageError`); a step or an encoder failing is a :class:`StepError` naming the
recipe, the step and its plugin. libvips decodes lazily, so a truncated original can fail inside any
step: before blaming a step, the pipeline decodes the original once more, small, to tell which it was.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import pyvips

from .errors import (InputError, NotFoundError, ParameterError, RecipeError, RenderTimeoutError,
                     StepError)
from .negotiate import choose_encoder
from .normalise import normalise
from .recipe import Recipe, RecipeStep
from .registry import Registry
from .source import Source
from .steps import Context, Encoder, OutputSpec

T = TypeVar("T")
#: Errors that are a request's own when its recipe came from the request (an ad-hoc URL).
CLIENT_ERRORS = (ParameterError, NotFoundError, RecipeError)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    """An encoded output and what a response needs to know about it."""

    data: bytes
    format: str
    media_type: str
    extension: str
    width: int
    height: int
    negotiated: bool  # True when the format followed Accept (the response must say Vary: Accept)


def flatten_alpha(image: pyvips.Image, spec: OutputSpec) -> pyvips.Image:
    """Flatten alpha onto ``spec.background`` (for encoders with no alpha)."""
    if not image.hasalpha():
        return image
    colour_bands = image.bands - 1
    background = list(spec.background)[:colour_bands]
    if len(background) < colour_bands:
        background += [background[-1]] * (colour_bands - len(background))
    return image.flatten(background=background)


def run_steps(recipe: Recipe, source: Source, ctx: Context,
              decoded: pyvips.Image | None = None) -> pyvips.Image:
    """The lazy image after every step.

    ``decoded`` is an already loaded, normalised image of the source (a worker decodes once for
    several recipes); without it the first step may load the source itself (``open``, e.g. to
    shrink on load), or the pipeline loads it. Either way the image is normalised before any step
    sees it. A step that fails raises :class:`StepError` naming it (see :func:`failure`).
    """
    steps = list(enumerate(recipe.steps, start=1))
    in_memory = decoded is not None
    if decoded is not None:
        image = decoded
    else:
        index, first = steps[0]
        opened = _attributed(lambda: first.step.open(source, first.params, ctx), recipe, source,
                             step_place(index, first), in_memory)
        if opened is not None:
            steps = steps[1:]
            image = _attributed(lambda: normalise(opened), recipe, source, step_place(index, first),
                                in_memory)
        else:
            image = source.load()
    for index, rs in steps:
        image = _attributed(lambda: rs.step.apply(image, rs.params, ctx), recipe, source,
                            step_place(index, rs), in_memory)
    return image


def step_place(index: int, rs: RecipeStep) -> str:
    """How errors name a step: ``step 2 (sepia, plugin 'sepia' from pixline-sepia 1.2.3)``."""
    return f"step {index} ({rs.name}, {rs.plugin.describe()})" if rs.plugin else f"step {index} ({rs.name})"


def failure(exc: Exception, recipe: Recipe, source: Source, where: str,
            in_memory: bool) -> Exception | None:
    """What an exception raised in a step or an encoder becomes; ``None``: raise it as it is.

    * a time limit, an error already attributed, an ``OSError`` (the store or the network: worth a
      retry) stay as they are;
    * ``ParameterError``/``NotFoundError``/``RecipeError`` of a recipe written in a request (an
      ad-hoc URL) are the client's and stay as they are;
    * if the original does not decode (checked again, small, unless it was ``in_memory``), that
      :class:`~pixline.engine.errors.InputError`: libvips decodes lazily, so a truncated file can
      fail inside any step;
    * anything else is a :class:`StepError` naming the recipe and ``where``.
    """
    if isinstance(exc, (RenderTimeoutError, StepError, OSError)):
        return None
    if recipe.from_request and isinstance(exc, CLIENT_ERRORS):
        return None
    if not in_memory:
        try:
            source.verify()
        except InputError as bad_input:
            return bad_input
    if isinstance(exc, pyvips.Error):
        # libvips lists the cause first and each operation that gave up after it.
        lines = [line.strip() for line in (exc.detail or str(exc)).splitlines() if line.strip()]
        detail = f"libvips: {'; '.join(lines[:3]) or exc}"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return StepError(f"{source.name}: recipe {recipe.name!r} failed in {where}: {detail}",
                     recipe=recipe.name, where=where)


def _attributed(call: Callable[[], T], recipe: Recipe, source: Source, where: str,
                in_memory: bool) -> T:
    try:
        return call()
    except Exception as exc:
        converted = failure(exc, recipe, source, where, in_memory)
        if converted is None:
            raise
        raise converted from (exc if isinstance(converted, StepError) else None)


def stop_after(image: pyvips.Image, seconds: float) -> None:
    """Make libvips abandon computing ``image`` once ``seconds`` have passed.

    libvips reports progress while it computes an image; the handler asks it to stop from there, so
    the encoder fails with "killed" instead of holding a render slot for as long as it takes.
    """
    deadline = time.monotonic() + seconds
    image.set_progress(True)

    def on_eval(img: pyvips.Image, progress: object) -> None:
        if time.monotonic() > deadline:
            img.set_kill(True)

    image.signal_connect("eval", on_eval)


def render(recipe: Recipe, source: Source, registry: Registry, ctx: Context | None = None,
           decoded: pyvips.Image | None = None, encoder: Encoder | None = None,
           time_limit: float | None = None) -> Rendered:
    """Render ``recipe`` over ``source`` into encoded bytes.

    The encoder follows the recipe's output spec and ``ctx.accept``; pass ``encoder`` to force one.
    ``time_limit`` (seconds) stops the computation with :class:`RenderTimeoutError` once passed.
    Raises :class:`~pixline.engine.errors.InputError` subclasses for bad input and
    :class:`~pixline.engine.errors.StepError` when a step or the encoder fails.
    """
    ctx = ctx or Context()
    ctx.source_format = ctx.source_format or source.format
    ctx.source_size = ctx.source_size or source.size
    ctx.recipe_name = recipe.name
    spec = recipe.output_spec
    if encoder is None:
        encoder = choose_encoder(spec, registry, ctx.accept, ctx.source_format, source.has_alpha)
    image = run_steps(recipe, source, ctx, decoded)
    where = f"encoder {encoder.name!r}"
    if encoder.name in registry.encoders:
        where += f" ({registry.encoder_plugin(encoder.name).describe()})"
    try:
        image = normalise(image)  # the encoder gets a normal image too, whatever a step returned
        if not encoder.supports_alpha:
            image = flatten_alpha(image, spec)
        if time_limit is not None:
            stop_after(image, time_limit)
        data = encoder.encode(image, spec, recipe.keep_metadata, ctx)
    except Exception as exc:
        if time_limit is not None and isinstance(exc, pyvips.Error) and "killed" in (exc.detail or ""):
            raise RenderTimeoutError(
                f"{source.name}: recipe {recipe.name!r} took longer than {time_limit:g} s and was stopped"
            ) from None
        if isinstance(exc, pyvips.Error):
            # Pixels are computed here: a libvips error may come from any step before the encoder.
            steps = ", ".join(rs.name for rs in recipe.steps)
            where = f"{where}, computing the pixels of steps {steps}"
        converted = failure(exc, recipe, source, where, decoded is not None)
        if converted is None:
            raise
        raise converted from (exc if isinstance(converted, StepError) else None)
    return Rendered(
        data=data,
        format=encoder.name,
        media_type=encoder.media_type,
        extension=encoder.extension,
        width=image.width,
        height=image.height,
        negotiated=recipe.negotiated,
    )

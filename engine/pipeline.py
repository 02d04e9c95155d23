"""Running a recipe over an image: shrink-on-load, one normalisation, lazy steps, one encode.

The first step may load the source itself (a resize does, with libvips' ``thumbnail`` so the image is
never decoded at full size); whatever loaded it, the image is normalised at once (engine/normalise.py:
upright, 8-bit sRGB, 3 bands plus alpha), so every step can rely on that. Every later step is a lazy
libvips operation; pixels are computed once, when the encoder runs.

Failures are told apart (docs/plugins.md, "Errors"): an original that does not decode is the input's
(:class:`UndecodableImageError`); a step or an encoder failing is a :class:`StepError` naming the
recipe, the step and its plugin. libvips decodes lazily, so a truncated original can fail inside any
step: before blaming a step, the pipeline decodes the original once more, small, to tell which it was.

A time limit is a :class:`~pixline.engine.deadline.Deadline` in the render's context, checked here
before anything is decoded, after every step and before encoding, and watched by libvips during the
encode (see ``engine/deadline.py`` for why libvips' progress signal alone does not stop small renders).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import pyvips

from . import autoquality, contract, frames
from .deadline import Deadline
from .errors import (AssetError, InputError, NotFoundError, ParameterError, PixlineError, RecipeError,
                     RenderError, RenderTimeoutError, StepError)
from .negotiate import choose_encoder
from .normalise import mistagged, normalise
from .recipe import Recipe, RecipeStep
from .registry import Registry
from .source import Source
from .steps import Context, Encoder, OutputSpec

T = TypeVar("T")
#: Errors that are a request's own when its recipe came from the request (an ad-hoc URL): an asset
#: the URL names that cannot be used is the URL's fault too (the ad-hoc route answers 400).
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
    height: int  # of one frame
    negotiated: bool  # True when the format followed Accept (the response must say Vary: Accept)
    frames: int = 1  # more than one only for an animation into a format that animates
    #: ``quality: auto``: what the search chose (engine/autoquality.py), or the quality given to reuse.
    choice: autoquality.Choice | None = None


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
    sees it. Steps that do not handle animations run frame by frame (:mod:`pixline.engine.frames`).
    A step that fails raises :class:`StepError` naming it (see :func:`failure`). ``ctx.gravities``
    is the recipe's plugin gravities unless the caller gave some.
    """
    ctx.gravities = ctx.gravities or recipe.gravities
    steps = list(enumerate(recipe.steps, start=1))
    in_memory = decoded is not None

    def attributed(call: Callable[[], T], index: int, rs: RecipeStep) -> T:
        return _attributed(call, recipe, source, step_place(index, rs), in_memory, ctx.deadline)

    if decoded is not None:
        image = decoded
    else:
        index, first = steps[0]
        opened = attributed(lambda: _opened(first, source, ctx), index, first)
        if opened is not None:
            steps = steps[1:]
            image = attributed(lambda: normalise(returned(opened)), index, first)
            ctx.deadline.check(f"after the {first.step.name} step")
        else:
            image = source.load()
    for index, rs in steps:
        image = attributed(lambda: returned(frames.apply_step(rs.step, image, rs.params, ctx)), index, rs)
        ctx.deadline.check(f"after the {rs.step.name} step")
    return image


def returned(image: pyvips.Image) -> pyvips.Image:
    """A step's result, refused when normalising it would silently change its colours."""
    problem = mistagged(image)
    if problem:
        raise RenderError(f"the step returned {problem}")
    return image


def _opened(rs: RecipeStep, source: Source, ctx: Context) -> pyvips.Image | None:
    opened = contract.call(rs.step, "open", source=source, params=rs.params, ctx=ctx)
    if opened is not None and not isinstance(opened, pyvips.Image):
        raise TypeError(f"open() returned {type(opened).__name__}, not a pyvips.Image or None")
    return opened


def step_place(index: int, rs: RecipeStep) -> str:
    """How errors name a step: ``step 2 (sepia, plugin 'sepia' from pixline-sepia 1.2.3)``."""
    return f"step {index} ({rs.name}, {rs.plugin.describe()})" if rs.plugin else f"step {index} ({rs.name})"


def failure(exc: Exception, recipe: Recipe, source: Source, where: str, in_memory: bool,
            deadline: Deadline | None = None) -> Exception | None:
    """What an exception raised in a step or an encoder becomes; ``None``: raise it as it is.

    * a time limit (or a failure after this render's deadline had libvips stop), an error already
      attributed, an ``OSError`` (the store or the network: worth a retry) stay as they are;
    * ``ParameterError``/``NotFoundError``/``RecipeError`` of a recipe written in a request (an
      ad-hoc URL) are the client's and stay as they are; its ``AssetError`` (the URL names the
      asset) becomes a ``ParameterError``;
    * if the original does not decode (checked again, small, unless it was ``in_memory``), that
      :class:`~pixline.engine.errors.InputError`: libvips decodes lazily, so a truncated file can
      fail inside any step;
    * anything else is a :class:`StepError` naming the recipe and ``where``.
    """
    if isinstance(exc, (RenderTimeoutError, StepError, OSError)) or (deadline and deadline.killed):
        return None
    if recipe.from_request and isinstance(exc, AssetError):
        # The URL names the asset (a missing, refused or broken watermark image): its fault.
        return ParameterError(f"{recipe.name}: {exc}")
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
                in_memory: bool, deadline: Deadline | None = None) -> T:
    try:
        return call()
    except Exception as exc:
        converted = failure(exc, recipe, source, where, in_memory, deadline)
        if converted is None:
            raise
        raise converted from (exc if isinstance(converted, StepError) else None)


def render(recipe: Recipe, source: Source, registry: Registry, ctx: Context | None = None,
           decoded: pyvips.Image | None = None, encoder: Encoder | None = None,
           time_limit: float | None = None, stepped: pyvips.Image | None = None,
           quality: int | None = None) -> Rendered:
    """Render ``recipe`` over ``source`` into encoded bytes.

    The encoder follows the recipe's output spec and ``ctx.accept``; pass ``encoder`` to force one.
    ``time_limit`` (seconds from now) narrows ``ctx.deadline``; past it, the render stops with
    :class:`RenderTimeoutError` at the next check (before decoding, after each step, before encoding,
    inside steps that compute eagerly) or, during the encode, when libvips is told to stop. A render
    that has finished encoding is returned even if the limit passed meanwhile.
    An animated source keeps every frame when the encoder animates (``decoded``, one frame, is then
    not used); otherwise only its first frame is rendered. ``stepped``: the recipe's steps already
    run over this source (:func:`prepare`); only the encode is left. ``quality``: for a ``quality:
    auto`` recipe, the quality a search chose before for this output (no search again).
    Raises :class:`~pixline.engine.errors.InputError` subclasses for bad input and
    :class:`~pixline.engine.errors.StepError` when a step or the encoder fails.
    """
    with _rendering(recipe, source, ctx, time_limit) as ctx:
        if encoder is None:
            encoder = choose_encoder(recipe.output_spec, registry, ctx.accept, ctx.source_format,
                                     source.has_alpha)
        if encoder.animated and source.animated:
            source, decoded, stepped = source.with_every_frame(), None, None
        image = stepped if stepped is not None else run_steps(recipe, source, ctx, decoded)
        in_memory = decoded is not None or stepped is not None
        image, data, choice = encode(image, recipe, source, registry, encoder, ctx, in_memory, quality)
    return Rendered(
        data=data,
        format=encoder.name,
        media_type=encoder.media_type,
        extension=encoder.extension,
        width=image.width,
        height=frames.page_height(image),
        negotiated=recipe.negotiated,
        frames=frames.frame_count(image),
        choice=choice,
    )


def prepare(recipe: Recipe, source: Source, ctx: Context | None = None,
            decoded: pyvips.Image | None = None, time_limit: float | None = None) -> pyvips.Image:
    """Every step of ``recipe`` over ``source`` (or ``decoded``), computed into memory: for one recipe
    encoded into several formats (an ``auto`` recipe's eager outputs), whose steps then run once.

    Give the result to :func:`render` as ``stepped``, once per format. Deadline and errors as there;
    still frames only (an animation into an animating format is rendered from its source).
    """
    with _rendering(recipe, source, ctx, time_limit) as ctx:
        image = run_steps(recipe, source, ctx, decoded)
        where = f"computing the pixels of steps {', '.join(rs.name for rs in recipe.steps)}"
        return _attributed(lambda: ctx.deadline.copy_memory(image), recipe, source, where,
                           decoded is not None, ctx.deadline)


@contextmanager
def _rendering(recipe: Recipe, source: Source, ctx: Context | None,
               time_limit: float | None) -> Iterator[Context]:
    """The start of a render (:func:`render`, :func:`prepare`) and what its failures become.

    Yields the render's context: its deadline narrowed by ``time_limit`` and checked, the recipe
    and the source's format and size filled in. A timeout names the input and recipe, and so does a
    failure after this render's deadline had libvips stop.
    """
    ctx = ctx or Context()
    ctx.deadline = deadline = ctx.deadline.sooner(time_limit)
    ctx.recipe_name = recipe.name
    try:
        deadline.check("before decoding")
        ctx.source_format = ctx.source_format or source.format
        ctx.source_size = ctx.source_size or source.size
        yield ctx
    except RenderTimeoutError as err:
        raise timed_out(recipe, source, str(err)) from None
    except (PixlineError, pyvips.Error):
        # libvips reports a kill as a failure of whatever it was computing; a step may have wrapped
        # that in its own error. After a kill by this render's deadline, it is a timeout either way.
        if deadline.killed:
            raise timed_out(recipe, source, str(deadline.exceeded("while computing pixels"))) from None
        raise


def encode(image: pyvips.Image, recipe: Recipe, source: Source, registry: Registry, encoder: Encoder,
           ctx: Context, in_memory: bool,
           quality: int | None = None) -> tuple[pyvips.Image, bytes, autoquality.Choice | None]:
    """The image as the encoder gets it (normal, flattened for encoders without alpha), its bytes,
    and for ``quality: auto`` what the search chose (``quality``: reuse that one).

    Pixels are computed here, so a libvips error may come from any step before the encoder: the
    error then names every step.
    """
    spec = recipe.output_spec
    where = f"encoder {encoder.name!r}"
    if encoder.name in registry.encoders:
        where += f" ({registry.encoder_plugin(encoder.name).describe()})"
    try:
        image = normalise(image)  # the encoder gets a normal image too, whatever a step returned
        if not encoder.supports_alpha:
            image = flatten_alpha(image, spec)
        ctx.deadline.check("before encoding")

        def call(given: OutputSpec) -> bytes:
            data = contract.call(encoder, "encode", image=ctx.deadline.watch(image), spec=given,
                                 keep_metadata=recipe.keep_metadata, ctx=ctx)
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"encode() returned {type(data).__name__}, not bytes")
            return bytes(data)

        if spec.target is None or encoder.qualities is None:
            return image, call(spec), None
        image = ctx.deadline.copy_memory(image)  # encoded several times: compute the steps once
        data, choice = autoquality.encode(call, image, spec, encoder, registry.metrics[spec.metric or ""],
                                          ctx.deadline, quality)
        return image, data, choice
    except Exception as exc:
        if isinstance(exc, pyvips.Error):
            where += f", computing the pixels of steps {', '.join(rs.name for rs in recipe.steps)}"
        converted = failure(exc, recipe, source, where, in_memory, ctx.deadline)
        if converted is None:
            raise
        raise converted from (exc if isinstance(converted, StepError) else None)


def timed_out(recipe: Recipe, source: Source, reason: str) -> RenderTimeoutError:
    """The error a caller sees: which input and recipe, and ``reason`` (``Deadline.exceeded``)."""
    return RenderTimeoutError(f"{source.name}: recipe {recipe.name!r} {reason}")

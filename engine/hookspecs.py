"""The hooks a pixline plugin can implement.

A plugin is a module (usually a distribution's top-level module) registered under the entry-point
group ``pixline``; it implements any of the hooks below, marked with :data:`hookimpl`::

    from pixline.engine import hookimpl

    @hookimpl
    def pixline_register_steps(register):
        register(Sepia)

pixline's own transformations are plugins of exactly this kind (``pixline-resize``, ``pixline-crop``,
``pixline-watermark``, ``pixline-format``). New hooks are added when a second plugin needs one.

Like pytest with ``pytest_*``, the registry refuses a plugin with a ``pixline_*`` function that is not
one of these hooks (a misspelling) or that lacks ``@hookimpl``; an exception raised inside a hook
makes the plugin broken (docs/plugins.md, "Broken plugins, and what stops start-up").
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from .analyser import Analyser
    from .gravity import SmartGravity
    from .metric import Metric
    from .steps import Encoder, Step

PROJECT = "pixline"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def pixline_register_steps(register: "Callable[[type[Step]], None]") -> None:
    """Add the recipe steps this plugin provides.

    Called once per plugin, when the registry loads plugins at start-up (``pixline serve``,
    ``pixline worker``, every command-line call). Call ``register(StepClass)`` once for each
    :class:`~pixline.engine.steps.Step` subclass; its ``name`` becomes the key used in recipes and
    ad-hoc URLs (1-32 lower-case letters, digits, ``_`` or ``-``, starting with a letter). A bad
    name, bad ``url_keys`` or a method the contract cannot call make the plugin broken (listed by
    ``pixline plugins``, its recipes refused); two plugins registering the same step name stop
    start-up with a :class:`~pixline.engine.errors.FatalPluginError` that names both.

    Return value: ignored.

    .. versionadded:: 1.0
    """


@hookspec
def pixline_register_encoders(register: "Callable[[type[Encoder]], None]") -> None:
    """Add the output formats this plugin can encode.

    Called once per plugin, when the registry loads plugins at start-up. Call
    ``register(EncoderClass)`` once for each :class:`~pixline.engine.steps.Encoder` subclass; its
    ``name`` (``jpeg``, ``webp``…) is what a recipe's output spec and ``Accept`` negotiation choose
    between. The registry checks the name, ``extension``, ``media_type`` and ``encode`` signature
    (a bad one makes the plugin broken), and asks ``unavailable()``: an encoder that cannot write
    here is left out, with a warning. Two plugins registering the same encoder name stop start-up
    with a :class:`~pixline.engine.errors.FatalPluginError`.

    Return value: ignored.

    .. versionadded:: 1.0
    .. versionchanged:: 2.0
       ``encode`` gets ``ctx``; ``unavailable()`` is asked.
    """


@hookspec
def pixline_register_analysers(register: "Callable[[type[Analyser]], None]") -> None:
    """Add what this plugin learns once of every image (a placeholder, the faces in it).

    Called once per plugin, when the registry loads plugins at start-up. Call
    ``register(AnalyserClass)`` once for each :class:`~pixline.engine.analyser.Analyser` subclass;
    its ``name`` is the key of its result in the image's meta (``meta["analysis"]``),
    ``ctx.analysis`` and ``GET /images/{id}``. Each analyser runs once per image when the image is
    taken in (upload, import), on a small copy, never during a render; images taken in before the
    plugin was installed are analysed by ``pixline regenerate --analyse``. A bad name, version or
    size makes the plugin broken; two plugins registering one analyser name stop start-up with a
    :class:`~pixline.engine.errors.FatalPluginError`.

    Return value: ignored.

    .. versionadded:: 2.3
    """


@hookspec
def pixline_register_gravities(register: "Callable[[type[SmartGravity]], None]") -> None:
    """Add gravities that crops and resize-fills can name (``gravity: face``).

    Called once per plugin, when the registry loads plugins at start-up. Call
    ``register(GravityClass)`` once for each :class:`~pixline.engine.gravity.SmartGravity`
    subclass; its ``name`` is what recipes and URLs write as ``gravity``. Its ``place`` is asked
    where to cut each box, from what the analysers it names in ``analysers`` found when the image
    was taken in (``ctx.analysis``): a render reads results, it never runs a detector, except once for
    an image taken in before the analyser was installed. A recipe naming a gravity that no installed
    plugin adds is refused when it loads (a :class:`~pixline.engine.errors.RecipeError`); a built-in
    gravity's name, a bad name or version makes the plugin broken; two plugins registering one
    gravity stop start-up with a :class:`~pixline.engine.errors.FatalPluginError`.

    Return value: ignored.

    .. versionadded:: 2.4
    """


@hookspec
def pixline_register_metrics(register: "Callable[[type[Metric]], None]") -> None:
    """Add a perceptual metric, which ``quality: auto`` searches an encoder's quality with.

    Called once per plugin, when the registry loads plugins at start-up. Call
    ``register(MetricClass)`` once for each :class:`~pixline.engine.metric.Metric` subclass. The
    targets of ``quality: auto`` are on the SSIMULACRA 2 scale, so a recipe that says ``auto`` needs
    the metric named ``ssimulacra2`` (pixline-ssimulacra2): without it the recipe is refused when it
    loads. A bad name or version makes the plugin broken; two plugins registering one metric name
    stop start-up with a :class:`~pixline.engine.errors.FatalPluginError`.

    Return value: ignored.

    .. versionadded:: 2.5
    """

"""What a plugin implements: steps (image in, image out) and encoders (image in, bytes out).

A step is a small class with a recipe ``name``, a ``Params`` schema, a ``version`` and a pure
``apply``. Parameters are pydantic models that forbid unknown keys, so every recipe and every ad-hoc URL
is checked by the same schema before anything is rendered.
"""
from __future__ import annotations

import enum
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import pydantic
import pyvips
from pydantic_core import PydanticCustomError

from .deadline import Deadline
from .errors import PluginError, quote


#: Step and encoder names: they are keys in recipes and words in URLs (``resize:w=300``,
#: ``format:t=webp``), so nothing that a URL or a YAML key would need to escape.
NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # fullmatch: ``$`` would take a trailing newline
NAME_RULE = "1-32 lower-case letters, digits, '_' or '-', starting with a letter"

#: A short URL key (``w`` for ``width``); the same rule as URL parameter names.
URL_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: An encoder's file extension: it ends every stored derivative's key.
EXTENSION_RE = re.compile(r"[a-z0-9]{1,5}")


def check_named(cls: type, base: type, kind: str, where: str) -> None:
    """A plugin class's ``name`` and ``version`` (an analyser's, a gravity's, a metric's), checked
    at registration: a bad one breaks the plugin (:class:`~pixline.engine.errors.PluginError`)."""
    if not (isinstance(cls, type) and issubclass(cls, base)) or not getattr(cls, "name", ""):
        raise PluginError(f"{where} registered {cls!r}, which is not a named {base.__name__} subclass")
    if not NAME_RE.fullmatch(cls.name):
        raise PluginError(f"{where}: {kind} name {cls.name!r} is not valid: use {NAME_RULE}")
    if not isinstance(cls.version, str) or not cls.version:
        raise PluginError(f"{where}: {kind} {cls.name!r}: version must be a non-empty string")


class StepParams(pydantic.BaseModel):
    """Base class of a step's parameter schema.

    Subclass it with annotated fields; use ``pydantic.Field(ge=..., le=...)`` for ranges. Unknown keys
    are errors, and parameters are immutable once validated. A number field refuses ``true`` and
    ``false`` (YAML reads ``yes``, ``no``, ``on``, ``off`` as those, and pydantic would take them as
    1 and 0).

    ``url_keys`` maps short keys of ad-hoc URLs to parameter names (``{"w": "width"}`` lets
    ``resize:w=300`` stand for ``resize:width=300``); recipes always use the full names.

    .. versionadded:: 1.0
    .. versionchanged:: 2.0
       ``url_keys``.
    """

    # No NaN or infinity in any float field: a comparison with NaN is always false, so ``le=10``
    # would not refuse it, and a size computed from it is not a number (issue 18).
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, use_enum_values=False, allow_inf_nan=False)

    url_keys: ClassVar[Mapping[str, str]] = {}

    @pydantic.model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for name, value in data.items():
                field_info = cls.model_fields.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) and field_info is not None and _number_only(field_info.annotation):
                    raise param_error(f"must be a number, not {str(value).lower()} (YAML reads yes/no/on/off "
                                      "as true/false)", param=name)
        return data


def _number_only(annotation: Any) -> bool:
    """True for ``int``, ``float`` and their optional or annotated forms (not when ``bool`` is allowed)."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Annotated:
        args = args[:1]
    return bool(args) and all(_number_only(a) for a in args)


def param_error(message: str, param: str | None = None) -> PydanticCustomError:
    """The error a ``Params`` validator raises; the recipe error shows ``message`` as written.

    ``param`` names the parameter (``parameter 'x': …``, as for a field's own error): give it in
    model validators, whose errors belong to no field.
    """
    # A ValueError would get pydantic's "Value error, " prefix. The text goes in as context, not as
    # the template, because a template reads {…} as placeholders.
    text = f"parameter {quote(param)}: {message}" if param else message
    # ``param`` rides along in the context so the recipe error can name it as a field too.
    return PydanticCustomError("step_parameter", "{text}", {"text": text, "param": param})


class Gravity(str, enum.Enum):
    """Where to anchor a crop or an overlay: compass points, centre, and libvips' smart crops."""

    CENTRE = "centre"
    NORTH = "north"
    NORTH_EAST = "north-east"
    EAST = "east"
    SOUTH_EAST = "south-east"
    SOUTH = "south"
    SOUTH_WEST = "south-west"
    WEST = "west"
    NORTH_WEST = "north-west"
    ATTENTION = "attention"
    ENTROPY = "entropy"

    @classmethod
    def _missing_(cls, value: object) -> "Gravity | None":
        aliases = {"center": "centre", "northeast": "north-east", "southeast": "south-east",
                   "southwest": "south-west", "northwest": "north-west"}
        if isinstance(value, str) and value.lower() in aliases:
            return cls(aliases[value.lower()])
        return None

    @property
    def is_smart(self) -> bool:
        """True for libvips' smart crops (attention, entropy): they pick a region by looking at pixels."""
        return self in (Gravity.ATTENTION, Gravity.ENTROPY)

    def offset(self, outer_w: int, outer_h: int, inner_w: int, inner_h: int) -> tuple[int, int]:
        """Top-left corner of an ``inner`` box placed inside an ``outer`` box at this gravity.

        Smart gravities (attention, entropy) have no fixed position: they fall back to the centre.
        """
        free_w, free_h = outer_w - inner_w, outer_h - inner_h
        x = {"west": 0, "east": free_w}
        y = {"north": 0, "south": free_h}
        parts = self.value.split("-")
        left = next((x[p] for p in parts if p in x), free_w // 2)
        top = next((y[p] for p in parts if p in y), free_h // 2)
        return left, top


@dataclass(frozen=True)
class OutputSpec:
    """How the rendered image is encoded: what a ``format`` step asks for.

    ``format`` is an encoder name (``jpeg``, ``webp``, …) or ``auto``; ``candidates`` lists, for
    ``auto``, the encoders to offer in order of preference. ``options`` are passed to the encoder.
    ``ahead_of_time`` says the output is made before anyone asks (an eager recipe) and kept: an
    encoder may spend more CPU there for fewer bytes, and less on outputs rendered while a client
    waits. The recipe sets it, so one recipe always gives the same bytes, whoever renders it.
    ``target`` (``quality: auto``) is a score on ``metric``'s scale: the pipeline searches the
    encoder's ``qualities`` for the lowest quality whose output scores at least that
    (engine/autoquality.py), and the encoder gets each quality tried as ``quality``.

    .. versionadded:: 1.0
    .. versionchanged:: 2.1
       ``ahead_of_time``.
    .. versionchanged:: 2.5
       ``target``, ``metric``.
    """

    format: str = "source"
    candidates: tuple[str, ...] = ()
    quality: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    background: tuple[float, ...] = (255.0, 255.0, 255.0)
    ahead_of_time: bool = False
    target: float | None = None
    metric: str | None = None


@dataclass
class Context:
    """What a step may know about the render besides its image and parameters.

    ``fields`` holds the upload fields (``owner``…, the query or form fields of ``POST /images``),
    used e.g. by text templates;
    ``load_asset`` returns the bytes of a named asset (a watermark file or stored key);
    ``accept`` is the client's Accept header, if any; ``source_format`` the original's format
    (``jpeg``, ``png``…); ``source_size`` its (width, height) as displayed (EXIF orientation
    applied), whatever size the steps have made of it since; ``image_id`` the stored image's id
    (``None`` outside the store, e.g. ``pixline apply``); ``recipe_name`` the recipe being rendered;
    ``deadline`` is the render's time budget: a step that computes pixels itself (not lazily) calls
    ``ctx.deadline.check(...)`` first and computes through ``ctx.deadline.watch(image)`` or
    ``ctx.deadline.copy_memory(image)``, so a render past its time limit stops there too;
    ``analysis`` holds what the analysers found of the image when it was taken in, by analyser
    name (engine/analysis.py; an analyser installed later, or one that failed, has no entry);
    ``gravities`` the plugin gravities the recipe names, by name (engine/gravity.py: a step passes
    its gravity to :func:`pixline.engine.gravity.place`, which asks them).
    Encoders and analysers receive the same context.

    .. versionadded:: 1.0
    .. versionchanged:: 1.1
       ``fields`` (the upload fields were ``metadata``), ``deadline``.
    .. versionchanged:: 2.0
       ``source_size``, ``image_id``.
    .. versionchanged:: 2.2
       ``metadata`` again, deprecated (see :attr:`metadata`).
    .. versionchanged:: 2.3
       ``analysis``.
    .. versionchanged:: 2.4
       ``gravities``.
    """

    fields: Mapping[str, Any] = field(default_factory=dict)
    accept: str | None = None
    source_format: str | None = None
    load_asset: Callable[[str], bytes] | None = None
    recipe_name: str | None = None
    source_size: tuple[int, int] | None = None
    image_id: str | None = None
    deadline: Deadline = field(default_factory=Deadline)
    analysis: Mapping[str, Any] = field(default_factory=dict)
    gravities: Mapping[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The upload fields under their contract-1.0 name: read ``fields``.

        .. deprecated:: 1.1
           Renamed ``fields`` in 1.1 (without a warning, then); since 2.2 the old name works again
           and warns. It goes in 3.0.
        """
        from .contract import deprecated

        deprecated("Context.metadata is deprecated since contract 1.1: read ctx.fields (the same "
                   "upload fields; it goes in 3.0)")
        return self.fields

    def asset(self, ref: str) -> bytes:
        """The bytes of asset ``ref``; raises :class:`~pixline.engine.errors.NotFoundError`."""
        from .errors import NotFoundError

        if self.load_asset is None:
            raise NotFoundError(f"asset {quote(ref)}: no asset loader is configured for this render")
        return self.load_asset(ref)


class Step:
    """A recipe step. Subclass it, set ``name``, ``version`` and ``Params``, implement ``apply``.

    The engine calls each method with the arguments it declares, by name (engine/contract.py).

    .. versionadded:: 1.0
    .. versionchanged:: 2.1
       ``handles_frames``.
    .. versionchanged:: 2.2
       Opt-in arguments: each method may declare fewer arguments than shown here.
    """

    #: The key of this step in a recipe (``- resize: {...}``) and in ad-hoc URLs.
    name: ClassVar[str] = ""
    #: Goes into every recipe digest that uses the step: bump it when output changes.
    version: ClassVar[str] = "1"
    #: The parameter schema.
    Params: ClassVar[type[StepParams]] = StepParams
    #: True if ``apply`` takes an animation whole: a strip of frames in libvips' page-height layout
    #: (:mod:`pixline.engine.frames`), returned as a strip again. Otherwise the pipeline calls
    #: ``apply`` once per frame and stacks the results (which must all be one size).
    handles_frames: ClassVar[bool] = False

    def apply(self, image: pyvips.Image, params: Any, ctx: Context) -> pyvips.Image:
        """Return the transformed image. Pure: no I/O except through ``ctx``; stay lazy.

        .. versionadded:: 1.0
        .. versionchanged:: 2.0
           ``image`` is normalised (8-bit sRGB, 3 bands plus alpha).
        .. versionchanged:: 2.2
           Anything but a ``pyvips.Image`` returned is a failure of the step.
        """
        raise NotImplementedError

    def open(self, source: "Source", params: Any, ctx: Context) -> pyvips.Image | None:
        """Optionally load ``source`` already transformed, when this step is a recipe's first.

        A resize uses this for libvips' shrink-on-load. Return ``None`` to let the pipeline load the
        image at full size and call :meth:`apply`.

        .. versionadded:: 1.0
        """
        return None

    def output(self, params: Any) -> OutputSpec | None:
        """Return an :class:`OutputSpec` if this step decides the output encoding, else ``None``.

        .. versionadded:: 1.0
        """
        return None

    def shrink_hint(self, params: Any, width: int, height: int) -> tuple[int, int] | None:
        """The largest size, as (width, height), this step needs of a ``width``×``height`` input.

        Asked of a recipe's first step only. Lets a worker decode an original once for several
        recipes, and lets any render start from the smallest reduced copy made at upload that is at
        least this large (engine/reduced.py): the step then gets fewer pixels than ``width``×``height``
        (``Source.size`` still says the original's), so it must not ask for more than it uses.
        ``None``: the full size, always from the original.

        .. versionadded:: 1.0
        .. versionchanged:: 2.1
           Also chooses the reduced copy a render starts from.
        """
        return None

    def output_size(self, params: Any, width: int, height: int) -> tuple[int, int]:
        """The size, as (width, height), this step makes of a ``width``×``height`` input.

        Answered from the parameters alone, so a server can refuse an over-large request before
        rendering. The default, the input size, suits filters. A step whose output depends on the
        pixels returns the largest size it can make.

        .. versionadded:: 1.1
        """
        return width, height


class Encoder:
    """An output format. Subclass it and register it through ``pixline_register_encoders``.

    .. versionadded:: 1.0
    .. versionchanged:: 2.1
       ``animated``, ``max_side``.
    .. versionchanged:: 2.2
       Opt-in arguments: ``encode`` may declare fewer arguments (a 1.x ``encode`` without ``ctx``).
    .. versionchanged:: 2.5
       ``qualities``.
    """

    #: Name used in recipes (``format: {type: webp}``); the rule of step names.
    name: ClassVar[str] = ""
    #: ``Content-Type`` of the output; ``format: auto`` offers it against the client's ``Accept``.
    media_type: ClassVar[str] = "application/octet-stream"
    #: File extension of stored outputs (1-5 lower-case letters or digits).
    extension: ClassVar[str] = ""
    #: False: the pipeline flattens alpha onto the recipe's background before calling ``encode``.
    supports_alpha: ClassVar[bool] = False
    #: True if the format animates (GIF, WebP): an animated source then keeps every frame, and
    #: ``encode`` gets them as one strip in libvips' page-height layout, with ``delay`` and ``loop``
    #: set. Otherwise the pipeline loads only the first frame.
    animated: ClassVar[bool] = False
    #: Goes into the digest of every recipe that can produce this format: bump it when bytes change.
    version: ClassVar[str] = "1"
    #: The largest width or height the format can hold (JPEG 65500, WebP 16383); ``None``: no limit of
    #: its own. Outputs over it are refused before rendering, not failed at the encode.
    max_side: ClassVar[int | None] = None
    #: The (lowest, highest) ``quality`` that ``quality: auto`` searches; ``None``: the format has no
    #: quality to search (``auto`` is refused for it).
    qualities: ClassVar[tuple[int, int] | None] = None

    def encode(self, image: pyvips.Image, spec: OutputSpec, keep_metadata: bool, ctx: Context) -> bytes:
        """Return the encoded bytes of a normal ``image`` (8-bit sRGB, alpha only if ``supports_alpha``;
        several frames only if ``animated``).

        ``spec`` is the recipe's output spec (quality, options); ``keep_metadata`` says whether to
        write EXIF/XMP; ``ctx`` is the render's context (``source_size``, ``fields``…), for outputs
        that describe the image rather than show it (a JSON placeholder).

        .. versionadded:: 1.0
        .. versionchanged:: 2.0
           ``ctx``.
        .. versionchanged:: 2.2
           Takes the arguments it declares; anything but bytes returned is a failure of the encoder.
        """
        raise NotImplementedError

    def unavailable(self) -> str | None:
        """Why this format cannot be written here (e.g. a libvips built without its codec), or ``None``.

        Asked once, at registration. An unavailable encoder is left out: recipes that name it as
        ``type`` are refused at load, ``auto`` candidates skip it.

        .. versionadded:: 2.0
        """
        return None


from .source import Source  # noqa: E402  (for the annotation above; source imports nothing of ours)

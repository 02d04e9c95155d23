"""What a plugin implements to learn something once of every image: an :class:`Analyser` (contract 2.3).

How analysers are run, and where their results are kept, is engine/analysis.py.
"""
from __future__ import annotations

from typing import Any, ClassVar

import pyvips

from .errors import PluginError
from .steps import Context, check_named

#: The largest image an analyser can ask for: the small reduced copy's default size.
MAX_SIZE = 768


class Analyser:
    """Something to learn once of every image. Subclass it, set ``name``, ``version`` and ``size``,
    implement ``analyse``, and register it through ``pixline_register_analysers``.

    .. versionadded:: 2.3
    """

    #: Its key in ``meta["analysis"]``, ``ctx.analysis`` and ``GET /images/{id}``; the rule of step names.
    name: ClassVar[str] = ""
    #: Bump it when results change: images analysed at another version are analysed again by
    #: ``pixline regenerate --analyse``.
    version: ClassVar[str] = "1"
    #: The longest side, in pixels, of the image ``analyse`` gets (1 to :data:`MAX_SIZE`); a smaller
    #: image is not enlarged.
    size: ClassVar[int] = 256
    #: True for a placeholder: something a page shows while the image's presets are pending (a
    #: BlurHash, a colour). Listed under ``placeholders`` of ``GET /images/{id}`` and the ready events.
    placeholder: ClassVar[bool] = False

    def analyse(self, image: pyvips.Image, ctx: Context) -> Any:
        """Return what this analyser finds in ``image``: a JSON value (``dict``, ``list``, ``str``,
        number, ``bool`` or ``None``) of at most 16 KiB as JSON.

        ``image`` is upright 8-bit sRGB (3 bands, and alpha when the image has one), at most
        :attr:`size` pixels on its longer side; ``ctx.source_size`` is the original's displayed
        size (give positions as fractions of it, or scale them), ``ctx.deadline`` the time budget.
        Raise on an image it cannot analyse: the failure is recorded, the upload goes on.

        .. versionadded:: 2.3
        """
        raise NotImplementedError


def check_analyser(cls: type, where: str) -> None:
    """An analyser's name, version and size, checked at registration (a bad one breaks the plugin)."""
    check_named(cls, Analyser, "analyser", where)
    if not isinstance(cls.size, int) or isinstance(cls.size, bool) or not 1 <= cls.size <= MAX_SIZE:
        raise PluginError(f"{where}: analyser {cls.name!r}: size must be a whole number of pixels "
                          f"from 1 to {MAX_SIZE}, not {cls.size!r}")

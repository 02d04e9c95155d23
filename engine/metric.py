"""What a plugin implements to score an encoded output against the image it encodes: a perceptual
:class:`Metric` (contract 2.5), which ``quality: auto`` searches the quality with (engine/autoquality.py).
"""
from __future__ import annotations

from typing import Any, ClassVar

import pyvips

from .steps import check_named

#: The metric ``quality: auto`` targets are on: SSIMULACRA 2 (``auto`` = 80, ``auto:high`` = 85,
#: ``auto:eco`` = 70). pixline-ssimulacra2 provides it.
TARGET_METRIC = "ssimulacra2"


class Metric:
    """A perceptual distance between an image and what an encoder made of it, higher = closer.
    Subclass it, set ``name`` and ``version``, implement ``prepare`` and ``score``, and register it
    through ``pixline_register_metrics``.

    .. versionadded:: 2.5
    """

    #: The metric's name (``ssimulacra2``); the rule of step names.
    name: ClassVar[str] = ""
    #: Bump it when scores change: it is in the digest of every recipe that searches with it.
    version: ClassVar[str] = "1"

    def prepare(self, image: pyvips.Image) -> Any:
        """What ``score`` needs of the reference ``image`` (a normal image: 8-bit sRGB, alpha when it
        has one), computed once per search and passed to every ``score`` of it.

        .. versionadded:: 2.5
        """
        raise NotImplementedError

    def score(self, reference: Any, image: pyvips.Image) -> float:
        """How close ``image`` (an encoded output, decoded and normalised, of the reference's size)
        is to the ``reference`` that ``prepare`` returned; higher is closer.

        .. versionadded:: 2.5
        """
        raise NotImplementedError


def check_metric(cls: type, where: str) -> None:
    """A metric's name and version, checked at registration (a bad one breaks the plugin)."""
    check_named(cls, Metric, "metric", where)

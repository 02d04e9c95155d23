"""SSIMULACRA 2 for pixline (contract 2.5): the metric ``quality: auto`` searches with.

The score is the `ssimulacra2 <https://pypi.org/project/ssimulacra2/>`_ package's (a port of
libjxl's tool, 100 = identical, ~80 = what JPEG q80 gives an average photo, 30 = visibly damaged),
computed with its own functions in its own order. A search scores several encodes against one
reference, so the reference's half of the work (its XYB planes, their blurred means and variances
at each of the six scales) is done once, in ``prepare``: each ``score`` costs about three fifths of a
whole ``compute_ssimulacra2``, and gives the same number (tests/test_ssimulacra2.py checks).
"""
from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, Callable

import numpy as np
import pyvips

from pixline.engine import Metric, hookimpl

#: Alpha is flattened on white before scoring (the package reads only RGB).
BACKGROUND = [255, 255, 255]


@functools.cache
def package() -> ModuleType:
    """The ``ssimulacra2`` package's module, imported on first use: it brings scipy (~18 MB of every
    process's memory), which a process whose recipes never say ``quality: auto`` should not carry.
    A serving process with such a recipe imports it in its warm-up (server/http/warm_up.py), before
    it is ready."""
    from ssimulacra2 import ssimulacra2

    return ssimulacra2


def rgb(image: pyvips.Image) -> np.ndarray:
    """A normal image as the float array of 0-255 RGB values the package reads."""
    if image.hasalpha():
        image = image.flatten(background=BACKGROUND)
    image = image.cast("uchar")
    return np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8,
                      shape=(image.height, image.width, image.bands)).astype(np.float64)


def _xyb(linear: np.ndarray) -> np.ndarray:
    s2 = package()
    return s2.make_positive_xyb(s2.linear_rgb_to_xyb(linear))


def scales(image: pyvips.Image) -> list[np.ndarray]:
    """The image's positive XYB planes at each scale the metric uses (halved each time)."""
    s2 = package()
    linear = s2.srgb_to_linear(rgb(image))
    planes = []
    for scale in range(s2.kNumScales):
        xyb = _xyb(linear)
        if xyb.shape[0] < 8 or xyb.shape[1] < 8:
            break
        planes.append(xyb)
        if scale < s2.kNumScales - 1:
            linear = s2.downsample(linear, 2, 2)
    return planes


class Ssimulacra2(Metric):
    name = "ssimulacra2"
    version = "1"

    def prepare(self, image: pyvips.Image) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        s2 = package()
        return [(xyb, s2.blur_image(xyb), s2.blur_image(xyb * xyb)) for xyb in scales(image)]

    def score(self, reference: list[tuple[np.ndarray, np.ndarray, np.ndarray]], image: pyvips.Image) -> float:
        s2 = package()
        msssim = s2.Msssim()
        for (img1, mu1, sigma11), img2 in zip(reference, scales(image)):
            mu2 = s2.blur_image(img2)
            scale = s2.MsssimScale()
            scale.avg_ssim = s2.ssim_map(mu1, mu2, sigma11, s2.blur_image(img2 * img2), s2.blur_image(img1 * img2))
            scale.avg_edgediff = s2.edge_diff_map(img1, mu1, img2, mu2)
            msssim.scales.append(scale)
        return float(msssim.score())


@hookimpl
def pixline_register_metrics(register: Callable[[Any], None]) -> None:
    register(Ssimulacra2)

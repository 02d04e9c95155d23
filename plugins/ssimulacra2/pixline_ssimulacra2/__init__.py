"""SSIMULACRA 2 for pixline (contract 2.5): the metric ``quality: auto`` searches with.

The score is the `ssimulacra2 <https://pypi.org/project/ssimulacra2/>`_ package's number (a port of
libjxl's tool, 100 = identical, ~80 = what JPEG q80 gives an average photo, 30 = visibly damaged):
its constants, its weights and its final ``Msssim.score``, with the per-pixel work done in the
package's order, in float64 as it is, but with OpenCV's filter and colour transform and in place:
about a third of the package's CPU, and the same score to 1e-6 (tests/test_ssimulacra2.py compares
with ``compute_ssimulacra2`` at several sizes and distortions). float32 would halve it again but is
0.07 points off on a smooth photo: a blurred square less a squared mean loses a flat area's variance.
A search scores several encodes against one reference, so the reference's half of the work (its XYB
planes, their blurred means, variances and edge terms at each of the six scales) is done once, in
``prepare``.

Two quirks of the package are kept, since its number is the one the targets are on: its XYB planes
are transposed, so its blur pads the *sides* of each plane with zeros and mirrors top and bottom;
and an odd edge row or column is averaged on its own when a scale is halved.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np
import pyvips

from pixline.engine import Metric, hookimpl

#: Alpha is flattened on white before scoring (the package reads only RGB).
BACKGROUND = [255, 255, 255]
#: The package's blur: a Gaussian of sigma 1.5 truncated at 3.33 sigma (5 pixels each side).
SIGMA = 1.5
RADIUS = int(3.33 * SIGMA + 0.5)


@functools.cache
def package() -> ModuleType:
    """The ``ssimulacra2`` package's module, imported on first use: it brings scipy (~18 MB of every
    process's memory), which a process whose recipes never say ``quality: auto`` should not carry.
    A serving process with such a recipe imports it in its warm-up (server/http/warm_up.py), before
    it is ready."""
    from ssimulacra2 import ssimulacra2

    return ssimulacra2


@functools.cache
def opencv() -> ModuleType:
    """OpenCV (``opencv-python-headless``, which pixline-faces uses too), imported on first use for the
    same reason. Its thread count is the process's, left alone: one here would halve the faces
    detector's speed in the same process (the CPU of either is the same at one thread or two)."""
    import cv2

    return cv2


@dataclass(frozen=True)
class Tables:
    """The package's constants as arrays, made once."""

    linear: np.ndarray  # 256 sRGB values → linear light
    opsin: np.ndarray  # linear RGB → mixed, a 3×4 matrix for ``cv2.transform`` (its bias in the last column)
    positive: np.ndarray  # cube roots → the package's positive X, Y, B (the same)
    kernel: np.ndarray


@functools.cache
def tables() -> Tables:
    s2 = package()
    linear = s2.srgb_to_linear(np.arange(256, dtype=np.float64))
    bias = s2.kOpsinAbsorbanceBias
    # make_positive_xyb(x = (c0 - c1) / 2, y = (c0 + c1) / 2, b = c2), where c = cbrt(mixed) - cbrt(bias):
    # X = 14 x + 0.42, Y = y + 0.01, B = b - y + 0.55, one matrix and one offset on the cube roots.
    positive = np.array([[7.0, -7.0, 0.0], [0.5, 0.5, 0.0], [-0.5, -0.5, 1.0]])
    offset = np.array([0.42, 0.01, 0.55]) - positive @ np.cbrt(bias)
    taps = np.exp(-0.5 * (np.arange(-RADIUS, RADIUS + 1) / SIGMA) ** 2)
    return Tables(linear, np.column_stack([s2.kOpsinAbsorbanceMatrix.reshape(3, 3), bias]),
                  np.column_stack([positive, offset]), taps / taps.sum())


def linear_rgb(image: pyvips.Image) -> np.ndarray:
    """A normal image as an (height, width, 3) array of linear-light RGB."""
    if image.hasalpha():
        image = image.flatten(background=BACKGROUND)
    image = image.cast("uchar")
    pixels = np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, 3))
    return tables().linear[pixels]


def xyb(linear: np.ndarray) -> np.ndarray:
    """The package's positive XYB planes of linear RGB."""
    cv2, t = opencv(), tables()
    mixed = cv2.transform(linear, t.opsin)
    np.maximum(mixed, 0, out=mixed)
    return cv2.transform(cv2.pow(mixed, 1 / 3), t.positive)


def blur(plane: np.ndarray) -> np.ndarray:
    """The package's blur of a plane: zeros beyond its sides, its top and bottom mirrored (the rows
    padded here, as OpenCV's filter takes one border for both axes)."""
    cv2, kernel = opencv(), tables().kernel
    rows = cv2.copyMakeBorder(plane, RADIUS, RADIUS, 0, 0, cv2.BORDER_REFLECT)
    return cv2.sepFilter2D(rows, -1, kernel, kernel, borderType=cv2.BORDER_CONSTANT)[RADIUS:-RADIUS]


def halve(linear: np.ndarray) -> np.ndarray:
    """2×2 means; an odd last row or column is averaged with a copy of itself (the package's edge)."""
    height, width = linear.shape[:2]
    if height % 2 or width % 2:
        linear = np.pad(linear, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return (linear[0::2, 0::2] + linear[1::2, 0::2] + linear[0::2, 1::2] + linear[1::2, 1::2]) * 0.25


def scales(image: pyvips.Image) -> list[np.ndarray]:
    """The image's positive XYB planes at each scale the metric uses (halved each time)."""
    s2 = package()
    linear = linear_rgb(image)
    planes = []
    for scale in range(s2.kNumScales):
        if linear.shape[0] < 8 or linear.shape[1] < 8:
            break
        planes.append(xyb(linear))
        if scale < s2.kNumScales - 1:
            linear = halve(linear)
    return planes


def norms(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The L1 and L4 norms, per channel, the package takes of an error map (OpenCV's mean: numpy's
    sum over the first two axes is several times slower)."""
    square = plane * plane
    mean = opencv().mean
    return np.array(mean(plane)[:3]), np.array(mean(square * square)[:3]) ** 0.25


@dataclass(frozen=True)
class Scale:
    """The reference's terms at one scale."""

    plane: np.ndarray
    mean: np.ndarray  # blurred
    variance: np.ndarray  # blurred square - squared mean + C2
    edge: np.ndarray  # 1 / (1 + |plane - mean|)


class Ssimulacra2(Metric):
    name = "ssimulacra2"
    version = "1"  # the same scores as the package's own code (to 1e-6): nothing to re-render

    def prepare(self, image: pyvips.Image) -> list[Scale]:
        kc2 = package().kC2
        found = []
        for plane in scales(image):
            mean = blur(plane)
            found.append(Scale(plane, mean, blur(plane * plane) - mean * mean + kc2,
                               1 / (1 + np.abs(plane - mean))))
        return found

    def score(self, reference: list[Scale], image: pyvips.Image) -> float:
        s2 = package()
        msssim = s2.Msssim()
        for ref, plane in zip(reference, scales(image)):
            scale = s2.MsssimScale()
            mean = blur(plane)
            edge = edges(ref, plane, mean)
            scale.avg_ssim[0::2], scale.avg_ssim[1::2] = norms(ssim(ref, plane, mean, s2.kC2))
            scale.avg_edgediff[0::4], scale.avg_edgediff[1::4] = norms(np.maximum(edge, 0))
            np.negative(edge, out=edge)
            scale.avg_edgediff[2::4], scale.avg_edgediff[3::4] = norms(np.maximum(edge, 0, out=edge))
            msssim.scales.append(scale)
        return float(msssim.score())


def ssim(ref: Scale, plane: np.ndarray, mean: np.ndarray, kc2: float) -> np.ndarray:
    """The package's ``ssim_map`` before its norms, in ``mean``'s place (each full-size temporary
    costs as much as the arithmetic)."""
    structure = blur(ref.plane * plane)  # → 2 (s12 - mu1 mu2) + C2
    square = ref.mean * mean
    structure -= square
    structure *= 2
    structure += kc2
    variance = blur(plane * plane)  # → var1 + var2 + 2 C2
    np.multiply(mean, mean, out=square)
    variance -= square
    variance += ref.variance
    np.subtract(ref.mean, mean, out=mean)  # → 1 - (mu1 - mu2)²
    mean *= mean
    np.subtract(1, mean, out=mean)
    mean *= structure
    mean /= variance
    np.subtract(1, mean, out=mean)
    return np.maximum(mean, 0, out=mean)


def edges(ref: Scale, plane: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The package's edge ratio ``(1 + |plane - mean|) / (1 + |ref - ref mean|) - 1``."""
    edge = plane - mean
    np.abs(edge, out=edge)
    edge += 1
    edge *= ref.edge
    edge -= 1
    return edge


@hookimpl
def pixline_register_metrics(register: Callable[[Any], None]) -> None:
    register(Ssimulacra2)

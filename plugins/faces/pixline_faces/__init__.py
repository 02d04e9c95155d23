"""Faces for pixline: found once per image at upload, kept in its meta, and ``gravity: face`` for
crops and resize-fills that keep every face (contract 2.3 analysers, 2.4 gravities).

- the ``faces`` analyser runs OpenCV's frontal-face Haar cascade (Rainer Lienhart's, shipped in the
  ``opencv-python-headless`` 4.x wheel; the README says why this detector) on the image's reduced
  copy, at 768 px, when the image is taken in; the boxes are fractions of the image, listed under
  ``analysis.faces`` of ``GET /images/{id}``;
- the ``face`` gravity (``faces`` is the same) centres a crop on the union of the faces, or on the
  largest face when they do not all fit, and falls back to ``attention`` when there is none. A render
  reads the boxes; it never runs the detector.

::

    - crop: {aspect: "4:5", gravity: face}
    - resize: {width: 400, height: 500, fit: cover, gravity: face}
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import pyvips

from pixline.engine import Analyser, Context, SmartGravity, hookimpl

log = logging.getLogger(__name__)


def _cascade() -> Path:
    """The cascade's file in the installed wheel, found without importing OpenCV."""
    spec = importlib.util.find_spec("cv2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    return Path(folders[0] if folders else "cv2") / "data" / "haarcascade_frontalface_default.xml"


CASCADE = _cascade()


@functools.cache
def opencv() -> ModuleType:
    """OpenCV, imported on first use (~18 MB of a process's memory): a resizer or a converter, which
    never looks for faces, does not carry it; a process that takes uploads imports it in its warm-up
    (server/http/warm_up.py), before it is ready."""
    import cv2

    return cv2


#: The most faces kept (largest first): 64 boxes stay well within an analysis's 16 KiB.
MAX_FACES = 64
#: A face smaller than this fraction of the image's shorter side is not looked for (nor one under the
#: cascade's own 24 px window): smaller faces are not what a crop should centre on.
MIN_FACE = 0.03
#: The cascade's scan: windows 10 % apart, a face where 5 overlap (OpenCV's usual). 15 % and 4 cost a
#: quarter less CPU and found 1 fewer of LFW's 100 faces, but also a face in a microscope slide
#: beside the astronaut (measure.py compares; tests/test_faces.py has that picture).
SCALE_FACTOR = 1.1
MIN_NEIGHBOURS = 5
#: Two sizes that differ by less than this are one aspect ratio (rounding of a scaled image).
ASPECT_SLACK = 0.02


def _check_cascade() -> None:
    if not CASCADE.is_file():  # a 5.x wheel ships no cascades: say so at start-up, not per image
        raise RuntimeError(f"OpenCV's face cascade is missing ({CASCADE}): install "
                           "opencv-python-headless 4.x (pip install 'opencv-python-headless<5')")


def _classifier() -> Any:
    classifier = opencv().CascadeClassifier(str(CASCADE))
    if classifier.empty():
        raise RuntimeError(f"OpenCV could not read its face cascade {CASCADE}")
    return classifier


def grey(image: pyvips.Image) -> np.ndarray:
    """A normal image (8-bit sRGB, alpha flattened) as the equalised grey array the cascade reads."""
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    mono = image.colourspace("b-w")[0].cast("uchar")
    array = np.ndarray(buffer=mono.write_to_memory(), dtype=np.uint8, shape=(mono.height, mono.width))
    return opencv().equalizeHist(array)


class Faces(Analyser):
    """The faces in the image: ``[{"x", "y", "width", "height"}, …]``, fractions of its size,
    largest first (``[]``: none)."""

    name = "faces"
    version = "1"
    size = 768  # at 512 px, a face a twelfth of a wide picture's width was missed

    def __init__(self) -> None:
        _check_cascade()  # a missing cascade breaks the plugin at start-up
        # One classifier per thread: OpenCV does not promise that one can detect in two at once.
        self._local = threading.local()

    @property
    def classifier(self) -> Any:
        if not hasattr(self._local, "classifier"):
            self._local.classifier = _classifier()
        return self._local.classifier

    def analyse(self, image: pyvips.Image, ctx: Context) -> list[dict[str, float]]:
        ctx.deadline.check("before looking for faces")
        pixels = grey(image)
        side = max(24, round(min(pixels.shape) * MIN_FACE))
        found = self.classifier.detectMultiScale(pixels, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBOURS,
                                                 minSize=(side, side))
        boxes = sorted((tuple(int(v) for v in box) for box in found), key=lambda b: -b[2] * b[3])
        height, width = pixels.shape
        return [{"x": round(x / width, 4), "y": round(y / height, 4), "width": round(w / width, 4),
                 "height": round(h / height, 4)} for x, y, w, h in boxes[:MAX_FACES]]


def _span(start: float, size: float, box: int, outer: int) -> int:
    """Where a ``box`` long window starts to centre on ``start``…``start + size``, inside ``outer``."""
    return min(max(round(start + size / 2 - box / 2), 0), outer - box)


class Face(SmartGravity):
    """Centre the box on the faces found at upload: all of them when they fit, else the largest."""

    name = "face"
    version = "1"
    analysers = ("faces",)

    def place(self, width: int, height: int, box_width: int, box_height: int,
              ctx: Context) -> tuple[int, int] | None:
        faces: Any = ctx.analysis.get("faces")
        if not faces:
            return None
        if ctx.source_size is not None:
            src_w, src_h = ctx.source_size
            if abs(width / height - src_w / src_h) > ASPECT_SLACK * (src_w / src_h):
                # An earlier step cut the picture: the boxes (fractions of the original) no longer apply.
                log.info("gravity face: the image is %d×%d, not the shape of its %d×%d original; "
                         "falling back to attention", width, height, src_w, src_h)
                return None
        boxes = [(f["x"] * width, f["y"] * height, f["width"] * width, f["height"] * height) for f in faces]
        left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
        right, bottom = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        if right - left > box_width or bottom - top > box_height:
            left, top, right, bottom = boxes[0][0], boxes[0][1], boxes[0][0] + boxes[0][2], boxes[0][1] + boxes[0][3]
        return (_span(left, right - left, box_width, width), _span(top, bottom - top, box_height, height))


class FacesGravity(Face):
    """``gravity: faces``: the same as ``face``."""

    name = "faces"


@hookimpl
def pixline_register_analysers(register: Callable[[type[Analyser]], None]) -> None:
    register(Faces)


@hookimpl
def pixline_register_gravities(register: Callable[[type[SmartGravity]], None]) -> None:
    register(Face)
    register(FacesGravity)

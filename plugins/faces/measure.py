"""How the OpenCV cascades in the wheel compare, on scikit-image's package data (no download):
faces found among LFW's 100 face patches, false alarms among its 100 non-face patches and in
pictures without people, and the CPU a detection costs at 768 px.

    .venv/bin/python plugins/faces/measure.py [PHOTO ...]
"""
from __future__ import annotations

import statistics
import sys
import time

import cv2
import numpy as np
import pyvips
import skimage.data

import pixline_faces

CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml",
            "haarcascade_frontalface_alt.xml")
NO_PEOPLE = ("coffee", "chelsea", "rocket", "immunohistochemistry")


#: (scale factor, min neighbours): the plugin's, and a cheaper scan to compare.
SCANS = ((pixline_faces.SCALE_FACTOR, pixline_faces.MIN_NEIGHBOURS), (1.15, 4))


def detect(classifier: cv2.CascadeClassifier, grey: np.ndarray, scan: tuple[float, int] = SCANS[0]) -> int:
    side = max(24, round(min(grey.shape) * pixline_faces.MIN_FACE))
    return len(classifier.detectMultiScale(grey, scaleFactor=scan[0], minNeighbors=scan[1], minSize=(side, side)))


def lfw(classifier: cv2.CascadeClassifier, scan: tuple[float, int]) -> tuple[int, int]:
    """(faces found of 100, non-faces flagged of 100): each 25 px patch at 100 px on a grey field."""
    found = [0, 0]
    for index, patch in enumerate(skimage.data.lfw_subset()):
        canvas = np.full((300, 300), 128, np.uint8)
        canvas[100:200, 100:200] = cv2.resize((patch * 255).astype(np.uint8), (100, 100),
                                              interpolation=cv2.INTER_CUBIC)
        found[index >= 100] += detect(classifier, cv2.equalizeHist(canvas), scan) > 0
    return found[0], found[1]


def grey_at_768(image: pyvips.Image) -> np.ndarray:
    return pixline_faces.grey(image.thumbnail_image(768) if max(image.width, image.height) > 768 else image)


def main(photos: list[str]) -> None:
    pictures = {name: pyvips.Image.new_from_array(getattr(skimage.data, name)()[..., :3]).copy(
        interpretation="srgb") for name in NO_PEOPLE}
    pictures.update({path: pyvips.Image.thumbnail(path, 768) for path in photos})
    greys = {name: grey_at_768(image) for name, image in pictures.items()}
    astronaut = grey_at_768(pyvips.Image.new_from_array(skimage.data.astronaut()).copy(interpretation="srgb"))
    for name in CASCADES:
        classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        for scan in SCANS:
            faces, flagged = lfw(classifier, scan)
            alarms = sum(detect(classifier, g, scan) > 0 for g in greys.values())
            cpu = []
            for grey in greys.values():
                start = time.process_time()
                detect(classifier, grey, scan)
                cpu.append(1000 * (time.process_time() - start))
            print(f"{name} scale {scan[0]}, neighbours {scan[1]}: LFW faces {faces}/100, non-faces flagged "
                  f"{flagged}/100, pictures without people flagged {alarms}/{len(greys)}, astronaut found: "
                  f"{detect(classifier, astronaut, scan) > 0}, CPU at 768 px median {statistics.median(cpu):.0f} ms "
                  f"(min {min(cpu):.0f}, max {max(cpu):.0f})")

if __name__ == "__main__":
    main(sys.argv[1:])

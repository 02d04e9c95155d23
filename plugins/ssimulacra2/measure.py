"""What a SSIMULACRA 2 score costs here: CPU seconds of a whole score (prepare + score) and of a
score against a prepared reference, at 300, 600 and 1200 px, median of 5 on a repository photo.

    .venv/bin/python plugins/ssimulacra2/measure.py [PHOTO]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pyvips

from pixline.engine import normalise
from pixline_ssimulacra2 import Ssimulacra2

PHOTO = Path(__file__).resolve().parents[2] / "tests" / "photos" / "Storm.jpg"


def cpu(work) -> float:
    times = []
    for _ in range(5):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main(photo: str) -> None:
    metric = Ssimulacra2()
    for width in (300, 600, 1200):
        image = normalise(pyvips.Image.thumbnail(photo, width)).copy_memory()
        encoded = normalise(pyvips.Image.new_from_buffer(image.jpegsave_buffer(Q=75), "")).copy_memory()
        reference = metric.prepare(image)
        whole = cpu(lambda: metric.score(metric.prepare(image), encoded))
        prepared = cpu(lambda: metric.score(reference, encoded))
        print(f"{image.width}×{image.height}: whole score {whole:.3f} s CPU, against a prepared reference "
              f"{prepared:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(PHOTO))

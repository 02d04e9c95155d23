"""pixline-ssimulacra2: the package's own score (to 1e-6), computed faster, the reference's half once."""
from __future__ import annotations

from pathlib import Path

import pytest
import pyvips
from ssimulacra2 import compute_ssimulacra2

from pixline.engine import Registry, normalise
from pixline_ssimulacra2 import Ssimulacra2

PHOTOS = Path(__file__).resolve().parents[3] / "tests" / "photos"


@pytest.fixture(scope="module")
def picture() -> pyvips.Image:
    return normalise(pyvips.Image.thumbnail(str(next(PHOTOS.glob("*.jpg"))), 240)).copy_memory()


@pytest.mark.parametrize("save", ["jpegsave_buffer", "webpsave_buffer"])
@pytest.mark.parametrize("quality", [20, 60, 90])
@pytest.mark.parametrize("size", [(240, 160), (241, 163), (97, 300)])  # odd sides: the halving's edges
def test_prepare_then_score_is_the_packages_score(tmp_path, size, quality, save):
    photo = sorted(PHOTOS.glob("*.jpg"))[sum(size) % 3]
    picture = normalise(pyvips.Image.thumbnail(str(photo), size[0], height=size[1], crop="centre")).copy_memory()
    assert (picture.width, picture.height) == size
    distorted = pyvips.Image.new_from_buffer(getattr(picture, save)(Q=quality), "")
    picture.pngsave(str(tmp_path / "a.png"))
    distorted.pngsave(str(tmp_path / "b.png"))
    metric = Ssimulacra2()
    ours = metric.score(metric.prepare(picture), distorted)
    assert ours == pytest.approx(compute_ssimulacra2(str(tmp_path / "a.png"), str(tmp_path / "b.png")), abs=1e-6)


def test_scores_order_qualities_and_an_identical_image_is_100(picture):
    metric = Ssimulacra2()
    reference = metric.prepare(picture)
    scores = [metric.score(reference, pyvips.Image.new_from_buffer(picture.jpegsave_buffer(Q=q), ""))
              for q in (20, 50, 90)]
    assert scores == sorted(scores) and scores[0] < 60 < scores[-1]
    assert metric.score(reference, picture) == pytest.approx(100)


def test_it_is_the_metric_quality_auto_finds():
    loaded = Registry.load(refuse=False)
    assert isinstance(loaded.metrics["ssimulacra2"], Ssimulacra2)
    assert "ssimulacra2" in loaded.plugins["ssimulacra2"].metrics


def test_a_smooth_picture_scores_as_the_package_does(tmp_path):
    """A gradient with little variance: where float32's blurred squares less squared means would lose
    it (0.07 points off on a photo's smooth wood), float64 keeps the package's number."""
    smooth = (pyvips.Image.xyz(200, 150)[0] * 0.2 + 100).cast("uchar").bandjoin([140, 160])
    smooth = normalise(smooth.copy(interpretation="srgb")).copy_memory()
    noisy = (smooth + pyvips.Image.gaussnoise(200, 150, sigma=2)).cast("uchar").copy(interpretation="srgb")
    smooth.pngsave(str(tmp_path / "a.png"))
    noisy.pngsave(str(tmp_path / "b.png"))
    metric = Ssimulacra2()
    ours = metric.score(metric.prepare(smooth), noisy)
    assert ours == pytest.approx(compute_ssimulacra2(str(tmp_path / "a.png"), str(tmp_path / "b.png")), abs=1e-6)


def test_scipy_is_imported_on_first_use_not_with_the_plugin():
    import subprocess
    import sys

    code = ("import sys; from pixline.engine import Registry; r = Registry.load(); "
            "assert 'scipy' not in sys.modules, 'loaded with the plugin'; import pyvips; "
            "m = r.metrics['ssimulacra2']; i = pyvips.Image.black(16, 16, bands=3).copy(interpretation='srgb'); "
            "m.score(m.prepare(i), i); assert 'scipy' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_scoring_leaves_opencvs_threads_to_the_process(picture):
    """OpenCV's thread count is process-wide: the faces detector in the same process runs twice as
    fast on two threads as on one, and a metric must not change that under it."""
    import cv2

    before = cv2.getNumThreads()
    metric = Ssimulacra2()
    metric.score(metric.prepare(picture), picture)
    assert cv2.getNumThreads() == before

"""Does the ``feed`` recipe (600 px) gain from a light ``sharpen`` after its large downscale?

For each photo and each variant (no sharpen, then sharpen at a few settings) the feed recipe is
rendered through the engine in every format it serves (JPEG, WebP, AVIF), and reported:

* **blur**: the no-reference blur metric of Crété-Roffet et al. (2007, "The blur effect:
  perception and estimation with a new no-reference perceptual blur metric"): how much of the
  image's neighbour-to-neighbour variation survives a re-blur with a 9-pixel box, on L*; 0 is
  sharp, 1 is all blur. Measured on the decoded output, so compression counts too;
* **ΔL***: how much sharpening changed the strongest edges, as the 99.9th-percentile |ΔL*| against
  the unsharpened render (libvips caps it at 10 brighter, 20 darker);
* **bytes** per format.

``--crops DIR`` also writes, per photo, PNG crops of the same region at 3× (nearest neighbour)
without and with the chosen setting, to look at side by side.

Usage: ``.venv/bin/python bench/feed_sharpen.py [--crops /tmp/feed-crops]``
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pyvips

from pixline.engine import Registry, Source, render, testing

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = [ROOT / "tests" / "photos" / name for name in ("Storm.jpg", "LadyBird.jpg", "Wood.jpg")]
PHOTOS += [ROOT / "bench" / "TwoWings.jpg", ROOT.parent / "shared" / "photos" / "Elephants_5640x3172.jpg"]
#: None = the feed recipe as it is; else the sharpen step's parameters.
VARIANTS: list[dict | None] = [None, {"sigma": 0.5, "amount": 1}, {"sigma": 0.5, "amount": 1.5},
                               {"sigma": 0.5, "amount": 2}, {"sigma": 0.5, "amount": 3},
                               {"sigma": 0.8, "amount": 1.5}]
FORMATS = ("jpeg", "webp", "avif")


def lightness(image: pyvips.Image) -> pyvips.Image:
    return image[:3].colourspace("lab")[0]


def blur_metric(image: pyvips.Image) -> float:
    """Crété-Roffet's perceptual blur (0 sharp … 1 blurred), the worse of the two directions."""
    f = lightness(image)
    scores = []
    for box in (pyvips.Image.new_from_array([[1 / 9] * 9]), pyvips.Image.new_from_array([[1 / 9]] * 9)):
        b = f.conv(box, precision="float")
        dx, dy = (1, 0) if box.width > 1 else (0, 1)
        w, h = f.width - 2 * 9, f.height - 2 * 9  # away from the borders the box cannot see past

        def diff(img: pyvips.Image) -> pyvips.Image:
            return (img.crop(9 + dx, 9 + dy, w, h) - img.crop(9, 9, w, h)).abs()

        d_f, d_b = diff(f), diff(b)
        v = ((d_f - d_b) > 0).ifthenelse(d_f - d_b, 0)
        s_f, s_v = d_f.avg(), v.avg()
        scores.append((s_f - s_v) / s_f)
    return max(scores)


def change(plain: pyvips.Image, sharpened: pyvips.Image) -> float:
    delta = (lightness(sharpened) - lightness(plain)).abs()
    return float(delta.percent(99.9))


def feed(registry: Registry, data: bytes, fmt: str, sharpen: dict | None):
    steps: list = [{"resize": {"width": 600, "fit": "inside"}}]
    if sharpen is not None:
        steps.append({"sharpen": sharpen})
    steps.append({"format": {"type": fmt}})
    return render(testing.recipe(registry, steps), Source(data), registry)


def busiest(image: pyvips.Image, width: int, height: int) -> tuple[int, int, int, int]:
    """The ``width``×``height`` box (on a 25-pixel grid) with the most edges: where sharpening shows."""
    edges = lightness(image).sobel()
    boxes = [(x, y, width, height) for x in range(0, image.width - width, 25)
             for y in range(0, image.height - height, 25)]
    return max(boxes, key=lambda box: edges.crop(*box).avg())


def crop_of(rendered: bytes, box: tuple[int, int, int, int]) -> pyvips.Image:
    return testing.decode(rendered).crop(*box).resize(3, kernel="nearest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=Path, help="write comparison crops (PNG) here")
    parser.add_argument("--chosen", default="0.5,1.5", help="sigma,amount of the crops' sharpened side")
    args = parser.parse_args()
    registry = Registry.load()
    rows: dict[str, list] = {}
    print(f"{'photo':<13} {'variant':<18} {'blur':>6} {'ΔL*':>5} " + " ".join(f"{f:>7}" for f in FORMATS))
    for path in (p for p in PHOTOS if p.is_file()):  # Elephants only beside a shared checkout
        data = path.read_bytes()
        plain = {fmt: feed(registry, data, fmt, None).data for fmt in FORMATS}
        plain_png = testing.decode(feed(registry, data, "png", None).data)
        for variant in VARIANTS:
            out = {fmt: feed(registry, data, fmt, variant).data for fmt in FORMATS}
            png = testing.decode(feed(registry, data, "png", variant).data)
            blur = statistics.mean(blur_metric(testing.decode(out[fmt])) for fmt in FORMATS)
            name = "none" if variant is None else f"s={variant['sigma']} a={variant['amount']}"
            sizes = [len(out[fmt]) / len(plain[fmt]) for fmt in FORMATS]
            rows.setdefault(name, []).append((blur, sizes))
            print(f"{path.name:<13} {name:<18} {blur:6.3f} {change(plain_png, png):5.1f} "
                  + " ".join(f"{len(out[fmt]):7d}" for fmt in FORMATS))
        if args.crops:
            sigma, amount = (float(x) for x in args.chosen.split(","))
            args.crops.mkdir(parents=True, exist_ok=True)
            sharp = feed(registry, data, "jpeg", {"sigma": sigma, "amount": amount}).data
            box = busiest(plain_png, 200, 150)
            pair = crop_of(plain["jpeg"], box).join(crop_of(sharp, box), "horizontal", shim=6,
                                                    background=[255, 255, 255])
            pair.pngsave(str(args.crops / f"{path.stem}-none-vs-{sigma}-{amount}.png"))
    print("\nmean over photos: blur, then bytes relative to no sharpen (jpeg webp avif)")
    for name, values in rows.items():
        blur = statistics.mean(v[0] for v in values)
        sizes = [statistics.mean(v[1][i] for v in values) for i in range(len(FORMATS))]
        print(f"  {name:<18} {blur:6.3f}  " + " ".join(f"{s:6.3f}" for s in sizes))


if __name__ == "__main__":
    main()

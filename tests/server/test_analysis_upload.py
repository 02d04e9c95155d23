"""Every upload is analysed once, from its reduced copy (engine/analysis.py), and a failing analyser
never fails the upload."""
from __future__ import annotations

from typing import Callable

from pixline.engine import Registry
from pixline.engine import testing

from tests.engine.analyserplugins import Exploding, MeanColour, plugin

from .conftest import Service


def test_an_upload_keeps_what_each_analyser_found_made_from_its_small_copy(make_service: Callable[..., Service]):
    service = make_service(plugins=Registry.load(extra=[("analysers", plugin(MeanColour, Exploding))]))
    MeanColour.calls.clear()
    image_id = service.upload(testing.jpeg_bytes(testing.gradient(2000, 1000)))
    meta = service.store.get_meta(image_id)
    assert meta["reduced_small"] == {"width": 768, "height": 384, "bytes": meta["reduced_small"]["bytes"]}
    mean = meta["analysis"]["mean"]
    assert mean["value"]["given"] == [32, 16] and mean["value"]["source"] == [2000, 1000]
    assert mean["placeholder"] is True
    assert meta["analysis"]["exploding"]["error"] == "RuntimeError: the detector fell over"
    assert MeanColour.calls == [(32, 16)]
    # What a step or encoder sees of it.
    recipe = service.derivatives.recipe(service.derivatives.eager_recipes[0])
    derivative = service.derivatives.locate(recipe, image_id)
    assert service.derivatives.context(derivative).analysis["mean"] == mean["value"]


def test_an_upload_is_analysed_from_its_small_copys_pixels_not_a_decode_of_its_bytes(
        make_service: Callable[..., Service], monkeypatch):
    """The copy was just made: decoding its JPEG again cost ~2.5 ms, half of what the placeholders
    cost (issue 21). The original is decoded once, for its copies, and nothing else is."""
    from pixline.engine.source import Source

    service = make_service(plugins=Registry.load(extra=[("analysers", plugin(MeanColour))]))
    decoded: list[tuple[int, int]] = []
    thumbnail = Source.thumbnail

    def counted(self, *args, **kwargs):
        decoded.append(self.size)
        return thumbnail(self, *args, **kwargs)

    monkeypatch.setattr(Source, "thumbnail", counted)
    MeanColour.calls.clear()
    image_id = service.upload(testing.jpeg_bytes(testing.gradient(4000, 2000)))
    assert service.store.get_meta(image_id)["analysis"]["mean"]["value"]["given"] == [32, 16]
    assert decoded == [(4000, 2000)]  # the original, for the 3072 px copy; the 768 px one from its pixels

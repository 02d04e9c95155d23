"""Per-image analysis (engine/analysis.py, contract 2.3): registration, running, keeping results."""
from __future__ import annotations

from pathlib import Path

import pytest

from pixline.engine import Analyser, Context, FatalPluginError, Registry, Source, testing
from pixline.engine import analysis
from pixline.engine.errors import NotFoundError
from pixline.engine.source import Limits
from pixline.engine.storage import Store

from .analyserplugins import Exploding, Huge, MeanColour, NotJson, plugin


def registry(*classes: type[Analyser]) -> Registry:
    """Only these analysers (not the installed plugins')."""
    loaded = Registry()
    loaded.add("analysers", plugin(*classes), "(test)", "", strict=False)
    loaded.refuse_conflicts()
    return loaded


def test_a_registered_analyser_is_listed_with_its_plugin():
    """Registered through pixline_register_analysers (tests/engine/analyserplugins.py)."""
    loaded = registry(MeanColour)
    assert set(loaded.analysers) == {"mean"}
    assert loaded.plugins["analysers"].analysers == ["mean"]
    assert loaded.plugins["analysers"].as_dict()["analysers"] == ["mean"]


@pytest.mark.parametrize("attrs, problem", [
    ({"name": "Bad Name"}, "analyser name 'Bad Name' is not valid"),
    ({"name": "big", "size": 4000}, "size must be a whole number of pixels from 1 to 768"),
    ({"name": "zero", "size": 0}, "size must be a whole number"),
    ({"name": "nover", "version": ""}, "version must be a non-empty string"),
    ({"name": "args", "analyse": lambda self, picture: None}, "asks for 'picture'"),
])
def test_a_bad_analyser_makes_its_plugin_broken_not_the_process(attrs, problem):
    cls = type("Bad", (Analyser,), attrs)
    loaded = registry(cls)
    assert problem in loaded.plugins["analysers"].problem
    assert not loaded.analysers


def test_two_plugins_with_one_analyser_name_stop_start_up():
    with pytest.raises(FatalPluginError, match="analyser 'mean' is registered by two plugins"):
        Registry.load(extra=[("one", plugin(MeanColour)), ("two", plugin(MeanColour))])


def test_each_analyser_gets_the_size_it_asked_for_and_failures_are_recorded_not_raised():
    source = Source(testing.jpeg_bytes(testing.gradient(640, 480)))
    loaded = registry(MeanColour, Exploding, NotJson, Huge)
    entries = analysis.analyse(loaded.analysers, source, Context(source_size=(640, 480)))
    assert entries["mean"]["value"]["given"] == [32, 24]
    assert entries["mean"]["placeholder"] is True
    assert entries["exploding"] == {"version": "1", "error": "RuntimeError: the detector fell over"}
    assert "not a JSON value" in entries["notjson"]["error"]
    assert "over the limit of 16384" in entries["huge"]["error"]
    meta = {"analysis": entries}
    assert analysis.values(meta) == {"mean": entries["mean"]["value"]}
    assert analysis.placeholders(meta) == {"mean": entries["mean"]["value"]}


def test_a_small_image_is_not_enlarged():
    entries = analysis.analyse(registry(MeanColour).analysers,
                               Source(testing.png_bytes(testing.gradient(20, 10))), Context(source_size=(20, 10)))
    assert entries["mean"]["value"]["given"] == [20, 10]


def test_a_stored_image_is_analysed_from_its_smallest_copy_once_per_version(tmp_path: Path):
    store = Store(f"file://{tmp_path}")
    data = b"not read: the small copy is there"
    meta = {"id": "a" * 32, "width": 5640, "height": 3172, "format": "jpeg",
            "reduced_small": {"width": 768, "height": 432, "bytes": 3}}
    small = testing.jpeg_bytes(testing.gradient(768, 432))
    store.put_original(meta["id"], data, meta, copies={".small": small})
    loaded = registry(MeanColour)
    MeanColour.calls.clear()
    ctx = Context(source_size=(5640, 3172), image_id=meta["id"])
    updated = analysis.analyse_stored(store, loaded.analysers, meta["id"], Limits(), ctx)
    # From the small copy (768 x 432 → 32 x 18), planned against the original's size.
    assert updated["analysis"]["mean"]["value"]["given"] == [32, 18]
    assert store.get_meta(meta["id"])["analysis"]["mean"]["version"] == "1"
    assert analysis.analyse_stored(store, loaded.analysers, meta["id"], Limits(), ctx) == updated
    assert len(MeanColour.calls) == 1  # nothing missing: not run again
    assert analysis.missing(loaded.analysers, {"analysis": {"mean": {"version": "0", "value": 1}}}) == ["mean"]


def test_an_image_deleted_while_it_is_analysed_stays_deleted(tmp_path: Path):
    store = Store(f"file://{tmp_path}")
    image_id = "b" * 32
    data = testing.jpeg_bytes(testing.gradient(64, 48))
    store.put_original(image_id, data, {"id": image_id, "width": 64, "height": 48})

    class Deleting(Analyser):
        name = "deleting"

        def analyse(self):
            store.delete_image(image_id)
            return 1

    with pytest.raises(NotFoundError):
        analysis.analyse_stored(store, registry(Deleting).analysers, image_id, Limits(), Context())
    assert not store.has_image(image_id)

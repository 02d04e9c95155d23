"""quality: auto's search (engine/autoquality.py): the lowest passing quality in a handful of encodes,
the same answer every time, and a logged fall-back instead of a search the deadline would cut short."""
from __future__ import annotations

import logging
import types

import pytest
import pyvips

from pixline.engine import Deadline, Metric, Registry, RecipeError, hookimpl, testing
from pixline.engine import autoquality
from pixline.engine.autoquality import MAX_TRIALS, parse_target, search


class Closeness(Metric):
    """A toy metric: 100 minus 20 × the mean absolute difference (cheap, monotonic in JPEG quality)."""

    name = "ssimulacra2"  # the name quality: auto asks for
    version = "1"
    scored = 0

    def prepare(self, image):
        return image.copy_memory()

    def score(self, reference, image):
        type(self).scored += 1
        return 100 - 20 * (reference - image).abs().avg()


def metric_plugin() -> types.SimpleNamespace:
    @hookimpl
    def pixline_register_metrics(register):
        register(Closeness)

    return types.SimpleNamespace(pixline_register_metrics=pixline_register_metrics)


@pytest.fixture(scope="module")
def loaded() -> Registry:
    registry = Registry.load(refuse=False)
    if "ssimulacra2" in registry.metrics:  # the real one is installed: test with the toy
        del registry.metrics["ssimulacra2"]
    registry.add("toy-metric", metric_plugin(), "pixline-toy-metric", "1.0")
    return registry


@pytest.mark.parametrize("text, target", [("auto", 80), ("auto:high", 85), ("auto:eco", 70), ("auto:75", 75),
                                          ("auto:92.5", 92.5)])
def test_targets(text, target):
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["auto:max", "auto:5", "auto:", "auto:100", "fast", "AUTO", "auto:high:1"])
def test_an_unknown_target_says_what_is_allowed(text):
    with pytest.raises(ValueError, match=r"auto:high \(85\), auto:eco \(70\)"):
        parse_target(text)


def picture() -> pyvips.Image:
    return testing.gradient(160, 120).gaussblur(2).copy_memory()


@pytest.mark.parametrize("target", [65, 75, 85, 88])
def test_the_search_finds_the_lowest_passing_quality_in_a_handful_of_encodes(target):
    image, metric = picture(), Closeness()
    reference = metric.prepare(image)

    def encode(q):
        return image.jpegsave_buffer(Q=q)

    scores = {q: metric.score(reference, pyvips.Image.new_from_buffer(encode(q), "")) for q in range(30, 96)}
    lowest = min(q for q, s in scores.items() if s >= target)
    Closeness.scored = 0
    data, choice = search(encode, image, metric, target, (30, 95), Deadline())
    assert choice.quality == lowest and choice.score >= target and not choice.fallback
    assert data == encode(lowest)
    assert choice.trials == Closeness.scored <= MAX_TRIALS
    assert search(encode, image, metric, target, (30, 95), Deadline())[0] == data  # the same every time


def test_a_target_no_quality_reaches_gives_the_highest():
    image, metric = picture(), Closeness()
    data, choice = search(lambda q: image.jpegsave_buffer(Q=q), image, metric, 99.9, (30, 60), Deadline())
    assert choice.quality == 60 and choice.score < 99.9


def test_a_search_the_deadline_would_cut_short_falls_back_logged(loaded, monkeypatch, caplog):
    monkeypatch.setattr(autoquality, "MARGIN", 1e9)  # no trial ever fits
    caplog.set_level(logging.WARNING)
    recipe = testing.recipe(loaded, [{"format": {"type": "jpeg", "quality": "auto"}}])
    from pixline.engine import Context, Source, render
    rendered = render(recipe, Source(testing.jpeg_bytes(picture())), loaded, Context(deadline=Deadline(30)))
    assert rendered.choice.fallback.startswith("the search would overrun the deadline")
    assert rendered.choice.quality is None
    assert "the recipe's default quality is used" in caplog.text
    assert pyvips.Image.new_from_buffer(rendered.data, "").width == 160


def test_auto_without_the_metric_or_on_a_lossless_format_is_refused():
    bare = Registry.load(refuse=False)
    bare.metrics.pop("ssimulacra2", None)
    with pytest.raises(RecipeError, match="quality: auto needs the ssimulacra2 metric"):
        testing.recipe(bare, [{"format": {"type": "jpeg", "quality": "auto"}}])


def test_the_digest_names_the_metric(loaded, monkeypatch):
    steps = [{"format": {"type": "webp", "quality": "auto"}}]
    before = testing.recipe(loaded, steps).digest
    fixed = testing.recipe(loaded, [{"format": {"type": "webp", "quality": 80}}]).digest
    monkeypatch.setattr(Closeness, "version", "2")
    assert testing.recipe(loaded, steps).digest != before
    assert testing.recipe(loaded, [{"format": {"type": "webp", "quality": 80}}]).digest == fixed

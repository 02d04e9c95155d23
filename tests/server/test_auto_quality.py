"""quality: auto through the service: searched once, kept with the derivative and reused, visible
(X-Pixline-Quality, GET /images/{id}), and a search that would overrun falls back, counted, not stored."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import pyvips

from pixline.engine import autoquality, normalise, testing
from pixline.server.http.signing import sign_path

from .conftest import Service

PHOTO = Path(__file__).resolve().parents[1] / "photos" / "Storm.jpg"
KEY = "test-key"


@pytest.fixture
def auto_service(make_service: Callable[..., Service], tmp_path: Path) -> Service:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "feed.yaml").write_text("eager: true\nsteps:\n  - resize: {width: 300}\n"
                                       "  - format: {type: webp, quality: auto}\n")
    (recipes / "plain.yaml").write_text("steps:\n  - resize: {width: 300}\n  - format: {type: png}\n")
    return make_service(recipes=str(recipes), signing_key=[KEY])


def eager(service: Service, image_id: str) -> None:
    """The converter's job for the image, run here (the test app's publisher only records it)."""
    from pixline.server.queue.handler import JobHandler, RetryPolicy, run_job
    from pixline.server.queue.jobs import Job

    job = Job(image_id, service.derivatives.eager_recipes)
    assert run_job(JobHandler(service.derivatives), RetryPolicy(), job).action == "done"


def score(service: Service, image_id: str, data: bytes) -> float:
    """SSIMULACRA 2 of ``data`` against the same steps' unencoded output (the plain PNG recipe)."""
    metric = service.derivatives.registry.metrics["ssimulacra2"]
    reference = normalise(pyvips.Image.new_from_buffer(
        service.client.simulate_get(f"/r/plain/{image_id}").content, ""))
    return metric.score(metric.prepare(reference), normalise(pyvips.Image.new_from_buffer(data, "")))


def test_an_eager_auto_output_reaches_its_target_and_is_kept_with_its_quality(auto_service: Service):
    image_id = auto_service.upload(PHOTO.read_bytes())
    eager(auto_service, image_id)
    derivative = auto_service.derivatives.locate(auto_service.derivatives.recipe("feed"), image_id)
    chosen = auto_service.derivatives.chosen(derivative)
    assert 30 <= chosen["quality"] <= 95 and chosen["score"] >= 80 and 1 <= chosen["trials"] <= autoquality.MAX_TRIALS
    stored = auto_service.client.simulate_get(f"/r/feed/{image_id}")
    assert stored.status_code == 200 and score(auto_service, image_id, stored.content) >= 80
    (output,) = auto_service.client.simulate_get(f"/images/{image_id}").json["derivatives"]["feed"]["outputs"]
    assert output["auto_quality"] == chosen


def test_a_render_of_a_lost_output_reuses_the_quality_and_gives_the_same_bytes(auto_service: Service, monkeypatch):
    image_id = auto_service.upload(PHOTO.read_bytes())
    eager(auto_service, image_id)
    derivative = auto_service.derivatives.locate(auto_service.derivatives.recipe("feed"), image_id)
    first = auto_service.store.get(derivative.key)
    auto_service.store.delete(derivative.key)  # the object lost, its index entry kept
    searches: list[int] = []
    monkeypatch.setattr(autoquality, "search", lambda *a, **k: searches.append(1) or (None, None))
    again = auto_service.client.simulate_get(f"/r/feed/{image_id}")
    assert again.status_code == 200 and again.content == first and searches == []
    assert again.headers["x-pixline-quality"] == str(auto_service.derivatives.chosen(derivative)["quality"])


def test_an_adhoc_auto_url_searches_in_the_request_and_says_the_quality(auto_service: Service):
    image_id = auto_service.upload(PHOTO.read_bytes())
    path = sign_path(f"resize:w=240/format:t=jpeg,q=auto-high/{image_id}", KEY)
    first = auto_service.client.simulate_get(path)
    assert first.status_code == 200, first.text
    quality = int(first.headers["x-pixline-quality"])
    assert 30 <= quality <= 95
    again = auto_service.client.simulate_get(path)  # stored now
    assert again.content == first.content and "x-pixline-quality" not in again.headers


def test_a_search_that_would_overrun_falls_back_counted_and_unstored(auto_service: Service, monkeypatch):
    image_id = auto_service.upload(PHOTO.read_bytes())
    monkeypatch.setattr(autoquality, "MARGIN", 1e9)  # no trial fits in any deadline
    path = sign_path(f"resize:w=200/format:t=webp,q=auto/{image_id}", KEY)
    answer = auto_service.client.simulate_get(path)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert "x-pixline-quality" not in answer.headers
    assert auto_service.metric("pixline_auto_quality_fallbacks_total") == 1
    assert not [k for k in auto_service.store.list_keys("derived/adhoc/")]


@pytest.mark.parametrize("quality", ["auto-max", "auto-3", "best"])
def test_an_unknown_auto_target_in_a_url_is_a_400(auto_service: Service, quality: str):
    image_id = auto_service.upload(testing.jpeg_bytes(testing.gradient(64, 48)))
    answer = auto_service.client.simulate_get(sign_path(f"format:t=jpeg,q={quality}/{image_id}", KEY))
    assert answer.status_code == 400 and answer.headers["content-type"] == "application/problem+json"
    assert "auto:high (85)" in answer.json["detail"]


def test_an_eager_search_that_would_overrun_fails_that_recipe_for_the_job_and_stores_nothing(
        auto_service: Service, monkeypatch):
    from pixline.server.queue.handler import JobHandler, RetryPolicy, run_job
    from pixline.server.queue.jobs import Job

    image_id = auto_service.upload(PHOTO.read_bytes())
    monkeypatch.setattr(autoquality, "MARGIN", 1e9)
    handler = JobHandler(auto_service.derivatives, render_time_limit=30)
    outcome = run_job(handler, RetryPolicy(), Job(image_id, ("feed",)))
    # A recipe that cannot make its output is given up for this image, as a failing step is.
    assert outcome.action == "dead" and "quality: auto for webp: the search would overrun" in outcome.reason
    derivative = auto_service.derivatives.locate(auto_service.derivatives.recipe("feed"), image_id)
    assert not auto_service.store.exists(derivative.key)


@pytest.mark.parametrize("entry", [b"not json", b'{"quality": "74"}', b"[74]", b'{"quality": true}'])
def test_a_garbled_index_entry_is_no_choice_the_output_is_searched_again(auto_service: Service, entry: bytes):
    image_id = auto_service.upload(PHOTO.read_bytes())
    derivative = auto_service.derivatives.locate(auto_service.derivatives.recipe("feed"), image_id)
    auto_service.store.put(auto_service.store.index_key(derivative.key), entry)
    assert auto_service.derivatives.chosen(derivative) == {}
    answer = auto_service.client.simulate_get(f"/r/feed/{image_id}")
    assert answer.status_code == 200 and 30 <= int(answer.headers["x-pixline-quality"]) <= 95
    assert auto_service.derivatives.chosen(derivative)["quality"] == int(answer.headers["x-pixline-quality"])

"""Plugins written to each published shape of the contract keep working (issue 20).

Each module of this folder is a plugin as its author wrote it against one contract version
(docs/plugins.md, "Contract changelog"). The test installs them the way pip would leave them — a
``.dist-info`` with an ``entry_points.txt`` in a folder on ``sys.path`` — so ``Registry.load()`` finds
them through real entry points, next to the first-party plugins. Each one then loads, lists,
validates and renders through a recipe (``GET /r/…``), an ad-hoc URL (``GET /t/unsafe/…``), a queue job
(the job handler every queue runs) and the Python API.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pixline import render
from pixline.engine import PixlineDeprecationWarning, Registry, testing
from pixline.server.commands.plugins import describe
from pixline.server.queue.handler import JobHandler, RetryPolicy, run_job
from pixline.server.queue.jobs import Job

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Shape:
    """One published shape: the plugin written to it, and what its step does to pixels."""

    version: str
    module: str
    distribution: str
    step: str  # as a recipe writes it: (name, params)
    params: dict
    url: str  # the same step in an ad-hoc URL
    format: str
    colour: tuple[int, int, int]  # of pixel (1, 1) after the step
    grows: int = 0  # pixels the step adds on each side
    deprecated: tuple[str, ...] = ()


SHAPES = [
    Shape("1.0", "contract_1_0", "pixline-tintbar", "tintbar", {"height": 6}, "tintbar:height=6",
          "tiff_tintbar", (255, 0, 0), deprecated=("apply() names its arguments (self, img, p, ctx)",)),
    Shape("1.1", "contract_1_1", "pixline-oldborder", "oldborder", {"width": 3}, "oldborder:width=3",
          "tiff_border", (0, 0, 255), grows=3),
    Shape("2.0", "contract_2_0", "pixline-stamp", "stamp", {"size": 6}, "stamp:s=6", "tiff_stamp",
          (255, 255, 255)),
    Shape("2.1", "contract_2_1", "pixline-stripe", "stripe", {"height": 5}, "stripe:height=5",
          "gif_stripe", (255, 255, 0)),
]
IDS = [shape.version for shape in SHAPES]


def install(site: Path, shape: Shape, version: str = "1.0.0") -> None:
    """A distribution as an installer leaves it: its dist-info, whose entry point names the module."""
    info = site / f"{shape.distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {shape.distribution}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        f"[pixline]\n{shape.step} = tests.old_contract.{shape.module}\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    for shape in SHAPES:
        install(site, shape)
    return site


@pytest.fixture
def old_registry(site: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.syspath_prepend(str(site))
    return Registry.load()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return testing.jpeg_bytes(testing.gradient(80, 60))


def recipe_yaml(shape: Shape) -> str:
    params = ", ".join(f"{k}: {v}" for k, v in shape.params.items())
    return (f"steps:\n  - resize: {{width: 40}}\n  - {shape.step}: {{{params}}}\n"
            f"  - format: {{type: {shape.format}}}\n")


def check(data: bytes, shape: Shape) -> None:
    image = testing.decode(data)
    assert (image.width, image.height) == (40 + 2 * shape.grows, 30 + 2 * shape.grows)
    pixel = image(1, 1)[:3]
    assert all(abs(got - want) < 40 for got, want in zip(pixel, shape.colour)), pixel


def test_every_shape_loads_and_lists_with_its_status(old_registry: Registry):
    for shape in SHAPES:
        info = old_registry.plugins[shape.step]
        assert (info.distribution, info.version) == (shape.distribution, "1.0.0")
        assert info.steps == [shape.step] and info.encoders == [shape.format]
        line = describe(info)
        assert line.split()[:4] == [shape.step, "deprecated" if shape.deprecated else "ok",
                                    shape.distribution, "1.0.0"]
        for fragment in shape.deprecated:
            assert fragment in line


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_renders_through_a_recipe_an_adhoc_url_and_a_queue_job(shape: Shape, old_registry: Registry,
                                                                 make_service, tmp_path: Path, jpeg: bytes):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "old.yaml").write_text(recipe_yaml(shape))
    service = make_service(plugins=old_registry, recipes=str(recipes), allow_unsafe=True)
    image_id = service.upload(jpeg)

    by_recipe = service.client.simulate_get(f"/r/old/{image_id}")
    assert by_recipe.status_code == 200, by_recipe.text
    check(by_recipe.content, shape)

    adhoc = service.client.simulate_get(f"/t/unsafe/resize:w=40/{shape.url}/format:t={shape.format}/{image_id}")
    assert adhoc.status_code == 200, adhoc.text
    check(adhoc.content, shape)

    recipe = service.derivatives.recipe("old")
    key = service.store.derived_key("old", recipe.digest, image_id, old_registry.encoder(shape.format).extension)
    service.store.delete(key)  # rendered by the request above: the job must make it again
    handler = JobHandler.from_settings(service.derivatives, service.settings)
    assert run_job(handler, RetryPolicy(retries=0), Job(image_id, ("old",))).action == "done"
    check(service.store.get(key), shape)


def test_a_contract_1_0_step_reading_ctx_metadata_gets_the_fields_and_a_deprecation(
        old_registry: Registry, tmp_path: Path, jpeg: bytes):
    shape = SHAPES[0]
    (tmp_path / "old.yaml").write_text(recipe_yaml(shape))
    with pytest.warns(PixlineDeprecationWarning, match="plugin 'tintbar' from pixline-tintbar 1.0.0: "
                                                       r"Context.metadata is deprecated since contract 1.1: read ctx.fields"):
        data = render(tmp_path / "old.yaml", jpeg, fields={"owner": "Ada"}, registry=old_registry)
    check(data, Shape(**{**vars(shape), "colour": (0, 255, 0)}))  # green: it saw the owner field
    assert any("Context.metadata" in m for m in old_registry.plugins["tintbar"].deprecations)


def test_plugins_check_fails_on_a_deprecated_plugin_and_plain_listing_does_not(site: Path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    command = [sys.executable, "-m", "pixline.server.commands", "plugins"]
    listing = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert listing.returncode == 0, listing.stderr
    assert "tintbar      deprecated pixline-tintbar 1.0.0  steps: tintbar; encoders: tiff_tintbar" in listing.stdout
    checked = subprocess.run([*command, "--check"], capture_output=True, text=True, timeout=120, env=env)
    assert checked.returncode == 1


def test_a_broken_plugin_costs_only_the_recipes_and_urls_that_need_it(old_registry: Registry, make_service,
                                                                        tmp_path: Path, jpeg: bytes):
    import types

    from pixline.engine import RecipeError, Step, hookimpl

    class Smudge(Step):
        name = "smudge"

        def apply(self, image, palette):  # asks for what the contract does not have
            return image

    @hookimpl
    def pixline_register_steps(register):
        register(Smudge)

    old_registry.add("smudge", types.SimpleNamespace(pixline_register_steps=pixline_register_steps),
                     "pixline-smudge", "0.1", strict=False)
    assert old_registry.plugins["smudge"].status == "broken"
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "fine.yaml").write_text(recipe_yaml(SHAPES[2]))
    service = make_service(plugins=old_registry, recipes=str(recipes), allow_unsafe=True)
    image_id = service.upload(jpeg)
    assert service.client.simulate_get(f"/r/fine/{image_id}").status_code == 200

    refused = service.client.simulate_get(f"/t/unsafe/smudge/{image_id}")
    assert refused.status_code == 400
    assert "step 'smudge' is from plugin 'smudge' from pixline-smudge 0.1, which is broken: step 'smudge': " \
           "apply() asks for 'palette'" in refused.json["detail"]

    (recipes / "smudged.yaml").write_text("steps:\n  - smudge: {}\n")
    with pytest.raises(RecipeError, match=f"{recipes / 'smudged.yaml'}: step 1: step 'smudge' is from plugin "
                                          "'smudge' from pixline-smudge 0.1, which is broken"):
        make_service(plugins=old_registry, recipes=str(recipes))  # a process with this recipe does not start

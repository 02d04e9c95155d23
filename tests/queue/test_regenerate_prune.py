"""``pixline regenerate --prune``: the outputs old digests left behind go, the current ones stay."""
from __future__ import annotations

import shutil

import pytest

from pixline.server.commands.wiring import make_derivatives
from pixline.server.settings import Settings

from .helpers import RECIPES, store_photo


@pytest.fixture
def derivatives(store_url: str):
    return make_derivatives(Settings(store=store_url, recipes=str(RECIPES)))


def test_regenerate_prune_deletes_only_outputs_under_digests_no_recipe_has(store_url, derivatives,
                                                                           photo_bytes, capsys,
                                                                           monkeypatch, tmp_path) -> None:
    """After a recipe is edited (or a plugin upgraded) its old outputs stay in the store, served by
    nothing: --prune removes them and keeps the current ones and every ad-hoc output."""
    from pixline.server.commands.cli import main

    monkeypatch.delenv("PIXLINE_AMQP", raising=False)
    image_id = store_photo(derivatives.store, photo_bytes)
    recipes = tmp_path / "recipes"
    shutil.copytree(RECIPES, recipes)
    args = ["--store", store_url, "--recipes", str(recipes)]
    assert main(["regenerate", "lazy", *args]) == 0
    old_key, = derivatives.store.derived_keys(image_id)
    adhoc_key = derivatives.store.derived_key("adhoc", "0123456789abcdef", image_id, "jpg")
    derivatives.store.put_derived(adhoc_key, b"ad-hoc bytes")
    (recipes / "lazy.yaml").write_text((recipes / "lazy.yaml").read_text().replace("width: 100", "width: 90"))
    assert main(["regenerate", "lazy", *args]) == 0  # the edited recipe: a new digest, a new output
    new_key = next(k for k in derivatives.store.derived_keys(image_id) if k not in (old_key, adhoc_key))
    capsys.readouterr()

    assert main(["regenerate", "--prune", "--dry-run", *args]) == 0
    assert capsys.readouterr().out == "would delete 1 output(s) under digests no recipe has any more\n"
    assert main(["regenerate", "--prune", *args]) == 0
    assert capsys.readouterr().out == "deleted 1 output(s) under digests no recipe has any more\n"
    assert sorted(derivatives.store.derived_keys(image_id)) == sorted([adhoc_key, new_key])
    assert not derivatives.store.exists(old_key) and derivatives.store.get(new_key)
    assert main(["regenerate", *args]) == 1  # no recipe and no --prune: say what is missing

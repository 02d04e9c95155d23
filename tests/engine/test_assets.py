"""Asset references: files of the asset folder and stored ``assets/NAME``, and what is refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from pixline.engine import NotFoundError, ParameterError, Registry
from pixline.engine.assets import AssetLoader
from pixline.engine.derivatives import Derivatives
from pixline.engine.storage import Store


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    recipes = tmp_path / "recipes"
    (recipes / "logos").mkdir(parents=True)
    (recipes / "logo.png").write_bytes(b"logo")
    (recipes / "logos" / "small.png").write_bytes(b"small")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    return recipes


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"file://{tmp_path / 'store'}")
    store.put("assets/mark.png", b"stored")
    return store


def test_files_are_read_relative_to_the_folder(folder: Path) -> None:
    load = AssetLoader(folder)
    assert load("logo.png") == b"logo"
    assert load("logos/small.png") == b"small"
    assert load("logos/../logo.png") == b"logo"


@pytest.mark.parametrize("ref", ["../secret.txt", "logos/../../secret.txt", ".", "link.txt"])
def test_paths_leading_out_of_the_folder_are_refused(folder: Path, ref: str) -> None:
    (folder / "link.txt").symlink_to(folder.parent / "secret.txt")
    with pytest.raises(ParameterError, match="is outside the asset folder"):
        AssetLoader(folder)(ref)


@pytest.mark.parametrize("with_folder", [True, False])
def test_absolute_paths_are_refused(folder: Path, with_folder: bool) -> None:
    ref = str(folder / "logo.png")  # even one inside the folder: a recipe names assets relatively
    with pytest.raises(ParameterError) as err:
        AssetLoader(folder if with_folder else None)(ref)
    assert str(err.value) == (f"asset {ref!r} is an absolute path: give a path relative to the asset "
                              "folder (the recipe's folder)")


def test_missing_files_and_a_missing_folder_are_not_found(folder: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        AssetLoader(folder)("nope.png")
    assert str(err.value) == f"asset 'nope.png' not found in {folder.resolve()}"
    with pytest.raises(NotFoundError, match="no asset folder is configured"):
        AssetLoader(None)("logo.png")


def test_stored_assets(folder: Path, store: Store) -> None:
    assert AssetLoader(folder, store)("store:mark.png") == b"stored"
    with pytest.raises(NotFoundError, match="no object at assets/gone.png"):
        AssetLoader(folder, store)("store:gone.png")
    for bad in ("store:../x", "store:a/b", "store:", "store:.hidden", "store:a..b", "store:mark.png\n"):
        with pytest.raises(ParameterError, match="is not valid"):
            AssetLoader(folder, store)(bad)


def test_stored_assets_without_a_store_are_a_clear_error(folder: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        AssetLoader(folder)("store:mark.png")
    assert str(err.value) == (f"asset 'store:mark.png': no store is configured, so 'store:' assets "
                              f"cannot be loaded; use a file in {folder.resolve()}")


def test_derivatives_load_assets_through_the_loader(folder: Path, store: Store) -> None:
    derivatives = Derivatives(store, Registry(), {}, asset_dir=folder)
    assert derivatives.load_asset("logo.png") == b"logo"
    assert derivatives.load_asset("store:mark.png") == b"stored"
    with pytest.raises(ParameterError, match="is an absolute path"):
        derivatives.load_asset(str(folder / "logo.png"))

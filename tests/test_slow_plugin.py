"""The test-only ``slow`` plugin (tests/slowplugin/): found through its path, never installed."""
from __future__ import annotations

import importlib.metadata

from tests import slow


def test_its_folder_on_the_path_is_a_distribution_with_the_entry_point() -> None:
    [dist] = importlib.metadata.distributions(path=[str(slow.PLUGIN_DIR)])
    assert dist.metadata["Name"] == "pixline-test-slow"
    assert [(ep.group, ep.name, ep.value) for ep in dist.entry_points] == [
        ("pixline", "slow", "pixline_test_slow")]


def test_it_is_not_installed_in_the_environment() -> None:
    assert "slow" not in {ep.name for ep in importlib.metadata.entry_points(group="pixline")}
    assert "pixline-test-slow" not in {d.metadata["Name"] for d in importlib.metadata.distributions()}


def test_registered_in_code_it_adds_the_slow_step_under_its_distribution() -> None:
    registry = slow.registry()
    assert registry.step("slow").Params(seconds=0.5).seconds == 0.5
    # As a subprocess finds it, so recipes using it have one digest in both processes.
    assert (registry.plugins["slow"].distribution, registry.plugins["slow"].version) == (
        "pixline-test-slow", "0.1")

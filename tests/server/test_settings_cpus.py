"""The default worker count is the CPUs a process can use, not the host's (server/settings.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixline.server.settings import Settings, available_cpus


@pytest.fixture
def eight_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


def test_a_container_cpu_limit_bounds_the_count_rounded_up(eight_cpus, tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs (docker --cpus 1.5, a pod's limit of 1500m)
    assert available_cpus(cpu_max) == 2
    cpu_max.write_text("50000 100000\n")  # half a CPU: still one worker
    assert available_cpus(cpu_max) == 1
    cpu_max.write_text("2000000 100000\n")  # a limit above the CPUs it may run on
    assert available_cpus(cpu_max) == 8


def test_without_a_limit_it_is_the_cpus_the_process_may_run_on(eight_cpus, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert available_cpus(cpu_max) == 8
    assert available_cpus(tmp_path / "absent") == 8  # no cgroup v2
    cpu_max.write_text("garbled")
    assert available_cpus(cpu_max) == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)  # a cpuset of one
    assert available_cpus(tmp_path / "absent") == 1


def test_the_workers_default_follows_and_the_setting_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pixline.server.settings.available_cpus", lambda: 3)
    assert Settings.load(environ={}, flags={}).workers == 3
    assert Settings.load(environ={"PIXLINE_WORKERS": "1"}, flags={}).workers == 1

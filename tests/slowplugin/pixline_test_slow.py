"""A test-only pixline plugin: the ``slow`` step holds a render for ``seconds``, then passes the image on.

Never installed: tests put this folder on the path (``PYTHONPATH`` for a subprocess, see
``tests/slow.py``), where ``pixline_test_slow-0.1.dist-info`` makes its entry point visible to
``importlib.metadata``. It lets a test slow a render down (a worker killed mid-job, a render past its
time limit) with no test switch in production code.

Recipe: ``- slow: {seconds: 2}``. The wait ends early at the render's deadline (``ctx.deadline``) with
a :class:`~pixline.engine.errors.RenderTimeoutError`, as a step doing real work would be stopped.
"""
from __future__ import annotations

import time
from typing import Callable

import pydantic
import pyvips

from pixline.engine import Context, Step, StepParams, hookimpl


class SlowParams(StepParams):
    seconds: float = pydantic.Field(ge=0, le=600)


class Slow(Step):
    """Hold the render for ``seconds`` (a stand-in for an expensive step)."""

    name = "slow"
    version = "1"
    Params = SlowParams

    def apply(self, image: pyvips.Image, params: SlowParams, ctx: Context) -> pyvips.Image:
        end = time.monotonic() + params.seconds
        while (left := end - time.monotonic()) > 0:
            ctx.deadline.check("in the slow step")
            # Wake at the deadline if it comes first, so the stop is not late by a polling interval.
            time.sleep(max(0.0, min(left, ctx.deadline.remaining())))
        ctx.deadline.check("in the slow step")
        return image


@hookimpl
def pixline_register_steps(register: Callable[[type[Step]], None]) -> None:
    register(Slow)

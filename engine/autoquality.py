"""``quality: auto`` (contract 2.5): the lowest quality whose output scores at least a perceptual
target, found by a few encodes at the output size (docs/architecture.md, "Auto quality").

The search is a bracketing one: a first quality from the target, then steps on the score's slope
until a quality that passes and one that fails are known, then interpolation between them, at most
:data:`MAX_TRIALS` encodes. Scores are deterministic, so the same image, recipe and plugin versions
give the same quality and bytes; a search the render's deadline would cut short is not made, and the
recipe's default quality is used instead (:attr:`Choice.fallback`: logged, counted, never stored).
"""
from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import pyvips

from . import contract
from .deadline import Deadline
from .normalise import normalise

log = logging.getLogger(__name__)

#: The named targets, on the SSIMULACRA 2 scale (80: about what q80 gives an average photo).
TARGETS = {"auto": 80.0, "auto:high": 85.0, "auto:eco": 70.0}
#: A numeric target's range: below 30 SSIMULACRA 2 means visibly damaged; 100 is lossless.
TARGET_RANGE = (30.0, 99.0)
TARGET_RE = re.compile(r"auto(?::(high|eco|\d{1,2}(?:\.\d{1,2})?))?")
#: At most this many encodes per output ("a handful").
MAX_TRIALS = 6
#: Points of score per step of quality, before two trials have measured it (JPEG/WebP photos: ~0.4–0.8).
SLOPE = 0.6
#: A trial is started only when the deadline leaves this many times the last trial's time.
MARGIN = 2.0


def parse_target(value: str) -> float:
    """``auto`` → 80, ``auto:high`` → 85, ``auto:eco`` → 70, ``auto:75`` → 75; ``ValueError`` else."""
    match = TARGET_RE.fullmatch(value) if isinstance(value, str) else None
    if match and (value in TARGETS or match.group(1) is None):
        return TARGETS.get(value, TARGETS["auto"])
    if match and TARGET_RANGE[0] <= float(match.group(1)) <= TARGET_RANGE[1]:
        return float(match.group(1))
    raise ValueError(f"{value!r} is not a quality: give a number 1–100, or auto (SSIMULACRA 2 target 80), "
                     f"auto:high (85), auto:eco (70) or auto:N for a target N from {TARGET_RANGE[0]:g} "
                     f"to {TARGET_RANGE[1]:g} (in a URL: auto-high, auto-75)")


@dataclass(frozen=True)
class Choice:
    """What a search chose: the quality, its score, how many encodes it took; ``fallback`` says why the
    recipe's default quality was used instead ("" when the search ran)."""

    quality: int | None
    score: float | None
    trials: int
    fallback: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"quality": self.quality, "score": None if self.score is None else round(self.score, 2),
                "trials": self.trials}


def first_guess(target: float, qualities: tuple[int, int]) -> int:
    """Where a search starts: 60 % up the encoder's range for target 80, moved with the target."""
    low, high = qualities
    return min(max(round(low + 0.6 * (high - low) + (target - TARGETS["auto"]) / SLOPE), low), high)


def _slope(points: dict[int, float]) -> float:
    """Points of score per quality step, measured between the two trials given (else :data:`SLOPE`)."""
    if len(points) < 2:
        return SLOPE
    (q1, s1), (q2, s2) = sorted(points.items())[:2]
    return (s2 - s1) / (q2 - q1) if s2 > s1 else SLOPE


def _next(passing: dict[int, float], failing: dict[int, float], target: float,
          qualities: tuple[int, int]) -> int | None:
    """The next quality to try, or ``None`` when the lowest passing quality is known."""
    low, high = qualities
    best = min(passing) if passing else None
    worst = max(failing) if failing else None
    if best is not None and worst is not None:
        if best - worst <= 1:
            return None
        slope = (passing[best] - failing[worst]) / (best - worst)
        guess = worst + math.ceil((target - failing[worst]) / slope) if slope > 0 else (best + worst) // 2
        return min(max(guess, worst + 1), best - 1)
    if best is not None:  # everything tried passes: step down, on the slope of the two lowest
        lowest_two = dict(sorted(passing.items())[:2])
        step = max(2, math.ceil((passing[best] - target) / _slope(lowest_two)))
        return None if best == low else max(low, best - step)
    assert worst is not None  # everything tried fails: step up, on the slope of the two highest
    highest_two = dict(sorted(failing.items())[-2:])
    step = max(2, math.ceil((target - failing[worst]) / _slope(highest_two)))
    return None if worst == high else min(high, worst + step)


def search(encode: Callable[[int], bytes], image: pyvips.Image, metric: Any, target: float,
           qualities: tuple[int, int], deadline: Deadline) -> tuple[bytes | None, Choice]:
    """The bytes of the lowest quality in ``qualities`` whose output of ``image`` scores at least
    ``target`` on ``metric`` (the highest quality, when none does), and the :class:`Choice`.

    ``encode(quality)`` returns the encoder's bytes. A search ``deadline`` would cut short returns
    the best passing output found so far, or ``None`` when there is none, with ``Choice.fallback``
    saying why (a first trial costs about one encode and two scorings).
    """
    started = time.monotonic()
    reference = contract.call(metric, "prepare", image=image)
    passing: dict[int, float] = {}
    failing: dict[int, float] = {}
    outputs: dict[int, bytes] = {}
    quality: int | None = first_guess(target, qualities)
    last = time.monotonic() - started
    while quality is not None and len(outputs) < MAX_TRIALS:
        if deadline.remaining() < MARGIN * last:
            why = (f"the search would overrun the deadline ({len(outputs)} trials in "
                   f"{time.monotonic() - started:.2f} s)")
            if not passing:
                return None, Choice(None, None, len(outputs), fallback=why)
            # A passing output, maybe not the smallest: served, never stored (the bytes of a search
            # cut short depend on the machine's speed, and a key names one set of bytes).
            best = min(passing)
            return outputs[best], Choice(best, passing[best], len(outputs), fallback=why)
        trial = time.monotonic()
        outputs[quality] = encode(quality)
        decoded = normalise(pyvips.Image.new_from_buffer(outputs[quality], ""))
        score = float(contract.call(metric, "score", reference=reference, image=decoded))
        (passing if score >= target else failing)[quality] = score
        last = time.monotonic() - trial
        quality = _next(passing, failing, target, qualities)
    chosen = min(passing) if passing else max(failing)
    scores = {**passing, **failing}
    log.debug("auto quality: %s → q%d (%.2f ≥ %.1f?) in %d trials", sorted(scores.items()), chosen,
              scores[chosen], target, len(outputs))
    return outputs[chosen], Choice(chosen, scores[chosen], len(outputs))


def encode(call: Callable[[Any], bytes], image: pyvips.Image, spec: Any, encoder: Any, metric: Any,
           deadline: Deadline, quality: int | None = None) -> tuple[bytes, Choice]:
    """``spec``'s output of ``image`` through ``call(spec)`` (the encoder's ``encode``): at
    ``quality`` when a search chose it before, else searched; the recipe's default quality (the
    spec's without a target) when the search does not fit in ``deadline``, logged."""
    if quality is not None:
        return call(replace(spec, quality=quality)), Choice(quality, None, 0)
    data, choice = search(lambda q: call(replace(spec, quality=q)), image, metric, spec.target,
                          encoder.qualities, deadline)
    if choice.fallback:
        log.warning("quality: auto for %s: %s; %s", encoder.name, choice.fallback,
                    "the best passing output so far is served" if data is not None
                    else "the recipe's default quality is used")
    if data is None:
        data = call(replace(spec, target=None, quality=None))
    return data, choice

"""The plugin contract's shared helpers: gravities."""
from __future__ import annotations

import pytest

from pixline.engine import Gravity


@pytest.mark.parametrize("gravity", list(Gravity))
def test_only_attention_and_entropy_are_smart(gravity: Gravity) -> None:
    assert gravity.is_smart == (gravity.value in ("attention", "entropy"))

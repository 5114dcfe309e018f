"""``memory_peak.growth``: how far a call raises the process's resident memory at its peak."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from service import memory_peak

pytestmark = pytest.mark.skipif(sys.platform != "linux" or not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")


def test_a_call_that_touches_64_mib_grows_by_them_and_an_idle_one_by_little() -> None:
    def touch() -> int:
        block = np.ones(64 << 20, np.uint8)  # every page written
        return int(block[:: 1 << 12].sum())

    result, grown = memory_peak.growth(touch)
    assert result == 16384
    assert grown is not None and grown >= 63 << 20
    _, idle = memory_peak.growth(lambda: None)
    assert idle is not None and idle < 8 << 20  # the block was freed, and trimmed before this call


def test_the_peak_counts_although_the_memory_is_freed_before_the_call_returns() -> None:
    def peak_then_free() -> None:
        for _ in range(3):
            block = np.ones(32 << 20, np.uint8)
            del block

    _, grown = memory_peak.growth(peak_then_free)
    assert grown is not None and grown >= 31 << 20

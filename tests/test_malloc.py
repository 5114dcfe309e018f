"""``keep_freed_memory``: a request's large arrays reuse freed pages instead of faulting fresh ones in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import sys
from pathlib import Path
import numpy as np
from service.malloc import keep_freed_memory

def faults():
    return int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[7])

def churn():
    before = faults()
    for _ in range(20):  # a request's pattern: several large arrays alive at once, all freed at the end
        arrays = [np.ones(16 << 20, np.uint8) for _ in range(3)]  # 3 x 16 MiB, every page touched
        del arrays
    return faults() - before

if sys.argv[1] == "tuned":
    assert keep_freed_memory()
churn()  # first touch of the heap happens here in either mode
print(churn())
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists() or sys.platform != "linux", reason="needs Linux /proc and glibc")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    root = Path(__file__).resolve().parent.parent

    def run(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=root, capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    default, tuned = run("default"), run("tuned")
    assert default > 20 * 500  # glibc gives part of the freed 48 MiB back and faults it in again, every time
    assert tuned < 200  # kept in the heap: the same pages again

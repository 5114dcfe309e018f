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


ARENAS_PROBE = """
import ctypes, ctypes.util, sys, tempfile, threading
import numpy as np
from service.malloc import limit_arenas

if sys.argv[1] != "0":
    assert limit_arenas(int(sys.argv[1]))
barrier = threading.Barrier(8)
kept = []

def work():
    barrier.wait()  # all eight threads alive at once, each making its first small arrays
    kept.append([np.ones(1000) for _ in range(50)])

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as f:
    fp = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    print(open(f.name).read().count("<heap nr="))
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists() or sys.platform != "linux", reason="needs Linux /proc and glibc")
def test_arena_limit_caps_the_heaps_threads_spread_over() -> None:
    root = Path(__file__).resolve().parent.parent

    def heaps(limit: int) -> int:
        out = subprocess.run([sys.executable, "-c", ARENAS_PROBE, str(limit)], cwd=root, capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    assert heaps(0) > 2  # glibc's default: new threads take arenas of their own (up to 8 per core)
    assert heaps(2) <= 2
    assert heaps(1) == 1

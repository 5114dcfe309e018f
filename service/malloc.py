"""Process memory allocator settings (glibc).

Each Segment request allocates tens of MiB of short-lived arrays (the 1024x1024 SAM input, CAM
batches at four scales, model outputs). With glibc's defaults, blocks that large are mapped
afresh and given back to the kernel when freed, so every request faults its pages in again
(about 1,500 page faults per Segment request measured here, each costly in a VM). Raising the
mmap and trim thresholds keeps freed memory in the process for the next request instead: the
resident size settles at the peak working set and stays there.

glibc also gives threads malloc arenas of their own, up to 8 per core. After a mix of concurrent
large requests, pages of the gRPC workers' arenas stayed resident even after ``trim`` (up to 29
MiB an arena, bench/load_test.py --hostile): ``limit_arenas`` caps their number
(``WSSS_MALLOC_ARENAS``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def _mallopt() -> Callable[[int, int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt  # type: ignore[no-any-return]


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Serve allocations below ``mmap_threshold`` bytes from the heap and keep up to
    ``trim_threshold`` bytes of free heap instead of returning it to the kernel.

    Returns:
        True when applied; False where the C library is not glibc (nothing changes).
    """
    mallopt = _mallopt()
    if mallopt is None:
        log.info("malloc tuning skipped: no glibc mallopt in this C library")
        return False
    applied = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
    if applied:
        log.info("malloc: mmap threshold %d MiB, trim threshold %d MiB", mmap_threshold >> 20, trim_threshold >> 20)
    else:
        log.warning("malloc tuning refused by the C library (mmap %d, trim %d bytes)", mmap_threshold, trim_threshold)
    return applied


def limit_arenas(arenas: int) -> bool:
    """Let glibc create at most ``arenas`` malloc arenas (``M_ARENA_MAX``); call it before the
    server's threads start (arenas already made stay). 0 leaves glibc's default (8 per core).

    Returns:
        True when applied; False for 0 or where the C library is not glibc.
    """
    if arenas <= 0:
        return False
    mallopt = _mallopt()
    if mallopt is None:
        log.info("malloc arena limit skipped: no glibc mallopt in this C library")
        return False
    applied = bool(mallopt(M_ARENA_MAX, arenas))
    if applied:
        log.info("malloc: at most %d arenas", arenas)
    else:
        log.warning("malloc arena limit %d refused by the C library", arenas)
    return applied


def trim() -> bool:
    """Give free heap memory back to the kernel (glibc ``malloc_trim(0)``, every arena).

    Called after a large request so the resident size returns near its warm level, while small
    requests keep reusing the memory ``keep_freed_memory`` holds. Returns False where the C
    library has no malloc_trim.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True

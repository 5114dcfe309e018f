"""How far one call raises this process's resident memory at its peak (Linux).

The admission estimates (``WSSS_MAX_REQUEST_BYTES``, the server's memory budget) scale with the
request's pixels; a model whose input has a fixed size, SAM's image encoder (1024 x 1024), costs
the same for every image, and what it costs depends on the model plugged in (the default encoder
about 40 MiB a run, segment-anything's ViT-B 1.8 GiB on 2 CPU cores). ``growth`` measures it where it runs:
freed heap handed back first (``malloc.trim``), the kernel's peak resident size (VmHWM) reset to
the current size (``/proc/self/clear_refs``), the call run, the peak read. A model run in another
process (Triton) or in GPU memory raises it by what this process holds of it only. The process's
VmHWM then counts from that call: a reader of it (a benchmark's peak) sees the peak since the
last model load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from service import malloc

log = logging.getLogger(__name__)

T = TypeVar("T")

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    for line in STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def growth(call: Callable[[], T]) -> tuple[T, int | None]:
    """``call()``'s result and how many bytes the resident size rose above its level before the
    call, at its peak; None where the kernel cannot tell (no /proc, or the peak cannot be reset).

    Other threads' allocations during the call count too (more, never less, unless they free
    memory meanwhile): measure where little else runs. A model loaded by a reload under traffic
    is measured beside that traffic.
    """
    try:
        malloc.trim()
        before = _status_bytes("VmRSS")
        CLEAR_REFS.write_text("5")
    except OSError as e:
        log.info("peak memory not measured: %s", e)
        return call(), None
    result = call()
    try:
        peak = _status_bytes("VmHWM")
    except OSError:
        return result, None
    if before is None or peak is None:
        return result, None
    return result, max(0, peak - before)

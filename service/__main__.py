"""``python -m service``: run the WeakSeg gRPC server with settings from ``WSSS_*`` variables."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from service.api.server import serve
from service.blas import one_blas_thread
from service.malloc import keep_freed_memory, limit_arenas
from service.settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.keep_freed_memory:
        keep_freed_memory()
    limit_arenas(settings.malloc_arenas)
    one_blas_thread()
    asyncio.run(serve(settings))
    deadline = time.monotonic() + 0.3
    for worker in [t for t in threading.enumerate() if t.name.startswith("wsss-worker")]:
        worker.join(max(0.0, deadline - time.monotonic()))
    busy = [t for t in threading.enumerate() if t.name.startswith("wsss-worker") and t.is_alive()]
    if busy:  # still inside one long model call: exiting must not wait for it (grace + 2 s at most)
        logging.getLogger(__name__).warning("exiting with %d worker(s) still busy", len(busy))
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()

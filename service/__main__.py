"""``python -m service``: run the WeakSeg gRPC server with settings from ``WSSS_*`` variables."""

from __future__ import annotations

import asyncio
import logging

from service.api.server import serve
from service.malloc import keep_freed_memory
from service.settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.keep_freed_memory:
        keep_freed_memory()
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()

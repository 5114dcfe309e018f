"""``python -m service``: run the WeakSeg gRPC server with settings from ``WSSS_*`` variables."""

from __future__ import annotations

import asyncio
import logging

from service.api.server import serve
from service.settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()

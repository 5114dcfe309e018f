"""A server on its own event loop in a background thread: for tests, benchmarks and notebooks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc
from prometheus_client import CollectorRegistry

from service.api.server import Server, create_server
from service.settings import Settings

T = TypeVar("T")


class BackgroundServer:
    """Create and start a server (models loaded, health set) on a private event loop.

    Attributes:
        address: ``host:port`` to connect to.
        registry: the server's isolated Prometheus registry.
    """

    def __init__(self, settings: Settings, start_timeout: float = 300.0) -> None:
        self.registry = CollectorRegistry()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wsss-server-loop", daemon=True)
        self.thread.start()
        self.server: Server = self.call(self._create(settings))
        self.call(self.server.start(), timeout=start_timeout)
        self.address = f"localhost:{self.server.port}"

    async def _create(self, settings: Settings) -> Server:
        return create_server(settings, self.registry)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def channel(self, max_message: int = 64 * 1024 * 1024) -> grpc.Channel:
        opts = [("grpc.max_receive_message_length", max_message), ("grpc.max_send_message_length", max_message)]
        return grpc.insecure_channel(self.address, options=opts)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample of the server's registry (0 when absent)."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def inference_count(self, model: str) -> float:
        """Inferences model ``model`` has run, on any provider."""
        return sum(s.value for m in self.registry.collect() if m.name == "wsss_model_inference_seconds" for s in m.samples
                   if s.name.endswith("_count") and s.labels.get("model") == model)

    def stop(self, grace: float = 0.0) -> None:
        self.call(self.server.stop(grace=grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

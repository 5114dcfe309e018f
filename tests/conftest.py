"""Shared fixtures: a real in-process gRPC server on a free port with the default models."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from prometheus_client import CollectorRegistry

from service.api.server import Server, create_server
from service.settings import REPO_ROOT, Settings
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

DEFAULT_REPO = REPO_ROOT / "model_repo"


class RunningServer:
    """A ``service.api.server.Server`` running on its own event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Server = self.call(self._create(settings))
        self.call(self.server.start(), timeout=300)
        self.address = f"localhost:{self.server.port}"

    async def _create(self, settings: Settings) -> Server:
        return create_server(settings, self.registry)

    def call(self, coro: object, timeout: float = 60) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def channel(self, max_message: int = 64 * 1024 * 1024) -> grpc.Channel:
        opts = [("grpc.max_receive_message_length", max_message), ("grpc.max_send_message_length", max_message)]
        return grpc.insecure_channel(self.address, options=opts)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def stop(self) -> None:
        self.call(self.server.stop(grace=0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {"host": "127.0.0.1", "port": 0, "model_repo": DEFAULT_REPO, "worker_threads": 2, "metrics_enabled": False}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    running = RunningServer(test_settings())
    yield running
    running.stop()


@pytest.fixture(scope="session")
def stub(server: RunningServer) -> Iterator[pb_grpc.SegmentationServiceStub]:
    with server.channel() as channel:
        yield pb_grpc.SegmentationServiceStub(channel)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def repo_copy(tmp_path: Path) -> Path:
    """A copy of the default model repository the test may break."""
    import shutil

    dst = tmp_path / "model_repo"
    shutil.copytree(DEFAULT_REPO, dst)
    return dst

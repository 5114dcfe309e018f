"""Shared fixtures: a real in-process gRPC server on a free port with the default models."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.api.background import BackgroundServer
from service.settings import REPO_ROOT, Settings
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

DEFAULT_REPO = REPO_ROOT / "model_repo"





def make_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {"host": "127.0.0.1", "port": 0, "model_repo": DEFAULT_REPO, "worker_threads": 2, "metrics_enabled": False}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server() -> Iterator[BackgroundServer]:
    running = BackgroundServer(make_settings())
    yield running
    running.stop()


@pytest.fixture(scope="session")
def stub(server: BackgroundServer) -> Iterator[pb_grpc.SegmentationServiceStub]:
    with server.channel() as channel:
        yield pb_grpc.SegmentationServiceStub(channel)


def free_port() -> int:
    """A free TCP port on loopback (for servers started as their own processes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

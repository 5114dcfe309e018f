"""Shared fixtures: a real in-process gRPC server on a free port with the default models."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from PIL import Image

from service.api.background import BackgroundServer
from service.healthcheck import main as healthcheck
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


def serving_process(log_file: IO[str], port: int = 0, **env_overrides: str) -> tuple[subprocess.Popen[str], int, int]:
    """``python -m service`` on free loopback ports, logging to ``log_file``; returns once SERVING."""
    port, metrics_port = port or free_port(), free_port()
    env = dict(os.environ, WSSS_PORT=str(port), WSSS_METRICS_PORT=str(metrics_port), WSSS_HOST="127.0.0.1", WSSS_LOG_LEVEL="INFO")
    env.update(env_overrides)
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while healthcheck([f"127.0.0.1:{port}"]) != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("service did not become SERVING in 120 s")
        time.sleep(0.5)
    return proc, port, metrics_port


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


class RedisProcess:
    """A real ``redis-server`` on a free loopback port (no persistence), for as long as the test needs."""

    def __init__(self, tmp: Path, port: int = 0) -> None:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("WSSS_REQUIRE_REDIS"):
                raise AssertionError("WSSS_REQUIRE_REDIS is set but redis-server is not installed (.ci/run installs Debian's redis-server)")
            pytest.skip("no redis-server here (apt-get install redis-server; .ci/run installs it)")
        self.binary, self.tmp = binary, tmp
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.tmp),
             "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    running = RedisProcess(tmp_path)
    yield running
    running.kill()

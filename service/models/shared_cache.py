"""SAM image embeddings shared by replicas through Redis (``WSSS_EMBEDDING_CACHE_URL``).

Behind each replica's local LRU (``embedding_cache.CachedEncoder``): a local miss asks Redis, a
Redis miss runs the encoder and stores the result, so the next round of an interactive user on
another replica skips the encoder. Key: ``wsss:emb:<model fingerprint>:<dtype>:<pixel hash>`` (the
fingerprint tells apart encoders that share a name and version but not their weights). Value: a
small JSON header and the raw array, float32 or float16 (``WSSS_EMBEDDING_CACHE_DTYPE``). Each key
lives ``ttl_seconds``; size is Redis's business (``maxmemory`` + ``allkeys-lru``).

Redis is never needed for an answer: any error (down, slow beyond ``timeout_seconds``, full)
counts as a miss, is logged once per outage, and Redis is then skipped for ``retry_seconds``
so an outage costs no latency per request either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.models.sam import ResizeLongestSide

log = logging.getLogger(__name__)

SharedObserver = Callable[[str], None]
"""Called with ``hit``, ``miss``, ``store``, ``error`` or ``skipped`` (Redis marked down)."""

DTYPES = {"float32": np.float32, "float16": np.float16}


def model_fingerprint(path: Path | None, name: str, version: str) -> str:
    """16 hex digits identifying a model's weights: its size and first and last MiB (fast for a
    2.5 GB ViT-H), or its name and version where the file is not local (a Triton backend)."""
    h = hashlib.sha256(f"{name}:{version}".encode())
    if path is not None and path.is_file():
        size = path.stat().st_size
        h.update(str(size).encode())
        with path.open("rb") as f:
            h.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


class SharedEmbeddingStore:
    """get/put of embeddings in Redis; errors are misses."""

    def __init__(self, url: str, fingerprint: str, dtype: str = "float32", ttl_seconds: int = 3600, timeout_seconds: float = 0.25,
                 retry_seconds: float = 5.0, observer: SharedObserver | None = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if dtype not in DTYPES:
            raise ValueError(f"embedding cache dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
        self.dtype = dtype
        self.prefix = f"wsss:emb:{fingerprint}:{dtype}:"
        self.ttl_seconds = ttl_seconds
        self.retry_seconds = retry_seconds
        self.observer = observer
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds,
                                           retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0)
        self._errors = (redis.RedisError, OSError)
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.where = url.split("@")[-1]  # never log a password

    def _observe(self, result: str) -> None:
        if self.observer is not None:
            self.observer(result)

    def _available(self) -> bool:
        if time.monotonic() < self._down_until:
            self._observe("skipped")
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            first = self._down_until == 0.0 or time.monotonic() >= self._down_until + self.retry_seconds
            self._down_until = time.monotonic() + self.retry_seconds
        if first:
            log.warning("shared embedding cache at %s failed (%s: %s); going on without it, retrying every %.0f s",
                        self.where, type(exc).__name__, exc, self.retry_seconds)
        self._observe("error")

    def get(self, pixel_key: str) -> tuple[npt.NDArray[np.float32], ResizeLongestSide] | None:
        """The embedding (float32) and geometry stored for ``pixel_key``, or None."""
        if not self._available():
            return None
        try:
            value = self.client.get(self.prefix + pixel_key)
        except self._errors as exc:
            self._failed(exc)
            return None
        if value is None:
            self._observe("miss")
            return None
        try:
            if not isinstance(value, bytes):
                raise ValueError(f"a {type(value).__name__}, not bytes")
            header_bytes, data = value.split(b"\n", 1)
            header = json.loads(header_bytes)
            array = np.frombuffer(data, DTYPES[header["dtype"]]).reshape(header["shape"]).astype(np.float32)
            geometry = ResizeLongestSide(int(header["height"]), int(header["width"]), int(header["target"]))
        except (ValueError, KeyError, TypeError) as exc:  # a foreign or truncated value: a miss
            log.warning("shared embedding cache: unreadable value for %s (%s)", pixel_key[:12], exc)
            self._observe("miss")
            return None
        self._observe("hit")
        return array, geometry

    def put(self, pixel_key: str, embeddings: npt.NDArray[np.float32], geometry: ResizeLongestSide) -> None:
        """Store an embedding for ``ttl_seconds`` (silently skipped while Redis is down)."""
        if not self._available():
            return
        array = np.ascontiguousarray(np.asarray(embeddings), DTYPES[self.dtype])
        header = {"dtype": self.dtype, "shape": list(array.shape), "height": geometry.height, "width": geometry.width, "target": geometry.target}
        try:
            self.client.set(self.prefix + pixel_key, json.dumps(header).encode() + b"\n" + array.tobytes(), ex=self.ttl_seconds)
        except self._errors as exc:
            self._failed(exc)
            return
        self._observe("store")

    def close(self) -> None:
        self.client.close()

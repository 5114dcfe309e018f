"""The SAM embedding cache: hits skip the encoder, LRU eviction by bytes, keyed by pixels + version."""

from __future__ import annotations

import numpy as np

from service.models.embedding_cache import CachedEncoder, pixel_key
from service.models.sam import ImageEmbedding, ResizeLongestSide

EMB_BYTES = 256 * 64 * 64 * 4


class CountingEncoder:
    """A stand-in SAM encoder that counts its runs (a test double of the model, not of the cache)."""

    name = "sam_encoder"
    run_bytes = 0

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.runs = 0

    def embed(self, image: np.ndarray, pixels: str | None = None) -> ImageEmbedding:
        self.runs += 1
        return ImageEmbedding(np.full((1, 256, 64, 64), float(image.mean()), np.float32), ResizeLongestSide(*image.shape[:2]), self.version)

    def warmup(self) -> None:
        pass


def _img(v: int) -> np.ndarray:
    return np.full((8, 8, 3), v, np.uint8)


def test_second_request_on_same_pixels_skips_the_encoder() -> None:
    enc = CountingEncoder()
    seen: list[bool] = []
    cache = CachedEncoder(enc, 10 * EMB_BYTES, seen.append)  # type: ignore[arg-type]
    a = cache.embed(_img(1))
    b = cache.embed(_img(1).copy())
    assert enc.runs == 1 and a is b and seen == [False, True]


def test_lru_eviction_keeps_within_bytes() -> None:
    enc = CountingEncoder()
    cache = CachedEncoder(enc, 2 * EMB_BYTES)  # type: ignore[arg-type]
    cache.embed(_img(1))
    cache.embed(_img(2))
    cache.embed(_img(1))  # 1 is now most recent
    cache.embed(_img(3))  # evicts 2
    assert len(cache) == 2 and cache.size_bytes == 2 * EMB_BYTES
    runs = enc.runs
    cache.embed(_img(1))
    assert enc.runs == runs
    cache.embed(_img(2))
    assert enc.runs == runs + 1


def test_disabled_and_version_and_shape_in_key() -> None:
    enc = CountingEncoder()
    off = CachedEncoder(enc, 0)  # type: ignore[arg-type]
    off.embed(_img(1))
    off.embed(_img(1))
    assert enc.runs == 2 and len(off) == 0
    assert pixel_key(np.zeros((2, 8, 3), np.uint8)) != pixel_key(np.zeros((8, 2, 3), np.uint8))
    v1, v2 = CountingEncoder("1"), CountingEncoder("2")
    c1, c2 = CachedEncoder(v1, EMB_BYTES), CachedEncoder(v2, EMB_BYTES)  # type: ignore[arg-type]
    assert c1.embed(_img(5)).encoder_version == "1" and c2.embed(_img(5)).encoder_version == "2"

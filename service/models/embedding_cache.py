"""LRU cache of SAM image embeddings, bounded in bytes, keyed by the decoded pixels and the encoder
version; optionally in front of a cache shared by replicas (``shared_cache``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from service.models.lru import BytesLRU
from service.models.sam import ImageEmbedding, SamEncoder
from service.models.shared_cache import SharedEmbeddingStore

CacheObserver = Callable[[bool], None]
"""Called with True on a hit, False on a miss."""


def pixel_key(image: npt.NDArray[np.uint8]) -> str:
    """SHA-256 of the decoded pixels and their shape: equal for equal images whatever their encoding."""
    h = hashlib.sha256(np.ascontiguousarray(image).data)
    h.update(repr(image.shape).encode())
    return h.hexdigest()


class CachedEncoder:
    """``SamEncoder.embed`` with an LRU cache in front; at most ``max_bytes`` of embeddings are kept.

    A second request on the same image (new prompts, an interactive round) skips the encoder.
    ``max_bytes`` = 0 disables the local cache. With ``shared``, a local miss asks it before
    running the encoder, and a fresh embedding is stored there for the other replicas.
    """

    def __init__(self, encoder: SamEncoder, max_bytes: int, observer: CacheObserver | None = None,
                 shared: SharedEmbeddingStore | None = None) -> None:
        self.encoder = encoder
        self.shared = shared
        self.name = encoder.name
        self.version = encoder.version
        self.max_bytes = max_bytes
        self.observer = observer
        self._lru: BytesLRU[ImageEmbedding] = BytesLRU(max_bytes, lambda e: e.embeddings.nbytes)

    @property
    def size_bytes(self) -> int:
        return self._lru.size_bytes

    def __len__(self) -> int:
        return len(self._lru)

    def _compute(self, image: npt.NDArray[np.uint8], pixels: str) -> ImageEmbedding:
        """A local miss: the shared cache's embedding, or the encoder's (then shared)."""
        if self.shared is None:
            return self.encoder.embed(image)
        found = self.shared.get(pixels)
        if found is not None:
            return ImageEmbedding(found[0], found[1], self.encoder.version)
        embedding = self.encoder.embed(image)
        self.shared.put(pixels, np.asarray(embedding.embeddings), embedding.geometry)
        return embedding

    def embed(self, image: npt.NDArray[np.uint8], pixels: str | None = None) -> ImageEmbedding:
        """The embedding of ``image`` uint8 [H, W, 3], from the cache when present; ``pixels`` is
        ``pixel_key(image)`` when the caller has it already (hashed once per request)."""
        if self.max_bytes <= 0 and self.shared is None:
            return self.encoder.embed(image)
        pixels = pixel_key(image) if pixels is None else pixels
        if self.max_bytes <= 0:
            return self._compute(image, pixels)
        key = (pixels, self.encoder.version)
        hit = self._lru.get(key)
        if self.observer is not None:
            self.observer(hit is not None)
        if hit is not None:
            return hit
        embedding = self._compute(image, pixels)
        self._lru.put(key, embedding)
        return embedding

    @property
    def run_bytes(self) -> int:
        """The working memory one run of the encoder takes (``SamEncoder.run_bytes``)."""
        return self.encoder.run_bytes

    def take_entries(self, other: CachedEncoder) -> None:
        """Keep ``other``'s cached embeddings and its encoder's measured run (a reload that did not
        change the encoder: its session is taken over warm and not measured again)."""
        if self.encoder.measured_bytes is None:
            self.encoder.measured_bytes = other.encoder.measured_bytes
        for key, embedding in other._lru.items():
            self._lru.put(key, embedding, evict=False)

    def warmup(self) -> ImageEmbedding:
        return self.encoder.warmup()

"""LRU cache of an image's multi-scale CAMs and classifier outputs, bounded in bytes.

Beside SAM's embedding cache: a second round on a known image (new clicks or boxes, an
interactive session) skips the classifier too, and runs only the decoder and what follows it.
Key: the decoded working pixels, the classifier (name and version) and the CAM settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from service.models.cam_classifier import CamClassifier
from service.models.embedding_cache import pixel_key
from service.models.lru import BytesLRU
from service.pipeline.cam import CamResult, multiscale_cams

CacheObserver = Callable[[bool], None]
"""Called with True on a hit, False on a miss."""


def _size(result: CamResult) -> int:
    return result.cams.nbytes + result.probabilities.nbytes + (result.features.nbytes if result.features is not None else 0)


class CamCache:
    """``multiscale_cams`` with an LRU in front; ``max_bytes`` = 0 turns it off."""

    def __init__(self, max_bytes: int, observer: CacheObserver | None = None) -> None:
        self.max_bytes = max_bytes
        self.observer = observer
        self._lru: BytesLRU[CamResult] = BytesLRU(max_bytes, _size)

    @property
    def size_bytes(self) -> int:
        return self._lru.size_bytes

    def __len__(self) -> int:
        return len(self._lru)

    def cams(
        self, classifier: CamClassifier, image: npt.NDArray[np.uint8], scales: Sequence[float], flip: bool, pixels: str | None = None
    ) -> CamResult:
        """The CAMs of ``image`` (uint8 [H, W, 3]) by ``classifier``, from the cache when present;
        ``pixels`` is ``pixel_key(image)`` when the caller has it already."""
        if self.max_bytes <= 0:
            return multiscale_cams(classifier, image, scales, flip)
        key = (pixel_key(image) if pixels is None else pixels, classifier.name, classifier.version, tuple(scales), flip)
        hit = self._lru.get(key)
        if self.observer is not None:
            self.observer(hit is not None)
        if hit is not None:
            return hit
        result = multiscale_cams(classifier, image, scales, flip)
        for array in (result.cams, result.probabilities, result.features):
            if array is not None:
                array.setflags(write=False)  # shared by later requests: nobody may change it
        self._lru.put(key, result)
        return result

"""LRU cache of an image's multi-scale CAMs and classifier outputs, bounded in bytes.

Beside SAM's embedding cache: a second round on a known image (new clicks or boxes, an
interactive session) skips the classifier too, and runs only the decoder and what follows it.
Key: the decoded working pixels, the classifier (name and version) and the CAM settings.

The same LRU keeps the CAM random walk's result at its own grid (``walked``; 16 KiB a class at
most): a round with the same tagged classes skips the walk, which takes ~130 ms at its 4,096-cell
cap on a CPU core, and only upsamples it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.models.cam_classifier import CamClassifier
from service.models.embedding_cache import pixel_key
from service.models.lru import BytesLRU
from service.pipeline.cam import CamResult, multiscale_cams
from service.pipeline.cam_random_walk import walk_classes, walk_low_res, with_walked

CacheObserver = Callable[[bool], None]
"""Called with True on a hit, False on a miss."""


@dataclass(frozen=True)
class CachedWalk:
    """The walk of some classes' CAMs of one image at the walk's grid (``walk_low_res``): float32
    [k, h, w], read-only (``CamCache.walked``)."""

    low: npt.NDArray[np.float32]


def _size(value: CamResult | CachedWalk) -> int:
    if isinstance(value, CachedWalk):
        return value.low.nbytes
    return value.cams.nbytes + value.probabilities.nbytes + (value.features.nbytes if value.features is not None else 0)


def _key(pixels: str, classifier: CamClassifier, scales: Sequence[float], flip: bool) -> tuple[Hashable, ...]:
    return (pixels, classifier.name, classifier.version, tuple(scales), flip)


class CamCache:
    """``multiscale_cams`` with an LRU in front; ``max_bytes`` = 0 turns it off."""

    def __init__(self, max_bytes: int, observer: CacheObserver | None = None, walk_observer: CacheObserver | None = None) -> None:
        self.max_bytes = max_bytes
        self.observer = observer
        """Told of each lookup of CAMs (``cams``)."""
        self.walk_observer = walk_observer
        """Told of each lookup of a walk (``walked``)."""
        self._lru: BytesLRU[CamResult | CachedWalk] = BytesLRU(max_bytes, _size)

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
        key = _key(pixel_key(image) if pixels is None else pixels, classifier, scales, flip)
        hit = self._lru.get(key)
        if self.observer is not None:
            self.observer(hit is not None)
        if isinstance(hit, CamResult):
            return hit
        result = multiscale_cams(classifier, image, scales, flip)
        for array in (result.cams, result.probabilities, result.features):
            if array is not None:
                array.setflags(write=False)  # shared by later requests: nobody may change it
        self._lru.put(key, result)
        return result

    def walked(
        self, classifier: CamClassifier, result: CamResult, class_ids: Sequence[int], beta: float, steps: int,
        scales: Sequence[float], flip: bool, pixels: str | None,
    ) -> CamResult:
        """``walk_classes(result, class_ids, beta, steps)``, where ``result`` is what ``cams``
        returned for ``pixels`` with ``classifier``, ``scales`` and ``flip``; the walk (at its own
        grid) comes from the cache when the same classes were walked so before, and is only
        upsampled. Without ``pixels`` (the caller did not hash the image) or with the cache off,
        the walk runs every time. Lookups are told to ``walk_observer``."""
        ids = sorted(set(class_ids))
        if self.max_bytes <= 0 or pixels is None or not ids or result.features is None:
            return walk_classes(result, ids, beta, steps)
        key = (*_key(pixels, classifier, scales, flip), "walk", tuple(ids), float(beta), int(steps))
        hit = self._lru.get(key)
        if self.walk_observer is not None:
            self.walk_observer(isinstance(hit, CachedWalk))
        if isinstance(hit, CachedWalk):
            return with_walked(result, ids, hit.low)
        low = walk_low_res(result.cams[[k - 1 for k in ids]], result.features, beta, steps)
        low.setflags(write=False)
        self._lru.put(key, CachedWalk(low))
        return with_walked(result, ids, low)

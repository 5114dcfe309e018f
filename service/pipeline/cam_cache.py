"""LRU cache of an image's multi-scale CAMs and classifier outputs, bounded in bytes.

Beside SAM's embedding cache: a second round on a known image (new clicks or boxes, an
interactive session) skips the classifier too, and runs only the decoder and what follows it.
Key: the decoded working pixels, the classifier (name and version) and the CAM settings.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from service.models.cam_classifier import CamClassifier
from service.models.embedding_cache import pixel_key
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
        self._items: OrderedDict[tuple[object, ...], CamResult] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def cams(self, classifier: CamClassifier, image: npt.NDArray[np.uint8], scales: Sequence[float], flip: bool) -> CamResult:
        """The CAMs of ``image`` (uint8 [H, W, 3]) by ``classifier``, from the cache when present."""
        if self.max_bytes <= 0:
            return multiscale_cams(classifier, image, scales, flip)
        key = (pixel_key(image), classifier.name, classifier.version, tuple(scales), flip)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
        if self.observer is not None:
            self.observer(hit is not None)
        if hit is not None:
            return hit
        result = multiscale_cams(classifier, image, scales, flip)
        size = _size(result)
        if size > self.max_bytes:
            return result
        for array in (result.cams, result.probabilities, result.features):
            if array is not None:
                array.setflags(write=False)  # shared by later requests: nobody may change it
        with self._lock:
            if key not in self._items:
                self._items[key] = result
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= _size(old)
        return result

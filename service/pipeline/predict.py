"""The Predict pipeline: DeepLab alone, no labels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from service.models.deeplab import DeepLab
from service.pipeline.encoding import coco_rle
from service.pipeline.segment import Timer, encode_mask
from service.pipeline.types import MaskFormat, PredictedClass, PredictResult


class Predictor:
    """Image -> DeepLab label map with per-class areas and mean confidence."""

    def __init__(self, deeplab: DeepLab) -> None:
        self.deeplab = deeplab

    @property
    def classes(self) -> tuple[str, ...]:
        return self.deeplab.classes

    def predict(
        self,
        image: npt.NDArray[np.uint8],
        formats: frozenset[MaskFormat] = frozenset({MaskFormat.PNG}),
        should_stop: Callable[[], bool] | None = None,
    ) -> PredictResult:
        """Segment ``image`` uint8 [H, W, 3]; classes with at least one pixel are reported, background (0) included."""
        timer = Timer(should_stop)
        with timer.stage("deeplab"):
            out = self.deeplab.predict(image)
        with timer.stage("encode"):
            label_map = out.label_map
            encoded = encode_mask(label_map, formats)
            flat = label_map.ravel()
            counts = np.bincount(flat, minlength=len(self.classes) + 1)
            sums = np.bincount(flat, weights=out.confidence.ravel(), minlength=len(self.classes) + 1)
            names = ("background",) + self.classes
            classes = [
                PredictedClass(
                    class_id=int(k),
                    class_name=names[k],
                    area=int(counts[k]),
                    mean_confidence=float(sums[k] / counts[k]),
                    rle=coco_rle(label_map == k) if MaskFormat.COCO_RLE in formats else None,
                )
                for k in np.flatnonzero(counts)
            ]
        return PredictResult(label_map, encoded, tuple(classes), tuple(timer.timings), self.deeplab.version)

    def warmup(self) -> None:
        self.deeplab.warmup()

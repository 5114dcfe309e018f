"""The Predict pipeline: DeepLab alone, no labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from service.models.deeplab import DeepLab
from service.pipeline.encoding import coco_rle, encode_png
from service.pipeline.segment import Timer, confidence_bytes, encode_mask
from service.pipeline.types import MaskFormat, PredictedClass, PredictResult
from service.pipeline.work_frame import FULL_SIZE_BYTES_PER_PIXEL, WorkFrame, refuse_over_budget

DEEPLAB_BYTES_PER_PIXEL = 400
"""Bytes per working pixel of a DeepLab inference and its outputs: input, activations, logits of
every class, label map and confidence (measured peak RSS over the warm level of the default
DeepLab at 1024 x 1024, with a margin)."""


class Predictor:
    """Image -> DeepLab label map with per-class areas and mean confidence.

    DeepLab runs at the scale it was trained at: where its config gives ``input_side`` (the
    longest side of its training images), the image is resized, up or down, to that longest side
    (at most ``max_work_side``), as training letterboxed it; a model without it sees the image
    downscaled to at most ``max_work_side`` pixels on its longest side. The label map comes back
    at the original size (nearest neighbour). With ``scales`` other than (1,) or ``flip``, DeepLab
    averages its probabilities over the working image at those scales and mirrored
    (``DeepLab.predict_augmented``: test-time augmentation, one run per scale and mirror). Each of
    the two is the argument when given, else the DeepLab's config (``predict_scales`` /
    ``predict_flip``), else none: (1,) and no mirror.
    """

    def __init__(
        self, deeplab: DeepLab, max_work_side: int = 1024, max_request_bytes: int = 1536 * 1024 * 1024,
        scales: tuple[float, ...] | None = None, flip: bool | None = None,
    ) -> None:
        self.deeplab = deeplab
        self.max_work_side = max_work_side
        self.max_request_bytes = max_request_bytes
        self.scales: tuple[float, ...] = next(s for s in (scales, deeplab.predict_scales, (1.0,)) if s is not None)
        self.flip: bool = next(f for f in (flip, deeplab.predict_flip, False) if f is not None)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.deeplab.classes

    def predict(
        self,
        image: npt.NDArray[np.uint8],
        formats: frozenset[MaskFormat] = frozenset({MaskFormat.PNG}),
        should_stop: Callable[[], bool] | None = None,
    ) -> PredictResult:
        """Segment ``image`` uint8 [H, W, 3]; classes with at least one pixel are reported, background (0) included.

        Raises:
            Overloaded: the image's estimated working memory exceeds ``max_request_bytes``.
            Cancelled: ``should_stop`` returned True between stages.
        """
        frame = self.check_budget(image.shape[0], image.shape[1])
        timer = Timer(should_stop)
        with timer.stage("deeplab"):
            out = self.deeplab.predict_augmented(frame.image_to_work(image), self.scales, self.flip)
        with timer.stage("encode"):
            label_map = frame.label_map_to_original(out.label_map)
            encoded = encode_mask(label_map, formats)
            if MaskFormat.CONFIDENCE in formats:
                encoded = replace(encoded, confidence=encode_png(confidence_bytes(frame.map_to_original(out.confidence, nearest=False))))
            n = len(self.classes) + 1
            counts = np.bincount(label_map.ravel(), minlength=n)
            work_counts = counts if frame.identity else np.bincount(out.label_map.ravel(), minlength=n)
            sums = np.bincount(out.label_map.ravel(), weights=out.confidence.ravel(), minlength=n)
            names = ("background",) + self.classes
            classes = [
                PredictedClass(
                    class_id=int(k),
                    class_name=names[k],
                    area=int(counts[k]),
                    mean_confidence=float(sums[k] / work_counts[k]) if work_counts[k] else 0.0,
                    rle=coco_rle(label_map == k) if MaskFormat.COCO_RLE in formats else None,
                )
                for k in np.flatnonzero(counts)
            ]
        return PredictResult(label_map, encoded, tuple(classes), tuple(timer.timings), self.deeplab.version)

    def frame(self, height: int, width: int) -> WorkFrame:
        """The working frame of a ``height`` x ``width`` image (the class docstring)."""
        side = self.deeplab.input_side
        if side is None:
            return WorkFrame.of(height, width, self.max_work_side)
        return WorkFrame.of(height, width, min(side, self.max_work_side), upscale=True)

    def working_bytes(self, height: int, width: int) -> int:
        """Estimated working memory of a request with a ``height`` x ``width`` image, in bytes: with
        test-time augmentation, DeepLab's largest run (the largest scale's pixels, twice when mirrored
        in the same batch) and the averaged probabilities (float32 per class and working pixel)."""
        frame = self.frame(height, width)
        work = frame.work_height * frame.work_width
        if self.scales == (1.0,) and not self.flip:
            return height * width * FULL_SIZE_BYTES_PER_PIXEL + work * DEEPLAB_BYTES_PER_PIXEL
        largest = max(self.scales) ** 2 * (2 if self.flip else 1)
        averaged = 2 * 4 * (len(self.classes) + 1)  # the running sum and one run's resized probabilities
        return height * width * FULL_SIZE_BYTES_PER_PIXEL + round(work * (max(1.0, largest) * DEEPLAB_BYTES_PER_PIXEL + averaged))

    def check_budget(self, height: int, width: int) -> WorkFrame:
        """The working frame of a ``height`` x ``width`` image, if its estimated working memory fits.

        Raises:
            Overloaded: the estimate exceeds ``max_request_bytes`` (RESOURCE_EXHAUSTED).
        """
        frame = self.frame(height, width)
        refuse_over_budget(frame, self.working_bytes(height, width), self.max_request_bytes)
        return frame

    def warmup(self) -> None:
        self.deeplab.warmup()

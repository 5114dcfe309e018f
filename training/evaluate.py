"""Evaluate segmentation methods on images with ground-truth masks (mIoU over the whole set)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.pipeline.cam import multiscale_cams
from service.pipeline.evaluation import confusion, metrics_from_confusion
from service.pipeline.predict import Predictor
from service.pipeline.segment import Segmenter
from service.pipeline.types import SegmentInput, WeakLabels

Method = Callable[[npt.NDArray[np.uint8], tuple[str, ...]], npt.NDArray[np.uint8]]
"""(image [H,W,3], image-level labels) -> label map [H,W]."""


@dataclass
class MethodScore:
    """Dataset-level confusion of one method, and its time."""

    num_classes: int
    conf: npt.NDArray[np.int64] | None = None
    seconds: float = 0.0
    images: int = 0
    uncertain: list[float] = field(default_factory=list)

    def add(self, pred: npt.NDArray[np.uint8], gt: npt.NDArray[np.uint8], seconds: float) -> None:
        c = confusion(pred, gt, self.num_classes)
        self.conf = c if self.conf is None else self.conf + c
        self.seconds += seconds
        self.images += 1
        self.uncertain.append(float(np.mean(pred == 255)))

    def report(self, class_names: Sequence[str]) -> dict[str, object]:
        assert self.conf is not None
        m = metrics_from_confusion(self.conf)
        names = ("background",) + tuple(class_names)
        return {
            "miou": round(m.miou, 4),
            "per_class": {names[k]: round(v, 4) for k, v in sorted(m.per_class.items())},
            "pixel_acc": round(m.pixel_accuracy, 4),
            "images": self.images,
            "seconds_per_image": round(self.seconds / max(self.images, 1), 4),
            "uncertain_fraction": round(float(np.mean(self.uncertain)), 4),
        }


CAM_THRESHOLD = 0.35
"""Normalised CAM below which a pixel is background (the CAM baselines, here and in ``training/cam_labels.py``)."""


def cam_threshold_map(cams: npt.NDArray[np.float32], ids: Sequence[int], threshold: float = CAM_THRESHOLD, background: bool = True) -> npt.NDArray[np.uint8]:
    """Each pixel takes the class among ``ids`` (1-based) of highest normalised CAM (``cams`` [C, H, W]);
    background below ``threshold`` (never, when the data set has no background class)."""
    out = np.zeros(cams.shape[1:], np.uint8)
    if ids:
        sel = cams[[k - 1 for k in ids]]
        best = np.array(ids, np.uint8)[sel.argmax(axis=0)]
        out = np.where((sel.max(axis=0) > threshold) | (not background), best, 0).astype(np.uint8)
    return out


def cam_threshold_method(segmenter: Segmenter, threshold: float = CAM_THRESHOLD) -> Method:
    """Baseline: ``cam_threshold_map`` over the multi-scale CAMs of the labelled classes."""
    cfg = segmenter.config

    def run(image: npt.NDArray[np.uint8], labels: tuple[str, ...]) -> npt.NDArray[np.uint8]:
        cams = multiscale_cams(segmenter.classifier, image, cfg.cam_scales, cfg.cam_flip).cams
        return cam_threshold_map(cams, [segmenter.classes.index(n) + 1 for n in labels], threshold)

    return run


def s2c_method(segmenter: Segmenter, use_labels: bool = True) -> Method:
    """The service pipeline (CAM -> peaks -> SAM-contract masks -> aggregation)."""

    def run(image: npt.NDArray[np.uint8], labels: tuple[str, ...]) -> npt.NDArray[np.uint8]:
        weak = WeakLabels(image_labels=labels) if use_labels else WeakLabels()
        return segmenter.segment(SegmentInput(image=image, labels=weak)).label_map

    return run


def deeplab_method(predictor: Predictor) -> Method:
    def run(image: npt.NDArray[np.uint8], labels: tuple[str, ...]) -> npt.NDArray[np.uint8]:
        return predictor.predict(image).label_map

    return run


def evaluate(
    methods: dict[str, Method],
    samples: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], tuple[str, ...]]],
    class_names: Sequence[str],
) -> dict[str, dict[str, object]]:
    """Run every method on (image, gt mask, image labels) samples; returns name -> report."""
    scores = {name: MethodScore(len(class_names)) for name in methods}
    for image, gt, labels in samples:
        for name, method in methods.items():
            start = time.perf_counter()
            pred = method(image, labels)
            scores[name].add(pred, gt, time.perf_counter() - start)
    return {name: s.report(class_names) for name, s in scores.items()}

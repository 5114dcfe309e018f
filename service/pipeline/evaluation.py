"""Stage 8 (optional): quality against a ground-truth label map."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.pipeline.types import IGNORE, QualityMetrics


def confusion(pred: npt.NDArray[np.uint8], gt: npt.NDArray[np.uint8], num_classes: int) -> npt.NDArray[np.int64]:
    """[C+2, C+1] counts: rows predicted id (0..C, row C+1 = predicted 255), columns ground truth
    (0..C); ground-truth 255 pixels are left out."""
    valid = gt != IGNORE
    p = pred[valid].astype(np.int64)
    p[p == IGNORE] = num_classes + 1
    g = gt[valid].astype(np.int64)
    n = num_classes + 1
    return np.bincount(p * n + g, minlength=(n + 1) * n).reshape(n + 1, n)


def metrics_from_confusion(conf: npt.NDArray[np.int64]) -> QualityMetrics:
    """IoU per class present in prediction or truth (background included), mIoU, pixel accuracy.
    A predicted 255 counts as wrong."""
    n = conf.shape[1]
    per_class: dict[int, float] = {}
    for c in range(n):
        tp = conf[c, c]
        union = conf[c, :].sum() + conf[:, c].sum() - tp
        if union > 0:
            per_class[c] = float(tp / union)
    total = conf.sum()
    acc = float(np.trace(conf[:n]) / total) if total else 0.0
    miou = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return QualityMetrics(miou=miou, pixel_accuracy=acc, per_class=per_class)


def quality_metrics(pred: npt.NDArray[np.uint8], gt: npt.NDArray[np.uint8], num_classes: int) -> QualityMetrics:
    """Compare label maps uint8 [H, W] (ids 0..C; 255 = ignore in ``gt``, not confident in ``pred``)."""
    return metrics_from_confusion(confusion(pred, gt, num_classes))

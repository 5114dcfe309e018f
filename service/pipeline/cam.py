"""Stage 3: multi-scale, flipped class activation maps (CAM, Zhou et al. 2016; S2C's MS-CAM)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.models.cam_classifier import CamClassifier
from service.models.imageops import normalise, normalised_resize, resize_maps


@dataclass(frozen=True)
class CamResult:
    """Attributes:
    probabilities: float32 [C], sigmoid of the classifier logits averaged over scales and flips.
    cams: float32 [C, H, W], per class the sum over scales/flips of ReLU(upsampled CAM), divided
        by its maximum: 0..1, 1 at the class's strongest pixel (all zero where the class never fires).
    features: float32 [D, h, w] classifier features at scale 1 (None if the export has none).
    """

    probabilities: npt.NDArray[np.float32]
    cams: npt.NDArray[np.float32]
    features: npt.NDArray[np.float32] | None


def multiscale_cams(classifier: CamClassifier, image: npt.NDArray[np.uint8], scales: Sequence[float], flip: bool) -> CamResult:
    """CAMs of every class for ``image`` uint8 [H, W, 3].

    Each scale runs once on the image and its horizontal flip in one batch; CAMs are ReLU'd,
    upsampled to H x W, summed over runs, then normalised per class by their maximum. The image
    is normalised once; a flipped run's CAM is flipped back and added to its twin before the
    (linear, mirror-symmetric) upsampling, so each scale is resized once.
    """
    h, w = image.shape[:2]
    total = np.zeros((len(classifier.classes), h, w), np.float32)
    logits = []
    features = None
    base = normalise(image)
    for scale in scales:
        sh, sw = max(8, round(h * scale)), max(8, round(w * scale))
        batch = np.empty((2 if flip else 1, 3, sh, sw), np.float32)
        normalised_resize(image, sh, sw, out=batch[0], normalised=base)
        if flip:
            np.copyto(batch[1], batch[0][:, :, ::-1])
        out = classifier.run_normalised(batch)
        cams = np.maximum(out.cams[0], 0.0)
        if flip:
            cams += np.maximum(out.cams[1][:, :, ::-1], 0.0)
        logits.append(out.logits)
        total += resize_maps(cams, h, w)
        if scale == 1.0 and out.features is not None:
            features = out.features[0]
    peak = total.reshape(total.shape[0], -1).max(axis=1)
    total /= peak[:, None, None] + np.float32(1e-5)
    probs = 1.0 / (1.0 + np.exp(-np.concatenate(logits).mean(axis=0)))
    return CamResult(probs.astype(np.float32), total, features)

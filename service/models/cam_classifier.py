"""The CAM classifier wrapper (``cam_classifier``).

Contract: ``image`` f32 [N,3,H,W] ImageNet-normalised RGB -> ``logits`` [N,C], ``cams``
[N,C,h,w] (before ReLU and normalisation), optional ``features`` [N,D,h,w].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.errors import ModelRepositoryError
from service.models.imageops import normalise
from service.runtime.backend import InferenceBackend


@dataclass(frozen=True)
class ClassifierOutput:
    """Raw classifier outputs for a batch.

    Attributes:
        logits: float32 [N, C].
        cams: float32 [N, C, h, w], raw class activation maps at the model's output stride.
        features: float32 [N, D, h, w] or None when the export has no ``features`` output.
    """

    logits: npt.NDArray[np.float32]
    cams: npt.NDArray[np.float32]
    features: npt.NDArray[np.float32] | None


class CamClassifier:
    """Runs ``cam_classifier`` through a backend."""

    def __init__(self, backend: InferenceBackend, name: str = "cam_classifier") -> None:
        self.backend = backend
        self.name = name
        model = backend.models().get(name)
        if model is None:
            raise ModelRepositoryError(f"model {name!r} is not loaded")
        if not model.labels:
            raise ModelRepositoryError(f"model {name!r} needs a label_filename (labels.txt) on its logits output")
        self.classes: tuple[str, ...] = model.labels
        self.version = model.version
        self.has_features = model.output("features") is not None
        self.feature_stride: float | None = None
        """Input pixels per ``features`` cell, the smallest seen in any run (warm-up included); None
        before the first run with features. Bounds the CAM random walk's memory estimate."""

    def run(self, images: npt.NDArray[np.uint8]) -> ClassifierOutput:
        """Classify a batch of same-size images.

        Args:
            images: uint8 [N, H, W, 3] RGB.

        Returns:
            The raw outputs; C must equal ``len(self.classes)``.
        """
        batch = np.empty((len(images), 3) + images.shape[1:3], np.float32)
        for i, im in enumerate(images):
            normalise(im, out=batch[i])
        return self.run_normalised(batch)

    def run_normalised(self, batch: npt.NDArray[np.float32]) -> ClassifierOutput:
        """Classify a batch already normalised: float32 [N, 3, H, W] (``imageops.normalise``)."""
        out = self.backend.infer(self.name, {"image": batch})
        logits = np.asarray(out["logits"], np.float32)
        cams = np.asarray(out["cams"], np.float32)
        if logits.shape[1] != len(self.classes) or cams.shape[1] != len(self.classes):
            raise ModelRepositoryError(
                f"model {self.name!r} returned {logits.shape[1]} logits / {cams.shape[1]} CAMs for {len(self.classes)} classes in labels.txt"
            )
        feats = out.get("features")
        if feats is None:
            return ClassifierOutput(logits, cams, None)
        features = np.asarray(feats, np.float32)
        stride = min(batch.shape[2] / max(1, features.shape[2]), batch.shape[3] / max(1, features.shape[3]))
        if self.feature_stride is None or stride < self.feature_stride:
            self.feature_stride = stride
        return ClassifierOutput(logits, cams, features)

    def warmup(self) -> None:
        """One inference on a blank 64x64 image."""
        self.run(np.zeros((1, 64, 64, 3), np.uint8))

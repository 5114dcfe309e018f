"""The DeepLab wrapper (``deeplab``): ``image`` f32 [N,3,H,W] -> ``logits`` [N,C+1,H,W], background at 0."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.errors import ModelRepositoryError
from service.models.imageops import normalise, resize_maps
from service.runtime.backend import InferenceBackend


@dataclass(frozen=True)
class DeepLabOutput:
    """Attributes:
    label_map: uint8 [H, W], 0 background, 1..C classes.
    probabilities: float32 [C+1, H, W] softmax over background + classes.
    """

    label_map: npt.NDArray[np.uint8]
    probabilities: npt.NDArray[np.float32]


class DeepLab:
    """Runs ``deeplab`` through a backend. Its labels.txt lists the C foreground classes."""

    def __init__(self, backend: InferenceBackend, name: str = "deeplab") -> None:
        self.backend = backend
        self.name = name
        model = backend.models().get(name)
        if model is None:
            raise ModelRepositoryError(f"model {name!r} is not loaded")
        self.classes: tuple[str, ...] = model.labels
        self.version = model.version

    def predict(self, image: npt.NDArray[np.uint8]) -> DeepLabOutput:
        """Segment one uint8 [H, W, 3] RGB image."""
        h, w = image.shape[:2]
        out = self.backend.infer(self.name, {"image": normalise(image)[None]})
        logits = np.asarray(out["logits"], np.float32)[0]
        if logits.shape[0] != len(self.classes) + 1:
            raise ModelRepositoryError(f"model {self.name!r} returned {logits.shape[0]} channels for {len(self.classes)} classes + background")
        if logits.shape[1:] != (h, w):
            logits = resize_maps(logits, h, w)
        logits = logits - logits.max(axis=0, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=0, keepdims=True)
        return DeepLabOutput(probs.argmax(axis=0).astype(np.uint8), probs)

    def warmup(self) -> None:
        self.predict(np.zeros((64, 64, 3), np.uint8))

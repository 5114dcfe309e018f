"""The DeepLab wrapper (``deeplab``): image -> label map and confidence, background at 0 (two contracts: ``DeepLab``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.errors import ModelRepositoryError
from service.models.imageops import normalise, resize_image, resize_maps
from service.runtime.backend import InferenceBackend


@dataclass(frozen=True)
class DeepLabOutput:
    """Attributes:
    label_map: uint8 [H, W], 0 background, 1..C classes.
    confidence: float32 [H, W], the softmax probability (over background + classes) of each
        pixel's label.
    """

    label_map: npt.NDArray[np.uint8]
    confidence: npt.NDArray[np.float32]


def label_map_and_confidence(logits: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Per-pixel argmax (first index on ties, as ``np.argmax``) and its softmax probability.

    Args:
        logits: float32 [K, H, W], K <= 255.

    Returns:
        uint8 [H, W] labels and float32 [H, W] probabilities. Equal to a full softmax followed by
        argmax and max, in a fifth of the time: numpy's argmax over the leading axis is strided
        and slow, so the first maximal index is found with uint8 arithmetic instead, and the
        probability of the maximum is 1 / sum(exp(logits - max)).
    """
    k = logits.shape[0]
    best = logits.max(axis=0)
    is_max = (logits == best).view(np.uint8)
    rank = np.arange(k, 0, -1, dtype=np.uint8)[:, None, None]  # K for channel 0 .. 1 for the last
    labels = np.subtract(np.uint8(k), (is_max * rank).max(axis=0), dtype=np.uint8)
    shifted = np.subtract(logits, best, dtype=np.float32)
    np.exp(shifted, out=shifted)
    total = shifted.sum(axis=0)
    return labels, np.reciprocal(total, out=total)


class DeepLab:
    """Runs ``deeplab`` through a backend. Its labels.txt lists the C foreground classes.

    Two contracts are served (README, model repository):
    - in-graph (``training.pixels_graph``): ``image`` uint8 [N,H,W,3] -> ``labels`` uint8
      [N,H,W] + ``confidence`` [N,H,W] (and ``logits``, not asked for): the pixels go in as
      decoded, argmax and softmax run in the model (on its device);
    - logits only (older exports, any DeepLab of that contract): ``image`` float32 [N,3,H,W]
      ImageNet-normalised -> ``logits`` [N,C+1,h,w], resized and reduced here.
    """

    def __init__(self, backend: InferenceBackend, name: str = "deeplab") -> None:
        self.backend = backend
        self.name = name
        model = backend.models().get(name)
        if model is None:
            raise ModelRepositoryError(f"model {name!r} is not loaded")
        self.classes: tuple[str, ...] = model.labels
        self.version = model.version
        self.input_side = model.input_side  # the longest side of its training images (config), if given
        self.predict_scales = model.predict_scales  # its test-time augmentation (config), if given
        self.predict_flip = model.predict_flip
        self.uint8_input = model.takes_uint8("image")
        self.in_graph_labels = model.output("labels") is not None and model.output("confidence") is not None

    def predict(self, image: npt.NDArray[np.uint8]) -> DeepLabOutput:
        """Segment one uint8 [H, W, 3] RGB image."""
        h, w = image.shape[:2]
        x = image[None] if self.uint8_input else normalise(image)[None]
        if self.in_graph_labels:
            out = self.backend.infer(self.name, {"image": x}, outputs=("labels", "confidence"))
            labels, confidence = np.asarray(out["labels"])[0], np.asarray(out["confidence"], np.float32)[0]
            if labels.shape != (h, w) or confidence.shape != (h, w) or labels.dtype != np.uint8:
                raise ModelRepositoryError(f"model {self.name!r} returned labels {labels.dtype} {labels.shape} / confidence {confidence.shape} for a {h} x {w} image")
            if labels.size and int(labels.max()) > len(self.classes):
                raise ModelRepositoryError(f"model {self.name!r} returned label {int(labels.max())} for {len(self.classes)} classes + background")
            return DeepLabOutput(labels, confidence)
        logits = self._logits(x)[0]
        if logits.shape[1:] != (h, w):
            logits = resize_maps(logits, h, w)
        return DeepLabOutput(*label_map_and_confidence(logits))

    def predict_augmented(self, image: npt.NDArray[np.uint8], scales: Sequence[float], flip: bool) -> DeepLabOutput:
        """Test-time augmentation of one uint8 [H, W, 3] RGB image: DeepLab runs on the image resized by
        each of ``scales`` (both sides) and, with ``flip``, on its mirror image too (in the same batch);
        each run's softmax probabilities, mirrored back and resized to H x W, are averaged. The label
        map is their argmax, the confidence its mean probability. One scale of 1 without ``flip`` is ``predict``."""
        if tuple(scales) == (1.0,) and not flip:
            return self.predict(image)
        h, w = image.shape[:2]
        total = np.zeros((len(self.classes) + 1, h, w), np.float32)
        for scale in scales:
            x = resize_image(image, max(8, round(h * scale)), max(8, round(w * scale)))
            batch = np.stack([x, x[:, ::-1]]) if flip else x[None]
            logits = self._logits(batch if self.uint8_input else np.stack([normalise(b) for b in batch]))
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            run = probs[0] + probs[1][:, :, ::-1] if flip else probs[0]
            total += run if run.shape[1:] == (h, w) else resize_maps(run, h, w)
        total /= len(scales) * (2 if flip else 1)
        return DeepLabOutput(*label_map_and_confidence(np.log(np.maximum(total, 1e-30))))

    def _logits(self, batch: npt.NDArray[np.uint8] | npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """float32 [N, C+1, h, w]: the model's logits for a batch of its input (either contract)."""
        out = self.backend.infer(self.name, {"image": batch}, outputs=("logits",))
        logits = np.asarray(out["logits"], np.float32)
        if logits.ndim != 4 or logits.shape[:2] != (len(batch), len(self.classes) + 1):
            raise ModelRepositoryError(f"model {self.name!r} returned logits {logits.shape} for {len(batch)} images, {len(self.classes)} classes + background")
        return logits

    def warmup(self) -> None:
        self.predict(np.zeros((64, 64, 3), np.uint8))

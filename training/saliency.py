"""Salient objects against the stuff around them: a CAM pseudo-label source (``cam_saliency``).

A classifier trained on image-level tags learns context: cows come with grass, aeroplanes with
sky, cars with buildings, so the CAM of a co-occurring stuff class covers the object too and wins
it at the CAM threshold (msrc_v2, training split: 93 % of cow pixels go to grass). A class-agnostic
salient-object model (a one-class DeepLab trained on duts_tr's object masks, never on the
labelled data set) knows where *an* object is, but not which. Together, per image:

1. The saliency ``s`` (0..1 per pixel) of the image, at the saliency model's training scale.
2. Which tagged classes are objects: a class's *objectness* is the share of its CAM lying on
   salient pixels, half measured on this image (mean CAM on salient pixels against the mean on
   the others) and half over every image of the set being labelled that is tagged with it (mean
   saliency where its CAM is at least ``OBJECT_CAM``; ``class_objectness``). Classes at or above
   ``OBJECTNESS`` are objects, the rest stuff (at least one of each; the background class, where
   there is one, is stuff). Measured from the tags and the two models, not from a list of names.
3. Each object class's CAM is weighted by ``s``, each stuff class's by ``1 - s``; the weighted
   maps are the unary of the same dense CRF as ``cam_crf``.

A tagged class whose CAM is empty (the classifier sees no sign of it, as on images it was not
trained on: 11 of 251 tags on msrc_v2 n 1..5, among them 3 of 5 aeroplanes, 3 of 7 birds, 2 of 5
dogs) would get no pixel: the tag says it is there, so before step 2 it takes the salient pixels
the other classes' CAMs leave unexplained, ``s * (1 - their maximum)`` (``fill_empty``), and its
objectness is this image's alone (the set's is measured where the class fired).

Chosen on msrc_v2's training split (docs/RESULTS.md): fit on n 6..15, scored on n 1..5.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

OBJECT_CAM = 0.8
"""A class's set-level objectness is measured where its normalised CAM is at least this."""
OBJECTNESS = 0.5
"""A tagged class whose objectness (step 2) is at least this is an object."""
SALIENT = 0.5
"""Saliency above which a pixel counts as salient for the per-image objectness."""
CAM_FLOOR = 0.02
"""Added to every CAM before weighting, so that a salient pixel where no object's CAM fires still
goes to an object class (the object's CAM often fires on its context instead)."""


class SaliencyModel:
    """A one-class DeepLab repository (``deeplab``: background and one class, the salient object)
    run through the service's own DeepLab wrapper, at the scale it was trained at."""

    def __init__(self, repo: Path) -> None:
        from service.errors import WsssError
        from service.models.deeplab import DeepLab
        from service.pipeline.predict import Predictor
        from service.runtime import ModelRepository
        from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
        from training.datasets import DatasetError

        try:
            backend = OnnxRuntimeBackend(ModelRepository(Path(repo)), "CPUExecutionProvider")
            backend.load(["deeplab"])
            self.deeplab = DeepLab(backend)
            self.frame = Predictor(self.deeplab).frame  # the working frame Predict would use: its training scale
        except WsssError as exc:
            raise DatasetError(f"saliency model {repo}: {exc}") from exc
        if len(self.deeplab.classes) != 1:
            raise DatasetError(f"{repo}/deeplab segments {list(self.deeplab.classes)}: a saliency model has one class, the salient object")

    def probability(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """float32 [H, W]: the probability that each pixel of ``image`` uint8 [H, W, 3] is on a salient object."""
        frame = self.frame(image.shape[0], image.shape[1])
        out = self.deeplab.predict(frame.image_to_work(image))
        p = np.where(out.label_map == 1, out.confidence, 1.0 - out.confidence).astype(np.float32)
        return np.asarray(frame.map_to_original(p, nearest=False), np.float32)


def class_objectness(samples: Iterable[tuple[Sequence[int], npt.NDArray[np.float32], npt.NDArray[np.float32]]], num_classes: int) -> npt.NDArray[np.float64]:
    """[C] per class (0-based), the mean saliency over the pixels where its normalised CAM is at
    least ``OBJECT_CAM``, over the samples (tagged class ids 0-based, CAMs [C, H, W], saliency
    [H, W]) tagged with it; NaN for a class never tagged or never firing."""
    num = np.zeros(num_classes)
    den = np.zeros(num_classes)
    for tags, cams, saliency in samples:
        for c in tags:
            strong = cams[c] >= OBJECT_CAM
            num[c] += float(saliency[strong].sum())
            den[c] += float(strong.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def fill_empty(scores: npt.NDArray[np.float32], saliency: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """``scores`` [L, H, W] with each map that is zero everywhere (an empty CAM) replaced by the
    saliency the others leave unexplained, ``saliency * (1 - max of the non-empty maps)`` (the
    saliency itself when all are empty). Returns the maps and which were empty, bool [L]."""
    empty = scores.reshape(len(scores), -1).max(axis=1) <= 0
    if not empty.any():
        return scores, empty
    explained = scores[~empty].max(axis=0) if (~empty).any() else np.zeros_like(saliency)
    filled = scores.copy()
    filled[empty] = saliency * (1.0 - explained)
    return filled, empty


def object_classes(scores: npt.NDArray[np.float32], saliency: npt.NDArray[np.float32], set_objectness: npt.NDArray[np.float64],
                   stuff_only: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Which of L candidate maps ``scores`` [L, H, W] are objects (step 2): per-image objectness
    averaged with ``set_objectness`` [L] (NaN: this image's alone), ``stuff_only`` [L] never
    objects; at least one object and one stuff candidate when there are two or more that may be
    either. Returns bool [L]."""
    salient = saliency >= SALIENT
    objects = np.zeros(len(scores), bool)
    may = ~stuff_only
    if not salient.any() or salient.all() or may.sum() == 0 or len(scores) < 2:
        return objects
    inside = scores[:, salient].mean(axis=1)
    outside = scores[:, ~salient].mean(axis=1)
    here = inside / np.maximum(inside + outside, 1e-9)
    r = np.where(np.isnan(set_objectness), here, 0.5 * here + 0.5 * np.nan_to_num(set_objectness))
    r = np.where(may, r, -np.inf)
    objects = r >= OBJECTNESS
    if not objects.any() or objects.sum() == len(scores):
        objects = r == r.max()
    return objects


def saliency_unary(scores: npt.NDArray[np.float32], saliency: npt.NDArray[np.float32], objects: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """[L, H, W] probabilities for the CRF: each map + ``CAM_FLOOR``, weighted by the saliency
    (objects) or its complement (stuff), normalised over L. Without any object: the maps alone."""
    if not objects.any():
        probs = np.clip(scores, 1e-5, 1.0).astype(np.float32)
    else:
        weight = np.where(objects[:, None, None], saliency[None], 1.0 - saliency[None])
        probs = np.clip((scores + CAM_FLOOR) * (1e-3 + weight), 1e-5, 1.0).astype(np.float32)
    return probs / probs.sum(axis=0, keepdims=True)

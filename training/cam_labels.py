"""Label maps from the classifier's multi-scale CAMs of an image's tagged classes (no promptable model).

- ``threshold``: each pixel takes the tagged class of highest normalised CAM, background below
  ``CAM_THRESHOLD`` (never, on a data set without a background class);
- ``crf``: the same CAMs as a dense CRF's unary (background score (1 - max CAM)^2.44, equal to the
  CAM at 0.35; without a background class the CRF chooses among the tagged classes only);
- ``saliency_crf``: the same CRF, its unary split between salient objects and the stuff around
  them by a salient-object model (``training/saliency.py``; ``measure_objectness`` first);
- ``rw_threshold`` and ``rw_saliency_crf``: ``threshold`` and ``saliency_crf`` on the CAMs spread
  by a random walk over the classifier's feature affinity (``service/pipeline/cam_random_walk.py``);
  ``rw_saliency_crf`` still decides which classes are objects on the plain CAMs (the set's
  objectness and the image's), only its unary comes from the spread ones.

Both CRFs weigh the appearance kernel less than the service's refinement does (``CRF_APPEARANCE``).

Used by ``evaluate`` (the CAM baselines) and by ``pseudo-label --source cam_threshold|cam_crf|cam_saliency|cam_rw|cam_rw_saliency``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from service.pipeline.cam import CamResult, multiscale_cams
from service.pipeline.cam_random_walk import RANDOM_WALK, random_walk
from service.pipeline.refinement import dense_crf
from service.pipeline.segment import Segmenter
from training.datasets import DatasetFolder
from training.evaluate import CAM_THRESHOLD, cam_threshold_map
from training.saliency import SaliencyModel, class_objectness, fill_empty, object_classes, saliency_unary

CRF_BACKGROUND_POWER = float(np.log(CAM_THRESHOLD) / np.log(1 - CAM_THRESHOLD))
CRF_APPEARANCE = (5.0, 8.0)
"""The CAM CRFs' appearance kernel: its weight (``appearance_compat``) and colour scale
(``appearance_srgb``); the service's refinement keeps DeepLab's 10 and 13. Chosen on training
splits (``bench/select_cam_crf.sh``, docs/RESULTS.md): 5, 8 scored higher than 10, 13 in every
setting measured (msrc_v2 cam_saliency +0.008..+0.015 over four classifier / image-set pairs,
magnetic_tile exp1 +0.025)."""


class CamLabels:
    """Both CAM label maps, sharing one multi-scale CAM computation per image (keyed by its id)."""

    def __init__(
        self, segmenter: Segmenter, background: bool, saliency: SaliencyModel | None = None, crf_appearance: tuple[float, float] = CRF_APPEARANCE,
        random_walk: tuple[float, int] = RANDOM_WALK,
    ) -> None:
        self.segmenter = segmenter
        self.background = background
        self.saliency = saliency
        self.crf_appearance = crf_appearance
        """The CRFs' appearance kernel weight and colour scale (``CRF_APPEARANCE``)."""
        self.random_walk = random_walk
        """The ``rw_*`` maps' affinity power and steps (``RANDOM_WALK``)."""
        self.objectness: npt.NDArray[np.float64] | None = None
        """[C] each class's objectness over the set measured (``measure_objectness``)."""
        self.empty_cams: list[str] = []
        """The tagged classes whose CAM was empty in the last ``saliency_crf`` (their pixels rest on the saliency alone)."""
        self._last: tuple[str, CamResult] | None = None
        self._last_rw: tuple[str, npt.NDArray[np.float32]] | None = None

    def _cams(self, key: str, image: npt.NDArray[np.uint8]) -> CamResult:
        if self._last is None or self._last[0] != key:
            cfg = self.segmenter.config
            self._last = (key, multiscale_cams(self.segmenter.classifier, image, cfg.cam_scales, cfg.cam_flip))
        return self._last[1]

    @property
    def can_walk(self) -> bool:
        """Whether the ``rw_*`` maps can be made (``Segmenter.can_walk``: the classifier's features at scale 1)."""
        return self.segmenter.can_walk

    def _rw_cams(self, key: str, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The CAMs spread by the random walk (``service/pipeline/cam_random_walk.py``), cached like ``_cams``."""
        if self._last_rw is None or self._last_rw[0] != key:
            result = self._cams(key, image)
            if result.features is None:
                raise ValueError("the random walk needs the classifier's features at scale 1 (see can_walk)")
            self._last_rw = (key, random_walk(result.cams, result.features, *self.random_walk))
        return self._last_rw[1]

    def _crf(self, image: npt.NDArray[np.uint8], probs: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        compat, srgb = self.crf_appearance
        return dense_crf(image, probs, appearance_compat=compat, appearance_srgb=srgb)

    def _ids(self, tags: Sequence[str]) -> list[int]:
        return [self.segmenter.classes.index(n) + 1 for n in tags]

    def threshold(self, key: str, image: npt.NDArray[np.uint8], tags: Sequence[str]) -> npt.NDArray[np.uint8]:
        ids = self._ids(tags)
        if not ids:
            return np.zeros(image.shape[:2], np.uint8)
        return cam_threshold_map(self._cams(key, image).cams, ids, CAM_THRESHOLD, self.background)

    def rw_threshold(self, key: str, image: npt.NDArray[np.uint8], tags: Sequence[str]) -> npt.NDArray[np.uint8]:
        """``threshold`` on the random walk's CAMs."""
        ids = self._ids(tags)
        if not ids:
            return np.zeros(image.shape[:2], np.uint8)
        return cam_threshold_map(self._rw_cams(key, image), ids, CAM_THRESHOLD, self.background)

    def crf(self, key: str, image: npt.NDArray[np.uint8], tags: Sequence[str]) -> npt.NDArray[np.uint8]:
        ids = self._ids(tags)
        if not ids:
            return np.zeros(image.shape[:2], np.uint8)
        sel = self._cams(key, image).cams[[k - 1 for k in ids]]
        if self.background:
            sel = np.concatenate([((1.0 - sel.max(axis=0)) ** CRF_BACKGROUND_POWER)[None], sel])
            ids = [0] + ids
        probs = np.clip(sel, 1e-5, 1.0).astype(np.float32)
        labels = self._crf(image, probs / probs.sum(axis=0, keepdims=True))
        return np.array(ids, np.uint8)[labels]

    def measure_objectness(self, folder: DatasetFolder, ids: Sequence[str]) -> dict[str, float]:
        """Each class's objectness over the tagged images ``ids`` of ``folder``: ``class_objectness``.
        Returns class name -> objectness for the classes measured."""
        if self.saliency is None:
            raise ValueError("measure_objectness needs a saliency model")
        saliency = self.saliency

        def samples() -> Iterator[tuple[list[int], npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
            for image_id in tqdm(ids, desc="objectness", unit="img"):
                tags = folder.weak_labels(image_id).image_labels
                if tags:
                    image = folder.image(image_id)
                    yield [k - 1 for k in self._ids(tags)], self._cams(image_id, image).cams, saliency.probability(image)

        self.objectness = class_objectness(samples(), len(self.segmenter.classes))
        return {n: round(float(v), 4) for n, v in zip(self.segmenter.classes, self.objectness) if not np.isnan(v)}

    def saliency_crf(self, key: str, image: npt.NDArray[np.uint8], tags: Sequence[str]) -> npt.NDArray[np.uint8]:
        """``crf`` with its unary split between salient objects and stuff (``training/saliency.py``)."""
        return self._saliency_crf(key, image, tags, spread=False)

    def rw_saliency_crf(self, key: str, image: npt.NDArray[np.uint8], tags: Sequence[str]) -> npt.NDArray[np.uint8]:
        """``saliency_crf`` whose unary comes from the random walk's CAMs (objects still decided on the plain CAMs)."""
        return self._saliency_crf(key, image, tags, spread=True)

    def _saliency_crf(self, key: str, image: npt.NDArray[np.uint8], tags: Sequence[str], spread: bool) -> npt.NDArray[np.uint8]:
        if self.saliency is None or self.objectness is None:
            raise ValueError("saliency_crf needs a saliency model and measure_objectness first")
        ids = self._ids(tags)
        self.empty_cams = []
        if not ids:
            return np.zeros(image.shape[:2], np.uint8)
        rows = [k - 1 for k in ids]
        saliency = self.saliency.probability(image)
        sel, empty = fill_empty(self._cams(key, image).cams[rows], saliency)
        unary = fill_empty(self._rw_cams(key, image)[rows], saliency)[0] if spread else sel
        self.empty_cams = [n for n, e in zip(tags, empty) if e]
        set_objectness = np.where(empty, np.nan, self.objectness[rows])
        stuff_only = np.zeros(len(ids), bool)
        if self.background:
            sel, unary = (np.concatenate([((1.0 - m.max(axis=0)) ** CRF_BACKGROUND_POWER)[None], m]) for m in (sel, unary))
            set_objectness = np.concatenate([[np.nan], set_objectness])
            stuff_only = np.concatenate([[True], stuff_only])
            ids = [0] + ids
        objects = object_classes(sel, saliency, set_objectness, stuff_only)
        labels = self._crf(image, saliency_unary(unary, saliency, objects))
        return np.array(ids, np.uint8)[labels]

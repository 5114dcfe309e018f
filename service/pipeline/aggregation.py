"""Stage 6: per-class masks -> one label map by confidence (S2C's CAM-based prompting module).

Each class mask (logits > 0) gets a per-pixel confidence; a pixel takes the class of highest
confidence; pixels no mask covers are background (0); covered pixels whose winning confidence is
below the threshold are 255 (not confident).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.pipeline.types import IGNORE, ClassMask, ConfidenceScore


@dataclass(frozen=True)
class Aggregated:
    """Attributes:
    label_map: uint8 [H, W], 0 background, class ids, 255 not confident.
    confidence: float32 [H, W], the winning confidence (0 where no mask covers the pixel).
    cam_in_mask: class id -> mean normalised CAM inside that class's mask.
    """

    label_map: npt.NDArray[np.uint8]
    confidence: npt.NDArray[np.float32]
    cam_in_mask: dict[int, float]


def class_confidence(mask: ClassMask, cam: npt.NDArray[np.float32], score: ConfidenceScore) -> tuple[npt.NDArray[np.float32], float]:
    """Per-pixel confidence of one class mask (-inf outside the mask) and its mean CAM inside.

    LOGIT_X_CAM (S2C code): logit(pixel) x mean CAM inside the mask.
    STABILITY_X_CAM (S2C paper): stability score x CAM(pixel).
    A mask from the user's boxes and clicks alone (``uses_cam`` False) takes CAM = 1: the
    classifier does not veto what the user marked.
    """
    region = mask.logits > 0
    mean_cam = float(cam[region].mean()) if region.any() else 0.0
    if score is ConfidenceScore.LOGIT_X_CAM:
        values = mask.logits * (mean_cam if mask.uses_cam else 1.0)
    else:
        values = mask.stability * (cam if mask.uses_cam else np.ones_like(cam))
    return np.where(region, values, -np.inf).astype(np.float32), mean_cam


def aggregate(
    masks: Sequence[ClassMask],
    cams: npt.NDArray[np.float32],
    score: ConfidenceScore,
    threshold: float,
    shape: tuple[int, int],
) -> Aggregated:
    """Merge class masks into a label map.

    Args:
        masks: one per class (class ids 1..C).
        cams: float32 [C, H, W] normalised CAMs (class id k uses ``cams[k - 1]``).
        score: which S2C confidence to use.
        threshold: covered pixels whose winning confidence is below it become 255.
        shape: (H, W).
    """
    if not masks:
        return Aggregated(np.zeros(shape, np.uint8), np.zeros(shape, np.float32), {})
    stack = []
    cam_in_mask = {}
    for m in masks:
        conf, mean_cam = class_confidence(m, cams[m.class_id - 1], score)
        stack.append(conf)
        cam_in_mask[m.class_id] = mean_cam
    conf_stack = np.stack(stack)
    best = conf_stack.argmax(axis=0)
    best_conf = np.take_along_axis(conf_stack, best[None], axis=0)[0]
    ids = np.array([m.class_id for m in masks], np.uint8)
    covered = np.isfinite(best_conf)
    label_map = np.where(covered, ids[best], 0).astype(np.uint8)
    label_map[covered & (best_conf < threshold)] = IGNORE
    return Aggregated(label_map, np.where(covered, best_conf, 0.0).astype(np.float32), cam_in_mask)


def cam_agreement(region: npt.NDArray[np.bool_], cam: npt.NDArray[np.float32], cam_threshold: float) -> float:
    """Share of a class's confident CAM region (CAM > ``cam_threshold``) that its mask covers (1.0
    when the CAM is confident nowhere)."""
    confident = cam > cam_threshold
    n = int(np.count_nonzero(confident))
    return float(np.count_nonzero(confident & region)) / n if n else 1.0


def fill_stuff(
    label_map: npt.NDArray[np.uint8],
    masks: Sequence[ClassMask],
    cams: npt.NDArray[np.float32],
    tagged: Sequence[int],
    agreement_threshold: float,
    cam_threshold: float,
) -> tuple[npt.NDArray[np.uint8], tuple[int, ...]]:
    """Give back to amorphous ("stuff") classes what their CAM knows and their mask missed.

    Per image and class, measured: a tagged class whose mask covers less than
    ``agreement_threshold`` of its confident CAM region is stuff here (sky, grass, an uneven
    texture: a point-prompted object mask takes a part of it). Per pixel: a pixel where such a
    class has the highest CAM among the tagged classes, above ``cam_threshold``, takes that class
    when no mask won it (0 or 255) or when the class that won it has no CAM support there
    (its own CAM at most ``cam_threshold``); object masks the CAM supports keep their pixels.

    Returns the new label map and the classes treated as stuff.
    """
    if agreement_threshold <= 0.0 or not tagged:
        return label_map, ()
    regions = {m.class_id: m.logits > 0 for m in masks}
    stuff = tuple(
        k for k in tagged if cam_agreement(regions.get(k, np.zeros(label_map.shape, bool)), cams[k - 1], cam_threshold) < agreement_threshold
    )
    if not stuff:
        return label_map, ()
    ids = np.array(tagged, np.int64)
    sel = cams[ids - 1]
    best = ids[sel.argmax(axis=0)]
    best_cam = sel.max(axis=0)
    current = label_map.astype(np.int64)
    won = (current > 0) & (current != IGNORE)
    support = np.zeros(label_map.shape, np.float32)
    support[won] = cams[current[won] - 1, np.nonzero(won)[0], np.nonzero(won)[1]]
    open_pixel = ~won | (support <= cam_threshold)
    take = open_pixel & np.isin(best, stuff) & (best_cam > cam_threshold)
    out = label_map.copy()
    out[take] = best[take].astype(np.uint8)
    return out, stuff


def label_confidence(
    label_map: npt.NDArray[np.uint8], masks: Sequence[ClassMask], cams: npt.NDArray[np.float32], cam_in_mask: dict[int, float]
) -> npt.NDArray[np.float32]:
    """float32 [H, W] in 0..1: the confidence in each pixel's final label (MASK_FORMAT_CONFIDENCE).

    A class pixel: its mask's probability sigmoid(logit) x the class's CAM weight (mean normalised
    CAM inside the mask; 1 for a mask from boxes or clicks alone); where the mask does not cover
    it (a stuff class filled it), the class's CAM there. A background pixel: 1 - the highest mask
    probability there (1 where there is no mask). A not-confident (255) pixel: 0.
    """
    out = np.zeros(label_map.shape, np.float32)
    background = label_map == 0
    highest = np.zeros(label_map.shape, np.float32)
    for m in masks:
        prob = (1.0 / (1.0 + np.exp(-np.clip(m.logits, -60.0, 60.0)))).astype(np.float32)
        np.maximum(highest, prob, out=highest)
        region = label_map == m.class_id
        if not region.any():
            continue
        weight = cam_in_mask.get(m.class_id, 1.0) if m.uses_cam else 1.0
        covered = region & (m.logits > 0)
        out[covered] = prob[covered] * weight
        filled = region & ~covered
        out[filled] = cams[m.class_id - 1][filled] if m.uses_cam else prob[filled]
    out[background] = 1.0 - highest[background]
    return np.clip(out, 0.0, 1.0)

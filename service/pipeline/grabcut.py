"""Stage 5 without a SAM model in the repository: GrabCut (Rother et al. 2004) inside each box."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from service.errors import ModelNotFound
from service.pipeline.prompts import PromptSet
from service.pipeline.sam_masks import stability_score
from service.pipeline.types import ClassMask, InstanceMask

FOREGROUND_LOGIT = 4.0
MARGIN = 8


def box_logits(image: npt.NDArray[np.uint8], x0: float, y0: float, x1: float, y1: float, iterations: int = 5) -> npt.NDArray[np.float32]:
    """GrabCut initialised with the box on a crop around it; float32 [H, W] logits: +4 (probable)
    foreground, -4 elsewhere."""
    import cv2

    h, w = image.shape[:2]
    cx0, cy0 = max(0, int(x0) - MARGIN), max(0, int(y0) - MARGIN)
    cx1, cy1 = min(w, int(np.ceil(x1)) + MARGIN), min(h, int(np.ceil(y1)) + MARGIN)
    crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1, ::-1])  # OpenCV wants BGR
    mask = np.zeros(crop.shape[:2], np.uint8)
    rect = (int(x0) - cx0, int(y0) - cy0, max(1, int(np.ceil(x1 - x0))), max(1, int(np.ceil(y1 - y0))))
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    out = np.full((h, w), -FOREGROUND_LOGIT, np.float32)
    try:
        cv2.grabCut(crop, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # a box too small to model: take it whole
        out[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = FOREGROUND_LOGIT
        return out
    fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    out[cy0:cy1, cx0:cx1] = np.where(fg, FOREGROUND_LOGIT, -FOREGROUND_LOGIT)
    return out


def class_masks(image: npt.NDArray[np.uint8], sets: Sequence[PromptSet]) -> list[ClassMask]:
    """One GrabCut mask per box set, merged per class. GrabCut predicts no IoU: it is reported as 0
    (so such masks rank first for human review).

    Raises:
        ModelNotFound: a set that is not a box (tags, clicks, scribbles need SAM).
    """
    per_class: dict[int, list[tuple[PromptSet, npt.NDArray[np.float32]]]] = {}
    for s in sets:
        if s.kind != "box":
            raise ModelNotFound(
                f"weak labels of kind {s.kind!r} need a SAM model (sam_encoder and sam_decoder) in the model repository; "
                "without one only boxes are served (GrabCut)"
            )
        tl = next(p for p in s.prompts if p.label == 2)
        br = next(p for p in s.prompts if p.label == 3)
        per_class.setdefault(s.class_id, []).append((s, box_logits(image, tl.x, tl.y, br.x, br.y)))
    out = []
    for class_id in sorted(per_class):
        items = per_class[class_id]
        stack = np.stack([lg for _, lg in items])
        owner = stack.argmax(axis=0).astype(np.uint16) if len(items) > 1 else None
        logits = stack.max(axis=0)
        instances = tuple(InstanceMask("box", s.prompts, 0.0, stability_score(lg), int(np.count_nonzero(lg > 0))) for s, lg in items)
        out.append(ClassMask(class_id, logits, 0.0, stability_score(logits), tuple(p for s, _ in items for p in s.prompts), instances,
                             any(s.uses_cam for s, _ in items), owner=owner))
    return out

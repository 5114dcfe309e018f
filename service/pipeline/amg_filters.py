"""The filters of SAM's automatic mask generator, in numpy (no torch, no torchvision).

Each follows segment-anything's ``utils/amg.py`` and ``SamAutomaticMaskGenerator``:
- ``point_grid``: ``build_point_grid`` (cell centres of an n x n grid, normalised to [0, 1]);
- ``stability_scores``: ``calculate_stability_score`` (IoU of the mask thresholded at
  ``threshold + offset`` and at ``threshold - offset``; 1 for an empty mask, as there 0 / 0 is
  taken as stable);
- ``mask_boxes``: ``batched_mask_to_box`` (XYXY, inclusive max coordinates, [0, 0, 0, 0] for an
  empty mask);
- ``box_nms``: torchvision's ``nms`` (greedy by descending score, IoU of XYXY boxes with area
  (x1 - x0) * (y1 - y0), suppress IoU > threshold); ties keep the earlier box first;
- ``remove_small_regions``: ``remove_small_regions`` (8-connected components; "holes" fills
  background regions below the area, "islands" drops foreground ones; if every island is small the
  largest stays).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

EIGHT = np.ones((3, 3), bool)


def point_grid(n_per_side: int) -> npt.NDArray[np.float32]:
    """[n^2, 2] (x, y) in [0, 1]: the centres of an n x n grid, x varying fastest."""
    offset = 1.0 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32)


def stability_scores(logits: npt.NDArray[np.float32], threshold: float = 0.0, offset: float = 1.0) -> npt.NDArray[np.float32]:
    """[M] stability of mask logits [M, H, W]: |logits > t + o| / |logits > t - o| (1 where both are empty)."""
    flat = logits.reshape(logits.shape[0], -1)
    inter = np.count_nonzero(flat > threshold + offset, axis=1)
    union = np.count_nonzero(flat > threshold - offset, axis=1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0).astype(np.float32)


def mask_boxes(masks: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """[M, 4] XYXY boxes of binary masks [M, H, W] (max coordinates inclusive; zeros for an empty mask)."""
    out = np.zeros((masks.shape[0], 4), np.float32)
    for i, m in enumerate(masks):
        rows = np.flatnonzero(m.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(m.any(axis=0))
        out[i] = (cols[0], rows[0], cols[-1], rows[-1])
    return out


def box_iou(box: npt.NDArray[np.float32], boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """IoU of one XYXY box [4] with boxes [K, 4] (area = width x height, no +1)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0).astype(np.float32)


def box_nms(boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], iou_threshold: float) -> npt.NDArray[np.int64]:
    """Indices of the boxes kept by greedy NMS, by descending score."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(order), bool)
    boxes = np.asarray(boxes, np.float32)
    for rank, i in enumerate(order):
        if suppressed[rank]:
            continue
        keep.append(int(i))
        rest = order[rank + 1 :]
        if rest.size:
            suppressed[rank + 1 :] |= box_iou(boxes[i], boxes[rest]) > iou_threshold
    return np.array(keep, np.int64)


def remove_small_regions(mask: npt.NDArray[np.bool_], area_thresh: float, mode: str) -> tuple[npt.NDArray[np.bool_], bool]:
    """Fill small holes (``mode="holes"``) or drop small islands (``"islands"``) of a binary mask.

    Returns the mask and whether it changed.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', not {mode!r}")
    holes = mode == "holes"
    working = np.logical_xor(holes, mask)
    regions, n = ndi.label(working, structure=EIGHT)
    sizes = np.bincount(regions.ravel(), minlength=n + 1)[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    fill = [0] + small
    if not holes:
        fill = [i for i in range(n + 1) if i not in fill]
        if not fill:  # every island is small: keep the largest
            fill = [int(np.argmax(sizes)) + 1]
    return np.isin(regions, fill), True

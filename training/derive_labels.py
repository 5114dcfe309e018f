"""Weak labels derived deterministically from ground-truth label maps, for evaluation and tests.

Instances are the connected components of each class (components under ``min_pixels`` are
skipped). Boxes: each component's bounding box. Points: each component's most interior pixel
(maximum of the distance transform). Scribbles: 6 vertices along each component's skeleton,
ordered along its main axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from service.pipeline.types import Box, Click, Scribble, WeakLabels


def components(mask: npt.NDArray[np.uint8], min_pixels: int = 6) -> list[tuple[int, npt.NDArray[np.bool_]]]:
    """(class id, component mask) for every 8-connected component of every class (not 0 or 255)."""
    out = []
    for k in sorted(set(np.unique(mask).tolist()) - {0, 255}):
        labelled, n = ndi.label(mask == k, structure=np.ones((3, 3)))
        for i in range(1, n + 1):
            region = labelled == i
            if region.sum() >= min_pixels:
                out.append((int(k), region))
    return out


def boxes(mask: npt.NDArray[np.uint8], classes: Sequence[str]) -> tuple[Box, ...]:
    out = []
    for k, region in components(mask):
        ys, xs = np.nonzero(region)
        out.append(Box(classes[k - 1], float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))
    return tuple(out)


def points(mask: npt.NDArray[np.uint8], classes: Sequence[str]) -> tuple[Click, ...]:
    out = []
    for k, region in components(mask):
        dist = ndi.distance_transform_edt(region)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        out.append(Click(classes[k - 1], float(x) + 0.5, float(y) + 0.5))
    return tuple(out)


def scribbles(mask: npt.NDArray[np.uint8], classes: Sequence[str], vertices: int = 6, width: float = 3.0) -> tuple[Scribble, ...]:
    out = []
    for k, region in components(mask):
        ys, xs = np.nonzero(skeletonize(region))
        if len(xs) < 2:
            ys, xs = np.nonzero(region)
        pts = np.c_[xs, ys].astype(np.float64)
        centred = pts - pts.mean(axis=0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]
        order = np.argsort(centred @ axis)
        sel = order[np.linspace(0, len(order) - 1, vertices).astype(int)]
        out.append(Scribble(classes[k - 1], tuple((float(xs[j]) + 0.5, float(ys[j]) + 0.5) for j in sel), width))
    return tuple(out)


def image_labels(mask: npt.NDArray[np.uint8], classes: Sequence[str]) -> tuple[str, ...]:
    return tuple(classes[k - 1] for k in sorted(set(np.unique(mask).tolist()) - {0, 255}))


def derive(kind: str, mask: npt.NDArray[np.uint8], classes: Sequence[str]) -> WeakLabels:
    """Weak labels of ``kind``: tags, boxes, points, scribbles, or mixed (tags + first box + first
    click of another class)."""
    if kind == "tags":
        return WeakLabels(image_labels=image_labels(mask, classes))
    if kind == "boxes":
        return WeakLabels(boxes=boxes(mask, classes))
    if kind == "points":
        return WeakLabels(points=points(mask, classes))
    if kind == "scribbles":
        return WeakLabels(scribbles=scribbles(mask, classes))
    if kind == "mixed":
        b = boxes(mask, classes)[:1]
        boxed = {x.label for x in b}
        clicks = tuple(c for c in points(mask, classes) if c.label not in boxed)[:1]
        return WeakLabels(image_labels=image_labels(mask, classes), boxes=b, points=clicks)
    raise ValueError(f"unknown weak-label kind {kind!r}")


KINDS = ("tags", "boxes", "points", "scribbles", "mixed")

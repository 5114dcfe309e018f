"""Stage 5b: scribbles -> per-class masks by superpixel-graph label propagation (GraphNet, Pu et al. 2018),
fused with the mask model's answer to prompts sampled along the scribbles.

SLIC superpixels are the graph's nodes; edges join spatially adjacent superpixels, weighted by the
similarity of their features (CIELAB colour, plus the classifier's ``features`` pooled per
superpixel when the export has them); labels spread from the scribbled superpixels by label
spreading (Zhou et al. 2004): F = (I - alpha S)^-1 Y, S the symmetrically normalised affinity.
Background seeds are the superpixels the mask model gives no scribbled class (probability < 0.1)
and no scribble touches; without them, spreading from a thin scribble floods similar background.
A scribbled class's logits are 0.75 x the mask model's + 0.25 x the propagated ones (on 40
held-out generator images: per-class IoU 0.725 with the mask model alone, 0.716 with an equal
mix, 0.732 with this one; the graph helps thin scratches most).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse.linalg import spsolve
from skimage.color import rgb2lab
from skimage.segmentation import slic

from service.errors import Cancelled
from service.models.imageops import resize_maps
from service.pipeline.types import ClassMask
from service.pipeline.weak_labels import ResolvedScribble

_FINE = 3
"""Scribbles are rasterised on a grid this many times finer than the image (odd: pixel centres lie on it)."""
SAM_WEIGHT = 0.75
"""Weight of the mask model's logits in the fused scribble logits (the graph's: 1 - SAM_WEIGHT)."""


def rasterise(stroke: ResolvedScribble, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Pixels within width/2 (at least 0.75 px) of the polyline."""
    return rasterise_many([stroke], shape)


def rasterise_many(strokes: Sequence[ResolvedScribble], shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Pixels within width/2 (at least 0.75 px) of any of the polylines.

    The centrelines are drawn on a grid three times finer than the image's (its every third
    point a pixel centre) and a Euclidean distance transform measures each pixel centre's distance
    to them, once per distinct width: the cost is linear in the pixels of the strokes' bounding
    box and in their vertices, never their product (a 990-vertex scribble on a 1024 x 1024 image
    took 39 s with a distance per segment and pixel).
    """
    h, w = shape
    out = np.zeros(shape, bool)
    by_radius: dict[float, list[npt.NDArray[np.float64]]] = {}
    for stroke in strokes:
        by_radius.setdefault(max(stroke.width / 2.0, 0.75), []).append(np.array(stroke.points, np.float64))
    for r, polylines in by_radius.items():
        pts = np.concatenate(polylines)
        x0, y0 = np.floor(pts.min(axis=0) - r - 1).astype(int)
        x1, y1 = np.ceil(pts.max(axis=0) + r + 1).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        pad = int(np.ceil(r)) + 1  # centrelines passing just outside the crop still count
        canvas = np.full(((y1 - y0 + 2 * pad) * _FINE, (x1 - x0 + 2 * pad) * _FINE), 255, np.uint8)
        for line in polylines:
            # fine cell (a, b) has its centre at original ((b + 0.5) / 3 + x0 - pad, ...): pixel centres at b = 3j + 1
            fine = (line - [x0 - pad, y0 - pad]) * _FINE - 0.5
            cv2.polylines(canvas, [np.round(fine * 16).astype(np.int32).reshape(-1, 1, 2)], False, 0, 1, cv2.LINE_8, 4)
        dist = cv2.distanceTransform(canvas, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1 :: _FINE, 1 :: _FINE]
        out[y0:y1, x0:x1] |= dist[pad : pad + y1 - y0, pad : pad + x1 - x0] <= r * _FINE
    return out


def _check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("request cancelled or past its deadline during scribble propagation")


def superpixels(image: npt.NDArray[np.uint8], pixels_per_segment: int = 64) -> npt.NDArray[np.int64]:
    """SLIC labels [H, W], 0..K-1."""
    h, w = image.shape[:2]
    n = max(16, (h * w) // pixels_per_segment)
    return slic(image, n_segments=n, compactness=10.0, start_label=0, channel_axis=-1).astype(np.int64)


def _adjacency(labels: npt.NDArray[np.int64], k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        diff = a != b
        pairs.append(np.stack([a[diff], b[diff]], axis=1))
    edges = np.concatenate(pairs)
    edges = np.sort(edges, axis=1)
    edges = np.unique(edges[:, 0] * k + edges[:, 1])
    return edges // k, edges % k


def node_features(
    image: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64], k: int, features: npt.NDArray[np.float32] | None
) -> npt.NDArray[np.float64]:
    """Per-superpixel features: mean CIELAB colour (scaled), plus pooled classifier features."""
    counts = np.maximum(np.bincount(labels.ravel(), minlength=k), 1).astype(np.float64)
    lab = rgb2lab(image).reshape(-1, 3)
    cols = [np.bincount(labels.ravel(), weights=lab[:, c], minlength=k) / counts for c in range(3)]
    feats = [np.stack(cols, axis=1) / 10.0]
    if features is not None:
        h, w = labels.shape
        up = resize_maps(features, h, w).reshape(features.shape[0], -1)
        pooled = np.stack([np.bincount(labels.ravel(), weights=up[c], minlength=k) / counts for c in range(up.shape[0])], axis=1)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True) + 1e-8
        feats.append(pooled * 3.0)
    return np.concatenate(feats, axis=1)


def propagate(
    image: npt.NDArray[np.uint8],
    strokes: Sequence[ResolvedScribble],
    background: npt.NDArray[np.bool_] | None = None,
    features: npt.NDArray[np.float32] | None = None,
    alpha: float = 0.9,
    background_prior: float = 0.01,
    should_stop: Callable[[], bool] | None = None,
) -> dict[int, npt.NDArray[np.float32]]:
    """Probability of each scribbled class per pixel, from label spreading on the superpixel graph.

    Args:
        image: uint8 [H, W, 3].
        strokes: the scribbles (class ids >= 1).
        background: bool [H, W], pixels known to be background; a superpixel lying mostly in it
            is a background seed.
        features: optional classifier features [D, h, w].
        alpha: spreading strength (0..1; larger spreads further).
        background_prior: background score every node starts with.
        should_stop: polled between the steps (superpixels, graph, solve); Cancelled when True.

    Returns:
        class id -> float32 [H, W] in 0..1: F_k / (sum of F over classes + background).
    """
    labels = superpixels(image)
    _check(should_stop)
    k = int(labels.max()) + 1
    src, dst = _adjacency(labels, k)
    f = node_features(image, labels, k, features)
    d2 = ((f[src] - f[dst]) ** 2).sum(axis=1)
    sigma2 = (float(np.median(d2)) if len(d2) else 0.0) + 1e-8  # no edges: one superpixel
    wts = np.exp(-d2 / (2 * sigma2))
    aff = sparse.coo_matrix((np.concatenate([wts, wts]), (np.concatenate([src, dst]), np.concatenate([dst, src]))), shape=(k, k)).tocsr()
    deg = np.asarray(aff.sum(axis=1)).ravel()
    dinv = sparse.diags(1.0 / np.sqrt(np.maximum(deg, 1e-12)))
    s_mat = dinv @ aff @ dinv
    class_ids = sorted({s.class_id for s in strokes})
    y = np.zeros((k, len(class_ids) + 1))
    y[:, -1] = background_prior
    if background is not None:
        share = np.bincount(labels.ravel(), weights=background.ravel().astype(np.float64), minlength=k) / np.maximum(
            np.bincount(labels.ravel(), minlength=k), 1
        )
        y[share > 0.9, -1] = 1.0
    for col, class_id in enumerate(class_ids):
        nodes = np.unique(labels[rasterise_many([s for s in strokes if s.class_id == class_id], (labels.shape[0], labels.shape[1]))])
        y[nodes, :] = 0.0
        y[nodes, col] = 1.0
    _check(should_stop)
    system = (sparse.identity(k) - alpha * s_mat).tocsc()
    spread = np.asarray(spsolve(system, y))
    spread = np.maximum(spread.reshape(k, -1), 0.0)
    prob = spread / (spread.sum(axis=1, keepdims=True) + 1e-12)
    return {c: prob[:, i][labels].astype(np.float32) for i, c in enumerate(class_ids)}


def fuse(
    image: npt.NDArray[np.uint8],
    masks: Sequence[ClassMask],
    strokes: Sequence[ResolvedScribble],
    features: npt.NDArray[np.float32] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[ClassMask]:
    """Replace the logits of every scribbled class by ``SAM_WEIGHT`` x its mask-model logits +
    (1 - ``SAM_WEIGHT``) x the logits of its propagated probability; other classes pass through."""
    if not strokes:
        return list(masks)
    scribbled = {s.class_id for s in strokes}
    sam_prob = np.zeros(image.shape[:2], np.float32)
    for m in masks:
        if m.class_id in scribbled:
            sam_prob = np.maximum(sam_prob, 1.0 / (1.0 + np.exp(-np.clip(m.logits, -30, 30))))
    touched = rasterise_many(strokes, (image.shape[0], image.shape[1]))
    probs = propagate(image, strokes, background=(sam_prob < 0.1) & ~touched, features=features, should_stop=should_stop)
    out = []
    for m in masks:
        if m.class_id in probs:
            p = np.clip(probs[m.class_id], 1e-4, 1 - 1e-4)
            graph_logits = np.log(p / (1 - p)).astype(np.float32)
            m = replace(m, logits=(SAM_WEIGHT * m.logits + (1 - SAM_WEIGHT) * graph_logits).astype(np.float32))
        out.append(m)
    return out

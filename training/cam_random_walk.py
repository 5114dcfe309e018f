"""CAMs spread by a random walk over the classifier's own feature affinity (``cam_rw`` label sources).

A CAM fires on the most discriminative part of an object; the classifier's features know which
other pixels look alike. As in AffinityNet (Ahn & Kwak, CVPR 2018), each CAM is propagated by a
random walk whose transition probabilities come from pixel affinities, here without training an
affinity network: the affinity of two cells of the classifier's feature map (scale 1, stride 8)
is their cosine similarity, clipped at 0 and raised to ``beta``; rows normalised, the transition
matrix is applied ``steps`` times to each CAM at the feature map's resolution. The result is
upsampled back and normalised per class by its maximum, as ``multiscale_cams`` does.

Chosen on training splits (``bench/select_cam_random_walk.sh``, docs/RESULTS.md).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from service.models.imageops import resize_maps

RANDOM_WALK = (64.0, 8)
"""The random walk's affinity power ``beta`` and number of steps (``bench/select_cam_random_walk.sh``)."""
MAX_CELLS = 4096
"""A feature map with more cells is resized to about this many first (the transition matrix is
dense: 4,096 cells are 64 MiB)."""


def _power(a: npt.NDArray[np.float32], beta: float) -> npt.NDArray[np.float32]:
    """``a ** beta``; by repeated squaring when ``beta`` is a whole number (64: 6 products, 50x
    faster than ``np.power`` on a 1,080-cell map)."""
    if beta != int(beta):
        return np.power(a, np.float32(beta))
    n, out, base = int(beta), None, a
    while n:
        if n & 1:
            out = base.copy() if out is None else out * base
        n >>= 1
        if n:
            base = base * base
    assert out is not None
    return out


def random_walk(
    cams: npt.NDArray[np.float32], features: npt.NDArray[np.float32], beta: float, steps: int
) -> npt.NDArray[np.float32]:
    """``cams`` float32 [C, H, W] (0..1 per class) propagated over ``features`` float32 [D, h, w].

    Returns float32 [C, H, W], each class divided by its maximum (all zero stays all zero).
    """
    if beta <= 0 or steps < 1:
        raise ValueError(f"random walk needs beta > 0 and steps >= 1, got {beta}, {steps}")
    _, height, width = cams.shape
    dim, h, w = features.shape
    if h * w > MAX_CELLS:
        f = math.sqrt(MAX_CELLS / (h * w))
        h, w = max(1, int(h * f)), max(1, int(w * f))
        features = resize_maps(np.ascontiguousarray(features, np.float32), h, w)
    x = features.reshape(dim, -1).astype(np.float32)
    x /= np.linalg.norm(x, axis=0, keepdims=True) + np.float32(1e-5)
    affinity = _power(np.maximum(x.T @ x, 0.0), beta)
    transition = (affinity / affinity.sum(axis=1, keepdims=True)).T
    low = resize_maps(np.ascontiguousarray(cams, np.float32), h, w).reshape(len(cams), -1)
    for _ in range(steps):
        low = low @ transition
    out = resize_maps(np.ascontiguousarray(low.reshape(-1, h, w), np.float32), height, width)
    out /= out.reshape(len(out), -1).max(axis=1)[:, None, None] + np.float32(1e-5)
    return out

"""CAMs spread by a random walk over the classifier's own feature affinity.

A CAM fires on the most discriminative part of an object; the classifier's features know which
other pixels look alike. As in AffinityNet (Ahn & Kwak, CVPR 2018), each CAM is propagated by a
random walk whose transition probabilities come from pixel affinities, here without training an
affinity network: the affinity of two cells of the classifier's feature map (scale 1, stride 8)
is their cosine similarity, clipped at 0 and raised to ``beta``; rows normalised, the transition
matrix is applied ``steps`` times to each CAM at the feature map's resolution. The result is
upsampled back and normalised per class by its maximum, as ``multiscale_cams`` does.

Used by the Segment pipeline on the prompted classes' CAMs (``PipelineConfig.cam_walk_steps``)
and by the toolkit's ``cam_rw`` label sources. Chosen on training splits
(``bench/select_cam_random_walk.sh``, docs/RESULTS.md). Its products are numpy's BLAS, which the
server runs on one thread (``service/blas.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from service.models.imageops import resize_maps
from service.pipeline.cam import CamResult

RANDOM_WALK = (64.0, 8)
"""The random walk's affinity power ``beta`` and number of steps (``bench/select_cam_random_walk.sh``)."""
MAX_CELLS = 4096
"""A feature map with more cells is resized to about this many first (the transition matrix is
dense: 4,096 cells are 64 MiB)."""
NEGLIGIBLE = 1e-30
"""An affinity whose power is below this is 0: against the diagonal's 1 it changes nothing, and its
repeated squaring would pass through denormal floats (several times slower on x86)."""
MATRICES = 2
"""Dense cells x cells float32 matrices alive at once at the peak (the affinity and, for a power
that is not a power of two, the repeated-squaring base)."""


def _power(a: npt.NDArray[np.float32], beta: float) -> npt.NDArray[np.float32]:
    """``a ** beta``, overwriting ``a``; by repeated squaring when ``beta`` is a whole number (64:
    6 products, 50x faster than ``np.power`` on a 1,080-cell map)."""
    if beta != int(beta):
        return np.power(a, np.float32(beta), out=a)
    n, out, base = int(beta), None, a
    while n:
        if n & 1:
            if out is None:
                out = base if n == 1 else base.copy()  # the last factor needs no copy: base is done
            else:
                np.multiply(out, base, out=out)
        n >>= 1
        if n:
            np.multiply(base, base, out=base)
    assert out is not None
    return out


def _walk_shape(height: int, width: int) -> tuple[int, int]:
    """The grid the walk works on for a ``height`` x ``width`` feature map: itself, or resized to
    about MAX_CELLS cells when larger."""
    if height * width <= MAX_CELLS:
        return height, width
    f = math.sqrt(MAX_CELLS / (height * width))
    return max(1, int(height * f)), max(1, int(width * f))


def walk_cells(height: int, width: int) -> int:
    """Cells the walk works on for a ``height`` x ``width`` feature map (after the MAX_CELLS resize)."""
    h, w = _walk_shape(height, width)
    return h * w


def walk_bytes(cells: int) -> int:
    """Peak bytes of the dense matrices of a walk over ``cells`` cells."""
    return MATRICES * cells * cells * 4


def feature_cells(height: int, width: int, stride: float | None) -> int:
    """Cells of the walk over the features of a ``height`` x ``width`` image at ``stride`` input
    pixels per cell (None, not yet known: every pixel a cell, the bound)."""
    s = 1.0 if stride is None else max(1.0, stride)
    return walk_cells(math.ceil(height / s), math.ceil(width / s))


def walk_low_res(cams: npt.NDArray[np.float32], features: npt.NDArray[np.float32], beta: float, steps: int) -> npt.NDArray[np.float32]:
    """The walk itself: ``cams`` float32 [C, H, W] (0..1 per class) propagated over ``features``
    float32 [D, h, w], at the walk's grid (``_walk_shape``: the feature map, resized to about
    MAX_CELLS cells when larger). Returns float32 [C, h', w'], not yet normalised; ``upsample``
    makes CAMs of it. All its cost is here: the CAM cache keeps this result (``CamCache.walked``)."""
    if beta <= 0 or steps < 1:
        raise ValueError(f"random walk needs beta > 0 and steps >= 1, got {beta}, {steps}")
    dim, fh, fw = features.shape
    h, w = _walk_shape(fh, fw)
    if (h, w) != (fh, fw):
        features = resize_maps(np.ascontiguousarray(features, np.float32), h, w)
    x = features.reshape(dim, -1).astype(np.float32)
    x /= np.linalg.norm(x, axis=0, keepdims=True) + np.float32(1e-5)
    affinity = np.ascontiguousarray(x.T) @ x  # both operands contiguous: 4-8x faster than x.T @ x at 4,096 cells
    affinity[affinity < np.float32(NEGLIGIBLE ** (1.0 / beta))] = 0.0  # clips at 0, and spares the power denormal floats
    affinity = _power(affinity, beta)
    np.fill_diagonal(affinity, 1.0)  # a cell whose features are all zero (a black region) stays put rather than divide by 0
    affinity /= affinity.sum(axis=1, keepdims=True)  # the transition matrix, row i: where cell i's mass comes from
    low = resize_maps(np.ascontiguousarray(cams, np.float32), h, w).reshape(len(cams), -1).T  # [cells, C]
    for _ in range(steps):
        low = affinity @ low
    return np.ascontiguousarray(low.T.reshape(-1, h, w), np.float32)


def upsample(low: npt.NDArray[np.float32], height: int, width: int) -> npt.NDArray[np.float32]:
    """``walk_low_res``'s maps float32 [C, h', w'] as CAMs float32 [C, height, width]: resized,
    each class divided by its maximum (all zero stays all zero)."""
    out = resize_maps(low, height, width)
    out /= out.reshape(len(out), -1).max(axis=1)[:, None, None] + np.float32(1e-5)
    return out


def random_walk(
    cams: npt.NDArray[np.float32], features: npt.NDArray[np.float32], beta: float, steps: int
) -> npt.NDArray[np.float32]:
    """``cams`` float32 [C, H, W] (0..1 per class) propagated over ``features`` float32 [D, h, w].

    Returns float32 [C, H, W], each class divided by its maximum (all zero stays all zero).
    """
    _, height, width = cams.shape
    return upsample(walk_low_res(cams, features, beta, steps), height, width)


def walk_classes(result: CamResult, class_ids: Sequence[int], beta: float, steps: int) -> CamResult:
    """``result`` with the CAMs of ``class_ids`` (1-based) walked over its features; the other
    classes' CAMs as they were (``result`` itself, perhaps shared by a cache, is not changed)."""
    if result.features is None:
        raise ValueError("the random walk needs the classifier's features (its export has none, or the CAM scales lack 1.0)")
    rows = [k - 1 for k in class_ids]
    if not rows:
        return replace(result, cams=result.cams.copy())
    return with_walked(result, class_ids, walk_low_res(result.cams[rows], result.features, beta, steps))


def with_walked(result: CamResult, class_ids: Sequence[int], low: npt.NDArray[np.float32]) -> CamResult:
    """``result`` with the CAMs of ``class_ids`` (1-based) replaced by ``upsample(low)``, their
    walk (``walk_low_res``, one map per class in that order); ``result`` is not changed."""
    cams = result.cams.copy()
    cams[[k - 1 for k in class_ids]] = upsample(low, cams.shape[1], cams.shape[2])
    return replace(result, cams=cams)

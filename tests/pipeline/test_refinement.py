"""Refinement: dense CRF and superpixel snapping on synthetic arrays."""

from __future__ import annotations

import numpy as np

from service.pipeline.refinement import class_probabilities, dense_crf, refine, region_of_interest, superpixel_snap
from service.pipeline.types import Refinement


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A bright disc on a dark noisy background, and its exact mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 < 20**2
    img = np.where(disc[..., None], 200, 40) + rng.integers(-10, 10, (96, 96, 3))
    return np.clip(img, 0, 255).astype(np.uint8), disc


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_crf_snaps_a_sloppy_mask_to_the_edges() -> None:
    img, disc = _scene()
    yy, xx = np.mgrid[0:96, 0:96]
    sloppy = (yy - 46) ** 2 + (xx - 51) ** 2 < 24**2  # too big, off-centre
    logits = np.where(sloppy, 2.0, -2.0).astype(np.float32)
    probs = class_probabilities({1: logits}, disc.shape, 2)
    assert probs.shape == (3, 96, 96)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-5)
    out = dense_crf(img, probs)
    assert _iou(out == 1, disc) > _iou(sloppy, disc) + 0.1
    assert not (out == 2).any()


def test_superpixel_snap_majority_vote() -> None:
    img, disc = _scene()
    noisy = disc.astype(np.uint8)
    rng = np.random.default_rng(1)
    flip = rng.random(disc.shape) < 0.15
    noisy[flip] = 1 - noisy[flip]
    noisy[rng.random(disc.shape) < 0.05] = 255
    out = superpixel_snap(img, noisy)
    assert _iou(out == 1, disc) > _iou(noisy == 1, disc) + 0.1
    assert (out == 255).mean() < 0.01


def test_refine_dispatch() -> None:
    img, disc = _scene()
    img.flags.writeable = False  # decoded request images are read-only buffers
    lm = disc.astype(np.uint8)
    assert refine(lm, img, Refinement.NONE) is lm
    assert refine(lm, img, Refinement.CRF).shape == lm.shape
    assert refine(lm, img, Refinement.SUPERPIXEL).shape == lm.shape


def test_refinement_stays_inside_the_region_of_interest() -> None:
    img, disc = _scene()
    lm = np.zeros((96, 96), np.uint8)
    lm[40:50, 40:50] = 1
    roi = region_of_interest(lm, margin=4)
    assert roi == (slice(36, 54), slice(36, 54))
    for method in (Refinement.CRF, Refinement.SUPERPIXEL):
        out = refine(lm, img, method)
        outside = np.ones_like(lm, bool)
        outside[roi] = False
        assert not out[outside].any()
    empty = np.zeros_like(lm)
    assert refine(empty, img, Refinement.CRF) is empty

"""Scribbles: rasterising, sampling along them, graph label propagation, fusion with the mask model."""

from __future__ import annotations

import numpy as np

from service.pipeline.prompts import sample_points
from service.pipeline.scribbles import fuse, propagate, rasterise
from service.pipeline.types import ClassMask
from service.pipeline.weak_labels import ResolvedScribble


def _two_blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160]
    a = (yy - 40) ** 2 + (xx - 40) ** 2 < 25**2
    b = (yy - 80) ** 2 + (xx - 115) ** 2 < 28**2
    img = np.full((120, 160, 3), 60.0)
    img[a] = (200, 60, 60)
    img[b] = (60, 200, 60)
    img += rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), a, b


def test_rasterise_and_sample() -> None:
    s = ResolvedScribble(1, ((10.0, 10.0), (30.0, 10.0)), 4.0)
    m = rasterise(s, (20, 40))
    assert m[10, 10:30].all() and not m[0].any() and not m[:, :7].any()
    assert 70 <= m.sum() <= 110  # a 20 px segment, 4 px wide, with round caps
    pts = sample_points(s, 5)
    np.testing.assert_allclose(pts[:, 1], 10.0)
    np.testing.assert_allclose(pts[:, 0], np.linspace(10, 30, 7)[1:-1], atol=1e-5)


def test_propagation_fills_each_blob_from_its_scribble() -> None:
    img, a, b = _two_blobs()
    strokes = [ResolvedScribble(1, ((30.0, 40.0), (50.0, 42.0)), 3.0), ResolvedScribble(2, ((105.0, 80.0), (125.0, 85.0)), 3.0)]
    background = np.zeros(a.shape, bool)
    background[:8], background[-8:] = True, True  # top and bottom bands known to be background
    probs = propagate(img, strokes, background=background)
    for k, truth in ((1, a), (2, b)):
        pred = probs[k] > 0.5
        assert (pred & truth).sum() / (pred | truth).sum() > 0.7


def test_fuse_only_touches_scribbled_classes() -> None:
    img, a, b = _two_blobs()
    la = np.where(a, 3.0, -3.0).astype(np.float32)
    lb = np.where(b, 3.0, -3.0).astype(np.float32)
    masks = [ClassMask(1, la, 0.9, 0.9, ()), ClassMask(2, lb, 0.9, 0.9, ())]
    out = fuse(img, masks, [ResolvedScribble(1, ((30.0, 40.0), (50.0, 42.0)), 3.0)])
    assert out[1].logits is lb
    assert not np.array_equal(out[0].logits, la)
    fused = out[0].logits > 0
    assert (fused & a).sum() / (fused | a).sum() > 0.8
    assert fuse(img, masks, []) == masks

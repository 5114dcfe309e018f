"""Mask encodings (PNG, COCO RLE) and quality metrics."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from service.pipeline.encoding import coco_rle, encode_png
from service.pipeline.evaluation import quality_metrics


@pytest.mark.parametrize("seed", range(6))
def test_coco_rle_matches_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 60, 2)
    m = rng.random((h, w)) < rng.uniform(0.05, 0.95)
    if seed == 0:
        m[:] = False
    if seed == 1:
        m[:] = True
    ours = coco_rle(m)
    ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert ours["counts"] == ref["counts"].decode()
    assert ours["size"] == [int(h), int(w)]
    np.testing.assert_array_equal(mask_utils.decode({"size": ours["size"], "counts": ours["counts"].encode()}), m)


def test_png_round_trip() -> None:
    lm = np.array([[0, 1, 2], [255, 4, 0]], np.uint8)
    img = Image.open(io.BytesIO(encode_png(lm)))
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img), lm)


def test_metrics_known_values() -> None:
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [255, 255, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 255], [1, 1, 2, 0]], np.uint8)
    m = quality_metrics(pred, gt, num_classes=2)
    # valid pixels: 10; correct: (0,0),(1,0),(1,1) bg, (0,2),(0,3),(1,2) cls1, (2,2) cls2 -> 7
    assert m.pixel_accuracy == pytest.approx(7 / 10)
    assert m.per_class[0] == pytest.approx(3 / 5)  # tp 3, pred 0 at 4 valid px, gt 0 at 4 -> union 5
    assert m.per_class[1] == pytest.approx(3 / 5)  # tp 3, pred 1 on 4 valid px, gt 1 on 4 px
    assert m.per_class[2] == pytest.approx(1 / 2)
    assert m.miou == pytest.approx((0.6 + 0.6 + 0.5) / 3)


def test_perfect_prediction() -> None:
    gt = np.random.default_rng(0).integers(0, 4, (20, 20)).astype(np.uint8)
    m = quality_metrics(gt, gt, 3)
    assert m.miou == 1.0 and m.pixel_accuracy == 1.0

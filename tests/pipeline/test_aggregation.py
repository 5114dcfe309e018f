"""Confidence aggregation (S2C CPM): per-pixel argmax of confidence, uncovered = background, 255 below threshold."""

from __future__ import annotations

import numpy as np
import pytest

from service.pipeline.aggregation import aggregate, class_confidence
from service.pipeline.sam_masks import stability_score
from service.pipeline.types import ClassMask, ConfidenceScore


def _mask(class_id: int, logits: np.ndarray) -> ClassMask:
    return ClassMask(class_id, logits.astype(np.float32), 0.9, stability_score(logits), ())


def test_logit_x_cam_reference_rule() -> None:
    h, w = 4, 6
    a = np.full((h, w), -5.0)
    a[:, :4] = 4.0  # class 1 covers columns 0-3 with logit 4
    b = np.full((h, w), -5.0)
    b[:, 2:] = 3.0  # class 2 covers columns 2-5 with logit 3
    cams = np.zeros((2, h, w), np.float32)
    cams[0] = 0.5
    cams[1] = 1.0
    out = aggregate([_mask(1, a), _mask(2, b)], cams, ConfidenceScore.LOGIT_X_CAM, threshold=0.0, shape=(h, w))
    # class 1: 4 * 0.5 = 2.0, class 2: 3 * 1.0 = 3.0 -> overlap (cols 2-3) goes to class 2
    np.testing.assert_array_equal(out.label_map[0], [1, 1, 2, 2, 2, 2])
    assert out.cam_in_mask == {1: 0.5, 2: 1.0}
    np.testing.assert_allclose(out.confidence[0], [2, 2, 3, 3, 3, 3])


def test_uncovered_is_background_and_low_confidence_is_ignore() -> None:
    logits = np.array([[-1.0, 0.5, 4.0]])
    cams = np.ones((1, 1, 3), np.float32)
    out = aggregate([_mask(1, logits)], cams, ConfidenceScore.LOGIT_X_CAM, threshold=1.0, shape=(1, 3))
    np.testing.assert_array_equal(out.label_map, [[0, 255, 1]])


def test_stability_x_cam_paper_rule() -> None:
    logits = np.array([[3.0, 3.0, 0.5, -3.0]])
    stab = stability_score(logits)
    assert stab == pytest.approx(2 / 3)
    cam = np.array([[0.9, 0.2, 0.6, 1.0]], np.float32)
    conf, mean_cam = class_confidence(_mask(1, logits), cam, ConfidenceScore.STABILITY_X_CAM)
    np.testing.assert_allclose(conf[0, :3], stab * cam[0, :3], rtol=1e-6)
    assert conf[0, 3] == -np.inf
    assert mean_cam == pytest.approx((0.9 + 0.2 + 0.6) / 3)


def test_no_masks_is_all_background() -> None:
    out = aggregate([], np.zeros((2, 3, 3), np.float32), ConfidenceScore.LOGIT_X_CAM, 0.0, (3, 3))
    assert not out.label_map.any()

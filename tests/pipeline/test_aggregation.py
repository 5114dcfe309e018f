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


def _class_mask(class_id: int, region: np.ndarray) -> ClassMask:
    return ClassMask(class_id=class_id, logits=np.where(region, 5.0, -5.0).astype(np.float32), iou_prediction=0.9, stability=0.9,
                     prompts=(), instances=(), uses_cam=True)


def test_fill_stuff_gives_a_stuff_class_what_its_cam_knows() -> None:
    from service.pipeline.aggregation import cam_agreement, fill_stuff

    cams = np.zeros((2, 10, 10), np.float32)
    cams[0, :, :4] = 0.9  # class 1 (an object) in columns 0-3
    cams[1, :, 4:] = 0.8  # class 2 (sky) in columns 4-9
    cams[0, 0:2, 4:6] = 0.2  # where class 1's mask leaks into the sky, its own CAM is weak
    obj = np.zeros((10, 10), bool)
    obj[:, :4] = True
    obj[0:2, 4:6] = True  # the leak
    sky = np.zeros((10, 10), bool)
    sky[8:, 8:] = True  # the sky mask covers 4 of its 60 CAM pixels
    label_map = np.zeros((10, 10), np.uint8)
    label_map[obj] = 1
    label_map[sky] = 2
    masks = [_class_mask(1, obj), _class_mask(2, sky)]
    assert cam_agreement(sky, cams[1], 0.35) == pytest.approx(4 / 60)
    assert cam_agreement(obj, cams[0], 0.35) == 1.0
    out, stuff = fill_stuff(label_map, masks, cams, (1, 2), 0.5, 0.35)
    assert stuff == (2,)
    assert (out[:, :4] == 1).all()  # the object keeps what its CAM supports
    assert (out[:, 4:] == 2).all()  # the sky, including the leak its CAM does not support
    unchanged, none = fill_stuff(label_map, masks, cams, (1, 2), 0.0, 0.35)
    assert none == () and np.array_equal(unchanged, label_map)


def test_fill_stuff_leaves_pixels_no_cam_is_sure_of() -> None:
    from service.pipeline.aggregation import fill_stuff

    cams = np.full((1, 6, 6), 0.1, np.float32)
    cams[0, :3] = 0.9
    label_map = np.zeros((6, 6), np.uint8)
    out, stuff = fill_stuff(label_map, [_class_mask(1, np.zeros((6, 6), bool))], cams, (1,), 0.5, 0.35)
    assert stuff == (1,) and (out[:3] == 1).all() and (out[3:] == 0).all()


def test_label_confidence_by_hand() -> None:
    """Class pixels: sigmoid(logit) x mean CAM in the mask (1 for a box mask); stuff-filled pixels:
    the CAM; background: 1 - the highest mask probability; 255: 0."""
    from service.pipeline.aggregation import label_confidence

    logits_a = np.array([[2.0, 2.0, -1.0, -3.0]], np.float32)
    logits_b = np.array([[-2.0, -2.0, -2.0, 1.0]], np.float32)
    cams = np.array([[[0.8, 0.6, 0.9, 0.1]], [[0.0, 0.0, 0.0, 0.0]]], np.float32)
    a = ClassMask(1, logits_a, 0.9, 1.0, (), uses_cam=True)
    b = ClassMask(2, logits_b, 0.9, 1.0, (), uses_cam=False)
    label_map = np.array([[1, 255, 1, 0]], np.uint8)  # pixel 2: class 1 filled as stuff (logit < 0)
    q = label_confidence(label_map, [a, b], cams, {1: 0.7, 2: 0.0})
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(q[0], [sig(2.0) * 0.7, 0.0, 0.9, 1 - sig(1.0)], rtol=1e-6)
    label_map_b = np.array([[0, 0, 0, 2]], np.uint8)
    q_b = label_confidence(label_map_b, [a, b], cams, {1: 0.7, 2: 0.0})
    np.testing.assert_allclose(q_b[0], [1 - sig(2.0), 1 - sig(2.0), 1 - sig(-1.0), sig(1.0)], rtol=1e-6)

"""The CAM random walk (``cam_rw`` label sources) on tiny fixed maps, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from training import cam_random_walk
from training.cam_random_walk import random_walk


def test_one_step_over_two_cells_matches_the_hand_computed_transition() -> None:
    # cells (0, 0) and (0, 1): features [1, 0] and [1, 1] / sqrt 2, cosine 0.7071; beta 2 -> affinity 0.5
    features = np.array([[[1.0, 1.0]], [[0.0, 1.0]]], np.float32)
    cams = np.array([[[1.0, 0.0]]], np.float32)
    # rows of [[1, .5], [.5, 1]] normalised: [[2/3, 1/3], [1/3, 2/3]]; one step: [2/3, 1/3]; / max: [1, 0.5]
    np.testing.assert_allclose(random_walk(cams, features, beta=2.0, steps=1), [[[1.0, 0.5]]], atol=1e-4)
    # two steps: [2/3, 1/3] @ T = [5/9, 4/9]; / max: [1, 0.8]
    np.testing.assert_allclose(random_walk(cams, features, beta=2.0, steps=2), [[[1.0, 0.8]]], atol=1e-4)
    # one step from [1, 0] gives [1, affinity] after the division: 0.7071 ** 0.5 and ** 5 (fractional and odd powers)
    np.testing.assert_allclose(random_walk(cams, features, beta=0.5, steps=1), [[[1.0, 0.5 ** 0.25]]], atol=1e-4)
    np.testing.assert_allclose(random_walk(cams, features, beta=5.0, steps=1), [[[1.0, 0.5 ** 2.5]]], atol=1e-4)


def test_a_cam_spreads_over_the_cells_that_look_alike_and_not_across() -> None:
    # left half and right half have orthogonal features: a CAM peak on the left spreads over the left only
    features = np.zeros((2, 4, 4), np.float32)
    features[0, :, :2] = 1.0
    features[1, :, 2:] = 1.0
    cams = np.zeros((2, 4, 4), np.float32)
    cams[0, 1, 0] = 1.0
    out = random_walk(cams, features, beta=8.0, steps=3)
    assert out.shape == (2, 4, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, :2], 1.0, atol=1e-4)  # the whole left half, each cell equal after the walk
    np.testing.assert_allclose(out[0, :, 2:], 0.0, atol=1e-6)
    assert not out[1].any()  # an empty CAM stays empty


def test_the_walk_upsamples_back_to_the_image_and_refuses_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(8, 6, 10)).astype(np.float32)
    cams = rng.random((3, 48, 80)).astype(np.float32)
    out = random_walk(cams, features, beta=4.0, steps=2)
    assert out.shape == (3, 48, 80)
    np.testing.assert_allclose(out.reshape(3, -1).max(axis=1), 1.0, atol=1e-4)
    monkeypatch.setattr(cam_random_walk, "MAX_CELLS", 15)  # 60 cells: the feature map is resized to about 15 first
    small = random_walk(cams, features, beta=4.0, steps=2)
    assert small.shape == (3, 48, 80) and not np.allclose(small, out)
    for beta, steps in ((0.0, 1), (-1.0, 2), (4.0, 0)):
        with pytest.raises(ValueError, match="random walk needs"):
            random_walk(cams, features, beta, steps)

"""S2C's losses on tiny fixed tensors against values computed by hand, and targets that follow the
batch augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.s2c import augment_like, cpm_loss, ssc_loss  # noqa: E402


def _ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_ssc_is_infonce_to_segment_prototypes() -> None:
    # three pixels: (1, 0), (0, 1), (2, 0); segments 1, 1, 2; no pixel outside a segment
    feats = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]).reshape(1, 2, 1, 3)
    segments = torch.tensor([[[1, 1, 2]]])
    r = 1 / math.sqrt(2)  # prototype 1 = normalise((0.5, 0.5)); prototype 2 = (1, 0)
    want = (_ce([r, 1.0], 0) + _ce([r, 0.0], 0) + _ce([r, 1.0], 1)) / 3
    assert ssc_loss(feats, segments).item() == pytest.approx(want, abs=1e-5)
    want_t = (_ce([2 * r, 2.0], 0) + _ce([2 * r, 0.0], 0) + _ce([2 * r, 2.0], 1)) / 3
    assert ssc_loss(feats, segments, temperature=2.0).item() == pytest.approx(want_t, abs=1e-5)


def test_ssc_pixels_outside_segments_are_negatives_not_targets() -> None:
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    segments = torch.tensor([[[0, 1]]])  # pixel 0 in no segment: its prototype (1, 0) is a negative
    assert ssc_loss(feats, segments).item() == pytest.approx(_ce([0.0, 1.0], 1), abs=1e-5)
    assert ssc_loss(feats, torch.zeros(1, 1, 2, dtype=torch.long)).item() == 0.0


def test_ssc_gradient_moves_features_only() -> None:
    feats = torch.randn(2, 4, 3, 3, requires_grad=True)
    segments = torch.randint(0, 3, (2, 3, 3))
    ssc_loss(feats, segments).backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()


def test_cpm_is_cross_entropy_on_cams_and_one_minus_max() -> None:
    cams = torch.tensor([[[[2.0]], [[-1.0]]]])  # class 0 fires, class 1 is unlabelled
    labels = torch.tensor([[1.0, 0.0]])
    targets = torch.tensor([[[0, 2, 255]]])  # class 0, background (index C = 2), ignored
    norm = 2.0 / (2.0 + 1e-5)
    logits = [norm, 0.0, 1.0 - norm]
    want = (_ce(logits, 0) + _ce(logits, 2)) / 2
    assert cpm_loss(cams, labels, targets).item() == pytest.approx(want, abs=1e-5)
    assert cpm_loss(cams, labels, torch.full((1, 1, 3), 255)).item() == 0.0


def test_targets_follow_the_image_augmentation() -> None:
    image = torch.arange(2 * 3 * 8 * 6, dtype=torch.float32).reshape(2, 3, 8, 6)
    index = image[:, :1].long()
    for aug in [(True, False, 1, 1.0), (False, True, 3, 0.5), (True, True, 2, 1.0)]:
        x = augment_like(image, *aug, nearest=False)
        t = augment_like(index, *aug, nearest=True)
        assert t.dtype == torch.long and t.shape[2:] == x.shape[2:]
        if aug[3] == 1.0:
            assert torch.equal(t[:, 0], x[:, 0].long())
    np.testing.assert_array_equal(augment_like(index, False, False, 0, 1.0, nearest=True).numpy(), index.numpy())

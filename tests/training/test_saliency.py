"""The cam_saliency pseudo-label source's parts on tiny fixed maps, against hand-computed values,
and its salient-object model against the network it was exported from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.datasets import DatasetError
from training.saliency import CAM_FLOOR, SaliencyModel, class_objectness, fill_empty, object_classes, saliency_unary

NAN = float("nan")


def test_class_objectness_is_the_mean_saliency_where_a_class_cam_is_strong() -> None:
    cams1 = np.zeros((3, 2, 2), np.float32)
    cams1[0] = [[0.9, 0.1], [0.85, 0.0]]  # strong (>= 0.8) at (0, 0) and (1, 0)
    sal1 = np.array([[1.0, 0.0], [0.5, 0.2]], np.float32)
    cams2 = np.zeros((3, 2, 2), np.float32)
    cams2[0] = 0.9  # strong everywhere; class 1 tagged but never strong
    sal2 = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    got = class_objectness([([0], cams1, sal1), ([0, 1], cams2, sal2)], 3)
    assert got[0] == pytest.approx((1.0 + 0.5 + 2.0) / 6)
    assert np.isnan(got[1]) and np.isnan(got[2])  # never strong / never tagged


def _maps() -> tuple[np.ndarray, np.ndarray]:
    saliency = np.zeros((4, 4), np.float32)
    saliency[:, :2] = 1.0  # the left half is a salient object
    scores = np.zeros((2, 4, 4), np.float32)
    scores[0][:, :2], scores[0][:, 2:] = 1.0, 0.2  # fires on the object: 1 / (1 + 0.2) = 0.833 of it inside
    scores[1][:, :2], scores[1][:, 2:] = 0.1, 0.9  # fires around it: 0.1 / (0.1 + 0.9) = 0.1 inside
    return scores, saliency


def test_object_classes_from_this_image_and_the_set() -> None:
    scores, saliency = _maps()
    no = np.zeros(2, bool)
    assert object_classes(scores, saliency, np.array([NAN, NAN]), no).tolist() == [True, False]
    # the set's measure counts half: 0.5 * 0.833 + 0.5 * 0.0 = 0.417 (stuff), 0.5 * 0.1 + 0.5 * 1.0 = 0.55 (object)
    assert object_classes(scores, saliency, np.array([0.0, 1.0]), no).tolist() == [False, True]
    # both at or above 0.5: the larger alone is the object
    assert object_classes(scores, saliency, np.array([1.0, 0.95]), no).tolist() == [True, False]
    # both below (0.417, 0.05): the larger is still one
    assert object_classes(scores, saliency, np.array([0.0, 0.0]), no).tolist() == [True, False]
    # a stuff-only candidate (the background) is never an object
    assert object_classes(scores, saliency, np.array([NAN, NAN]), np.array([True, False])).tolist() == [False, True]


def test_no_split_without_two_candidates_or_without_a_salient_region() -> None:
    scores, saliency = _maps()
    no = np.zeros(2, bool)
    assert not object_classes(scores, np.zeros_like(saliency), np.array([NAN, NAN]), no).any()
    assert not object_classes(scores, np.ones_like(saliency), np.array([NAN, NAN]), no).any()
    assert not object_classes(scores[:1], saliency, np.array([NAN]), no[:1]).any()
    assert not object_classes(scores, saliency, np.array([NAN, NAN]), np.array([True, True])).any()


def test_an_empty_cam_takes_the_saliency_the_other_cams_leave_unexplained() -> None:
    scores, saliency = _maps()
    same, empty = fill_empty(scores, saliency)
    assert same is scores and not empty.any()
    quiet = np.concatenate([scores[1:], np.zeros((1, 4, 4), np.float32)])  # stuff fires around the object; the object's CAM is empty
    quiet[0, 0, 0] = 0.6  # and a little on it
    filled, empty = fill_empty(quiet, saliency)
    assert empty.tolist() == [False, True]
    np.testing.assert_array_equal(filled[0], quiet[0])
    expected = saliency * (1.0 - quiet[0])  # 0.4 at (0, 0), 0.9 elsewhere on the object, 0 off it
    np.testing.assert_allclose(filled[1], expected, rtol=1e-6)
    assert filled[1, 0, 0] == pytest.approx(0.4) and filled[1, 1, 1] == pytest.approx(0.9) and filled[1, 0, 3] == 0.0
    # this image's objectness alone makes it the object
    assert object_classes(filled, saliency, np.array([0.1, NAN]), np.zeros(2, bool)).tolist() == [False, True]
    # all empty: the saliency itself
    filled, empty = fill_empty(np.zeros((2, 4, 4), np.float32), saliency)
    assert empty.all() and (filled == saliency).all()


def test_saliency_unary_weights_objects_by_saliency_and_stuff_by_its_complement() -> None:
    scores, saliency = _maps()
    probs = saliency_unary(scores, saliency, np.array([True, False]))
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-6)
    # left (s = 1): object min(1.02 * 1.001, 1) = 1, stuff (0.1 + 0.02) * 0.001
    obj, stuff = 1.0, (0.1 + CAM_FLOOR) * 1e-3
    assert probs[0, 0, 0] == pytest.approx(obj / (obj + stuff))
    # right (s = 0): object (0.2 + 0.02) * 0.001, stuff min(0.92 * 1.001, 1)
    obj, stuff = (0.2 + CAM_FLOOR) * 1e-3, (0.9 + CAM_FLOOR) * 1.001
    assert probs[1, 0, 3] == pytest.approx(stuff / (obj + stuff))
    # a salient pixel where no object's CAM fires still goes to the object
    quiet = scores.copy()
    quiet[0][:, :2] = 0.0
    assert saliency_unary(quiet, saliency, np.array([True, False]))[:, 0, 0].argmax() == 0
    # without an object: the CAMs alone, normalised
    plain = saliency_unary(scores, saliency, np.zeros(2, bool))
    np.testing.assert_allclose(plain[:, 0, 0], [1.0 / 1.1, 0.1 / 1.1], rtol=1e-5)


def test_the_saliency_model_is_its_networks_softmax(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from training.common import to_tensor
    from training.export import export_deeplab
    from training.nets import DeepLab

    torch.manual_seed(0)
    net = DeepLab(1).eval()
    export_deeplab(net, ["object"], tmp_path / "sal", input_side=64)
    model = SaliencyModel(tmp_path / "sal")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), np.uint8)  # already at its side: no resize
    with torch.no_grad():
        want = torch.softmax(net(to_tensor(image[None])), 1)[0, 1].numpy()
    np.testing.assert_allclose(model.probability(image), want, atol=1e-4)
    big = model.probability(rng.integers(0, 255, (150, 100, 3), np.uint8))  # run at 64 x 43, back at the image's size
    assert big.shape == (150, 100) and big.dtype == np.float32 and 0.0 <= big.min() and big.max() <= 1.0


def test_the_saliency_model_must_be_a_one_class_deeplab(tmp_path: Path) -> None:
    from tests.conftest import DEFAULT_REPO

    with pytest.raises(DatasetError, match="a saliency model has one class"):
        SaliencyModel(DEFAULT_REPO)
    with pytest.raises(DatasetError, match="saliency model .*missing.*does not exist"):
        SaliencyModel(tmp_path / "missing")

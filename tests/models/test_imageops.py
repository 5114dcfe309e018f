"""The fast image and map operations equal their plain reference versions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from service.models.deeplab import label_map_and_confidence
from service.models.imageops import IMAGENET_MEAN, IMAGENET_STD, normalise, normalised_resize, resize_image, resize_maps


def _pil_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(m, mode="F").resize((width, height), Image.Resampling.BILINEAR)) for m in maps])


@pytest.mark.parametrize("size", [(256, 256), (300, 200), (40, 33), (16, 64), (8, 8)])
def test_resize_maps_equals_pillow_up_and_down(size: tuple[int, int]) -> None:
    maps = np.random.default_rng(0).normal(size=(3, 32, 40)).astype(np.float32)
    got = resize_maps(maps, *size)
    assert got.shape == (3, *size)
    np.testing.assert_allclose(got, _pil_maps(maps, *size), atol=1e-5)


def test_resize_maps_fills_a_strided_view() -> None:
    maps = np.random.default_rng(1).normal(size=(2, 10, 12)).astype(np.float32)
    padded = np.zeros((2, 64, 64), np.float32)
    resize_maps(maps, 30, 36, out=padded[:, :30, :36])
    np.testing.assert_allclose(padded[:, :30, :36], _pil_maps(maps, 30, 36), atol=1e-5)
    assert not padded[:, 30:].any() and not padded[:, :, 36:].any()


def test_normalise_is_the_imagenet_formula() -> None:
    image = np.random.default_rng(2).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    want = ((image.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(normalise(image), want, atol=1e-6)
    out = np.zeros((3, 32, 32), np.float32)
    normalise(image, out=out[:, :17, :23])
    np.testing.assert_allclose(out[:, :17, :23], want, atol=1e-6)
    assert not out[:, 17:].any()


@pytest.mark.parametrize("size", [(64, 96), (37, 50), (16, 24), (32, 48)])
def test_normalised_resize_matches_resize_then_normalise(size: tuple[int, int]) -> None:
    image = np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    want = normalise(resize_image(image, *size))
    got = normalised_resize(image, *size)
    # upscaling skips Pillow's uint8 rounding of the resized image: at most one grey level apart
    assert np.abs(got - want).max() <= 1.01 / IMAGENET_STD.min()


def _reference(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = logits - logits.max(axis=0, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=0, keepdims=True)
    return p.argmax(axis=0).astype(np.uint8), p.max(axis=0)


@pytest.mark.parametrize("k", [1, 2, 6, 21])
def test_label_map_and_confidence_equal_softmax_argmax(k: int) -> None:
    logits = np.random.default_rng(k).normal(scale=4, size=(k, 31, 17)).astype(np.float32)
    logits[:, 0, :] = 0.5  # ties everywhere on the first row: the first class wins, as np.argmax
    logits[-1, 1, :] = logits[0, 1, :]  # ties between the first and the last class
    labels, confidence = label_map_and_confidence(logits)
    want_labels, want_conf = _reference(logits)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(confidence, want_conf, rtol=1e-5)
    assert labels.dtype == np.uint8 and confidence.dtype == np.float32

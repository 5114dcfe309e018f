"""The per-image CAM cache: same results as computing them, read-only, bounded, observed."""

from __future__ import annotations

import numpy as np
import pytest

from service.models.cam_classifier import CamClassifier
from service.pipeline.cam import multiscale_cams
from service.pipeline.cam_cache import CamCache
from service.runtime import ModelRepository
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from tests.conftest import DEFAULT_REPO
from training.synthetic import HELD_OUT_SEED, generate


@pytest.fixture(scope="module")
def classifier() -> CamClassifier:
    backend = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider")
    backend.load(["cam_classifier"])
    return CamClassifier(backend)


def test_hits_equal_fresh_results_and_cannot_be_changed(classifier: CamClassifier) -> None:
    seen: list[bool] = []
    cache = CamCache(64 << 20, seen.append)
    image = generate(HELD_OUT_SEED, 3).image
    first = cache.cams(classifier, image, (0.5, 1.0), True)
    second = cache.cams(classifier, image, (0.5, 1.0), True)
    fresh = multiscale_cams(classifier, image, (0.5, 1.0), True)
    assert second is first and seen == [False, True]
    np.testing.assert_array_equal(first.cams, fresh.cams)
    np.testing.assert_array_equal(first.probabilities, fresh.probabilities)
    with pytest.raises(ValueError):
        first.cams[0, 0, 0] = 1.0
    assert cache.cams(classifier, image, (1.0,), True) is not first  # other settings: another entry
    assert cache.cams(classifier, image.copy(), (0.5, 1.0), True) is first  # same pixels, another array: a hit
    assert seen[-2:] == [False, True]


def test_bounded_in_bytes(classifier: CamClassifier) -> None:
    images = [generate(HELD_OUT_SEED, i).image for i in range(4)]
    one = multiscale_cams(classifier, images[0], (1.0,), False)
    size = one.cams.nbytes + one.probabilities.nbytes + (one.features.nbytes if one.features is not None else 0)
    cache = CamCache(2 * size + 1)
    for image in images:
        cache.cams(classifier, image, (1.0,), False)
    assert len(cache) == 2 and cache.size_bytes <= 2 * size + 1
    off = CamCache(0)
    off.cams(classifier, images[0], (1.0,), False)
    assert len(off) == 0

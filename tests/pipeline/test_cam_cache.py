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


def test_a_segment_request_hashes_its_pixels_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both caches key on the image's pixels: the Segmenter hashes them once and hands the key to both."""
    import hashlib

    from service.models import embedding_cache
    from service.models.embedding_cache import CachedEncoder
    from service.models.sam import SamDecoder, SamEncoder
    from service.pipeline.segment import PipelineConfig, Segmenter
    from service.pipeline.types import SegmentInput, WeakLabels

    backend = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    encoder = CachedEncoder(SamEncoder(backend), 64 << 20)
    seg = Segmenter(CamClassifier(backend), encoder, SamDecoder(backend), PipelineConfig(), cam_cache=CamCache(64 << 20))
    hashed: list[int] = []
    real_sha256 = hashlib.sha256

    def sha256(data: memoryview) -> object:
        hashed.append(data.nbytes)
        return real_sha256(data)

    monkeypatch.setattr(embedding_cache.hashlib, "sha256", sha256)
    s = generate(HELD_OUT_SEED, 5)
    request = SegmentInput(image=s.image, labels=WeakLabels(image_labels=tuple(s.labels)))
    first = seg.segment(request)
    assert hashed == [s.image.nbytes]
    assert len(encoder) == 1 and len(seg.cam_cache) == 1  # type: ignore[arg-type]
    again = seg.segment(request)  # both caches hit, on the one hash
    assert hashed == [s.image.nbytes] * 2
    np.testing.assert_array_equal(again.label_map, first.label_map)

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
    assert len(encoder) == 1 and len(seg.cam_cache) == 2  # type: ignore[arg-type]  # its CAMs and their walk
    again = seg.segment(request)  # both caches hit, on the one hash
    assert hashed == [s.image.nbytes] * 2
    np.testing.assert_array_equal(again.label_map, first.label_map)


def count_walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every walk from now on (in the cache and in ``walk_classes``) appends the number of classes it walked."""
    from service.pipeline import cam_cache as module
    from service.pipeline import cam_random_walk
    from service.pipeline.cam_random_walk import walk_low_res

    walks: list[int] = []

    def counting(cams: np.ndarray, features: np.ndarray, beta: float, steps: int) -> np.ndarray:
        walks.append(len(cams))
        return walk_low_res(cams, features, beta, steps)

    monkeypatch.setattr(module, "walk_low_res", counting)
    monkeypatch.setattr(cam_random_walk, "walk_low_res", counting)
    return walks


def test_walks_are_cached_per_class_set(classifier: CamClassifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second round with the same tagged classes takes the walked CAMs from the cache: equal to walking again."""
    from service.pipeline.cam_random_walk import walk_classes

    walks = count_walks(monkeypatch)
    cache = CamCache(64 << 20)
    sample = generate(HELD_OUT_SEED, 4)
    tagged = sorted(classifier.classes.index(n) + 1 for n in sample.labels)
    other = next(k for k in range(1, len(classifier.classes) + 1) if k not in tagged)
    assert len(tagged) >= 1
    scales = (1.0,)
    base = cache.cams(classifier, sample.image, scales, False, "px")
    assert base.features is not None
    expected = walk_classes(base, tagged, 64.0, 8)  # walked without the cache
    walks.clear()
    first = cache.walked(classifier, base, tagged[::-1], 64.0, 8, scales, False, "px")
    again = cache.walked(classifier, base, tagged, 64.0, 8, scales, False, "px")  # same classes, any order: a hit
    assert walks == [len(tagged)]
    np.testing.assert_array_equal(first.cams, expected.cams)
    np.testing.assert_array_equal(again.cams, expected.cams)
    assert again.features is base.features and again.probabilities is base.probabilities
    row = tagged[0] - 1
    assert not np.array_equal(again.cams[row], base.cams[row])  # walked rows differ from the plain CAMs ...
    np.testing.assert_array_equal(again.cams[other - 1], base.cams[other - 1])  # ... the others do not
    again.cams[row, 0, 0] = 5.0  # each caller gets its own array: the cached walk stays as it was
    np.testing.assert_array_equal(cache.walked(classifier, base, tagged, 64.0, 8, scales, False, "px").cams, expected.cams)
    assert walks == [len(tagged)]
    cache.walked(classifier, base, [other], 64.0, 8, scales, False, "px")  # another class set, another beta, no key: each walks
    cache.walked(classifier, base, tagged, 32.0, 8, scales, False, "px")
    cache.walked(classifier, base, tagged, 64.0, 8, scales, False, None)
    assert walks == [len(tagged), 1, len(tagged), len(tagged)]
    CamCache(0).walked(classifier, base, tagged, 64.0, 8, scales, False, "px")
    CamCache(0).walked(classifier, base, tagged, 64.0, 8, scales, False, "px")
    assert len(walks) == 6


def test_a_second_round_skips_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segment twice on one image with the same tags (the second with a click too): one walk, one classifier run."""
    from service.models.embedding_cache import CachedEncoder
    from service.models.sam import SamDecoder, SamEncoder
    from service.pipeline.segment import PipelineConfig, Segmenter
    from service.pipeline.types import Click, SegmentInput, WeakLabels

    walks = count_walks(monkeypatch)
    backend = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    seg = Segmenter(CamClassifier(backend), CachedEncoder(SamEncoder(backend), 64 << 20), SamDecoder(backend), PipelineConfig(),
                    cam_cache=CamCache(64 << 20))
    s = generate(HELD_OUT_SEED, 6)
    tags = tuple(s.labels)
    first = seg.segment(SegmentInput(image=s.image, labels=WeakLabels(image_labels=tags)))
    assert len(walks) == 1 and dict(first.timings)["cam_walk"] >= 0.0
    again = seg.segment(SegmentInput(image=s.image, labels=WeakLabels(image_labels=tags)))
    np.testing.assert_array_equal(again.label_map, first.label_map)
    seg.segment(SegmentInput(image=s.image, labels=WeakLabels(image_labels=tags, points=(Click(tags[0], 10.0, 10.0),))))
    assert len(walks) == 1 and len(seg.cam_cache) == 2  # type: ignore[arg-type]  # the CAMs and one walk

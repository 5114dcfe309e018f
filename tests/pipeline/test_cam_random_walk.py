"""The CAM random walk on tiny fixed maps, against hand-computed values; in the Segment pipeline
(tagged classes' CAMs walked, its memory in the request's estimate) and the toolkit's ``cam_rw`` sources."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from service.models.cam_classifier import CamClassifier
from service.models.sam import SamDecoder, SamEncoder
from service.pipeline import cam_random_walk, prompts
from service.pipeline.cam import CamResult, multiscale_cams
from service.pipeline.cam_random_walk import feature_cells, random_walk, walk_bytes, walk_cells, walk_classes
from service.pipeline.segment import PipelineConfig, Segmenter
from service.pipeline.types import Box, SegmentInput, WeakLabels
from service.pipeline.work_frame import WALK_BYTES_PER_CLASS_PIXEL
from service.runtime import ModelRepository
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from tests.conftest import DEFAULT_REPO
from training.synthetic import HELD_OUT_SEED, generate


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


def test_cells_whose_features_are_all_zero_stay_put_instead_of_dividing_by_zero() -> None:
    features = np.zeros((4, 6, 6), np.float32)
    features[0, :3] = 1.0  # the lower half is black: zero features
    cams = np.random.default_rng(1).random((2, 12, 12)).astype(np.float32)
    out = random_walk(cams, features, 64.0, 8)
    assert np.isfinite(out).all() and np.allclose(out.reshape(2, -1).max(axis=1), 1.0, atol=1e-4)


def test_walk_classes_walks_only_the_named_classes_and_leaves_the_input_alone() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(8, 4, 5)).astype(np.float32)
    cams = rng.random((3, 32, 40)).astype(np.float32)
    cams.setflags(write=False)  # as a cached result is
    result = CamResult(np.full(3, 0.9, np.float32), cams, features)
    walked = walk_classes(result, (1, 3), 8.0, 2)
    np.testing.assert_array_equal(walked.cams[1], cams[1])
    np.testing.assert_allclose(walked.cams[[0, 2]], random_walk(cams[[0, 2]], features, 8.0, 2), atol=1e-6)
    assert walked.probabilities is result.probabilities and walked.features is features
    assert walk_classes(result, (), 8.0, 2).cams.tolist() == cams.tolist()
    with pytest.raises(ValueError, match="needs the classifier's features"):
        walk_classes(CamResult(result.probabilities, cams, None), (1,), 8.0, 2)


def test_cells_and_bytes_of_a_walk() -> None:
    assert walk_cells(30, 40) == 1200
    assert walk_cells(128, 128) == 64 * 64  # resized to MAX_CELLS
    assert walk_cells(100, 300) <= cam_random_walk.MAX_CELLS
    assert feature_cells(240, 320, 8.0) == 30 * 40
    assert feature_cells(241, 320, 8.0) == 31 * 40  # a partial cell counts
    assert feature_cells(30, 40, None) == 1200  # stride not yet known: a cell per pixel, the bound
    assert walk_bytes(4096) == 2 * 4096 * 4096 * 4


def _segmenter(steps: int) -> Segmenter:
    backend = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    return Segmenter(CamClassifier(backend), SamEncoder(backend), SamDecoder(backend), PipelineConfig(cam_walk_steps=steps))


def test_the_pipeline_prompts_and_aggregates_on_the_walked_cams_of_the_tagged_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[npt.NDArray[np.float32]] = []
    real = prompts.prompt_sets

    def spy(labels: object, tagged: object, cams: npt.NDArray[np.float32], *args: object, **kwargs: object) -> object:
        seen.append(cams)
        return real(labels, tagged, cams, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(prompts, "prompt_sets", spy)
    on, off = _segmenter(8), _segmenter(0)
    s = generate(HELD_OUT_SEED, 7)
    request = SegmentInput(image=s.image, labels=WeakLabels(image_labels=tuple(s.labels)))
    walked, plain = on.segment(request), off.segment(request)
    assert "cam_walk" in dict(walked.timings) and "cam_walk" not in dict(plain.timings)
    cfg = on.config
    fresh = multiscale_cams(on.classifier, s.image, cfg.cam_scales, cfg.cam_flip)
    tagged = tuple(on.classes.index(n) + 1 for n in s.labels)
    np.testing.assert_allclose(seen[0], walk_classes(fresh, tagged, cfg.cam_walk_beta, cfg.cam_walk_steps).cams, atol=1e-5)
    np.testing.assert_allclose(seen[1], fresh.cams, atol=1e-6)
    assert not np.allclose(seen[0], seen[1])
    boxes_only = SegmentInput(image=s.image, labels=WeakLabels(boxes=(Box(s.labels[0], 10, 10, 120, 120),)))
    assert "cam_walk" not in dict(on.segment(boxes_only).timings)  # no tagged class: no CAM is read, none walked


def test_the_memory_estimate_counts_the_walk_at_the_stride_the_classifier_showed() -> None:
    on, off = _segmenter(8), _segmenter(0)
    assert on.walks and not off.walks and on.classifier.feature_stride is None
    bound = on.image_bytes(256, 256)  # stride unknown: the cell bound, MAX_CELLS
    assert bound - off.image_bytes(256, 256) == walk_bytes(4096) + 256 * 256 * WALK_BYTES_PER_CLASS_PIXEL * len(on.classes)
    on.warmup()
    stride = on.classifier.feature_stride
    assert stride is not None and stride >= 2
    cells = feature_cells(256, 256, stride)
    assert on.image_bytes(256, 256) - off.image_bytes(256, 256) == walk_bytes(cells) + 256 * 256 * WALK_BYTES_PER_CLASS_PIXEL * len(on.classes)
    assert on.image_bytes(256, 256) < bound
    assert on.encoder is not None and on.working_bytes(256, 256) == on.image_bytes(256, 256) + on.encoder.run_bytes > on.image_bytes(256, 256)
    assert not Segmenter(on.classifier, None, None, PipelineConfig(cam_scales=(0.5, 2.0))).walks  # no scale-1 run: no features


def test_the_walk_settings_reach_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.api.state import pipeline_config
    from service.settings import Settings

    monkeypatch.setenv("WSSS_CAM_WALK_STEPS", "3")
    monkeypatch.setenv("WSSS_CAM_WALK_BETA", "16")
    cfg = pipeline_config(Settings())
    assert (cfg.cam_walk_steps, cfg.cam_walk_beta) == (3, 16.0)
    monkeypatch.setenv("WSSS_CAM_WALK_BETA", "0")
    with pytest.raises(ValueError, match="cam_walk_beta"):
        Settings()


def test_the_server_process_runs_blas_on_one_thread() -> None:
    # in a child process: the limit is for good, and the test process keeps its own
    import subprocess
    import sys

    code = ("import numpy, cv2\nfrom threadpoolctl import ThreadpoolController\nfrom service.blas import one_blas_thread\n"
            "names = one_blas_thread()\nprint(len(names), sorted({l['num_threads'] for l in ThreadpoolController().info() if l['user_api'] == 'blas'}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert int(out[0]) >= 1 and out[1:] == ["[1]"]

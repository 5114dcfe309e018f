"""ONNX Runtime I/O binding: kept outputs come back as device tensors, feed the next model as they
are, and every number equals the plain path. On a GPU the tensors live in CUDA memory; here the
same code path runs with ``io_binding="on"`` in host memory."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import InvalidInput, ModelRepositoryError
from service.models.cam_classifier import CamClassifier
from service.models.embedding_cache import CachedEncoder
from service.models.sam import ImageEmbedding, ResizeLongestSide, SamDecoder, SamEncoder
from service.pipeline.segment import PipelineConfig, Segmenter
from service.pipeline.types import SegmentInput, WeakLabels
from service.runtime import DeviceTensor, ModelRepository
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from tests.conftest import DEFAULT_REPO
from training.synthetic import HELD_OUT_SEED, generate

SAM = ["cam_classifier", "sam_encoder", "sam_decoder"]


def _backend(io_binding: str) -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider", io_binding=io_binding)
    backend.load(SAM)
    return backend


def test_kept_embedding_is_a_device_tensor_with_the_same_numbers() -> None:
    image = generate(HELD_OUT_SEED, 0).image
    plain = SamEncoder(_backend("off")).embed(image)
    bound = SamEncoder(_backend("on")).embed(image)
    assert isinstance(plain.embeddings, np.ndarray)
    assert isinstance(bound.embeddings, DeviceTensor)
    assert bound.embeddings.shape == (1, 256, 64, 64) and bound.embeddings.device == "cpu"
    assert bound.embeddings.nbytes == plain.embeddings.nbytes
    np.testing.assert_allclose(np.asarray(bound.embeddings), plain.embeddings, rtol=1e-5, atol=1e-5)


def test_decoder_takes_the_device_tensor_as_input() -> None:
    image = generate(HELD_OUT_SEED, 1).image
    coords, labels = np.array([[100.0, 120.0]], np.float32), np.array([1.0], np.float32)
    plain_backend, bound_backend = _backend("off"), _backend("on")
    plain = SamDecoder(plain_backend).predict(SamEncoder(plain_backend).embed(image), coords, labels)
    bound = SamDecoder(bound_backend).predict(SamEncoder(bound_backend).embed(image), coords, labels)
    np.testing.assert_allclose(bound.low_res_logits, plain.low_res_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bound.iou_predictions, plain.iou_predictions, rtol=1e-5, atol=1e-5)


def test_segment_pipeline_with_io_binding_and_the_cache_equals_the_plain_one() -> None:
    results = []
    for mode in ("off", "on"):
        backend = _backend(mode)
        encoder = CachedEncoder(SamEncoder(backend), 64 << 20)
        segmenter = Segmenter(CamClassifier(backend), encoder, SamDecoder(backend), PipelineConfig())
        maps = []
        for i in range(4):
            s = generate(HELD_OUT_SEED, i)
            request = SegmentInput(image=s.image, labels=WeakLabels(image_labels=tuple(s.labels)))
            maps.append(segmenter.segment(request).label_map)
            maps.append(segmenter.segment(request).label_map)  # second time from the cache
        results.append(maps)
        assert len(encoder) == 4 and encoder.size_bytes == 4 * 256 * 64 * 64 * 4
    for plain, bound in zip(*results):
        assert (plain != bound).mean() < 1e-3


def test_auto_binds_only_on_a_gpu_and_bad_modes_are_refused() -> None:
    backend = _backend("auto")  # this CPU session: plain path, numpy out
    out = backend.infer("sam_encoder", {"image": np.zeros((1, 1024, 1024, 3), np.uint8)}, keep_on_device=frozenset({"image_embeddings"}))
    assert isinstance(out["image_embeddings"], np.ndarray)
    with pytest.raises(ModelRepositoryError, match="io_binding"):
        OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider", io_binding="sometimes")


def test_device_tensor_of_the_wrong_dtype_is_invalid_input() -> None:
    backend = _backend("on")
    emb = backend.infer("sam_encoder", {"image": np.zeros((1, 1024, 1024, 3), np.uint8)}, keep_on_device=frozenset({"image_embeddings"}))["image_embeddings"]
    assert isinstance(emb, DeviceTensor)
    wrong = DeviceTensor(emb.value, emb.shape, np.dtype(np.float16), emb.device, emb.to_host)
    with pytest.raises(InvalidInput, match="float32"):
        SamDecoder(backend).predict(
            ImageEmbedding(wrong, ResizeLongestSide(8, 8), "1"),
            np.array([[1.0, 1.0]], np.float32),
            np.array([1.0], np.float32),
        )

"""The SAM wrappers accept the official segment-anything ONNX decoder contract (1-mask and 4-mask)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.errors import ModelRepositoryError, Overloaded
from service.models.sam import ImageEmbedding, ResizeLongestSide, SamDecoder
from service.runtime import ModelRepository
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from tests.onnx_builders import DISC_RADIUS, decoder_repo, identity_model


def _decoder(tmp_path: Path, num_masks: int, batch_axis: bool = False) -> SamDecoder:
    backend = OnnxRuntimeBackend(ModelRepository(decoder_repo(tmp_path, num_masks, batch_axis)), "CPUExecutionProvider")
    backend.load(["sam_decoder"])
    return SamDecoder(backend)


def _embedding(h: int, w: int) -> ImageEmbedding:
    return ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), ResizeLongestSide(h, w), "test")


@pytest.mark.parametrize("num_masks", [1, 4])
@pytest.mark.parametrize("shape", [(300, 200), (200, 300), (256, 256), (97, 411)], ids=["portrait", "landscape", "square", "wide"])
def test_upsampled_low_res_mask_lands_on_the_prompt(tmp_path: Path, num_masks: int, shape: tuple[int, int]) -> None:
    h, w = shape
    decoder = _decoder(tmp_path, num_masks)
    emb = _embedding(h, w)
    x, y = 0.6 * w, 0.4 * h
    out = decoder.predict(emb, np.array([[x, y]], np.float32), np.array([1.0], np.float32))
    assert out.low_res_logits.shape == (num_masks, 256, 256)
    assert out.iou_predictions.shape == (num_masks,)
    logits = decoder.upsample(out.low_res_logits, emb.geometry)
    assert logits.shape == (num_masks, h, w)
    region = logits[0] > 0
    ys, xs = np.nonzero(region)
    assert abs(xs.mean() + 0.5 - x) < 1.5 and abs(ys.mean() + 0.5 - y) < 1.5
    radius = DISC_RADIUS * max(h, w) / 1024
    assert region.sum() == pytest.approx(np.pi * radius**2, rel=0.15)


def test_four_mask_export_keeps_mask_order(tmp_path: Path) -> None:
    decoder = _decoder(tmp_path, 4)
    emb = _embedding(256, 256)
    out = decoder.predict(emb, np.array([[128.0, 128.0]], np.float32), np.array([1.0], np.float32))
    areas = [(decoder.upsample(out.low_res_logits[k : k + 1], emb.geometry)[0] > 0).sum() for k in range(4)]
    assert areas == sorted(areas) and areas[3] > 3 * areas[0]
    np.testing.assert_allclose(out.iou_predictions, [0.9, 0.8, 0.7, 0.6], atol=1e-6)


def test_buggy_masks_output_is_not_used(tmp_path: Path) -> None:
    """The test decoder's ``masks`` ignores the padding, like the PyPI export: misaligned off-square."""
    decoder = _decoder(tmp_path, 1)
    h, w = 300, 150
    emb = _embedding(h, w)
    raw = decoder.backend.infer(
        "sam_decoder",
        {
            "image_embeddings": emb.embeddings,
            "point_coords": emb.geometry.apply_coords(np.array([[[75.0, 150.0]]], np.float32)),
            "point_labels": np.array([[1.0]], np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([h, w], np.float32),
        },
    )
    bad = raw["masks"][0, 0] > 0
    good = decoder.upsample(raw["low_res_masks"][0], emb.geometry)[0] > 0
    assert abs(np.nonzero(good)[1].mean() - 75) < 1.5
    assert abs(np.nonzero(bad)[1].mean() - 75) > 10


def test_batched_export_accepted(tmp_path: Path) -> None:
    decoder = _decoder(tmp_path, 4, batch_axis=True)
    out = decoder.predict(_embedding(128, 128), np.array([[10.0, 20.0], [30, 40]], np.float32), np.array([1.0, 0.0], np.float32))
    assert out.low_res_logits.shape == (4, 256, 256)


def test_decoder_with_wrong_contract_is_refused(tmp_path: Path) -> None:
    identity_model(tmp_path / "sam_decoder" / "1" / "model.onnx", "image", "logits")
    (tmp_path / "sam_decoder" / "config.pbtxt").write_text(
        'name: "sam_decoder"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
        'input [ { name: "image" data_type: TYPE_FP32 dims: [ -1, -1, -1, -1 ] } ]\n'
        'output [ { name: "logits" data_type: TYPE_FP32 dims: [ -1, -1, -1, -1 ] } ]\n'
    )
    backend = OnnxRuntimeBackend(ModelRepository(tmp_path), "CPUExecutionProvider")
    backend.load(["sam_decoder"])
    with pytest.raises(ModelRepositoryError, match="segment-anything ONNX decoder contract"):
        SamDecoder(backend)


def test_resize_longest_side_matches_segment_anything() -> None:
    g = ResizeLongestSide(480, 640)
    assert g.resized == (768, 1024)
    np.testing.assert_allclose(g.apply_coords(np.array([[640.0, 480.0]], np.float32)), [[1024.0, 768.0]])
    assert ResizeLongestSide(333, 1000).resized == (341, 1024)


def test_batched_and_looped_decoding_agree(tmp_path: Path) -> None:
    looped = _decoder(tmp_path / "a", 4, batch_axis=False)
    batched = _decoder(tmp_path / "b", 4, batch_axis=True)
    assert batched.batched and not looped.batched
    emb = _embedding(200, 300)
    sets = [
        (np.array([[50.0, 60.0]], np.float32), np.array([1.0], np.float32)),
        (np.array([[10.0, 10.0], [90.0, 80.0], [150.0, 100.0]], np.float32), np.array([2.0, 3.0, 1.0], np.float32)),
        (np.array([[250.0, 150.0], [20.0, 20.0]], np.float32), np.array([1.0, 0.0], np.float32)),
    ]
    for a, b in zip(looped.predict_many(emb, sets), batched.predict_many(emb, sets)):
        np.testing.assert_allclose(a.low_res_logits, b.low_res_logits, atol=1e-5)
        np.testing.assert_allclose(a.iou_predictions, b.iou_predictions, atol=1e-6)


def test_encoder_run_is_measured_once_and_counted_in_both_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default encoder's run, measured on its first warm-up, is what the Segment and
    SegmentEverything estimates grow by; a reload that keeps the encoder keeps its measurement."""
    from service import memory_peak
    from service.models.cam_classifier import CamClassifier
    from service.models.embedding_cache import CachedEncoder
    from service.models.sam import SamEncoder
    from service.pipeline.everything import EverythingGenerator
    from service.pipeline.segment import PipelineConfig, Segmenter
    from service.settings import REPO_ROOT

    backend = OnnxRuntimeBackend(ModelRepository(REPO_ROOT / "model_repo"), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    encoder = CachedEncoder(SamEncoder(backend), 0)
    segmenter = Segmenter(CamClassifier(backend), encoder, SamDecoder(backend), PipelineConfig(cam_walk_steps=0))  # the walk's bound changes once the stride is known
    everything = EverythingGenerator(encoder, SamDecoder(backend), 1024, 1 << 31)
    seg_before, all_before = segmenter.working_bytes(300, 400), everything.working_bytes(300, 400)
    assert encoder.run_bytes == 0 and encoder.encoder.measured_bytes is None
    measured: list[int | None] = []
    growth = memory_peak.growth

    def counting(call):  # type: ignore[no-untyped-def]
        result, grown = growth(call)
        measured.append(grown)
        return result, grown

    monkeypatch.setattr(memory_peak, "growth", counting)
    segmenter.warmup()
    segmenter.warmup()
    assert len(measured) == 1 and measured[0] is not None
    assert encoder.run_bytes == measured[0] > 4 << 20  # the default encoder's activations: tens of MiB
    assert segmenter.working_bytes(300, 400) - seg_before == encoder.run_bytes
    assert everything.working_bytes(300, 400) - all_before == encoder.run_bytes
    image = segmenter.image_bytes(300, 400)  # the refusal counts what a smaller image would save, not the encoder's fixed run
    fits = Segmenter(segmenter.classifier, encoder, segmenter.decoder, PipelineConfig(cam_walk_steps=0, max_request_bytes=image))
    fits.check_budget(300, 400)
    with pytest.raises(Overloaded, match="send a smaller image"):
        Segmenter(segmenter.classifier, encoder, segmenter.decoder, PipelineConfig(cam_walk_steps=0, max_request_bytes=image - 1)).check_budget(300, 400)
    kept = CachedEncoder(SamEncoder(backend), 0)
    kept.take_entries(encoder)
    kept.warmup()
    assert kept.run_bytes == encoder.run_bytes and len(measured) == 1

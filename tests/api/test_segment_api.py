"""Segment, SegmentStream, Predict and ListModels against a real in-process server with the default models."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from service.api.background import BackgroundServer
from service.pipeline.evaluation import quality_metrics
from tests.conftest import iou, png_bytes
from training.synthetic import CLASSES, HELD_OUT_SEED, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc


def _request(index: int, with_labels: bool = True, **kw: object) -> tuple[pb.SegmentRequest, object]:
    s = generate(HELD_OUT_SEED, index)
    labels = pb.WeakLabels(image_labels=s.labels) if with_labels else pb.WeakLabels()
    return pb.SegmentRequest(id=f"img{index}", image=pb.Image(encoded=png_bytes(s.image)), labels=labels, **kw), s  # type: ignore[arg-type]


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_segment_masks_follow_the_defects(stub: pb_grpc.SegmentationServiceStub) -> None:
    ious = []
    for index in range(12):
        req, s = _request(index)
        if not s.labels:
            continue
        resp = stub.Segment(req, timeout=60)
        assert resp.id == f"img{index}"
        assert resp.labels_source == pb.LABELS_SOURCE_REQUEST
        label_map = _decode(resp.mask.png)
        assert label_map.shape == s.mask.shape
        for c in resp.classes:
            assert c.class_name == CLASSES[c.class_id - 1]
            assert c.prompts and c.prompts[0].source == "cam_peak" and c.prompts[0].label == 1
            assert 0 <= c.sam_iou <= 1 and 0 <= c.stability_score <= 1 and 0 <= c.cam_score <= 1
            assert c.area == int((label_map == c.class_id).sum())
            ious.append(iou(label_map == c.class_id, s.mask == c.class_id))
        assert [t.stage for t in resp.timings][:4] == ["weak_labels", "cam", "cam_walk", "prompts"]
        assert set(resp.model_versions) == {"cam_classifier", "sam_encoder", "sam_decoder"}
    assert len(ious) >= 8
    assert float(np.mean(ious)) > 0.5, ious


def test_segment_without_labels_uses_the_classifier(stub: pb_grpc.SegmentationServiceStub) -> None:
    """The default classifier names exactly the right classes on 79% of 100 held-out images."""
    hits = 0
    for index in range(16):
        req, s = _request(index, with_labels=False)
        resp = stub.Segment(req, timeout=60)
        assert resp.labels_source == pb.LABELS_SOURCE_CLASSIFIER
        hits += {c.class_name for c in resp.classes} == set(s.labels)
        for c in resp.classes:
            assert c.classifier_probability > 0.5
    assert hits >= 10, hits


def test_mask_formats_agree(stub: pb_grpc.SegmentationServiceStub) -> None:
    formats = [pb.MASK_FORMAT_PNG, pb.MASK_FORMAT_COCO_RLE, pb.MASK_FORMAT_RAW]
    req, s = _request(2, options=pb.SegmentOptions(mask_formats=formats))
    resp = stub.Segment(req, timeout=60)
    png = _decode(resp.mask.png)
    raw = np.frombuffer(resp.mask.raw, np.uint8).reshape(resp.mask.height, resp.mask.width)
    np.testing.assert_array_equal(png, raw)
    for c in resp.classes:
        decoded = mask_utils.decode({"size": list(c.rle.size), "counts": c.rle.counts.encode()})
        np.testing.assert_array_equal(decoded, png == c.class_id)


def test_only_raw_when_asked(stub: pb_grpc.SegmentationServiceStub) -> None:
    req, _ = _request(3, options=pb.SegmentOptions(mask_formats=[pb.MASK_FORMAT_RAW]))
    resp = stub.Segment(req, timeout=60)
    assert resp.mask.png == b"" and len(resp.mask.raw) == resp.mask.height * resp.mask.width


def test_ground_truth_gives_metrics(stub: pb_grpc.SegmentationServiceStub) -> None:
    req, s = _request(4)
    req.ground_truth.encoded = png_bytes(s.mask)
    resp = stub.Segment(req, timeout=60)
    expected = quality_metrics(_decode(resp.mask.png), s.mask, len(CLASSES))
    assert resp.metrics.miou == pytest.approx(expected.miou, abs=1e-6)
    assert resp.metrics.pixel_accuracy == pytest.approx(expected.pixel_accuracy, abs=1e-6)
    assert {c.class_id for c in resp.metrics.per_class} == set(expected.per_class)


def test_confidence_scores_both_work(stub: pb_grpc.SegmentationServiceStub) -> None:
    for score in (pb.CONFIDENCE_SCORE_LOGIT_X_CAM, pb.CONFIDENCE_SCORE_STABILITY_X_CAM):
        req, s = _request(5, options=pb.SegmentOptions(confidence_score=score))
        resp = stub.Segment(req, timeout=60)
        assert {c.class_name for c in resp.classes} == set(s.labels)


def test_message_over_four_mib_is_accepted(stub: pb_grpc.SegmentationServiceStub) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (1300, 1300, 3), dtype=np.uint8)
    req = pb.SegmentRequest(image=pb.Image(raw=pb.RawImage(data=img.tobytes(), height=1300, width=1300, channels=3)),
                            labels=pb.WeakLabels(image_labels=["stain"]),
                            options=pb.SegmentOptions(mask_formats=[pb.MASK_FORMAT_RAW]))
    assert req.ByteSize() > 4 * 1024 * 1024
    resp = stub.Segment(req, timeout=120)
    assert len(resp.mask.raw) == 1300 * 1300


def test_stream_echoes_ids_and_isolates_a_bad_item(stub: pb_grpc.SegmentationServiceStub) -> None:
    good1, _ = _request(0)
    bad = pb.SegmentRequest(id="broken", image=pb.Image(encoded=b"not an image"))
    good2, _ = _request(1)
    unknown, _ = _request(6)
    unknown.id = "unknown-class"
    unknown.labels.image_labels.append("dent")
    responses = list(stub.SegmentStream(iter([good1, bad, good2, unknown]), timeout=120))
    assert [r.id for r in responses] == ["img0", "broken", "img1", "unknown-class"]
    assert not responses[0].HasField("error") and responses[0].mask.png
    assert responses[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert responses[1].error.code_name == "INVALID_ARGUMENT"
    assert "not a supported image" in responses[1].error.message
    assert not responses[2].HasField("error")
    assert "unknown class 'dent'" in responses[3].error.message


def test_predict(stub: pb_grpc.SegmentationServiceStub) -> None:
    ious = []
    for index in range(10):
        s = generate(HELD_OUT_SEED, index)
        resp = stub.Predict(pb.PredictRequest(id=str(index), image=pb.Image(encoded=png_bytes(s.image)),
                                              mask_formats=[pb.MASK_FORMAT_PNG, pb.MASK_FORMAT_COCO_RLE]), timeout=60)
        label_map = _decode(resp.mask.png)
        assert label_map.shape == s.mask.shape and resp.model_version == "1"
        assert sum(c.area for c in resp.classes) == label_map.size
        assert resp.classes[0].class_name == "background"
        for c in resp.classes:
            assert 0 < c.mean_confidence <= 1
            np.testing.assert_array_equal(mask_utils.decode({"size": list(c.rle.size), "counts": c.rle.counts.encode()}), label_map == c.class_id)
        for k in set(np.unique(s.mask).tolist()) - {0}:
            ious.append(iou(label_map == k, s.mask == k))
    assert float(np.mean(ious)) > 0.4, ious


def test_list_models(stub: pb_grpc.SegmentationServiceStub) -> None:
    models = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
    assert set(models) == {"cam_classifier", "sam_encoder", "sam_decoder", "deeplab"}
    for m in models.values():
        assert (m.backend, m.device, m.provider, m.version) == ("onnxruntime", "CPU", "CPUExecutionProvider", "1")
    assert list(models["cam_classifier"].classes) == list(CLASSES)
    dec = models["sam_decoder"]
    assert [t.name for t in dec.inputs] == ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"]
    assert [list(t.shape) for t in models["sam_encoder"].outputs] == [[1, 256, 64, 64]]


def test_metrics_are_recorded(server: BackgroundServer, stub: pb_grpc.SegmentationServiceStub) -> None:
    before = server.metric("wsss_requests_total", {"rpc": "Segment", "code": "OK"})
    stages_before = server.metric("wsss_stage_duration_seconds_count", {"stage": "sam_decoder"})
    req, _ = _request(0)
    stub.Segment(req, timeout=60)
    with pytest.raises(grpc.RpcError):
        stub.Segment(pb.SegmentRequest(), timeout=10)
    assert server.metric("wsss_requests_total", {"rpc": "Segment", "code": "OK"}) == before + 1
    assert server.metric("wsss_requests_total", {"rpc": "Segment", "code": "INVALID_ARGUMENT"}) >= 1
    assert server.metric("wsss_stage_duration_seconds_count", {"stage": "sam_decoder"}) == stages_before + 1
    assert server.metric("wsss_model_inference_seconds_count", {"model": "sam_encoder", "provider": "CPUExecutionProvider"}) >= 1
    assert server.metric("wsss_request_duration_seconds_count", {"rpc": "Segment"}) >= before + 2
    assert server.metric("wsss_in_flight_requests") == 0


def test_concurrent_requests(stub: pb_grpc.SegmentationServiceStub) -> None:
    reqs = [_request(i)[0] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda r: stub.Segment(r, timeout=120), reqs))
    assert [r.id for r in responses] == [r.id for r in reqs]


def test_refinements(stub: pb_grpc.SegmentationServiceStub) -> None:
    req, s = _request(4)
    base = _decode(stub.Segment(req, timeout=60).mask.png)
    for method in (pb.REFINEMENT_CRF, pb.REFINEMENT_SUPERPIXEL):
        req.options.refinement = method
        resp = stub.Segment(req, timeout=60)
        refined = _decode(resp.mask.png)
        assert refined.shape == base.shape
        assert set(np.unique(refined).tolist()) <= set(np.unique(base).tolist()) | {0}
        assert "refinement" in [t.stage for t in resp.timings]
        for k in set(np.unique(s.mask).tolist()) - {0}:
            assert iou(refined == k, s.mask == k) > 0.2
